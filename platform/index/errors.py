"""Errors raised by every vector index backend, so callers never see backend-specific types."""

from __future__ import annotations


class VectorIndexError(Exception):
    """Base of all vector index errors."""


class CollectionNotFound(VectorIndexError, LookupError):
    """A collection or alias that does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no collection or alias named {name!r}")
        self.name = name


class DimensionMismatch(VectorIndexError, ValueError):
    """A vector (or a re-created collection) whose dimension differs from the collection's."""

    def __init__(self, expected: int, got: int, where: str = "") -> None:
        at = f" in {where}" if where else ""
        super().__init__(f"vector dimension mismatch{at}: collection has {expected}, got {got}")
        self.expected = expected
        self.got = got


class PointNotFound(VectorIndexError, LookupError):
    """Points that an operation needs but the collection does not hold."""

    def __init__(self, collection: str, ids: list[str]) -> None:
        shown = ", ".join(ids[:5]) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")
        super().__init__(f"collection {collection!r} has no point(s) {shown}")
        self.collection = collection
        self.ids = ids


class IndexClosed(VectorIndexError, RuntimeError):
    """The index was used after close()."""

    def __init__(self) -> None:
        super().__init__("vector index is closed")


class IndexLocked(VectorIndexError, RuntimeError):
    """The index folder is open in another process (embedded backends are single-process)."""
