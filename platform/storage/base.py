"""The object-store interface, its errors, and content-addressed keys.

Keys look like ``{kind}/{sha[:2]}/{sha}{ext}`` where ``sha`` is the SHA-256 of the content, so
storing the same bytes twice is free and a key always names exactly one content.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

DEFAULT_CONTENT_TYPE = "application/octet-stream"
CHUNK_BYTES = 1 << 20
MAX_KEY_BYTES = 1024  # the S3 limit
_KIND_RE = re.compile(r"[a-z0-9_-]+")
_EXT_RE = re.compile(r"\.[a-z0-9]{1,16}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class StorageError(Exception):
    """Base of every error raised by an object store."""


class ObjectNotFound(StorageError, KeyError):
    """No object is stored under ``key``."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"object not found: {key!r}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class StorageUnavailable(StorageError):
    """The backend cannot be reached or is not answering like an object store."""


class InvalidKey(StorageError, ValueError):
    """A key, prefix, kind or extension that the store refuses to use."""


class ObjectTooLarge(StorageError, ValueError):
    """Content over the size the caller allows; nothing was stored."""

    def __init__(self, source: str, max_bytes: int) -> None:
        self.source, self.max_bytes = source, max_bytes
        super().__init__(f"{source}: over the {max_bytes / 2**20:.3g} MB limit")


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str


def validate_kind(kind: str) -> str:
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise InvalidKey(f"kind must match [a-z0-9_-]+, got {kind!r}")
    return kind


def normalise_ext(ext: str) -> str:
    """``""`` or a lower-cased ``.xyz`` extension of 1-16 letters/digits."""
    if not isinstance(ext, str):
        raise InvalidKey(f"extension must be a string, got {type(ext).__name__}")
    ext = ext.lower()
    if ext and not _EXT_RE.fullmatch(ext):
        raise InvalidKey(f"extension must look like '.jpg' (1-16 letters/digits), got {ext!r}")
    return ext


def key_for_digest(digest: str, kind: str, ext: str = "") -> str:
    return f"{validate_kind(kind)}/{digest[:2]}/{digest}{normalise_ext(ext)}"


def content_key(data: bytes, kind: str = "blob", ext: str = "") -> str:
    """The key ``data`` is stored under: ``{kind}/{sha[:2]}/{sha}{ext}``."""
    return key_for_digest(hashlib.sha256(data).hexdigest(), kind, ext)


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _check_parts(text: str, what: str, parts: list[str]) -> None:
    if "\\" in text:
        raise InvalidKey(f"{what} must use '/', not backslashes: {text!r}")
    if text.startswith("/"):
        raise InvalidKey(f"{what} must be relative, not absolute: {text!r}")
    if _CONTROL_RE.search(text):
        raise InvalidKey(f"{what} contains control characters: {text!r}")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"{what} is longer than {MAX_KEY_BYTES} bytes: {text[:40]!r}...")
    for part in parts:
        if not part:
            raise InvalidKey(f"{what} has an empty path part: {text!r}")
        if part.startswith("."):
            raise InvalidKey(f"{what} parts must not start with '.' (no '..'): {text!r}")


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative ``a/b/c`` key, else raise :class:`InvalidKey`.

    Refused: empty keys, ``..`` and other dot-leading parts, absolute paths, backslashes, empty
    parts (``a//b``, trailing ``/``), control characters and keys over 1024 bytes.
    """
    if not isinstance(key, str):
        raise InvalidKey(f"key must be a string, got {type(key).__name__}")
    if not key:
        raise InvalidKey("key must not be empty")
    _check_parts(key, "key", key.split("/"))
    return key


def validate_prefix(prefix: str) -> str:
    """Like :func:`validate_key`, but ``""`` and a trailing ``/`` are allowed."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"prefix must be a string, got {type(prefix).__name__}")
    if prefix:
        parts = prefix.split("/")
        _check_parts(prefix, "prefix", parts[:-1] if parts[-1] == "" else parts)
    return prefix


#: The longest a link's expiry is rounded up by (see :func:`link_bucket_s`).
MAX_LINK_BUCKET_S = 15 * 60
_CONTENT_KEY_RE = re.compile(r"[a-z0-9_-]+/([0-9a-f]{2})/\1[0-9a-f]{62}(\.[a-z0-9]{1,16})?")


def link_bucket_s(lifetime_s: int) -> int:
    """How far a signed link's expiry is rounded: a quarter of its lifetime, at most 15 min.

    Every link to a key made within one bucket is the same URL, so browsers and caches reuse
    it; a link lives between ``lifetime_s`` and ``lifetime_s`` plus one bucket.
    """
    return max(1, min(int(lifetime_s) // 4, MAX_LINK_BUCKET_S))


def is_content_key(key: str) -> bool:
    """Whether ``key`` is content-addressed (``{kind}/{sha[:2]}/{sha}{ext}``): its bytes never
    change, so a response for it may be cached as immutable."""
    return bool(_CONTENT_KEY_RE.fullmatch(key))


def guess_content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or DEFAULT_CONTENT_TYPE


class VerifyingReader:
    """A file wrapper that hashes what is read and fails the read that completes the stream
    if the bytes differ from the digest taken earlier, so a file edited between hashing and
    uploading is never stored under the old content's key."""

    def __init__(self, f: BinaryIO, size: int, digest: str, source: str) -> None:
        self._f = f
        self._size = size
        self._digest = digest
        self._source = source
        self._hash = hashlib.sha256()
        self._read = 0

    def read(self, n: int = -1) -> bytes:
        remaining = self._size - self._read
        n = remaining if n is None or n < 0 else min(n, remaining)
        data = self._f.read(n) if n else b""
        self._read += len(data)
        self._hash.update(data)
        if n and not data:
            raise StorageError(f"{self._source} shrank while it was being stored; nothing stored")
        if self._read == self._size and self._hash.hexdigest() != self._digest:
            raise StorageError(f"{self._source} changed while it was being stored; nothing stored")
        return data


class ObjectStore(ABC):
    """Content-addressed object storage. Subclasses write, read and list raw keys."""

    def put_bytes(
        self,
        data: bytes,
        *,
        kind: str = "blob",
        ext: str = "",
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> str:
        """Store ``data`` (skipped when already stored) and return its content key."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"put_bytes needs bytes, got {type(data).__name__}")
        data = bytes(data)
        key = content_key(data, kind, ext)
        if not self.exists(key):
            self._write_bytes(key, data, content_type)
        return key

    def put_file(
        self, path: str | Path, *, kind: str = "blob", content_type: str | None = None
    ) -> str:
        """Store a file, streamed, and return its content key.

        The extension is the file's suffix lower-cased; a suffix that is not 1-16 letters or
        digits (``.jpg~``, ``.tar-gz``) is dropped. The content type is guessed from the name
        unless given.
        """
        path = Path(path)
        validate_kind(kind)
        if not path.is_file():
            raise FileNotFoundError(f"no such file to store: {path}")
        try:
            ext = normalise_ext(path.suffix)
        except InvalidKey:
            ext = ""
        with open(path, "rb") as f:
            key, _ = self.put_stream(
                f, kind=kind, ext=ext, content_type=content_type, source=str(path)
            )
        return key

    def put_stream(
        self,
        f: BinaryIO,
        *,
        kind: str = "blob",
        ext: str = "",
        content_type: str | None = None,
        source: str = "stream",
        max_bytes: int | None = None,
    ) -> tuple[str, int]:
        """Store a seekable binary file, read in chunks (never whole in memory), and return
        its content key and size. The file is read twice: once to hash it (the key is the
        hash), once to store it, verified against that hash.

        :class:`ObjectTooLarge` (nothing stored) when it holds more than ``max_bytes``.
        """
        ext = normalise_ext(ext)
        validate_kind(kind)
        start = f.tell()
        digest, size = hashlib.sha256(), 0
        while chunk := f.read(CHUNK_BYTES):
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise ObjectTooLarge(source, max_bytes)
            digest.update(chunk)
        key = key_for_digest(digest.hexdigest(), kind, ext)
        if not self.exists(key):
            f.seek(start)
            reader = VerifyingReader(f, size, digest.hexdigest(), source)
            ctype = content_type or guess_content_type(f"x{ext}")
            self._write_stream(key, reader, size, ctype)
        return key, size

    def put_at(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> str:
        """Store ``data`` under a chosen ``key``, replacing what was there (atomically).

        For the platform's own working state whose name, not content, identifies it (a
        video's checkpoint after window N); user content always goes through
        :meth:`put_bytes`.
        """
        self._write_bytes(validate_key(key), bytes(data), content_type)
        return key

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete every key; all are validated before anything is deleted."""
        for key in [validate_key(k) for k in keys]:
            self.delete(key)

    @abstractmethod
    def _write_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key`` atomically (readers see all of it or nothing)."""

    @abstractmethod
    def _write_stream(self, key: str, reader: VerifyingReader, size: int, ctype: str) -> None:
        """Store ``size`` bytes read from ``reader``; nothing is kept if ``reader`` raises."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; :class:`ObjectNotFound` if absent."""

    @abstractmethod
    def download_to(self, key: str, path: str | Path) -> Path:
        """Copy the object to ``path`` (replaced atomically) and return ``path``."""

    def local_path(self, key: str) -> Path | None:
        """A file on this machine holding the object, to read in place (objects are never
        rewritten), or None when it must be downloaded. ObjectNotFound when it is missing."""
        return None

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size and content type; :class:`ObjectNotFound` if absent."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object; a missing key is not an error."""

    @abstractmethod
    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Every stored key starting with ``prefix`` (plain string prefix), in no set order."""

    @abstractmethod
    def presigned_url(self, key: str, expires_s: int | None = None) -> str:
        """A URL that GETs the object without credentials until it expires."""

    @abstractmethod
    def ping(self) -> None:
        """Raise :class:`StorageUnavailable` unless the backend is reachable and usable."""
