"""Ingest jobs through Celery: a real Redis (and RabbitMQ) broker, a worker started in the test
process, Postgres, a local-folder store, Qdrant Edge and a tiny encoder checkpoint given to
the workers the way deployments give theirs (AIOREID_ENCODER__CHECKPOINT).

The helpers here are shared with tests/test_workers_faults.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from brokers import require_rabbitmq, require_redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun, task_prerun
from platform_fixtures import TINY, jpeg, person_image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from aioreid.encoder.model import AIOModel
from aioreid.platform.config import Settings, get_settings
from aioreid.platform.db.models import IngestJob, JobFailure, Media, Sighting, Track
from aioreid.platform.index import SearchFilter
from aioreid.platform.pipeline.ingest import IngestOptions
from aioreid.platform.pipeline.job_runners import create_ingest_job
from aioreid.platform.pipeline.stages import cancel_job
from aioreid.platform.services import Services
from aioreid.workers.app import make_celery, worker_services
from aioreid.workers.celery_runner import CeleryRunner
from aioreid.workers.task_names import COMMIT_CHUNK, PREPARE_CHUNK

REDIS_URL = "redis://127.0.0.1:6379/11"
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"
PIPELINE_QUEUES = ["ingest", "encode", "index"]


# --- helpers (also used by test_workers_faults.py) ---------------------------------------------


def flush_redis(url: str) -> None:
    redis.Redis.from_url(url).flushdb()


def tiny_checkpoint(path: Path) -> Path:
    """A real (untrained) tiny checkpoint file, as a deployment would configure one."""
    return AIOModel(TINY).save(path)


def worker_env_vars(
    home: Path, db_url: str, broker_url: str, checkpoint: Path, **broker: Any
) -> dict[str, str]:
    env = {
        "AIOREID_HOME": str(home),
        "AIOREID_DATABASE__URL": db_url,
        "AIOREID_INDEX__BACKEND": "edge",
        "AIOREID_STORAGE__ROOT": str(home / "objects"),
        "AIOREID_ENCODER__CHECKPOINT": str(checkpoint),
        "AIOREID_ENCODER__DEVICE": "cpu",
        "AIOREID_ENCODER__BATCH_SIZE": "16",
        "AIOREID_BROKER__BROKER_URL": broker_url,
        "AIOREID_BROKER__RESULT_BACKEND": REDIS_URL,
        "AIOREID_BROKER__RUNNER": "celery",
    }
    env.update({f"AIOREID_BROKER__{k.upper()}": str(v) for k, v in broker.items()})
    return env


@contextmanager
def worker_settings(env: dict[str, str]) -> Iterator[Settings]:
    """Point this process's settings (and so ``worker_services()``) at ``env``; undone after."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        worker_services.cache_clear()
        try:
            yield get_settings()
        finally:
            if worker_services.cache_info().currsize:
                worker_services().close()
            worker_services.cache_clear()
            get_settings.cache_clear()


def submit_files(
    sessions: sessionmaker[Session],
    paths: list[Path],
    *,
    app: Celery,
    camera: str | None = None,
    options: IngestOptions | None = None,
    chunk_size: int | None = None,
) -> int:
    """A files job over ``paths`` sent to ``app``'s workers, as `aioreid ingest --async` does:
    the platform creates the job row, the Celery runner sends its work."""
    items = [{"path": p, "camera": camera} for p in paths]
    job_id = create_ingest_job(sessions, kind="files", source="test", total=len(items))
    runner = CeleryRunner(get_settings(), sessions, app=app, chunk_size=chunk_size)
    runner.submit(job_id, items, options or IngestOptions())
    return job_id


def submit_prefix(
    sessions: sessionmaker[Session],
    prefix: str,
    *,
    app: Celery,
    camera: str | None = None,
    chunk_size: int | None = None,
) -> int:
    """A job over the object-store keys under ``prefix`` (the workers count its items)."""
    job_id = create_ingest_job(sessions, kind="prefix", source=prefix)
    runner = CeleryRunner(get_settings(), sessions, app=app, chunk_size=chunk_size)
    runner.submit_prefix(
        job_id, prefix, IngestOptions(), defaults={"camera": camera} if camera else {}
    )
    return job_id


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class JobView:
    status: str
    total: int
    processed: int
    failed: int
    options: dict[str, Any]
    error: str | None
    started: bool
    finished: bool
    failures: dict[str, str] = field(default_factory=dict)


def job_view(svc: Services | sessionmaker[Session], job_id: int) -> JobView:
    sessions = svc.sessions if isinstance(svc, Services) else svc
    with sessions() as s:
        job = s.get(IngestJob, job_id)
        assert job is not None
        failures = s.execute(
            select(JobFailure.item, JobFailure.reason).where(JobFailure.job_id == job_id)
        ).all()
        return JobView(
            str(job.status),
            job.total,
            job.processed,
            job.failed,
            dict(job.options or {}),
            job.error,
            job.started_at is not None,
            job.finished_at is not None,
            dict(failures),  # type: ignore[arg-type]
        )


def wait_job(svc: Services | sessionmaker[Session], job_id: int, timeout: float = 60.0) -> JobView:
    return wait_for(
        lambda: (v := job_view(svc, job_id)).status in ("done", "failed", "cancelled") and v,
        timeout,
        f"job {job_id} to finish",
    )


def write_images(folder: Path, seeds: range, prefix: str = "p") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        path = folder / f"{prefix}{seed:04d}.jpg"
        path.write_bytes(jpeg(person_image(seed)))
        paths.append(path)
    return paths


def index_counts(svc: Services) -> dict[str, int]:
    """Sightings, distinct point ids, sighting points in the index, and sightings missing from
    it; tracks and their pooled points likewise."""
    with svc.sessions() as s:
        rows = s.scalar(select(func.count()).select_from(Sighting)) or 0
        points = list(s.scalars(select(Sighting.point_id)))
        tracks = s.scalar(select(func.count()).select_from(Track)) or 0
    found = svc.index.retrieve(svc.alias, points) if points else []
    return {
        "sightings": rows,
        "distinct_points": len(set(points)),
        "index_points": svc.index.count(svc.alias, SearchFilter(level="sighting")),
        "missing_from_index": len(set(points)) - len({p.id for p in found}),
        "tracks": tracks,
        "track_points": svc.index.count(svc.alias, SearchFilter(level="track")),
    }


def sightings_of(svc: Services, paths: list[Path]) -> list[str]:
    """Point ids of the sightings of these files (by their unique base names)."""
    names = [p.name for p in paths]
    with svc.sessions() as s:
        return list(
            s.scalars(
                select(Sighting.point_id)
                .join(Media, Media.id == Sighting.media_id)
                .where(Media.original_name.in_(names))
            )
        )


class TaskCounter:
    """Counts finished tasks by name (in-process workers only) and can slow one task down."""

    def __init__(self, slow: dict[str, float] | None = None) -> None:
        self.done: dict[str, int] = {}
        self.slow = slow or {}
        self._lock = threading.Lock()

    def _post(self, sender: Any = None, **_: Any) -> None:
        with self._lock:
            self.done[sender.name] = self.done.get(sender.name, 0) + 1

    def _pre(self, sender: Any = None, **_: Any) -> None:
        if sender.name in self.slow:
            time.sleep(self.slow[sender.name])

    def __enter__(self) -> TaskCounter:
        task_postrun.connect(self._post, weak=False)
        task_prerun.connect(self._pre, weak=False)
        return self

    def __exit__(self, *exc: object) -> None:
        task_postrun.disconnect(self._post)
        task_prerun.disconnect(self._pre)


@contextmanager
def embedded_worker(app: Celery, concurrency: int = 2) -> Iterator[None]:
    app.conf.include = ["aioreid.workers.tasks_ingest"]
    app.conf.broker_heartbeat = 0  # AMQP: no heartbeat thread to wait 10 s for at shutdown
    app.control.purge()
    with start_worker(
        app,
        pool="threads",
        concurrency=concurrency,
        perform_ping_check=False,
        queues=PIPELINE_QUEUES,
        shutdown_timeout=30,
        loglevel="WARNING",
    ):
        yield


# --- fixtures ----------------------------------------------------------------------------------


@dataclass
class Stack:
    settings: Settings
    svc: Services
    app: Celery
    files: Path


@pytest.fixture(scope="module")
def stack(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[Stack]:
    require_redis(REDIS_URL)
    home = tmp_path_factory.mktemp("celery-ingest")
    env = worker_env_vars(home, pg_url, REDIS_URL, tiny_checkpoint(home / "tiny.pt"), chunk_size=8)
    try:
        with worker_settings(env) as settings:
            svc = worker_services()  # the worker threads share this process's services
            svc.live()  # create the live collection once, before workers race to
            yield Stack(settings, svc, make_celery(settings), home / "files")
    finally:
        flush_redis(REDIS_URL)


@pytest.fixture()
def worker(stack: Stack) -> Iterator[Celery]:
    with embedded_worker(stack.app):
        yield stack.app


# --- tests -------------------------------------------------------------------------------------


def test_bulk_job_fans_out_and_indexes_every_image_once(stack: Stack, worker: Celery) -> None:
    svc = stack.svc
    good = write_images(stack.files / "bulk", range(40))
    broken = stack.files / "bulk" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(300))
    text = stack.files / "bulk" / "notes.jpg"
    text.write_bytes(b"this is not an image at all")
    before = index_counts(svc)

    job_id = submit_files(svc.sessions, [*good[:20], broken, *good[20:], text], app=worker)
    job = wait_job(svc, job_id)

    assert job.status == "done", job
    assert (job.total, job.processed, job.failed) == (42, 42, 2)
    assert job.options["chunks_total"] == 6 and job.options["chunks_done"] == list(range(6))
    assert job.started and job.finished and job.options["files_per_s"] > 0
    assert set(job.failures) == {"broken.jpg", "notes.jpg"}
    assert all("decodable" in why for why in job.failures.values()), job.failures
    points = sightings_of(svc, good)
    assert len(points) == len(set(points)) == 40
    after = index_counts(svc)
    assert after["sightings"] - before["sightings"] == 40
    assert after["index_points"] - before["index_points"] == 40
    assert after["distinct_points"] == after["sightings"] == after["index_points"]
    assert after["missing_from_index"] == 0

    # The same files again: a new job that indexes nothing new (the broken ones fail again).
    again = wait_job(svc, submit_files(svc.sessions, [*good, broken, text], app=worker))
    assert (again.status, again.processed, again.failed) == ("done", 42, 2)
    assert index_counts(svc) == after


def test_cancel_stops_the_remaining_chunks(stack: Stack, worker: Celery) -> None:
    svc = stack.svc
    files = write_images(stack.files / "cancel", range(100, 112))
    before = index_counts(svc)
    with TaskCounter(slow={PREPARE_CHUNK: 0.3}) as counter:
        job_id = submit_files(svc.sessions, files, app=worker, chunk_size=2)
        wait_for(
            lambda: len(job_view(svc, job_id).options.get("chunks_done", [])) >= 1,
            30,
            "the first chunk",
        )
        assert cancel_job(svc, job_id)
        # Every chain still runs to its end (skipping), so wait for all six commit tasks.
        wait_for(lambda: counter.done.get(COMMIT_CHUNK, 0) >= 6, 30, "chains")
    job = job_view(svc, job_id)
    done = job.options["chunks_done"]
    assert job.status == "cancelled" and job.finished
    assert 1 <= len(done) < job.options["chunks_total"] == 6
    assert job.processed == 2 * len(done) and job.failed == 0
    assert len(sightings_of(svc, files)) == 2 * len(done)
    assert index_counts(svc)["index_points"] - before["index_points"] == 2 * len(done)
    with svc.sessions() as s:
        stuck = s.scalar(select(func.count()).where(Media.status == "processing"))
    assert stuck == 0
    assert not cancel_job(svc, job_id)  # a finished job cannot be cancelled again


def test_prefix_job_over_object_store_keys(stack: Stack, worker: Celery) -> None:
    svc = stack.svc
    keys = [
        svc.store.put_bytes(jpeg(person_image(s)), kind="incoming", ext=".jpg")
        for s in range(200, 206)
    ]
    svc.store.put_bytes(b"camera dock, 2024-05-01", kind="incoming", ext=".txt")
    job_id = submit_prefix(svc.sessions, "incoming/", camera="dock", app=worker, chunk_size=4)
    job = wait_job(svc, job_id)
    assert (job.status, job.total, job.processed, job.failed) == ("done", 6, 6, 0)
    assert job.options["ignored"] == 1 and job.options["chunks_total"] == 2
    with svc.sessions() as s:
        media = s.scalars(select(Media).where(Media.job_id == job_id)).all()
        assert sorted(m.original_name for m in media) == sorted(k.rsplit("/", 1)[1] for k in keys)
        assert {m.camera.name for m in media} == {"dock"}
        assert {m.status for m in media} == {"done"}


def test_rabbitmq_broker_runs_a_job(stack: Stack) -> None:
    require_rabbitmq(RABBIT_URL)
    settings = stack.settings.model_copy(
        update={"broker": stack.settings.broker.model_copy(update={"broker_url": RABBIT_URL})}
    )
    app = make_celery(settings)
    files = write_images(stack.files / "rabbit", range(300, 305))
    try:
        with embedded_worker(app):
            job = wait_job(stack.svc, submit_files(stack.svc.sessions, files, app=app))
        assert (job.status, job.processed, job.failed) == ("done", 5, 0)
        assert len(sightings_of(stack.svc, files)) == 5
    finally:
        app.control.purge()
        app.close()


def test_cli_queues_follows_lists_and_cancels(stack: Stack, worker: Celery, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aioreid.platform.cli import app as cli

    run = CliRunner().invoke
    write_images(stack.files / "cli", range(400, 403))

    queued = run(cli, ["ingest", str(stack.files / "cli"), "--camera", "cli-cam", "--async"])
    assert queued.exit_code == 0, queued.output
    job_id = int(queued.stdout.split()[0])
    shown = run(cli, ["jobs", "show", str(job_id), "--follow", "--interval", "0.1"])
    assert shown.exit_code == 0, shown.output
    assert "status     done" in shown.output and "3/3 processed, 0 failed" in shown.output
    assert "files/s" in shown.output
    listed = run(cli, ["jobs"])
    assert listed.exit_code == 0 and f"{job_id}  files    done" in listed.output
    again = run(cli, ["jobs", "cancel", str(job_id)])
    assert again.exit_code == 2 and "already finished (done)" in again.output
    missing = run(cli, ["ingest", str(tmp_path / "nowhere"), "--async"])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
    unknown = run(cli, ["jobs", "show", "999999"])
    assert unknown.exit_code == 2 and "job 999999 does not exist" in unknown.output


def test_api_runner_sends_uploads_through_the_store(stack: Stack, worker: Celery) -> None:
    from datetime import datetime, timezone

    from aioreid.platform.api.app import create_app

    svc = stack.svc
    assert isinstance(create_app(svc).state.runner, CeleryRunner)  # AIOREID_BROKER__RUNNER
    start = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    items = [
        {
            "data": jpeg(person_image(s)),
            "name": f"up{s}.jpg",
            "camera": "upload",
            "start_time": start,
        }
        for s in range(450, 453)
    ]
    job_id = create_ingest_job(svc.sessions, kind="upload", total=len(items))
    runner = CeleryRunner(svc.settings, svc.sessions, svc, app=worker)
    runner.submit(job_id, items, IngestOptions(detector="crops"))
    job = wait_job(svc, job_id)
    assert (job.status, job.processed, job.failed) == ("done", 3, 0)
    with svc.sessions() as s:
        media = s.scalars(select(Media).where(Media.job_id == job_id)).all()
        assert sorted(m.original_name for m in media) == ["up450.jpg", "up451.jpg", "up452.jpg"]
        assert {m.start_time for m in media} == {start}
        times = s.scalars(
            select(Sighting.frame_time).where(Sighting.media_id.in_([m.id for m in media]))
        ).all()
    assert times == [start] * 3


def test_each_step_can_run_again_with_the_same_rows_and_points(stack: Stack) -> None:
    """What a redelivered task does: prepare, embed and commit twice give one row and one
    point per crop, and vectors from a replaced encoder are made again at commit."""
    import numpy as np

    from aioreid.platform.pipeline import ingest, stages
    from aioreid.platform.pipeline.ingest import IngestOptions

    svc = stack.svc
    opts = IngestOptions()
    files = write_images(stack.files / "steps", range(800, 803))
    tasks = stages.register_items(svc, [{"path": str(p)} for p in files], opts, None)
    ids = [t.media_id for t in tasks if t is not None]
    first = ingest.prepare(svc, ids, stages.options_from_dict(stages.options_to_dict(opts)))
    again = ingest.prepare(svc, ids, opts)  # claimed but not done: prepared again, identically
    assert first == again and len(first) == 3
    embedded = ingest.embed(svc, first)
    assert ingest.embed(svc, again) == embedded
    before = index_counts(svc)

    # Vectors made by another encoder version are not written: commit embeds again.
    stale = [
        {**embedded[0], "encoder": "retired@0+0", "vectors": ingest.pack_vectors(np.ones((1, 7)))}
    ]
    assert [r.status for r in ingest.commit(svc, stale)] == ["done"]
    results = ingest.commit(svc, embedded)
    assert [(r.status, r.sightings) for r in results] == [
        ("skipped", 0),  # applied by the stale delivery above
        ("done", 1),
        ("done", 1),
    ]
    # A second delivery of the same commit applies nothing again.
    assert [r.status for r in ingest.commit(svc, embedded)] == ["skipped"] * 3
    after = index_counts(svc)
    assert after["sightings"] - before["sightings"] == 3
    assert after["index_points"] - before["index_points"] == 3
    assert after["track_points"] - before["track_points"] == 3
    assert after["distinct_points"] == after["sightings"] and after["missing_from_index"] == 0
    point = embedded[0]["tracks"][0]["crops"][0]["point"]
    stored = svc.index.retrieve(svc.alias, [point], with_vectors=True)[0].vector
    assert np.allclose(stored, ingest.unpack_vectors(embedded[0])[0], atol=1e-6)
    # Malformed input is refused with a clear error and writes nothing.
    with pytest.raises(ingest.StageInputError, match="not a prepared media"):
        ingest.commit(svc, [{"media_id": "seven"}])
    with pytest.raises(stages.StageInputError, match="bad ingest options"):
        stages.options_from_dict({"detector": "crops", "bogus": 1})
    assert index_counts(svc) == after
