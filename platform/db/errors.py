"""Exceptions of the metadata layer; callers catch these instead of driver errors."""

from __future__ import annotations


class DbError(Exception):
    """Base class of every metadata-layer error."""


class NotFoundError(DbError, LookupError):
    """A referenced row does not exist."""


class AlreadyExistsError(DbError):
    """A unique value is taken; ``existing_id`` names the row that holds it."""

    def __init__(self, message: str, existing_id: int | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class InvalidValueError(DbError, ValueError):
    """A value (or a status change) the schema does not allow."""


class SchemaMismatchError(DbError):
    """The models and the migrated database schema disagree."""


class UnmanagedDatabaseError(DbError):
    """The database holds tables but no Alembic revision, so it cannot be migrated safely."""
