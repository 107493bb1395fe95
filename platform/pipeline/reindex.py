"""Zero-downtime re-indexing: build a new encoder's collection beside the live one, then swap.

    gen = start_reindex(svc, new_encoder)   # new collection + a ``building`` generation
    run_reindex(svc, gen)                   # steps over sightings in id order, then finishes

Search keeps reading the alias (the old collection, with the old encoder) until
:func:`finish_reindex` points it at the new collection in one atomic step. Each step stores the
generation's cursor (the last sighting id done), so an interrupted re-index resumes where it
stopped; steps are idempotent (the point id of a sighting never changes), so a crash between an
upsert and the cursor update only repeats work.

Review payloads (``identity`` and the ``review`` state) come from the database at step time.
Review changes made while a generation builds reach it three ways: the review service mirrors
them into building collections too; each step re-reads the review states of its batch after
upserting, closing the gap between its read and its write; and after the swap, every sighting
whose assignment or review decisions changed since the generation started is compared with the
new collection and fixed. :func:`backfill_reviews` writes the review state into a collection
indexed before the payload carried it.

Sightings ingested during the re-index have ids past the cursor and are picked up by later
steps, by the catch-up before the swap, or by the catch-up after it; one that an ingest still
wrote to the old collection after that is repaired by :func:`catch_up_live` (the beat).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import sqlalchemy as sa

from aioreid.encoder.inference import Encoder, EncoderInputError
from aioreid.platform.db import crud
from aioreid.platform.db.enums import GenerationStatus, Provenance
from aioreid.platform.db.errors import AlreadyExistsError
from aioreid.platform.db.models import (
    Assignment,
    IndexGeneration,
    ReviewDecision,
    Sighting,
)
from aioreid.platform.index import IndexPoint, SearchFilter
from aioreid.platform.pipeline.ingest import sighting_payload, track_points, write_reviews
from aioreid.platform.services import Services
from aioreid.platform.storage import ObjectNotFound

log = logging.getLogger(__name__)

DEFAULT_BATCH = 256
MISSING_IDS_KEPT = 100  # sighting ids of missing crops remembered on the cursor
RESYNC_MARGIN = timedelta(minutes=10)  # clock skew allowance between workers


class ReindexError(RuntimeError):
    """A re-index that cannot go on (unknown generation, wrong state)."""


class ReindexRefused(ReindexError):
    """A re-index that must not start: its encoder version is already live or building."""

    def __init__(self, message: str, generation_id: int) -> None:
        super().__init__(message)
        self.generation_id = generation_id


@dataclass(frozen=True)
class ReindexProgress:
    """Where a generation stands; ``remaining`` counts sightings past its cursor."""

    generation_id: int
    collection: str
    version: str
    status: str
    after: int
    points: int
    missing: int
    remaining: int
    heartbeat: float | None = None

    @property
    def caught_up(self) -> bool:
        return self.remaining == 0


@dataclass(frozen=True)
class _Gen:
    id: int
    collection: str
    version: str
    status: GenerationStatus
    cursor: dict[str, Any]
    created_at: Any

    @property
    def after(self) -> int:
        return int(self.cursor.get("after", 0))


def _load(svc: Services, generation_id: int) -> _Gen:
    with svc.sessions() as s:
        row = s.get(IndexGeneration, generation_id)
        if row is None:
            raise ReindexError(f"index generation {generation_id} does not exist")
        return _Gen(
            row.id,
            row.collection,
            row.encoder_version.version,
            GenerationStatus(row.status),
            dict(row.cursor or {}),
            row.created_at,
        )


# --- start ---------------------------------------------------------------------------------


def _fresh_cursor() -> dict[str, Any]:
    return {"after": 0, "started": time.time()}


def start_reindex(svc: Services, encoder: Encoder) -> int:
    """Register ``encoder``, create its collection and a ``building`` generation; returns its id.

    Refused (:class:`ReindexRefused`) when that version's generation is live or building. A
    retired or failed generation of the version is rebuilt from scratch: its collection is
    dropped (nothing searches it) and the row goes back to ``building``.
    """
    version_id = svc.register_encoder(encoder)
    name = svc.index.collection_for_version(encoder.version)
    quantization = svc.settings.index.quantization
    with svc.sessions.begin() as s:
        gen = s.scalar(
            sa.select(IndexGeneration).where(IndexGeneration.collection == name).with_for_update()
        )
        reset = gen is not None
        if gen is not None:
            if gen.status in (GenerationStatus.LIVE, GenerationStatus.BUILDING):
                raise ReindexRefused(
                    f"encoder {encoder.version} already has a {gen.status} generation "
                    f"({gen.id}, collection {name!r})",
                    gen.id,
                )
            # retired -> building is not a crud transition: this is a rebuild, not a rollback
            gen.status = GenerationStatus.BUILDING
            gen.points, gen.cursor, gen.live_at = 0, _fresh_cursor(), None
            gen_id = gen.id
    try:
        if reset:
            svc.index.drop_collection(name, missing_ok=True)
        svc.index.create_collection(name, encoder.dim, quantization=quantization)
    except Exception:
        if reset:  # leave it restartable instead of building without a collection
            with svc.sessions.begin() as s:
                crud.set_generation_status(s, gen_id, GenerationStatus.FAILED)
        raise
    if reset:
        log.info("re-index: rebuilding generation %s (%s) from scratch", gen_id, name)
        return gen_id
    try:
        with svc.sessions.begin() as s:
            gen = crud.create_generation(s, encoder_version_id=version_id, collection=name)
            gen.cursor = _fresh_cursor()
            gen_id = gen.id
    except AlreadyExistsError as exc:  # another process started it a moment ago
        raise ReindexRefused(
            f"encoder {encoder.version} is already being re-indexed", exc.existing_id or -1
        ) from exc
    log.info("re-index: generation %s started for %s in %s", gen_id, encoder.version, name)
    return gen_id


# --- steps ---------------------------------------------------------------------------------


def _embed(encoder: Encoder, items: list[tuple[Sighting, bytes]]) -> dict[int, np.ndarray]:
    """One batched pass per modality; a batch with an unreadable crop is retried one by one."""
    by_modality: dict[str, list[tuple[Sighting, bytes]]] = {}
    for row, data in items:
        by_modality.setdefault(str(row.modality), []).append((row, data))
    out: dict[int, np.ndarray] = {}
    for modality, group in by_modality.items():
        try:
            vectors = encoder.embed([data for _, data in group], modality)
        except EncoderInputError:
            for row, data in group:
                try:
                    out[row.id] = encoder.embed([data], modality)[0]
                except EncoderInputError as exc:
                    log.warning("re-index: sighting %s crop is unreadable: %s", row.id, exc)
            continue
        out.update({row.id: vec for (row, _), vec in zip(group, vectors, strict=True)})
    return out


def _step(svc: Services, gen: _Gen, batch: int, *, only_missing: bool) -> int:
    """Embed and upsert the next ``batch`` sightings after the cursor; returns how many were
    handled (0: caught up). ``only_missing`` skips sightings already in the collection (a
    live collection, which ingest writes to directly)."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    encoder = svc.encoder_for(gen.version)
    with svc.sessions() as s:
        rows = list(
            s.scalars(
                sa.select(Sighting)
                .where(Sighting.id > gen.after)
                .order_by(Sighting.id)
                .limit(batch)
            )
        )
        states = crud.review_states(s, (r.id for r in rows))
        s.expunge_all()
    if not rows:
        return 0
    todo = rows
    if only_missing:
        present = {p.id for p in svc.index.retrieve(gen.collection, [r.point_id for r in rows])}
        todo = [r for r in rows if r.point_id not in present]
    items: list[tuple[Sighting, bytes]] = []
    missing: list[int] = []
    for row in todo:
        try:
            items.append((row, svc.store.get_bytes(row.object_key)))
        except ObjectNotFound:
            log.warning("re-index: crop %s of sighting %s is missing", row.object_key, row.id)
            missing.append(row.id)
    vectors = _embed(encoder, items)
    missing += [row.id for row, _ in items if row.id not in vectors]
    written = {row.point_id: states[row.id] for row, _ in items if row.id in vectors}
    points = [
        IndexPoint(row.point_id, vectors[row.id], _payload(row, states[row.id]))
        for row, _ in items
        if row.id in vectors
    ]
    if points:
        svc.index.upsert(gen.collection, points)
        _settle(svc, gen.collection, written, rows)
    # A track's pooled point once all its sightings are in (a track split by the batch
    # boundary gets it in the next step).
    pooled = track_points(svc, gen.collection, [r.track_id for r in rows if r.track_id])
    if pooled:
        svc.index.upsert(gen.collection, pooled)
    sightings_in = svc.index.count(gen.collection, SearchFilter(level="sighting"))
    _advance(svc, gen.id, rows[-1].id, missing, count=sightings_in)
    return len(rows)


def _payload(row: Sighting, state: crud.ReviewState) -> dict[str, Any]:
    return sighting_payload(row, state.identity, review=state.review)


def _settle(
    svc: Services,
    collection: str,
    written: dict[str, crud.ReviewState],
    rows: Sequence[Sighting],
) -> None:
    """After an upsert: fix the review states a review changed between this step's read and
    its write (the review mirror missed those points), and drop points of sightings that
    retention deleted meanwhile."""
    ids = [r.id for r in rows]
    with svc.sessions() as s:
        now = crud.review_states(s, ids)
        alive = set(s.scalars(sa.select(Sighting.id).where(Sighting.id.in_(ids))))
    gone = [r.point_id for r in rows if r.point_id in written and r.id not in alive]
    if gone:
        svc.index.delete(collection, gone)
    changes = {
        r.point_id: now[r.id]
        for r in rows
        if r.point_id in written and r.id in alive and written[r.point_id] != now[r.id]
    }
    write_reviews(svc, collection, changes)


def _advance(svc: Services, generation_id: int, after: int, missing: list[int], count: int) -> None:
    """Move the cursor forward (never back: two workers may run the same step)."""
    with svc.sessions.begin() as s:
        gen = s.get(IndexGeneration, generation_id, with_for_update=True)
        assert gen is not None
        cursor = dict(gen.cursor or {})
        if after > int(cursor.get("after", 0)):
            cursor["after"] = after
            cursor["missing"] = int(cursor.get("missing", 0)) + len(missing)
            if missing:
                kept = list(cursor.get("missing_ids", [])) + missing
                cursor["missing_ids"] = kept[-MISSING_IDS_KEPT:]
        cursor["heartbeat"] = time.time()
        crud.set_generation_status(s, gen.id, gen.status, points=count, cursor=cursor)


def reindex_step(svc: Services, generation_id: int, batch: int = DEFAULT_BATCH) -> int:
    """Re-index the next ``batch`` sightings (id order) of a building generation with its own
    encoder; returns how many sightings were handled, 0 when caught up. A crop missing from
    the store is counted on the cursor (``missing``, ``missing_ids``) and skipped."""
    gen = _load(svc, generation_id)
    if gen.status is not GenerationStatus.BUILDING:
        raise ReindexError(f"generation {generation_id} is {gen.status}, not building")
    return _step(svc, gen, batch, only_missing=False)


# --- finish --------------------------------------------------------------------------------


def _catch_up(svc: Services, generation_id: int, batch: int, *, only_missing: bool) -> int:
    done = 0
    while n := _step(svc, _load(svc, generation_id), batch, only_missing=only_missing):
        done += n
    return done


def finish_reindex(
    svc: Services, generation_id: int, batch: int = DEFAULT_BATCH
) -> ReindexProgress:
    """Catch up, swap the alias, mark the generation live (the old one retired), then catch up
    once more and re-sync identities changed during the re-index. Calling it again on a
    generation that is already live only repeats the after-swap passes."""
    gen = _load(svc, generation_id)
    if gen.status is GenerationStatus.BUILDING:
        _catch_up(svc, generation_id, batch, only_missing=False)
        # Build the HNSW graph before search moves over (Qdrant Edge has no background
        # optimizer; unoptimised segments are scanned exactly).
        svc.index.optimize(gen.collection)
        svc.index.set_alias(svc.alias, gen.collection)  # search follows from here on
        with svc.sessions.begin() as s:
            crud.set_generation_status(s, gen.id, GenerationStatus.LIVE)
            crud.activate_encoder_version(s, gen.version)
        log.info("re-index: generation %s (%s) is live", gen.id, gen.collection)
    elif gen.status is GenerationStatus.LIVE:
        if svc.index.resolve_alias(svc.alias) != gen.collection:
            raise ReindexError(f"generation {gen.id} is marked live but the alias points elsewhere")
    else:
        raise ReindexError(f"generation {generation_id} is {gen.status}; it cannot go live")
    _catch_up(svc, generation_id, batch, only_missing=True)
    fixed = resync_reviews(svc, generation_id)
    if fixed:
        log.info("re-index: %s review payloads re-synced after the swap", fixed)
    return progress(svc, generation_id)


def resync_reviews(svc: Services, generation_id: int) -> int:
    """Make the generation's review payloads match the database for every sighting whose
    assignment or review decisions changed since the generation started; returns how many
    payloads changed. Cheap: it reads only those sightings."""
    gen = _load(svc, generation_id)
    started = gen.cursor.get("started")
    begun = datetime.fromtimestamp(float(started), timezone.utc) if started else gen.created_at
    since = begun - RESYNC_MARGIN
    touched = sa.select(Assignment.sighting_id).where(Assignment.created_at >= since)
    decided = sa.select(ReviewDecision.sighting_id).where(ReviewDecision.created_at >= since)
    return _sync_reviews(svc, gen.collection, touched.union(decided))


def backfill_reviews(svc: Services) -> int:
    """Write the review state of every sighting an analyst reviewed (and of its track) into the
    live collection, and add the payload indexes it lacks; returns how many sighting payloads
    changed. For collections indexed before the payload carried ``review``: their points count
    as unreviewed until then (``aioreid reindex sync-review``). Safe to repeat."""
    collection = svc.index.resolve_alias(svc.alias)
    if collection is None:
        return 0
    # A no-op for an existing collection but for the payload indexes it lacks.
    svc.index.create_collection(collection, svc.index.info(collection).dim)
    analyst = sa.select(Assignment.sighting_id).where(Assignment.provenance == Provenance.ANALYST)
    decided = sa.select(ReviewDecision.sighting_id)
    return _sync_reviews(svc, collection, analyst.union(decided))


def _sync_reviews(svc: Services, collection: str, sighting_ids: sa.CompoundSelect) -> int:
    """Make the review payloads of the sightings ``sighting_ids`` selects match the database
    in ``collection`` (points it lacks are skipped); returns how many changed."""
    with svc.sessions() as s:
        chosen = sighting_ids.subquery()
        pairs = list(
            s.execute(
                sa.select(Sighting.id, Sighting.point_id)
                .where(Sighting.id.in_(sa.select(chosen.c[0])))
                .order_by(Sighting.id)
            )
        )
    fixed = 0
    for start in range(0, len(pairs), DEFAULT_BATCH):
        chunk = pairs[start : start + DEFAULT_BATCH]
        with svc.sessions() as s:
            now = crud.review_states(s, (sid for sid, _ in chunk))
        stored = {
            p.id: (p.payload.get("identity"), p.payload.get("review"))  # a ReviewState's fields
            for p in svc.index.retrieve(collection, [pid for _, pid in chunk])
        }
        changes = {pid: now[sid] for sid, pid in chunk if pid in stored and stored[pid] != now[sid]}
        write_reviews(svc, collection, changes)
        fixed += len(changes)
    return fixed


def run_reindex(
    svc: Services,
    generation_id: int,
    *,
    max_batches: int | None = None,
    batch: int = DEFAULT_BATCH,
    on_step: Callable[[int], None] | None = None,
) -> ReindexProgress:
    """Step until caught up, then finish. With ``max_batches`` it stops after that many steps
    (still ``building`` unless it caught up); calling it again resumes from the stored cursor.
    ``on_step`` receives the number of sightings of each step (progress bars)."""
    if max_batches is not None and (isinstance(max_batches, bool) or max_batches < 1):
        raise ValueError(f"max_batches must be a positive int or None, got {max_batches!r}")
    gen = _load(svc, generation_id)
    if gen.status is GenerationStatus.BUILDING:
        steps = 0
        while max_batches is None or steps < max_batches:
            n = reindex_step(svc, generation_id, batch)
            steps += 1
            if on_step is not None and n:
                on_step(n)
            if n < batch:  # reached the newest sighting
                return finish_reindex(svc, generation_id, batch)
        return progress(svc, generation_id)
    if gen.status is GenerationStatus.LIVE:
        return finish_reindex(svc, generation_id, batch)
    raise ReindexError(f"generation {generation_id} is {gen.status}; nothing to run")


# --- beat ----------------------------------------------------------------------------------


def check_encoder(svc: Services) -> int | None:
    """The beat's logic: when the configured encoder is not the live generation's, start a
    re-index for it (or return the one already building). Generations still building for other
    versions (the configuration moved on) are marked failed. None: nothing to do."""
    encoder = svc.encoder
    with svc.sessions.begin() as s:
        live = crud.live_generation(s)
        if live is None:
            return None  # nothing serves yet: the first search or ingest bootstraps it
        if live.encoder_version.version == encoder.version:
            return None
        building = list(
            s.scalars(
                sa.select(IndexGeneration).where(
                    IndexGeneration.status == GenerationStatus.BUILDING
                )
            )
        )
        for gen in building:
            if gen.encoder_version.version == encoder.version:
                return gen.id
            log.warning("re-index: generation %s superseded by %s", gen.id, encoder.version)
            crud.set_generation_status(s, gen.id, GenerationStatus.FAILED)
    try:
        return start_reindex(svc, encoder)
    except ReindexRefused as exc:  # a concurrent beat started it
        return exc.generation_id


def claim_driver(svc: Services, generation_id: int, stale_after_s: float) -> bool:
    """True (and the heartbeat set to now) when a building generation has no task driving it:
    never stepped nor queued, or silent for ``stale_after_s`` seconds (a worker died and its
    task was not redelivered). The row is locked, so two beats never both claim it."""
    with svc.sessions.begin() as s:
        gen = s.get(IndexGeneration, generation_id, with_for_update=True)
        if gen is None or gen.status != GenerationStatus.BUILDING:
            return False
        cursor = dict(gen.cursor or {})
        beat = cursor.get("heartbeat")
        if beat is not None and time.time() - float(beat) <= stale_after_s:
            return False
        cursor["heartbeat"] = time.time()
        gen.cursor = cursor
        return True


def catch_up_live(svc: Services, *, max_batches: int = 8, batch: int = DEFAULT_BATCH) -> int:
    """Embed sightings past the live generation's cursor that its collection lacks (an ingest
    that resolved the old alias just before a swap wrote them to the old collection). Only
    generations built by a re-index have a cursor; returns how many sightings were checked."""
    with svc.sessions() as s:
        live = crud.live_generation(s)
        if live is None or not live.cursor:
            return 0
        generation_id = live.id
    done = 0
    for _ in range(max_batches):
        n = _step(svc, _load(svc, generation_id), batch, only_missing=True)
        done += n
        if n < batch:
            break
    return done


# --- reading -------------------------------------------------------------------------------


def progress(svc: Services, generation_id: int) -> ReindexProgress:
    gen = _load(svc, generation_id)
    return _progress_of(svc, gen)


def _progress_of(svc: Services, gen: _Gen) -> ReindexProgress:
    with svc.sessions() as s:
        remaining = s.scalar(
            sa.select(sa.func.count()).select_from(Sighting).where(Sighting.id > gen.after)
        )
        points = s.scalar(sa.select(IndexGeneration.points).where(IndexGeneration.id == gen.id))
    beat = gen.cursor.get("heartbeat")
    return ReindexProgress(
        generation_id=gen.id,
        collection=gen.collection,
        version=gen.version,
        status=str(gen.status),
        after=gen.after,
        points=int(points or 0),
        missing=int(gen.cursor.get("missing", 0)),
        remaining=int(remaining),
        heartbeat=float(beat) if beat is not None else None,
    )


def generations(svc: Services) -> list[ReindexProgress]:
    """Every index generation, oldest first."""
    with svc.sessions() as s:
        ids = list(s.scalars(sa.select(IndexGeneration.id).order_by(IndexGeneration.id)))
    return [progress(svc, i) for i in ids]
