"""Archive-scale ingestion: hours of footage as person tracks, in bounded memory.

    python benchmarks/bench_archive.py [--minutes 60] [--baseline-minutes 1] [--cameras 4]
        [--modes in_process,celery_1,celery_2] [--checkpoint CKPT] [--json PATH]

One synthetic world, two archives of its footage (``--minutes`` and ``--baseline-minutes`` of
video per camera, ``--cameras`` cameras, half RGB and half IR, 320x240 at 10 fps), each
ingested by every mode with the background detector at 5 fps:

* ``in_process``: ``ingest_many`` in a child process (embedded profile: SQLite, Qdrant Edge,
  local folder), one torch thread;
* ``celery_1``: one worker process on the ingest, encode and index queues (Postgres, Redis);
* ``celery_2``: that worker plus a second one on the ingest queue (Qdrant Edge is a
  single-process index, so embed and commit stay with the worker that owns it; see
  ``bench_celery_ingest.py``).

Per run: wall time from submission to the job's end (in-process: after the encoder is
loaded; Celery: workers load it on their first task, inside the timed run); the realtime
factor (seconds of video of all cameras per wall second, and that divided by the number of
cameras, the stricter reading of "per camera"); the peak RSS of
every process, sampled every 0.2 s (``psutil``), and its ratio to the same process in the
baseline archive's run (flat memory: <= 1.2); index points per hour of video at track and at
sighting level; and HOTA / IDF1 / MOTA of the indexed tracks against the footage's ground
truth (TrackEval; every frame of the 5 fps grid scored, a frame skipped as a near-duplicate
has no boxes; a return to a camera after 2 s is a new track, as ``evaluate-tracking``).

The encoder is ``--checkpoint`` or, by default, an untrained AIO model over the offline
MiniLM backbone (the real encoder's cost; its vectors do not matter here).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis
from bench_celery_ingest import BROKER, start_worker, stop, temp_database, wait_done

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = Path(__file__).parent / "results" / "archive.json"
SAMPLE_FPS = 5.0


# --- the archives ------------------------------------------------------------------------------


def make_archives(tmp: Path, minutes: float, baseline: float, cameras: int) -> dict[str, Path]:
    """Two copies of one world, each with footage of its own length."""
    from aioreid.encoder.data.synth import FootageOptions, SynthConfig, generate_world
    from aioreid.encoder.data.synth.footage import write_footage

    cfg = SynthConfig(
        identities=40,
        seed=7,
        rgb_cameras=cameras // 2,
        ir_cameras=cameras - cameras // 2,
        videos_per_camera=0,
        progress=False,
    )
    first = tmp / "world-baseline"
    generate_world(first, cfg)
    out = {}
    for name, length in (("baseline", baseline), ("archive", minutes)):
        world = tmp / f"world-{name}"
        if not world.exists():
            shutil.copytree(first, world)
        t0 = time.perf_counter()
        write_footage(world, FootageOptions(minutes=length, progress=False))
        print(
            f"{name}: {length} min x {cameras} cameras rendered in {time.perf_counter() - t0:.0f} s"
        )
        out[name] = world
    return out


def clips(world: Path) -> list[dict[str, Any]]:
    """The archive's clips as ingest items (camera, modality, recording start)."""
    items = []
    for meta_path in sorted((world / "footage").glob("cam*/clip.json")):
        meta = json.loads(meta_path.read_text())
        video = next(meta_path.parent.glob("clip.*[!n]"))  # clip.mp4 or clip.avi
        items.append(
            {
                "path": str(video),
                "camera": f"cam{meta['camera']}",
                "modality": meta["modality"],
                "start_time": meta["start"],
                "seconds": meta["num_frames"] / meta["fps"],
            }
        )
    return items


def options() -> Any:
    from aioreid.platform.pipeline.frames import SamplingOptions
    from aioreid.platform.pipeline.ingest import IngestOptions

    return IngestOptions(detector="background", sampling=SamplingOptions(sample_fps=SAMPLE_FPS))


def default_checkpoint(tmp: Path) -> Path:
    from aioreid.encoder.model import AIOConfig, AIOModel

    cfg = AIOConfig(backbone="minilm-l6", image_size=(128, 64), text_max_len=40)
    return AIOModel(cfg).save(tmp / "untrained-minilm.pt")


# --- memory --------------------------------------------------------------------------------------


class PeakRss:
    """Peak RSS of every process under the given roots (and their children), by role."""

    def __init__(self, roots: dict[str, int], every_s: float = 0.2) -> None:
        self.roots, self.every_s = roots, every_s
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for role, pid in self.roots.items():
                try:
                    root = psutil.Process(pid)
                    procs = [(role, root)] + [
                        (f"{role}/child{i}", c) for i, c in enumerate(root.children(True))
                    ]
                    for name, proc in procs:
                        rss = proc.memory_info().rss
                        self.peak[name] = max(self.peak.get(name, 0), rss)
                except psutil.Error:
                    continue
            self._stop.wait(self.every_s)

    def mb(self) -> dict[str, float]:
        return {k: round(v / 2**20, 1) for k, v in sorted(self.peak.items())}


# --- runs ----------------------------------------------------------------------------------------


def run_in_process(items: list[dict], home: Path, ckpt: Path) -> dict[str, Any]:
    """Ingest in a child process (this file with ``--child``) and watch its memory."""
    spec = home / "spec.json"
    home.mkdir(parents=True)
    spec.write_text(json.dumps({"items": items, "home": str(home), "checkpoint": str(ckpt)}))
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(spec)],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    with PeakRss({"in_process": proc.pid}) as rss:
        out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"in-process run failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "peak_rss_mb": rss.mb()}


def child(spec_path: Path) -> None:
    """The in-process run itself: embedded profile, one torch thread, timed after warm-up."""
    import torch

    from aioreid.platform.config import Settings
    from aioreid.platform.pipeline.ingest import ingest_many
    from aioreid.platform.services import Services

    torch.set_num_threads(1)
    spec = json.loads(spec_path.read_text())
    home = Path(spec["home"])
    settings = Settings(home=home, encoder={"checkpoint": spec["checkpoint"], "device": "cpu"})
    svc = Services.from_settings(settings)
    svc.live()  # the encoder is loaded and the collection made before the clock starts
    items = [_item(i) for i in spec["items"]]
    t0 = time.perf_counter()
    _, results = ingest_many(svc, items, options=options(), progress=False)
    seconds = time.perf_counter() - t0
    bad = [r for r in results if r.status != "done"]
    if bad:
        raise RuntimeError(f"not done: {bad}")
    print(json.dumps({"seconds": seconds, **measure(svc)}))
    svc.close()


def _item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": item["path"],
        "camera": item["camera"],
        "modality": item["modality"],
        "start_time": datetime.fromisoformat(item["start_time"]),
    }


def run_celery(items: list[dict], workers: int, home: Path, ckpt: Path) -> dict[str, Any]:
    from bench_celery_ingest import env_for

    from aioreid.platform.config import Settings
    from aioreid.platform.db.engine import engine_from_settings, session_factory
    from aioreid.platform.pipeline.job_runners import create_ingest_job
    from aioreid.platform.services import Services
    from aioreid.workers.app import make_celery
    from aioreid.workers.celery_runner import send_job

    redis.Redis.from_url(BROKER).flushdb()
    home.mkdir(parents=True)
    with temp_database() as db_url:
        env = env_for(home, db_url, ckpt, chunk=1)  # one video per chain: videos in parallel
        procs = {"worker_main": start_worker(env, "ingest,encode,index", "main", home / "w0.log")}
        for i in range(1, workers):
            extra = {**env, "AIOREID_INDEX__PATH": str(home / f"unused-index-{i}")}
            procs[f"worker_prep{i}"] = start_worker(extra, "ingest", f"prep{i}", home / f"w{i}.log")
        settings = Settings(
            home=home,
            database={"url": db_url},
            broker={"broker_url": BROKER, "result_backend": BROKER, "chunk_size": 1},
        )
        engine = engine_from_settings(settings)
        sessions = session_factory(engine)
        app = make_celery(settings)
        try:
            with PeakRss({k: p.pid for k, p in procs.items()}) as rss:
                _wait_ready(home, workers)
                portable = [{k: v for k, v in i.items() if k != "seconds"} for i in items]
                job_id = create_ingest_job(sessions, kind="files", source="bench", total=len(items))
                t0 = time.perf_counter()
                send_job(app, job_id, items=portable, options=options(), chunk_size=1)
                processed, failed = wait_done(sessions, job_id, timeout=6 * 3600)
                seconds = time.perf_counter() - t0
        finally:
            for p in procs.values():
                stop(p)
            engine.dispose()
            app.close()
        if processed != len(items) or failed:
            raise RuntimeError(f"celery run processed {processed}, failed {failed}")
        reader = Settings(
            home=home,
            database={"url": db_url},
            index={"backend": "edge"},
            storage={"root": home / "objects"},
            encoder={"checkpoint": ckpt, "device": "cpu"},
        )
        svc = Services.from_settings(reader, migrate=False)
        try:
            measured = measure(svc)
        finally:
            svc.close()
    return {"seconds": seconds, **measured, "peak_rss_mb": rss.mb()}


def _wait_ready(home: Path, workers: int, timeout: float = 120) -> None:
    """Workers have started (their logs say ready) and loaded nothing yet: loading the model
    happens on the first task and is part of the timed run for Celery."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = [(home / f"w{i}.log") for i in range(workers)]
        if all(p.exists() and b"ready" in p.read_bytes() for p in logs):
            return
        time.sleep(0.2)


def measure(svc: Any) -> dict[str, Any]:
    """Index points by level and the tracks' boxes, read back from the stores."""
    from sqlalchemy import select

    from aioreid.platform.db.models import Media, Track
    from aioreid.platform.index import SearchFilter

    live = svc.live_collection()
    points = {
        level: svc.index.count(live, SearchFilter(level=level)) for level in ("track", "sighting")
    }
    hyp: dict[str, dict[int, list]] = {}
    with svc.sessions() as s:
        cams = {m.id: m.camera.name if m.camera else "" for m in s.scalars(select(Media))}
        for t in s.scalars(select(Track)):
            per_frame = hyp.setdefault(cams[t.media_id], {})
            for frame, x, y, w, h in t.boxes:
                per_frame.setdefault(frame, []).append((t.number, (x, y, w, h)))
    return {"points": points, "hyp": {k: {str(f): v for f, v in d.items()} for k, d in hyp.items()}}


def tracking_scores(world: Path, hyp: dict[str, dict[str, list]]) -> dict[str, float]:
    """TrackEval over the indexed tracks, on every frame of the sampling grid."""
    from aioreid.platform.evaluation.tracking import (
        evaluate_output,
        footage_clips,
        overall,
        split_reentries,
    )

    scores = []
    for clip in footage_clips(world):
        step = max(1, round(clip.fps / SAMPLE_FPS))
        grid = list(range(0, clip.num_frames, step))
        mine = hyp.get(f"cam{clip.camera}", {})
        frames = {int(f): [(n, tuple(map(float, b))) for n, b in v] for f, v in mine.items()}
        gt = split_reentries(clip.gt, clip.fps, 2.0)
        scores.append(evaluate_output(gt, frames, grid, clip=clip.name, camera=clip.camera))
    row = overall(scores).scores
    return {k: round(float(row[k]), 4) for k in ("HOTA", "IDF1", "MOTA")}


# --- report --------------------------------------------------------------------------------------


def summarise(run: dict[str, Any], items: list[dict], world: Path) -> dict[str, Any]:
    video_s = sum(i["seconds"] for i in items)
    hours = video_s / 3600
    return {
        "wall_s": round(run["seconds"], 1),
        "video_s": round(video_s, 1),
        "realtime_factor": round(video_s / run["seconds"], 2),
        "realtime_factor_per_camera": round(video_s / len(items) / run["seconds"], 2),
        "peak_rss_mb": run["peak_rss_mb"],
        "points_per_video_hour": {k: round(v / hours, 1) for k, v in run["points"].items()},
        "tracking": tracking_scores(world, run["hyp"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--baseline-minutes", type=float, default=1.0)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--modes", default="in_process,celery_1,celery_2")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep it")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child)
        return
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        worlds = make_archives(tmp, args.minutes, args.baseline_minutes, args.cameras)
        ckpt = args.checkpoint or default_checkpoint(tmp)
        results: dict[str, dict[str, Any]] = {}
        for name, world in worlds.items():
            items = clips(world)
            for mode in modes:
                home = tmp / f"{name}-{mode}"
                shutil.rmtree(home, ignore_errors=True)
                if mode == "in_process":
                    run = run_in_process(items, home, ckpt)
                else:
                    run = run_celery(items, int(mode.rsplit("_", 1)[1]), home, ckpt)
                results[f"{name}/{mode}"] = row = summarise(run, items, world)
                print(
                    f"{name:8s} {mode:10s} wall {row['wall_s']:8.1f} s  "
                    f"realtime x{row['realtime_factor']:6.1f} "
                    f"(x{row['realtime_factor_per_camera']:.1f} per camera)  "
                    f"points/h {row['points_per_video_hour']}  "
                    f"{row['tracking']}  rss {row['peak_rss_mb']}",
                    flush=True,
                )
    for mode in modes:
        full, base = results[f"archive/{mode}"], results[f"baseline/{mode}"]
        full["rss_vs_baseline"] = {
            proc: round(mb / base["peak_rss_mb"][proc], 2)
            for proc, mb in full["peak_rss_mb"].items()
            if base["peak_rss_mb"].get(proc)
        }
        print(
            f"{mode}: peak RSS {args.minutes:g} min / {args.baseline_minutes:g} min = "
            f"{full['rss_vs_baseline']}"
        )
    out = {
        "minutes_per_camera": args.minutes,
        "baseline_minutes_per_camera": args.baseline_minutes,
        "cameras": args.cameras,
        "sample_fps": SAMPLE_FPS,
        "encoder": str(args.checkpoint) if args.checkpoint else "untrained AIO over MiniLM-L6",
        "cpu_cores": os.cpu_count(),
        "runs": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
