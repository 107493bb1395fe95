"""Profiles are switched by configuration only: the same services, built from AIOREID_*
environment variables, run on Postgres + MinIO (moto's S3 server) or SQLite + local folder."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from platform_fixtures import jpeg, person_image, tiny_encoder
from test_storage import s3_endpoint  # noqa: F401  (module-scoped moto S3 server fixture)

from aioreid.platform.config import Settings
from aioreid.platform.index.qdrant_client_index import QdrantClientIndex
from aioreid.platform.pipeline.ingest import ingest_bytes
from aioreid.platform.search.service import SearchService
from aioreid.platform.services import Services
from aioreid.platform.storage.local import LocalObjectStore
from aioreid.platform.storage.minio_store import MinioObjectStore


def _roundtrip(svc: Services) -> str:
    res = ingest_bytes(svc, jpeg(person_image(7)), "p7.jpg", camera="door")
    assert res.status == "done" and res.sightings == 1
    hit = SearchService(svc).search({"rgb": jpeg(person_image(7))}).hits[0]
    assert hit.score == pytest.approx(1.0, abs=1e-3)
    assert svc.store.get_bytes(hit.object_key)[:2] == b"\xff\xd8"  # a JPEG crop
    return hit.url or ""


def test_services_from_environment_postgres_and_minio(
    pg_url: str,
    s3_endpoint: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_torch_thread: None,
) -> None:
    for key, value in {
        "AIOREID_HOME": str(tmp_path),
        "AIOREID_DATABASE__URL": pg_url,
        "AIOREID_STORAGE__BACKEND": "minio",
        "AIOREID_STORAGE__ENDPOINT": s3_endpoint,
        "AIOREID_STORAGE__BUCKET": "profile-test",
        "AIOREID_STORAGE__ACCESS_KEY": "testing",
        "AIOREID_STORAGE__SECRET_KEY": "testing",
        "AIOREID_INDEX__BACKEND": "local",
    }.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.storage.secret_key.get_secret_value() == "testing"
    assert "testing" not in str(settings.redacted())
    svc = Services.from_settings(settings, encoder=tiny_encoder(), migrate=False)
    try:
        assert isinstance(svc.store, MinioObjectStore)
        assert isinstance(svc.index, QdrantClientIndex)
        assert svc.engine.dialect.name == "postgresql"
        url = _roundtrip(svc)
        assert url.startswith(f"http://{s3_endpoint}/profile-test/crops/")
        assert httpx.get(url, timeout=10).content[:2] == b"\xff\xd8"  # presigned, no key
    finally:
        svc.close()


def test_embedded_default_sqlite_edge_and_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    monkeypatch.setenv("AIOREID_HOME", str(tmp_path))
    settings = Settings()
    svc = Services.from_settings(settings, encoder=tiny_encoder())  # migrates SQLite itself
    try:
        assert svc.engine.dialect.name == "sqlite"
        assert isinstance(svc.store, LocalObjectStore)
        assert type(svc.index).__name__ == "EdgeIndex"
        url = _roundtrip(svc)
        assert url.startswith("/v1/objects/crops/")
        assert (tmp_path / "aioreid.db").is_file() and (tmp_path / "objects").is_dir()
    finally:
        svc.close()


def test_services_profile_refuses_embedded_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOREID_PROFILE", "services")
    with pytest.raises(ValueError, match="AIOREID_DATABASE__URL"):
        Settings()
    monkeypatch.setenv("AIOREID_DATABASE__URL", "postgresql+psycopg://x@127.0.0.1/db")
    with pytest.raises(ValueError, match="AIOREID_INDEX__BACKEND=server"):
        Settings()
