"""ORBench (Zuo et al., NeurIPS 2025, "ReID5o: Achieving Omni Multi-modal Person
Re-identification in a Single Model"): 1,000 identities, each in five modalities: RGB,
near-infrared, colour pencil drawing, sketch and text description.

Layout followed: the dataset README (github.com/Zplusdragon/ReID5o_ORBench) for the tree, and
the ReID5o loader (``datasets/orbench.py``, ``bases.py``, ``build.py`` of the released code)
for the two annotation files::

    ORBench/{vis,nir,cp,sk}/<NNNN>/*.jpg       one folder per identity and modality
    ORBench/train_annos.json                   [{"id": 1, "file_path": "vis/0001/x.jpg",
                                                 "caption": "A man in ..."}, ...]
    ORBench/test_gallery_and_queries.json      {"RGB_GALLERY": [[pid, "vis/..."], ...],
                                                "NIR": [[pid, "nir/..."], ...], "CP": ...,
                                                "SK": ..., "TEXT": [[pid, "caption"], ...],
                                                "NIR+TEXT": [[pid, "nir/...", "caption"]],
                                                "TEXT+CP": [[pid, "caption", "cp/..."]], ...}

train = one RGB record per ``train_annos.json`` image and one text record per caption (path
= the image it describes, as for CUHK-PEDES); ReID5o pairs each entry with random IR, colour
pencil and sketch images of the same identity folder (the second part of ``file_path``), so
train also holds every image under ``nir/``, ``cp/`` and ``sk/`` of the training folders,
with that folder's ``id``. query = the single-modality protocol queries (``NIR``, ``CP``,
``SK``, ``TEXT``; a text query has no path); gallery = ``RGB_GALLERY``. The combined queries
(``"NIR+CP"``, ``"TEXT+NIR+SK"``, ...) are returned by :meth:`ORBench.protocol_queries`.

Colour pencil has no :class:`Modality` of its own: adding one would change every
modality-indexed part of the model (a tokenizer per modality, the canonical view order,
transforms, embedders). Colour pencil drawings are loaded as ``Modality.SKETCH`` and go
through the sketch tokenizer; every ORBench record keeps its original label in
``attributes["source_modality"]`` (``vis``, ``nir``, ``cp``, ``sk`` or ``text``).

Assumed where the sources are silent: ``caption`` is a string or a list of strings
(``captions`` is accepted too); pids are used as the files give them (train ids from 1, test
pids as in the protocol); ORBench names no cameras, so camid is -1; every training identity
has at least one image in each of ``nir/``, ``cp/`` and ``sk/`` (ReID5o samples one).
Image paths must read ``<modality folder>/<identity>/<file>`` with the folder of their column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aioreid.encoder.data.datasets.base import DatasetLoader, Split, register
from aioreid.encoder.data.records import DatasetLayoutError, Modality, Record

TRAIN_ANNOTATIONS = "train_annos.json"
TEST_PROTOCOL = "test_gallery_and_queries.json"
GALLERY_KEY = "RGB_GALLERY"
#: image folder -> the modality its records get (colour pencil rides on the sketch path)
ORBENCH_FOLDERS: dict[str, Modality] = {
    "vis": Modality.RGB,
    "nir": Modality.IR,
    "cp": Modality.SKETCH,
    "sk": Modality.SKETCH,
}
#: protocol key part -> source modality label; the single-modality keys make up ``query``
ORBENCH_QUERY_KEYS: dict[str, str] = {"NIR": "nir", "CP": "cp", "SK": "sk", "TEXT": "text"}
ORBENCH_CAMID = -1


def _record(path: Path | None, pid: int, source: str, text: str | None = None) -> Record:
    modality = Modality.TEXT if source == "text" else ORBENCH_FOLDERS[source]
    return Record(path, pid, ORBENCH_CAMID, modality, text, {"source_modality": source})


@register
class ORBench(DatasetLoader):
    """Loader for ORBench (all five modalities; colour pencil as sketch, see above)."""

    name = "orbench"
    display_name = "ORBench"
    folder_names = ("ORBench", "orbench")
    markers = (TRAIN_ANNOTATIONS, TEST_PROTOCOL)

    def protocol_queries(self, root: str | Path) -> dict[str, list[tuple[Record, ...]]]:
        """Every query of the test protocol by key (``"NIR"``, ``"TEXT+CP"``, ...): one
        tuple of records per query, in the order the key names the modalities."""
        return self._protocol(self.resolve_root(root))[1]

    def _load(self, base: Path) -> Split:
        for folder in ORBENCH_FOLDERS:
            self.require_dir(base / folder)
        train = self._train(base)
        gallery, queries = self._protocol(base)
        query = [group[0] for key in ORBENCH_QUERY_KEYS for group in queries[key]]
        return train, query, gallery

    # -- train_annos.json ---------------------------------------------------------------------
    def _train(self, base: Path) -> list[Record]:
        path = self.require_file(base / TRAIN_ANNOTATIONS)
        records: list[Record] = []
        folder_ids: dict[str, int] = {}
        images: set[Path] = set()
        for index, entry in enumerate(self._read_json(path, list)):
            where = f"{path} entry {index}"
            if not isinstance(entry, Mapping):
                raise ValueError(f"ORBench: malformed {where}: expected an object")
            for key in ("id", "file_path"):
                if key not in entry:
                    raise ValueError(f"ORBench: malformed {where}: missing key {key!r}")
            pid = self._pid(entry["id"], where)
            rel = self._rel_path(entry["file_path"], "vis", where)
            identity = rel.split("/")[1]
            if folder_ids.setdefault(identity, pid) != pid:
                raise ValueError(
                    f"ORBench: malformed {where}: folder vis/{identity} has id {pid} here "
                    f"but id {folder_ids[identity]} in an earlier entry"
                )
            image = base / rel
            self.check_image(image, base, where)
            if image not in images:
                images.add(image)
                records.append(_record(image, pid, "vis"))
            records.extend(_record(image, pid, "text", c) for c in self._captions(entry, where))
        for identity, pid in folder_ids.items():
            for folder in ("nir", "cp", "sk"):
                person = self.require_dir(base / folder / identity)
                found = self.list_images(person)
                if not found:
                    raise DatasetLayoutError(
                        f"ORBench: no images in {person} (training identity {pid})"
                    )
                records.extend(_record(p, pid, folder) for p in found)
        return records

    @staticmethod
    def _captions(entry: Mapping[str, Any], where: str) -> list[str]:
        captions = entry.get("caption", entry.get("captions"))
        if isinstance(captions, str):
            captions = [captions]
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise ValueError(
                f"ORBench: malformed {where}: 'caption' must be a string or a list of strings"
            )
        return [c.strip() for c in captions if c.strip()]

    # -- test_gallery_and_queries.json ----------------------------------------------------------
    def _protocol(self, base: Path) -> tuple[list[Record], dict[str, list[tuple[Record, ...]]]]:
        path = self.require_file(base / TEST_PROTOCOL)
        data = self._read_json(path, dict)
        for key in (GALLERY_KEY, *ORBENCH_QUERY_KEYS):
            if key not in data:
                raise ValueError(f"ORBench: {path} has no {key!r} list")
        gallery = [
            self._protocol_entry(base, path, GALLERY_KEY, ("vis",), i, e)[0]
            for i, e in enumerate(self._rows(data, GALLERY_KEY, path))
        ]
        queries: dict[str, list[tuple[Record, ...]]] = {}
        for key in data:
            if key == GALLERY_KEY:
                continue
            parts = key.split("+")
            if not all(p in ORBENCH_QUERY_KEYS for p in parts):
                raise ValueError(
                    f"ORBench: unknown query key {key!r} in {path}; expected "
                    f"{', '.join(ORBENCH_QUERY_KEYS)} or several of them joined by '+'"
                )
            sources = tuple(ORBENCH_QUERY_KEYS[p] for p in parts)
            queries[key] = [
                tuple(self._protocol_entry(base, path, key, sources, i, e))
                for i, e in enumerate(self._rows(data, key, path))
            ]
        return gallery, queries

    @staticmethod
    def _rows(data: Mapping[str, Any], key: str, path: Path) -> list[Any]:
        rows = data[key]
        if not isinstance(rows, list):
            raise ValueError(f"ORBench: {key!r} in {path} must be a list of entries")
        return rows

    def _protocol_entry(
        self, base: Path, path: Path, key: str, sources: tuple[str, ...], index: int, entry: Any
    ) -> list[Record]:
        where = f"{path} {key!r} entry {index}"
        if not isinstance(entry, list) or len(entry) != len(sources) + 1:
            columns = ", ".join("caption" if s == "text" else f"{s} path" for s in sources)
            raise ValueError(
                f"ORBench: malformed {where}: expected [pid, {columns}], got {entry!r}"
            )
        pid = self._pid(entry[0], where)
        records = []
        for source, value in zip(sources, entry[1:], strict=True):
            if source == "text":
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"ORBench: malformed {where}: empty or non-text caption")
                records.append(_record(None, pid, "text", value.strip()))
                continue
            image = base / self._rel_path(value, source, where)
            self.check_image(image, base, where)
            records.append(_record(image, pid, source))
        return records

    # -- shared checks ------------------------------------------------------------------------
    @staticmethod
    def _pid(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"ORBench: malformed {where}: id {value!r} is not an integer")
        try:
            return int(value)
        except ValueError:
            raise ValueError(
                f"ORBench: malformed {where}: id {value!r} is not an integer"
            ) from None

    @staticmethod
    def _rel_path(value: Any, folder: str, where: str) -> str:
        rel = value.replace("\\", "/") if isinstance(value, str) else ""
        parts = rel.split("/")
        if len(parts) != 3 or parts[0] != folder or not all(parts):
            raise ValueError(
                f"ORBench: malformed {where}: expected a path {folder}/<identity>/<file>, "
                f"got {value!r}"
            )
        return rel

    def _read_json(self, path: Path, kind: type) -> Any:
        try:
            with path.open(encoding="utf-8") as handle:
                data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"ORBench: malformed json in {path} at line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg}"
            ) from None
        if not isinstance(data, kind):
            raise ValueError(
                f"ORBench: {path} must hold a json {'list' if kind is list else 'object'}, "
                f"got {type(data).__name__}"
            )
        return data
