"""`make demo` / `aioreid demo`: the main job end to end on the embedded profile.

1. Synthesise a multi-camera multimodal world with video clips (reused when one with the same
   seed and size is there).
2. Train the small offline encoder on its training identities when no checkpoint is cached
   (``<home>/train/cpu-synthetic/final.pt``; a time budget keeps the demo short).
3. Ingest through the pipeline into a fresh embedded platform (SQLite, in-process Qdrant,
   local-folder store): the held-out identities' RGB gallery (Market-1501 layout) and IR
   images (SYSU-MM01 layout) as crops, and every camera's video clips through the
   background-subtraction detector.
4. Search with RGB, IR, sketch, text and text+sketch queries of held-out identities through
   the search service, score Rank-1 / mAP against the world's ground truth (video sightings
   are labelled by matching their boxes to the clip annotations), print the table, and write
   ``contact_sheet.html`` with the top results of a few queries per setting.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from aioreid.encoder.data.datasets import load_dataset
from aioreid.encoder.data.records import Record
from aioreid.encoder.data.synth import SynthConfig, WorldManifest, generate_world
from aioreid.encoder.zeroshot import HistogramEmbedder, evaluate_world, report
from aioreid.platform.cli.demo_report import contact_sheet, format_rows
from aioreid.platform.config import Settings
from aioreid.platform.pipeline.detect import Box
from aioreid.platform.pipeline.frames import SamplingOptions
from aioreid.platform.pipeline.ingest import IngestOptions, ingest_many
from aioreid.platform.search.schemas import Level, SearchFilters, SearchOptions
from aioreid.platform.search.service import SearchService
from aioreid.platform.services import Services

TOP_K = 200
QUERY_BATCH = 32


def ensure_world(folder: Path, identities: int, seed: int) -> WorldManifest:
    """Load the world in ``folder`` if it matches; otherwise generate it there."""
    manifest_path = folder / "world.json"
    if manifest_path.exists():
        try:
            manifest = WorldManifest.load(folder)
        except (ValueError, KeyError, json.JSONDecodeError):
            manifest = None
        same = manifest is not None and manifest.seed == seed
        if same and len(manifest.identities) == identities:
            print(f"reusing synthetic world in {folder}")
            return manifest
    return generate_world(folder, SynthConfig(identities=identities, seed=seed))


def ensure_checkpoint(
    checkpoint: Path | None, world: Path, home: Path, minutes: float
) -> Path | None:
    """The configured checkpoint, the cached one, or one trained now (``minutes`` > 0)."""
    if checkpoint is not None and checkpoint.is_file():
        return checkpoint
    cached = home / "train" / "cpu-synthetic" / "final.pt"
    if cached.is_file():
        return cached
    if minutes <= 0:
        return None
    from aioreid.encoder.training.config import load_config
    from aioreid.encoder.training.trainer import train

    print(f"no encoder checkpoint cached: training cpu-synthetic for up to {minutes:g} minutes")
    cfg = load_config("cpu-synthetic", world=world, max_minutes=minutes, output_dir=cached.parent)
    summary = train(cfg, resume=True, progress=True)
    return Path(summary["final"])


@dataclass
class Gallery:
    """Ground truth of the ingested gallery: sighting id -> pid (None: nobody we know)."""

    labels: dict[int, int | None] = field(default_factory=dict)
    by_modality: dict[str, int] = field(default_factory=dict)
    track_of: dict[int, int] = field(default_factory=dict)  # sighting id -> its track

    def track_labels(self) -> dict[int, int | None]:
        """Track id -> pid: the pid most of its sightings show (None when they show nobody
        we know)."""
        votes: dict[int, list[int | None]] = {}
        for sid, track in self.track_of.items():
            votes.setdefault(track, []).append(self.labels.get(sid))
        out: dict[int, int | None] = {}
        for track, pids in votes.items():
            known = [p for p in pids if p is not None]
            out[track] = max(set(known), key=known.count) if known else None
        return out


def _crop_items(records: list[Record], camera_prefix: str) -> list[dict]:
    return [
        {
            "path": r.path,
            "camera": f"{camera_prefix}-cam{r.camid}",
            "modality": r.modality.value,
            "source_label": f"world:{r.pid}" if r.pid > 0 else None,
        }
        for r in records
        if r.path is not None
    ]


def ingest_world(svc: Services, world: Path, manifest: WorldManifest) -> Gallery:
    market = load_dataset("market1501", world)
    sysu = load_dataset("sysu_mm01", world)
    crops = _crop_items(market.gallery, "market") + _crop_items(sysu.query, "sysu")
    ingest_many(svc, crops, options=IngestOptions(detector="crops"), source="demo crops")
    videos = [
        {
            "path": world / v["path"],
            "camera": f"video-cam{v['camera']}",
            "modality": v["modality"],
            "start_time": _parse_time(v["start"]),
        }
        for v in manifest.videos
    ]
    opts = IngestOptions(detector="background", sampling=SamplingOptions(sample_fps=5.0))
    _, results = ingest_many(svc, videos, options=opts, source="demo videos")
    gallery = Gallery()
    from aioreid.platform.db.models import Media, Sighting

    with svc.sessions() as s:
        for row in s.scalars(select(Sighting)):
            if row.track_id is not None:
                gallery.track_of[row.id] = row.track_id
            label = row.source_label
            gallery.labels[row.id] = int(label.split(":")[1]) if label else None
            gallery.by_modality[str(row.modality)] = (
                gallery.by_modality.get(str(row.modality), 0) + 1
            )
        for v, res in zip(manifest.videos, results, strict=True):
            if res.status != "done":
                continue
            ann = json.loads((world / v["annotation"]).read_text())
            truth = {f["frame"]: f["objects"] for f in ann["frames"]}
            media = s.get(Media, res.media_id)
            assert media is not None
            for row in s.scalars(select(Sighting).where(Sighting.media_id == media.id)):
                box = Box(row.box_x, row.box_y, row.box_w, row.box_h)
                best, pid = 0.0, None
                for obj in truth.get(row.frame_index, []):
                    iou = box.iou(Box(*obj["box"]))
                    if iou > best:
                        best, pid = iou, int(obj["pid"])
                gallery.labels[row.id] = pid if best >= 0.5 else None
    return gallery


def _parse_time(text: str):  # type: ignore[no-untyped-def]
    from datetime import datetime

    return datetime.fromisoformat(text)


@dataclass
class Query:
    pid: int
    parts: dict[str, object]
    shown: dict[str, object]


def world_queries(world: Path, manifest: WorldManifest) -> dict[str, tuple[list[Query], str]]:
    """Setting -> (queries of held-out identities, gallery modality searched)."""
    test = set(manifest.test_pids)
    market = load_dataset("market1501", world)
    sysu = load_dataset("sysu_mm01", world)
    cuhk = load_dataset("cuhk_pedes", world)
    rgb_q = [r for r in market.query if r.pid in test]
    ir_q = [r for r in sysu.query if r.pid in test]
    texts = [r for r in cuhk.query if r.pid in test and r.text]
    sketches: dict[int, list[Path]] = {}
    for ident in manifest.identities:
        if int(ident["pid"]) in test:
            sketches[int(ident["pid"])] = [world / p for p in ident["sketches"]]

    def img(r: Record, part: str) -> Query:
        data = Path(r.path).read_bytes()  # type: ignore[arg-type]
        return Query(r.pid, {part: data}, {part: data})

    sketch_q = [
        Query(pid, {"sketch": p.read_bytes()}, {"sketch": p.read_bytes()})
        for pid, paths in sorted(sketches.items())
        for p in paths
    ]
    text_q = [Query(r.pid, {"text": r.text}, {"text": r.text}) for r in texts]
    combo_q = []
    seen: dict[int, int] = {}
    for r in texts:
        options = sketches.get(r.pid)
        if options:
            k = seen.get(r.pid, 0)
            seen[r.pid] = k + 1
            data = options[k % len(options)].read_bytes()
            combo_q.append(
                Query(r.pid, {"text": r.text, "sketch": data}, {"text": r.text, "sketch": data})
            )
    return {
        "RGB→RGB": ([img(r, "rgb") for r in rgb_q], "rgb"),
        "IR→RGB": ([img(r, "ir") for r in ir_q], "rgb"),
        "RGB→IR": ([img(r, "rgb") for r in rgb_q], "ir"),
        "sketch→RGB": (sketch_q, "rgb"),
        "text→RGB": (text_q, "rgb"),
        "text+sketch→RGB": (combo_q, "rgb"),
    }


def ranking_metrics(ranked: list[bool], relevant: int) -> tuple[float, float]:
    """(hit at rank 1, average precision) of one ranked list with ``relevant`` true matches."""
    if relevant == 0:
        return 0.0, 0.0
    found, ap = 0, 0.0
    for i, ok in enumerate(ranked, 1):
        if ok:
            found += 1
            ap += found / i
    return float(bool(ranked and ranked[0])), ap / relevant


def evaluate_platform(
    svc: Services,
    gallery: Gallery,
    queries: dict[str, tuple[list[Query], str]],
    *,
    level: Level = "track",
    progress: bool = True,
) -> tuple[dict[str, dict[str, float]], dict[str, list]]:
    """Rank-1 / mAP per setting. At ``level="track"`` a hit is a track (its pooled
    embedding) and the relevant items are the tracks of the query's person; at
    ``"sighting"`` each representative crop is a hit of its own."""
    from tqdm.auto import tqdm

    from aioreid.platform.db.models import Sighting

    search = SearchService(svc)
    with svc.sessions() as s:
        modality_of = {sid: str(m) for sid, m in s.execute(select(Sighting.id, Sighting.modality))}
    if level == "track":
        labels = gallery.track_labels()
        item_modality = {
            gallery.track_of[sid]: m for sid, m in modality_of.items() if sid in gallery.track_of
        }
    else:
        labels, item_modality = gallery.labels, modality_of

    def item(hit: Any) -> int:
        return hit.track_id if level == "track" else hit.sighting_id

    rows: dict[str, dict[str, float]] = {}
    examples: dict[str, list] = {}
    for setting, (qs, gallery_modality) in queries.items():
        r1s, aps = [], []
        flt = SearchFilters(modalities=[gallery_modality])  # type: ignore[list-item]
        opts = SearchOptions(limit=TOP_K, level=level)
        answers: list = []
        for start in tqdm(
            range(0, len(qs), QUERY_BATCH), desc=f"search {setting}", disable=not progress
        ):
            chunk = [q.parts for q in qs[start : start + QUERY_BATCH]]
            answers.extend(search.search_many(chunk, flt, opts))  # type: ignore[arg-type]
        for i, (q, res) in enumerate(zip(qs, answers, strict=True)):
            ranked = [labels.get(item(h)) == q.pid for h in res.hits]
            relevant = sum(
                1
                for key, pid in labels.items()
                if pid == q.pid and item_modality.get(key) == gallery_modality
            )
            if relevant == 0:
                continue
            r1, ap = ranking_metrics(ranked, relevant)
            r1s.append(r1)
            aps.append(ap)
            if i < 3:
                examples.setdefault(setting, []).append((q, res.hits[:8], ranked[:8]))
        rows[setting] = {
            "R1": round(100 * float(np.mean(r1s)), 1) if r1s else 0.0,
            "mAP": round(100 * float(np.mean(aps)), 1) if aps else 0.0,
            "queries": len(r1s),
        }
    return rows, examples


def run_demo(
    out: Path,
    *,
    identities: int,
    seed: int,
    checkpoint: Path | None = None,
    settings: Settings | None = None,
    train_minutes: float = 4.0,
    progress: bool = True,
    baseline: bool = True,
) -> dict:
    """Run every step and write ``demo_results.json`` and ``contact_sheet.html`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    settings = settings or Settings()
    world = out / f"world-{identities}-s{seed}"
    manifest = ensure_world(world, identities, seed)
    n_test = len(manifest.test_pids)
    print(f"world: {len(manifest.identities)} identities ({n_test} held out) in {world}")
    summary: dict = {"world": str(world)}
    if baseline:
        base = evaluate_world(HistogramEmbedder(), world, progress=progress)
        print(report(base, title="encoder-level zero-shot, for reference"))
        summary["baseline"] = base.to_json()
    ckpt = ensure_checkpoint(checkpoint, world, settings.home, train_minutes)
    if ckpt is None:
        print("no encoder checkpoint and training disabled: skipping the platform steps")
        return _finish(out, summary, t0)
    platform_home = out / "platform"
    shutil.rmtree(platform_home, ignore_errors=True)
    psettings = settings.model_copy(
        update={
            "home": platform_home,
            "database": settings.database.model_copy(update={"url": None}),
            "storage": settings.storage.model_copy(update={"backend": "local", "root": None}),
            "index": settings.index.model_copy(update={"path": None}),
            "encoder": settings.encoder.model_copy(update={"checkpoint": ckpt}),
        }
    )
    svc = Services.from_settings(psettings)
    try:
        t_ingest = time.perf_counter()
        gallery = ingest_world(svc, world, manifest)
        ingest_s = time.perf_counter() - t_ingest
        print(
            f"ingested {len(gallery.labels)} sightings "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(gallery.by_modality.items()))}) "
            f"in {ingest_s:.1f} s with encoder {svc.encoder.version}"
        )
        queries = world_queries(world, manifest)
        rows, examples = evaluate_platform(svc, gallery, queries, progress=progress)
        print(
            format_rows(
                rows,
                title=f"platform search on held-out identities, one hit per track — "
                f"{svc.encoder.version}",
            )
        )
        frames, _ = evaluate_platform(svc, gallery, queries, level="sighting", progress=progress)
        print(format_rows(frames, title="the same, one hit per representative crop"))
        sheet = contact_sheet(svc, examples, gallery.labels, out / "contact_sheet.html")
        print(f"contact sheet: {sheet}")
        summary.update(
            {
                "encoder": svc.encoder.version,
                "platform": rows,
                "platform_sighting_level": frames,
                "sightings": len(gallery.labels),
                "tracks": len(set(gallery.track_of.values())),
                "ingest_seconds": round(ingest_s, 1),
            }
        )
    finally:
        svc.close()
    return _finish(out, summary, t0)


def _finish(out: Path, summary: dict, t0: float) -> dict:
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "demo_results.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    print(f"results written to {out / 'demo_results.json'} ({summary['seconds']} s)")
    return summary
