"""Common machinery of the dataset loaders: base class, registry, layout checks, list parsing.

Every loader turns a public dataset layout into a :class:`ReIDDataset` of frozen
:class:`Record` objects. A loader accepts as ``root`` either the dataset folder itself
(``.../Market-1501-v15.09.15``) or its parent (``.../datasets``); a wrong or partial layout
raises :class:`DatasetLayoutError` naming the missing path, a malformed list/json line raises
``ValueError`` naming the file and line.
"""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar, TypeVar

from aioreid.encoder.data.records import DatasetLayoutError, Modality, Record, ReIDDataset

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp"})

_MODALITY_ORDER = {Modality.RGB: 0, Modality.IR: 1, Modality.SKETCH: 2, Modality.TEXT: 3}

Split = tuple[list[Record], list[Record], list[Record]]


@dataclass(frozen=True)
class ListEntry:
    """One ``relative/path label`` line of a split list file."""

    path: str
    label: int
    source: Path
    lineno: int

    @property
    def origin(self) -> str:
        """``file:line`` for error messages."""
        return f"{self.source}:{self.lineno}"


class DatasetLoader(ABC):
    """Base class of all loaders.

    Subclasses set ``name`` (registry key), ``display_name``, ``folder_names`` (names the
    dataset folder has under a parent root) and ``markers`` (entries whose presence identifies
    the dataset folder itself), and implement :meth:`_load`. Keyword options go to
    ``__init__``; every loader accepts ``verify_files`` (check that each image named by a list
    or annotation file exists; on by default).
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    folder_names: ClassVar[tuple[str, ...]] = ()
    markers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, verify_files: bool = True) -> None:
        self.verify_files = verify_files

    # -- public -----------------------------------------------------------------------------
    def load(self, root: str | Path) -> ReIDDataset:
        """Load the dataset found at ``root`` (the dataset folder or its parent)."""
        base = self.resolve_root(root)
        train, query, gallery = self._load(base)
        return ReIDDataset(
            name=self.name,
            root=base,
            train=sort_records(train),
            query=sort_records(query),
            gallery=sort_records(gallery),
        )

    def resolve_root(self, root: str | Path) -> Path:
        """Return the dataset folder: ``root`` itself, or a known-named child of ``root``."""
        given = Path(root).expanduser().absolute()
        if not given.is_dir():
            raise DatasetLayoutError(f"{self.display_name}: dataset root {given} does not exist")
        # a known-named child wins, so a parent that happens to hold e.g. a generic ``train/``
        # folder still resolves to its dataset folder; one level of nesting (an archive
        # extracted into a folder of the same name) is looked through as well
        found = self._search_known(given, depth=2)
        if found is not None:
            return found
        if self._has_marker(given):
            return given
        for child in self._known_children(given):
            if child.is_dir():
                return child  # partial layout: the required-path checks name what is missing
        if given.name.lower() in {n.lower() for n in self.folder_names}:
            return given
        expected = " or ".join(str(given / n) for n in self.folder_names)
        markers = ", ".join(self.markers)
        raise DatasetLayoutError(
            f"{self.display_name}: no dataset found under {given}; expected {expected}, "
            f"or {given} itself containing one of: {markers}"
        )

    # -- for subclasses ---------------------------------------------------------------------
    @abstractmethod
    def _load(self, base: Path) -> Split:
        """Build (train, query, gallery) from the resolved dataset folder ``base``."""

    def _known_children(self, folder: Path) -> list[Path]:
        found = (_find_child(folder, n) for n in self.folder_names)
        return list(dict.fromkeys(c for c in found if c is not None and c.is_dir()))

    def _search_known(self, folder: Path, depth: int) -> Path | None:
        children = self._known_children(folder)
        for child in children:
            if self._has_marker(child):
                return child
        if depth > 1:
            for child in children:
                found = self._search_known(child, depth - 1)
                if found is not None:
                    return found
        return None

    def _has_marker(self, folder: Path) -> bool:
        return any(_find_child(folder, m) is not None for m in self.markers)

    def require_dir(self, path: Path) -> Path:
        """``path`` if it is a folder, else :class:`DatasetLayoutError` naming it."""
        if not path.is_dir():
            raise DatasetLayoutError(f"{self.display_name}: missing folder {path}")
        return path

    def require_file(self, path: Path) -> Path:
        """``path`` if it is a file, else :class:`DatasetLayoutError` naming it."""
        if not path.is_file():
            raise DatasetLayoutError(f"{self.display_name}: missing file {path}")
        return path

    def require_any_file(self, base: Path, candidates: Sequence[str]) -> Path:
        """The first existing of ``base/candidate``; the error names the first candidate."""
        for rel in candidates:
            path = base / rel
            if path.is_file():
                return path
        others = ", ".join(str(base / c) for c in candidates[1:])
        alt = f" (also looked for {others})" if others else ""
        raise DatasetLayoutError(f"{self.display_name}: missing file {base / candidates[0]}{alt}")

    def check_image(self, path: Path, base: Path, origin: str) -> None:
        """With ``verify_files``, raise :class:`DatasetLayoutError` if ``path`` is missing.

        The message names the top-most missing folder (e.g. a whole ``nir/`` folder) or the
        file itself, plus the list line that referenced it.
        """
        if not self.verify_files or path.is_file():
            return
        missing = path
        parent = path.parent
        while parent != base and base in parent.parents and not parent.exists():
            missing = parent
            parent = parent.parent
        kind = "file" if missing == path else "folder"
        raise DatasetLayoutError(
            f"{self.display_name}: missing {kind} {missing} (referenced by {origin})"
        )

    def read_path_label_list(self, path: Path) -> list[ListEntry]:
        """Parse a ``relative/path.ext label`` list file (blank lines ignored)."""
        self.require_file(path)
        entries: list[ListEntry] = []
        with path.open(encoding="utf-8") as handle:
            for lineno, raw in enumerate(handle, start=1):
                line = raw.strip()
                if not line:
                    continue
                fields = line.split()
                if len(fields) != 2:
                    raise ValueError(
                        f"{self.display_name}: malformed line {lineno} in {path}: {line!r} "
                        "(expected 'relative/path label')"
                    )
                rel, label = fields
                try:
                    value = int(label)
                except ValueError:
                    raise ValueError(
                        f"{self.display_name}: malformed line {lineno} in {path}: label "
                        f"{label!r} is not an integer"
                    ) from None
                entries.append(ListEntry(rel.replace("\\", "/"), value, path, lineno))
        return entries

    def read_id_list(self, path: Path) -> list[int]:
        """Parse a file of comma-separated integer ids (SYSU-MM01 ``exp/*_id.txt`` style)."""
        self.require_file(path)
        ids: list[int] = []
        with path.open(encoding="utf-8") as handle:
            for lineno, raw in enumerate(handle, start=1):
                for token in raw.strip().split(","):
                    token = token.strip()
                    if not token:
                        continue
                    try:
                        ids.append(int(token))
                    except ValueError:
                        raise ValueError(
                            f"{self.display_name}: malformed line {lineno} in {path}: "
                            f"{token!r} is not an integer id"
                        ) from None
        return ids

    def list_images(self, folder: Path) -> list[Path]:
        """Image files (by extension) directly inside ``folder``, sorted by name."""
        return sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )


def _find_child(folder: Path, name: str) -> Path | None:
    """``folder/name`` if it exists, matching case-insensitively as a fallback."""
    exact = folder / name
    if exact.exists():
        return exact
    if "/" in name or not folder.is_dir():
        return None
    lowered = name.lower()
    for child in sorted(folder.iterdir()):
        if child.name.lower() == lowered:
            return child
    return None


def find_child(folder: Path, names: Iterable[str]) -> Path | None:
    """First existing ``folder/name`` among ``names`` (case-insensitive fallback)."""
    for name in names:
        child = _find_child(folder, name)
        if child is not None:
            return child
    return None


def sort_records(records: Iterable[Record]) -> list[Record]:
    """Deterministic order: by path, image before its captions, captions in given order."""
    return sorted(
        records,
        key=lambda r: ("" if r.path is None else str(r.path), _MODALITY_ORDER[r.modality]),
    )


def relabel(records: Sequence[Record]) -> tuple[list[Record], dict[int, int]]:
    """Map the pids of ``records`` to ``0..N-1`` (sorted original order).

    Returns the new records (same order) and the ``original pid -> new label`` mapping.
    """
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [replace(r, pid=mapping[r.pid]) for r in records], mapping


# -- registry ---------------------------------------------------------------------------------
DATASETS: dict[str, type[DatasetLoader]] = {}

L = TypeVar("L", bound=type[DatasetLoader])


def register(cls: L) -> L:
    """Class decorator adding a loader to :data:`DATASETS` under ``cls.name``."""
    if not cls.name or cls.name in DATASETS:
        raise ValueError(f"dataset loader name {cls.name!r} is empty or already registered")
    DATASETS[cls.name] = cls
    return cls


def _normalise(name: str) -> str:
    return re.sub(r"[-_\s]", "", name.strip().lower())


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(DATASETS)


def get_loader(name: str) -> type[DatasetLoader]:
    """Loader class for ``name`` (case, ``-`` and ``_`` insensitive: ``Market-1501`` works)."""
    wanted = _normalise(name)
    for key, cls in DATASETS.items():
        if _normalise(key) == wanted:
            return cls
    raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(list_datasets())}")


def loader_options(name: str) -> dict[str, object]:
    """The keyword options a dataset loader accepts, with their defaults."""
    params = inspect.signature(get_loader(name).__init__).parameters
    return {p.name: p.default for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def load_dataset(name: str, root: str | Path, **options: object) -> ReIDDataset:
    """Load dataset ``name`` from ``root`` (dataset folder or its parent).

    ``options`` are the loader's keyword options (e.g. ``trial=3`` for RegDB); an unknown
    option raises ``TypeError`` listing the valid ones.
    """
    cls = get_loader(name)
    valid = loader_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"dataset {cls.name!r} got unknown option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(sorted(valid))}"
        )
    factory: Callable[..., DatasetLoader] = cls
    return factory(**options).load(root)
