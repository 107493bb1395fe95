"""Health, counts, cameras, signed object downloads and re-indexing."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import FileResponse
from sqlalchemy import func, select, text

from aioreid.platform.api.deps import Caller, get_services, require_role
from aioreid.platform.api.schemas import (
    KEYED_ERRORS,
    MAX_SMALL_ID,
    CameraOut,
    CameraPosition,
    EncoderVersionOut,
    GenerationOut,
    GenerationProgress,
    ReindexStarted,
    StatsOut,
    error_responses,
)
from aioreid.platform.db import crud
from aioreid.platform.db.models import (
    Camera,
    EncoderVersion,
    Identity,
    IndexGeneration,
    Media,
    Sighting,
)
from aioreid.platform.index import SearchFilter
from aioreid.platform.services import Services
from aioreid.platform.storage import ObjectNotFound, StorageError, verify_signature
from aioreid.platform.storage.base import guess_content_type, is_content_key

# Health and signed links need no key; every other route here documents KEYED_ERRORS itself.
router = APIRouter(tags=["admin"])


@router.get("/healthz")
def health(svc: Services = Depends(get_services)) -> dict[str, str]:
    """Liveness of the database, the object store and the index (no key needed)."""
    checks: dict[str, str] = {}
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, don't raise: this is the health page
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        svc.store.ping()
        checks["storage"] = "ok"
    except StorageError as exc:
        checks["storage"] = f"error: {exc}"
    try:
        svc.index.list_collections()
        checks["index"] = "ok"
    except Exception as exc:
        checks["index"] = f"error: {type(exc).__name__}"
    checks["status"] = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
    return checks


@router.get("/v1/stats", response_model=StatsOut, responses=KEYED_ERRORS)
def stats(
    svc: Services = Depends(get_services), caller: Caller = Depends(require_role("analyst"))
) -> StatsOut:
    live = svc.index.resolve_alias(svc.alias)
    with svc.sessions() as s:

        def count(model, *where) -> int:  # type: ignore[no-untyped-def]
            return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        versions = s.scalars(select(EncoderVersion).order_by(EncoderVersion.id)).all()
        names = {v.id: v.version for v in versions}
        gens = s.scalars(select(IndexGeneration).order_by(IndexGeneration.id)).all()
        return StatsOut(
            media=count(Media),
            media_failed=count(Media, Media.status == "failed"),
            sightings=count(Sighting),
            identities=count(Identity, Identity.merged_into_id.is_(None)),
            cameras=count(Camera),
            alias=svc.alias,
            live_collection=live,
            encoder_versions=[
                EncoderVersionOut(version=v.version, dim=v.dim, registered_at=v.registered_at)
                for v in versions
            ],
            generations=[
                GenerationOut(
                    collection=g.collection,
                    encoder_version=names.get(g.encoder_version_id, "?"),
                    status=g.status,
                    points=_points(svc, g.collection),
                    live=g.collection == live,
                )
                for g in gens
            ],
        )


def _points(svc: Services, collection: str) -> int:
    try:
        # Sighting points, as re-index progress counts them (each track adds a pooled one).
        return svc.index.count(collection, SearchFilter(level="sighting"))
    except Exception:  # a dropped collection still listed as a retired generation
        return 0


@router.get("/v1/cameras", response_model=list[CameraOut], responses=KEYED_ERRORS)
def cameras(
    svc: Services = Depends(get_services), caller: Caller = Depends(require_role("analyst"))
) -> list[CameraOut]:
    """Every camera with its position (WGS 84 degrees) when one was set."""
    with svc.sessions() as s:
        return [_camera_out(c) for c in s.scalars(select(Camera).order_by(Camera.id))]


def _camera_out(c: Camera) -> CameraOut:
    return CameraOut(
        id=c.id,
        name=c.name,
        modality=c.modality,
        location=c.location,
        latitude=c.latitude,
        longitude=c.longitude,
    )


@router.patch(
    "/v1/cameras/{camera_id}",
    response_model=CameraOut,
    responses={**KEYED_ERRORS, **error_responses(400, 404)},
)
def locate_camera(
    body: CameraPosition,
    camera_id: int = Path(ge=1, le=MAX_SMALL_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("operator")),
) -> CameraOut:
    """Set (or, with both null, remove) a camera's position; ``location`` also sets its
    label. Audited as ``locate``."""
    with svc.sessions.begin() as s:
        cam = crud.set_camera_position(s, camera_id, body.latitude, body.longitude)
        details: dict[str, object] = {"latitude": body.latitude, "longitude": body.longitude}
        if "location" in body.model_fields_set:
            cam.location = (body.location or "").strip() or None
            details["location"] = cam.location
        crud.record_audit(
            s,
            actor=caller.actor,
            action="locate",
            entity="camera",
            entity_id=cam.id,
            details=details,
            key_id=caller.key_id,
        )
        return _camera_out(cam)


@router.get("/v1/objects/{key:path}", responses=error_responses(403, 404, 422))
def get_object(
    key: str,
    expires: int = Query(...),
    signature: str = Query(...),
    svc: Services = Depends(get_services),
) -> Response:
    """A stored object through a signed link (local-folder store; MinIO links go direct)."""
    signing_key = svc.settings.storage.signing_key.get_secret_value().encode()
    if not verify_signature(key, expires, signature, signing_key):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid or expired link")
    headers = {"Cache-Control": object_cache_control(key, expires)}
    try:
        local = svc.store.local_path(key)
        if local is not None:  # streamed from its file, with Range requests (video seeking)
            return FileResponse(local, media_type=guess_content_type(key), headers=headers)
        data = svc.store.get_bytes(key)
    except ObjectNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"object {key} not found") from None
    return Response(data, media_type=guess_content_type(key), headers=headers)


def object_cache_control(key: str, expires: int, now: float | None = None) -> str:
    """How long a browser may keep an object: no longer than its link lives; a
    content-addressed key's bytes never change, so it is also ``immutable`` (no revalidation).
    Links are stable within their lifetime (see ``link_bucket_s``), so repeated views of the
    same crop hit the cache."""
    left = max(0, int(expires) - int(time.time() if now is None else now))
    if is_content_key(key):
        return f"private, max-age={left}, immutable"
    return f"private, max-age={min(3600, left)}"


@router.post(
    "/v1/index/reindex",
    response_model=ReindexStarted,
    status_code=202,
    responses={**KEYED_ERRORS, **error_responses(409, 503)},
)
def start_reindex_route(
    request: Request,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("operator")),
) -> ReindexStarted:
    """Re-embed every sighting with the configured encoder into a new collection; search
    keeps using the live one until the atomic swap at the end. The app's job runner builds
    it (a thread of the API, or the workers)."""
    from aioreid.platform.pipeline import reindex

    gen_id = reindex.start_reindex(svc, svc.encoder)
    request.app.state.runner.start_reindex(gen_id)
    return ReindexStarted(generation_id=gen_id, version=svc.encoder.version)


@router.get(
    "/v1/index/generations", response_model=list[GenerationProgress], responses=KEYED_ERRORS
)
def generation_progress(
    svc: Services = Depends(get_services), caller: Caller = Depends(require_role("analyst"))
) -> list[GenerationProgress]:
    from aioreid.platform.pipeline import reindex

    out = []
    for p in reindex.generations(svc):
        row = GenerationProgress(**p.__dict__)
        if p.status != "building":  # the cursor only counts what a re-index wrote
            row.points = _points(svc, p.collection)
        out.append(row)
    return out
