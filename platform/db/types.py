"""Column types that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

#: JSON everywhere, JSONB on Postgres (indexable, compact).
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

#: 64-bit keys on Postgres; SQLite only auto-increments a column declared exactly INTEGER.
BigIntKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ENUM_LENGTH = 16


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware timestamps on both dialects, always returned in UTC.

    SQLite has no time zones: values are stored as naive UTC and come back tagged UTC.
    Naive input is refused rather than guessed.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware value")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def str_enum(enum_cls: type[Enum], name: str) -> sa.Enum:
    """A VARCHAR holding the enum's values behind a named CHECK constraint (no native type)."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=ENUM_LENGTH,
        validate_strings=True,
        values_callable=lambda cls: [m.value for m in cls],
    )
