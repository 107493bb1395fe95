"""The search API application: ``create_app(services)``; ``aioreid api`` serves it with uvicorn.

Errors from the services become JSON ``{"detail": ...}`` with a status that says whose fault
it is: 422 malformed query, 404 unknown id, 409 impossible review action, 503 encoder or index
not ready.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.types import Scope

from aioreid.platform.api import (
    routes_admin,
    routes_audit,
    routes_cases,
    routes_ingest,
    routes_keys,
    routes_review,
    routes_search,
    routes_tracks,
)
from aioreid.platform.api.schemas import KEYED_ERRORS
from aioreid.platform.api.uploads import BodySizeLimit
from aioreid.platform.cases.service import CaseError
from aioreid.platform.config import Settings, get_settings
from aioreid.platform.db import crud
from aioreid.platform.db.enums import KeyRole
from aioreid.platform.db.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from aioreid.platform.db.models import ApiKey
from aioreid.platform.index import CollectionNotFound, DimensionMismatch
from aioreid.platform.pipeline.job_runners import JobRunner, build_runner
from aioreid.platform.pipeline.reindex import ReindexRefused
from aioreid.platform.search.review import ReviewError
from aioreid.platform.search.service import NotFound, QueryError
from aioreid.platform.services import EncoderUnavailable, Services
from aioreid.platform.storage import StorageUnavailable

_log = logging.getLogger(__name__)
_ERRORS: list[tuple[type[Exception], int]] = [
    (QueryError, 422),
    (DimensionMismatch, 422),
    (NotFound, status.HTTP_404_NOT_FOUND),
    (CollectionNotFound, status.HTTP_503_SERVICE_UNAVAILABLE),
    (ReviewError, status.HTTP_409_CONFLICT),
    (CaseError, status.HTTP_409_CONFLICT),
    (ReindexRefused, status.HTTP_409_CONFLICT),
    (EncoderUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (StorageUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    # The metadata layer's own refusals, should one escape a route's validation.
    (InvalidValueError, 422),
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (AlreadyExistsError, status.HTTP_409_CONFLICT),
]
#: Last lines of defence for input no validator caught: a JSON body nested deeper than the
#: parser's recursion limit, a number a database column cannot hold.
_INPUT_LIMITS: list[tuple[type[Exception], str]] = [
    (RecursionError, "the request is nested too deeply"),
    (OverflowError, "a number in the request is too large"),
]


def ensure_bootstrap_key(svc: Services) -> None:
    """Store the configured bootstrap key (hashed, role admin) once, so a fresh stack can be
    used and its admin can create everyone's keys.

    It is named ``bootstrap``; when that name is held by an earlier bootstrap key (the setting
    was changed), ``bootstrap-<first 8 hex of its hash>``. A bootstrap key an admin revoked
    stays revoked: start-up goes on with a warning.
    """
    key = svc.settings.api.bootstrap_api_key
    if key is None:
        return
    plaintext = key.get_secret_value()
    key_hash = crud.hash_api_key(plaintext)
    with svc.sessions.begin() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
        if row is None:
            name = "bootstrap"
            if crud.api_key_by_name(s, name) is not None:
                name = f"bootstrap-{key_hash[:8]}"
            try:
                crud.create_api_key(s, name, role=KeyRole.ADMIN, plaintext=plaintext)
            except AlreadyExistsError:  # another API process stored it at the same moment
                row = s.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
                if row is None:
                    raise
        if row is not None and row.revoked_at is not None:
            _log.warning(
                "the configured bootstrap API key (id %s, %s) is revoked; it stays refused",
                row.id,
                row.name,
            )


def create_app(
    services: Services | None = None,
    *,
    settings: Settings | None = None,
    runner: JobRunner | None = None,
) -> FastAPI:
    """The app over ``services`` (built from ``settings`` / the environment when not given).

    Ingest jobs and re-indexes go to ``runner``, by default the one ``broker.runner`` names.
    The app closes what it built (services, runner) when its lifespan ends.
    """
    owned = services is None
    owns_runner = runner is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_runner:
            app.state.runner.shutdown()
        if owned:
            app.state.services.close()

    svc = services or Services.from_settings(settings or get_settings())
    ensure_bootstrap_key(svc)
    app = FastAPI(
        title="aio-reid search API",
        version="1",
        description="Multimodal person re-identification search: RGB, infrared, sketch and "
        "text queries over ingested media; review and ingest jobs.",
        lifespan=lifespan,
    )
    app.state.services = svc
    app.state.runner = runner or build_runner(svc.settings, svc.sessions, svc)
    app.add_middleware(BodySizeLimit, limit_for=_body_limits(svc.settings))
    for exc_type, code in _ERRORS:
        app.add_exception_handler(exc_type, _handler(code))
    for exc_type, message in _INPUT_LIMITS:
        app.add_exception_handler(exc_type, _fixed(message))
    for module in (
        routes_search,
        routes_review,
        routes_tracks,
        routes_ingest,
        routes_admin,
        routes_keys,
        routes_cases,
        routes_audit,
    ):
        # Every route behind a key may answer 401, 403 and 422: documented once, here. The
        # admin router's health and signed-link routes need no key; its routes document theirs.
        keyed = module is not routes_admin
        app.include_router(module.router, responses=KEYED_ERRORS if keyed else None)
    return app


def _body_limits(settings: Settings):  # type: ignore[no-untyped-def]
    """Request body limits: an upload request may carry ``max_request_mb``; any other body
    (JSON, or a search's query images: at most three) stays small."""
    api = settings.api

    def limit_for(scope: Scope) -> int | None:
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return None
        if scope["path"] == "/v1/ingest":
            return int(api.max_request_mb * 2**20)
        return int((3 * api.max_upload_mb + 1) * 2**20)

    return limit_for


def _fixed(message: str):  # type: ignore[no-untyped-def]
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=422)

    return handle


def _handler(code: int):  # type: ignore[no-untyped-def]
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc).strip("'\"")}, status_code=code)

    return handle
