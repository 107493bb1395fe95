"""Submit ingest jobs to Celery workers (the services profile's :class:`JobRunner`).

The API and the CLI only write the job row and send ``aioreid.ingest.run_job`` by name, so
they never import the pipeline's heavy parts or need a worker's code. Items must be readable
by the workers: local paths are made absolute (the workers share the filesystem) and uploaded
bytes are put in the object store first, so no message carries file contents.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from aioreid.platform.db import crud
from aioreid.platform.pipeline.ingest import IngestOptions
from aioreid.platform.pipeline.stages import cancel_job, options_to_dict

if TYPE_CHECKING:
    from celery import Celery

    from aioreid.platform.services import Services
    from aioreid.platform.storage import ObjectStore

RUN_JOB = "aioreid.ingest.run_job"

__all__ = ["RUN_JOB", "CeleryRunner", "cancel_job", "portable_item", "submit_files"]


def _default_app() -> Celery:
    from aioreid.workers.app import app

    return app


def portable_item(item: dict[str, Any], store: ObjectStore | None = None) -> dict[str, Any]:
    """An ingest item as JSON a worker on another machine can use.

    ``path`` becomes an absolute string, ``start_time`` ISO 8601, and ``data`` bytes are
    stored (content-addressed, as the media itself will be) and replaced by their ``key``.
    """
    out = {k: v for k, v in item.items() if v is not None}
    if "data" in out:
        if store is None:
            raise ValueError("uploaded bytes need an object store to travel to the workers")
        name = str(out.get("name") or "upload")
        ext = Path(name).suffix.lower()
        out["key"] = store.put_bytes(out.pop("data"), kind="media", ext=ext)
        out["name"] = name
    if "path" in out:
        out["path"] = str(Path(out["path"]).resolve())
    if isinstance(out.get("start_time"), datetime):
        out["start_time"] = out["start_time"].isoformat()
    return out


def send_job(
    app: Celery,
    job_id: int,
    *,
    items: Sequence[dict[str, Any]] | None = None,
    options: IngestOptions | None = None,
    prefix: str | None = None,
    defaults: dict[str, Any] | None = None,
    chunk_size: int | None = None,
    sessions: sessionmaker[Session] | None = None,
) -> None:
    """Send the fan-out task for an existing job row (marked failed, when ``sessions`` is
    given, if the broker refuses the message)."""
    kwargs: dict[str, Any] = {"options": options_to_dict(options or IngestOptions())}
    if prefix is not None:
        kwargs |= {"prefix": prefix, "defaults": defaults or {}}
    else:
        kwargs["items"] = list(items or [])
    if chunk_size is not None:
        kwargs["chunk_size"] = chunk_size
    try:
        app.send_task(RUN_JOB, args=[job_id], kwargs=kwargs)
    except Exception as exc:  # the broker is unreachable: say so on the job, not only here
        if sessions is not None:
            with sessions.begin() as s:
                crud.update_job_progress(
                    s, job_id, status="failed", error=f"could not queue the job: {exc}"[:2000]
                )
        raise


class CeleryRunner:
    """:class:`~aioreid.platform.pipeline.runner.JobRunner` over Celery: progress, failures and
    the end of the job are written to the job row by the workers."""

    def __init__(self, svc: Services, app: Celery | None = None) -> None:
        self.svc = svc
        self.app = app or _default_app()

    def submit(self, job_id: int, items: list[dict[str, Any]], options: IngestOptions) -> None:
        portable = [portable_item(i, self.svc.store) for i in items]
        send_job(self.app, job_id, items=portable, options=options, sessions=self.svc.sessions)

    def submit_prefix(
        self,
        job_id: int,
        prefix: str,
        options: IngestOptions,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        """Ingest every media key under ``prefix`` in the object store."""
        send_job(
            self.app,
            job_id,
            prefix=prefix,
            options=options,
            defaults=defaults,
            sessions=self.svc.sessions,
        )


def submit_files(
    sessions: sessionmaker[Session],
    paths: Sequence[str | Path],
    *,
    camera: str | None = None,
    modality: str = "rgb",
    start_time: datetime | None = None,
    options: IngestOptions | None = None,
    actor: str = "cli",
    app: Celery | None = None,
    chunk_size: int | None = None,
) -> int:
    """Create a job over local files (readable by the workers) and queue it; returns its id."""
    items = [
        portable_item({"path": p, "camera": camera, "modality": modality, "start_time": start_time})
        for p in paths
    ]
    source = ", ".join(str(p) for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
    with sessions.begin() as s:
        job_id = crud.create_job(
            s, kind="files", source=source[:1024], total=len(items), created_by=actor
        ).id
    send_job(
        app or _default_app(),
        job_id,
        items=items,
        options=options,
        chunk_size=chunk_size,
        sessions=sessions,
    )
    return job_id


def submit_prefix(
    sessions: sessionmaker[Session],
    prefix: str,
    *,
    camera: str | None = None,
    modality: str = "rgb",
    options: IngestOptions | None = None,
    actor: str = "cli",
    app: Celery | None = None,
    chunk_size: int | None = None,
) -> int:
    """Create a ``prefix`` job over the object-store keys under ``prefix``; returns its id."""
    from aioreid.platform.storage.base import validate_prefix

    validate_prefix(prefix)
    defaults = {k: v for k, v in {"camera": camera, "modality": modality}.items() if v}
    with sessions.begin() as s:
        job_id = crud.create_job(s, kind="prefix", source=prefix or "(all)", created_by=actor).id
    send_job(
        app or _default_app(),
        job_id,
        prefix=prefix,
        options=options,
        defaults=defaults,
        chunk_size=chunk_size,
        sessions=sessions,
    )
    return job_id
