"""The string enumerations stored in the metadata database.

Members are ``str`` subclasses, so ``media.status == "done"`` and JSON encoding work without
``.value``; the database stores the lower-case value behind a CHECK constraint.
"""

from __future__ import annotations

from enum import Enum


class _StrEnum(str, Enum):
    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


class CameraModality(_StrEnum):
    """What a camera records."""

    RGB = "rgb"
    IR = "ir"


class Modality(_StrEnum):
    """What a sighting crop shows (sketches come from analysts, not cameras)."""

    RGB = "rgb"
    IR = "ir"
    SKETCH = "sketch"


class MediaKind(_StrEnum):
    IMAGE = "image"
    VIDEO = "video"


class MediaStatus(_StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


class Provenance(_StrEnum):
    """Who made an identity assignment: the matcher, an analyst, or a dataset import."""

    AUTO = "auto"
    ANALYST = "analyst"
    IMPORT = "import"


class Decision(_StrEnum):
    CONFIRM = "confirm"
    REJECT = "reject"


class JobStatus(_StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


class GenerationStatus(_StrEnum):
    """Life of one vector-index collection built by one encoder version."""

    BUILDING = "building"
    LIVE = "live"
    RETIRED = "retired"
    FAILED = "failed"


class KeyRole(_StrEnum):
    """What an API key may do. Roles are cumulative, in this order: an operator can do all an
    analyst can, an admin all an operator can."""

    ANALYST = "analyst"  # search, review, and reading tracks, identities, cameras, stats, jobs
    OPERATOR = "operator"  # + ingest (uploads, server folders) and re-indexing
    ADMIN = "admin"  # + API-key management (and retention, where it is exposed)

    def allows(self, needed: KeyRole | str) -> bool:
        """Whether a key with this role may do what ``needed`` may."""
        order = list(KeyRole)
        return order.index(self) >= order.index(KeyRole(needed))


class CaseStatus(_StrEnum):
    """An investigation case: open (items may be pinned) or closed (read-only until reopened)."""

    OPEN = "open"
    CLOSED = "closed"


class CaseItemKind(_StrEnum):
    """What a case item pins: a person track, one sighting, or a search with its results."""

    TRACK = "track"
    SIGHTING = "sighting"
    QUERY = "query"
