"""Property-based API test generated from the app's own OpenAPI schema (Schemathesis).

Every operation is called with inputs Schemathesis generates from its schema, valid and
invalid, against the real app over the embedded profile (SQLite, local index and store in a
tmp folder) with an admin API key and a small ingested gallery, so ids 1 to 3 exist. Each
answer must be no server error, have a documented status code and content type, and conform
to the documented response schema. Examples per operation and the seed are fixed
(``derandomize``): a run is repeatable, and a failure prints a curl line that reproduces it.
docs/testing.md says why and what this covers.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from platform_fixtures import jpeg, make_settings, person_image, tiny_encoder

from aioreid.platform.api.app import create_app
from aioreid.platform.config import Settings
from aioreid.platform.db import crud
from aioreid.platform.pipeline.ingest import ingest_bytes
from aioreid.platform.services import Services

#: Hypothesis examples per operation, on top of Schemathesis' explicit and boundary ones.
EXAMPLES_PER_OPERATION = 60
#: No 5xx; a documented status code, content type and headers; a body the schema allows.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


def _openapi() -> dict[str, Any]:
    """The app's OpenAPI document, from create_app without any service behind it.

    Collection needs the operations (one test per operation) before any fixture runs; the
    document depends on the routes only, and the real app's is checked to be the same.
    """
    idle = SimpleNamespace(settings=Settings(api={"bootstrap_api_key": None}))
    return create_app(idle, runner=SimpleNamespace()).openapi()  # type: ignore[arg-type]


def _same_type_tuples_as_items(node: Any) -> Any:
    """``node`` with each ``prefixItems`` tuple whose positions share one schema (the boxes:
    four or five integers) written as ``items`` plus its length bounds, which says the same.

    Schemathesis (4.32) turns ``prefixItems`` in a response schema into the draft-4 array form
    of ``items``, which its OpenAPI 3.1 (draft 2020-12) validator then refuses as an invalid
    schema; the equivalent ``items`` form validates the same responses.
    """
    if isinstance(node, list):
        return [_same_type_tuples_as_items(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _same_type_tuples_as_items(v) for k, v in node.items()}
    prefix = out.get("prefixItems")
    if prefix is not None:
        assert all(p == prefix[0] for p in prefix) and "items" not in out, out
        del out["prefixItems"]
        out.update(items=prefix[0], minItems=len(prefix), maxItems=len(prefix))
    return out


OPENAPI = _openapi()
schema = schemathesis.openapi.from_dict(_same_type_tuples_as_items(copy.deepcopy(OPENAPI)))


class Api:
    """The real app and a key for it that survives the key routes revoking or rotating it."""

    def __init__(self, app: FastAPI, svc: Services) -> None:
        self.app, self.svc = app, svc
        self._key = ""
        self._keys_made = 0

    def headers(self) -> dict[str, str]:
        with self.svc.sessions.begin() as s:
            if not self._key or crud.verify_api_key(s, self._key) is None:
                self._keys_made += 1
                self._key, _ = crud.create_api_key(
                    s, f"schemathesis-{self._keys_made}", role="admin"
                )
        return {"X-API-Key": self._key}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Iterator[Api]:
    """The app over the embedded profile in a tmp folder, with three ingested crops (media,
    sightings, tracks), an identity and a job; the folder route may read one tmp folder."""
    home: Path = tmp_path_factory.mktemp("schema")
    footage = home / "footage"
    footage.mkdir()
    (footage / "p9.jpg").write_bytes(jpeg(person_image(9)))
    settings = make_settings(home, None)
    settings.api.ingest_roots = [footage]
    svc = Services.from_settings(settings, encoder=tiny_encoder())
    for seed in (1, 2, 3):
        result = ingest_bytes(svc, jpeg(person_image(seed)), f"p{seed}.jpg", camera="gate")
        assert result.status == "done"
    with svc.sessions.begin() as s:
        crud.create_job(s, kind="upload", source="schemathesis", total=0)
    app = create_app(svc)
    assert app.openapi() == OPENAPI
    api = Api(app, svc)
    with TestClient(app, headers=api.headers()) as client:  # an identity to read and split
        assert client.post("/v1/review/assign", json={"sighting_id": 1}).status_code == 200
    try:
        yield api
    finally:
        svc.close()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_schema(case: schemathesis.Case, api: Api) -> None:
    case.call_and_validate(app=api.app, headers=api.headers(), checks=CHECKS)


def test_an_app_whose_lifespan_ran_before_still_runs_jobs(api: Api) -> None:
    """Schemathesis ends the app's lifespan after each operation, as a reloading server would:
    the in-process runner starts a fresh worker thread for the next job."""
    for _ in range(2):
        with TestClient(api.app, headers=api.headers()) as client:
            files = [("files", ("p7.jpg", jpeg(person_image(7)), "image/jpeg"))]
            response = client.post("/v1/ingest", files=files)
            assert response.status_code == 202, response.text
            api.app.state.runner.wait(response.json()["job_id"], timeout=60)
            job = client.get(f"/v1/jobs/{response.json()['job_id']}").json()
            assert job["status"] == "done", job


@pytest.mark.parametrize(
    ("route", "body"),
    [("/v1/review/assign", {"sighting_id": 2}), ("/v1/identities/1/split", {"sighting_ids": [2]})],
)
def test_a_blank_label_is_a_422_naming_it(api: Api, route: str, body: dict[str, Any]) -> None:
    """Found by the schema test: an empty label reached the database layer (a 500)."""
    with TestClient(api.app, headers=api.headers()) as client:
        for label in ("", "   "):
            response = client.post(route, json={**body, "label": label})
            assert response.status_code == 422, response.text
            assert "label" in response.text
