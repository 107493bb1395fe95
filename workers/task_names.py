"""Every Celery task name and queue, defined once.

A task's name is ``aioreid.<queue>.<task>``: :mod:`aioreid.workers.app` routes each task to
the queue its name carries, so a name here decides where its task runs. Senders use these
constants (never literals), so a renamed task cannot leave a sender behind.
"""

from __future__ import annotations

QUEUES = ("ingest", "encode", "index", "maintenance")


def _task(queue: str, task: str) -> str:
    if queue not in QUEUES:  # a task routed to no queue would wait forever
        raise ValueError(f"unknown queue {queue!r}")
    return f"aioreid.{queue}.{task}"


# ingest jobs: a fan-out task, then one prepare → embed → commit chain per chunk and window
RUN_JOB = _task("ingest", "run_job")
PREPARE_CHUNK = _task("ingest", "prepare_chunk")
EMBED_CHUNK = _task("encode", "embed_chunk")
COMMIT_CHUNK = _task("index", "commit_chunk")

# maintenance: beat's encoder check and retention sweep, and the re-index chain they start
CHECK_ENCODER = _task("maintenance", "check_encoder")
REINDEX = _task("maintenance", "reindex")
RETENTION = _task("maintenance", "retention")


def task_routes() -> dict[str, dict[str, str]]:
    """Celery's ``task_routes``: every ``aioreid.<queue>.*`` task to its queue."""
    return {f"aioreid.{q}.*": {"queue": q} for q in QUEUES}
