"""`aioreid keys`: create, list, revoke and rotate API keys.

    aioreid keys create ann --role analyst     # prints the secret once (stdout), nothing else
    aioreid keys list
    aioreid keys revoke ann                    # by name or by id
    aioreid keys rotate 3                      # a new secret for key 3, the old one stops

These commands open the metadata database only: never the vector index, which a running API
holds locked on the embedded profile, nor the encoder. Whatever still goes wrong (a database
that is busy, unreachable or behind) is one readable line and exit code 2, not a traceback.
Key actions here are audited with the actor ``cli`` and no key id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from aioreid.platform.config import Profile, get_settings
from aioreid.platform.db.enums import KeyRole

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from aioreid.platform.db.models import ApiKey

keys_app = typer.Typer(
    help="API keys (stored hashed): create, list, revoke, rotate. Roles are cumulative: "
    "analyst (search, review, reading) < operator (+ ingest, re-index) < admin (+ keys).",
    no_args_is_help=True,
)
ACTOR = "cli"


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _first_line(exc: BaseException) -> str:
    """A driver error's own message (``exc.orig``), first line only: no SQL, no traceback."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def _transaction() -> Iterator[Session]:
    """One transaction on the configured database (the embedded SQLite file is migrated first,
    as the API does at start-up); every failure becomes :func:`_fail`."""
    from sqlalchemy.exc import SQLAlchemyError

    from aioreid.platform.db.engine import engine_from_settings, session_factory
    from aioreid.platform.db.errors import DbError
    from aioreid.platform.db.migrate import head_revision, init_database
    from aioreid.platform.keys import KeyConflict

    settings = get_settings()
    engine = None
    try:
        engine = engine_from_settings(settings)
        if settings.profile is Profile.EMBEDDED and _revision(engine) != head_revision():
            init_database(settings.database_url)  # a first run: create the SQLite schema
        with session_factory(engine).begin() as s:
            yield s
    except (DbError, KeyConflict) as exc:
        raise _fail(str(exc)) from None
    except SQLAlchemyError as exc:
        raise _fail(f"database error: {_first_line(exc)}") from None
    except OSError as exc:  # an unwritable home folder, say
        raise _fail(f"cannot open the database: {exc}") from None
    finally:
        if engine is not None:
            engine.dispose()


def _revision(engine: Engine) -> str | None:
    """The database's Alembic revision, read through ``engine`` so the configured busy timeout
    applies (the migration runner waits 30 s for a busy SQLite file; at head it is not needed)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def _describe(row: ApiKey) -> str:
    return f"key {row.id} ({row.name}, role {row.role}, prefix {row.prefix})"


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="who uses the key (the actor); unique")],
    role: Annotated[
        KeyRole,
        typer.Option(help="analyst: search, review; operator: + ingest; admin: + keys"),
    ] = KeyRole.ANALYST,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from aioreid.platform import keys

    with _transaction() as s:
        plaintext, row = keys.create_key(s, name, role, actor=ACTOR)
        about = _describe(row)
    typer.echo(plaintext)  # alone on stdout, so `KEY=$(aioreid keys create ann)` works
    typer.echo(f"created {about}; the secret is shown only this once", err=True)


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Every key, revoked ones included (never a secret or a hash)."""
    from aioreid.platform import keys

    with _transaction() as s:
        rows = keys.list_keys(s)
    if as_json:
        from aioreid.platform.api.routes_keys import key_out

        typer.echo(json.dumps([key_out(r).model_dump(mode="json") for r in rows], indent=2))
        return
    if not rows:
        typer.echo("no API keys yet: `aioreid keys create NAME --role admin` makes one")
        return
    typer.echo(
        f"{'id':>4}  {'name':<24} {'role':<8} {'prefix':<8}  {'created':<16}  "
        f"{'last used':<16}  state"
    )
    for r in rows:
        state = f"revoked {_when(r.revoked_at)}" if r.revoked_at else "active"
        typer.echo(
            f"{r.id:>4}  {r.name:<24} {r.role!s:<8} {r.prefix:<8}  {_when(r.created_at):<16}  "
            f"{_when(r.last_used_at):<16}  {state}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(metavar="ID|NAME", help="the key's id or name")],
) -> None:
    """Revoke a key: it stops working at once (the last active admin key is refused)."""
    from aioreid.platform import keys

    with _transaction() as s:
        about = _describe(keys.revoke_key(s, key, actor=ACTOR))
    typer.echo(f"revoked {about}")


@keys_app.command("rotate")
def keys_rotate(
    key: Annotated[str, typer.Argument(metavar="ID|NAME", help="the key's id or name")],
) -> None:
    """Give a key a new secret (same id, name and role) and print it once; the old secret
    stops working at once."""
    from aioreid.platform import keys

    with _transaction() as s:
        plaintext, row = keys.rotate_key(s, key, actor=ACTOR)
        about = _describe(row)
    typer.echo(plaintext)
    typer.echo(f"rotated {about}; the old secret no longer works", err=True)
