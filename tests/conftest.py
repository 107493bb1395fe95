"""Shared fixtures. Tests never touch the network: hubs are forced offline here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-identity synthetic world in every layout, without videos (about a second)."""
    from aioreid.encoder.data.synth import SynthConfig, generate_world

    root = tmp_path_factory.mktemp("world")
    generate_world(root, SynthConfig(identities=12, seed=3, videos_per_camera=0, progress=False))
    return root


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; two threads thrash when the CPU is shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- metadata database (throwaway Postgres databases come from tests/pg.py) ---


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh Postgres database migrated to head, dropped after the module.

    Skipped when no server answers (set AIOREID_TEST_REQUIRE_POSTGRES=1 to fail instead).
    """
    from pg import require_postgres, temporary_postgres_database

    from aioreid.platform.db.migrate import upgrade

    require_postgres()
    with temporary_postgres_database() as url:
        upgrade(url)
        yield url
