"""Bulk ingestion throughput: in-process (``ingest_many``) against Celery workers.

    python benchmarks/bench_celery_ingest.py [--files 300] [--world DIR] [--checkpoint CKPT]

The same N files (a synthetic world's Market-1501 layout, generated unless ``--world`` is
given) are ingested three times, each into a fresh Postgres database, local-folder store and
Qdrant Edge index:

* ``in_process``: ``ingest_many`` in this process (one torch thread);
* ``celery_1``: one worker subprocess consuming the ingest, encode and index queues;
* ``celery_2``: that worker plus a second worker subprocess on the ingest queue only.

Qdrant Edge (like qdrant-client's local mode) is a single-process index and no Qdrant server
runs here, so encode and commit stay in the one worker that owns the index; only ``prepare``
(read, decode, crop, store crops) scales to the second process. With a Qdrant server every
queue scales. Workers use one torch thread each, Redis db 13 as the broker; each run is timed
from submission to the job's ``done``, after a warm-up job on other files (worker start-up
and model loading are not counted). The encoder defaults to an untrained tiny checkpoint, so
the figures measure the pipeline and the queueing, not the model.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = Path(__file__).parent / "results" / "celery_ingest.json"
PG_ADMIN = os.environ.get(
    "AIOREID_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BROKER = "redis://127.0.0.1:6379/13"


@contextmanager
def temp_database() -> Iterator[str]:
    from aioreid.platform.db.migrate import upgrade

    name = f"aioreid_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def env_for(home: Path, db_url: str, checkpoint: Path, chunk: int) -> dict[str, str]:
    return {
        "AIOREID_HOME": str(home),
        "AIOREID_DATABASE__URL": db_url,
        "AIOREID_INDEX__BACKEND": "edge",
        "AIOREID_STORAGE__ROOT": str(home / "objects"),
        "AIOREID_ENCODER__CHECKPOINT": str(checkpoint),
        "AIOREID_ENCODER__DEVICE": "cpu",
        "AIOREID_BROKER__BROKER_URL": BROKER,
        "AIOREID_BROKER__RESULT_BACKEND": BROKER,
        "AIOREID_BROKER__RUNNER": "celery",
        "AIOREID_BROKER__CHUNK_SIZE": str(chunk),
    }


def start_worker(env: dict[str, str], queues: str, name: str, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "celery", "-A", "aioreid.workers.app", "worker", "-Q", queues]
    cmd += ["-c", "1", "-P", "prefork", "-n", f"{name}@%h", "-l", "WARNING"]
    cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **env, "OMP_NUM_THREADS": "1"},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_done(sessions, job_id: int, timeout: float = 1800) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    from aioreid.platform.db.models import IngestJob

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as s:
            job = s.get(IngestJob, job_id)
            if str(job.status) in ("done", "failed", "cancelled"):
                if str(job.status) != "done":
                    raise RuntimeError(f"job {job_id} ended {job.status}: {job.error}")
                return job.processed, job.failed
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def run_celery(
    files: list[Path], warmup: list[Path], workers: int, home: Path, ckpt: Path, chunk: int
) -> float:
    """Seconds from submitting ``files`` to the job's end with ``workers`` worker processes."""
    from aioreid.platform.config import Settings
    from aioreid.platform.db.engine import engine_from_settings, session_factory
    from aioreid.platform.pipeline.ingest import IngestOptions
    from aioreid.platform.pipeline.job_runners import create_ingest_job
    from aioreid.workers.app import make_celery
    from aioreid.workers.celery_runner import CeleryRunner

    redis.Redis.from_url(BROKER).flushdb()
    with temp_database() as db_url:
        env = env_for(home, db_url, ckpt, chunk)
        procs = [start_worker(env, "ingest,encode,index", "main", home / "worker-main.log")]
        for i in range(1, workers):
            extra = {**env, "AIOREID_INDEX__PATH": str(home / f"unused-index-{i}")}
            procs.append(start_worker(extra, "ingest", f"prep{i}", home / f"worker-{i}.log"))
        settings = Settings(
            home=home,
            database={"url": db_url},
            broker={"broker_url": BROKER, "result_backend": BROKER, "chunk_size": chunk},
        )
        engine = engine_from_settings(settings)
        sessions = session_factory(engine)
        app = make_celery(settings)

        def submit_files(paths: list[Path], chunk_size: int | None = None) -> int:
            job_id = create_ingest_job(sessions, kind="files", source="bench", total=len(paths))
            runner = CeleryRunner(settings, sessions, app=app, chunk_size=chunk_size)
            runner.submit(job_id, [{"path": p} for p in paths], IngestOptions())
            return job_id

        try:
            wait_done(sessions, submit_files(warmup, chunk_size=2), timeout=300)
            t0 = time.perf_counter()
            processed, failed = wait_done(sessions, submit_files(files))
            seconds = time.perf_counter() - t0
        finally:
            for p in procs:
                stop(p)
            engine.dispose()
            app.close()
    if processed != len(files) or failed:
        raise RuntimeError(f"celery run processed {processed}, failed {failed}")
    return seconds


def run_in_process(files: list[Path], home: Path, ckpt: Path, chunk: int) -> float:
    import torch

    from aioreid.platform.config import Settings
    from aioreid.platform.pipeline.ingest import IngestOptions, ingest_many
    from aioreid.platform.services import Services

    torch.set_num_threads(1)
    with temp_database() as db_url:
        settings = Settings(
            home=home,
            database={"url": db_url},
            index={"backend": "edge"},
            encoder={"checkpoint": ckpt, "device": "cpu"},
        )
        svc = Services.from_settings(settings, migrate=False)
        try:
            svc.live()  # load the encoder and create the collection before timing
            t0 = time.perf_counter()
            _, results = ingest_many(
                svc,
                [{"path": p, "camera": "bench"} for p in files],
                options=IngestOptions(detector="crops", batch_media=chunk),
                progress=False,
            )
            seconds = time.perf_counter() - t0
        finally:
            svc.close()
    assert all(r.status == "done" for r in results)
    return seconds


def market_files(world: Path | None, n: int, tmp: Path) -> list[Path]:
    from aioreid.encoder.data.datasets import load_dataset
    from aioreid.encoder.data.synth import SynthConfig, generate_world

    if world is None:
        world = tmp / "world"
        cfg = SynthConfig(identities=max(8, n // 8), seed=5, videos_per_camera=0, progress=False)
        generate_world(world, cfg)
    ds = load_dataset("market1501", world)
    files = [Path(r.path) for r in [*ds.train, *ds.gallery, *ds.query] if r.path is not None]
    if len(files) < n + 8:
        raise SystemExit(f"{world} has {len(files)} Market images; {n + 8} are needed")
    return files[: n + 8]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--world", type=Path, default=None, help="a synthetic world folder")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: a tiny checkpoint")
    ap.add_argument("--chunk", type=int, default=16, help="files per chunk / encoder batch")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp_name:
        tmp = Path(tmp_name)
        files = market_files(args.world, args.files, tmp)
        warmup, files = files[:8], files[8:]
        ckpt = args.checkpoint
        if ckpt is None:
            from aioreid.encoder.model import AIOConfig, AIOModel

            tiny = AIOConfig(backbone="tiny", image_size=(64, 32), text_max_len=24)
            ckpt = AIOModel(tiny).save(tmp / "tiny.pt")
        timings = {"in_process": run_in_process(files, tmp / "inproc", ckpt, args.chunk)}
        for workers in (1, 2):
            home = tmp / f"celery-{workers}"
            home.mkdir()
            timings[f"celery_{workers}"] = run_celery(
                files, warmup, workers, home, ckpt, args.chunk
            )
    redis.Redis.from_url(BROKER).flushdb()
    n = len(files)
    label = str(args.checkpoint) if args.checkpoint else "tiny (untrained, 64x32)"
    out: dict[str, object] = {"files": n, "chunk_size": args.chunk, "encoder": label}
    for mode, seconds in timings.items():
        out[f"{mode}_s"] = round(seconds, 2)
        out[f"{mode}_files_per_s"] = round(n / seconds, 1)
    out["scaling_celery_2_vs_1"] = round(timings["celery_1"] / timings["celery_2"], 2)
    out["overhead_celery_1_vs_in_process"] = round(timings["celery_1"] / timings["in_process"], 2)
    out["cpu_cores"] = os.cpu_count()
    out["note"] = (
        "edge index is single-process: encode+commit run in one worker, the second worker "
        "only prepares (ingest queue)"
    )
    print(
        f"{n} files: in-process {out['in_process_files_per_s']} files/s, "
        f"celery 1 worker {out['celery_1_files_per_s']} files/s, "
        f"2 workers {out['celery_2_files_per_s']} files/s; "
        f"scaling 2 vs 1 = {out['scaling_celery_2_vs_1']}x, "
        f"celery(1)/in-process time = {out['overhead_celery_1_vs_in_process']}x"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
