"""Uploads and folder ingest as a careless user or an attacker sends them: every bad file
fails alone, by name, with its reason, while the rest of the batch lands; oversized bodies are
refused before they are read; uploads are streamed, never held whole in memory; identical
bytes keep their first provenance; folder ingest reads only configured folders."""

from __future__ import annotations

import asyncio
import io
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi import UploadFile
from fastapi.testclient import TestClient
from platform_fixtures import jpeg, make_services, person_image
from sqlalchemy import select

from aioreid.platform.api.app import create_app
from aioreid.platform.api.uploads import BodySizeLimit, stage_upload
from aioreid.platform.db import crud
from aioreid.platform.db.models import Media
from aioreid.platform.services import Services


@pytest.fixture(scope="module")
def world(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[tuple[Services, TestClient]]:
    svc = make_services(tmp_path_factory.mktemp("uploads"), pg_url, migrate=False)
    with svc.sessions.begin() as s:
        key, _ = crud.create_api_key(s, "upload-probe", role="operator")
    client = TestClient(create_app(svc), headers={"X-API-Key": key})
    try:
        yield svc, client
    finally:
        client.close()
        svc.close()


@pytest.fixture
def http(world: tuple[Services, TestClient]) -> TestClient:
    return world[1]


@pytest.fixture
def api_settings(world: tuple[Services, TestClient]) -> Iterator[object]:
    """The API's settings, restored after the test changes them."""
    api = world[0].settings.api
    before = api.model_copy()
    yield api
    for name in type(api).model_fields:
        setattr(api, name, getattr(before, name))


def _wait_job(http: TestClient, job_id: int) -> dict:
    for _ in range(300):
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def _upload(http: TestClient, files: list[tuple[str, bytes]], **form: str) -> dict:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    response = http.post("/v1/ingest", files=parts, data=form)
    assert response.status_code == 202, response.text
    return _wait_job(http, response.json()["job_id"])


def _failures(job: dict) -> dict[str, str]:
    return {f["item"]: f["reason"] for f in job["failures"]}


def _png(h: int, w: int) -> bytes:
    ok, buf = cv2.imencode(".png", np.full((h, w, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def test_an_empty_file_in_a_batch_fails_alone_by_name(http: TestClient) -> None:
    job = _upload(
        http,
        [
            ("good-1.jpg", jpeg(person_image(61))),
            ("empty.jpg", b""),
            ("good-2.jpg", jpeg(person_image(62))),
        ],
        camera="hall",
    )
    assert (job["status"], job["total"], job["processed"], job["failed"]) == ("done", 3, 3, 1)
    assert list(_failures(job)) == ["empty.jpg"] and "empty" in _failures(job)["empty.jpg"]


def test_an_unknown_upload_field_is_422_naming_it(http: TestClient) -> None:
    files = [("files", ("p.jpg", jpeg(person_image(63)), "image/jpeg"))]
    response = http.post("/v1/ingest", files=files, data={"thermal": "yes", "camera": "hall"})
    assert response.status_code == 422 and "thermal" in response.text


def test_bad_files_fail_alone_named_and_the_rest_lands(http: TestClient, api_settings) -> None:  # type: ignore[no-untyped-def]
    api_settings.max_upload_mb = 0.02  # about 20 KB per file
    job = _upload(
        http,
        [
            ("fine.jpg", jpeg(person_image(70))),
            ("pixel.png", _png(1, 1)),
            ("huge.jpg", b"\xff" * 40_000),
            ("notes.txt", b"hello"),
            ("garbage.mp4", b"not a video at all" * 10),
        ],
        camera="gate",
    )
    failures = _failures(job)
    assert (job["processed"], job["failed"]) == (5, 4), job
    assert set(failures) == {"pixel.png", "huge.jpg", "notes.txt", "garbage.mp4"}
    assert "too small to hold a person" in failures["pixel.png"]
    assert "limit" in failures["huge.jpg"]
    assert "unsupported media type" in failures["notes.txt"]
    # The reason names the user's file, never a temporary copy or a stored object.
    assert failures["garbage.mp4"].startswith("garbage.mp4: ")
    assert "media.mp4" not in failures["garbage.mp4"] and "/" not in failures["garbage.mp4"]


def test_a_request_whose_files_are_all_refused_is_refused_whole(
    http: TestClient,
    api_settings,  # type: ignore[no-untyped-def]
) -> None:
    api_settings.max_upload_mb = 0.01
    big = [("files", ("big.jpg", b"\xff" * 20_000, "image/jpeg"))]
    response = http.post("/v1/ingest", files=big)
    assert response.status_code == 413 and "big.jpg" in response.text


def test_more_files_than_allowed_is_413(http: TestClient, api_settings) -> None:  # type: ignore[no-untyped-def]
    api_settings.max_files_per_request = 2
    files = [("files", (f"p{i}.jpg", jpeg(person_image(i)), "image/jpeg")) for i in range(3)]
    response = http.post("/v1/ingest", files=files)
    assert response.status_code == 413 and "at most 2" in response.text


def test_a_declared_body_over_the_limit_is_refused_before_reading(
    http: TestClient,
    api_settings,  # type: ignore[no-untyped-def]
) -> None:
    api_settings.max_request_mb = 1
    headers = {
        "content-type": "multipart/form-data; boundary=x",
        "content-length": str(300 * 2**20),
    }
    response = http.post("/v1/ingest", content=b"--x--\r\n", headers=headers)
    assert response.status_code == 413 and "1 MB limit" in response.json()["detail"]


def test_the_size_limit_answers_without_reading_the_body() -> None:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        raise AssertionError("the app must not run")

    async def receive() -> dict:
        raise AssertionError("the body must not be read")

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    guard = BodySizeLimit(app, limit_for=lambda scope: 1000)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-length", b"5000")],
    }
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 413


def test_a_body_without_length_is_cut_off_at_the_limit(http: TestClient, api_settings) -> None:  # type: ignore[no-untyped-def]
    api_settings.max_request_mb = 0.5
    chunk = b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n'

    def body() -> Iterator[bytes]:
        yield chunk
        for _ in range(20):
            yield b"\xff" * 65536

    headers = {"content-type": "multipart/form-data; boundary=x"}
    response = http.post("/v1/ingest", content=body(), headers=headers)
    assert response.status_code == 413, response.text


def test_an_upload_is_streamed_into_the_store_not_held_in_memory(
    world: tuple[Services, TestClient],
) -> None:
    svc = world[0]
    payload = np.random.default_rng(0).integers(0, 255, 8 * 2**20, dtype=np.uint8).tobytes()
    upload = UploadFile(io.BytesIO(payload), filename="big.mp4", size=len(payload))
    tracemalloc.start()
    try:
        item = stage_upload(svc.store, upload, limit_bytes=16 * 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert item["name"] == "big.mp4" and svc.store.get_bytes(item["key"]) == payload
    assert peak < 3 * 2**20, f"peak {peak / 2**20:.1f} MB while staging an 8 MB upload"


def test_identical_bytes_from_another_camera_keep_their_provenance(
    world: tuple[Services, TestClient],
) -> None:
    svc, http = world
    data = jpeg(person_image(80))
    first = _upload(http, [("door.jpg", data)], camera="door")
    again = _upload(http, [("copy.jpg", data)], camera="yard")
    reason = _failures(again)["copy.jpg"]
    assert "'door'" in reason and "'yard'" in reason and "kept" in reason
    with svc.sessions() as s:
        media = s.scalars(select(Media).where(Media.original_name == "door.jpg")).one()
        assert media.camera.name == "door" and media.job_id == first["id"]
    same_camera = _upload(http, [("copy.jpg", data)], camera="door")
    assert (same_camera["failed"], same_camera["processed"]) == (0, 1)
    with svc.sessions() as s:
        assert s.get(Media, media.id).job_id == first["id"]


def _folder_job(http: TestClient, path: Path) -> dict:
    response = http.post("/v1/ingest/folder", json={"path": str(path), "camera": "archive"})
    assert response.status_code == 202, response.text
    return _wait_job(http, response.json()["job_id"])


def test_folder_ingest_needs_configured_roots(http: TestClient, tmp_path: Path) -> None:
    response = http.post("/v1/ingest/folder", json={"path": str(tmp_path)})
    assert response.status_code == 403 and "AIOREID_API__INGEST_ROOTS" in response.text


def test_a_symlink_out_of_an_allowed_folder_is_refused_by_name(
    http: TestClient,
    api_settings,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    allowed, secret = tmp_path / "allowed", tmp_path / "secret"
    allowed.mkdir()
    secret.mkdir()
    (allowed / "inside.jpg").write_bytes(jpeg(person_image(90)))
    (secret / "private.jpg").write_bytes(jpeg(person_image(91)))
    (allowed / "sneaky.jpg").symlink_to(secret / "private.jpg")
    (allowed / "outside").symlink_to(secret, target_is_directory=True)
    api_settings.ingest_roots = [allowed]
    job = _folder_job(http, allowed)
    assert job["failed"] >= 1 and job["processed"] - job["failed"] == 1, job
    assert str(allowed / "sneaky.jpg") in _failures(job)
    assert all("outside the folders" in r for r in _failures(job).values())
    outside = http.post("/v1/ingest/folder", json={"path": str(allowed / "outside")})
    assert outside.status_code == 403
