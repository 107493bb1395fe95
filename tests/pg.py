"""Throwaway PostgreSQL databases for tests.

The server is ``AIOREID_TEST_PG_URL`` (default: the local trust-auth ``postgres`` user); each
database gets a random name, so parallel runs never collide, and is dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get(
    "AIOREID_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _admin() -> sa.Engine:
    return sa.create_engine(
        SERVER_URL,
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 3},
    )


def postgres_available() -> str | None:
    """None when the server answers, else why not."""
    engine = _admin()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        return f"PostgreSQL not reachable at {make_url(SERVER_URL)!r}: {exc.orig}"
    finally:
        engine.dispose()
    return None


def require_postgres() -> None:
    """Skip the calling test when no server answers (fail with AIOREID_TEST_REQUIRE_POSTGRES=1)."""
    why = postgres_available()
    if why is None:
        return
    if os.environ.get("AIOREID_TEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(why)
    pytest.skip(why)


@contextmanager
def temporary_postgres_database(prefix: str = "aioreid_t") -> Iterator[str]:
    """Create an empty database, yield its URL, drop it (closing its connections) at exit."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    engine = _admin()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()
