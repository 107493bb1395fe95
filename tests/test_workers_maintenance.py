"""Maintenance tasks through a real worker: a Redis broker, a worker thread in this process,
Postgres, a local-folder store and the local index shared with the test (one process may hold
the local index folder, so the worker and the test use the same Services object)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import torch
from brokers import require_redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import task_prerun, task_retry
from platform_fixtures import TINY, jpeg, person_image
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from sqlalchemy import func, select
from test_workers_ingest import worker_settings

from aioreid.encoder.model import AIOModel
from aioreid.platform.config import Settings
from aioreid.platform.db.models import IndexGeneration, Media, Sighting
from aioreid.platform.pipeline.ingest import ingest_bytes
from aioreid.platform.search.service import SearchService
from aioreid.platform.services import Services
from aioreid.workers import tasks_ingest, tasks_maintenance
from aioreid.workers.app import make_celery, worker_services

REDIS_URL = os.environ.get("AIOREID_TEST_MAINTENANCE_REDIS", "redis://127.0.0.1:6379/13")
T0 = datetime(2024, 6, 1, 9, 0, tzinfo=timezone.utc)
N = 12


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    checkpoints: dict[str, Path] = field(default_factory=dict)


@pytest.fixture(scope="module")
def stack(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[Stack]:
    require_redis(REDIS_URL)
    home = tmp_path_factory.mktemp("maintenance")
    ckpts = {}
    for seed, name in enumerate("ab"):
        torch.manual_seed(seed)
        ckpts[name] = AIOModel(TINY).save(home / f"{name}.pt")
    env = {
        "AIOREID_HOME": str(home),
        "AIOREID_DATABASE__URL": pg_url,
        "AIOREID_INDEX__BACKEND": "local",
        "AIOREID_STORAGE__ROOT": str(home / "objects"),
        "AIOREID_ENCODER__DEVICE": "cpu",
        "AIOREID_ENCODER__BATCH_SIZE": "16",
        "AIOREID_BROKER__BROKER_URL": REDIS_URL,
        "AIOREID_BROKER__RESULT_BACKEND": REDIS_URL,
    }
    try:
        yield Stack(home, env, ckpts)
    finally:
        redis.Redis.from_url(REDIS_URL).flushdb()


@contextmanager
def worker(settings: Settings) -> Iterator[Celery]:
    app = make_celery(settings)
    app.control.purge()
    with start_worker(
        app,
        pool="solo",
        perform_ping_check=False,
        queues=["maintenance"],
        shutdown_timeout=30,
        loglevel="WARNING",
    ):
        yield app


@contextmanager
def slow_reindex_tasks(seconds: float) -> Iterator[list[str]]:
    """Slow each re-index task down (so searches overlap it) and record the tasks run."""
    seen: list[str] = []

    def pre(sender: Any = None, **_: Any) -> None:
        seen.append(sender.name)
        if sender.name == tasks_maintenance.REINDEX:
            time.sleep(seconds)

    task_prerun.connect(pre, weak=False)
    try:
        yield seen
    finally:
        task_prerun.disconnect(pre)


def generation_status(svc: Services) -> dict[str, str]:
    with svc.sessions() as s:
        rows = s.execute(select(IndexGeneration.collection, IndexGeneration.status))
        return {name: str(status) for name, status in rows}


def test_check_encoder_chain_swaps_while_search_keeps_answering(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Encoder A configured: the gallery is indexed with it.
    with worker_settings({**stack.env, "AIOREID_ENCODER__CHECKPOINT": str(stack.checkpoints["a"])}):
        svc = worker_services()
        version_a = svc.encoder.version
        for i in range(N):
            res = ingest_bytes(svc, jpeg(person_image(i)), f"p{i}.jpg", start_time=T0)
            assert res.status == "done", res.error
        old = svc.live_collection()
    # The deployment now names encoder B; the worker and the search share this process.
    env_b = {**stack.env, "AIOREID_ENCODER__CHECKPOINT": str(stack.checkpoints["b"])}
    monkeypatch.setattr(tasks_maintenance, "STEPS_PER_TASK", 1)
    monkeypatch.setattr(tasks_maintenance, "REINDEX_BATCH", 3)
    with worker_settings(env_b) as settings, worker(settings) as app:
        svc = worker_services()
        version_b = svc.encoder.version
        search = SearchService(svc)
        answers: list[tuple[str, float, int]] = []
        errors: list[BaseException] = []
        with slow_reindex_tasks(0.3) as seen:
            gen = app.send_task(tasks_maintenance.CHECK_ENCODER).get(timeout=30)
            assert isinstance(gen, int)
            # a second beat while it builds does not start a second chain or generation
            assert app.send_task(tasks_maintenance.CHECK_ENCODER).get(timeout=30) == gen
            deadline = time.monotonic() + 60
            swapped_at = None
            while time.monotonic() < deadline:
                try:
                    res = search.search({"rgb": jpeg(person_image(len(answers) % N))})
                    answers.append((res.encoder_version, res.hits[0].score, len(res.hits)))
                except Exception as exc:
                    errors.append(exc)
                if swapped_at is None and generation_status(svc).get(old) == "retired":
                    swapped_at = len(answers)
                if swapped_at is not None and len(answers) >= swapped_at + 5:
                    break
        assert not errors, errors[:3]
        assert swapped_at is not None, "the re-index did not finish within 60 s"
        versions = [v for v, _, _ in answers]
        assert versions[0] == version_a and versions[-1] == version_b
        # each answer comes whole from one encoder's collection: the stored crop finds itself
        assert all(score == pytest.approx(1.0, abs=1e-2) for _, score, _ in answers)
        assert all(n == N for _, _, n in answers)  # never an empty or partial gallery
        new = svc.index.resolve_alias(svc.alias)
        assert new == svc.index.collection_for_version(version_b)
        assert generation_status(svc) == {old: "retired", new: "live"}
        with svc.sessions() as s:
            ids = sorted(s.scalars(select(Sighting.id)))
        points = list(svc.index.scroll(new))
        sightings = [p for p in points if p.payload.get("level") != "track"]
        assert sorted(int(p.payload["sighting"]) for p in sightings) == ids  # each exactly once
        assert len(points) == 2 * N  # and each image's one-frame track has its pooled point
        assert seen.count(tasks_maintenance.REINDEX) >= N // 3  # one step per task, re-queued
        assert app.send_task(tasks_maintenance.CHECK_ENCODER).get(timeout=30) is None


def test_retention_task_is_a_no_op_until_days_are_set(stack: Stack) -> None:
    env = {**stack.env, "AIOREID_ENCODER__CHECKPOINT": str(stack.checkpoints["b"])}
    with worker_settings(env) as settings, worker(settings) as app:
        svc = worker_services()
        for name, start in (("old.jpg", T0), ("recent.jpg", None)):
            res = ingest_bytes(svc, jpeg(person_image(99 + len(name))), name, start_time=start)
            assert res.status == "done"
        with svc.sessions() as s:
            before = s.scalar(select(func.count()).select_from(Media))
            old_points = list(
                s.scalars(
                    select(Sighting.point_id).join(Media).where(Media.original_name != "recent.jpg")
                )
            )
        svc.settings.broker.failed_media_days = None
        assert app.send_task(tasks_maintenance.RETENTION).get(timeout=30) is None
        with svc.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Media)) == before

        svc.settings.broker.retention_days = 30  # what AIOREID_BROKER__RETENTION_DAYS sets
        svc.settings.broker.failed_media_days = 1.0
        report = app.send_task(tasks_maintenance.RETENTION).get(timeout=30)
        assert report["failed_media"]["media"] == 0  # nothing failed here
        report = report["old_media"]
        assert report["media"] == before - 1 and report["points"] >= len(old_points)
        with svc.sessions() as s:
            assert list(s.scalars(select(Media.original_name))) == ["recent.jpg"]
        for collection in svc.index.list_collections():
            assert svc.index.retrieve(collection, old_points) == []
        assert svc.index.count(svc.alias) == 2  # the recent image: its sighting and its track


def test_beat_schedule_names_registered_tasks(stack: Stack) -> None:
    with worker_settings(stack.env) as settings:
        app = make_celery(settings)
        app.loader.import_default_modules()
        schedule = app.conf.beat_schedule
        assert {e["task"] for e in schedule.values()} == {
            tasks_maintenance.CHECK_ENCODER,
            tasks_maintenance.RETENTION,
        }
        assert all(e["task"] in app.tasks for e in schedule.values())
        assert tasks_maintenance.REINDEX in app.tasks
        by_task = {e["task"]: e["schedule"] for e in schedule.values()}
        assert by_task[tasks_maintenance.CHECK_ENCODER] == settings.broker.reindex_every_s
        assert by_task[tasks_maintenance.RETENTION] == settings.broker.retention_every_s
        route = app.amqp.router.route({}, tasks_maintenance.REINDEX)
        assert route["queue"].name == "maintenance"


#: Outages of the index server and of HTTP, as qdrant-client and httpx raise them.
OUTAGES = [
    pytest.param(
        lambda: ResponseHandlingException(httpx.ConnectError("qdrant unreachable")),
        id="qdrant-unreachable",
    ),
    pytest.param(
        lambda: UnexpectedResponse(503, "Service Unavailable", b"", httpx.Headers()),
        id="qdrant-503",
    ),
    pytest.param(lambda: httpx.ReadTimeout("no answer"), id="http-timeout"),
]


@pytest.mark.parametrize("outage", OUTAGES)
def test_maintenance_task_retries_an_index_outage_like_ingest(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, outage: Any
) -> None:
    """The encoder check meets an outage twice, then the index answers: retried with back-off
    (one retry policy for ingest and maintenance), not failed. Bad input is not retried."""
    assert tasks_maintenance.retry_if_transient is tasks_ingest.retry_if_transient
    calls: list[str] = []
    fault: list[Exception] = []

    def flaky_check(svc: Services) -> int | None:
        calls.append("check")
        if fault:
            raise fault[0]
        if len(calls) <= 2:
            raise outage()
        return None

    monkeypatch.setattr(tasks_maintenance, "check_encoder", flaky_check)
    monkeypatch.setattr(tasks_maintenance, "catch_up_live", lambda svc: None)
    retried: list[str] = []

    def on_retry(request: object = None, reason: object = None, **_: object) -> None:
        retried.append(str(reason))  # "Retry in 0.05s: ReadTimeout('no answer')"

    task_retry.connect(on_retry, weak=False)
    env = {**stack.env, "AIOREID_BROKER__RETRY_BACKOFF_S": "0.05"}
    try:
        with worker_settings(env) as settings, worker(settings) as app:
            assert app.send_task(tasks_maintenance.CHECK_ENCODER).get(timeout=30) is None
            assert len(calls) == 3 and len(retried) == 2, (calls, retried)
            assert all(f": {type(outage()).__name__}(" in r for r in retried), retried
            fault.append(ValueError("not an outage"))
            with pytest.raises(ValueError, match="not an outage"):
                app.send_task(tasks_maintenance.CHECK_ENCODER).get(timeout=30)
            assert len(calls) == 4 and len(retried) == 2  # failed at once
    finally:
        task_retry.disconnect(on_retry)
