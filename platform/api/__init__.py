"""The search API (FastAPI)."""
