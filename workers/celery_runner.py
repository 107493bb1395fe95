"""The Celery job runner (``AIOREID_BROKER__RUNNER=celery``, the services profile).

The platform finds :class:`CeleryRunner` through the ``aioreid.job_runners`` entry point and
uses it as its :class:`~aioreid.platform.pipeline.job_runners.JobRunner`: the platform writes
the job row, the runner only sends work for it, by task name (the tasks' code runs on the
workers). Items must be readable by the workers: local paths are made absolute (the workers
share the filesystem) and uploaded bytes are put in the object store first, so no message
carries file contents.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from aioreid.platform.db import crud
from aioreid.platform.pipeline.ingest import IngestOptions
from aioreid.platform.pipeline.stages import options_to_dict
from aioreid.workers.task_names import REINDEX, RUN_JOB

if TYPE_CHECKING:
    from celery import Celery

    from aioreid.platform.config import Settings
    from aioreid.platform.services import Services
    from aioreid.platform.storage import ObjectStore

__all__ = ["CeleryRunner", "portable_item", "send_job"]


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
    """:class:`~aioreid.platform.pipeline.job_runners.JobRunner` over Celery: progress,
    failures and the end of the job are written to the job row by the workers.

    ``app`` defaults to a Celery app for ``settings`` (closed by :meth:`shutdown`);
    ``chunk_size`` overrides ``broker.chunk_size`` for the jobs this runner sends.
    """

    detached = True

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        services: Services | None = None,
        *,
        app: Celery | None = None,
        chunk_size: int | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.services = services
        self._owns_app = app is None
        if app is None:
            from aioreid.workers.app import make_celery

            app = make_celery(settings)
        self.app = app
        self.chunk_size = chunk_size
        self._store: ObjectStore | None = services.store if services is not None else None

    def _object_store(self) -> ObjectStore:
        # Only uploaded bytes need the store; a caller without services (the CLI) sends paths.
        if self._store is None:
            from aioreid.platform.storage import build_store

            self._store = build_store(self.settings)
        return self._store

    def submit(self, job_id: int, items: list[dict[str, Any]], options: IngestOptions) -> None:
        store = self._object_store() if any("data" in i for i in items) else None
        portable = [portable_item(i, store) for i in items]
        send_job(
            self.app,
            job_id,
            items=portable,
            options=options,
            chunk_size=self.chunk_size,
            sessions=self.sessions,
        )

    def submit_prefix(
        self,
        job_id: int,
        prefix: str,
        options: IngestOptions,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        """Ingest every media key under ``prefix`` in the object store (a ``prefix`` job row:
        the workers count its items)."""
        from aioreid.platform.storage.base import validate_prefix

        validate_prefix(prefix)
        send_job(
            self.app,
            job_id,
            prefix=prefix,
            options=options,
            defaults=defaults,
            chunk_size=self.chunk_size,
            sessions=self.sessions,
        )

    def start_reindex(self, generation_id: int) -> None:
        """Queue the re-index chain; its tasks step the generation and re-queue themselves."""
        self.app.send_task(REINDEX, args=[generation_id])

    def shutdown(self) -> None:
        # Release the broker connections of an app this runner made; Celery opens new ones if
        # the runner is used again (an API whose lifespan runs again).
        if self._owns_app:
            self.app.close()
