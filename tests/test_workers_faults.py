"""Ingest jobs survive faults: workers killed mid-job (SIGKILL of the pool child, then of the
whole worker), an object store that is unreachable for a while, malformed files and
malformed messages. Real Redis broker, real worker subprocesses for the kills."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest
import redis
from brokers import require_redis
from celery import Celery
from celery.signals import task_retry
from pg import require_postgres, temporary_postgres_database
from platform_fixtures import jpeg, make_settings, person_image, write_walkers_video
from sqlalchemy import func, select
from test_storage import s3_endpoint  # noqa: F401  (module-scoped moto S3 server fixture)
from test_workers_ingest import (
    embedded_worker,
    flush_redis,
    index_counts,
    job_view,
    sightings_of,
    submit_files,
    tiny_checkpoint,
    wait_for,
    wait_job,
    worker_env_vars,
    worker_settings,
    write_images,
)

from aioreid.encoder.inference import Encoder
from aioreid.platform.db.engine import engine_from_settings, session_factory
from aioreid.platform.db.migrate import upgrade
from aioreid.platform.db.models import Media, Sighting, Track
from aioreid.platform.pipeline import stages
from aioreid.platform.pipeline.frames import SamplingOptions
from aioreid.platform.pipeline.ingest import IngestOptions, ingest_file
from aioreid.platform.services import Services
from aioreid.workers.app import make_celery, worker_services
from aioreid.workers.task_names import COMMIT_CHUNK, PREPARE_CHUNK, RUN_JOB

REDIS_URL = "redis://127.0.0.1:6379/12"
ROOT = Path(__file__).resolve().parents[1]


def _queued(url: str) -> int:
    """Messages waiting in the pipeline queues plus those delivered but not acknowledged."""
    r = redis.Redis.from_url(url)
    return sum(r.llen(q) for q in ("ingest", "encode", "index")) + r.hlen("unacked")


# --- (a) workers killed mid-job ----------------------------------------------------------------


def _start_worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "aioreid.workers.app",
        "worker",
        "-Q",
        "ingest,encode,index",
        "-c",
        "1",
        "-P",
        "prefork",
        "-n",
        f"{name}@%h",
        "-l",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **env, "OMP_NUM_THREADS": "1"},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: SIGKILL reaches the pool child too
    )
    wait_for(lambda: b" ready." in log.read_bytes() or proc.poll() is not None, 60, name)
    assert proc.poll() is None, log.read_text()[-3000:]
    return proc


def _kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            _kill_group(proc)


@contextlib.contextmanager
def _worker_pool(log: Path, r: redis.Redis) -> Iterator[list[subprocess.Popen]]:
    """The workers a test starts: stopped (and the broker emptied) however the test ends; an
    assertion that fails carries the workers' log tail."""
    procs: list[subprocess.Popen] = []
    try:
        yield procs
    except AssertionError as exc:
        tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
        raise AssertionError(f"{exc}\n--- worker log ---\n{tail}") from None
    finally:
        for p in procs:
            _stop(p)
        r.flushdb()


def test_killed_workers_lose_and_duplicate_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_redis(REDIS_URL)
    require_postgres()
    files = write_images(tmp_path / "files", range(500, 530))
    with temporary_postgres_database() as db_url:
        upgrade(db_url)
        env = worker_env_vars(
            tmp_path / "home",
            db_url,
            REDIS_URL,
            tiny_checkpoint(tmp_path / "tiny.pt"),
            chunk_size=2,
            visibility_timeout_s=3,
            retry_backoff_s=0.3,
        )
        r = redis.Redis.from_url(REDIS_URL)
        r.flushdb()
        with _worker_pool(tmp_path / "workers.log", r) as procs:
            with worker_settings(env) as settings:
                engine = engine_from_settings(settings)  # no index here: the worker owns it
                sessions = session_factory(engine)
                log = tmp_path / "workers.log"
                procs.append(_start_worker(env, "first", log))
                app = make_celery(settings)
                job_id = submit_files(sessions, files, app=app)

                def chunks() -> int:
                    return len(job_view(sessions, job_id).options.get("chunks_done", []))

                # 1. SIGKILL the pool child while it runs a task; the parent requeues it.
                wait_for(lambda: chunks() >= 2 and r.hlen("unacked") >= 1, 60, "chunks")
                child = psutil.Process(procs[0].pid).children()[0]
                child.send_signal(signal.SIGKILL)
                killed = 1
                # 2. SIGKILL the whole worker; its unacknowledged tasks wait for the
                # visibility timeout, then the next worker gets them.
                try:
                    wait_for(lambda: chunks() >= 6 and r.hlen("unacked") >= 1, 30, "chunks")
                except AssertionError:  # a stalled replacement child: the kill still counts
                    print("note: the first worker stalled after its pool child was killed")
                _kill_group(procs[0])
                killed += r.hlen("unacked")
                done_at_kill = chunks()
                assert job_view(sessions, job_id).status == "running"
                time.sleep(settings.broker.visibility_timeout_s + 0.5)
                procs.append(_start_worker(env, "second", log))
                job = wait_job(sessions, job_id, timeout=90)
                _stop(procs[1])
                engine.dispose()
            with worker_settings(env):
                svc = worker_services()
                counts = index_counts(svc)
                points = sightings_of(svc, files)
                with svc.sessions() as s:
                    media_done = s.scalar(select(func.count()).where(Media.status == "done"))
    with capsys.disabled():
        print(
            f"\n[kill test] tasks killed: {killed} (chunks done at the worker kill: "
            f"{done_at_kill}/15); sightings expected: {len(files)}, sightings indexed: "
            f"{counts['index_points']}, rows: {counts['sightings']}, duplicate point ids: "
            f"{counts['sightings'] - counts['distinct_points']}, duplicate points: "
            f"{counts['index_points'] - counts['distinct_points']}, job processed/failed: "
            f"{job.processed}/{job.failed}"
        )
    assert killed >= 2
    assert (job.status, job.processed, job.failed) == ("done", 30, 0)
    assert job.options["chunks_done"] == list(range(15))
    assert len(points) == len(set(points)) == 30 and media_done == 30
    assert counts == {
        "sightings": 30,
        "distinct_points": 30,
        "index_points": 30,
        "missing_from_index": 0,
        "tracks": 30,  # each image is a one-frame track with a pooled point
        "track_points": 30,
    }
    assert not job.failures


def _video_outcome(svc: Services, media_id: int) -> tuple[list, list, dict]:
    with svc.sessions() as s:
        tracks = [
            (t.number, t.first_frame, t.last_frame, t.frames, t.boxes, t.point_id)
            for t in s.scalars(
                select(Track).where(Track.media_id == media_id).order_by(Track.number)
            )
        ]
        sightings = sorted(
            (r.point_id, r.frame_index, r.box_x, r.box_y, r.box_w, r.box_h)
            for r in s.scalars(select(Sighting).where(Sighting.media_id == media_id))
        )
    points = {p.id: p.vector for p in svc.index.scroll(svc.alias)}
    return tracks, sightings, points


def test_a_worker_killed_mid_video_resumes_to_the_uninterrupted_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL a worker while it is in the middle of a video: a new worker resumes the video
    from its last committed window, and the job ends with exactly the tracks, sightings and
    points an uninterrupted run gives."""
    require_redis(REDIS_URL)
    require_postgres()
    video = tmp_path / "files" / "hall.mp4"
    video.parent.mkdir(parents=True)
    write_walkers_video(video, frames=150, fps=10)
    options = IngestOptions(
        detector="background",
        sampling=SamplingOptions(sample_fps=10, dedup_threshold=0.0),
        frames_in_flight=12,
    )
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt")
    reference = Services.from_settings(
        make_settings(tmp_path / "reference", None),
        encoder=Encoder.load(checkpoint, device="cpu"),
    )
    ref = ingest_file(reference, video, camera="hall", options=options)
    assert ref.status == "done" and ref.tracks == 3
    expected = _video_outcome(reference, ref.media_id)
    reference.close()

    with temporary_postgres_database() as db_url:
        upgrade(db_url)
        env = worker_env_vars(
            tmp_path / "home", db_url, REDIS_URL, checkpoint, visibility_timeout_s=3
        )
        r = redis.Redis.from_url(REDIS_URL)
        r.flushdb()
        with _worker_pool(tmp_path / "workers.log", r) as procs:
            with worker_settings(env) as settings:
                engine = engine_from_settings(settings)
                sessions = session_factory(engine)

                def window() -> int:
                    with sessions() as s:
                        media = s.scalars(select(Media)).first()
                        return int(((media and media.progress) or {}).get("window", 0))

                log = tmp_path / "workers.log"
                procs.append(_start_worker(env, "first", log))
                app = make_celery(settings)
                job_id = submit_files(sessions, [video], camera="hall", options=options, app=app)
                wait_for(lambda: window() >= 4 and r.hlen("unacked") >= 1, 90, "window 4")
                _kill_group(procs[0])
                killed_at = window()
                assert 4 <= killed_at < 13 and job_view(sessions, job_id).status == "running"
                time.sleep(settings.broker.visibility_timeout_s + 0.5)
                procs.append(_start_worker(env, "second", log))
                job = wait_job(sessions, job_id, timeout=120)
                _stop(procs[1])
                engine.dispose()
            with worker_settings(env):
                svc = worker_services()
                with svc.sessions() as s:
                    media_id = s.scalars(select(Media.id)).one()
                got = _video_outcome(svc, media_id)
    with capsys.disabled():
        print(
            f"\n[video kill test] worker killed after window {killed_at} of 13; tracks "
            f"{len(got[0])}/{len(expected[0])}, sightings {len(got[1])}/{len(expected[1])}, "
            f"points {len(got[2])}/{len(expected[2])}"
        )
    assert (job.status, job.processed, job.failed) == ("done", 1, 0)
    assert got[0] == expected[0] and got[1] == expected[1]
    assert sorted(got[2]) == sorted(expected[2])
    for pid, vector in expected[2].items():
        np.testing.assert_allclose(got[2][pid], vector, atol=1e-5)


# --- (b), (c) with an in-process worker, MinIO (moto) behind a proxy that can go down ----------


class FlakyProxy:
    """A TCP forwarder to ``target`` that can be taken down (connections refused or cut)."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.up()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def up(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        srv.settimeout(0.05)
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, args=(srv,), daemon=True)
        self._thread.start()

    def down(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            for c in self._conns:
                c.close()
            self._conns.clear()

    def _accept(self, srv: socket.socket) -> None:
        with srv:
            while not self._stop.is_set():
                try:
                    client, _ = srv.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                upstream = socket.create_connection(self.target)
                with self._lock:
                    self._conns |= {client, upstream}
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for c in (src, dst):
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)


@dataclass
class Minio:
    proxy: FlakyProxy
    svc: Services
    app: Celery
    files: Path


@pytest.fixture(scope="module")
def minio_stack(
    pg_url: str,
    s3_endpoint: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    one_torch_thread: None,
) -> Iterator[Minio]:
    require_redis(REDIS_URL)
    home = tmp_path_factory.mktemp("celery-faults")
    proxy = FlakyProxy(s3_endpoint)
    env = worker_env_vars(
        home,
        pg_url,
        REDIS_URL,
        tiny_checkpoint(home / "tiny.pt"),
        chunk_size=3,
        retry_backoff_s=0.25,
        task_max_retries=8,
    )
    env |= {
        "AIOREID_STORAGE__BACKEND": "minio",
        "AIOREID_STORAGE__ENDPOINT": proxy.endpoint,
        "AIOREID_STORAGE__BUCKET": "faults",
        "AIOREID_STORAGE__ACCESS_KEY": "testing",
        "AIOREID_STORAGE__SECRET_KEY": "testing",
        "AIOREID_STORAGE__TIMEOUT_S": "1",
    }
    try:
        with worker_settings(env) as settings:
            svc = worker_services()
            svc.live()
            yield Minio(proxy, svc, make_celery(settings), home / "files")
    finally:
        proxy.down()
        flush_redis(REDIS_URL)


@pytest.fixture()
def minio_worker(minio_stack: Minio) -> Iterator[Celery]:
    with embedded_worker(minio_stack.app):
        yield minio_stack.app


def test_store_outage_is_retried_until_the_store_returns(
    minio_stack: Minio, minio_worker: Celery
) -> None:
    svc, proxy = minio_stack.svc, minio_stack.proxy
    files = write_images(minio_stack.files / "outage", range(600, 606))
    retries: list[str] = []

    def on_retry(request: object = None, reason: object = None, **_: object) -> None:
        retries.append(str(reason))

    task_retry.connect(on_retry, weak=False)
    proxy.down()
    try:
        job_id = submit_files(svc.sessions, files, app=minio_worker)
        wait_for(lambda: len(retries) >= 3, 30, "retries while the store is down")
        assert job_view(svc, job_id).status == "running"
    finally:
        proxy.up()
        task_retry.disconnect(on_retry)
    job = wait_job(svc, job_id, timeout=60)
    assert (job.status, job.processed, job.failed) == ("done", 6, 0), job
    assert not job.failures
    assert any("StorageUnavailable" in r or "cannot reach" in r for r in retries), retries
    points = sightings_of(svc, files)
    assert len(points) == len(set(points)) == 6
    assert len(svc.index.retrieve(svc.alias, points)) == 6
    with svc.sessions() as s:
        crops = s.scalars(select(Sighting.object_key).where(Sighting.point_id.in_(points)))
        assert all(svc.store.exists(k) for k in crops)  # written through the proxy once it was up


def test_malformed_files_and_messages_are_recorded_and_acknowledged(
    minio_stack: Minio, minio_worker: Celery, tmp_path: Path
) -> None:
    svc, app = minio_stack.svc, minio_worker
    good = write_images(minio_stack.files / "mixed", range(700, 708))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg(person_image(799))[:40])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("not media")
    missing = tmp_path / "gone.jpg"
    bad = [truncated, empty, text, missing]

    job = wait_job(svc, submit_files(svc.sessions, [*good[:4], *bad, *good[4:]], app=app))
    assert (job.status, job.processed, job.failed) == ("done", 12, 4), job
    failed_items = {Path(k).name: v for k, v in job.failures.items()}
    assert set(failed_items) == {"truncated.jpg", "empty.jpg", "notes.txt", "gone.jpg"}
    assert "empty file" in failed_items["empty.jpg"]
    assert "unsupported media type" in failed_items["notes.txt"]
    assert "No such file" in failed_items["gone.jpg"]
    assert len(set(sightings_of(svc, good))) == 8

    # Malformed messages: each is recorded where it can be and acknowledged, never retried.
    with svc.sessions.begin() as s:
        from aioreid.platform.db import crud

        bad_options_job = crud.create_job(s, kind="files", total=1).id
        bad_chunk_job = crud.create_job(s, kind="files", total=1).id
    stages.plan_chunks(svc, bad_chunk_job, 1, {}, total=1)
    app.send_task(PREPARE_CHUNK, args=["not a chunk"])
    app.send_task(
        RUN_JOB,
        args=[bad_options_job],
        kwargs={"items": [{"path": str(good[0])}], "options": {"detector": "crops", "bogus": 1}},
    )
    chunk = {"job_id": bad_chunk_job, "chunk": 0, "items": [{"path": "x.jpg"}]}
    app.send_task(COMMIT_CHUNK, args=[{**chunk, "prepared": [{"media_id": "seven"}]}])

    failed = wait_job(svc, bad_options_job, timeout=30)
    assert failed.status == "failed" and "bogus" in (failed.error or "")
    poisoned = wait_job(svc, bad_chunk_job, timeout=30)
    assert (poisoned.status, poisoned.processed, poisoned.failed) == ("done", 1, 1)
    assert any("not a prepared media" in why for why in poisoned.failures.values())
    # The queue moved on: a good job after them completes, and nothing is left unacknowledged.
    after = wait_job(svc, submit_files(svc.sessions, good[:2], app=app), timeout=30)
    assert after.status == "done"
    wait_for(lambda: _queued(REDIS_URL) == 0, 10, "an empty queue")
