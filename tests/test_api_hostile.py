"""Hostile input gets a readable 4xx, never a 500: numbers no database column holds,
attribute names that would change a payload path, JSON nested past the parser's limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from platform_fixtures import jpeg, make_services, person_image

from aioreid.platform.api.app import create_app
from aioreid.platform.db import crud
from aioreid.platform.pipeline.ingest import ingest_bytes

HUGE = 2**70  # beyond 64 bits
BEYOND_INT32 = 2**40  # fits SQLite, not a Postgres INTEGER key


@pytest.fixture(scope="module")
def http(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[TestClient]:
    svc = make_services(tmp_path_factory.mktemp("hostile"), pg_url, migrate=False)
    with svc.sessions.begin() as s:
        key, _ = crud.create_api_key(s, "hostile-probe")
    assert ingest_bytes(svc, jpeg(person_image(5)), "p5.jpg", camera="gate").status == "done"
    client = TestClient(create_app(svc), headers={"X-API-Key": key})
    try:
        yield client
    finally:
        client.close()
        svc.close()


def _search(http: TestClient, **form: object) -> object:
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in form.items()}
    return http.post("/v1/search", data={"text": "a person", **data})


def _readable_422(response: object, *words: str) -> None:
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    text = response.text.lower()  # type: ignore[attr-defined]
    assert all(w in text for w in words), text


@pytest.mark.parametrize("big", [HUGE, BEYOND_INT32])
def test_numbers_no_key_holds_are_422_naming_the_field(http: TestClient, big: int) -> None:
    _readable_422(_search(http, filters={"cameras": [big]}), "cameras")
    _readable_422(_search(http, filters={"identity_ids": [1, big]}), "identity_ids")
    _readable_422(_search(http, for_identity=str(big)), "for_identity")
    body = {"sighting_id": 1, "identity_id": big}
    _readable_422(http.post("/v1/review/confirm", json=body), "identity_id")
    _readable_422(http.post("/v1/identities/merge", json={"target_id": big, "source_ids": [1]}))
    for path in (f"/v1/identities/{big}", f"/v1/jobs/{big}"):
        _readable_422(http.get(path))


def test_ids_beyond_64_bits_in_paths_and_paging_are_422(http: TestClient) -> None:
    for path in (f"/v1/sightings/{HUGE}", f"/v1/tracks/{HUGE}", f"/v1/identities?offset={HUGE}"):
        _readable_422(http.get(path))
    _readable_422(http.post(f"/v1/sightings/{HUGE}/similar", json={}))
    body = {"sighting_id": HUGE, "identity_id": 1}
    _readable_422(http.post("/v1/review/confirm", json=body), "sighting_id")
    # The same connection answers normally afterwards.
    assert http.get("/v1/identities").status_code == 200


@pytest.mark.parametrize("name", ["a'b", 'a"b', "a.b", "a[0]", ""])
def test_attribute_names_that_would_change_the_payload_path_are_refused(
    http: TestClient, name: str
) -> None:
    _readable_422(_search(http, filters={"attributes": {name: "x"}}), "attribute name")


def test_deeply_nested_json_is_refused(http: TestClient) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    _readable_422(_search(http, filters=f'{{"cameras": {deep}}}'), "nested too deeply")
    body = '{"filters": {"cameras": ' + deep + "}}"
    response = http.post(
        "/v1/sightings/1/similar", content=body, headers={"Content-Type": "application/json"}
    )
    # FastAPI refuses a JSON body it cannot parse before any route runs: a 400 that says so.
    assert response.status_code == 400 and "parsing the body" in response.text
    assert http.get("/v1/identities").status_code == 200


def test_a_sane_search_still_answers(http: TestClient, tmp_path: Path) -> None:
    response = _search(http, filters={"cameras": [1], "attributes": {"upper": "red"}})
    assert response.status_code == 200, response.text
