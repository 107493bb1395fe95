"""Cases and evidence export, as an analyst uses them: open a case, pin a video track, a
still's sighting and searches with notes, close it; export the evidence ZIP through the API
(SDK) and the CLI; `aioreid case verify` passes on it and names the file when one byte is
changed, a file is added or one is removed.

One app per module over Postgres + a local-folder store + the in-process index, with the tiny
deterministic encoder; one short video (one walker) and two stills are ingested here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from platform_fixtures import jpeg, make_services, person_image, write_video
from typer.testing import CliRunner

from aioreid.platform.api.app import create_app
from aioreid.platform.cli import app as cli_app
from aioreid.platform.cli import cases as cli_cases
from aioreid.platform.db import crud
from aioreid.platform.db.models import AuditEvent, Sighting
from aioreid.platform.pipeline.frames import SamplingOptions
from aioreid.platform.pipeline.ingest import IngestOptions, MediaResult, ingest_file
from aioreid.platform.sdk import ApiError, Client
from aioreid.platform.services import Services

LOBBY_START = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
DOOR_START = datetime(2024, 5, 1, 14, 0, tzinfo=timezone.utc)
VIDEO_SIZE = (120, 160)  # height, width
VIDEO_OPTS = IngestOptions(detector="background", sampling=SamplingOptions(sample_fps=4))


@dataclass
class World:
    svc: Services
    http: TestClient
    ann: Client  # analyst
    bob: Client  # another analyst
    ann_key_id: int
    lobby: MediaResult
    doors: list[MediaResult]
    lobby_file: Path
    door_files: list[Path]
    track_id: int
    track_sightings: list[int]
    door_sighting: int


@pytest.fixture(scope="module")
def world(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[World]:
    home = tmp_path_factory.mktemp("cases")
    svc = make_services(home, pg_url, migrate=False)
    with svc.sessions.begin() as s:
        ann_key, ann_row = crud.create_api_key(s, "ann", role="analyst")
        bob_key, _ = crud.create_api_key(s, "bob", role="analyst")
        ann_id = ann_row.id
    files = tmp_path_factory.mktemp("footage")
    lobby_file = files / "lobby.mp4"
    write_video(lobby_file, frames=24, fps=8, size=VIDEO_SIZE)
    lobby = ingest_file(svc, lobby_file, camera="lobby", start_time=LOBBY_START, options=VIDEO_OPTS)
    assert lobby.status == "done" and lobby.tracks == 1, lobby
    doors, door_files = [], []
    for n, seed in enumerate((11, 12)):
        path = files / f"door{seed}.jpg"
        path.write_bytes(jpeg(person_image(seed)))
        at = DOOR_START + timedelta(minutes=n)
        doors.append(ingest_file(svc, path, camera="door", start_time=at, options=IngestOptions()))
        assert doors[-1].status == "done"
        door_files.append(path)
    with svc.sessions() as s:
        rows = s.execute(
            sa.select(Sighting.id, Sighting.track_id, Sighting.media_id).order_by(Sighting.id)
        ).all()
    track_id = next(t for _, t, m in rows if m == lobby.media_id)
    track_sightings = [sid for sid, t, _ in rows if t == track_id]
    door_sighting = next(sid for sid, _, m in rows if m == doors[0].media_id)
    http = TestClient(create_app(svc))
    ann = Client(api_key=ann_key, http_client=TestClient(http.app))
    bob = Client(api_key=bob_key, http_client=TestClient(http.app))
    try:
        yield World(
            svc,
            http,
            ann,
            bob,
            ann_id,
            lobby,
            doors,
            lobby_file,
            door_files,
            track_id,
            track_sightings,
            door_sighting,
        )
    finally:
        http.close()
        svc.close()


def _actions(case: Any) -> list[str]:
    return [h.action for h in case.history]


# ------------------------------------------------------------------------------ cases


def test_an_analyst_opens_a_case_pins_items_with_notes_and_closes_it(world: World) -> None:
    case = world.ann.create_case("Lobby theft", "bag taken at noon")
    assert (case.status, case.created_by, case.key_id) == ("open", "ann", world.ann_key_id)
    assert case.items == [] and _actions(case) == ["create"]

    case = world.ann.pin(case.id, "track", world.track_id, note="the man with the bag")
    item = case.items[0]
    assert (item.kind, item.ref_id, item.note, item.pinned_by) == (
        "track",
        world.track_id,
        "the man with the bag",
        "ann",
    )
    assert item.track is not None and item.track.camera == "lobby"
    assert item.track.sightings == sorted(world.track_sightings, key=item.track.sightings.index)
    assert set(item.track.sightings) == set(world.track_sightings)
    assert item.track.crop_url and world.ann.fetch(item.track.crop_url)[:3] == b"\xff\xd8\xff"

    # Cases are shared: another analyst pins to the same case.
    case = world.bob.pin(case.id, "sighting", world.door_sighting, note="same coat?")
    door = case.items[1]
    assert door.sighting is not None and door.sighting.camera == "door"
    assert door.pinned_by == "bob" and door.sighting.time is not None

    with pytest.raises(ApiError) as twice:
        world.ann.pin(case.id, "track", world.track_id)
    assert twice.value.status == 409 and "already pinned" in str(twice.value)
    with pytest.raises(ApiError) as unknown:
        world.ann.pin(case.id, "sighting", 10**12)
    assert unknown.value.status == 404

    case = world.ann.set_note(case.id, door.id, "same coat, other shoes")
    assert case.items[1].note == "same coat, other shoes"
    case = world.ann.unpin(case.id, door.id)
    assert [i.kind for i in case.items] == ["track"]

    closed = world.ann.close_case(case.id)
    assert closed.status == "closed" and closed.closed_at is not None
    with pytest.raises(ApiError) as refused:
        world.bob.pin(case.id, "sighting", world.door_sighting)
    assert refused.value.status == 409 and "closed" in str(refused.value)
    reopened = world.bob.reopen_case(case.id)
    assert reopened.status == "open" and reopened.closed_at is None

    history = reopened.history
    assert [h.action for h in history] == [
        "create",
        "pin",
        "pin",
        "note",
        "unpin",
        "close",
        "reopen",
    ]
    assert [h.actor for h in history][2] == "bob" and history[0].key_id == world.ann_key_id
    # The unpin keeps what was removed, note included.
    assert history[4].details["note"] == "same coat, other shoes"  # type: ignore[index]

    listed = world.bob.cases()
    assert listed.total >= 1 and listed.items[0].id == case.id and listed.items[0].items == 1
    assert world.ann.cases(status="closed").total == 0


def test_bad_case_input_gets_readable_answers(world: World) -> None:
    for body in ({"title": ""}, {"title": "   "}, {"title": "x", "colour": "red"}):
        r = world.http.post("/v1/cases", json=body, headers=world.ann._http.headers)
        assert r.status_code == 422, (body, r.text)
    with pytest.raises(ApiError) as missing:
        world.ann.case(999_999)
    assert missing.value.status == 404 and "999999" in str(missing.value)
    case = world.ann.create_case("t")
    with pytest.raises(ApiError) as no_item:
        world.ann.unpin(case.id, 10**9)
    assert no_item.value.status == 404


def test_a_pinned_search_keeps_its_inputs_scores_and_encoder_version(world: World) -> None:
    case = world.ann.create_case("Who wore red")
    query_image = world.door_files[1].read_bytes()
    filters = {"cameras": [c.id for c in world.ann.cameras() if c.name == "door"]}
    direct = world.ann.search(
        text="a person in red", rgb=query_image, filters=filters, level="sighting"
    )
    case = world.ann.pin_query(
        case.id,
        text="a person in red",
        rgb=query_image,
        filters=filters,
        level="sighting",
        note="first lead",
    )
    item = case.items[0]
    q = item.query
    assert item.kind == "query" and item.note == "first lead" and q is not None
    assert q["type"] == "search" and q["parts"]["text"] == "a person in red"
    rgb = q["parts"]["rgb"]
    assert rgb["sha256"] == hashlib.sha256(query_image).hexdigest()
    assert world.svc.store.get_bytes(rgb["object_key"]) == query_image  # the image is kept
    assert world.ann.fetch(rgb["url"]) == query_image
    # Every filter and option as it applied, defaults spelt out.
    assert q["filters"] == {**filters, "review": "any"}
    assert q["options"]["level"] == "sighting" and q["options"]["limit"] == 20
    assert q["encoder_version"] == direct.encoder_version == world.svc.encoder.version
    # The scores at pin time are the search's scores.
    assert [(h["sighting_id"], h["score"]) for h in q["hits"]] == [
        (h.sighting_id, h.score) for h in direct.hits
    ]
    assert [h["rank"] for h in q["hits"]] == list(range(1, len(direct.hits) + 1))

    case = world.ann.pin_query(case.id, similar_to=world.door_sighting, level="sighting")
    similar = case.items[1].query
    assert similar is not None and similar["type"] == "similar"
    assert similar["similar_to"] == world.door_sighting and similar["parts"] == {}
    assert world.door_sighting not in [h["sighting_id"] for h in similar["hits"]]

    with pytest.raises(ApiError) as both:
        world.ann.pin_query(case.id, text="x", similar_to=world.door_sighting)
    assert both.value.status == 422 and "not both" in str(both.value)
    with pytest.raises(ApiError) as nothing:
        world.ann.pin_query(case.id)
    assert nothing.value.status == 422


# ------------------------------------------------------------------------------ evidence


@pytest.fixture(scope="module")
def evidence(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """A case with the video track, a still's sighting and a search pinned, and review
    decisions on the track's sightings; exported through the SDK."""
    case = world.ann.create_case("Evidence", "for the prosecutor")
    world.ann.pin(case.id, "track", world.track_id, note="walks left to right")
    world.ann.pin(case.id, "sighting", world.door_sighting)
    world.ann.pin_query(case.id, text="someone walking", rgb=world.door_files[0].read_bytes())
    first, second = sorted(world.track_sightings)[:2]
    ident = world.ann.assign(first, label="walker").identity_id
    assert ident is not None
    world.ann.confirm(first, ident, note="clear view")
    if second != first:
        world.ann.reject(second, ident, note="too blurred to say")
    out = tmp_path_factory.mktemp("export") / "case.zip"
    assert world.ann.export_case(case.id, out) == out
    return case.id, out


def _manifest(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("manifest.json"))


def test_the_evidence_zip_holds_original_media_crops_frames_queries_and_trail(
    world: World, evidence: tuple[int, Path]
) -> None:
    case_id, path = evidence
    manifest = _manifest(path)
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        listed = {f["path"]: f for f in manifest["files"]}
        assert names == {*listed, "manifest.json"}
        for name, entry in listed.items():
            data = zf.read(name)
            assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])

        # The source video, byte for byte (untranscoded), and its track's exact segment.
        video = f"media/media-{world.lobby.media_id}.mp4"
        assert zf.read(video) == world.lobby_file.read_bytes()
        [segment] = manifest["segments"]
        track = world.ann.track(world.track_id)
        assert segment["media_file"] == video and segment["track_id"] == world.track_id
        assert (segment["first_frame"], segment["last_frame"]) == (
            track.first_frame,
            track.last_frame,
        )
        assert segment["start_time"] == track.start_time.isoformat()  # type: ignore[union-attr]
        assert segment["media_sha256"] == hashlib.sha256(zf.read(video)).hexdigest()
        still = f"media/media-{world.doors[0].media_id}.jpg"
        assert zf.read(still) == world.door_files[0].read_bytes()

        # A crop and a frame with its box drawn for every sighting of the track and the still.
        for sid in [*world.track_sightings, world.door_sighting]:
            assert f"crops/sighting-{sid}.jpg" in names
            frame = cv2.imdecode(
                np.frombuffer(zf.read(f"frames/sighting-{sid}.jpg"), np.uint8), cv2.IMREAD_COLOR
            )
            with world.svc.sessions() as s:
                row = s.get(Sighting, sid)
                box = (row.box_x, row.box_y, row.box_w, row.box_h)  # type: ignore[union-attr]
            if sid != world.door_sighting:
                assert frame.shape[:2] == VIDEO_SIZE
            x, y, w, _ = box
            blue, green, red = frame[y, x + 2 : x + w - 2].astype(int).mean(axis=0)
            assert green > 200 and red < 80 and blue < 80, (sid, blue, green, red)  # the box

        # The pinned search with its image, the case with its notes.
        [query_json] = [n for n in names if n.startswith("queries/") and n.endswith(".json")]
        query = json.loads(zf.read(query_json))
        assert query["parts"]["text"] == "someone walking" and query["hits"]
        assert query["encoder_version"] == world.svc.encoder.version
        assert zf.read(query["parts"]["rgb"]["file"]) == world.door_files[0].read_bytes()
        case = json.loads(zf.read("case.json"))
        assert case["title"] == "Evidence"
        assert case["items"][0]["note"] == "walks left to right"

        # Review decisions and the audit events touching those sightings and identities.
        decisions = json.loads(zf.read("review/decisions.json"))
        assert {d["decision"] for d in decisions} >= {"confirm"}
        assert any(d["note"] == "clear view" for d in decisions)
        audit = json.loads(zf.read("review/audit.json"))
        actions = {(e["action"], e["entity"]) for e in audit}
        assert {("assign", "sighting"), ("confirm", "sighting"), ("pin", "case")} <= actions

    assert manifest["case"]["id"] == case_id and manifest["exported_by"]["actor"] == "ann"
    assert manifest["exported_by"]["key_id"] == world.ann_key_id
    assert manifest["software"]["name"] == "aio-reid" and manifest["software"]["version"]
    assert manifest["media_mode"] == "original" and manifest["not_exported"] == []
    # The export is audited with the manifest's hash.
    with world.svc.sessions() as s:
        event = s.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "export", AuditEvent.entity_id == str(case_id))
            .order_by(AuditEvent.id.desc())
        ).first()
    with zipfile.ZipFile(path) as zf:
        manifest_sha = hashlib.sha256(zf.read("manifest.json")).hexdigest()
    assert event is not None and event.details["manifest_sha256"] == manifest_sha  # type: ignore[index]
    assert event.key_id == world.ann_key_id


def _verify(path: Path) -> Any:
    return CliRunner().invoke(cli_app, ["case", "verify", str(path)])


def test_case_verify_passes_on_an_export(evidence: tuple[int, Path]) -> None:
    result = _verify(evidence[1])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: ") and "every SHA-256" in result.output
    assert f"case {evidence[0]} 'Evidence'" in result.output


def _data_offset(path: Path, name: str) -> int:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    return (
        info.header_offset
        + 30
        + int.from_bytes(header[26:28], "little")
        + int.from_bytes(header[28:30], "little")
    )


def _rewrite(src: Path, dest: Path, *, drop: str | None = None, change: str | None = None) -> None:
    """A copy of the ZIP without ``drop`` and with ``change``'s content altered (a valid ZIP,
    as someone editing it with a ZIP tool would leave it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            if info.filename == drop:
                continue
            data = zin.read(info.filename)
            if info.filename == change:
                data = data.replace(b"clear view", b"blurry....")
            zout.writestr(info, data)


def test_case_verify_names_a_changed_added_or_removed_file(
    world: World, evidence: tuple[int, Path], tmp_path: Path
) -> None:
    src = evidence[1]
    crop = f"crops/sighting-{world.door_sighting}.jpg"

    flipped = tmp_path / "flipped.zip"
    shutil.copy(src, flipped)
    at = _data_offset(flipped, crop) + 100
    with open(flipped, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = _verify(flipped)
    assert result.exit_code == 1 and result.output.startswith("FAILED")
    assert f"{crop}: damaged" in result.output

    edited = tmp_path / "edited.zip"
    _rewrite(src, edited, change="review/decisions.json")
    result = _verify(edited)
    assert result.exit_code == 1
    assert "review/decisions.json: SHA-256 differs from the manifest" in result.output

    added = tmp_path / "added.zip"
    shutil.copy(src, added)
    with zipfile.ZipFile(added, "a") as zf:
        zf.writestr("frames/extra.jpg", b"not evidence")
    result = _verify(added)
    assert result.exit_code == 1
    assert "frames/extra.jpg: in the ZIP but not listed in the manifest" in result.output

    removed = tmp_path / "removed.zip"
    _rewrite(src, removed, drop=crop)
    result = _verify(removed)
    assert result.exit_code == 1
    assert f"{crop}: listed in the manifest but missing from the ZIP" in result.output
    assert "1 problem" in result.output

    not_zip = tmp_path / "junk.zip"
    not_zip.write_bytes(b"nothing here")
    result = _verify(not_zip)
    assert result.exit_code == 1 and "not a readable ZIP" in result.output


def test_cli_export_writes_a_verifiable_zip_and_media_by_reference(
    world: World, evidence: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_cases, "get_settings", lambda: world.svc.settings)
    out = tmp_path / "by-reference.zip"
    runner = CliRunner()
    result = runner.invoke(
        cli_app, ["case", "export", str(evidence[0]), "--out", str(out), "--media", "reference"]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and "manifest SHA-256" in result.output
    manifest = _manifest(out)
    assert manifest["exported_by"] == {"actor": "cli", "key_id": None}
    assert not [f for f in manifest["files"] if f["path"].startswith("media/")]
    video = next(m for m in manifest["media"] if m["media_id"] == world.lobby.media_id)
    assert video["included"] is False
    assert video["sha256"] == hashlib.sha256(world.lobby_file.read_bytes()).hexdigest()
    assert _verify(out).exit_code == 0

    missing = runner.invoke(cli_app, ["case", "export", "999999", "--out", str(out)])
    assert missing.exit_code == 2 and "999999" in missing.output
