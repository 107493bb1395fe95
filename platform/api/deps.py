"""Request dependencies: the process's services and API-key authentication.

Keys are sent as ``X-API-Key: <key>`` (or ``Authorization: Bearer <key>``); only their sha256
is stored. The key's name is the ``actor`` recorded on every review decision it makes, its id
the ``key_id`` of every audit event.

Every route but ``/healthz`` and the signed ``/v1/objects`` links depends on
``require_role(...)``. Roles are cumulative (see :class:`~aioreid.platform.db.enums.KeyRole`):
analyst < operator < admin; a key below the route's role gets 403 naming the role needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from aioreid.platform.db import crud
from aioreid.platform.db.enums import KeyRole
from aioreid.platform.services import Services

_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class Caller:
    key_id: int
    actor: str
    role: KeyRole = KeyRole.ANALYST


def get_services(request: Request) -> Services:
    return request.app.state.services


def require_key(
    request: Request,
    key: str | None = Depends(_key_header),
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Caller:
    plaintext = key or (bearer.credentials if bearer else None)
    if not plaintext:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send it in the X-API-Key header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    svc: Services = request.app.state.services
    with svc.sessions.begin() as s:
        row = crud.verify_api_key(s, plaintext)
        if row is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Caller(row.id, row.name, KeyRole(row.role))


def require_role(role: KeyRole | str) -> Callable[..., Caller]:
    """A dependency: the caller's key, which must hold ``role`` or a higher one (else 403)."""
    needed = KeyRole(role)

    def dependency(caller: Caller = Depends(require_key)) -> Caller:
        if not caller.role.allows(needed):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs an API key with role {needed} or higher; "
                f"key {caller.actor!r} has role {caller.role}",
            )
        return caller

    dependency.required_role = needed  # type: ignore[attr-defined]  # lets tests audit routes
    return dependency
