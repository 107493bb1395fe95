"""Aliases for the edge backend, which has no alias support of its own: a small JSON file
(``{"aliases": {alias: collection}}``) that is only ever replaced whole with ``os.replace``,
so a reader sees either the old mapping or the new one, never a torn write."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class AliasFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._cache: dict[str, str] = {}

    def read(self) -> dict[str, str]:
        """The current mapping; re-read only when the file changed (one stat per call)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._cache = None, {}
            return {}
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            aliases = data.get("aliases") if isinstance(data, dict) else None
            if not isinstance(aliases, dict):
                raise ValueError(f"{self.path} is not an alias file")
            self._cache, self._stamp = {str(k): str(v) for k, v in aliases.items()}, stamp
        return dict(self._cache)

    def write(self, aliases: dict[str, str]) -> None:
        """Replace the mapping atomically (temp file in the same folder, fsync, rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, {"aliases": dict(sorted(aliases.items()))})
        self._stamp = None


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` to a temp file in the same folder, fsync it, then rename it over
    ``path`` and fsync the folder: readers and crashes see the old or the new file only."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
