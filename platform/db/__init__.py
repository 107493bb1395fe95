"""Metadata: SQLAlchemy models, engine/session helpers and the Alembic migration runner."""
