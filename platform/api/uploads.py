"""Upload limits: request bodies refused early, files read in chunks, uploads staged in the store.

Three limits, all from ``ApiSettings``: bytes per file (``max_upload_mb``), files per request
(``max_files_per_request``) and bytes per upload request (``max_request_mb``). The request
limit is enforced by :class:`BodySizeLimit` before the body is parsed: a declared
``Content-Length`` over it gets 413 at once, and a body sent without one is cut off at the
limit. Files are never held whole in memory: Starlette spools each part to a temporary file,
and :func:`stage_upload` streams it into the object store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import HTTPException, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aioreid.platform.pipeline.frames import MediaDecodeError, media_kind
from aioreid.platform.storage import ObjectStore, ObjectTooLarge

_CHUNK = 1024 * 1024


def megabytes(n: float) -> str:
    return f"{n / 2**20:.3g} MB"


def read_upload(upload: UploadFile, limit_bytes: int, *, field: str) -> bytes:
    """A small upload's bytes (a query image); 413 over ``limit_bytes``, 422 when empty."""
    buf = bytearray()
    while chunk := upload.file.read(_CHUNK):
        buf.extend(chunk)
        if len(buf) > limit_bytes:
            raise HTTPException(413, f"{field}: upload is over the {megabytes(limit_bytes)} limit")
    if not buf:
        raise HTTPException(422, f"{field}: empty upload")
    return bytes(buf)


def stage_upload(store: ObjectStore, upload: UploadFile, limit_bytes: int) -> dict[str, Any]:
    """An ingest item for one uploaded file: streamed into the store as media (``key``), or,
    when it cannot be media (unknown type, empty, too large), ``refused`` with the reason so
    that it fails alone, by name, in the job. Nothing is stored for a refused file."""
    name = Path(upload.filename or "upload").name or "upload"
    try:
        media_kind(name)
    except MediaDecodeError as exc:
        return {"name": name, "refused": str(exc)}
    if not upload.file.read(1):  # empty: checked before anything is stored
        return {"name": name, "refused": "empty file"}
    upload.file.seek(0)
    try:
        key, _ = store.put_stream(
            upload.file, kind="media", ext=Path(name).suffix, source=name, max_bytes=limit_bytes
        )
    except ObjectTooLarge:
        return {"name": name, "refused": f"over the {megabytes(limit_bytes)} limit per file"}
    return {"name": name, "key": key}


class BodySizeLimit:
    """ASGI middleware: 413 for a request body over ``limit_for(scope)`` bytes (None: no
    limit), answered from ``Content-Length`` before any of the body is read when declared."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int | None]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _too_large_text(limit))
            return message

        await self.app(scope, counted, send)


def _too_large_text(limit: int) -> str:
    return f"the request body is over the {megabytes(limit)} limit for this route"


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": _too_large_text(limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
