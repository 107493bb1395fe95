"""Where ingest jobs run. The embedded profile runs them on one background thread of this
process (jobs queue up in order); the services profile hands them to Celery workers."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from aioreid.platform.db import crud
from aioreid.platform.pipeline.ingest import IngestOptions, ingest_many
from aioreid.platform.services import Services

log = logging.getLogger(__name__)


class JobRunner(Protocol):
    def submit(self, job_id: int, items: list[dict[str, Any]], options: IngestOptions) -> None:
        """Start (or queue) the job's items; progress is written to the job row."""
        ...


class InProcessRunner:
    """One worker thread; a crash in a job marks the job failed instead of vanishing.

    ``shutdown`` (the app's lifespan ending) waits for queued jobs; a later ``submit`` starts a
    fresh thread, so an app whose lifespan runs again (test clients, reloads) still ingests.
    """

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.futures: dict[int, Future] = {}

    def submit(self, job_id: int, items: list[dict[str, Any]], options: IngestOptions) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aioreid-ingest")
            self.futures[job_id] = self._pool.submit(self._run, job_id, items, options)

    def _run(self, job_id: int, items: list[dict[str, Any]], options: IngestOptions) -> None:
        try:
            ingest_many(self.svc, items, options=options, job_id=job_id, progress=False)
        except Exception as exc:  # the job must end in a state the user can see
            log.exception("ingest job %s crashed", job_id)
            with self.svc.sessions.begin() as s:
                crud.update_job_progress(s, job_id, status="failed", error=f"{exc}"[:2000])

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        fut = self.futures.get(job_id)
        if fut is not None:
            fut.result(timeout)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
