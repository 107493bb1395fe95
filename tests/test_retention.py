"""Retention: old media leave with their sightings, points (every collection) and objects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import pytest
import sqlalchemy as sa
from pg import require_postgres, temporary_postgres_database
from platform_fixtures import TINY, jpeg, make_services, person_image

from aioreid.encoder.inference import Encoder
from aioreid.platform.db.migrate import upgrade
from aioreid.platform.db.models import Assignment, AuditEvent, Media, ReviewDecision, Sighting
from aioreid.platform.index import VectorIndexError
from aioreid.platform.pipeline.ingest import ingest_bytes
from aioreid.platform.pipeline.reindex import reindex_step, start_reindex
from aioreid.platform.pipeline.retention import RetentionError, apply_retention
from aioreid.platform.search.review import ReviewService
from aioreid.platform.search.schemas import SearchOptions
from aioreid.platform.search.service import SearchService
from aioreid.platform.services import Services
from aioreid.platform.storage import StorageError

NOW = datetime.now(timezone.utc)
OLD = NOW - timedelta(days=30)
CUTOFF = NOW - timedelta(days=7)


def png(i: int, level: int) -> bytes:
    """The same pixels give different files at different compression levels."""
    img = cv2.cvtColor(person_image(i), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, level])
    assert ok
    return buf.tobytes()


@dataclass
class World:
    svc: Services
    old: list[int]  # media ids that retention must delete
    recent: list[int]
    building: str  # a collection a re-index is building
    shared_crop: str  # crop key of an old media that a recent one shares


def _ingest(svc: Services, data: bytes, name: str, start: datetime | None) -> int:
    res = ingest_bytes(svc, data, name, camera="cam", start_time=start)
    assert res.status == "done", res.error
    return res.media_id


@pytest.fixture
def world(tmp_path: Path, one_torch_thread: None) -> Iterator[World]:
    require_postgres()
    with temporary_postgres_database() as url:
        upgrade(url)
        svc = make_services(tmp_path, url, migrate=False)
        try:
            old = [_ingest(svc, jpeg(person_image(i)), f"old{i}.jpg", OLD) for i in range(2)]
            old.append(_ingest(svc, jpeg(person_image(2)), "undated.jpg", None))
            old.append(_ingest(svc, png(9, 1), "shared-old.png", OLD))
            recent = [_ingest(svc, jpeg(person_image(i)), f"new{i}.jpg", NOW) for i in (3, 4)]
            recent.append(_ingest(svc, png(9, 9), "shared-new.png", NOW))
            with svc.sessions.begin() as s:  # undated: old by its upload time
                s.execute(sa.update(Media).where(Media.id == old[2]).values(created_at=OLD))
                crops = {
                    m: k for m, k in s.execute(sa.select(Sighting.media_id, Sighting.object_key))
                }
                first, second = (
                    s.scalar(sa.select(Sighting.id).where(Sighting.media_id == m)) for m in old[:2]
                )
            assert crops[old[3]] == crops[recent[2]]  # identical pixels, one crop object
            review = ReviewService(svc)
            ident = review.assign(first, None, "ana", label="gone with its media")
            review.confirm(second, ident, "ana")
            other = Encoder.untrained(TINY, seed=1, device="cpu")
            gen = start_reindex(svc, other)  # left building: retention must clean it too
            assert reindex_step(svc, gen, batch=100) == 7
            building = svc.index.collection_for_version(other.version)
            yield World(svc, old, recent, building, crops[old[3]])
        finally:
            svc.close()


def media_keys(svc: Services, ids: list[int]) -> dict[int, str]:
    with svc.sessions() as s:
        rows = s.execute(sa.select(Media.id, Media.object_key).where(Media.id.in_(ids)))
        return {mid: key for mid, key in rows}


def crop_keys(svc: Services, ids: list[int]) -> set[str]:
    with svc.sessions() as s:
        return set(s.scalars(sa.select(Sighting.object_key).where(Sighting.media_id.in_(ids))))


def media_left(svc: Services) -> set[int]:
    with svc.sessions() as s:
        return set(s.scalars(sa.select(Media.id)))


def test_old_media_leave_with_everything_derived(world: World) -> None:
    svc = world.svc
    live = svc.live_collection()
    old_objects = set(media_keys(svc, world.old).values()) | crop_keys(svc, world.old)
    recent_objects = set(media_keys(svc, world.recent).values()) | crop_keys(svc, world.recent)
    report = apply_retention(svc, CUTOFF)
    assert {k: report[k] for k in ("media", "sightings", "points")} == {
        "media": 4,
        "sightings": 4,
        "points": 16,  # a sighting and a track point each: 8 live + 8 in the one being built
    }
    assert (report["crop_objects"], report["media_objects"]) == (3, 4)
    assert report["shared_objects_kept"] == 1
    assert media_left(svc) == set(world.recent)
    assert svc.index.count(live) == 6 and svc.index.count(world.building) == 6
    assert not any(svc.store.exists(k) for k in old_objects - {world.shared_crop})
    assert all(svc.store.exists(k) for k in recent_objects)
    with svc.sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Sighting)) == 3
        assert s.scalar(sa.select(sa.func.count()).select_from(Assignment)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(ReviewDecision)) == 0
        audit = s.scalar(sa.select(AuditEvent).where(AuditEvent.action == "retention"))
        assert audit is not None and audit.details["media"] == 4
    hits = SearchService(svc).search({"text": "anyone"}, options=SearchOptions(limit=50)).hits
    assert {h.media_id for h in hits} == set(world.recent)

    again = apply_retention(svc, CUTOFF)  # idempotent
    assert (again["media"], again["points"], again["crop_objects"]) == (0, 0, 0)
    assert media_left(svc) == set(world.recent)


def test_dry_run_only_counts(world: World) -> None:
    svc = world.svc
    report = apply_retention(svc, CUTOFF, dry_run=True)
    assert report["dry_run"] and (report["media"], report["points"]) == (4, 16)
    assert report["crop_objects"] == 3 and report["media_objects"] == 4
    assert media_left(svc) == set(world.old + world.recent)
    assert svc.index.count(svc.live_collection()) == 14
    assert all(svc.store.exists(k) for k in media_keys(svc, world.old).values())


def test_a_failing_index_or_store_keeps_the_rows_for_the_next_sweep(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = world.svc

    def broken(*args: object, **kwargs: object) -> None:
        raise VectorIndexError("index down")

    monkeypatch.setattr(svc.index, "delete", broken)
    with pytest.raises(VectorIndexError, match="index down"):
        apply_retention(svc, CUTOFF)
    assert media_left(svc) == set(world.old + world.recent)
    assert all(svc.store.exists(k) for k in media_keys(svc, world.old).values())
    assert svc.index.count(svc.live_collection()) == 14
    monkeypatch.undo()

    def store_down(key: str) -> None:
        raise StorageError("store down")

    monkeypatch.setattr(svc.store, "delete", store_down)
    with pytest.raises(StorageError, match="store down"):
        apply_retention(svc, CUTOFF)
    assert media_left(svc) == set(world.old + world.recent)  # rows wait for the retry
    monkeypatch.undo()
    report = apply_retention(svc, CUTOFF)
    assert report["media"] == 4 and media_left(svc) == set(world.recent)
    assert svc.index.count(svc.live_collection()) == 6


def test_busy_media_wait_and_bad_cutoffs_are_refused(world: World) -> None:
    svc = world.svc
    with svc.sessions.begin() as s:  # being re-processed right now
        s.execute(sa.update(Media).where(Media.id == world.old[0]).values(status="processing"))
    with pytest.raises(RetentionError, match="timezone-aware"):
        apply_retention(svc, CUTOFF.replace(tzinfo=None))
    with pytest.raises(RetentionError, match="in the future"):
        apply_retention(svc, NOW + timedelta(days=1))
    with pytest.raises(RetentionError, match="batch"):
        apply_retention(svc, CUTOFF, batch=0)
    assert media_left(svc) == set(world.old + world.recent)
    report = apply_retention(svc, CUTOFF, batch=1)
    assert report["busy_media_skipped"] == 1 and report["media"] == 3
    assert media_left(svc) == {world.old[0], *world.recent}


def test_failed_uploads_leave_no_bytes_after_the_grace(world: World) -> None:
    from aioreid.platform.pipeline.retention import remove_failed_media

    svc = world.svc
    bad = ingest_bytes(svc, b"\xff\xd8 not really a jpeg" * 1000, "broken.jpg", camera="cam")
    assert bad.status == "failed"
    with svc.sessions() as s:
        key = s.scalar(sa.select(Media.object_key).where(Media.id == bad.media_id))
    assert svc.store.exists(key)
    media_before = _media_count(svc)
    # Within the grace the failed media stays (the user may still retry it).
    kept = remove_failed_media(svc, NOW - timedelta(hours=1))
    assert kept["media"] == 0 and svc.store.exists(key)
    dry = remove_failed_media(svc, datetime.now(timezone.utc), dry_run=True)
    assert (dry["media"], dry["media_objects"]) == (1, 1) and svc.store.exists(key)
    report = remove_failed_media(svc, datetime.now(timezone.utc))
    assert (report["media"], report["media_objects"]) == (1, 1)
    assert not svc.store.exists(key)
    assert _media_count(svc) == media_before - 1  # media that gave sightings are untouched


def _media_count(svc: Services) -> int:
    with svc.sessions() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(Media)) or 0)
