"""Build the configured object store from the settings tree."""

from __future__ import annotations

from aioreid.platform.config import Settings
from aioreid.platform.storage.base import ObjectStore
from aioreid.platform.storage.local import LocalObjectStore
from aioreid.platform.storage.minio_store import MinioObjectStore


def build_store(settings: Settings) -> ObjectStore:
    """``local``: a folder at ``settings.storage_root``; ``minio``: the configured bucket (made
    if missing, so an unreachable endpoint raises :class:`StorageUnavailable` here)."""
    cfg = settings.storage
    if cfg.backend == "local":
        return LocalObjectStore(
            settings.storage_root,
            cfg.signing_key.get_secret_value().encode(),
            presign_seconds=cfg.presign_seconds,
        )
    if cfg.backend == "minio":
        return MinioObjectStore(
            cfg.endpoint,
            cfg.access_key.get_secret_value(),
            cfg.secret_key.get_secret_value(),
            cfg.bucket,
            secure=cfg.secure,
            region=cfg.region,
            presign_seconds=cfg.presign_seconds,
            timeout_s=cfg.timeout_s,
        )
    raise ValueError(f"unknown storage backend {cfg.backend!r}")
