"""Admin routes for API keys: list, create, revoke, rotate. Secrets are shown once, at creation
or rotation; every change is audited with the acting key's id."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Depends, HTTPException, Path, status
from sqlalchemy.orm import Session

from aioreid.platform import keys
from aioreid.platform.api.deps import Caller, get_services, require_role
from aioreid.platform.api.schemas import (
    MAX_SMALL_ID,
    KeyCreate,
    KeyCreated,
    KeyOut,
    error_responses,
)
from aioreid.platform.db.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from aioreid.platform.db.models import ApiKey
from aioreid.platform.services import Services

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        role=str(row.role),  # type: ignore[arg-type]
        created_at=row.created_at,
        rotated_at=row.rotated_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


@contextmanager
def _transaction(svc: Services) -> Iterator[Session]:
    """A transaction whose key errors become readable 404, 409 and 422 answers."""
    try:
        with svc.sessions.begin() as s:
            yield s
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except (AlreadyExistsError, keys.KeyConflict) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except InvalidValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("", response_model=list[KeyOut])
def list_keys(
    svc: Services = Depends(get_services), caller: Caller = Depends(require_role("admin"))
) -> list[KeyOut]:
    """Every key, revoked ones included, oldest first."""
    with svc.sessions() as s:
        return [key_out(r) for r in keys.list_keys(s)]


@router.post(
    "",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 409),
)
def create_key(
    body: KeyCreate,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("admin")),
) -> KeyCreated:
    """A new key; its secret is in the answer and nowhere else."""
    with _transaction(svc) as s:
        plaintext, row = keys.create_key(
            s, body.name, body.role, actor=caller.actor, key_id=caller.key_id
        )
        return KeyCreated(**key_out(row).model_dump(), key=plaintext)


@router.post("/{key_id}/revoke", response_model=KeyOut, responses=error_responses(404, 409))
def revoke_key(
    key_id: int = Path(ge=1, le=MAX_SMALL_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("admin")),
) -> KeyOut:
    """The key stops working at once (revoking it again changes nothing)."""
    with _transaction(svc) as s:
        return key_out(keys.revoke_key(s, key_id, actor=caller.actor, key_id=caller.key_id))


@router.post("/{key_id}/rotate", response_model=KeyCreated, responses=error_responses(404, 409))
def rotate_key(
    key_id: int = Path(ge=1, le=MAX_SMALL_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("admin")),
) -> KeyCreated:
    """A new secret for the key (same id, name and role); the old secret stops working."""
    with _transaction(svc) as s:
        plaintext, row = keys.rotate_key(s, key_id, actor=caller.actor, key_id=caller.key_id)
        return KeyCreated(**key_out(row).model_dump(), key=plaintext)
