"""Ingest jobs and where they run.

A *job row* (``ingest_jobs``) is created here, by the platform, for every asynchronous ingest
(:func:`create_ingest_job`, :func:`start_ingest_job`); a *job runner* then runs the work of an
existing row and writes its progress there. The platform defines the runner interface
(:class:`JobRunner`) and the in-process runner; other runners (the Celery one lives in
``aioreid.workers``) are found by name through the ``aioreid.job_runners`` entry points, so the
platform never imports them. ``AIOREID_BROKER__RUNNER`` names the one a process uses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from importlib.metadata import EntryPoint, distributions
from typing import TYPE_CHECKING, Any, Protocol

from aioreid.platform.db import crud
from aioreid.platform.pipeline.ingest import IngestOptions, ingest_many

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from aioreid.platform.config import Settings
    from aioreid.platform.services import Services

log = logging.getLogger(__name__)

#: The entry-point group runners register under (pyproject.toml).
ENTRY_POINT_GROUP = "aioreid.job_runners"


class JobRunner(Protocol):
    """What the platform asks of a runner. Runners are classes built as
    ``Runner(settings, sessions, services)``; ``services`` is None where the caller has only
    a database (``aioreid ingest --async`` opens no index), and a runner that needs more says
    so readably (:class:`RunnerConfigError`)."""

    #: True when the work goes on after the submitting process exits (workers elsewhere), so
    #: a command line may submit and return; False for runners inside the calling process.
    detached: bool

    def submit(self, job_id: int, items: list[dict[str, Any]], options: IngestOptions) -> None:
        """Start (or queue) the items of an existing job row; progress is written to it."""
        ...

    def start_reindex(self, generation_id: int) -> None:
        """Build a started index generation (``reindex.start_reindex``) to its end, in the
        background; it resumes from its stored cursor if interrupted."""
        ...

    def shutdown(self) -> None:
        """Release what the runner holds (threads, broker connections); a later ``submit``
        may start them again."""
        ...


class RunnerConfigError(ValueError):
    """The configured runner is not installed, or cannot run where it was asked to."""


# --- job rows ---------------------------------------------------------------------------------


def create_ingest_job(
    sessions: sessionmaker[Session],
    *,
    kind: str,
    source: str = "",
    total: int = 0,
    actor: str | None = None,
) -> int:
    """A new ``queued`` job row; returns its id. Every asynchronous ingest starts here."""
    with sessions.begin() as s:
        return crud.create_job(s, kind=kind, source=source[:1024], total=total, created_by=actor).id


def start_ingest_job(
    runner: JobRunner,
    sessions: sessionmaker[Session],
    items: list[dict[str, Any]],
    options: IngestOptions,
    *,
    kind: str,
    source: str,
    actor: str | None = None,
) -> int:
    """Create the job row for ``items`` and hand them to ``runner``; returns the job id."""
    job_id = create_ingest_job(sessions, kind=kind, source=source, total=len(items), actor=actor)
    runner.submit(job_id, items, options)
    return job_id


# --- choosing a runner ------------------------------------------------------------------------


def runner_class(name: str) -> Callable[..., JobRunner]:
    """The runner class registered as ``name``; a readable error listing the installed ones
    otherwise (a typo in ``AIOREID_BROKER__RUNNER``, or a distribution installed without its
    entry points: ``pip install -e .`` registers them)."""
    runners = _registered()
    if name not in runners:
        raise RunnerConfigError(
            f"AIOREID_BROKER__RUNNER={name!r} names no installed job runner; installed: "
            f"{', '.join(sorted(runners)) or '(none: reinstall aio-reid to register them)'}"
        )
    return runners[name].load()


def _registered() -> dict[str, EntryPoint]:
    """Runner name → entry point, from every distribution on the path. Not importlib's
    ``entry_points()``, which keeps one distribution per name: a stale ``aio_reid.egg-info``
    in a source checkout (on ``sys.path`` as the working directory) would hide the installed
    metadata and its runners."""
    found: dict[str, EntryPoint] = {}
    for dist in distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                found.setdefault(ep.name, ep)
    return found


def build_runner(
    settings: Settings,
    sessions: sessionmaker[Session],
    services: Services | None = None,
) -> JobRunner:
    """The runner ``settings.broker.runner`` names, built for this process."""
    return runner_class(settings.broker.runner)(settings, sessions, services)


def detached_runner_class(name: str) -> Callable[..., JobRunner]:
    """The runner class ``name`` for a process that submits work and exits (``--async``
    commands); a runner inside this process is refused, since its work would die with the
    process. Checked before anything is opened, so a refusal leaves nothing behind."""
    cls = runner_class(name)
    if not getattr(cls, "detached", False):
        raise RunnerConfigError(
            f"queueing needs a runner with workers, but AIOREID_BROKER__RUNNER={name!r} runs "
            "jobs inside this process; set it to celery, or run the job here without --async"
        )
    return cls


# --- the in-process runner --------------------------------------------------------------------


class InProcessRunner:
    """Jobs on one worker thread of this process (they queue up in order); a crash in a job
    marks the job failed instead of vanishing. The embedded profile's runner.

    ``shutdown`` (the app's lifespan ending) waits for queued jobs; a later ``submit`` starts a
    fresh thread, so an app whose lifespan runs again (test clients, reloads) still ingests.
    """

    detached = False

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        services: Services | None = None,
    ) -> None:
        if services is None:
            raise RunnerConfigError(
                "the in-process job runner runs jobs in this process, which has no index or "
                "encoder open here; set AIOREID_BROKER__RUNNER to a runner with workers "
                "(e.g. celery)"
            )
        self.svc = services
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.futures: dict[int, Future] = {}
        self.reindexing: dict[int, threading.Thread] = {}

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

    def start_reindex(self, generation_id: int) -> None:
        # A daemon thread, not the ingest pool: a re-index must not wait behind ingest jobs,
        # and one interrupted by the process ending resumes from its stored cursor
        # (`aioreid reindex resume`), so shutdown need not wait for it.
        thread = threading.Thread(
            target=self._reindex,
            args=(generation_id,),
            name=f"aioreid-reindex-{generation_id}",
            daemon=True,
        )
        self.reindexing[generation_id] = thread
        thread.start()

    def _reindex(self, generation_id: int) -> None:
        from aioreid.platform.pipeline import reindex

        try:
            reindex.run_reindex(self.svc, generation_id)
        except Exception:  # nobody joins this thread: say why the generation stopped
            log.exception("re-index of generation %s stopped", generation_id)

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        fut = self.futures.get(job_id)
        if fut is not None:
            fut.result(timeout)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
