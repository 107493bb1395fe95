"""Zero-downtime re-indexing from encoder A to encoder B on Postgres + the local index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch
import typer
from pg import require_postgres, temporary_postgres_database
from platform_fixtures import TINY, jpeg, make_settings, person_image
from sqlalchemy import select
from typer.testing import CliRunner

from aioreid.encoder.inference import Encoder
from aioreid.encoder.model import AIOModel
from aioreid.platform.db import crud
from aioreid.platform.db.migrate import upgrade
from aioreid.platform.db.models import EncoderVersion, IndexGeneration, Sighting
from aioreid.platform.index import SearchFilter
from aioreid.platform.pipeline import reindex
from aioreid.platform.pipeline.ingest import ingest_bytes
from aioreid.platform.pipeline.reindex import (
    ReindexError,
    ReindexRefused,
    check_encoder,
    claim_driver,
    finish_reindex,
    progress,
    reindex_step,
    run_reindex,
    start_reindex,
)
from aioreid.platform.search.review import ReviewService
from aioreid.platform.search.schemas import SearchFilters, SearchOptions
from aioreid.platform.search.service import SearchService
from aioreid.platform.services import Services

T0 = datetime(2024, 6, 1, 9, 0, tzinfo=timezone.utc)
N = 10


@dataclass
class Checkpoints:
    a: Path
    b: Path
    c: Path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Checkpoints:
    """Three tiny encoders saved to disk, so any Services can load them by version."""
    root = tmp_path_factory.mktemp("ckpt")
    paths = []
    for seed, name in enumerate("abc"):
        torch.manual_seed(seed)
        paths.append(AIOModel(TINY).save(root / f"{name}.pt"))
    return Checkpoints(*paths)


def load(path: Path) -> Encoder:
    return Encoder.load(path, device="cpu", batch_size=16)


@dataclass
class World:
    home: Path
    url: str
    svc: Services
    a: Encoder
    b: Encoder

    def reopen(self, encoder: Encoder | None = None) -> Services:
        """A fresh Services over the same database and index (the old one is closed)."""
        self.svc.close()
        self.svc = Services.from_settings(
            make_settings(self.home, self.url), encoder=encoder, migrate=False
        )
        return self.svc


def ingest(svc: Services, i: int) -> None:
    res = ingest_bytes(svc, jpeg(person_image(i)), f"p{i}.jpg", camera=f"cam{i % 2}", start_time=T0)
    assert res.status == "done", res.error


@pytest.fixture
def world(tmp_path: Path, ckpts: Checkpoints) -> Iterator[World]:
    """N sightings indexed live with encoder A; encoder B ready to re-index with."""
    require_postgres()
    with temporary_postgres_database() as url:
        upgrade(url)
        a, b = load(ckpts.a), load(ckpts.b)
        svc = Services.from_settings(make_settings(tmp_path, url), encoder=a, migrate=False)
        w = World(tmp_path, url, svc, a, b)
        try:
            for i in range(N):
                ingest(svc, i)
            yield w
        finally:
            w.svc.close()


def top(svc: Services, i: int, **flt: object):  # type: ignore[no-untyped-def]
    res = SearchService(svc).search(
        {"rgb": jpeg(person_image(i))}, SearchFilters(**flt), SearchOptions(limit=50)
    )
    return res


def sighting_points(svc: Services, collection: str) -> int:
    """Points of sightings in ``collection`` (each track has one more, pooled)."""
    return svc.index.count(collection, SearchFilter(level="sighting"))


def sighting_ids(svc: Services) -> list[int]:
    with svc.sessions() as s:
        return list(s.scalars(select(Sighting.id).order_by(Sighting.id)))


def payloads(svc: Services, collection: str) -> dict[int, dict]:
    """sighting id -> payload, asserting every sighting is there once, and every track whose
    sightings are all there has its pooled point once."""
    everything = list(svc.index.scroll(collection))
    points = [p for p in everything if p.payload.get("level") != "track"]
    by_sighting = {int(p.payload["sighting"]): p.payload for p in points}
    assert len(by_sighting) == len(points)
    tracks = [int(p.payload["track"]) for p in everything if p.payload.get("level") == "track"]
    with svc.sessions() as s:
        members: dict[int, set[int]] = {}
        for sid, tid in s.execute(select(Sighting.id, Sighting.track_id)):
            members.setdefault(tid, set()).add(sid)
    complete = sorted(t for t, sids in members.items() if sids <= set(by_sighting))
    assert sorted(tracks) == complete
    return by_sighting


def test_search_serves_a_until_the_swap_then_b(world: World) -> None:
    svc, a, b = world.svc, world.a, world.b
    old = svc.live_collection()
    gen = start_reindex(svc, b)
    new = svc.index.collection_for_version(b.version)
    assert new != old and sighting_points(svc, new) == 0

    assert reindex_step(svc, gen, batch=4) == 4
    during = top(svc, 3)
    assert during.encoder_version == a.version and during.collection == old
    assert during.hits[0].score == pytest.approx(1.0, abs=1e-2)
    assert len(during.hits) == N
    p = progress(svc, gen)
    assert (p.status, p.after, p.points, p.remaining) == ("building", sighting_ids(svc)[3], 4, 6)

    done = run_reindex(svc, gen, batch=4)
    assert done.status == "live" and done.remaining == 0 and done.points == N
    assert svc.index.resolve_alias(svc.alias) == new
    after = top(svc, 3)
    assert after.encoder_version == b.version and after.collection == new
    assert after.hits[0].score == pytest.approx(1.0, abs=1e-2)
    assert after.hits[0].sighting_id == during.hits[0].sighting_id
    assert sorted(payloads(svc, new)) == sighting_ids(svc)
    # B's vectors are not A's: A's query vector does not find itself in B's collection
    vec = a.embed([jpeg(person_image(3))], "rgb")[0]
    assert svc.index.search(new, vec, limit=1)[0].score < 0.99
    with svc.sessions() as s:
        rows = s.execute(select(IndexGeneration.collection, IndexGeneration.status))
        statuses = {name: status for name, status in rows}
        active = s.scalar(select(EncoderVersion.version).where(EncoderVersion.is_active))
    assert statuses == {old: "retired", new: "live"} and active == b.version


def test_an_interrupted_reindex_resumes_in_a_fresh_process(world: World, monkeypatch) -> None:
    gen = start_reindex(world.svc, world.b)
    assert run_reindex(world.svc, gen, max_batches=1, batch=3).status == "building"
    # a crash between the upsert and the cursor update only repeats that step
    real = reindex._advance

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("worker killed")

    monkeypatch.setattr(reindex, "_advance", crash)
    with pytest.raises(RuntimeError, match="killed"):
        reindex_step(world.svc, gen, batch=3)
    monkeypatch.setattr(reindex, "_advance", real)
    collection = world.svc.index.collection_for_version(world.b.version)
    assert sighting_points(world.svc, collection) == 6 and progress(world.svc, gen).after == 3

    svc = world.reopen()  # nothing loaded: both encoders come from their checkpoints
    done = run_reindex(svc, gen, batch=3)
    assert done.status == "live" and sighting_points(svc, collection) == N == done.points
    assert sorted(payloads(svc, collection)) == sighting_ids(svc)
    res = top(svc, 7)
    assert res.encoder_version == world.b.version
    assert res.hits[0].score == pytest.approx(1.0, abs=1e-2)


def test_sightings_ingested_during_the_reindex_reach_the_new_collection(world: World) -> None:
    svc = world.svc
    gen = start_reindex(svc, world.b)
    reindex_step(svc, gen, batch=5)
    for i in range(N, N + 3):
        ingest(svc, i)  # written to A's live collection only
    run_reindex(svc, gen, batch=5)
    new = svc.index.resolve_alias(svc.alias)
    assert sorted(payloads(svc, new)) == sighting_ids(svc) and len(sighting_ids(svc)) == N + 3
    res = top(svc, N + 1)
    assert res.hits[0].score == pytest.approx(1.0, abs=1e-2)


def test_a_crop_missing_from_the_store_is_counted_not_fatal(world: World) -> None:
    svc = world.svc
    with svc.sessions() as s:
        lost = s.scalars(select(Sighting).order_by(Sighting.id)).all()[2]
    svc.store.delete(lost.object_key)
    gen = start_reindex(svc, world.b)
    done = run_reindex(svc, gen, batch=4)
    assert done.status == "live" and done.missing == 1 and done.points == N - 1
    with svc.sessions() as s:
        assert s.get(IndexGeneration, gen).cursor["missing_ids"] == [lost.id]
    assert lost.id not in payloads(svc, done.collection)


def test_review_changes_during_the_reindex_survive_the_swap(world: World) -> None:
    svc = world.svc
    review = ReviewService(svc)
    ids = sighting_ids(svc)
    kept = review.assign(ids[0], None, "ana", label="before")  # known before the re-index
    review.assign(ids[1], kept, "ana")
    gen = start_reindex(svc, world.b)
    reindex_step(svc, gen, batch=5)  # ids[0..4] are in B's collection now
    early = review.assign(ids[2], None, "ana", label="stepped")  # mirrored into B too
    late = review.assign(ids[8], None, "ana", label="not yet stepped")  # read at its step
    review.reject(ids[1], kept, "bob")
    # a writer that knows nothing about re-indexing (only the database changes)
    with svc.sessions.begin() as s:
        crud.assign(s, ids[3], late, provenance="analyst", actor="old-api")
    review.confirm(ids[9], early, "ana")  # not stepped yet: its step reads the database
    run_reindex(svc, gen, batch=5)
    got = payloads(svc, svc.index.resolve_alias(svc.alias))
    assert {sid: got[sid].get("identity") for sid in [*ids[:4], ids[8]]} == {
        ids[0]: kept,
        ids[1]: None,
        ids[2]: early,
        ids[3]: late,
        ids[8]: late,
    }
    hits = top(svc, 8, identity_ids=[late]).hits
    assert {h.sighting_id for h in hits} == {ids[3], ids[8]}
    # The review state travels with the identity (sighting and track points alike).
    assert {sid: got[sid]["review"] for sid in ids} == {
        **{sid: "unreviewed" for sid in ids},
        **{sid: "confirmed" for sid in (ids[0], ids[2], ids[3], ids[8], ids[9])},
        ids[1]: "rejected",
    }
    confirmed = top(svc, 8, review="confirmed").hits
    assert {h.sighting_id for h in confirmed} == {ids[0], ids[2], ids[3], ids[8], ids[9]}
    assert len(top(svc, 8, review="unreviewed").hits) == N - 6


def test_refusals_and_bad_input_change_nothing(world: World) -> None:
    svc, a, b = world.svc, world.a, world.b
    live = svc.live_collection()
    with pytest.raises(ReindexRefused, match="already has a live generation"):
        start_reindex(svc, a)
    gen = start_reindex(svc, b)
    with pytest.raises(ReindexRefused, match="building") as refused:
        start_reindex(svc, b)
    assert refused.value.generation_id == gen
    with pytest.raises(ReindexError, match="does not exist"):
        reindex_step(svc, 10**6)
    with pytest.raises(ValueError, match="batch must be a positive int"):
        reindex_step(svc, gen, batch=0)
    with pytest.raises(ValueError, match="max_batches"):
        run_reindex(svc, gen, max_batches=0)
    with svc.sessions() as s:
        old = crud.live_generation(s).id  # type: ignore[union-attr]
    with pytest.raises(ReindexError, match="is live, not building"):
        reindex_step(svc, old)
    assert svc.index.resolve_alias(svc.alias) == live and sighting_points(svc, live) == N
    assert top(svc, 1).hits[0].score == pytest.approx(1.0, abs=1e-2)
    finish_reindex(svc, gen)
    with pytest.raises(ReindexError, match="retired; it cannot go live"):
        finish_reindex(svc, old)


def test_rolling_forward_to_a_retired_version_rebuilds_it(world: World) -> None:
    svc = world.svc
    run_reindex(svc, start_reindex(svc, world.b))
    back = start_reindex(svc, world.a)  # A's generation was retired by the swap
    assert progress(svc, back).status == "building" and progress(svc, back).points == 0
    done = run_reindex(svc, back)
    assert done.status == "live" and done.points == N
    assert top(svc, 5).encoder_version == world.a.version


def test_check_encoder_starts_only_when_the_configured_encoder_differs(
    world: World, ckpts: Checkpoints
) -> None:
    assert check_encoder(world.svc) is None  # configured A is live
    with world.svc.sessions() as s:
        assert s.scalar(select(IndexGeneration.id).where(IndexGeneration.status != "live")) is None
    svc = world.reopen(world.b)  # the configuration now names B
    gen = check_encoder(svc)
    assert gen is not None and progress(svc, gen).version == world.b.version
    assert check_encoder(svc) == gen  # resumed, not started twice
    assert claim_driver(svc, gen, 3600)  # nobody drives it yet: the caller queues a task
    assert not claim_driver(svc, gen, 3600)  # ... and the next beat does not queue another
    reindex_step(svc, gen, batch=2)
    assert not claim_driver(svc, gen, 3600) and claim_driver(svc, gen, -1)  # stale driver
    svc = world.reopen(load(ckpts.c))  # configuration moved on before B finished
    gen_c = check_encoder(svc)
    assert gen_c not in (None, gen)
    assert progress(svc, gen).status == "failed"
    assert run_reindex(svc, gen_c).status == "live"
    assert check_encoder(svc) is None


def test_cli_status_and_start(world: World, ckpts: Checkpoints, monkeypatch) -> None:
    from aioreid.platform.cli.index import register
    from aioreid.platform.config import get_settings

    world.svc.close()  # the local index folder is one process's at a time
    monkeypatch.setenv("AIOREID_HOME", str(world.home))
    monkeypatch.setenv("AIOREID_DATABASE__URL", world.url)
    monkeypatch.setenv("AIOREID_INDEX__BACKEND", "local")
    monkeypatch.setenv("AIOREID_STORAGE__ROOT", str(world.home / "objects"))
    monkeypatch.setenv("AIOREID_ENCODER__DEVICE", "cpu")
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    get_settings.cache_clear()
    try:
        # --async needs a runner with workers; the default (in-process) is refused before a
        # generation is started, so none is left without a driver
        queued = runner.invoke(app, ["reindex", "start", "--checkpoint", str(ckpts.b), "--async"])
        assert queued.exit_code == 2 and "AIOREID_BROKER__RUNNER='in-process'" in queued.output
        res = runner.invoke(app, ["reindex", "start", "--checkpoint", str(ckpts.b)])
        assert res.exit_code == 0, res.output
        assert '"status": "live"' in res.output
        again = runner.invoke(app, ["reindex", "start", "--checkpoint", str(ckpts.b)])
        assert again.exit_code == 2 and "already has a live generation" in again.output
        status = runner.invoke(app, ["reindex", "status", "--json"])
        assert status.exit_code == 0, status.output
        doc = json.loads(status.output)
        gens = {g["status"]: g for g in doc["generations"]}
        assert doc["live"] == gens["live"]["collection"] and gens["live"]["points"] == N
        assert set(gens) == {"live", "retired"}
        bad = runner.invoke(app, ["retention", "--days", "0"])
        assert bad.exit_code == 2 and "more than 0" in bad.output
        dry = runner.invoke(app, ["retention", "--days", "1", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        report = json.loads(dry.output)
        assert report["old_media"]["media"] == N  # recorded 2024: all old, nothing deleted
        assert report["failed_media"]["media"] == 0
        status = runner.invoke(app, ["reindex", "status"])
        assert f"points {N}" in status.output
        synced = runner.invoke(app, ["reindex", "sync-review"])
        assert synced.exit_code == 0, synced.output
        assert "0 sighting payloads updated" in synced.output  # nothing reviewed: in sync
    finally:
        get_settings.cache_clear()
    world.svc = Services.from_settings(make_settings(world.home, world.url), migrate=False)
    assert sighting_points(world.svc, world.svc.alias) == N
