"""A folder-backed object store for the embedded profile.

Objects live at ``root/<key>``. Writes go to ``root/.tmp`` first and are moved into place with
``os.replace``, so a crash leaves either the whole object or none of it. Presigned URLs point
at the API (``/v1/objects/<key>``) and carry an HMAC that :func:`verify_signature` checks.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from aioreid.platform.storage.base import (
    CHUNK_BYTES,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StorageUnavailable,
    VerifyingReader,
    guess_content_type,
    link_bucket_s,
    validate_key,
    validate_prefix,
)

_TMP_DIR = ".tmp"
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


def sign(key: str, expires: int, signing_key: bytes) -> str:
    """Hex HMAC-SHA256 of ``key`` and ``expires`` (joined by a newline, which keys never hold)."""
    message = f"{key}\n{int(expires)}".encode()
    return hmac.new(signing_key, message, hashlib.sha256).hexdigest()


#: The longest a signed link may live (the settings cap ``presign_seconds`` at this too): a
#: link claiming a later expiry is refused, even when its signature is right.
MAX_LINK_LIFETIME_S = 7 * 24 * 3600


def verify_signature(
    key: str,
    expires: int | str,
    signature: str,
    signing_key: bytes,
    now: float | None = None,
    max_lifetime_s: int = MAX_LINK_LIFETIME_S,
) -> bool:
    """True when ``signature`` was made by :func:`sign` with ``signing_key``, has not expired
    and expires within ``max_lifetime_s`` from now.

    Malformed input (a non-integer ``expires``, an invalid key) is simply not valid.
    """
    try:
        validate_key(key)
        expires_at = int(expires)
    except (InvalidKey, TypeError, ValueError):
        return False
    if not isinstance(signature, str) or not signing_key:
        return False
    now = time.time() if now is None else now
    if now > expires_at or expires_at - now > max_lifetime_s:
        return False
    expected = sign(key, expires_at, signing_key).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


class LocalObjectStore(ObjectStore):
    def __init__(
        self,
        root: str | Path,
        signing_key: bytes,
        *,
        presign_seconds: int = 3600,
        url_prefix: str = "/v1/objects",
    ) -> None:
        if not isinstance(signing_key, bytes) or not signing_key:
            raise ValueError("signing_key must be non-empty bytes")
        if presign_seconds <= 0:
            raise ValueError(f"presign_seconds must be positive, got {presign_seconds}")
        self.root = Path(root)
        self._signing_key = signing_key
        self._presign_seconds = presign_seconds
        self._url_prefix = url_prefix.rstrip("/")
        try:
            (self.root / _TMP_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create object folder {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"LocalObjectStore(root={str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _write_chunks(self, key: str, chunks: Callable[[], bytes]) -> None:
        dest = self._path(key)
        try:
            (self.root / _TMP_DIR).mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root / _TMP_DIR, prefix="put-")
        except OSError as exc:
            raise StorageError(f"could not store {key!r}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := chunks():
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
        except OSError as exc:
            raise StorageError(f"could not store {key!r}: {exc}") from exc
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _write_bytes(self, key: str, data: bytes, content_type: str) -> None:
        pending = [data]
        self._write_chunks(key, lambda: pending.pop() if pending else b"")

    def _write_stream(self, key: str, reader: VerifyingReader, size: int, ctype: str) -> None:
        self._write_chunks(key, lambda: reader.read(CHUNK_BYTES))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except _MISSING as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise StorageError(f"could not read {key!r}: {exc}") from exc

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path

    def download_to(self, key: str, path: str | Path) -> Path:
        path = Path(path)
        try:
            src = open(self._path(key), "rb")  # noqa: SIM115 - closed below
        except _MISSING as exc:
            raise ObjectNotFound(key) from exc
        with src:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK_BYTES)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return ObjectInfo(key, path.stat().st_size, guess_content_type(key))

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except _MISSING:
            pass
        except OSError as exc:
            raise StorageError(f"could not delete {key!r}: {exc}") from exc

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        head = prefix.rpartition("/")[0]
        start = self.root.joinpath(*head.split("/")) if head else self.root
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                key = name if rel == "." else f"{rel}/{name}"
                if not name.startswith(".") and key.startswith(prefix):
                    yield key

    def presigned_url(self, key: str, expires_s: int | None = None) -> str:
        """A signed link valid for at least ``expires_s``; the expiry is rounded up to a
        :func:`link_bucket_s` boundary, so links made within one bucket are identical (and
        cacheable). It never claims more than :data:`MAX_LINK_LIFETIME_S`."""
        validate_key(key)
        seconds = self._presign_seconds if expires_s is None else expires_s
        if seconds <= 0:
            raise ValueError(f"expires_s must be positive, got {seconds}")
        now = int(time.time())
        bucket = link_bucket_s(int(seconds))
        expires = -(-(now + int(seconds)) // bucket) * bucket
        if expires - now > MAX_LINK_LIFETIME_S:
            expires -= bucket
        signature = sign(key, expires, self._signing_key)
        return f"{self._url_prefix}/{quote(key)}?expires={expires}&signature={signature}"

    def ping(self) -> None:
        if not self.root.is_dir():
            raise StorageUnavailable(f"object folder {self.root} does not exist")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"object folder {self.root} is not writable")
