"""The audit trail: every audited action (review, cases, exports, keys, searches...) by key.

Visibility: an admin key sees every key's events (and the command line's and workers', which
have no key); any other key sees only the events its own key caused. A case's events are also
returned with the case to every analyst (``GET /v1/cases/{id}``), so a shared case's trail is
visible to everyone working on it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, HTTPException, Query, status

from aioreid.platform.api.deps import Caller, get_services, require_role
from aioreid.platform.api.schemas import MAX_ID, MAX_SMALL_ID, AuditList, AuditOut
from aioreid.platform.cases.service import audit_row
from aioreid.platform.db import crud
from aioreid.platform.db.enums import KeyRole
from aioreid.platform.services import Services

router = APIRouter(prefix="/v1", tags=["audit"])


def _utc(t: datetime | None) -> datetime | None:
    # A time without a zone is read as UTC, as the other routes' time filters do.
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=timezone.utc)


@router.get("/audit", response_model=AuditList)
def audit(
    actor: str | None = Query(default=None, max_length=128, description="the actor's name"),
    action: str | None = Query(
        default=None, max_length=64, description="e.g. search, merge, undo, pin, export"
    ),
    entity: str | None = Query(
        default=None, max_length=64, description="e.g. case, sighting, identity, api_key"
    ),
    entity_id: str | None = Query(default=None, max_length=64),
    key_id: int | None = Query(default=None, ge=1, le=MAX_SMALL_ID, description="an API key id"),
    since: datetime | None = Query(default=None, description="ISO 8601, inclusive"),
    until: datetime | None = Query(default=None, description="ISO 8601, exclusive"),
    offset: int = Query(default=0, ge=0, le=MAX_ID),
    limit: int = Query(default=50, ge=1, le=500),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> AuditList:
    """Audit events, newest first, with a total for paging. Admin keys see every event;
    other keys only their own (asking for another key's is a 403)."""
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and until < since:
        raise HTTPException(422, "until is before since")
    everyone = caller.role is KeyRole.ADMIN
    if not everyone:
        if key_id is not None and key_id != caller.key_id:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"key {caller.actor!r} may read only its own events (key {caller.key_id}); "
                "an admin key reads everyone's",
            )
        key_id = caller.key_id
    with svc.sessions() as s:
        rows, total = crud.list_audit(
            s,
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            key_id=key_id,
            since=since,
            until=until,
            offset=offset,
            limit=limit,
        )
        items = [AuditOut.model_validate(audit_row(r)) for r in rows]
    return AuditList(
        items=items, offset=offset, limit=limit, total=total, scope="all" if everyone else "own"
    )
