"""The search API and the typed SDK over real HTTP on 127.0.0.1.

One uvicorn server per module, over Postgres + a local-folder store + the qdrant-client local
index, with a tiny deterministic encoder (a stored crop finds itself first).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from platform_fixtures import jpeg, make_services, person_image

from aioreid.platform.api.app import create_app
from aioreid.platform.db import crud
from aioreid.platform.db.models import Media, Sighting
from aioreid.platform.sdk import ApiError, Client
from aioreid.platform.services import Services
from aioreid.platform.storage.local import sign

KEY_NAME = "analyst-ann"
CAM_A_SEEDS = list(range(5))
CAM_B_SEEDS = [5, 6, 7]
JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class Served:
    base_url: str
    key: str
    key_id: int
    svc: Services
    app: FastAPI


@dataclass
class Gallery:
    """What the module ingested: sighting ids by image seed, camera ids by name, the images."""

    sightings: dict[int, int]
    cameras: dict[str, int]
    files: dict[int, Path]
    job_id: int


@pytest.fixture(scope="module")
def served(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[Served]:
    svc = make_services(tmp_path_factory.mktemp("api"), pg_url, migrate=False)
    with svc.sessions.begin() as s:
        key, row = crud.create_api_key(s, KEY_NAME, role="operator")  # the tests ingest
        key_id = row.id
    app = create_app(svc)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", key, key_id, svc, app)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
        svc.close()


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[Client]:
    with Client(served.base_url, served.key, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def raw(served: Served) -> Iterator[httpx.Client]:
    """A plain HTTP client with the key, for requests the SDK would never send."""
    with httpx.Client(base_url=served.base_url, headers={"X-API-Key": served.key}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def gallery(served: Served, client: Client, tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    folder = tmp_path_factory.mktemp("uploads")
    files = {}
    for seed in CAM_A_SEEDS + CAM_B_SEEDS:
        files[seed] = folder / f"person{seed}.jpg"
        files[seed].write_bytes(jpeg(person_image(seed)))
    broken = folder / "broken.jpg"
    broken.write_bytes(b"this is not a jpeg at all")
    job = client.ingest_files([*(files[i] for i in CAM_A_SEEDS), broken], camera="cam-a")
    done = client.wait_for_job(job.job_id, timeout=60, poll=0.1)
    assert done.status == "done", done
    other = client.ingest_files([files[i] for i in CAM_B_SEEDS], camera="cam-b")
    assert client.wait_for_job(other.job_id, timeout=60, poll=0.1).status == "done"
    with served.svc.sessions() as s:
        rows = s.execute(sa.select(Media.original_name, Sighting.id).join(Sighting)).all()
    by_name = {name: sid for name, sid in rows}
    sightings = {seed: by_name[path.name] for seed, path in files.items()}
    cameras = {c.name: c.id for c in client.cameras()}
    return Gallery(sightings, cameras, files, job.job_id)


# ------------------------------------------------------------------------------ service


def test_openapi_lists_the_routes_and_health_needs_no_key(served: Served) -> None:
    with httpx.Client(base_url=served.base_url, timeout=30) as anon:
        spec = anon.get("/openapi.json").json()
        health = anon.get("/healthz")
    paths = set(spec["paths"])
    for path in (
        "/v1/search",
        "/v1/sightings/{sighting_id}/similar",
        "/v1/review/confirm",
        "/v1/review/reject",
        "/v1/identities/merge",
        "/v1/ingest",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
    ):
        assert path in paths, f"{path} missing from the OpenAPI schema"
    assert health.status_code == 200
    body = health.json()
    assert (body["database"], body["storage"], body["index"], body["status"]) == ("ok",) * 4


# ------------------------------------------------------------------------------ keys


def test_requests_without_a_valid_key_are_refused(served: Served) -> None:
    with httpx.Client(base_url=served.base_url, timeout=30) as anon:
        missing = anon.get("/v1/stats")
        wrong = anon.get("/v1/stats", headers={"X-API-Key": "aioreid_" + "x" * 40})
        bearer = anon.get("/v1/stats", headers={"Authorization": f"Bearer {served.key}"})
    assert missing.status_code == 401
    assert "X-API-Key" in missing.json()["detail"]
    assert wrong.status_code == 401 and "invalid" in wrong.json()["detail"]
    assert bearer.status_code == 200
    with httpx.Client(base_url=served.base_url, timeout=30) as anon:
        upload = anon.post("/v1/search", data={"text": "x"}, files={"rgb": ("a.jpg", b"1")})
    assert upload.status_code == 401

    with Client(served.base_url, "aioreid_" + "y" * 40) as bad, pytest.raises(ApiError) as err:
        bad.stats()
    assert err.value.status == 401 and "invalid or revoked API key" in str(err.value)


def test_a_revoked_key_stops_working_and_keys_are_stored_hashed(served: Served) -> None:
    with served.svc.sessions.begin() as s:
        temp_key, row = crud.create_api_key(s, "temporary")
        temp_id = row.id
    with Client(served.base_url, temp_key) as temp:
        assert temp.stats().media >= 0
        with served.svc.sessions.begin() as s:
            crud.revoke_api_key(s, temp_id)
        with pytest.raises(ApiError) as err:
            temp.stats()
    assert err.value.status == 401 and "revoked" in str(err.value)

    with served.svc.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT * FROM api_keys")).all()
    dump = repr(stored)
    assert len(stored) == 2
    assert served.key not in dump and temp_key not in dump
    assert crud.hash_api_key(served.key) in dump


# ------------------------------------------------------------------------------ ingest


def test_ingest_job_reports_progress_failures_and_counts(client: Client, gallery: Gallery) -> None:
    job = client.job(gallery.job_id)
    assert job.status == "done" and job.kind == "upload"
    assert job.total == job.processed == len(CAM_A_SEEDS) + 1
    assert job.failed == 1
    assert job.created_by == KEY_NAME
    [failure] = job.failures
    assert failure.item == "broken.jpg"
    assert "decod" in failure.reason.lower()
    assert gallery.job_id in [j.id for j in client.jobs().items]

    stats = client.stats()
    total = len(CAM_A_SEEDS) + len(CAM_B_SEEDS)
    assert (stats.media, stats.media_failed, stats.sightings) == (total + 1, 1, total)
    assert stats.cameras == 2 and stats.live_collection is not None
    assert [g.points for g in stats.generations if g.live] == [total]
    assert set(gallery.cameras) == {"cam-a", "cam-b"}


def test_unknown_job_is_404(client: Client) -> None:
    with pytest.raises(ApiError) as err:
        client.job(999_999)
    assert err.value.status == 404 and "999999" in str(err.value)


# ------------------------------------------------------------------------------ search


def test_rgb_query_finds_its_own_crop_first_with_a_fetchable_link(
    client: Client, gallery: Gallery
) -> None:
    res = client.search(rgb=gallery.files[2], limit=5)
    assert res.query_parts == ["rgb"]
    top = res.hits[0]
    assert top.sighting_id == gallery.sightings[2]
    assert top.score == pytest.approx(1.0, abs=0.02)
    assert top.best_part == "rgb" and set(top.part_scores) == {"rgb"}
    assert top.camera == "cam-a" and top.review == "unreviewed"
    assert [h.score for h in res.hits] == sorted((h.score for h in res.hits), reverse=True)
    assert top.url is not None
    assert client.fetch(top.url).startswith(JPEG_MAGIC)

    sighting = client.sighting(top.sighting_id)
    assert sighting.media_id == top.media_id and sighting.box == top.box
    assert client.fetch(sighting.url).startswith(JPEG_MAGIC)


def test_numpy_query_and_text_query(client: Client, gallery: Gallery) -> None:
    res = client.search(rgb=person_image(6), limit=3)
    assert res.hits[0].sighting_id == gallery.sightings[6]

    text = client.search(text="a person in a red coat and blue trousers", limit=4)
    assert text.query_parts == ["text"]
    assert len(text.hits) == 4
    assert all(h.best_part == "text" for h in text.hits)


def test_text_and_sketch_together_score_each_part(client: Client) -> None:
    res = client.search(text="a tall person with a backpack", sketch=person_image(40), limit=5)
    assert sorted(res.query_parts) == ["sketch", "text"]
    assert len(res.hits) == 5
    for hit in res.hits:
        assert set(hit.part_scores) == {"text", "sketch"}
        assert hit.best_part in hit.part_scores
        assert hit.part_scores[hit.best_part] == max(hit.part_scores.values())


def test_camera_filter_restricts_hits(client: Client, gallery: Gallery) -> None:
    cam_b = gallery.cameras["cam-b"]
    res = client.search(rgb=gallery.files[1], filters={"cameras": [cam_b]}, limit=20)
    assert {h.sighting_id for h in res.hits} == {gallery.sightings[i] for i in CAM_B_SEEDS}
    assert {h.camera for h in res.hits} == {"cam-b"}
    assert res.has_more is False


def test_pages_do_not_overlap_and_has_more_is_right(client: Client, gallery: Gallery) -> None:
    total = len(gallery.sightings)
    pages = [client.search(rgb=gallery.files[0], limit=3, offset=o) for o in (0, 3, 6)]
    ids = [h.sighting_id for p in pages for h in p.hits]
    assert len(ids) == len(set(ids)) == total
    assert set(ids) == set(gallery.sightings.values())
    assert [p.has_more for p in pages] == [True, True, False]
    assert [len(p.hits) for p in pages] == [3, 3, total - 6]
    assert pages[1].offset == 3 and pages[1].limit == 3
    scores = [h.score for p in pages for h in p.hits]
    assert scores == sorted(scores, reverse=True)


def test_threshold_drops_low_scores(client: Client, gallery: Gallery) -> None:
    everything = client.search(rgb=gallery.files[3], limit=20)
    scores = [h.score for h in everything.hits]
    cut = (scores[1] + scores[2]) / 2
    kept = client.search(rgb=gallery.files[3], limit=20, threshold=cut)
    assert [h.sighting_id for h in kept.hits] == [h.sighting_id for h in everything.hits[:2]]
    assert all(h.score >= cut for h in kept.hits)


def test_find_similar_leaves_the_sighting_itself_out(client: Client, gallery: Gallery) -> None:
    sid = gallery.sightings[4]
    res = client.find_similar(sid, limit=20)
    ids = [h.sighting_id for h in res.hits]
    assert sid not in ids
    assert len(ids) == len(gallery.sightings) - 1
    assert res.query_parts == ["sighting:rgb"]

    with pytest.raises(ApiError) as err:
        client.find_similar(987_654)
    assert err.value.status == 404 and "987654" in str(err.value)


# ------------------------------------------------------------------------------ bad requests


def _post_search(raw: httpx.Client, data: dict, files: dict | None = None) -> httpx.Response:
    return raw.post("/v1/search", data=data, files=files)


def test_query_without_parts_is_422(raw: httpx.Client, client: Client) -> None:
    resp = _post_search(raw, {"text": "   "})
    assert resp.status_code == 422
    assert "at least one part" in resp.json()["detail"]
    with pytest.raises(ApiError) as err:
        client.search(limit=5)
    assert err.value.status == 422 and "at least one part" in str(err.value)


def test_filters_must_be_json_with_known_values(raw: httpx.Client) -> None:
    resp = _post_search(raw, {"text": "someone", "filters": "{cameras: [1]"})
    assert resp.status_code == 422
    assert "filters is not valid JSON" in resp.json()["detail"]

    resp = _post_search(raw, {"text": "someone", "filters": json.dumps({"review": "maybe"})})
    assert resp.status_code == 422
    [problem] = resp.json()["detail"]
    assert problem["loc"] == ["filters", "review"]
    assert "confirmed" in problem["msg"]

    # A misspelt filter must not silently search everything.
    resp = _post_search(raw, {"text": "someone", "filters": json.dumps({"camera": [1]})})
    assert resp.status_code == 422
    [problem] = resp.json()["detail"]
    assert "unknown field(s) camera" in problem["msg"] and "cameras" in problem["msg"]


def test_find_similar_refuses_misspelt_fields(raw: httpx.Client, gallery: Gallery) -> None:
    url = f"/v1/sightings/{gallery.sightings[0]}/similar"
    assert len(raw.post(url).json()["hits"]) == len(gallery.sightings) - 1  # no body: defaults
    for body, wrong in (
        ({"filters": {"camera": [1]}}, "camera"),
        ({"options": {"limt": 2}}, "limt"),
        ({"filter": {}}, "filter"),
    ):
        resp = raw.post(url, json=body)
        assert resp.status_code == 422, body
        assert wrong in json.dumps(resp.json()["detail"])


def test_out_of_range_options_are_422(raw: httpx.Client, client: Client) -> None:
    resp = _post_search(raw, {"text": "someone", "limit": "0"})
    assert resp.status_code == 422
    assert any(d["loc"][-1] == "limit" for d in resp.json()["detail"])
    with pytest.raises(ApiError) as err:
        client.search(text="someone", limit=0)
    assert err.value.status == 422 and "limit" in str(err.value)


def test_an_upload_that_is_not_an_image_is_422(client: Client, raw: httpx.Client) -> None:
    with pytest.raises(ApiError) as err:
        client.search(rgb=b"plain text pretending to be a photo")
    assert err.value.status == 422 and "not a decodable image" in str(err.value)

    resp = _post_search(raw, {}, files={"sketch": ("s.png", b"", "image/png")})
    assert resp.status_code == 422 and "empty upload" in resp.json()["detail"]


def test_an_upload_over_the_limit_is_413(
    served: Served, client: Client, gallery: Gallery, tmp_path: Path
) -> None:
    big = tmp_path / "huge.jpg"
    big.write_bytes(JPEG_MAGIC + bytes(64 * 1024))
    api = served.app.state.services.settings.api
    before = api.max_upload_mb
    api.max_upload_mb = 0.05
    try:
        with pytest.raises(ApiError) as search_err:
            client.search(rgb=big)
        with pytest.raises(ApiError) as ingest_err:
            client.ingest_files([big])  # with good files it would fail alone in the job
    finally:
        api.max_upload_mb = before
    assert search_err.value.status == 413
    assert "rgb: upload is over the 0.05 MB limit" in str(search_err.value)
    assert ingest_err.value.status == 413 and "huge.jpg" in str(ingest_err.value)
    assert client.stats().media == len(gallery.sightings) + 1  # nothing stored


# ------------------------------------------------------------------------------ review


def test_review_over_http(client: Client, gallery: Gallery) -> None:
    s1, s2, s3 = (gallery.sightings[i] for i in (0, 1, 2))
    ack = client.assign(s1, label="alice")
    alice = ack.identity_id
    assert alice is not None
    assert client.confirm(s2, alice, note="same coat").identity_id == alice
    assert client.reject(s3, alice, note="different shoes").ok

    ident = client.identity(alice)
    assert ident.label == "alice" and ident.merged_into is None
    assert sorted(s.sighting_id for s in ident.sightings) == sorted([s1, s2])
    decisions = {(d.sighting_id, d.decision) for d in ident.decisions}
    assert decisions == {(s2, "confirm"), (s3, "reject")}
    assert [d.decision for d in ident.decisions if d.sighting_id == s2] == ["confirm"]
    assert {d.actor for d in ident.decisions} == {KEY_NAME}
    assert client.fetch(ident.sightings[0].url).startswith(JPEG_MAGIC)
    assert client.sighting(s2).identity_id == alice

    # Rejecting a sighting that is on the identity takes it off, in the database and the index.
    s7 = gallery.sightings[6]
    client.confirm(s7, alice)
    client.reject(s7, alice)
    assert client.sighting(s7).identity_id is None
    assert {s.sighting_id for s in client.identity(alice).sightings} == {s1, s2}
    on_alice = client.search(rgb=gallery.files[6], filters={"identity_ids": [alice]}).hits
    assert {h.sighting_id for h in on_alice} == {s1, s2}

    # The rejected sighting finds itself in a plain search but not when looking for alice.
    plain = client.search(rgb=gallery.files[2], limit=20)
    assert plain.hits[0].sighting_id == s3
    focused = client.search(rgb=gallery.files[2], limit=20, for_identity=alice)
    assert {h.sighting_id for h in focused.hits} == set(gallery.sightings.values()) - {s3, s7}
    confirmed = {h.sighting_id: h.review for h in focused.hits if h.identity_id == alice}
    assert confirmed == {s1: "confirmed", s2: "confirmed"}

    grouped = client.search(rgb=gallery.files[0], limit=20, group_by_identity=True)
    assert grouped.groups is not None
    alice_group = next(g for g in grouped.groups if g.identity_id == alice)
    assert alice_group.label == "alice"
    assert {h.sighting_id for h in alice_group.hits} == {s1, s2}

    only_confirmed = client.search(rgb=gallery.files[5], filters={"review": "confirmed"})
    assert {h.sighting_id for h in only_confirmed.hits} == {s1, s2}


def test_merge_and_split_move_sightings(client: Client, gallery: Gallery) -> None:
    s4, s5, s6 = (gallery.sightings[i] for i in (3, 4, 5))
    dana = client.assign(s4, label="dana").identity_id
    eve = client.assign(s5, label="eve").identity_id
    assert dana is not None and eve is not None
    client.assign(s6, identity_id=eve)

    ack = client.merge(dana, [eve])
    assert ack.identity_id == dana and ack.moved == 2
    assert sorted(s.sighting_id for s in client.identity(dana).sightings) == sorted([s4, s5, s6])
    gone = client.identity(eve)
    assert gone.merged_into == dana and gone.sightings == []
    with pytest.raises(ApiError) as err:
        client.confirm(gallery.sightings[6], eve)
    assert err.value.status == 409 and f"merged into {dana}" in str(err.value)

    with pytest.raises(ApiError) as err:
        client.merge(dana, [dana])
    assert err.value.status == 409 and "into itself" in str(err.value)

    split = client.split(dana, [s5, s6], label="frank")
    frank = split.identity_id
    assert frank is not None and frank != dana and split.moved == 2
    assert [s.sighting_id for s in client.identity(dana).sightings] == [s4]
    assert sorted(s.sighting_id for s in client.identity(frank).sightings) == sorted([s5, s6])
    with pytest.raises(ApiError) as err:
        client.split(dana, [gallery.sightings[7]])
    assert err.value.status == 409 and "not on identity" in str(err.value)

    hits = client.search(rgb=gallery.files[4], filters={"identity_ids": [frank]}).hits
    assert {h.sighting_id for h in hits} == {s5, s6}

    listed = {i.label: i for i in client.identities().items}
    assert "eve" not in listed  # merged away
    assert listed["dana"].sightings == 1 and listed["frank"].sightings == 2
    assert client.identities(limit=1).total == len(listed)
    with pytest.raises(ApiError) as err:
        client.identity(424_242)
    assert err.value.status == 404


# ------------------------------------------------------------------------------ links


def test_signed_links_refuse_tampering(served: Served, client: Client, gallery: Gallery) -> None:
    url = client.sighting(gallery.sightings[7]).url
    assert client.fetch(url).startswith(JPEG_MAGIC)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    flipped = ("0" if query["signature"][0] != "0" else "1") + query["signature"][1:]
    tampered = f"{parts.path}?{urlencode({**query, 'signature': flipped})}"
    later = f"{parts.path}?{urlencode({**query, 'expires': int(query['expires']) + 60})}"
    with httpx.Client(base_url=served.base_url, timeout=30) as anon:
        assert anon.get(url).status_code == 200  # the link itself needs no key
        for bad in (tampered, later):
            resp = anon.get(bad)
            assert resp.status_code == 403
            assert resp.json()["detail"] == "invalid or expired link"
    with pytest.raises(ApiError) as err:
        client.fetch(tampered)
    assert err.value.status == 403

    signing_key = served.svc.settings.storage.signing_key.get_secret_value().encode()
    key = parts.path.removeprefix("/v1/objects/")
    past = int(time.time()) - 5
    expired = f"{parts.path}?expires={past}&signature={sign(key, past, signing_key)}"
    soon = int(time.time()) + 60
    missing_key = "crops/00/" + "0" * 64 + ".jpg"
    missing = (
        f"/v1/objects/{missing_key}?expires={soon}&signature={sign(missing_key, soon, signing_key)}"
    )
    with httpx.Client(base_url=served.base_url, timeout=30) as anon:
        assert anon.get(expired).status_code == 403
        gone = anon.get(missing)
    assert gone.status_code == 404 and missing_key in gone.json()["detail"]
