"""The "local" and "server" backends: one class over ``qdrant_client.QdrantClient``.

Local mode (``QdrantClient(path=...)`` or ``":memory:"``) is an exact Python scan meant for
tests and small setups: it ignores payload indexes, quantization and search params (so
``info().quantization`` reads False there), and on disk it commits every point to SQLite on
its own (~15 ms per point on this machine's disk), so keep it to a few thousand points.
Server mode talks to a Qdrant server and gets native aliases, payload indexes and int8 scalar
quantization with rescoring.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from .base import AnyOf, CollectionInfo, Hit, IndexPoint, SearchFilter, VectorIndex, refuse_empty
from .errors import CollectionNotFound, DimensionMismatch, IndexClosed, PointNotFound
from .ids import normalise_id
from .naming import check_name
from .validation import as_matrix, clean_payload, positive_limit, prepare_points

# Payload fields the filters read; `attributes.*` keys are open-ended and stay unindexed.
PAYLOAD_SCHEMA: dict[str, models.PayloadSchemaType] = {
    "camera": models.PayloadSchemaType.INTEGER,
    "time": models.PayloadSchemaType.FLOAT,
    "modality": models.PayloadSchemaType.KEYWORD,
    "level": models.PayloadSchemaType.KEYWORD,
    "review": models.PayloadSchemaType.KEYWORD,
    "media": models.PayloadSchemaType.INTEGER,
    "sighting": models.PayloadSchemaType.INTEGER,
    "sightings": models.PayloadSchemaType.INTEGER,
    "identity": models.PayloadSchemaType.INTEGER,
}
_UPSERT_CHUNK = 512  # keeps one request well under the server's 32 MiB body limit at dim 1024


def to_qdrant_filter(flt: SearchFilter | None) -> models.Filter | None:
    if flt is None:
        return None
    must, must_not = flt.clauses()
    if not must and not must_not:
        return None
    return models.Filter(
        must=[_condition(c) for c in must] or None,
        must_not=[_condition(c) for c in must_not] or None,
    )


def _condition(clause: Any) -> models.FieldCondition:
    if isinstance(clause, AnyOf):
        return models.FieldCondition(key=clause.key, match=models.MatchAny(any=list(clause.values)))
    return models.FieldCondition(key=clause.key, range=models.Range(gte=clause.gte, lte=clause.lte))


class QdrantClientIndex(VectorIndex):
    """VectorIndex over qdrant-client; build with :meth:`local` or :meth:`server`."""

    def __init__(
        self,
        client: QdrantClient,
        *,
        server: bool,
        prefix: str = "aioreid",
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 100,
        hnsw_ef: int | None = 128,
        full_scan_threshold_kb: int = 50_000,
    ) -> None:
        super().__init__(prefix)
        self._client: QdrantClient | None = client
        self._server = server
        self._hnsw = models.HnswConfigDiff(
            m=hnsw_m, ef_construct=hnsw_ef_construct, full_scan_threshold=full_scan_threshold_kb
        )
        self._params = models.SearchParams(
            hnsw_ef=hnsw_ef,
            quantization=models.QuantizationSearchParams(rescore=True, oversampling=2.0),
        )

    @classmethod
    def local(cls, path: str | Path | None = None, *, prefix: str = "aioreid") -> QdrantClientIndex:
        """Local mode in ``path`` (created if needed), or in memory when ``path`` is None."""
        if path is None:
            client = QdrantClient(location=":memory:")
        else:
            Path(path).mkdir(parents=True, exist_ok=True)
            client = QdrantClient(path=str(path))
        return cls(client, server=False, prefix=prefix)

    @classmethod
    def server(
        cls,
        url: str,
        api_key: str | None = None,
        *,
        prefix: str = "aioreid",
        timeout: int = 30,
        **hnsw: Any,
    ) -> QdrantClientIndex:
        client = QdrantClient(url=url, api_key=api_key, timeout=timeout)
        return cls(client, server=True, prefix=prefix, **hnsw)

    # -- helpers ----------------------------------------------------------------------------
    @property
    def client(self) -> QdrantClient:
        if self._client is None:
            raise IndexClosed()
        return self._client

    def list_aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def _is_collection(self, name: str) -> bool:
        """A real collection (``collection_exists`` is also true for alias names)."""
        return any(c.name == name for c in self.client.get_collections().collections)

    def _resolve(self, target: str) -> str:
        """Collection name behind an alias or collection name; CollectionNotFound otherwise."""
        collection = self.list_aliases().get(target)
        if collection is not None:
            return collection
        if isinstance(target, str) and self.client.collection_exists(target):
            return target
        raise CollectionNotFound(target)

    def _config(self, collection: str) -> tuple[int, bool]:
        params = self.client.get_collection(collection).config
        vectors = params.params.vectors
        if not isinstance(vectors, models.VectorParams):
            raise TypeError(f"collection {collection!r} uses named vectors; not made by aioreid")
        return vectors.size, params.quantization_config is not None

    def _diagnose(self, target: str, got: int) -> None:
        """After a failed query: raise the precise error if it was a bad target or dim."""
        collection = self._resolve(target)
        dim, _ = self._config(collection)
        if dim != got:
            raise DimensionMismatch(dim, got, collection)

    # -- collections and aliases -------------------------------------------------------------
    def create_collection(self, name: str, dim: int, *, quantization: bool = False) -> None:
        check_name(name)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if name in self.list_aliases():
            raise ValueError(f"{name!r} is an alias; pick another collection name")
        if not self.client.collection_exists(name):
            quant = (
                models.ScalarQuantization(
                    scalar=models.ScalarQuantizationConfig(
                        type=models.ScalarType.INT8, quantile=0.99, always_ram=True
                    )
                )
                if quantization
                else None
            )
            try:
                self.client.create_collection(
                    name,
                    vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                    hnsw_config=self._hnsw if self._server else None,
                    quantization_config=quant,
                )
            except Exception:
                if not self.client.collection_exists(name):  # not a lost creation race
                    raise
        existing, _ = self._config(name)
        if existing != dim:
            raise DimensionMismatch(existing, dim, name)
        if self._server:  # local mode ignores payload indexes (and warns about them)
            for field, schema in PAYLOAD_SCHEMA.items():
                self.client.create_payload_index(name, field, field_schema=schema, wait=True)

    def list_collections(self) -> list[str]:
        return sorted(c.name for c in self.client.get_collections().collections)

    def drop_collection(self, name: str, *, missing_ok: bool = False) -> None:
        if not self._is_collection(name):
            if missing_ok:
                return
            raise CollectionNotFound(name)
        self.client.delete_collection(name)

    def info(self, target: str) -> CollectionInfo:
        collection = self._resolve(target)
        dim, quantized = self._config(collection)
        points = self.client.count(collection, exact=True).count
        return CollectionInfo(collection, dim, points, quantized)

    def set_alias(self, alias: str, collection: str) -> None:
        check_name(alias, "alias")
        if not self._is_collection(collection):
            raise CollectionNotFound(collection)
        if self._is_collection(alias):
            raise ValueError(f"{alias!r} is a collection name; an alias cannot shadow it")
        ops: list[Any] = []
        if alias in self.list_aliases():
            ops.append(
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            )
        ops.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
            )
        )
        self.client.update_collection_aliases(change_aliases_operations=ops)  # one atomic change

    def resolve_alias(self, alias: str) -> str | None:
        return self.list_aliases().get(alias)

    def drop_alias(self, alias: str) -> None:
        if alias in self.list_aliases():
            op = models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            self.client.update_collection_aliases(change_aliases_operations=[op])

    # -- points -------------------------------------------------------------------------------
    def upsert(self, collection: str, points: Sequence[IndexPoint]) -> None:
        name = self._resolve(collection)
        dim, _ = self._config(name)
        ids, rows, payloads = prepare_points(points, dim, name)
        for start in range(0, len(ids), _UPSERT_CHUNK):
            end = start + _UPSERT_CHUNK
            batch = models.Batch(
                ids=ids[start:end], vectors=rows[start:end].tolist(), payloads=payloads[start:end]
            )
            self.client.upsert(name, points=batch, wait=True)

    def _request(
        self, vector: Any, limit: int, flt: SearchFilter | None, threshold: float | None
    ) -> models.QueryRequest:
        return models.QueryRequest(
            query=vector.tolist(),
            limit=limit,
            filter=to_qdrant_filter(flt),
            score_threshold=threshold,
            params=self._params if self._server else None,
            with_payload=True,
        )

    def search_batch(
        self,
        target: str,
        vectors: Any,
        *,
        limit: int = 10,
        flt: SearchFilter | None = None,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        rows = as_matrix(vectors)
        limit = positive_limit(limit)
        if flt is not None and flt.matches_nothing():
            self._resolve(target)
            return [[] for _ in rows]
        requests = [self._request(v, limit, flt, score_threshold) for v in rows]
        try:
            responses = self.client.query_batch_points(target, requests=requests)
        except Exception:
            self._diagnose(target, rows.shape[1])
            raise
        return [
            [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in r.points]
            for r in responses
        ]

    def retrieve(
        self, target: str, ids: Sequence[str], with_vectors: bool = False
    ) -> list[IndexPoint]:
        name = self._resolve(target)
        wanted = [normalise_id(i) for i in ids]
        if not wanted:
            return []
        records = self.client.retrieve(
            name, ids=wanted, with_payload=True, with_vectors=with_vectors
        )
        found = {str(r.id): r for r in records}
        return [_to_point(found[i], with_vectors) for i in wanted if i in found]

    def count(self, target: str, flt: SearchFilter | None = None) -> int:
        name = self._resolve(target)
        if flt is not None and flt.matches_nothing():
            return 0
        return self.client.count(name, count_filter=to_qdrant_filter(flt), exact=True).count

    def delete(self, target: str, ids: Sequence[str]) -> None:
        name = self._resolve(target)
        wanted = [normalise_id(i) for i in ids]
        if wanted:
            selector = models.PointIdsList(points=wanted)
            self.client.delete(name, points_selector=selector, wait=True)

    def delete_by_filter(self, target: str, flt: SearchFilter) -> int:
        flt = refuse_empty(flt)
        matched = self.count(target, flt)
        if matched:
            selector = models.FilterSelector(filter=to_qdrant_filter(flt))
            self.client.delete(self._resolve(target), points_selector=selector, wait=True)
        return matched

    def set_payload(self, target: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        name = self._resolve(target)
        clean = clean_payload(payload)
        wanted = [normalise_id(i) for i in ids]
        present = {
            str(r.id)
            for r in self.client.retrieve(name, ids=wanted, with_payload=False, with_vectors=False)
        }
        missing = [i for i in wanted if i not in present]
        if missing:
            raise PointNotFound(name, missing)
        if wanted and clean:
            self.client.set_payload(name, payload=clean, points=wanted, wait=True)

    def scroll(
        self, target: str, batch: int = 256, flt: SearchFilter | None = None
    ) -> Iterator[IndexPoint]:
        name = self._resolve(target)
        batch = positive_limit(batch)
        if flt is not None and flt.matches_nothing():
            return iter(())
        return self._scroll(name, batch, to_qdrant_filter(flt))

    def _scroll(self, name: str, batch: int, qfilter: models.Filter | None) -> Iterator[IndexPoint]:
        offset: Any = None
        while True:
            records, offset = self.client.scroll(
                name,
                scroll_filter=qfilter,
                limit=batch,
                offset=offset,
                with_payload=True,
                with_vectors=True,
            )
            for record in records:
                yield _to_point(record, True)
            if offset is None:
                return

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()


def _to_point(record: Any, with_vectors: bool) -> IndexPoint:
    vector = np.asarray(record.vector, dtype=np.float32) if with_vectors else None
    return IndexPoint(str(record.id), vector, dict(record.payload or {}))
