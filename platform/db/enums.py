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
