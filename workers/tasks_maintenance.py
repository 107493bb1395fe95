"""Maintenance tasks (queue ``maintenance``): re-index on encoder change, retention sweeps.

``check_encoder`` (beat) starts a re-index when the configured encoder is not the live one and
queues ``reindex``, which runs a few steps and queues itself again until the generation is
live. Tasks acknowledge late, so a worker killed mid-step has its message redelivered and the
re-index resumes from the stored cursor, losing at most that step. A generation nobody has
stepped for ``visibility_timeout_s`` is given a new driver by the next ``check_encoder``.
Outages are retried by the same policy as ingest tasks (:mod:`aioreid.workers.retry_policy`);
a task that still fails after the retries fails, and the next beat tries again.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any

from celery import Task, shared_task

from aioreid.platform.pipeline.reindex import (
    DEFAULT_BATCH,
    ReindexError,
    catch_up_live,
    check_encoder,
    claim_driver,
    run_reindex,
)
from aioreid.platform.pipeline.retention import apply_retention, remove_failed_media
from aioreid.platform.services import EncoderUnavailable
from aioreid.workers.app import worker_services
from aioreid.workers.retry_policy import retry_if_transient
from aioreid.workers.task_names import CHECK_ENCODER, REINDEX, RETENTION

log = logging.getLogger(__name__)

STEPS_PER_TASK = 4  # steps per reindex task: a killed worker redoes at most one of them
REINDEX_BATCH = DEFAULT_BATCH


def _queue_reindex(task: Task, generation_id: int, steps: int, batch: int) -> None:
    task.app.send_task(REINDEX, args=[generation_id], kwargs={"steps": steps, "batch": batch})


@shared_task(name=CHECK_ENCODER, bind=True)
def check_encoder_task(self: Task) -> int | None:
    """Start (or give a driver to) the re-index the configured encoder needs; returns the
    generation id, or None when the live generation already uses the configured encoder."""
    try:
        svc = worker_services()
        generation_id = check_encoder(svc)
        if generation_id is None:
            catch_up_live(svc)
            return None
        if claim_driver(svc, generation_id, svc.settings.broker.visibility_timeout_s):
            _queue_reindex(self, generation_id, STEPS_PER_TASK, REINDEX_BATCH)
            log.info("re-index: generation %s queued", generation_id)
        return generation_id
    except EncoderUnavailable as exc:
        log.warning("check_encoder: %s", exc)
        return None
    except Exception as exc:
        retry_if_transient(self, exc, "check_encoder")
        raise


@shared_task(name=REINDEX, bind=True)
def reindex_task(
    self: Task, generation_id: int, steps: int = STEPS_PER_TASK, batch: int = REINDEX_BATCH
) -> dict[str, Any]:
    """Run up to ``steps`` re-index steps of a generation, then queue the rest; finishes (swaps
    the alias) once caught up. Returns the generation's progress."""
    try:
        prog = run_reindex(worker_services(), generation_id, max_batches=steps, batch=batch)
    except ReindexError as exc:  # failed, superseded or deleted meanwhile: stop the chain
        log.warning("re-index of generation %s stopped: %s", generation_id, exc)
        return {"generation_id": generation_id, "status": "stopped", "error": str(exc)}
    except Exception as exc:
        retry_if_transient(self, exc, f"reindex {generation_id}")
        raise
    if prog.status == "building":
        _queue_reindex(self, generation_id, steps, batch)
    return asdict(prog)


@shared_task(name=RETENTION, bind=True)
def retention_task(self: Task) -> dict[str, Any] | None:
    """Delete media older than ``broker.retention_days`` and failed uploads older than
    ``broker.failed_media_days``; each is skipped when unset (None when both are)."""
    now = datetime.now(timezone.utc)
    out: dict[str, Any] = {}
    try:
        svc = worker_services()
        b = svc.settings.broker
        if b.retention_days is not None:
            out["old_media"] = apply_retention(svc, now - timedelta(days=b.retention_days))
        if b.failed_media_days is not None:
            out["failed_media"] = remove_failed_media(
                svc, now - timedelta(days=b.failed_media_days)
            )
    except Exception as exc:
        retry_if_transient(self, exc, "retention")
        raise
    return out or None
