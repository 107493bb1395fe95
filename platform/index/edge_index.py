"""The "edge" backend: Qdrant Edge (``qdrant_edge``), an in-process HNSW shard with a WAL.

An edge shard is one folder holding one vector space, and Qdrant Edge has no aliases, so the
index folder is laid out as::

    root/
      .lock                          flock held while open (one process per folder)
      aliases.json                   {"aliases": {alias: collection}}, replaced via os.replace
      collections/<name>/collection.json   {"dim", "quantization", ...}, written last
      collections/<name>/shard/      the EdgeShard (segments, WAL)

A collection exists once its ``collection.json`` exists; a folder without one is the leftover
of an interrupted create and is cleared on the next create. Fresh points sit in a plain
appendable segment that is searched exactly; :meth:`EdgeIndex.optimize` builds the HNSW graph
(it blocks the calling process; run it after bulk loads and re-indexes).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from .alias_file import AliasFile, write_json_atomic
from .base import AnyOf, CollectionInfo, Hit, IndexPoint, SearchFilter, VectorIndex, refuse_empty
from .errors import CollectionNotFound, DimensionMismatch, IndexClosed, IndexLocked, PointNotFound
from .ids import normalise_id
from .naming import check_name, is_valid_name
from .validation import as_matrix, clean_payload, positive_limit, prepare_points

_META = "collection.json"
_FORMAT = 1
_UPSERT_CHUNK = 1024

# Payload indexes. camera/time/modality keep Qdrant's per-block HNSW links, built only for
# blocks larger than full_scan_threshold_kb (smaller filters are answered exactly through the
# payload index): a low threshold builds links for small blocks, which is slow and loses
# recall on selective filters (docs/results.md, "Vector index"). Id-like fields get plain
# lookup indexes.
_LOOKUP = qe.IntegerIndexParams(lookup=True, range=False, enable_hnsw=False)
PAYLOAD_SCHEMA: dict[str, Any] = {
    "camera": qe.PayloadSchemaType.Integer,
    "time": qe.PayloadSchemaType.Float,
    "modality": qe.PayloadSchemaType.Keyword,
    "level": qe.PayloadSchemaType.Keyword,
    "review": qe.PayloadSchemaType.Keyword,
    "media": _LOOKUP,
    "sighting": _LOOKUP,
    "sightings": _LOOKUP,
    "identity": _LOOKUP,
}


def to_edge_filter(flt: SearchFilter | None) -> qe.Filter | None:
    if flt is None:
        return None
    must, must_not = flt.clauses()
    if not must and not must_not:
        return None
    return qe.Filter(
        must=[_condition(c) for c in must] or None,
        must_not=[_condition(c) for c in must_not] or None,
    )


def _condition(clause: Any) -> qe.FieldCondition:
    if isinstance(clause, AnyOf):
        return qe.FieldCondition(key=clause.key, match=qe.MatchAny(list(clause.values)))
    return qe.FieldCondition(key=clause.key, range=qe.RangeFloat(gte=clause.gte, lte=clause.lte))


def _index_payload(shard: qe.EdgeShard) -> None:
    """Create the payload indexes of :data:`PAYLOAD_SCHEMA` that ``shard`` lacks."""
    have = shard.info().payload_schema
    missing = [field for field in PAYLOAD_SCHEMA if field not in have]
    for field in missing:
        shard.update(qe.UpdateOperation.create_field_index(field, PAYLOAD_SCHEMA[field]))
    if missing:
        shard.flush()


@dataclass(frozen=True)
class _Meta:
    dim: int
    quantization: bool


class EdgeIndex(VectorIndex):
    """VectorIndex over Qdrant Edge shards under ``root`` (created if needed)."""

    def __init__(
        self,
        root: str | Path,
        *,
        prefix: str = "aioreid",
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 100,
        hnsw_ef: int | None = 128,
        full_scan_threshold_kb: int = 50_000,
        indexing_threshold_kb: int | None = None,
    ) -> None:
        super().__init__(prefix)
        self.root = Path(root)
        self._collections = self.root / "collections"
        self._collections.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = _lock_folder(self.root)
        for leftover in self.root.glob(".trash-*"):  # a drop interrupted after its rename
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in self.root.glob(".*.tmp"):  # an alias write interrupted before rename
            leftover.unlink(missing_ok=True)
        self._aliases = AliasFile(self.root / "aliases.json")
        self._shards: dict[str, tuple[qe.EdgeShard, _Meta]] = {}
        self._mutex = threading.RLock()
        self._hnsw = qe.HnswIndexConfig(
            m=hnsw_m, ef_construct=hnsw_ef_construct, full_scan_threshold=full_scan_threshold_kb
        )
        self._hnsw_ef = hnsw_ef
        self._indexing_threshold_kb = indexing_threshold_kb

    # -- helpers ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._lock_fd is None:
            raise IndexClosed()

    def _folder(self, name: str) -> Path:
        return self._collections / name

    def _exists(self, name: str) -> bool:
        """A collection whose create finished; names are checked first so that no target can
        reach outside the collections folder."""
        return is_valid_name(name) and (self._folder(name) / _META).is_file()

    def _resolve(self, target: str) -> str:
        self._check_open()
        collection = self._aliases.read().get(target)
        if collection is not None and self._exists(collection):
            return collection
        if self._exists(target):
            return target
        raise CollectionNotFound(target)

    def _open(self, target: str) -> tuple[str, qe.EdgeShard, _Meta]:
        name = self._resolve(target)
        with self._mutex:
            opened = self._shards.get(name)
            if opened is None:
                meta = _read_meta(self._folder(name) / _META)
                shard = qe.EdgeShard.load(str(self._folder(name) / "shard"))
                opened = self._shards[name] = (shard, meta)
        return name, opened[0], opened[1]

    def _params(self, meta: _Meta) -> qe.SearchParams:
        quant = (
            qe.QuantizationSearchParams(rescore=True, oversampling=2.0)
            if meta.quantization
            else None
        )
        return qe.SearchParams(hnsw_ef=self._hnsw_ef, quantization=quant)

    def _config(self, dim: int, quantization: bool) -> qe.EdgeConfig:
        quant = (
            qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True)
            if quantization
            else None
        )
        optimizers = (
            qe.EdgeOptimizersConfig(indexing_threshold=self._indexing_threshold_kb)
            if self._indexing_threshold_kb is not None
            else None
        )
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            hnsw_config=self._hnsw,
            quantization_config=quant,
            optimizers=optimizers,
        )

    # -- collections and aliases -------------------------------------------------------------
    def create_collection(self, name: str, dim: int, *, quantization: bool = False) -> None:
        self._check_open()
        check_name(name)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        with self._mutex:
            if name in self._aliases.read():
                raise ValueError(f"{name!r} is an alias; pick another collection name")
            if self._exists(name):
                existing = _read_meta(self._folder(name) / _META).dim
                if existing != dim:
                    raise DimensionMismatch(existing, dim, name)
                # A collection made before a payload field was indexed gains its index here
                # (the server backend re-creates its indexes the same way).
                _index_payload(self._open(name)[1])
                return
            folder = self._folder(name)
            if folder.exists():  # leftover of an interrupted create: it never held data
                shutil.rmtree(folder)
            shard = qe.EdgeShard.create(str(folder / "shard"), self._config(dim, quantization))
            try:
                _index_payload(shard)
                meta = {"format": _FORMAT, "dim": dim, "distance": "cosine"}
                write_json_atomic(folder / _META, {**meta, "quantization": quantization})
            except BaseException:
                shard.close()
                shutil.rmtree(folder, ignore_errors=True)
                raise
            self._shards[name] = (shard, _Meta(dim, quantization))

    def list_collections(self) -> list[str]:
        self._check_open()
        return sorted(p.name for p in self._collections.iterdir() if (p / _META).is_file())

    def drop_collection(self, name: str, *, missing_ok: bool = False) -> None:
        self._check_open()
        with self._mutex:
            if not self._exists(name):
                if missing_ok:
                    return
                raise CollectionNotFound(name)
            aliases = self._aliases.read()
            kept = {a: c for a, c in aliases.items() if c != name}
            if kept != aliases:
                self._aliases.write(kept)
            opened = self._shards.pop(name, None)
            if opened is not None:
                opened[0].close()
            # Rename first so a crash mid-delete never leaves a half collection behind.
            trash = self.root / f".trash-{uuid.uuid4().hex}"
            os.replace(self._folder(name), trash)
            shutil.rmtree(trash, ignore_errors=True)

    def info(self, target: str) -> CollectionInfo:
        name, shard, meta = self._open(target)
        points = shard.count(qe.CountRequest(exact=True))
        return CollectionInfo(name, meta.dim, points, meta.quantization)

    def set_alias(self, alias: str, collection: str) -> None:
        self._check_open()
        check_name(alias, "alias")
        with self._mutex:
            if not self._exists(collection):
                raise CollectionNotFound(collection)
            if self._exists(alias):
                raise ValueError(f"{alias!r} is a collection name; an alias cannot shadow it")
            aliases = self._aliases.read()
            aliases[alias] = collection
            self._aliases.write(aliases)

    def resolve_alias(self, alias: str) -> str | None:
        self._check_open()
        return self._aliases.read().get(alias)

    def list_aliases(self) -> dict[str, str]:
        self._check_open()
        return self._aliases.read()

    def drop_alias(self, alias: str) -> None:
        self._check_open()
        with self._mutex:
            aliases = self._aliases.read()
            if aliases.pop(alias, None) is not None:
                self._aliases.write(aliases)

    # -- points -------------------------------------------------------------------------------
    def upsert(self, collection: str, points: Sequence[IndexPoint]) -> None:
        name, shard, meta = self._open(collection)
        ids, rows, payloads = prepare_points(points, meta.dim, name)
        for start in range(0, len(ids), _UPSERT_CHUNK):
            end = min(start + _UPSERT_CHUNK, len(ids))
            batch = [qe.Point(ids[i], rows[i].tolist(), payloads[i]) for i in range(start, end)]
            shard.update(qe.UpdateOperation.upsert_points(batch))

    def search_batch(
        self,
        target: str,
        vectors: Any,
        *,
        limit: int = 10,
        flt: SearchFilter | None = None,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        name, shard, meta = self._open(target)
        rows = as_matrix(vectors, meta.dim, name)
        limit = positive_limit(limit)
        if flt is not None and flt.matches_nothing():
            return [[] for _ in rows]
        efilter, params = to_edge_filter(flt), self._params(meta)
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(v.tolist()),
                filter=efilter,
                score_threshold=score_threshold,
                params=params,
                with_payload=True,
            )
            for v in rows
        ]
        if len(requests) == 1:
            results = [shard.query(requests[0])]
        else:
            results = shard.query_batch(qe.QueryBatchRequest(requests))
        return [[Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in r] for r in results]

    def retrieve(
        self, target: str, ids: Sequence[str], with_vectors: bool = False
    ) -> list[IndexPoint]:
        _, shard, _ = self._open(target)
        wanted = [normalise_id(i) for i in ids]
        if not wanted:
            return []
        found = {str(r.id): r for r in shard.retrieve(wanted, True, with_vectors)}
        return [_to_point(found[i], with_vectors) for i in wanted if i in found]

    def count(self, target: str, flt: SearchFilter | None = None) -> int:
        _, shard, _ = self._open(target)
        if flt is not None and flt.matches_nothing():
            return 0
        return shard.count(qe.CountRequest(exact=True, filter=to_edge_filter(flt)))

    def delete(self, target: str, ids: Sequence[str]) -> None:
        _, shard, _ = self._open(target)
        wanted = [normalise_id(i) for i in ids]
        if wanted:
            shard.update(qe.UpdateOperation.delete_points(wanted))

    def delete_by_filter(self, target: str, flt: SearchFilter) -> int:
        flt = refuse_empty(flt)
        matched = self.count(target, flt)
        if matched:
            _, shard, _ = self._open(target)
            shard.update(qe.UpdateOperation.delete_points_by_filter(to_edge_filter(flt)))
        return matched

    def set_payload(self, target: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        name, shard, _ = self._open(target)
        clean = clean_payload(payload)
        wanted = [normalise_id(i) for i in ids]
        # Edge applies set_payload point by point and stops at a missing id, leaving the
        # earlier ones changed: check them all first.
        present = {str(r.id) for r in shard.retrieve(wanted, False, False)} if wanted else set()
        missing = [i for i in wanted if i not in present]
        if missing:
            raise PointNotFound(name, missing)
        if wanted and clean:
            shard.update(qe.UpdateOperation.set_payload(wanted, clean))

    def scroll(
        self, target: str, batch: int = 256, flt: SearchFilter | None = None
    ) -> Iterator[IndexPoint]:
        _, shard, _ = self._open(target)
        batch = positive_limit(batch)
        if flt is not None and flt.matches_nothing():
            return iter(())
        return self._scroll(shard, batch, to_edge_filter(flt))

    def _scroll(self, shard: qe.EdgeShard, batch: int, efilter: Any) -> Iterator[IndexPoint]:
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=batch, filter=efilter, with_payload=True, with_vector=True
            )
            records, offset = shard.scroll(request)
            for record in records:
                yield _to_point(record, True)
            if offset is None:
                return

    def optimize(self, target: str) -> None:
        _, shard, _ = self._open(target)
        shard.optimize()

    def close(self) -> None:
        with self._mutex:
            shards, self._shards = self._shards, {}
            for shard, _ in shards.values():
                shard.flush()
                shard.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # closing the descriptor drops the flock
                self._lock_fd = None


def _read_meta(path: Path) -> _Meta:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != _FORMAT:
        raise ValueError(f"{path}: unsupported collection format {data.get('format')!r}")
    return _Meta(int(data["dim"]), bool(data.get("quantization", False)))


def _to_point(record: Any, with_vectors: bool) -> IndexPoint:
    vector = np.asarray(record.vector, dtype=np.float32) if with_vectors else None
    return IndexPoint(str(record.id), vector, dict(record.payload or {}))


def _lock_folder(root: Path) -> int:
    """Hold an exclusive flock on ``root/.lock`` so a second process fails clearly."""
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl
    except ImportError:  # not POSIX: the shards' own WAL locks still refuse a second opener
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise IndexLocked(f"index folder {root} is open in another process") from None
    return fd
