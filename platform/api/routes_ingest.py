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

from aioreid.platform.api.deps import Caller, get_services, require_key
from aioreid.platform.api.schemas import (
    MAX_ID,
    MAX_SMALL_ID,
    FolderIngestRequest,
    JobCreated,
    JobFailureOut,
    JobList,
    JobOut,
)
from aioreid.platform.api.uploads import read_upload
from aioreid.platform.db import crud
from aioreid.platform.db.models import IngestJob, JobFailure
from aioreid.platform.pipeline.datasets import dataset_items
from aioreid.platform.pipeline.frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from aioreid.platform.pipeline.ingest import IngestOptions
from aioreid.platform.services import Services

router = APIRouter(prefix="/v1", tags=["ingest"])
MAX_FILES = 1000


def _start(request: Request, svc: Services, kind: str, source: str, actor: str, items, opts) -> int:  # type: ignore[no-untyped-def]
    with svc.sessions.begin() as s:
        job_id = crud.create_job(s, kind=kind, source=source, total=len(items), created_by=actor).id
    request.app.state.runner.submit(job_id, items, opts)
    return job_id


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
)
def ingest_upload(
    request: Request,
    files: list[UploadFile] = File(description="images or videos"),
    camera: str | None = Form(default=None),
    modality: Literal["rgb", "ir"] = Form(default="rgb"),
    detector: Literal["crops", "background", "hog"] = Form(default="crops"),
    start_time: datetime | None = Form(default=None),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_key),
) -> JobCreated:
    """Upload files and start an ingest job over them."""
    if len(files) > MAX_FILES:
        raise HTTPException(413, f"at most {MAX_FILES} files per request")
    limit = int(svc.settings.api.max_upload_mb * 1024 * 1024)
    items = [
        {
            # An empty file fails alone, by name, in the job; the rest of the batch ingests.
            "data": read_upload(f, limit, field=f.filename or "file", allow_empty=True),
            "name": f.filename or "upload.jpg",
            "camera": camera,
            "modality": modality,
            "start_time": start_time,
        }
        for f in files
    ]
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


def _allowed(svc: Services, path: Path) -> bool:
    roots = svc.settings.api.ingest_roots or [Path.cwd()]
    real = path.resolve()
    return any(real.is_relative_to(Path(r).resolve()) for r in roots)


@router.post("/ingest/folder", response_model=JobCreated, status_code=status.HTTP_202_ACCEPTED)
def ingest_folder(
    request: Request,
    body: FolderIngestRequest,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_key),
) -> JobCreated:
    """Ingest a server-side folder: a known dataset layout, or every image/video in it."""
    root = Path(body.path)
    if not _allowed(svc, root):
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


@router.get("/jobs/{job_id}", response_model=JobOut)
def job(
    job_id: int = PathParam(ge=1, le=MAX_SMALL_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_key),
) -> JobOut:
    with svc.sessions() as s:
        row = s.get(IngestJob, job_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} does not exist")
        failures = list(s.scalars(select(JobFailure).where(JobFailure.job_id == job_id).limit(500)))
        return _job_out(row, failures)


@router.get("/jobs", response_model=JobList)
def jobs(
    offset: int = Query(default=0, ge=0, le=MAX_ID),
    limit: int = Query(default=20, ge=1, le=200),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_key),
) -> JobList:
    with svc.sessions() as s:
        total = s.scalar(select(func.count()).select_from(IngestJob)) or 0
        rows = s.scalars(
            select(IngestJob).order_by(IngestJob.id.desc()).offset(offset).limit(limit)
        ).all()
        return JobList(items=[_job_out(r) for r in rows], offset=offset, limit=limit, total=total)
