"""Input checks shared by the backends: every batch is validated whole before anything is
written, so a bad vector or payload never leaves a half-applied batch behind."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import DimensionMismatch

# Payload fields the filters read, and the types they must have to be matched.
_INT_FIELDS = ("camera", "media", "sighting")


def as_vector(vector: Any, dim: int | None = None, where: str = "") -> np.ndarray:
    """One query/point vector as 1-D float32; ValueError for empty, NaN/inf or all-zero."""
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"expected a non-empty 1-D vector, got shape {arr.shape}")
    return _checked(arr[None, :], dim, where)[0]


def as_matrix(vectors: Any, dim: int | None = None, where: str = "") -> np.ndarray:
    """Several vectors as a 2-D float32 array (rows = vectors), checked like as_vector."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"expected a 2-D array of vectors, got shape {arr.shape}")
    return _checked(arr, dim, where)


def _checked(arr: np.ndarray, dim: int | None, where: str) -> np.ndarray:
    if dim is not None and arr.shape[1] != dim:
        raise DimensionMismatch(dim, arr.shape[1], where)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        raise ValueError(f"vector {int(np.argmin(finite))} contains NaN or inf")
    zero = ~np.any(arr != 0, axis=1)
    if zero.any():
        raise ValueError(f"vector {int(np.argmax(zero))} is all zeros (no cosine direction)")
    return arr


def clean_payload(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON-able copy of ``payload`` (numpy scalars unwrapped), with the filterable fields
    type-checked: a camera stored as ``"3"`` would silently never match ``cameras=[3]``."""
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be a mapping, got {type(payload).__name__}")
    out = _json_value(payload, "payload")
    for key in _INT_FIELDS:
        if key in out and not _is_int(out[key]):
            raise TypeError(f"payload[{key!r}] must be an int, got {out[key]!r}")
    if "identity" in out and not _is_identity(out["identity"]):
        raise TypeError(
            f"payload['identity'] must be an int, a list of int or None, got {out['identity']!r}"
        )
    if "review" in out and not isinstance(out["review"], str):
        raise TypeError(f"payload['review'] must be a str, got {out['review']!r}")
    if "time" in out and (
        isinstance(out["time"], bool) or not isinstance(out["time"], (int, float))
    ):
        raise TypeError(f"payload['time'] must be unix seconds (float), got {out['time']!r}")
    if "modality" in out and not isinstance(out["modality"], str):
        raise TypeError(f"payload['modality'] must be a str, got {out['modality']!r}")
    if "attributes" in out:
        attrs = out["attributes"]
        if not isinstance(attrs, dict) or not all(isinstance(v, str) for v in attrs.values()):
            raise TypeError(f"payload['attributes'] must map str to str, got {attrs!r}")
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_identity(value: Any) -> bool:
    """None, an int, or (a track point whose sightings review split) a list of ints."""
    if isinstance(value, list):
        return all(_is_int(v) for v in value)
    return value is None or _is_int(value)


def _json_value(value: Any, path: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value}; payload numbers must be finite")
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has a non-string key {key!r}")
            out[key] = _json_value(item, f"{path}[{key!r}]")
        return out
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [_json_value(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{path} has a value of type {type(value).__name__} that is not JSON")


def positive_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    return int(limit)


def prepare_points(
    points: Sequence[Any], dim: int, where: str = ""
) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """Validate a whole upsert batch: (canonical ids, float32 matrix, clean payloads)."""
    from .base import IndexPoint  # local import: base imports this module
    from .ids import normalise_id

    if isinstance(points, (str, bytes)) or not isinstance(points, Sequence):
        raise TypeError("upsert takes a sequence of IndexPoint")
    ids: list[str] = []
    rows = np.empty((len(points), dim), dtype=np.float32)
    payloads: list[dict[str, Any]] = []
    for i, point in enumerate(points):
        if not isinstance(point, IndexPoint):
            raise TypeError(f"point {i} is a {type(point).__name__}, not an IndexPoint")
        ids.append(normalise_id(point.id))
        if point.vector is None:
            raise ValueError(f"point {i} ({point.id}) has no vector")
        vec = np.asarray(point.vector, dtype=np.float32)
        if vec.ndim != 1:
            raise ValueError(f"point {i} ({point.id}): vector has shape {vec.shape}, not 1-D")
        if vec.shape[0] != dim:
            raise DimensionMismatch(dim, vec.shape[0], where)
        rows[i] = vec
        payloads.append(clean_payload(point.payload))
    try:
        _checked(rows, dim, where)
    except ValueError as exc:
        raise ValueError(f"upsert batch: {exc}".replace("vector ", "point ", 1)) from None
    return ids, rows, payloads
