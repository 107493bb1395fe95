"""Alembic environment of the aio-reid metadata database.

The URL is the Config's ``sqlalchemy.url``, else ``alembic -x url=...``, else the settings
(``AIOREID_DATABASE__URL``, or the embedded SQLite file under ``AIOREID_HOME``).
Scripts are rendered in batch mode so that every revision also runs on SQLite.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection

from aioreid.platform.db.engine import make_engine
from aioreid.platform.db.models import Base
from aioreid.platform.db.types import UTCDateTime

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# ``migrate.check`` may pass another MetaData here (to compare a changed model, say).
target_metadata = config.attributes.get("target_metadata", Base.metadata)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    url = url or context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from aioreid.platform.config import get_settings

    return get_settings().database_url


def _render_item(type_: str, obj: Any, _autogen_context: Any) -> str | bool:
    """Write plain SQLAlchemy types into revisions, so they never import application code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


MIGRATION_LOCK_ID = 0x41494F5245  # "AIORE"; SQLite needs none (BEGIN IMMEDIATE)

OPTIONS: dict[str, Any] = {
    "target_metadata": target_metadata,
    "compare_type": True,
    "render_as_batch": True,
    "render_item": _render_item,
}


def run_migrations_offline() -> None:
    context.configure(url=_url(), literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    # make_engine gives SQLite real transactions, so one failed revision rolls back whole.
    context.configure(connection=connection, transactional_ddl=True, **OPTIONS)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":  # two processes starting at once: one waits
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        context.run_migrations()
        if sqlite:  # foreign keys were off while batch mode rebuilt tables
            bad = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise RuntimeError(f"migration left rows with broken foreign keys: {bad[:5]}")


def run_migrations_online() -> None:
    engine = make_engine(_url(), poolclass=pool.NullPool, sqlite_foreign_keys=False)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
