"""Health, counts, cameras, signed object downloads and re-indexing."""

from __future__ import annotations

import threading

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from sqlalchemy import func, select, text

from aioreid.platform.api.deps import Caller, get_services, require_role
from aioreid.platform.api.schemas import (
    KEYED_ERRORS,
    CameraOut,
    EncoderVersionOut,
    GenerationOut,
    GenerationProgress,
    ReindexStarted,
    StatsOut,
    error_responses,
)
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
from aioreid.platform.storage.base import guess_content_type

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
    with svc.sessions() as s:
        return [
            CameraOut(id=c.id, name=c.name, modality=c.modality)
            for c in s.scalars(select(Camera).order_by(Camera.id))
        ]


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
    try:
        data = svc.store.get_bytes(key)
    except ObjectNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"object {key} not found") from None
    return Response(
        data,
        media_type=guess_content_type(key),
        headers={"Cache-Control": "private, max-age=3600"},
    )


@router.post(
    "/v1/index/reindex",
    response_model=ReindexStarted,
    status_code=202,
    responses={**KEYED_ERRORS, **error_responses(409, 503)},
)
def start_reindex_route(
    svc: Services = Depends(get_services), caller: Caller = Depends(require_role("operator"))
) -> ReindexStarted:
    """Re-embed every sighting with the configured encoder into a new collection; search
    keeps using the live one until the atomic swap at the end."""
    from aioreid.platform.pipeline import reindex

    gen_id = reindex.start_reindex(svc, svc.encoder)
    if svc.settings.broker.run_in_process:
        threading.Thread(
            target=reindex.run_reindex, args=(svc, gen_id), name=f"reindex-{gen_id}", daemon=True
        ).start()
    else:
        from aioreid.workers.app import app as celery_app

        celery_app.send_task("aioreid.maintenance.reindex", args=[gen_id])
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
