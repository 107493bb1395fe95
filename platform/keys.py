"""API-key management shared by the admin routes and `aioreid keys`: every change is audited.

Each function works inside the caller's transaction. ``actor`` and ``key_id`` say who acts: an
admin key through the API (its name and id) or the command line (``"cli"``, no key).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aioreid.platform.db import crud
from aioreid.platform.db.enums import KeyRole
from aioreid.platform.db.errors import NotFoundError
from aioreid.platform.db.models import ApiKey


class KeyConflict(ValueError):
    """A key action that cannot be done as asked (rotating a revoked key, locking admins out)."""


def find_key(session: Session, ref: int | str) -> ApiKey:
    """The key with id ``ref`` (an int, or a string of digits), else the key named ``ref``.
    Names are never all digits, so the two cannot be confused."""
    if isinstance(ref, int) or ref.isdigit():
        key_id = int(ref)
        row = session.get(ApiKey, key_id) if 0 < key_id < 2**31 else None
        if row is None:
            raise NotFoundError(f"no API key with id {key_id}")
        return row
    row = crud.api_key_by_name(session, ref)
    if row is None:
        raise NotFoundError(f"no API key named {ref!r}")
    return row


def list_keys(session: Session) -> list[ApiKey]:
    return crud.list_api_keys(session)


def create_key(
    session: Session,
    name: str,
    role: KeyRole | str = KeyRole.ANALYST,
    *,
    actor: str,
    key_id: int | None = None,
) -> tuple[str, ApiKey]:
    """A new key; returns its plaintext (shown once) and its row."""
    plaintext, row = crud.create_api_key(session, name, role=role)
    _audit(session, "create", row, actor, key_id)
    return plaintext, row


def revoke_key(
    session: Session, ref: int | str, *, actor: str, key_id: int | None = None
) -> ApiKey:
    """Revoke a key (again: a no-op, still audited). The last active admin key is refused:
    nobody could manage keys through the API any more."""
    row = find_key(session, ref)
    if row.revoked_at is None and row.role == KeyRole.ADMIN and _active_admins(session) <= 1:
        raise KeyConflict(
            f"API key {row.id} ({row.name}) is the last active admin key; create another admin "
            "key before revoking it"
        )
    was_revoked = row.revoked_at is not None
    crud.revoke_api_key(session, row.id)
    _audit(session, "revoke", row, actor, key_id, already=was_revoked)
    return row


def rotate_key(
    session: Session, ref: int | str, *, actor: str, key_id: int | None = None
) -> tuple[str, ApiKey]:
    """A new secret for a key, same id, name and role; the old secret stops working at once."""
    row = find_key(session, ref)
    if row.revoked_at is not None:
        raise KeyConflict(f"API key {row.id} ({row.name}) is revoked; create a new key instead")
    plaintext = crud.rotate_api_key(session, row.id)
    _audit(session, "rotate", row, actor, key_id)
    return plaintext, row


def _active_admins(session: Session) -> int:
    where = (ApiKey.role == KeyRole.ADMIN, ApiKey.revoked_at.is_(None))
    return int(session.scalar(select(func.count()).select_from(ApiKey).where(*where)) or 0)


def _audit(
    session: Session, action: str, row: ApiKey, actor: str, key_id: int | None, **extra: bool
) -> None:
    details = {"name": row.name, "role": str(row.role), "prefix": row.prefix, **extra}
    crud.record_audit(
        session,
        actor=actor,
        action=action,
        entity="api_key",
        entity_id=row.id,
        details=details,
        key_id=key_id,
    )
