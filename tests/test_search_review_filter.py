"""The review-state filter runs inside the index: pages of ``unreviewed`` or ``confirmed`` hits
are full and ``has_more`` is exact even when most of the gallery was reviewed; every review
action moves hits between states at once; confirm and reject are audited and idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from platform_fixtures import jpeg, make_services, person_image, write_video
from sqlalchemy import func, select

from aioreid.platform.db import crud
from aioreid.platform.db.models import Assignment, AuditEvent, ReviewDecision, Sighting, Track
from aioreid.platform.index import IndexPoint
from aioreid.platform.pipeline.frames import SamplingOptions
from aioreid.platform.pipeline.ingest import IngestOptions, ingest_bytes, ingest_file
from aioreid.platform.pipeline.reindex import backfill_reviews
from aioreid.platform.search.review import ReviewService
from aioreid.platform.search.schemas import Level, SearchFilters, SearchOptions
from aioreid.platform.search.service import SearchService
from aioreid.platform.services import Services

T0 = datetime(2024, 6, 1, 9, 0, tzinfo=timezone.utc)
IMAGES = 40
QUERY = {"rgb": jpeg(person_image(0))}


@dataclass
class Gallery:
    svc: Services
    search: SearchService
    review: ReviewService
    images: list[int]  # sighting ids of the single-image tracks, in ingest order
    imported: dict[str, list[int]]  # dataset label -> sightings assigned to it by the import
    video: list[int]  # the sightings of the one video track
    target: int  # the identity analysts confirm onto
    decoy: int  # the identity analysts reject


def _sighting_ids(svc: Services, media_id: int) -> list[int]:
    with svc.sessions() as s:
        return list(
            s.scalars(
                select(Sighting.id).where(Sighting.media_id == media_id).order_by(Sighting.id)
            )
        )


@pytest.fixture(scope="module")
def gallery(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[Gallery]:
    """40 single-image tracks of which 33 are reviewed (27 rejected, 6 confirmed), two
    import-labelled identities (unreviewed) and one video track of several sightings."""
    home = tmp_path_factory.mktemp("review-filter")
    svc = make_services(home, pg_url, migrate=False)
    images = []
    for i in range(IMAGES):
        res = ingest_bytes(
            svc, jpeg(person_image(i)), f"p{i}.jpg", camera=f"cam{i % 4}", start_time=T0
        )
        assert res.status == "done"
        images += _sighting_ids(svc, res.media_id)
    imported: dict[str, list[int]] = {"pair": [], "crowd": []}
    for n, label in enumerate(["pair"] * 2 + ["crowd"] * 3):
        data = jpeg(person_image(100 + n))
        res = ingest_bytes(svc, data, f"l{n}.jpg", camera="door", source_label=label)
        assert res.status == "done"
        imported[label] += _sighting_ids(svc, res.media_id)
    clip = home / "walk.mp4"
    write_video(clip, frames=24, fps=8, size=(120, 160))
    opts = IngestOptions(detector="background", sampling=SamplingOptions(sample_fps=4))
    res = ingest_file(svc, clip, camera="lobby", start_time=T0, options=opts)
    assert res.status == "done" and res.tracks == 1, res
    video = _sighting_ids(svc, res.media_id)
    assert len(video) >= 3
    review = ReviewService(svc)
    target = review.assign(images[0], None, "ana", label="suspect")
    decoy = review.assign(images[1], None, "ana", label="decoy")
    for sid in images[2:7]:
        review.confirm(sid, target, "ana")
    for sid in images[7:33]:
        review.reject(sid, decoy, "bob")
    review.reject(images[1], decoy, "bob")  # assigned, then rejected: unassigned
    yield Gallery(svc, SearchService(svc), review, images, imported, video, target, decoy)
    svc.close()


def _truth(svc: Services, level: Level) -> dict[str, set[int]]:
    """The hits each review state should page through, from the database: every sighting at
    level=sighting; at level=track each track's stand-in crop, in its track's state."""
    with svc.sessions() as s:
        if level == "sighting":
            states = crud.review_states(s, s.scalars(select(Sighting.id)))
            pairs = [(sid, st.review) for sid, st in states.items()]
        else:
            members = crud.sightings_by_track(s, list(s.scalars(select(Track.id))))
            states = crud.review_states(s, (r.id for mine in members.values() for r in mine))
            pairs = [
                (
                    crud.representative(mine).id,  # type: ignore[union-attr]
                    crud.track_review(states[r.id].review for r in mine),
                )
                for mine in members.values()
            ]
    out: dict[str, set[int]] = {"confirmed": set(), "rejected": set(), "unreviewed": set()}
    for sid, state in pairs:
        out[state].add(sid)
    return out


def _page_through(
    g: Gallery, review: str, level: Level, limit: int, *, full: bool = True, **flt: object
) -> list[int]:
    """Every hit of a review state, page by page; with ``full``, every page but the last is
    full (``has_more`` is true exactly until the last)."""
    ids: list[int] = []
    offset = 0
    while True:
        res = g.search.search(
            QUERY,
            SearchFilters(review=review, **flt),  # type: ignore[arg-type]
            SearchOptions(limit=limit, offset=offset, level=level),
        )
        assert all(h.review == review for h in res.hits)
        ids += [h.sighting_id for h in res.hits]
        if not res.has_more:
            # the last page holds what is left: something, unless nothing matched at all
            assert res.hits or offset == 0 or not full, f"empty last page at {offset}"
            break
        assert len(res.hits) == limit or not full, f"short page at {offset} with has_more"
        offset += limit
    assert len(ids) == len(set(ids)), "a hit came back twice"
    return ids


@pytest.mark.parametrize("level", ["track", "sighting"])
@pytest.mark.parametrize("review", ["unreviewed", "confirmed"])
def test_paging_a_review_state_returns_every_match_once(
    gallery: Gallery, review: str, level: Level
) -> None:
    truth = _truth(gallery.svc, level)
    expected = truth[review]
    # sparse: most of the gallery is in other states, as in an analyst's late queue
    assert 3 <= len(expected) <= sum(map(len, truth.values())) // 2
    for limit in (2, 5):
        assert set(_page_through(gallery, review, level, limit)) == expected


def test_each_review_action_changes_the_filter_at_once(gallery: Gallery) -> None:
    g, review = gallery, gallery.review

    def state(sid: int, level: Level = "sighting") -> str:
        found = [r for r in ("confirmed", "unreviewed") if sid in _page_through(g, r, level, 4)]
        assert len(found) <= 1
        return found[0] if found else "rejected"

    fresh = g.images[35]
    assert state(fresh) == "unreviewed"
    review.confirm(fresh, g.target, "ana")
    assert state(fresh) == "confirmed" and state(fresh, "track") == "confirmed"
    review.reject(fresh, g.target, "bob")
    assert state(fresh) == "rejected" and state(fresh, "track") == "rejected"
    # merge: import labels were unreviewed; moved by an analyst they are confirmed
    pair = g.imported["pair"]
    with g.svc.sessions() as s:
        labelled = crud.active_identity_of(s, pair[0]).id  # type: ignore[union-attr]
    assert [state(sid) for sid in pair] == ["unreviewed", "unreviewed"]
    review.merge(g.target, [labelled], "ana")
    assert [state(sid) for sid in pair] == ["confirmed", "confirmed"]
    # split: the sightings split off are confirmed, the rest of the label stays unreviewed
    crowd = g.imported["crowd"]
    with g.svc.sessions() as s:
        crowd_id = crud.active_identity_of(s, crowd[0]).id  # type: ignore[union-attr]
    new = review.split(crowd_id, [crowd[2]], "ana")
    assert [state(sid) for sid in crowd] == ["unreviewed", "unreviewed", "confirmed"]
    mine = _page_through(g, "confirmed", "sighting", 4, identity_ids=[new])
    assert mine == [crowd[2]]


def test_a_track_is_reviewed_when_any_of_its_crops_is(gallery: Gallery) -> None:
    g, review = gallery, gallery.review
    with g.svc.sessions() as s:
        stand_in = crud.representative(
            list(s.scalars(select(Sighting).where(Sighting.id.in_(g.video))))
        ).id  # type: ignore[union-attr]
    other = next(sid for sid in g.video if sid != stand_in)
    assert stand_in in _page_through(g, "unreviewed", "track", 3)
    review.confirm(other, g.target, "ana")  # not the crop that stands for the track
    confirmed = g.search.search(
        QUERY, SearchFilters(review="confirmed"), SearchOptions(limit=50)
    ).hits
    hit = next(h for h in confirmed if h.track is not None and h.sighting_id == stand_in)
    assert hit.review == "confirmed" and stand_in not in _page_through(g, "unreviewed", "track", 3)
    # Review splits the track between identities: an identity filter finds it through either.
    other_identity = review.assign(stand_in, None, "ana", label="someone else")
    for ident in (g.target, other_identity):
        res = g.search.search(QUERY, SearchFilters(identity_ids=[ident]), SearchOptions(limit=50))
        assert stand_in in {h.sighting_id for h in res.hits}


def _counts(svc: Services, sid: int) -> tuple[int, int, int]:
    """(decision rows, audit events, assignment rows) about one sighting."""
    with svc.sessions() as s:

        def n(stmt) -> int:  # type: ignore[no-untyped-def]
            return int(s.scalar(select(func.count()).select_from(stmt.subquery())) or 0)

        return (
            n(select(ReviewDecision).where(ReviewDecision.sighting_id == sid)),
            n(
                select(AuditEvent).where(
                    AuditEvent.entity == "sighting", AuditEvent.entity_id == str(sid)
                )
            ),
            n(select(Assignment).where(Assignment.sighting_id == sid)),
        )


def test_confirm_and_reject_are_audited_and_idempotent(gallery: Gallery) -> None:
    g, review = gallery, gallery.review
    sid = g.images[37]
    assert _counts(g.svc, sid) == (0, 0, 0)
    review.confirm(sid, g.target, "ana", note="same coat")
    review.confirm(sid, g.target, "ana", note="same coat")  # a double click
    assert _counts(g.svc, sid) == (1, 1, 1)
    review.reject(sid, g.target, "bob")
    review.reject(sid, g.target, "bob")
    assert _counts(g.svc, sid) == (2, 2, 1)
    review.confirm(sid, g.target, "ana")  # changing one's mind again is no repeat
    assert _counts(g.svc, sid) == (3, 3, 2)
    with g.svc.sessions() as s:
        events = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity == "sighting", AuditEvent.entity_id == str(sid))
            .order_by(AuditEvent.id)
        ).all()
        assert [(e.action, e.actor, (e.details or {})["identity"]) for e in events] == [
            ("confirm", "ana", g.target),
            ("reject", "bob", g.target),
            ("confirm", "ana", g.target),
        ]
        # A reject also records what an undo needs: its decision and the assignment it ended.
        assert {"decision", "deactivated", "active_after"} <= set(events[1].details or {})
        actions = set(s.scalars(select(AuditEvent.action)))
    assert {"assign", "confirm", "reject"} <= actions
    # a reject of an identity the sighting is not on, repeated, is recorded once
    lone = g.images[38]
    review.reject(lone, g.decoy, "bob")
    review.reject(lone, g.decoy, "bob")
    assert _counts(g.svc, lone) == (1, 1, 0)


def test_points_indexed_before_review_states_count_as_unreviewed_until_backfilled(
    gallery: Gallery,
) -> None:
    g = gallery
    svc = g.svc
    confirmed, unreviewed = g.images[3], g.images[39]
    with svc.sessions() as s:
        rows = {r.id: r for r in s.scalars(select(Sighting).where(Sighting.track_id.is_not(None)))}
        tracks = {t.id: t.point_id for t in s.scalars(select(Track))}
    live = svc.live_collection()
    old = [rows[confirmed].point_id, tracks[rows[confirmed].track_id]]  # type: ignore[index]
    old += [rows[unreviewed].point_id, tracks[rows[unreviewed].track_id]]  # type: ignore[index]
    # Rewrite them as an older release did: no ``review`` in the payload.
    svc.index.upsert(
        live,
        [
            IndexPoint(p.id, p.vector, {k: v for k, v in p.payload.items() if k != "review"})
            for p in svc.index.retrieve(live, old, with_vectors=True)
        ],
    )
    assert all("review" not in p.payload for p in svc.index.retrieve(live, old))
    for level in ("track", "sighting"):
        # The stale confirmed point still matches "unreviewed" in the index: the database
        # check leaves it out of its page (one short), never shows it mislabelled.
        pending = _page_through(g, "unreviewed", level, 5, full=False)  # type: ignore[arg-type]
        assert unreviewed in pending and confirmed not in pending
        assert confirmed not in _page_through(g, "confirmed", level, 5)  # type: ignore[arg-type]
    assert backfill_reviews(svc) == 1
    assert backfill_reviews(svc) == 0  # in sync now
    for level in ("track", "sighting"):
        assert confirmed in _page_through(g, "confirmed", level, 5)  # type: ignore[arg-type]
        assert unreviewed in _page_through(g, "unreviewed", level, 5)  # type: ignore[arg-type]
    stored = {p.id: p.payload.get("review") for p in svc.index.retrieve(live, old)}
    assert [stored[p] for p in old[:2]] == ["confirmed", "confirmed"]


def test_ingest_writes_the_initial_state(gallery: Gallery) -> None:
    svc = gallery.svc
    res = ingest_bytes(svc, jpeg(person_image(500)), "late.jpg", start_time=T0 + timedelta(hours=1))
    sid = _sighting_ids(svc, res.media_id)[0]
    with svc.sessions() as s:
        row = s.get(Sighting, sid)
        points = [row.point_id, s.get(Track, row.track_id).point_id]  # type: ignore[union-attr]
    got = svc.index.retrieve(svc.live_collection(), points)
    assert [p.payload["review"] for p in got] == ["unreviewed", "unreviewed"]
