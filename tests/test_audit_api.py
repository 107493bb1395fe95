"""The audit page's backend, camera positions and stable thumbnail links, through the API.

- ``GET /v1/audit``: every action by key, searches included; filters by actor, action,
  entity, key and time, paged with a total; admins see everyone's events, other keys their own.
- ``PATCH /v1/cameras/{id}`` (operators) and ``aioreid cameras set-location`` place cameras;
  ``GET /v1/cameras`` returns the positions.
- Signed links are the same URL for a while (so browsers reuse cached thumbnails) and still
  verify; content-addressed objects are served ``immutable``.

Postgres + local store + in-process index, tiny encoder, four stills on two cameras.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from platform_fixtures import jpeg, make_services, person_image
from typer.testing import CliRunner

from aioreid.platform.api.app import create_app
from aioreid.platform.cli import app as cli_app
from aioreid.platform.cli import cases as cli_cases
from aioreid.platform.db import crud
from aioreid.platform.db.models import AuditEvent, Media, Sighting
from aioreid.platform.pipeline.ingest import ingest_bytes
from aioreid.platform.sdk import ApiError, Client
from aioreid.platform.services import Services
from aioreid.platform.storage import LocalObjectStore, MinioObjectStore, verify_signature
from aioreid.platform.storage.base import link_bucket_s


@dataclass
class World:
    svc: Services
    http: TestClient
    clients: dict[str, Client]
    key_ids: dict[str, int]
    sightings: list[int]


@pytest.fixture(scope="module")
def world(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[World]:
    svc = make_services(tmp_path_factory.mktemp("audit"), pg_url, migrate=False)
    for seed in range(4):
        camera = "gate" if seed < 2 else "hall"
        res = ingest_bytes(svc, jpeg(person_image(seed)), f"p{seed}.jpg", camera=camera)
        assert res.status == "done", res
    keys, ids = {}, {}
    with svc.sessions.begin() as s:
        for name, role in (("ann", "analyst"), ("bob", "analyst"), ("olga", "operator")):
            keys[name], row = crud.create_api_key(s, name, role=role)
            ids[name] = row.id
        keys["root"], row = crud.create_api_key(s, "root", role="admin")
        ids["root"] = row.id
        sightings = list(
            s.scalars(sa.select(Sighting.id).join(Media).order_by(Media.original_name))
        )
    http = TestClient(create_app(svc))
    clients = {n: Client(api_key=k, http_client=TestClient(http.app)) for n, k in keys.items()}
    try:
        yield World(svc, http, clients, ids, sightings)
    finally:
        http.close()
        svc.close()


# ------------------------------------------------------------------------------ audit


def test_every_search_is_audited_with_its_parts_filters_and_hit_count(world: World) -> None:
    ann = world.clients["ann"]
    before = datetime.now(timezone.utc)
    res = ann.search(
        text="a man in a red coat",
        rgb=jpeg(person_image(7)),
        filters={"modalities": ["rgb"]},
        limit=3,
        level="sighting",
    )
    ann.find_similar(world.sightings[0], limit=2)
    page = ann.audit(action="search", since=before)
    assert page.total == 2 and page.scope == "own"
    similar, search = page.items  # newest first
    assert (search.actor, search.key_id, search.entity) == ("ann", world.key_ids["ann"], "search")
    d = search.details or {}
    assert d["parts"] == ["rgb", "text"] and d["text"] == "a man in a red coat"
    assert d["filters"] == {"modalities": ["rgb"]}  # what differs from the defaults
    assert d["options"] == {"limit": 3, "level": "sighting"}
    assert d["hits"] == len(res.hits) and d["encoder_version"] == res.encoder_version
    # What was asked, never the image itself: a few hundred bytes.
    assert set(d) == {
        "parts",
        "text",
        "filters",
        "options",
        "level",
        "encoder_version",
        "hits",
        "has_more",
    }
    assert len(str(d)) < 400
    assert similar.entity_id == str(world.sightings[0])
    assert (similar.details or {})["parts"] == ["sighting"]


def test_keys_see_their_own_events_and_admins_everyones(world: World) -> None:
    ann, bob, root = (world.clients[n] for n in ("ann", "bob", "root"))
    bob.search(text="bob was here")
    bobs = bob.audit()
    assert bobs.scope == "own" and {e.actor for e in bobs.items} == {"bob"}
    assert all(e.actor == "ann" for e in ann.audit(limit=500).items)
    with pytest.raises(ApiError) as other:
        ann.audit(key_id=world.key_ids["bob"])
    assert other.value.status == 403 and "only its own" in str(other.value)
    assert ann.audit(actor="bob").total == 0  # a filter, not a way round the rule

    everyone = root.audit(limit=500)
    assert everyone.scope == "all" and {"ann", "bob"} <= {e.actor for e in everyone.items}
    assert root.audit(key_id=world.key_ids["bob"]).total == bobs.total
    assert root.audit(actor="bob", action="search").total >= 1


def test_audit_filters_page_with_a_total(world: World) -> None:
    root, ann = world.clients["root"], world.clients["ann"]
    start = datetime.now(timezone.utc)
    for n in range(3):
        ann.create_case(f"case {n}")
    mid = datetime.now(timezone.utc)
    ann.search(text="after the cases")
    created = root.audit(entity="case", action="create", since=start)
    assert created.total == 3 and [e.details["title"] for e in created.items] == [  # type: ignore[index]
        "case 2",
        "case 1",
        "case 0",
    ]
    pages = [root.audit(entity="case", since=start, offset=o, limit=2) for o in (0, 2)]
    assert [p.total for p in pages] == [3, 3] and [len(p.items) for p in pages] == [2, 1]
    assert root.audit(since=start, until=mid, action="search").total == 0
    assert root.audit(since=mid, action="search").total == 1
    # A time without a zone is UTC; an empty window is fine; a reversed one is a 422.
    naive = (start - timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert root.audit(since=naive, entity="case", action="create").total >= 3
    r = world.http.get(
        "/v1/audit",
        params={"since": mid.isoformat(), "until": start.isoformat()},
        headers=root._http.headers,
    )
    assert r.status_code == 422 and "before since" in r.text


def test_review_case_and_camera_actions_all_land_in_the_trail(world: World) -> None:
    ann, olga = world.clients["ann"], world.clients["olga"]
    start = datetime.now(timezone.utc)
    ident = ann.assign(world.sightings[1], label="p1").identity_id
    case = ann.create_case("trail")
    ann.pin(case.id, "sighting", world.sightings[1])
    gate = next(c for c in olga.cameras() if c.name == "gate")
    olga.set_camera_location(gate.id, 52.0, 4.0)
    mine = [(e.action, e.entity) for e in ann.audit(since=start, limit=50).items]
    assert mine == [("pin", "case"), ("create", "case"), ("assign", "sighting")]
    assert [(e.action, e.entity) for e in olga.audit(since=start).items] == [("locate", "camera")]
    assert ident is not None


# ------------------------------------------------------------------------------ cameras


def test_operators_place_cameras_and_everyone_sees_where(world: World) -> None:
    olga, ann = world.clients["olga"], world.clients["ann"]
    hall = next(c for c in ann.cameras() if c.name == "hall")
    placed = olga.set_camera_location(hall.id, 52.3731, 4.8922, location="main hall")
    assert (placed.latitude, placed.longitude, placed.location) == (52.3731, 4.8922, "main hall")
    listed = next(c for c in ann.cameras() if c.id == hall.id)
    assert (listed.latitude, listed.longitude, listed.location) == (52.3731, 4.8922, "main hall")

    with pytest.raises(ApiError) as analyst:
        ann.set_camera_location(hall.id, 1.0, 1.0)
    assert analyst.value.status == 403 and "operator" in str(analyst.value)
    for lat, lon in ((91.0, 0.0), (0.0, -181.0), (10.0, None)):
        with pytest.raises(ApiError) as bad:
            olga.set_camera_location(hall.id, lat, lon)
        assert bad.value.status == 422, (lat, lon)
    assert "both or neither" in str(bad.value)
    with pytest.raises(ApiError) as unknown:
        olga.set_camera_location(99_999, 1.0, 1.0)
    assert unknown.value.status == 404

    cleared = olga.set_camera_location(hall.id, None, None)
    assert (cleared.latitude, cleared.longitude, cleared.location) == (None, None, "main hall")


def test_cli_sets_and_lists_camera_positions(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_cases, "get_settings", lambda: world.svc.settings)
    runner = CliRunner()
    done = runner.invoke(
        cli_app, ["cameras", "set-location", "gate", "--lat", "48.8584", "--lon", "2.2945"]
    )
    assert done.exit_code == 0, done.output
    assert "at 48.8584, 2.2945" in done.output
    gate = next(c for c in world.clients["ann"].cameras() if c.name == "gate")
    assert (gate.latitude, gate.longitude) == (48.8584, 2.2945)
    listing = runner.invoke(cli_app, ["cameras", "list"])
    assert "48.858400, 2.294500" in listing.output
    with world.svc.sessions() as s:
        event = s.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "locate", AuditEvent.actor == "cli")
            .order_by(AuditEvent.id.desc())
        ).first()
    assert event is not None and event.entity_id == str(gate.id) and event.key_id is None

    for args, words in (
        (["nowhere", "--lat", "1", "--lon", "1"], "no camera named 'nowhere'"),
        (["gate", "--lat", "1"], "both --lat and --lon"),
        (["gate", "--lat", "95", "--lon", "1"], "latitude must be within -90..90"),
    ):
        bad = runner.invoke(cli_app, ["cameras", "set-location", *args])
        assert bad.exit_code == 2 and words in bad.output, bad.output


# ------------------------------------------------------------------------------ stable links


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_link_is_the_same_url_a_second_later_and_still_verifies(tmp_path: Any) -> None:
    store = LocalObjectStore(tmp_path, b"signing", presign_seconds=3600)
    key = store.put_bytes(b"crop", kind="crops", ext=".jpg")
    first = store.presigned_url(key)
    time.sleep(1.05)
    second = store.presigned_url(key)
    assert first == second
    q = _query(second)
    now = time.time()
    assert now + 3600 - 2 <= int(q["expires"]) <= now + 3600 + link_bucket_s(3600)
    assert verify_signature(key, q["expires"], q["signature"], b"signing")

    minio = MinioObjectStore("127.0.0.1:9", "ak", "sk", "bucket", create_bucket=False)
    a = minio.presigned_url(key)
    time.sleep(1.05)
    assert minio.presigned_url(key) == a  # signed offline: no server needed
    signed_at = datetime.strptime(_query(a)["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    assert signed_at.replace(tzinfo=timezone.utc).timestamp() % link_bucket_s(3600) == 0
    assert int(_query(a)["X-Amz-Expires"]) == 3600 + link_bucket_s(3600)


def test_search_thumbnails_are_stable_and_cached_as_immutable(world: World) -> None:
    ann = world.clients["ann"]
    first = ann.search(text="someone", level="sighting")
    second = ann.search(text="someone", level="sighting")
    assert [h.url for h in first.hits] == [h.url for h in second.hits]  # cacheable thumbnails
    url = first.hits[0].url
    assert url is not None
    got = world.http.get(url)
    assert got.status_code == 200 and got.content[:3] == b"\xff\xd8\xff"
    cache = got.headers["cache-control"]
    assert cache.startswith("private, max-age=") and cache.endswith(", immutable")
    assert 3000 < int(cache.split("max-age=")[1].split(",")[0]) <= 3600 + 900
    # Byte ranges work (a browser seeking in a source video).
    part = world.http.get(url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == got.content[:10]

    # A key that is not content-addressed is not promised to be immutable.
    world.svc.store.put_at("notes/readme.txt", b"hello")
    plain = world.http.get(world.svc.store.presigned_url("notes/readme.txt"))
    assert plain.status_code == 200 and "immutable" not in plain.headers["cache-control"]
