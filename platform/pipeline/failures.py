"""The ingestion pipeline's one failure policy.

*Transient* — a store, database or index that is briefly unavailable, or a lost race with a
concurrent worker — is retried with exponential back-off, by the in-process runner
(:func:`with_retries`) and by the queue workers alike. *Permanent* — bytes that are not a
supported image or video, a crop the encoder refuses — fails that media alone, with a
reason that names the file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from sqlalchemy.exc import InterfaceError, OperationalError

from aioreid.encoder.inference import EncoderInputError
from aioreid.platform.db.errors import AlreadyExistsError
from aioreid.platform.index import IndexLocked
from aioreid.platform.pipeline.frames import MediaDecodeError
from aioreid.platform.storage import StorageError, StorageUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT: tuple[type[BaseException], ...] = (
    StorageUnavailable,
    OperationalError,  # Postgres restarting, connection refused or dropped
    InterfaceError,
    ResponseHandlingException,  # qdrant-client could not reach the server
    httpx.TransportError,
    ConnectionError,
    TimeoutError,
    IndexLocked,  # an embedded index still held by a dying process
    AlreadyExistsError,  # lost a race with a concurrent worker; the retry finds its row
)

#: What fails one media for good (checked after :func:`is_transient`).
PERMANENT: tuple[type[BaseException], ...] = (
    MediaDecodeError,
    EncoderInputError,
    StorageError,  # a stored object that is missing or unreadable (not an outage)
    ValueError,
)


def is_transient(exc: BaseException) -> bool:
    """True for outages worth retrying (not for bad input or bugs)."""
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code is not None and exc.status_code >= 500
    return isinstance(exc, TRANSIENT)


def is_permanent(exc: BaseException) -> bool:
    return not is_transient(exc) and isinstance(exc, PERMANENT)


def reason(exc: BaseException, name: str | None = None) -> str:
    """``name: ExcType: message`` — what a user reads in a job's failures."""
    text = f"{type(exc).__name__}: {exc}"
    return f"{name}: {text}" if name and not str(exc).startswith(name) else text


def with_retries(
    step: Callable[[], T],
    *,
    retries: int,
    backoff_s: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``step``; on a transient error wait ``backoff_s * 2**attempt`` and run it again, at
    most ``retries`` times; the last error propagates."""
    for attempt in range(retries + 1):
        try:
            return step()
        except Exception as exc:
            if not is_transient(exc) or attempt == retries:
                raise
            wait = backoff_s * 2**attempt
            log.warning("%s: %s; retry %d in %.1f s", what, exc, attempt + 1, wait)
            sleep(wait)
    raise AssertionError("unreachable")
