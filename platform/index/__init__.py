"""Vector index: Qdrant collections per encoder version behind a live alias."""

from .base import CollectionInfo, Hit, IndexPoint, SearchFilter, VectorIndex
from .errors import (
    CollectionNotFound,
    DimensionMismatch,
    IndexClosed,
    IndexLocked,
    PointNotFound,
    VectorIndexError,
)
from .factory import build_index
from .ids import point_id
from .naming import collection_name

__all__ = [
    "CollectionInfo",
    "CollectionNotFound",
    "DimensionMismatch",
    "Hit",
    "IndexClosed",
    "IndexLocked",
    "IndexPoint",
    "PointNotFound",
    "SearchFilter",
    "VectorIndex",
    "VectorIndexError",
    "build_index",
    "collection_name",
    "point_id",
]
