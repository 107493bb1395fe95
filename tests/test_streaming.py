"""Videos are ingested window by window as person tracks, and an interrupted video resumes
from its last committed window with exactly the result of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from platform_fixtures import make_services, write_walkers_video
from sqlalchemy import select

from aioreid.platform.db.models import Media, Sighting, Track
from aioreid.platform.pipeline import ingest
from aioreid.platform.pipeline.frames import SamplingOptions
from aioreid.platform.pipeline.ingest import IngestOptions, process_media
from aioreid.platform.pipeline.register import register_media
from aioreid.platform.services import Services

OPTS = IngestOptions(
    detector="background",
    sampling=SamplingOptions(sample_fps=10, dedup_threshold=0.0),  # every frame: 13 windows
    frames_in_flight=12,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict]:
    path = tmp_path_factory.mktemp("clip") / "hall.mp4"
    truth = write_walkers_video(path, frames=150, fps=10)
    return path.read_bytes(), truth


def _outcome(svc: Services, media_id: int) -> dict:
    """Everything a user could tell apart: tracks, sightings, and the index's points."""
    with svc.sessions() as s:
        tracks = [
            (t.number, t.first_frame, t.last_frame, t.frames, t.boxes, t.point_id, t.quality)
            for t in s.scalars(
                select(Track).where(Track.media_id == media_id).order_by(Track.number)
            )
        ]
        sightings = sorted(
            (r.point_id, r.frame_index, r.box_x, r.box_y, r.box_w, r.box_h, r.object_key)
            for r in s.scalars(select(Sighting).where(Sighting.media_id == media_id))
        )
    points = {p.id: p for p in svc.index.scroll(svc.live_collection())}
    return {"tracks": tracks, "sightings": sightings, "points": points}


def _ingest(home: Path, data: bytes) -> tuple[Services, int]:
    svc = make_services(home, None)
    media_id = register_media(svc, data, "hall.mp4", camera="hall", modality="rgb")
    return svc, media_id


def test_a_video_becomes_tracks_one_window_at_a_time(tmp_path: Path, clip: tuple) -> None:
    data, truth = clip
    svc, media_id = _ingest(tmp_path, data)
    windows: list[int] = []
    real = ingest._apply

    def counting(svc_: Services, work: dict, target: str) -> ingest.WindowResult:
        windows.append(work["window"])
        return real(svc_, work, target)

    ingest._apply = counting  # type: ignore[assignment]
    try:
        res = process_media(svc, media_id, OPTS)
    finally:
        ingest._apply = real  # type: ignore[assignment]
    # 150 frames at 10 fps, 12 frames in flight: 13 windows, each committed on its own.
    assert windows == list(range(13))
    assert res.status == "done" and res.tracks == 3
    out = _outcome(svc, media_id)
    # Each walker is one track: its boxes follow that walker's true boxes.
    for track, walker in zip(
        sorted(out["tracks"], key=lambda t: t[1]), truth.values(), strict=True
    ):
        true_boxes = {f: (x, y, w, h) for f, x, y, w, h in walker}
        matched = [b for b in track[4] if b[0] in true_boxes]
        assert len(matched) >= 0.8 * len(track[4]) and track[3] >= 0.6 * len(walker)
    # A sighting and a pooled track point per representative crop and per track.
    assert len(out["points"]) == len(out["sightings"]) + len(out["tracks"])
    svc.close()


def test_a_crash_mid_video_resumes_with_the_same_result(tmp_path: Path, clip: tuple) -> None:
    data, _ = clip
    whole, whole_id = _ingest(tmp_path / "whole", data)
    assert process_media(whole, whole_id, OPTS).status == "done"
    expected = _outcome(whole, whole_id)
    whole.close()

    svc, media_id = _ingest(tmp_path / "crashed", data)
    real = ingest._apply

    def die_at_window_7(svc_: Services, work: dict, target: str) -> ingest.WindowResult:
        if work["window"] == 7:
            raise KeyboardInterrupt("worker killed")  # not an error the pipeline handles
        return real(svc_, work, target)

    ingest._apply = die_at_window_7  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            process_media(svc, media_id, OPTS)
    finally:
        ingest._apply = real  # type: ignore[assignment]
    with svc.sessions() as s:
        media = s.get(Media, media_id)
        assert media is not None and media.status == "processing"
        assert media.progress["window"] == 7 and svc.store.exists(media.progress["checkpoint"])
    ingest._OPEN.drop(media_id)  # a new process: nothing of the dead one is left in memory

    prepared: list[int] = []
    real_prepare = ingest._prepare_one

    def recording(svc_: Services, snap: dict, opts: IngestOptions) -> dict:
        prepared.append(int(snap["progress"].get("window", 0)))
        return real_prepare(svc_, snap, opts)

    ingest._prepare_one = recording  # type: ignore[assignment]
    try:
        assert process_media(svc, media_id, OPTS).status == "done"
    finally:
        ingest._prepare_one = real_prepare  # type: ignore[assignment]
    assert prepared == list(range(7, 13))  # resumed at the last committed window
    got = _outcome(svc, media_id)
    assert got["tracks"] == expected["tracks"] and got["sightings"] == expected["sightings"]
    assert sorted(got["points"]) == sorted(expected["points"])
    for pid, point in expected["points"].items():
        np.testing.assert_allclose(got["points"][pid].vector, point.vector, atol=1e-6)
    with svc.sessions() as s:  # the checkpoints were cleaned up as windows committed
        media = s.get(Media, media_id)
        assert media is not None and "checkpoint" not in media.progress
    assert not list(svc.store.iter_keys("checkpoints/"))  # none left behind
    svc.close()


def test_duplicate_window_deliveries_neither_stall_nor_finish_a_video_early(
    tmp_path: Path, clip: tuple
) -> None:
    """What the queued commit step decides when a window arrives twice (a redelivered message,
    or a duplicate chain after a visibility timeout)."""
    from aioreid.platform.pipeline import stages
    from aioreid.workers.tasks_ingest import _to_continue

    data, _ = clip
    svc, media_id = _ingest(tmp_path, data)
    window0 = ingest.embed(svc, ingest.prepare(svc, [media_id], OPTS))
    applied = ingest.commit(svc, window0)
    assert [r.status for r in applied] == ["pending"]
    assert [m["media_id"] for m in _to_continue(svc, window0, applied)] == [media_id]
    # The same commit delivered again: nothing is written twice, but the chain goes on (its
    # first delivery may have died before sending window 1), and the video is not finished.
    again = ingest.commit(svc, window0)
    assert [r.status for r in again] == ["skipped"]
    assert [m["media_id"] for m in _to_continue(svc, window0, again)] == [media_id]
    assert not stages.all_finished(svc, [media_id])
    # Once window 1 is applied, a late duplicate of window 0 stops: another chain is ahead.
    ingest.commit(svc, ingest.embed(svc, ingest.prepare(svc, [media_id], OPTS)))
    late = ingest.commit(svc, window0)
    assert [r.status for r in late] == ["skipped"] and _to_continue(svc, window0, late) == []
    assert not stages.all_finished(svc, [media_id])
    assert process_media(svc, media_id, OPTS).status == "done"
    assert stages.all_finished(svc, [media_id])
    svc.close()


def test_read_frame_seeks_to_exactly_the_frame_decoding_forward_gives(
    tmp_path: Path, clip: tuple
) -> None:
    from aioreid.platform.pipeline.frames import MediaDecodeError, VideoReader, read_frame

    path = tmp_path / "hall.mp4"
    path.write_bytes(clip[0])
    forward = VideoReader(path, SamplingOptions(sample_fps=0, dedup_threshold=0.0))
    frames = forward.read(200)
    forward.close()
    assert len(frames) == 150
    for i in (0, 1, 57, 149):  # the start, and seeks deep into the clip
        got = read_frame(path, i)
        assert got.index == i and np.array_equal(got.image, frames[i].image)
    with pytest.raises(MediaDecodeError, match="no frame 150"):
        read_frame(path, 150)
