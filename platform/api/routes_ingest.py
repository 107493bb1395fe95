"""Ingest routes: upload files or name a server folder; watch jobs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    UploadFile,
    status,
)
from fastapi import Path as PathParam  # pathlib's Path is used for server folders here
from sqlalchemy import func, select

from aioreid.platform.api.deps import Caller, get_services, require_role
from aioreid.platform.api.schemas import (
    MAX_ID,
    MAX_SMALL_ID,
    FolderIngestRequest,
    JobCreated,
    JobFailureOut,
    JobList,
    JobOut,
    UploadLimits,
    error_responses,
)
from aioreid.platform.api.uploads import stage_upload
from aioreid.platform.db.models import IngestJob, JobFailure, Media, Sighting
from aioreid.platform.pipeline.dataset_import import dataset_items
from aioreid.platform.pipeline.detector_names import DetectorName
from aioreid.platform.pipeline.frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from aioreid.platform.pipeline.ingest import IngestOptions
from aioreid.platform.pipeline.job_runners import start_ingest_job
from aioreid.platform.services import Services

router = APIRouter(prefix="/v1", tags=["ingest"])


def _start(request: Request, svc: Services, kind: str, source: str, actor: str, items, opts) -> int:  # type: ignore[no-untyped-def]
    runner = request.app.state.runner
    return start_ingest_job(
        runner, svc.sessions, items, opts, kind=kind, source=source, actor=actor
    )


_UPLOAD_FIELDS = frozenset({"files", "camera", "modality", "detector", "start_time"})


async def _known_upload_fields(request: Request) -> None:
    """422 naming a multipart field the route does not take (``thermal=...`` would otherwise
    be dropped without a word). The form is parsed once; FastAPI reuses it."""
    unknown = sorted(set((await request.form()).keys()) - _UPLOAD_FIELDS)
    if unknown:
        raise HTTPException(
            422,
            f"unknown field(s) {', '.join(unknown)}; this route takes "
            f"{', '.join(sorted(_UPLOAD_FIELDS))}",
        )


@router.post(
    "/ingest",
    response_model=JobCreated,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(_known_upload_fields)],
    responses=error_responses(400, 413),
)
def ingest_upload(
    request: Request,
    files: list[UploadFile] = File(description="images or videos"),
    camera: str | None = Form(default=None),
    modality: Literal["rgb", "ir"] = Form(default="rgb"),
    detector: DetectorName = Form(default="crops"),
    start_time: datetime | None = Form(default=None),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("operator")),
) -> JobCreated:
    """Upload files and start an ingest job over them. Each file is streamed into the object
    store; a file that cannot be media (unknown type, empty, over the per-file limit) fails
    alone in the job, by name, and the rest ingest."""
    api = svc.settings.api
    if len(files) > api.max_files_per_request:
        raise HTTPException(
            413, f"{len(files)} files: at most {api.max_files_per_request} per request"
        )
    limit = int(api.max_upload_mb * 2**20)
    staged = [stage_upload(svc.store, f, limit) for f in files]
    if all("refused" in item for item in staged):  # no job would have anything to do
        code = 413 if all("limit" in item["refused"] for item in staged) else 422
        raise HTTPException(
            code, "; ".join(f"{item['name']}: {item['refused']}" for item in staged)
        )
    fields = {"camera": camera, "modality": modality, "start_time": start_time}
    items = [item | fields for item in staged]
    job_id = _start(
        request,
        svc,
        "upload",
        f"{len(items)} uploaded files",
        caller.actor,
        items,
        IngestOptions(detector=detector),
    )
    return JobCreated(job_id=job_id, status="queued")


@router.get("/limits", response_model=UploadLimits)
def limits(
    svc: Services = Depends(get_services), caller: Caller = Depends(require_role("analyst"))
) -> UploadLimits:
    """What an upload may hold (the console checks files against these before sending)."""
    api = svc.settings.api
    return UploadLimits(
        max_upload_mb=api.max_upload_mb,
        max_files_per_request=api.max_files_per_request,
        max_request_mb=api.max_request_mb,
    )


def _roots(svc: Services) -> list[Path]:
    """The folders this API may read, resolved; 403 when none is configured."""
    roots = [Path(r).resolve() for r in svc.settings.api.ingest_roots]
    if not roots:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "folder ingest through the API is off: no folders are allowed "
            "(set AIOREID_API__INGEST_ROOTS)",
        )
    return roots


def _inside(path: Path, roots: list[Path]) -> bool:
    """Whether ``path`` with every symlink resolved lies in an allowed root."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a name the OS refuses
        return False
    return any(real.is_relative_to(r) for r in roots)


def _confined(items: list[dict], roots: list[Path]) -> list[dict]:
    """Items whose file resolves outside the allowed roots (a symlink pointing out) are
    refused by name instead of read."""
    return [
        item
        if "path" not in item or _inside(Path(item["path"]), roots)
        else {
            "name": str(item["path"]),
            "refused": "a link to a file outside the folders this API may read",
        }
        for item in items
    ]


@router.post(
    "/ingest/folder",
    response_model=JobCreated,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 404),
)
def ingest_folder(
    request: Request,
    body: FolderIngestRequest,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("operator")),
) -> JobCreated:
    """Ingest a server-side folder: a known dataset layout, or every image/video in it."""
    root = Path(body.path)
    roots = _roots(svc)
    if not _inside(root, roots):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"{body.path} is outside the folders this API may read"
        )
    if not root.is_dir():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such folder: {body.path}")
    if body.dataset:
        from aioreid.encoder.data.datasets import load_dataset

        try:
            ds = load_dataset(body.dataset, root)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise HTTPException(422, str(exc)) from None
        items, _ = dataset_items(ds.name, [*ds.train, *ds.query, *ds.gallery])
        opts = IngestOptions(detector="crops")
    else:
        exts = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)
        items = [
            {
                "path": p,
                "camera": body.camera,
                "modality": body.modality,
                "start_time": body.start_time,
            }
            for p in files
        ]
        opts = IngestOptions(detector=body.detector)
    items = _confined(items, roots)
    job_id = _start(request, svc, "folder", str(root), caller.actor, items, opts)
    return JobCreated(job_id=job_id, status="queued")


def _job_out(job: IngestJob, failures: list[JobFailure] | None = None) -> JobOut:
    return JobOut(
        id=job.id,
        kind=job.kind,
        source=job.source,
        status=job.status,
        total=job.total,
        processed=job.processed,
        failed=job.failed,
        created_by=job.created_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        failures=[JobFailureOut(item=f.item, reason=f.reason) for f in failures or []],
    )


@router.get("/jobs/{job_id}", response_model=JobOut, responses=error_responses(404))
def job(
    job_id: int = PathParam(ge=1, le=MAX_SMALL_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> JobOut:
    with svc.sessions() as s:
        row = s.get(IngestJob, job_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} does not exist")
        failures = list(s.scalars(select(JobFailure).where(JobFailure.job_id == job_id).limit(500)))
        sightings = s.scalar(
            select(func.count(Sighting.id)).join(Media).where(Media.job_id == job_id)
        )
        return _job_out(row, failures).model_copy(update={"sightings": int(sightings or 0)})


@router.get("/jobs", response_model=JobList)
def jobs(
    offset: int = Query(default=0, ge=0, le=MAX_ID),
    limit: int = Query(default=20, ge=1, le=200),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> JobList:
    with svc.sessions() as s:
        total = s.scalar(select(func.count()).select_from(IngestJob)) or 0
        rows = s.scalars(
            select(IngestJob).order_by(IngestJob.id.desc()).offset(offset).limit(limit)
        ).all()
        return JobList(items=[_job_out(r) for r in rows], offset=offset, limit=limit, total=total)
