"""The ingestion pipeline on Postgres + local store + in-process index with a tiny encoder."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from platform_fixtures import jpeg, make_services, person_image, write_video
from sqlalchemy import func, select

from aioreid.platform.db.models import (
    Assignment,
    Identity,
    IngestJob,
    JobFailure,
    Media,
    Sighting,
    Track,
)
from aioreid.platform.pipeline.dataset_import import import_dataset
from aioreid.platform.pipeline.detect import (
    BackgroundSubtractionDetector,
    Box,
    WholeFrameDetector,
    build_detector,
)
from aioreid.platform.pipeline.frames import (
    MediaDecodeError,
    SamplingOptions,
    decode_image_frame,
    iter_video_frames,
    media_kind,
)
from aioreid.platform.pipeline.ingest import (
    IngestOptions,
    ingest_bytes,
    ingest_file,
    ingest_many,
)
from aioreid.platform.services import Services


@pytest.fixture(scope="module")
def svc(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread
) -> Iterator[Services]:
    s = make_services(tmp_path_factory.mktemp("pipeline"), pg_url, migrate=False)
    yield s
    s.close()


def _bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims a huge image (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------ frames


def test_media_kind_and_image_decoding() -> None:
    assert media_kind("a/B.JPG") == "image" and media_kind("clip.mp4") == "video"
    with pytest.raises(MediaDecodeError, match="unsupported media type"):
        media_kind("notes.txt")
    frame = decode_image_frame(jpeg(person_image(1)))
    assert frame.image.shape == (128, 64, 3) and frame.index == 0
    with pytest.raises(MediaDecodeError, match="not a decodable image"):
        decode_image_frame(b"definitely not a jpeg")
    with pytest.raises(MediaDecodeError, match="too large"):
        decode_image_frame(_bomb_png())


def test_video_sampling_skips_near_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "walk.mp4"
    write_video(path, frames=24, fps=8)
    frames = list(iter_video_frames(path, SamplingOptions(sample_fps=4)))
    assert [f.index for f in frames] == list(range(0, 24, 2))
    assert frames[1].offset_s == pytest.approx(2 / 8)
    # A static clip: after the first frame everything is a near-duplicate.
    static = tmp_path / "static.mp4"
    import cv2

    w = cv2.VideoWriter(str(static), cv2.VideoWriter_fourcc(*"mp4v"), 8, (64, 48))
    for _ in range(16):
        w.write(np.full((48, 64, 3), 100, np.uint8))
    w.release()
    assert len(list(iter_video_frames(static, SamplingOptions(sample_fps=8)))) == 1


def test_corrupt_video_is_a_decode_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(MediaDecodeError):
        list(iter_video_frames(bad))


# ------------------------------------------------------------------------------ detect


def test_background_subtraction_finds_the_walker(tmp_path: Path) -> None:
    path = tmp_path / "walk.mp4"
    truth = write_video(path, frames=24, fps=8)
    frames = list(iter_video_frames(path, SamplingOptions(sample_fps=8)))
    boxes = BackgroundSubtractionDetector(min_height=30).detect([f.image for f in frames])
    hits = 0
    for f, found in zip(frames, boxes, strict=True):
        t = Box(*truth[f.index])
        hits += any(b.iou(t) > 0.5 for b in found)
        assert len(found) <= 2
    assert hits >= 0.8 * len(frames)
    # One image has no background model: no boxes rather than the whole frame.
    assert BackgroundSubtractionDetector().detect([frames[0].image]) == [[]]


def test_detector_registry() -> None:
    assert isinstance(build_detector("crops"), WholeFrameDetector)
    assert build_detector("hog").detect([person_image(0, 160, 80)])[0] is not None
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        build_detector("yolo")


# ------------------------------------------------------------------------------ ingest


def _count(svc: Services, model, *where) -> int:  # type: ignore[no-untyped-def]
    with svc.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_ingest_image_indexes_one_sighting_and_is_idempotent(svc: Services) -> None:
    data = jpeg(person_image(101))
    res = ingest_bytes(svc, data, "p101.jpg", camera="gate-1")
    assert res.status == "done" and res.sightings == 1
    collection = svc.live_collection()
    points_before = svc.index.count(collection)
    sightings_before = _count(svc, Sighting)
    again = ingest_bytes(svc, data, "copy-of-p101.jpg", camera="gate-1")
    assert again.media_id == res.media_id and again.skipped
    assert svc.index.count(collection) == points_before
    assert _count(svc, Sighting) == sightings_before
    with svc.sessions() as s:
        row = s.scalar(select(Sighting).where(Sighting.media_id == res.media_id))
        assert row is not None and row.camera_id is not None
        assert svc.store.exists(row.object_key)
        point = svc.index.retrieve(collection, [row.point_id], with_vectors=True)[0]
    assert point.payload["sighting"] == row.id
    assert np.linalg.norm(point.vector) == pytest.approx(1.0, abs=1e-4)


def test_a_crash_after_the_upsert_leaves_nothing_half_done(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aioreid.platform.pipeline.ingest import process_media
    from aioreid.platform.pipeline.register import register_media

    media_id = register_media(svc, jpeg(person_image(102)), "p102.jpg")
    collection = svc.live_collection()
    sightings, tracks, points = (
        _count(svc, Sighting),
        _count(svc, Track),
        svc.index.count(collection),
    )
    real_upsert = svc.index.upsert

    def upsert_then_die(*args: object, **kwargs: object) -> None:
        real_upsert(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("worker killed after the upsert")

    monkeypatch.setattr(svc.index, "upsert", upsert_then_die)
    with pytest.raises(RuntimeError):
        process_media(svc, media_id)
    # The window's rows were rolled back with the crash; its points are already there.
    assert (_count(svc, Sighting), _count(svc, Track)) == (sightings, tracks)
    monkeypatch.setattr(svc.index, "upsert", real_upsert)
    again = process_media(svc, media_id)
    assert again.status == "done" and again.sightings == 1 and again.tracks == 1
    assert (_count(svc, Sighting), _count(svc, Track)) == (sightings + 1, tracks + 1)
    # Same point ids the second time: one sighting point and one track point, no duplicates.
    assert svc.index.count(collection) == points + 2


def test_bad_files_in_a_batch_fail_alone(svc: Services, tmp_path: Path) -> None:
    good = [tmp_path / f"ok{i}.jpg" for i in range(3)]
    for i, p in enumerate(good):
        p.write_bytes(jpeg(person_image(200 + i)))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg(person_image(299))[:60])
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_bomb_png())
    missing = tmp_path / "missing.jpg"
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    collection = svc.live_collection()
    points_before = svc.index.count(collection)
    items = [
        {"path": p} for p in [good[0], truncated, bomb, good[1], missing, empty, text, good[2]]
    ]
    job_id, results = ingest_many(svc, items, progress=False)
    assert [r.status for r in results] == [
        "done",
        "failed",
        "failed",
        "done",
        "failed",
        "failed",
        "failed",
        "done",
    ]
    assert svc.index.count(collection) == points_before + 3 * 2  # a sighting + a track point each
    with svc.sessions() as s:
        job = s.get(IngestJob, job_id)
        assert job is not None and job.status == "done"
        assert (job.total, job.processed, job.failed) == (8, 8, 5)
        reasons = {
            f.item.rsplit("/", 1)[-1]: f.reason
            for f in s.scalars(select(JobFailure).where(JobFailure.job_id == job_id))
        }
    assert "too large" in reasons["bomb.png"]
    assert "empty" in reasons["empty.jpg"]
    assert "unsupported media type" in reasons["notes.txt"]
    assert "No such file" in reasons["missing.jpg"] or "not found" in reasons["missing.jpg"]
    assert "decodable" in reasons["truncated.jpg"] or "Decode" in reasons["truncated.jpg"]


def test_oversized_file_is_refused_before_storing(svc: Services, tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(jpeg(person_image(300)))
    res = ingest_file(svc, big, options=IngestOptions(max_bytes=100))
    assert res.status == "failed" and "limit" in (res.error or "")
    assert not list(svc.store.iter_keys("media/")) or all(
        not k.endswith(".jpg") or svc.store.get_bytes(k) != big.read_bytes()
        for k in svc.store.iter_keys("media/")
    )


def test_a_person_walking_through_a_video_is_one_track(svc: Services, tmp_path: Path) -> None:
    from datetime import datetime, timezone

    path = tmp_path / "lobby.mp4"
    truth = write_video(path, frames=24, fps=8)
    start = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    opts = IngestOptions(detector="background", sampling=SamplingOptions(sample_fps=4))
    res = ingest_file(svc, path, camera="lobby", start_time=start, options=opts)
    assert res.status == "done" and res.tracks == 1
    with svc.sessions() as s:
        track = s.scalars(select(Track).where(Track.media_id == res.media_id)).one()
        rows = s.scalars(select(Sighting).where(Sighting.media_id == res.media_id)).all()
        media = s.get(Media, res.media_id)
        assert media is not None and media.kind == "video" and media.progress["finished"]
    # The track follows the walker through the 3 s clip: a box on (almost) every sampled
    # frame, each close to the true box of that frame.
    assert track.frames >= 10 and track.start_time >= start
    assert 2.0 <= (track.end_time - track.start_time).total_seconds() < 3.0
    for frame, x, y, w, h in track.boxes:
        tx, ty, tw, th = truth[frame]
        assert abs(x - tx) <= 8 and abs(y - ty) <= 8 and abs(w - tw) <= 10 and abs(h - th) <= 10
    # Its representative crops are its sightings: at most k, a second or more apart.
    assert 1 <= len(rows) <= opts.pooling.k and res.sightings == len(rows)
    assert all(r.track_id == track.id for r in rows)
    offsets = sorted(r.frame_time for r in rows)
    assert all((b - a).total_seconds() >= 1.0 for a, b in pairwise(offsets))


def test_dataset_import_keeps_cameras_and_identities(svc: Services, tiny_world: Path) -> None:
    summary = import_dataset(svc, tiny_world, "market1501", splits=["query"], progress=False)
    assert summary.failed == 0 and summary.imported > 0
    with svc.sessions() as s:
        labels = set(s.scalars(select(Identity.label).where(Identity.label.like("market1501:%"))))
        assert labels and all(lbl.split(":")[1].isdigit() for lbl in labels)
        imported = s.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.provenance == "import")
        )
        assert imported == summary.imported
        cams = {
            r.camera.name
            for r in s.scalars(select(Media).where(Media.job_id == summary.job_id))
            if r.camera is not None
        }
    assert cams and all(c.startswith("market1501-cam") for c in cams)


def test_cli_ingest_names_each_failed_file_and_counts_identical_bytes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    from platform_fixtures import make_services
    from typer.testing import CliRunner

    from aioreid.platform.cli import app
    from aioreid.platform.cli import service as cli_platform

    folder = tmp_path / "batch"
    folder.mkdir()
    data = jpeg(person_image(150))
    (folder / "a.jpg").write_bytes(data)
    (folder / "b-copy.jpg").write_bytes(data)
    (folder / "c.jpg").write_bytes(jpeg(person_image(151)))
    (folder / "d.mp4").write_bytes(b"not a video" * 50)
    monkeypatch.setattr(cli_platform, "_services", lambda: make_services(tmp_path / "home", None))
    result = CliRunner().invoke(app, ["ingest", str(folder), "--camera", "gate"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("2 files ingested, 2 sightings, 1 skipped, 1 failed" in x for x in lines), lines
    assert any(
        line.strip().startswith(f"skipped: {folder / 'b-copy.jpg'}: identical to") for line in lines
    ), result.output
    failed = [line.strip() for line in lines if line.strip().startswith("failed:")]
    assert len(failed) == 1 and failed[0].startswith(f"failed: {folder / 'd.mp4'}: "), failed
    assert "aioreid-video" not in failed[0] and "media.mp4" not in failed[0]
