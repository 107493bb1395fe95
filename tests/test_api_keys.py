"""API-key roles and key management: every route needs its role (analyst < operator < admin),
admins list, create, revoke and rotate keys through the API, the SDK and `aioreid keys`, and
every audit event an API caller causes names its key id.

The API runs in-process (TestClient) over Postgres with a local index; the CLI tests run the
embedded profile in a tmp home while another Services holds its Qdrant Edge index open.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from platform_fixtures import jpeg, make_services, person_image, tiny_encoder
from pydantic import SecretStr
from typer.testing import CliRunner

from aioreid.platform.api.app import create_app, ensure_bootstrap_key
from aioreid.platform.cli import app as cli_app
from aioreid.platform.config import Settings, get_settings
from aioreid.platform.db import crud
from aioreid.platform.db.enums import KeyRole
from aioreid.platform.db.models import ApiKey, AuditEvent
from aioreid.platform.pipeline.ingest import ingest_bytes
from aioreid.platform.sdk import ApiError, Client
from aioreid.platform.services import Services

ROLES = ("analyst", "operator", "admin")
#: The role each route needs. Routes missing here still must need some role (see below).
EXPECTED = {
    ("GET", "/v1/stats"): "analyst",
    ("GET", "/v1/cameras"): "analyst",
    ("GET", "/v1/index/generations"): "analyst",
    ("POST", "/v1/index/reindex"): "operator",
    ("POST", "/v1/search"): "analyst",
    ("POST", "/v1/sightings/{sighting_id}/similar"): "analyst",
    ("GET", "/v1/sightings/{sighting_id}"): "analyst",
    ("GET", "/v1/sightings/{sighting_id}/frame"): "analyst",
    ("POST", "/v1/review/confirm"): "analyst",
    ("POST", "/v1/review/reject"): "analyst",
    ("POST", "/v1/review/assign"): "analyst",
    ("POST", "/v1/identities/merge"): "analyst",
    ("POST", "/v1/identities/{identity_id}/split"): "analyst",
    ("GET", "/v1/identities"): "analyst",
    ("GET", "/v1/identities/{identity_id}"): "analyst",
    ("GET", "/v1/tracks"): "analyst",
    ("GET", "/v1/tracks/{track_id}"): "analyst",
    ("GET", "/v1/jobs"): "analyst",
    ("GET", "/v1/jobs/{job_id}"): "analyst",
    ("POST", "/v1/ingest"): "operator",
    ("POST", "/v1/ingest/folder"): "operator",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("POST", "/v1/keys/{key_id}/revoke"): "admin",
    ("POST", "/v1/keys/{key_id}/rotate"): "admin",
    ("PATCH", "/v1/cameras/{camera_id}"): "operator",
    ("GET", "/v1/audit"): "analyst",  # admins see every key's events, others their own
    ("POST", "/v1/review/undo"): "analyst",
    ("POST", "/v1/review/confirm-bulk"): "analyst",
    ("GET", "/v1/identities/merge-preview"): "analyst",
    ("GET", "/v1/cases"): "analyst",
    ("POST", "/v1/cases"): "analyst",
    ("GET", "/v1/cases/{case_id}"): "analyst",
    ("PATCH", "/v1/cases/{case_id}"): "analyst",
    ("POST", "/v1/cases/{case_id}/items"): "analyst",
    ("POST", "/v1/cases/{case_id}/queries"): "analyst",
    ("PATCH", "/v1/cases/{case_id}/items/{item_id}"): "analyst",
    ("DELETE", "/v1/cases/{case_id}/items/{item_id}"): "analyst",
    ("POST", "/v1/cases/{case_id}/export"): "analyst",
}
OPEN = {"/healthz", "/v1/objects/{key:path}"}  # no key: health, and links signed themselves


@dataclass
class Api:
    svc: Services
    http: TestClient
    keys: dict[str, str]  # role -> plaintext
    ids: dict[str, int]  # role -> key id
    sightings: list[int]

    def as_role(self, role: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}


@pytest.fixture(scope="module")
def api(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[Api]:
    svc = make_services(tmp_path_factory.mktemp("keys"), pg_url, migrate=False)
    keys, ids = {}, {}
    with svc.sessions.begin() as s:
        for role in ROLES:
            keys[role], row = crud.create_api_key(s, f"{role}-key", role=role)
            ids[role] = row.id
    sightings = []
    for seed in (1, 2, 3):
        res = ingest_bytes(svc, jpeg(person_image(seed)), f"p{seed}.jpg", camera="gate")
        assert res.status == "done", res
    with svc.engine.connect() as conn:
        sightings = list(conn.execute(sa.text("SELECT id FROM sightings ORDER BY id")).scalars())
    http = TestClient(create_app(svc))
    try:
        yield Api(svc, http, keys, ids, sightings)
    finally:
        http.close()
        svc.close()


def _audit(svc: Services, **where: Any) -> list[AuditEvent]:
    with svc.sessions() as s:
        q = sa.select(AuditEvent).filter_by(**where).order_by(AuditEvent.id)
        return list(s.scalars(q))


# ------------------------------------------------------------------------------ roles


def _roles_of(dependant: Any) -> list[KeyRole]:
    found = []
    for dep in dependant.dependencies:
        role = getattr(dep.call, "required_role", None)
        if role is not None:
            found.append(role)
        found.extend(_roles_of(dep))
    return found


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI >= 0.16x wraps them lazily)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


def test_every_route_but_health_and_signed_links_needs_a_role(api: Api) -> None:
    seen = {}
    for route in _api_routes(api.http.app.routes):  # type: ignore[attr-defined]
        if route.path in OPEN:
            continue
        roles = _roles_of(route.dependant)
        for method in route.methods:
            assert len(roles) == 1, f"{method} {route.path} needs no role (or several)"
            seen[(method, route.path)] = str(roles[0])
    for route_key, role in EXPECTED.items():
        assert seen.get(route_key) == role, (route_key, seen.get(route_key))


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("GET", "/v1/stats", "analyst"),
        ("GET", "/v1/jobs", "analyst"),
        ("POST", "/v1/index/reindex", "operator"),
        ("POST", "/v1/ingest/folder", "operator"),
        ("GET", "/v1/keys", "admin"),
        ("POST", "/v1/keys/1/revoke", "admin"),
    ],
)
def test_a_key_below_the_routes_role_gets_403_naming_the_role(
    api: Api, method: str, path: str, needed: str
) -> None:
    for role in ROLES[: ROLES.index(needed)]:
        body = {"path": "/nowhere"} if path.endswith("folder") else None
        r = api.http.request(method, path, headers=api.as_role(role), json=body)
        assert r.status_code == 403, (role, r.text)
        detail = r.json()["detail"]
        assert f"role {needed}" in detail and f"{role}-key" in detail, detail


def test_each_role_succeeds_at_its_role_and_above(api: Api) -> None:
    for role in ROLES:  # analyst routes: everyone
        assert api.http.get("/v1/stats", headers=api.as_role(role)).status_code == 200
        assert api.http.get("/v1/jobs", headers=api.as_role(role)).status_code == 200
    files = [("files", ("p9.jpg", jpeg(person_image(9)), "image/jpeg"))]
    for role in ("operator", "admin"):  # ingest: operators and admins
        r = api.http.post("/v1/ingest", files=files, headers=api.as_role(role))
        assert r.status_code == 202, r.text
        api.http.app.state.runner.wait(r.json()["job_id"], timeout=60)  # type: ignore[attr-defined]
    analyst = api.http.post("/v1/ingest", files=files, headers=api.as_role("analyst"))
    assert analyst.status_code == 403
    assert api.http.get("/v1/keys", headers=api.as_role("admin")).status_code == 200


def test_health_and_missing_keys_are_unchanged(api: Api) -> None:
    assert api.http.get("/healthz").status_code == 200
    assert api.http.get("/v1/stats").status_code == 401
    assert api.http.get("/v1/keys").status_code == 401


# ------------------------------------------------------------------------------ key management


def test_admins_create_list_rotate_and_revoke_keys_through_the_sdk(api: Api) -> None:
    admin = Client(api_key=api.keys["admin"], http_client=TestClient(api.http.app))
    made = admin.create_key("carol", role="operator")
    assert (made.name, made.role, made.key[:8]) == ("carol", "operator", made.prefix)
    all_keys = admin.keys()
    listed = {k.name: k for k in all_keys}
    assert listed["carol"].id == made.id and listed["carol"].revoked_at is None
    raw = api.http.get("/v1/keys", headers=api.as_role("admin")).text
    assert made.key not in raw and crud.hash_api_key(made.key) not in raw and "hash" not in raw

    carol = TestClient(api.http.app, headers={"X-API-Key": made.key})
    assert carol.get("/v1/jobs").status_code == 200
    assert carol.get("/v1/keys").status_code == 403  # operator, not admin

    with pytest.raises(ApiError) as dup:
        admin.create_key("carol", role="analyst")
    assert dup.value.status == 409 and "carol" in str(dup.value)
    with pytest.raises(ApiError) as bad_role:
        admin.create_key("dave", role="root")
    assert bad_role.value.status == 422
    with pytest.raises(ApiError) as digits:
        admin.create_key("12345")
    assert digits.value.status == 422 and "digits" in str(digits.value)

    rotated = admin.rotate_key(made.id)
    assert (rotated.id, rotated.name, rotated.role) == (made.id, "carol", "operator")
    assert rotated.key != made.key and rotated.rotated_at is not None
    assert carol.get("/v1/jobs").status_code == 401  # the rotated-away secret
    fresh = TestClient(api.http.app, headers={"X-API-Key": rotated.key})
    assert fresh.get("/v1/jobs").status_code == 200

    revoked = admin.revoke_key(made.id)
    assert revoked.revoked_at is not None
    assert fresh.get("/v1/jobs").status_code == 401
    assert admin.revoke_key(made.id).revoked_at == revoked.revoked_at  # again: no change
    with pytest.raises(ApiError) as rot:
        admin.rotate_key(made.id)
    assert rot.value.status == 409 and "revoked" in str(rot.value)

    for path in ("/v1/keys/999999/rotate", "/v1/keys/999999/revoke"):
        assert api.http.post(path, headers=api.as_role("admin")).status_code == 404
    huge = api.http.post(f"/v1/keys/{2**40}/revoke", headers=api.as_role("admin"))
    assert huge.status_code == 422

    events = _audit(api.svc, entity="api_key", entity_id=str(made.id))
    assert [e.action for e in events] == ["create", "rotate", "revoke", "revoke"]
    assert {(e.actor, e.key_id) for e in events} == {("admin-key", api.ids["admin"])}
    assert events[0].details == {"name": "carol", "role": "operator", "prefix": made.prefix}


def test_the_last_active_admin_key_cannot_be_revoked(api: Api) -> None:
    with api.svc.sessions() as s:
        admins = s.scalars(
            sa.select(ApiKey.id).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None))
        ).all()
    assert admins == [api.ids["admin"]]
    r = api.http.post(f"/v1/keys/{api.ids['admin']}/revoke", headers=api.as_role("admin"))
    assert r.status_code == 409 and "last active admin" in r.json()["detail"]
    assert api.http.get("/v1/keys", headers=api.as_role("admin")).status_code == 200


# ------------------------------------------------------------------------------ audit


def test_review_actions_are_audited_with_the_callers_key_id(api: Api) -> None:
    analyst = Client(api_key=api.keys["analyst"], http_client=TestClient(api.http.app))
    s1, s2, s3 = api.sightings
    a = analyst.assign(s1, label="A").identity_id
    b = analyst.assign(s2, label="B").identity_id
    assert a is not None and b is not None
    analyst.confirm(s3, a, note="same coat")
    analyst.reject(s3, a)
    analyst.merge(a, [b])
    analyst.split(a, [s2], label="B again")

    events = [e for e in _audit(api.svc) if e.entity in ("sighting", "identity")]
    actions = [e.action for e in events]
    for action in ("assign", "confirm", "reject", "merge", "split"):
        assert action in actions, actions
    assert {(e.actor, e.key_id) for e in events} == {("analyst-key", api.ids["analyst"])}


# ------------------------------------------------------------------------------ bootstrap


def test_the_bootstrap_key_is_an_admin_and_survives_changes_and_revocation(
    tmp_path: Path, one_torch_thread: None
) -> None:
    svc = make_services(tmp_path, None)  # SQLite: a database of its own
    try:
        svc.settings.api.bootstrap_api_key = SecretStr("first-bootstrap-key-0123")
        ensure_bootstrap_key(svc)
        ensure_bootstrap_key(svc)  # a restart: nothing new
        svc.settings.api.bootstrap_api_key = SecretStr("second-bootstrap-key-0123")
        ensure_bootstrap_key(svc)  # the setting changed: a second admin key, its own name
        with svc.sessions.begin() as s:
            rows = crud.list_api_keys(s)
            assert [(r.name[:10], r.role) for r in rows] == [
                ("bootstrap", "admin"),
                ("bootstrap-", "admin"),
            ]
            crud.revoke_api_key(s, rows[1].id)
        ensure_bootstrap_key(svc)  # revoked stays revoked, start-up goes on
        with svc.sessions() as s:
            assert crud.verify_api_key(s, "second-bootstrap-key-0123") is None
            assert len(crud.list_api_keys(s)) == 2
    finally:
        svc.close()


# ------------------------------------------------------------------------------ CLI


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """The embedded profile in ``tmp_path`` (SQLite, Qdrant Edge), held open as a running API
    would hold it, with the CLI's settings read from the same environment."""
    for name in list(os.environ):
        if name.startswith("AIOREID_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIOREID_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no stray .env file
    get_settings.cache_clear()
    svc = Services.from_settings(Settings(), encoder=tiny_encoder())
    assert type(svc.index).__name__ == "EdgeIndex"
    try:
        yield svc
    finally:
        svc.close()
        get_settings.cache_clear()


def _cli(*args: str) -> Any:
    return CliRunner().invoke(cli_app, ["keys", *args])


def test_cli_keys_work_while_the_embedded_index_is_held_open(embedded: Services) -> None:
    made = _cli("create", "ann", "--role", "operator")
    assert made.exit_code == 0, made.output
    plaintext = made.stdout.strip()
    assert "\n" not in plaintext and plaintext.startswith("aio_")
    assert "role operator" in made.stderr
    with embedded.sessions.begin() as s:
        row = crud.verify_api_key(s, plaintext)
        assert row is not None and (row.name, row.role) == ("ann", "operator")
        key_id = row.id

    assert _cli("create", "bob").exit_code == 0  # analyst unless asked
    listing = _cli("list")
    assert listing.exit_code == 0, listing.output
    lines = {ln.split()[1]: ln for ln in listing.stdout.splitlines()[1:]}
    assert "operator" in lines["ann"] and "analyst" in lines["bob"] and "active" in lines["ann"]
    assert plaintext not in listing.output

    dup = _cli("create", "ann")
    assert dup.exit_code == 2 and "named 'ann'" in dup.output and "Traceback" not in dup.output

    rotated = _cli("rotate", "ann")
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip()
    with embedded.sessions.begin() as s:
        assert crud.verify_api_key(s, plaintext) is None
        again = crud.verify_api_key(s, new)
        assert again is not None and again.id == key_id

    revoked = _cli("revoke", str(key_id))
    assert revoked.exit_code == 0 and "revoked key" in revoked.stdout
    with embedded.sessions() as s:
        assert crud.verify_api_key(s, new) is None

    for args, words in (
        (("revoke", "nobody"), "no API key named 'nobody'"),
        (("rotate", "999"), "no API key with id 999"),
        (("rotate", "ann"), "revoked; create a new key"),
        (("create", "x", "--role", "root"), "root"),
    ):
        res = _cli(*args)
        assert res.exit_code == 2 and words in res.output, (args, res.output)
        assert "Traceback" not in res.output

    events = _audit(embedded, entity="api_key")
    assert [e.action for e in events] == ["create", "create", "rotate", "revoke"]
    assert {(e.actor, e.key_id) for e in events} == {("cli", None)}


def test_cli_keys_report_a_locked_database_in_one_line(
    embedded: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOREID_DATABASE__BUSY_TIMEOUT_S", "0.2")
    get_settings.cache_clear()
    with embedded.sessions.begin() as s:  # a writer holds the SQLite file (BEGIN IMMEDIATE)
        crud.get_or_create_camera(s, "busy")
        res = _cli("create", "zoe")
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and "database is locked" in res.output, res.output
    assert _cli("create", "zoe").exit_code == 0  # free again
