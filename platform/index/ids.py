"""Deterministic point ids: re-ingesting the same crop yields the same id, so upserts are
idempotent. Qdrant accepts UUIDs (or unsigned ints) as ids; we always use UUID strings."""

from __future__ import annotations

import uuid

# uuid5(NAMESPACE_URL, "https://aio-reid/index/points"); fixed forever: changing it re-keys
# every stored point.
POINT_NAMESPACE = uuid.UUID("0ba20c78-b46e-5833-b627-3b7591ae532b")


def point_id(*parts: str | int) -> str:
    """UUIDv5 of ``parts`` under the project namespace, e.g. ``point_id("sighting", 42)``.

    Ints and their decimal strings give the same id (``1`` == ``"1"``); parts are
    length-prefixed so ``("a/b", "c")`` and ``("a", "b/c")`` differ.
    """
    if not parts:
        raise ValueError("point_id needs at least one part")
    chunks = []
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (str, int)):
            raise TypeError(f"point_id parts must be str or int, got {type(part).__name__}")
        text = str(part)
        chunks.append(f"{len(text)}:{text}")
    return str(uuid.uuid5(POINT_NAMESPACE, "|".join(chunks)))


def normalise_id(value: object) -> str:
    """The canonical UUID string of a point id; anything else is a ValueError."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise ValueError(f"point id {value!r} is not a UUID string; build ids with point_id()")
