"""Celery tasks that run ingest jobs: a fan-out task and a three-task chain per window.

    aioreid.ingest.run_job        job → chunks of ``settings.broker.chunk_size`` items
    aioreid.ingest.prepare_chunk  queue ingest: register, claim, the next window of each media
    aioreid.encode.embed_chunk    queue encode: one batched encoder pass per modality
    aioreid.index.commit_chunk    queue index: rows + upserts; then the next window's chain,
                                  or, when every media of the chunk is finished, the count

A chunk travels as one JSON dict (``job_id``, ``chunk``, ``items``, ``options``, and, once
prepared, ``media_ids`` and ``prepared``); each task returns it for the next. The steps are
the pipeline's own (:mod:`aioreid.platform.pipeline.ingest`), the same the in-process runner
calls. A video longer than one window goes round the chain once per window (``continue``
lists the media still open), so a worker holds one window at a time and a killed worker
costs at most the window in flight. Tasks are idempotent, so late acks and redelivery after
a worker dies lose and duplicate nothing. Outages (object store, database, broker, index
server, HTTP) are retried with exponential backoff by the workers' one policy
(:mod:`aioreid.workers.retry_policy`); anything else, and an outage that outlasts the retries,
is a poisoned chunk: its media are marked failed, the reason is kept on the job,
the chunk is counted, and the message is acknowledged so the queue moves on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Task, chain, shared_task

from aioreid.platform.pipeline import ingest, stages
from aioreid.platform.pipeline.frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from aioreid.platform.services import Services
from aioreid.workers.app import worker_services
from aioreid.workers.retry_policy import is_transient, retry_if_transient
from aioreid.workers.task_names import COMMIT_CHUNK, EMBED_CHUNK, PREPARE_CHUNK, RUN_JOB

log = logging.getLogger(__name__)

MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


def _guarded(
    task: Task, stage: str, body: Callable[[Services], Any], on_poison: Callable[[str], Any]
) -> Any:
    """Run ``body``; retry outages with backoff (the workers' one retry policy); hand
    anything else (or an outage that outlasts the retries) to ``on_poison`` with the reason,
    and acknowledge."""
    try:
        return body(worker_services())
    except Exception as exc:
        retry_if_transient(task, exc, stage)
        retries = task.request.retries or 0
        why = f"gave up after {retries} retries: " if is_transient(exc) else ""
        reason = f"{stage}: {why}{type(exc).__name__}: {exc}"
        log.exception("poisoned %s message: %s", stage, reason)
        return on_poison(reason)


def _poisoned(envelope: Any, reason: str) -> dict[str, Any] | None:
    """Record a chunk that cannot be processed and count it, so the job still finishes."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("job_id"), int):
        log.error("dropped a malformed message: %.300r", envelope)
        return None
    job_id = envelope["job_id"]
    chunk = envelope.get("chunk")
    items = envelope.get("items")
    n = len(items) if isinstance(items, list) else 0
    media_ids = envelope.get("media_ids")
    if not isinstance(media_ids, list) or len(media_ids) != n:
        media_ids = [None] * n
    try:
        svc = worker_services()
        stages.record_failure(svc, job_id, f"chunk {chunk} ({n} items)", reason)
        for m in media_ids:
            if isinstance(m, int) and stages.media_statuses(svc, [m]).get(m) != "done":
                stages.fail_media(svc, m, reason)
        if isinstance(chunk, int):
            stages.finish_chunk(svc, job_id, chunk, media_ids)
    except Exception:
        log.exception("could not record the poisoned chunk %s of job %s", chunk, job_id)
    return {"job_id": job_id, "chunk": chunk, "skip": "poisoned"}


def _envelope(envelope: Any) -> dict[str, Any]:
    if not isinstance(envelope, dict):
        raise stages.StageInputError(f"a chunk must be a dict, got {type(envelope).__name__}")
    if not isinstance(envelope.get("job_id"), int) or not isinstance(envelope.get("chunk"), int):
        raise stages.StageInputError("a chunk needs integer job_id and chunk")
    if not isinstance(envelope.get("items"), list):
        raise stages.StageInputError("a chunk needs a list of items")
    return envelope


def _skipping(svc: Services, env: dict[str, Any]) -> dict[str, Any] | None:
    """The envelope to pass on when this chunk should not run (job cancelled or finished)."""
    if stages.job_is_open(svc, env["job_id"]):
        return None
    stages.release_media(svc, env.get("media_ids") or [])
    return {**env, "skip": "job closed", "prepared": []}


# --- fan-out -----------------------------------------------------------------------------------


def _prefix_items(svc: Services, prefix: str, defaults: dict[str, Any]) -> tuple[list, int]:
    keys = sorted(svc.store.iter_keys(prefix))
    media = [k for k in keys if Path(k).suffix.lower() in MEDIA_EXTENSIONS]
    return [{"key": k, **defaults} for k in media], len(keys) - len(media)


def _send_chain(task: Task, env: dict[str, Any]) -> None:
    """prepare → embed → commit for one window of a chunk's media."""
    chain(
        task.app.signature(PREPARE_CHUNK, args=(env,)),
        task.app.signature(EMBED_CHUNK),
        task.app.signature(COMMIT_CHUNK),
    ).apply_async()


@shared_task(bind=True, name=RUN_JOB, ignore_result=True)
def run_job(
    self: Task,
    job_id: int,
    items: list[dict[str, Any]] | None = None,
    options: dict[str, Any] | None = None,
    prefix: str | None = None,
    defaults: dict[str, Any] | None = None,
    chunk_size: int | None = None,
) -> int:
    """Split a job into chunks and send one prepare → embed → commit chain per chunk.

    ``items`` are local paths (on a filesystem the workers share) or object-store keys;
    with ``prefix``, the items are every media key under it (other keys are ignored and
    counted in the job's ``options["ignored"]``). Returns the number of chunks sent.
    """

    def body(svc: Services) -> int:
        stages.options_from_dict(options)  # refuse bad options before anything is queued
        ignored = 0
        if prefix is not None:
            job_items, ignored = _prefix_items(svc, prefix, defaults or {})
        elif isinstance(items, list):
            job_items = items
        else:
            raise stages.StageInputError("run_job needs items or a prefix")
        size = chunk_size or svc.settings.broker.chunk_size
        if not isinstance(size, int) or size <= 0:
            raise stages.StageInputError(f"chunk_size must be a positive integer, got {size!r}")
        chunks = [job_items[i : i + size] for i in range(0, len(job_items), size)]
        extra = {"chunk_size": size, "ignored": ignored, "runner": "celery"}
        if not stages.plan_chunks(svc, job_id, len(chunks), extra, total=len(job_items)):
            log.info("job %s: nothing to send (gone, finished or already fanned out)", job_id)
            return 0
        for n, part in enumerate(chunks):
            _send_chain(self, {"job_id": job_id, "chunk": n, "items": part, "options": options})
        stages.set_job_option(svc, job_id, "fanned_out", True)
        return len(chunks)

    def failed(reason: str) -> int:
        try:
            stages.fail_job(worker_services(), job_id, reason)
        except Exception:
            log.exception("could not mark job %s failed", job_id)
        return 0

    return _guarded(self, "run_job", body, on_poison=failed)


@shared_task(bind=True, name=PREPARE_CHUNK, ignore_result=True)
def prepare_chunk(self: Task, envelope: Any) -> dict[str, Any] | None:
    """Register the chunk's items and prepare their media (queue ``ingest``)."""

    def body(svc: Services) -> dict[str, Any]:
        env = _envelope(envelope)
        skip = _skipping(svc, env)
        if skip is not None:
            return skip
        opts = stages.options_from_dict(env.get("options"))
        if isinstance(env.get("continue"), list):  # the next window of media still open
            media_ids = env.get("media_ids") or []
            todo = [ingest.MediaTask(**t) for t in env["continue"]]
        else:
            registered = stages.register_items(svc, env["items"], opts, env["job_id"])
            # A refused item has no media (None: counted failed); a skipped one is done.
            media_ids = [None if r.media_id < 0 else r.media_id for r in registered]
            todo = [r for r in registered if isinstance(r, ingest.MediaTask)]
        prepared = ingest.prepare(svc, todo, opts)
        return {**env, "media_ids": media_ids, "prepared": prepared}

    return _guarded(self, "prepare", body, lambda why: _poisoned(envelope, why))


def _to_continue(
    svc: Services, prepared: list[dict[str, Any]], results: list[ingest.WindowResult]
) -> list[dict[str, Any]]:
    """The media whose next window this chain prepares: those whose window was just applied
    and is not their last, and those whose window an earlier delivery of this very commit
    applied but died before sending the next one (their progress names the next window; if a
    duplicate chain does the same, its work is idempotent). A media another chain has moved
    further is left to it, and a finished one needs nothing."""
    works = {w["media_id"]: w for w in prepared}
    progress = stages.media_progress(svc, [r.media_id for r in results if r.status == "skipped"])
    out = []
    for r in results:
        work = works[r.media_id]
        if r.status == "skipped":
            status, window = progress.get(r.media_id, ("failed", -1))
            if status in ("done", "failed") or window != int(work.get("window", 0)) + 1:
                continue
        elif r.status != "pending":
            continue
        out.append(
            {
                "media_id": r.media_id,
                "source_label": work.get("source_label"),
                "attributes": work.get("attributes"),
            }
        )
    return out


def _pass_on(envelope: Any) -> bool:
    """Chunks skipped or poisoned upstream travel through the rest of the chain untouched."""
    return envelope is None or (isinstance(envelope, dict) and bool(envelope.get("skip")))


@shared_task(bind=True, name=EMBED_CHUNK, ignore_result=True)
def embed_chunk(self: Task, envelope: Any) -> dict[str, Any] | None:
    """Embed a prepared chunk with the live encoder, loaded once per worker (queue ``encode``)."""
    if _pass_on(envelope):
        return envelope

    def body(svc: Services) -> dict[str, Any]:
        env = _envelope(envelope)
        skip = _skipping(svc, env)
        if skip is not None:
            return skip
        return {**env, "prepared": ingest.embed(svc, env.get("prepared", []))}

    return _guarded(self, "embed", body, lambda why: _poisoned(envelope, why))


@shared_task(bind=True, name=COMMIT_CHUNK, ignore_result=True)
def commit_chunk(self: Task, envelope: Any) -> dict[str, Any] | None:
    """Write rows and points, then count the chunk on its job (queue ``index``)."""
    if _pass_on(envelope):
        return envelope

    def body(svc: Services) -> dict[str, Any]:
        env = _envelope(envelope)
        skip = _skipping(svc, env)
        if skip is not None:
            return skip
        prepared = env.get("prepared", [])
        results = ingest.commit(svc, prepared)
        media_ids = env.get("media_ids") or [None] * len(env["items"])
        still_open = _to_continue(svc, prepared, results)
        if still_open:
            _send_chain(self, {**env, "continue": still_open, "prepared": []})
        elif stages.all_finished(svc, media_ids):
            stages.finish_chunk(svc, env["job_id"], env["chunk"], media_ids)
        # else: another delivery of this chunk's chain is ahead and will finish it
        return {
            "job_id": env["job_id"],
            "chunk": env["chunk"],
            "sightings": sum(r.sightings for r in results),
            "open": len(still_open),
        }

    return _guarded(self, "commit", body, lambda why: _poisoned(envelope, why))
