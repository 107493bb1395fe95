"""The search API application: ``create_app(services)``; ``aioreid api`` serves it with uvicorn.

Errors from the services become JSON ``{"detail": ...}`` with a status that says whose fault
it is: 422 malformed query, 404 unknown id, 409 impossible review action, 503 encoder or index
not ready.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from aioreid.platform.api import (
    routes_admin,
    routes_ingest,
    routes_review,
    routes_search,
    routes_tracks,
)
from aioreid.platform.config import Settings, get_settings
from aioreid.platform.db import crud
from aioreid.platform.index import CollectionNotFound, DimensionMismatch
from aioreid.platform.pipeline.reindex import ReindexRefused
from aioreid.platform.pipeline.runner import InProcessRunner, JobRunner
from aioreid.platform.search.review import ReviewError
from aioreid.platform.search.service import NotFound, QueryError
from aioreid.platform.services import EncoderUnavailable, Services
from aioreid.platform.storage import StorageUnavailable

_ERRORS: list[tuple[type[Exception], int]] = [
    (QueryError, 422),
    (DimensionMismatch, 422),
    (NotFound, status.HTTP_404_NOT_FOUND),
    (CollectionNotFound, status.HTTP_503_SERVICE_UNAVAILABLE),
    (ReviewError, status.HTTP_409_CONFLICT),
    (ReindexRefused, status.HTTP_409_CONFLICT),
    (EncoderUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (StorageUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
]
#: Last lines of defence for input no validator caught: a JSON body nested deeper than the
#: parser's recursion limit, a number a database column cannot hold.
_INPUT_LIMITS: list[tuple[type[Exception], str]] = [
    (RecursionError, "the request is nested too deeply"),
    (OverflowError, "a number in the request is too large"),
]


def ensure_bootstrap_key(svc: Services) -> None:
    """Store the configured bootstrap key (hashed) once, so a fresh stack can be used."""
    key = svc.settings.api.bootstrap_api_key
    if key is None:
        return
    with svc.sessions.begin() as s:
        if crud.verify_api_key(s, key.get_secret_value()) is None:
            crud.create_api_key(s, "bootstrap", plaintext=key.get_secret_value())


def create_app(
    services: Services | None = None,
    *,
    settings: Settings | None = None,
    runner: JobRunner | None = None,
) -> FastAPI:
    """The app over ``services`` (built from ``settings`` / the environment when not given)."""
    owned = services is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if isinstance(app.state.runner, InProcessRunner):
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
    if runner is None and not svc.settings.broker.run_in_process:  # services profile: Celery
        from aioreid.workers.runner import CeleryRunner

        runner = CeleryRunner(svc)
    app.state.runner = runner or InProcessRunner(svc)
    for exc_type, code in _ERRORS:
        app.add_exception_handler(exc_type, _handler(code))
    for exc_type, message in _INPUT_LIMITS:
        app.add_exception_handler(exc_type, _fixed(message))
    for module in (routes_search, routes_review, routes_tracks, routes_ingest, routes_admin):
        app.include_router(module.router)
    return app


def _fixed(message: str):  # type: ignore[no-untyped-def]
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=422)

    return handle


def _handler(code: int):  # type: ignore[no-untyped-def]
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc).strip("'\"")}, status_code=code)

    return handle
