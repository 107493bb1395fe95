"""The settings tree: env prefix, nesting, secrets, profile validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from aioreid.platform.config import Profile, Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("AIOREID_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env from the repo


def test_defaults_are_the_embedded_profile() -> None:
    s = Settings()
    assert s.profile is Profile.EMBEDDED
    assert s.database_url == f"sqlite:///{(Path('var') / 'aioreid.db').as_posix()}"
    assert s.storage.backend == "local"
    assert s.storage_root == Path("var") / "objects"
    assert s.index.backend == "edge"
    assert s.broker.runner == "in-process"


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOREID_HOME", "/srv/aioreid")
    monkeypatch.setenv("AIOREID_ENCODER__BATCH_SIZE", "128")
    monkeypatch.setenv("AIOREID_STORAGE__BACKEND", "minio")
    monkeypatch.setenv("AIOREID_STORAGE__ENDPOINT", "minio:9000")
    s = Settings()
    assert s.home == Path("/srv/aioreid")
    assert s.encoder.batch_size == 128
    assert s.storage.backend == "minio"
    assert s.storage.endpoint == "minio:9000"
    assert s.index_path == Path("/srv/aioreid/index")


def test_secrets_are_masked_when_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOREID_STORAGE__SECRET_KEY", "hunter2-very-secret")
    s = Settings()
    assert s.storage.secret_key.get_secret_value() == "hunter2-very-secret"
    dumped = json.dumps(s.redacted())
    assert "hunter2" not in dumped
    assert "hunter2" not in repr(s)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AIOREID_API__PORT=9123\n")
    assert Settings().api.port == 9123


def test_bad_values_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOREID_ENCODER__BATCH_SIZE", "zero")
    with pytest.raises(ValidationError, match="batch_size"):
        Settings()


def test_services_profile_requires_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOREID_PROFILE", "services")
    with pytest.raises(ValidationError, match="DATABASE__URL"):
        Settings()
    monkeypatch.setenv("AIOREID_DATABASE__URL", "postgresql+psycopg://127.0.0.1/test")
    with pytest.raises(ValidationError, match="INDEX__BACKEND"):
        Settings()
    monkeypatch.setenv("AIOREID_INDEX__BACKEND", "server")
    # The built-in signing key is public: refused by name outside the embedded profile.
    with pytest.raises(ValidationError, match="AIOREID_STORAGE__SIGNING_KEY"):
        Settings()
    monkeypatch.setenv("AIOREID_STORAGE__SIGNING_KEY", "change-me-signing-key")  # .env.example
    with pytest.raises(ValidationError, match="AIOREID_STORAGE__SIGNING_KEY"):
        Settings()
    monkeypatch.setenv("AIOREID_API__BOOTSTRAP_API_KEY", "change-me-bootstrap-api-key")
    monkeypatch.setenv("AIOREID_STORAGE__SIGNING_KEY", "a-key-of-our-own-4b1d")
    with pytest.raises(ValidationError, match="AIOREID_API__BOOTSTRAP_API_KEY"):
        Settings()
    monkeypatch.setenv("AIOREID_API__BOOTSTRAP_API_KEY", "a-bootstrap-key-of-our-own")
    monkeypatch.setenv("AIOREID_STORAGE__BACKEND", "minio")
    with pytest.raises(ValidationError, match="AIOREID_STORAGE__ACCESS_KEY"):
        Settings()  # minioadmin / minioadmin
    monkeypatch.setenv("AIOREID_STORAGE__ACCESS_KEY", "our-access")
    monkeypatch.setenv("AIOREID_STORAGE__SECRET_KEY", "our-secret-value")
    s = Settings()
    assert s.database_url.startswith("postgresql")


def test_job_runner_is_chosen_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner is found through the `aioreid.job_runners` entry points (pyproject.toml), so
    the platform never names the workers' module; a wrong name lists the installed ones."""
    from aioreid.platform.pipeline.job_runners import (
        InProcessRunner,
        RunnerConfigError,
        runner_class,
    )

    assert runner_class(Settings().broker.runner) is InProcessRunner
    monkeypatch.setenv("AIOREID_BROKER__RUNNER", "celery")
    celery = runner_class(Settings().broker.runner)
    assert celery.__module__ == "aioreid.workers.celery_runner" and celery.detached
    with pytest.raises(RunnerConfigError, match=r"'celry'.*installed: celery, in-process"):
        runner_class("celry")
