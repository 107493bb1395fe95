"""Reading uploads with a size limit (413 instead of a process full of someone's 4 GB file)."""

from __future__ import annotations

from fastapi import HTTPException, UploadFile

_CHUNK = 1024 * 1024


def read_upload(
    upload: UploadFile, limit_bytes: int, *, field: str, allow_empty: bool = False
) -> bytes:
    """The upload's bytes; 413 when over ``limit_bytes``, 422 when empty (unless
    ``allow_empty``: a file of a batch that the pipeline then fails alone, by name)."""
    buf = bytearray()
    while True:
        chunk = upload.file.read(_CHUNK)
        if not chunk:
            break
        buf.extend(chunk)
        if len(buf) > limit_bytes:
            raise HTTPException(
                413,
                f"{field}: upload is over the {limit_bytes / (1024 * 1024):.3g} MB limit",
            )
    if not buf and not allow_empty:
        raise HTTPException(422, f"{field}: empty upload")
    return bytes(buf)
