"""Person tracks through the API, the SDK and the CLI: listing and opening tracks, a
sighting's full source frame with its box, and search at track or sighting level.

One app per module over Postgres + a local-folder store + the in-process index, with the tiny
deterministic encoder; the SDK talks to it through FastAPI's TestClient (no server thread).
Two short videos (one walker each) and two still images are ingested in this process.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from platform_fixtures import jpeg, make_services, person_image, write_video
from typer.testing import CliRunner

from aioreid.platform.api.app import create_app
from aioreid.platform.cli import app as cli_app
from aioreid.platform.db import crud
from aioreid.platform.db.models import Media, Sighting, Track
from aioreid.platform.pipeline.frames import SamplingOptions
from aioreid.platform.pipeline.ingest import IngestOptions, MediaResult, ingest_file
from aioreid.platform.sdk import ApiError, Client
from aioreid.platform.services import Services

JPEG_MAGIC = b"\xff\xd8\xff"
LOBBY_START = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
STREET_START = datetime(2024, 5, 1, 13, 0, tzinfo=timezone.utc)
DOOR_START = datetime(2024, 5, 1, 14, 0, tzinfo=timezone.utc)
VIDEO_FPS = 8
VIDEO_SIZE = (120, 160)  # height, width
VIDEO_OPTS = IngestOptions(detector="background", sampling=SamplingOptions(sample_fps=4))
IMAGE_OPTS = IngestOptions(detector="crops")
HUGE_ID = 10**30


@dataclass
class World:
    svc: Services
    http: TestClient
    client: Client
    lobby: MediaResult
    street: MediaResult
    doors: list[MediaResult]
    lobby_file: Path
    cameras: dict[str, int]


def _ingest_video(svc: Services, path: Path, frames: int, camera: str, start: datetime) -> Any:
    write_video(path, frames=frames, fps=VIDEO_FPS, size=VIDEO_SIZE)
    res = ingest_file(svc, path, camera=camera, start_time=start, options=VIDEO_OPTS)
    assert res.status == "done" and res.tracks == 1, res
    return res


@pytest.fixture(scope="module")
def world(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[World]:
    home = tmp_path_factory.mktemp("tracks")
    svc = make_services(home, pg_url, migrate=False)
    with svc.sessions.begin() as s:
        key, _ = crud.create_api_key(s, "analyst-tracks", role="analyst")
    files = tmp_path_factory.mktemp("footage")
    lobby = _ingest_video(svc, files / "lobby.mp4", 24, "lobby", LOBBY_START)
    # A different length gives different bytes: media are stored once per SHA-256.
    street = _ingest_video(svc, files / "street.mp4", 20, "street", STREET_START)
    doors = []
    for n, seed in enumerate((11, 12)):
        path = files / f"door{seed}.jpg"
        path.write_bytes(jpeg(person_image(seed)))
        at = DOOR_START + timedelta(minutes=n)
        doors.append(ingest_file(svc, path, camera="door", start_time=at, options=IMAGE_OPTS))
        assert doors[-1].status == "done" and doors[-1].tracks == 1
    http = TestClient(create_app(svc))
    client = Client(api_key=key, http_client=http)
    cameras = {c.name: c.id for c in client.cameras()}
    try:
        yield World(svc, http, client, lobby, street, doors, files / "lobby.mp4", cameras)
    finally:
        http.close()
        svc.close()


def _one_track(world: World, media_id: int) -> Any:
    page = world.client.tracks(media=media_id)
    assert page.total == 1, page
    return world.client.track(page.items[0].id)


def _decode(data: bytes) -> np.ndarray:
    """JPEG bytes as an RGB array."""
    assert data.startswith(JPEG_MAGIC)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _video_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video in decode order (what ingestion's frame indices count), RGB."""
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return out


def _border(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels of the box's outermost ring, away from the corners, as N×3."""
    x, y, w, h = box
    ring = [
        img[y, x + 3 : x + w - 3],
        img[y + h - 1, x + 3 : x + w - 3],
        img[y + 3 : y + h - 3, x],
        img[y + 3 : y + h - 3, x + w - 1],
    ]
    return np.concatenate(ring).astype(np.int32)


def _iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def _is_green(pixels: np.ndarray) -> bool:
    r, g, b = pixels.mean(axis=0)
    return bool(g > 200 and r < 80 and b < 80)


# ------------------------------------------------------------------------------ listing


def test_a_video_ingest_lists_one_track_with_its_camera_span_and_frames(world: World) -> None:
    page = world.client.tracks(media=world.lobby.media_id)
    assert page.total == 1 and len(page.items) == 1
    t = page.items[0]
    assert t.camera == "lobby" and t.camera_id == world.cameras["lobby"]
    assert t.media_id == world.lobby.media_id
    # The walker crosses the whole 3 s clip: ten or more sampled frames, 2-3 s long.
    assert t.frames >= 10 and t.first_frame < t.last_frame <= 23
    assert t.start_time is not None and t.end_time is not None
    assert LOBBY_START <= t.start_time < t.end_time <= LOBBY_START + timedelta(seconds=3)
    assert 2.0 <= (t.end_time - t.start_time).total_seconds() < 3.0
    assert t.end_offset_s - t.start_offset_s == pytest.approx(
        (t.end_time - t.start_time).total_seconds(), abs=1e-3
    )
    assert t.sighting_count == world.lobby.sightings >= 1
    assert t.crop_url is not None and world.client.fetch(t.crop_url).startswith(JPEG_MAGIC)


def test_tracks_are_ordered_by_time_and_page_with_a_total(world: World) -> None:
    everything = world.client.tracks()
    assert everything.total == 4
    names = [t.camera for t in everything.items]
    assert names == ["lobby", "street", "door", "door"]
    starts = [t.start_time for t in everything.items]
    assert starts == sorted(starts)  # type: ignore[type-var]

    pages = [world.client.tracks(offset=o, limit=3) for o in (0, 3)]
    assert [p.total for p in pages] == [4, 4]
    assert [len(p.items) for p in pages] == [3, 1]
    assert [t.id for p in pages for t in p.items] == [t.id for t in everything.items]
    assert world.client.tracks(offset=10).items == []


def test_tracks_filter_by_camera_media_and_time(world: World) -> None:
    door = world.client.tracks(camera=world.cameras["door"])
    assert door.total == 2 and {t.camera for t in door.items} == {"door"}
    assert world.client.tracks(media=world.street.media_id).items[0].camera == "street"

    # Overlap, not containment: a window inside the lobby track finds it.
    inside = world.client.tracks(
        time_from=LOBBY_START + timedelta(seconds=1.2), time_to=LOBBY_START + timedelta(seconds=1.4)
    )
    assert [t.camera for t in inside.items] == ["lobby"]
    after_lobby = world.client.tracks(time_from=LOBBY_START + timedelta(minutes=30))
    assert [t.camera for t in after_lobby.items] == ["street", "door", "door"]
    both = world.client.tracks(
        camera=world.cameras["door"], time_from=DOOR_START + timedelta(seconds=30)
    )
    assert both.total == 1 and both.items[0].start_time == DOOR_START + timedelta(minutes=1)
    assert world.client.tracks(time_to=LOBBY_START - timedelta(seconds=1)).total == 0
    # A time without a zone is UTC (as in search filters), not an error.
    naive = world.client.tracks(time_from="2024-05-01T13:30:00")
    assert [t.camera for t in naive.items] == ["door", "door"]


def test_bad_track_queries_are_readable_422s(world: World) -> None:
    backwards = world.http.get(
        "/v1/tracks",
        params={"time_from": STREET_START.isoformat(), "time_to": LOBBY_START.isoformat()},
    )
    assert backwards.status_code == 422
    assert backwards.json()["detail"] == "time_to is before time_from"
    for params in (
        {"time_from": "yesterday"},
        {"camera": str(HUGE_ID)},
        {"limit": "0"},
        {"limit": "501"},
        {"offset": "-1"},
    ):
        resp = world.http.get("/v1/tracks", params=params)
        assert resp.status_code == 422, params
    assert world.http.get("/v1/tracks").status_code == 200


# ------------------------------------------------------------------------------ one track


def test_a_track_has_its_boxes_sightings_and_a_clip_link(world: World) -> None:
    t = _one_track(world, world.lobby.media_id)
    assert t.camera == "lobby" and t.media_kind == "video"
    assert len(t.boxes) == t.frames
    assert [b[0] for b in t.boxes] == sorted(b[0] for b in t.boxes)
    assert (t.boxes[0][0], t.boxes[-1][0]) == (t.first_frame, t.last_frame)
    assert all(w > 0 and h > 0 for _, _, _, w, h in t.boxes)

    assert len(t.sightings) == t.sighting_count == world.lobby.sightings
    by_frame = {b[0]: b[1:] for b in t.boxes}
    for crop in t.sightings:
        assert t.first_frame <= crop.frame_index <= t.last_frame
        assert world.client.fetch(crop.url).startswith(JPEG_MAGIC)
        one = world.client.sighting(crop.sighting_id)
        assert one.track_id == t.id and one.box == crop.box
        # A crop is taken around the track's box on its frame (padded a little).
        assert _iou(tuple(by_frame[crop.frame_index]), crop.box) > 0.6
        assert crop.time == LOBBY_START + timedelta(seconds=crop.offset_s)
    best = max(t.sightings, key=lambda c: (c.quality, -c.sighting_id))
    assert t.crop_url is not None and t.crop_url.split("?")[0] == best.url.split("?")[0]

    # The clip is the source video, and the fragment link starts where the track starts.
    assert t.clip_url is not None
    assert world.client.fetch(t.clip_url) == world.lobby_file.read_bytes()
    assert t.clip_offset_s == t.start_offset_s > 0
    assert t.clip_url_at is not None and t.clip_url_at.startswith(t.clip_url)
    assert float(t.clip_url_at.rsplit("#t=", 1)[1]) == pytest.approx(t.start_offset_s, abs=1e-3)


def test_a_sighting_links_to_its_track_and_its_moment_in_the_clip(world: World) -> None:
    t = _one_track(world, world.lobby.media_id)
    crop = t.sightings[-1]
    one = world.client.sighting(crop.sighting_id)
    assert one.track_id == t.id and one.frame_index == crop.frame_index
    assert one.clip_url is not None and one.clip_url.split("?")[0] == t.clip_url.split("?")[0]  # type: ignore[union-attr]
    assert one.clip_offset_s == pytest.approx(crop.frame_index / VIDEO_FPS, abs=1e-3)

    still = _one_track(world, world.doors[0].media_id)
    assert still.media_kind == "image" and still.frames == 1 and still.clip_url_at is None
    image_sighting = world.client.sighting(still.sightings[0].sighting_id)
    assert image_sighting.clip_offset_s == 0.0 and image_sighting.track_id == still.id


def test_unknown_or_huge_ids_are_404_or_422_never_500(world: World) -> None:
    for path in (
        "/v1/tracks/987654321",
        "/v1/sightings/987654321",
        "/v1/sightings/987654321/frame",
    ):
        resp = world.http.get(path)
        assert resp.status_code == 404, path
        assert "987654321 does not exist" in resp.json()["detail"]
    for path in (
        f"/v1/tracks/{HUGE_ID}",
        f"/v1/sightings/{HUGE_ID}",
        f"/v1/sightings/{HUGE_ID}/frame",
        "/v1/tracks/0",
        "/v1/tracks/abc",
    ):
        assert world.http.get(path).status_code == 422, path
    assert world.http.post(f"/v1/sightings/{HUGE_ID}/similar").status_code == 422
    with pytest.raises(ApiError) as err:
        world.client.track(987_654_321)
    assert err.value.status == 404 and "track 987654321" in str(err.value)
    with pytest.raises(ApiError) as err:
        world.client.sighting_frame(987_654_321)
    assert err.value.status == 404


# ------------------------------------------------------------------------------ frames


def test_a_video_sightings_frame_is_the_exact_frame_with_its_box_drawn(world: World) -> None:
    t = _one_track(world, world.lobby.media_id)
    crop = max(t.sightings, key=lambda c: c.frame_index)  # deep in the clip: a real seek
    leftovers = set(Path(tempfile.gettempdir()).glob("aioreid-frame-*"))
    boxed = _decode(world.client.sighting_frame(crop.sighting_id))
    plain = _decode(world.client.sighting_frame(crop.sighting_id, box=False))
    assert boxed.shape == plain.shape == (*VIDEO_SIZE, 3)
    assert _is_green(_border(boxed, crop.box))
    assert not _is_green(_border(plain, crop.box))
    # Away from the box the two are the same picture.
    x, y, w, h = crop.box
    outside = np.ones(VIDEO_SIZE, bool)
    outside[max(0, y - 3) : y + h + 3, max(0, x - 3) : x + w + 3] = False
    diff = np.abs(boxed.astype(int) - plain.astype(int))[outside]
    assert diff.mean() < 3

    # Exactly the indexed frame (the walker moves 5 px a frame: neighbours differ).
    frames = _video_frames(world.lobby_file)

    def error(i: int) -> float:
        return float(np.abs(plain.astype(int) - frames[i].astype(int)).mean())

    i = crop.frame_index
    assert error(i) < min(error(j) for j in (i - 1, i + 1) if 0 <= j < len(frames))
    # The downloaded copy of the video is gone once the frame is sent.
    assert set(Path(tempfile.gettempdir()).glob("aioreid-frame-*")) == leftovers


def test_an_image_sightings_frame_is_the_image_with_its_box(world: World) -> None:
    still = _one_track(world, world.doors[1].media_id)
    crop = still.sightings[0]
    resp = world.http.get(f"/v1/sightings/{crop.sighting_id}/frame")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    boxed = _decode(resp.content)
    plain = _decode(world.client.sighting_frame(crop.sighting_id, box=False))
    assert boxed.shape == plain.shape == person_image(12).shape
    assert _is_green(_border(boxed, crop.box)) and not _is_green(_border(plain, crop.box))


# ------------------------------------------------------------------------------ search levels


def test_track_level_search_gives_one_hit_per_track(world: World) -> None:
    res = world.client.search(text="a person in a red top", limit=50)
    assert res.level == "track"
    assert len(res.hits) == 4
    assert all(h.track is not None and h.track_id == h.track.track_id for h in res.hits)
    assert len({h.track_id for h in res.hits}) == 4
    lobby = next(h for h in res.hits if h.camera == "lobby")
    detail = _one_track(world, world.lobby.media_id)
    assert lobby.track is not None and lobby.track.track_id == detail.id
    assert lobby.track.frames == detail.frames and lobby.track.sightings == len(detail.sightings)
    assert lobby.track.start == detail.start_time and lobby.track.end == detail.end_time


def test_sighting_level_search_gives_one_hit_per_crop(world: World) -> None:
    crops = world.lobby.sightings + world.street.sightings + 2
    res = world.client.search(text="a person in a red top", limit=50, level="sighting")
    assert res.level == "sighting"
    assert len(res.hits) == len({h.sighting_id for h in res.hits}) == crops
    assert all(h.track is None and h.track_id is not None for h in res.hits)

    t = _one_track(world, world.lobby.media_id)
    similar = world.client.find_similar(t.sightings[0].sighting_id, limit=50, level="sighting")
    assert similar.level == "sighting" and len(similar.hits) == crops - 1


def test_an_unknown_level_is_a_readable_422(world: World) -> None:
    resp = world.http.post("/v1/search", data={"text": "someone", "level": "person"})
    assert resp.status_code == 422
    assert resp.json()["detail"] == "level must be 'track' or 'sighting', got 'person'"
    with pytest.raises(ApiError) as err:
        world.client.search(text="someone", level="frames")  # type: ignore[arg-type]
    assert err.value.status == 422 and "level must be" in str(err.value)
    similar = world.http.post(
        f"/v1/sightings/{_one_track(world, world.lobby.media_id).sightings[0].sighting_id}/similar",
        json={"options": {"level": "frames"}},
    )
    assert similar.status_code == 422


class _Borrowed:
    """The module's services lent to the CLI, which closes what it is given."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._svc, name)

    def close(self) -> None:
        pass


def test_cli_search_shows_each_tracks_span_and_frames(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aioreid.platform.cli import service as cli_platform

    monkeypatch.setattr(cli_platform, "_services", lambda: _Borrowed(world.svc))
    runner = CliRunner()
    tracks = runner.invoke(cli_app, ["search", "--text", "someone", "--limit", "10"])
    assert tracks.exit_code == 0, tracks.output
    assert "4 hits at track level" in tracks.output
    detail = _one_track(world, world.lobby.media_id)
    line = next(ln for ln in tracks.output.splitlines() if f"track {detail.id}:" in ln)
    assert f"{detail.frames} frames" in line and detail.start_time.isoformat() in line  # type: ignore[union-attr]

    crops = runner.invoke(cli_app, ["search", "--text", "someone", "--level", "sighting"])
    assert crops.exit_code == 0 and "at sighting level" in crops.output
    assert "track " not in crops.output

    bad = runner.invoke(cli_app, ["search", "--text", "someone", "--level", "frames"])
    assert bad.exit_code == 2 and "--level must be track or sighting" in bad.output


# ------------------------------------------------------------------------------ broken media


def test_unreadable_source_media_is_a_readable_error(world: World, tmp_path: Path) -> None:
    # Own media, spoilt after ingest, so the other tests' media stay intact.
    video = _ingest_video(
        world.svc, tmp_path / "spoilt.mp4", 16, "spoilt", LOBBY_START + timedelta(hours=5)
    )
    image = tmp_path / "gone.jpg"
    image.write_bytes(jpeg(person_image(13)))
    gone = ingest_file(world.svc, image, camera="spoilt", options=IMAGE_OPTS)
    with world.svc.sessions() as s:
        keys = {
            m.id: m.object_key
            for m in s.query(Media).filter(Media.id.in_([video.media_id, gone.media_id]))
        }
        sid = {
            m: s.query(Sighting.id).filter(Sighting.media_id == m).first()[0]  # type: ignore[index]
            for m in keys
        }
    world.svc.store.put_at(keys[video.media_id], b"not a video any more")
    world.svc.store.delete(keys[gone.media_id])
    try:
        corrupt = world.http.get(f"/v1/sightings/{sid[video.media_id]}/frame")
        assert corrupt.status_code == 422
        assert "cannot be read" in corrupt.json()["detail"]
        missing = world.http.get(f"/v1/sightings/{sid[gone.media_id]}/frame")
        assert missing.status_code == 409
        assert "no longer stored" in missing.json()["detail"]
    finally:  # leave the listing as the other tests expect it
        with world.svc.sessions.begin() as s:
            for m in keys:
                s.query(Track).filter(Track.media_id == m).delete()
                s.delete(s.get(Media, m))
