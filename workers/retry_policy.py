"""The workers' one retry policy, for ingest and maintenance tasks alike.

An outage — the database, the broker, the object store, the Qdrant server or any HTTP
transport briefly unavailable — is retried with exponential back-off
(``broker.retry_backoff_s * 2**retries``, at most ``broker.task_max_retries`` times); bad input
and bugs are not. Which errors count as outages is the pipeline's own policy
(:func:`aioreid.platform.pipeline.failures.is_transient`, also used by the in-process runner),
plus a broker that refused a message, which only workers meet.
"""

from __future__ import annotations

import logging

from celery import Task
from kombu.exceptions import OperationalError as BrokerUnavailable

from aioreid.platform.config import get_settings
from aioreid.platform.pipeline import failures

log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """The pipeline's transient errors, and a broker that refused a message."""
    return failures.is_transient(exc) or isinstance(exc, BrokerUnavailable)


def retry_if_transient(task: Task, exc: Exception, what: str) -> None:
    """Raise ``task``'s retry (with back-off) when ``exc`` is an outage and retries remain;
    return otherwise, for the caller to give up its own way (re-raise, or record a poisoned
    message and acknowledge it)."""
    broker = get_settings().broker
    retries = task.request.retries or 0
    if not is_transient(exc) or retries >= broker.task_max_retries:
        return
    countdown = broker.retry_backoff_s * 2**retries
    log.warning("%s: %s; retry %d in %.1f s", what, exc, retries + 1, countdown)
    raise task.retry(exc=exc, countdown=countdown, max_retries=broker.task_max_retries) from exc
