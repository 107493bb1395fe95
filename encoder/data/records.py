"""The one record type every dataset loader produces, whatever the public layout."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class Modality(str, Enum):
    """Modalities AIO reads. IR and sketch images are single-channel at heart."""

    RGB = "rgb"
    IR = "ir"
    SKETCH = "sketch"
    TEXT = "text"

    @classmethod
    def parse(cls, value: str | Modality) -> Modality:
        """Turn a user-given name into a Modality, with an error listing the valid names."""
        if isinstance(value, Modality):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown modality {value!r}; expected one of: {valid}") from None


@dataclass(frozen=True)
class Record:
    """One sample of a ReID dataset.

    ``path`` is the image file (for a text record: the image the caption describes, or
    ``None``). ``pid`` is the person id (``-1`` junk, ``0`` distractor where the dataset has
    those), ``camid`` the camera id as the dataset numbers it (``-1`` when unknown, e.g. text).
    """

    path: Path | None
    pid: int
    camid: int
    modality: Modality
    text: str | None = None
    attributes: Mapping[str, str] | None = field(default=None, hash=False, compare=False)


@dataclass
class ReIDDataset:
    """A dataset split into train / query / gallery record lists."""

    name: str
    root: Path
    train: list[Record]
    query: list[Record]
    gallery: list[Record]

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts of records, identities and cameras per split (what `aioreid datasets` prints)."""
        out: dict[str, dict[str, int]] = {}
        for split in ("train", "query", "gallery"):
            recs: list[Record] = getattr(self, split)
            out[split] = {
                "records": len(recs),
                "identities": len({r.pid for r in recs}),
                "cameras": len({r.camid for r in recs}),
            }
        return out


class DatasetLayoutError(FileNotFoundError):
    """A dataset root does not have the layout its loader expects; names what is missing."""
