"""`aioreid jobs` and `aioreid ingest --async`: queue ingest jobs for the workers of the
configured job runner (``AIOREID_BROKER__RUNNER``, e.g. celery) and watch them. These commands
need the database and the broker only (no index, no encoder), so they run next to workers that
hold an embedded index.

    aioreid ingest /data/cam1 --camera cam1 --async    # prints the job id
    aioreid jobs                                      # latest jobs
    aioreid jobs show 12 --follow                     # progress bar until the job ends
    aioreid jobs cancel 12
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aioreid.platform.config import Profile, get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from aioreid.platform.db.models import IngestJob

jobs_app = typer.Typer(
    help="Ingest jobs: list, follow, cancel (run by Celery workers or the API).",
    invoke_without_command=True,
)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


@contextmanager
def _sessions() -> Iterator[sessionmaker[Session]]:
    from aioreid.platform.db.engine import engine_from_settings, session_factory
    from aioreid.platform.db.migrate import init_database

    settings = get_settings()
    if settings.profile is Profile.EMBEDDED:
        init_database(settings.database_url)
    engine = engine_from_settings(settings)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def media_files(paths: list[Path]) -> list[Path]:
    """The image and video files among ``paths``, folders walked; a missing path is an error."""
    from aioreid.platform.pipeline.frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    exts = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
            )
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return files


def submit_ingest(
    paths: list[Path],
    *,
    camera: str | None = None,
    modality: str = "rgb",
    detector: str = "crops",
    start_time: datetime | None = None,
    sample_fps: float = 5.0,
    actor: str = "cli",
) -> tuple[int, int]:
    """Queue a job over files and folders for the configured runner's workers; returns
    (job id, files).

    ``aioreid ingest --async`` calls this. The workers must see the same paths (a shared
    filesystem); they are sent as absolute paths. A runner inside this process (in-process)
    is refused: the command would exit before its job ran.
    """
    from aioreid.platform.pipeline.frames import SamplingOptions
    from aioreid.platform.pipeline.ingest import IngestOptions
    from aioreid.platform.pipeline.job_runners import detached_runner_class, start_ingest_job

    if modality not in ("rgb", "ir"):
        raise ValueError(f"modality must be rgb or ir, got {modality!r}")
    from aioreid.platform.pipeline.detect import build_detector

    build_detector(detector)  # an unknown name or unreadable ONNX model fails here, readably
    files = media_files(paths)
    if not files:
        raise ValueError("no image or video files found in " + ", ".join(map(str, paths)))
    opts = IngestOptions(detector=detector, sampling=SamplingOptions(sample_fps=sample_fps))
    settings = get_settings()
    # A runner inside this process is refused (RunnerConfigError, a ValueError) before the
    # database is touched.
    runner_cls = detached_runner_class(settings.broker.runner)
    items = [
        {"path": p, "camera": camera, "modality": modality, "start_time": start_time} for p in files
    ]
    source = ", ".join(map(str, files[:3])) + (" ..." if len(files) > 3 else "")
    with _sessions() as sessions:
        runner = runner_cls(settings, sessions)
        try:
            job_id = start_ingest_job(
                runner, sessions, items, opts, kind="files", source=source, actor=actor
            )
        finally:
            runner.shutdown()
    return job_id, len(files)


def ingest_async(
    paths: list[Path],
    camera: str | None,
    modality: str,
    detector: str,
    start_time: datetime | None,
    sample_fps: float,
) -> None:
    """Queue files or folders for the Celery workers and print the job id."""
    try:
        job_id, n = submit_ingest(
            paths,
            camera=camera,
            modality=modality,
            detector=detector,
            start_time=start_time,
            sample_fps=sample_fps,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(job_id)
    typer.echo(
        f"job {job_id}: {n} files queued; follow with `aioreid jobs show {job_id} -f`", err=True
    )


# --- reading jobs ------------------------------------------------------------------------------


def _rate(job: IngestJob) -> float | None:
    stored = (job.options or {}).get("files_per_s")
    if stored is not None:
        return float(stored)
    if job.started_at is None or not job.processed:
        return None
    seconds = (datetime.now(timezone.utc) - job.started_at).total_seconds()
    return job.processed / seconds if seconds > 0 else None


def _when(t: datetime | None) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S") if t is not None else "-"


def _line(job: IngestJob) -> str:
    rate = _rate(job)
    return (
        f"{job.id:>6}  {job.kind:<8} {job.status!s:<9} {job.processed:>6}/{job.total:<6} "
        f"{job.failed:>5} failed  {(f'{rate:.1f}/s' if rate else '-'):>8}  "
        f"{_when(job.created_at)}  {job.source[:40]}"
    )


def _get(sessions: sessionmaker[Session], job_id: int) -> IngestJob:
    from aioreid.platform.db.models import IngestJob

    with sessions() as s:
        job = s.get(IngestJob, job_id)
        if job is None:
            raise _fail(f"job {job_id} does not exist")
        s.expunge(job)
        return job


def _details(sessions: sessionmaker[Session], job: IngestJob, failures: int = 20) -> None:
    from sqlalchemy import select

    from aioreid.platform.db.models import JobFailure

    opts = job.options or {}
    rate = _rate(job)
    typer.echo(f"job {job.id} ({job.kind}) {job.source}")
    typer.echo(f"  status     {job.status}")
    typer.echo(f"  progress   {job.processed}/{job.total} processed, {job.failed} failed")
    if "chunks_total" in opts:
        done = len(opts.get("chunks_done") or [])
        typer.echo(f"  chunks     {done}/{opts['chunks_total']} of {opts.get('chunk_size')}")
    typer.echo(f"  created    {_when(job.created_at)} by {job.created_by or '-'}")
    typer.echo(f"  started    {_when(job.started_at)}")
    typer.echo(f"  finished   {_when(job.finished_at)}")
    if rate is not None:
        typer.echo(f"  throughput {rate:.2f} files/s")
    if job.error:
        typer.echo(f"  error      {job.error}")
    with sessions() as s:
        rows = s.execute(
            select(JobFailure.item, JobFailure.reason)
            .where(JobFailure.job_id == job.id)
            .order_by(JobFailure.id)
            .limit(failures + 1)
        ).all()
    for item, reason in rows[:failures]:
        typer.echo(f"  failed: {item}: {reason}")
    if len(rows) > failures:
        typer.echo(f"  ... more failures than the {failures} shown")


def follow(sessions: sessionmaker[Session], job_id: int, interval: float = 1.0) -> IngestJob:
    """A progress bar over the job until it is done, failed or cancelled; returns it then."""
    from tqdm.auto import tqdm

    from aioreid.platform.db.enums import JobStatus

    job = _get(sessions, job_id)
    bar = tqdm(total=job.total or None, desc=f"job {job_id}", unit="file")
    try:
        while True:
            bar.total = job.total or None
            bar.n = job.processed
            bar.set_postfix(status=str(job.status), failed=job.failed, refresh=False)
            bar.refresh()
            if JobStatus(job.status).terminal:
                return job
            time.sleep(interval)
            job = _get(sessions, job_id)
    finally:
        bar.close()


@jobs_app.callback()
def jobs_list_default(ctx: typer.Context) -> None:
    """Without a sub-command: the latest jobs."""
    if ctx.invoked_subcommand is None:
        jobs_list()


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="how many, newest first")] = 20,
) -> None:
    """The latest jobs: id, kind, status, progress, failures, throughput, created, source."""
    from sqlalchemy import select

    from aioreid.platform.db.models import IngestJob

    with _sessions() as sessions, sessions() as s:
        rows = s.scalars(select(IngestJob).order_by(IngestJob.id.desc()).limit(limit)).all()
        if not rows:
            typer.echo("no jobs")
        for job in rows:
            typer.echo(_line(job))


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[int, typer.Argument(help="job id")],
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="show a progress bar until the job ends")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.05, help="--follow: seconds between polls")
    ] = 1.0,
) -> None:
    """A job's progress, timings, throughput and failures; --follow waits for its end and
    exits 1 unless it finished ``done``."""
    with _sessions() as sessions:
        job = follow(sessions, job_id, interval) if follow_ else _get(sessions, job_id)
        _details(sessions, job)
    if follow_ and str(job.status) != "done":
        raise typer.Exit(code=1)


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[int, typer.Argument(help="job id")]) -> None:
    """Cancel a job: its chunks not yet started are skipped."""
    from aioreid.platform.db.errors import NotFoundError
    from aioreid.platform.pipeline.stages import cancel_job

    with _sessions() as sessions:
        try:
            cancelled = cancel_job(sessions, job_id)
        except NotFoundError as exc:
            raise _fail(str(exc)) from None
        job = _get(sessions, job_id)
    if not cancelled:
        raise _fail(f"job {job_id} already finished ({job.status})")
    typer.echo(f"job {job_id} cancelled at {job.processed}/{job.total}")


def register(app: typer.Typer) -> None:
    """Add ``jobs`` (list, show, cancel) to the `aioreid` command."""
    app.add_typer(jobs_app, name="jobs")
