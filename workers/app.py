"""The Celery application, configured from the settings tree.

    celery -A aioreid.workers.app worker -Q ingest,index -c 4        # CPU machines
    celery -A aioreid.workers.app worker -Q encode -c 1              # one per GPU
    celery -A aioreid.workers.app beat

Queues: ``ingest`` (decode, detect, crop: CPU), ``encode`` (batched embedding: GPU, prefetch 1,
model loaded once per worker process), ``index`` (rows + upserts) and ``maintenance``
(re-index, retention). Tasks acknowledge late and are re-queued when a worker dies, so every
task must be idempotent (the pipeline is: content-addressed media and crops, UUIDv5 points).
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from celery.signals import worker_process_shutdown
from kombu import Queue

from aioreid.platform.config import Settings, get_settings
from aioreid.workers.task_names import CHECK_ENCODER, QUEUES, RETENTION, task_routes

__all__ = ["QUEUES", "app", "make_celery", "worker_services"]


def make_celery(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings`` (Redis by default; any kombu URL, e.g. ``amqp://``)."""
    settings = settings or get_settings()
    b = settings.broker
    app = Celery(
        "aioreid",
        broker=b.broker_url,
        backend=b.result_backend,
        include=["aioreid.workers.tasks_ingest", "aioreid.workers.tasks_maintenance"],
    )
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue="ingest",
        task_routes=task_routes(),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        # Redis: a task not acknowledged within this many seconds is delivered again.
        broker_transport_options={"visibility_timeout": b.visibility_timeout_s},
        worker_send_task_events=True,
        task_send_sent_event=True,
        beat_schedule={
            "reindex-when-the-encoder-changes": {
                "task": CHECK_ENCODER,
                "schedule": b.reindex_every_s,
            },
            "retention-sweep": {
                "task": RETENTION,
                "schedule": b.retention_every_s,
            },
        },
    )
    return app


@lru_cache(maxsize=1)
def worker_services():  # type: ignore[no-untyped-def]
    """This worker process's services (database pool, store, index, encoders), built once."""
    from aioreid.platform.services import Services

    return Services.from_settings(get_settings(), migrate=False)


@worker_process_shutdown.connect
def _close_services(**_: object) -> None:
    if worker_services.cache_info().currsize:
        worker_services().close()


app = make_celery()
