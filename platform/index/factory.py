"""Pick the vector index backend from settings."""

from __future__ import annotations

from ..config import Settings
from .base import VectorIndex


def build_index(settings: Settings) -> VectorIndex:
    """edge: Qdrant Edge under ``settings.index_path``; local: qdrant-client local mode under
    ``index_path / "local"``; server: qdrant-client against ``settings.index.url``."""
    cfg = settings.index
    hnsw = {
        "hnsw_m": cfg.hnsw_m,
        "hnsw_ef_construct": cfg.hnsw_ef_construct,
        "hnsw_ef": cfg.hnsw_ef,
        "full_scan_threshold_kb": cfg.full_scan_threshold_kb,
    }
    if cfg.backend == "edge":
        from .edge_index import EdgeIndex

        return EdgeIndex(settings.index_path, prefix=cfg.collection_prefix, **hnsw)
    from .qdrant_client_index import QdrantClientIndex

    if cfg.backend == "local":
        return QdrantClientIndex.local(settings.index_path / "local", prefix=cfg.collection_prefix)
    if cfg.backend == "server":
        api_key = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
        return QdrantClientIndex.server(
            cfg.url, api_key, prefix=cfg.collection_prefix, timeout=cfg.timeout_s, **hnsw
        )
    raise ValueError(f"unknown index backend {cfg.backend!r}")
