"""Backend-neutral vector index API.

Points are person sightings: a unit-length float32 vector (COSINE) plus a payload with the
fields filters read: ``camera`` (int), ``time`` (float unix seconds), ``modality`` (str),
``media`` (int), ``sighting`` (int), ``identity`` (int | None), ``review`` (str: the
analyst review state) and ``attributes`` (str -> str). There is one collection per encoder
version (:meth:`collection_for_version`); searches go through an alias so a re-index can be
swapped in with one :meth:`set_alias`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .naming import check_name, collection_name
from .validation import as_vector

_ATTR_KEY_BAD = set(".[]\"'")
#: The ``review`` payload values an analyst decision sets; anything else is unreviewed.
REVIEWED = ("confirmed", "rejected")


@dataclass
class IndexPoint:
    """A stored point; ``vector`` is None when it was retrieved without vectors."""

    id: str
    vector: np.ndarray | None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    dim: int
    points: int
    quantization: bool


@dataclass(frozen=True)
class AnyOf:
    """Neutral clause: ``payload[key]`` equals one of ``values`` (nothing matches when empty)."""

    key: str
    values: tuple[int | str, ...]


@dataclass(frozen=True)
class Within:
    """Neutral clause: ``gte <= payload[key] <= lte`` (either bound may be open)."""

    key: str
    gte: float | None
    lte: float | None


Clause = AnyOf | Within


@dataclass
class SearchFilter:
    """Conditions ANDed together; None means "no constraint", an empty list matches nothing.

    ``attributes={"upper": "red"}`` means ``payload["attributes"]["upper"] == "red"``.
    """

    cameras: list[int] | None = None
    time_from: float | None = None
    time_to: float | None = None
    modalities: list[str] | None = None
    identity_ids: list[int] | None = None
    media_ids: list[int] | None = None
    sighting_ids: list[int] | None = None
    exclude_sighting_ids: list[int] | None = None
    attributes: dict[str, str] | None = None
    #: Which points: ``sighting`` (one per representative crop), ``track`` (one pooled point
    #: per track) or None for both.
    level: str | None = None
    #: Analyst review state: ``confirmed``, ``rejected``, ``unreviewed`` or None for any.
    review: str | None = None

    def __post_init__(self) -> None:
        if self.level not in (None, "sighting", "track"):
            raise ValueError(f"level must be 'sighting' or 'track', got {self.level!r}")
        if self.review not in (None, "unreviewed", *REVIEWED):
            raise ValueError(
                f"review must be 'confirmed', 'rejected' or 'unreviewed', got {self.review!r}"
            )
        for name in (
            "cameras",
            "identity_ids",
            "media_ids",
            "sighting_ids",
            "exclude_sighting_ids",
        ):
            setattr(self, name, _int_list(name, getattr(self, name)))
        if self.modalities is not None:
            if isinstance(self.modalities, str) or not all(
                isinstance(m, str) for m in self.modalities
            ):
                raise TypeError(f"modalities must be a list of str, got {self.modalities!r}")
            self.modalities = list(self.modalities)
        for name in ("time_from", "time_to"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                    raise TypeError(f"{name} must be unix seconds, got {value!r}")
                if not np.isfinite(value):
                    raise ValueError(f"{name} must be finite, got {value!r}")
                setattr(self, name, float(value))
        if self.attributes is not None:
            if not isinstance(self.attributes, dict):
                raise TypeError(f"attributes must be a dict, got {self.attributes!r}")
            for key, value in self.attributes.items():
                if not isinstance(key, str) or not key or _ATTR_KEY_BAD & set(key):
                    raise ValueError(
                        f"attribute name {key!r} must be non-empty without . [ ] quotes"
                    )
                if not isinstance(value, str):
                    raise TypeError(
                        f"attribute {key!r} must be matched against a str, got {value!r}"
                    )

    def clauses(self) -> tuple[list[Clause], list[Clause]]:
        """The filter as neutral (must, must_not) clause lists for a backend to translate."""
        must: list[Clause] = []
        for key, values in (
            ("camera", self.cameras),
            ("modality", self.modalities),
            ("identity", self.identity_ids),
            ("media", self.media_ids),
            ("sighting", self.sighting_ids),
        ):
            if values is not None:
                must.append(AnyOf(key, tuple(values)))
        if self.time_from is not None or self.time_to is not None:
            must.append(Within("time", self.time_from, self.time_to))
        for key, value in (self.attributes or {}).items():
            must.append(AnyOf(f"attributes.{key}", (value,)))
        must_not: list[Clause] = []
        # Sighting points carry no ``level`` (those made before tracks existed neither), so
        # "sighting" is "not a track point".
        if self.level == "track":
            must.append(AnyOf("level", ("track",)))
        elif self.level == "sighting":
            must_not.append(AnyOf("level", ("track",)))
        # Points written before the review state reached the payload carry no ``review``, so
        # "unreviewed" is "not marked reviewed" (`aioreid reindex sync-review` marks the old
        # points analysts had reviewed).
        if self.review == "unreviewed":
            must_not.append(AnyOf("review", REVIEWED))
        elif self.review is not None:
            must.append(AnyOf("review", (self.review,)))
        if self.exclude_sighting_ids:
            # A track point lists its sightings under ``sightings``: excluding a sighting
            # excludes its track too.
            must_not.append(AnyOf("sighting", tuple(self.exclude_sighting_ids)))
            must_not.append(AnyOf("sightings", tuple(self.exclude_sighting_ids)))
        return must, must_not

    def matches_nothing(self) -> bool:
        """True when no point can match (an empty id/camera list, or time_from > time_to);
        backends answer such filters without a query."""
        must, _ = self.clauses()
        if any(isinstance(c, AnyOf) and not c.values for c in must):
            return True
        return (
            self.time_from is not None
            and self.time_to is not None
            and self.time_from > self.time_to
        )

    def is_empty(self) -> bool:
        must, must_not = self.clauses()
        return not must and not must_not


def _int_list(name: str, values: Iterable[Any] | None) -> list[int] | None:
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of int, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be a list of int, got item {v!r}")
        out.append(int(v))
    return out


class VectorIndex(ABC):
    """Collections of sighting vectors behind aliases. ``target`` arguments accept an alias
    or a collection name (aliases win); unknown ones raise CollectionNotFound."""

    def __init__(self, prefix: str = "aioreid") -> None:
        self.prefix = check_name(prefix, "prefix")

    def collection_for_version(self, version: str) -> str:
        """The collection name for an encoder version (sanitised, collision-safe)."""
        return collection_name(self.prefix, version)

    # -- collections and aliases -------------------------------------------------------------
    @abstractmethod
    def create_collection(self, name: str, dim: int, *, quantization: bool = False) -> None:
        """Create ``name`` for ``dim``-dim cosine vectors with payload indexes. When it exists
        with that dim only the payload indexes it lacks are added (a collection made by an older
        release; quantization is fixed at creation), DimensionMismatch otherwise."""

    @abstractmethod
    def list_collections(self) -> list[str]: ...

    @abstractmethod
    def drop_collection(self, name: str, *, missing_ok: bool = False) -> None:
        """Delete a collection and every alias pointing at it."""

    @abstractmethod
    def info(self, target: str) -> CollectionInfo: ...

    @abstractmethod
    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` in one atomic step (searches see old or new)."""

    @abstractmethod
    def resolve_alias(self, alias: str) -> str | None: ...

    @abstractmethod
    def list_aliases(self) -> dict[str, str]: ...

    @abstractmethod
    def drop_alias(self, alias: str) -> None:
        """Remove an alias (no-op when absent); the collection stays."""

    # -- points ---------------------------------------------------------------------------------
    @abstractmethod
    def upsert(self, collection: str, points: Sequence[IndexPoint]) -> None:
        """Insert or replace points; the whole batch is validated first (ids are UUID strings,
        vectors finite with the collection's dim, payloads JSON) and nothing is written if any
        point is bad."""

    def search(
        self,
        target: str,
        vector: Any,
        *,
        limit: int = 10,
        flt: SearchFilter | None = None,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """Nearest points by cosine similarity, best first; ``score_threshold`` keeps
        ``score >= threshold``. One row of :meth:`search_batch`."""
        return self.search_batch(
            target,
            as_vector(vector)[None, :],
            limit=limit,
            flt=flt,
            score_threshold=score_threshold,
        )[0]

    @abstractmethod
    def search_batch(
        self,
        target: str,
        vectors: Any,
        *,
        limit: int = 10,
        flt: SearchFilter | None = None,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        """:meth:`search` for every row of ``vectors``, planned together by the backend."""

    @abstractmethod
    def retrieve(
        self, target: str, ids: Sequence[str], with_vectors: bool = False
    ) -> list[IndexPoint]:
        """The points that exist among ``ids``, in the order asked."""

    @abstractmethod
    def count(self, target: str, flt: SearchFilter | None = None) -> int: ...

    @abstractmethod
    def delete(self, target: str, ids: Sequence[str]) -> None:
        """Delete points by id; ids not present are ignored."""

    @abstractmethod
    def delete_by_filter(self, target: str, flt: SearchFilter) -> int:
        """Delete the points matching ``flt`` and return how many matched. An empty filter is
        refused (ValueError): dropping everything is :meth:`drop_collection`."""

    @abstractmethod
    def set_payload(self, target: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        """Merge ``payload`` into the top level of each point's payload (a nested dict such as
        ``attributes`` is replaced whole). PointNotFound, with nothing changed, if an id is
        missing."""

    def set_payloads(self, target: str, payloads: Mapping[str, dict[str, Any]]) -> None:
        """:meth:`set_payload` for many points that each get their own payload, in one call
        per distinct payload (a review touches many points with few distinct values)."""
        groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for point, payload in payloads.items():
            key = json.dumps(payload, sort_keys=True)
            groups.setdefault(key, (payload, []))[1].append(point)
        for payload, points in groups.values():
            self.set_payload(target, points, payload)

    @abstractmethod
    def scroll(
        self, target: str, batch: int = 256, flt: SearchFilter | None = None
    ) -> Iterator[IndexPoint]:
        """Every (matching) point once, with vector and payload, in id order."""

    def optimize(self, target: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """Build search structures now (edge: HNSW; it blocks). Other backends do this alone."""

    @abstractmethod
    def close(self) -> None:
        """Release files and connections; calling it again is fine."""

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def refuse_empty(flt: SearchFilter | None) -> SearchFilter:
    """delete_by_filter guard: an empty filter would delete the whole collection."""
    if flt is None or flt.is_empty():
        raise ValueError("delete_by_filter needs a non-empty filter; use drop_collection")
    return flt
