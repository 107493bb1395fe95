"""Search and review services on Postgres + an in-process index with a tiny encoder."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from platform_fixtures import jpeg, make_services, person_image
from sqlalchemy import select

from aioreid.platform.db.models import AuditEvent, Identity, ReviewDecision
from aioreid.platform.pipeline.ingest import ingest_bytes
from aioreid.platform.search.review import ReviewError, ReviewService
from aioreid.platform.search.schemas import SearchFilters, SearchOptions
from aioreid.platform.search.service import NotFound, QueryError, SearchService
from aioreid.platform.services import Services

T0 = datetime(2024, 6, 1, 9, 0, tzinfo=timezone.utc)
N = 24


@pytest.fixture(scope="module")
def svc(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread
) -> Iterator[Services]:
    s = make_services(tmp_path_factory.mktemp("search"), pg_url, migrate=False)
    for i in range(N):
        res = ingest_bytes(
            s,
            jpeg(person_image(i)),
            f"p{i}.jpg",
            camera=f"cam{i % 3}",
            start_time=T0 + timedelta(minutes=i),
            attributes={"bag": "yes" if i % 2 else "no"},
        )
        assert res.status == "done"
    yield s
    s.close()


@pytest.fixture(scope="module")
def search(svc: Services) -> SearchService:
    return SearchService(svc)


def _sighting_of(search: SearchService, i: int) -> int:
    return search.search({"rgb": jpeg(person_image(i))}).hits[0].sighting_id


def test_a_stored_crop_finds_itself_first(search: SearchService) -> None:
    res = search.search({"rgb": jpeg(person_image(7))}, options=SearchOptions(limit=5))
    top = res.hits[0]
    assert top.score == pytest.approx(1.0, abs=1e-3)
    assert top.camera == "cam1" and top.time == T0 + timedelta(minutes=7)
    assert top.part_scores == {"rgb": pytest.approx(top.score, abs=1e-3)}
    assert top.best_part == "rgb" and top.url
    assert [h.score for h in res.hits] == sorted((h.score for h in res.hits), reverse=True)
    assert len(res.hits) == 5 and res.has_more


def test_combined_query_reports_each_part(search: SearchService) -> None:
    res = search.search({"text": "a man with a red bag", "sketch": person_image(3)})
    assert res.query_parts == ["text", "sketch"]
    for hit in res.hits:
        assert set(hit.part_scores) == {"text", "sketch"}
        assert hit.best_part == max(hit.part_scores, key=hit.part_scores.__getitem__)


def test_filters_restrict_hits(search: SearchService, svc: Services) -> None:
    with svc.sessions() as s:
        from aioreid.platform.db.models import Camera

        cam1 = s.scalar(select(Camera.id).where(Camera.name == "cam1"))
    flt = SearchFilters(
        cameras=[cam1],
        time_from=T0 + timedelta(minutes=5),
        time_to=T0 + timedelta(minutes=20),
        attributes={"bag": "yes"},
    )
    res = search.search({"text": "anyone"}, flt, SearchOptions(limit=50))
    minutes = sorted(int((h.time - T0).total_seconds() // 60) for h in res.hits)
    # cam1 holds i % 3 == 1; bag yes: i odd; minutes 5..20 -> 7, 13, 19
    assert minutes == [7, 13, 19]


def test_threshold_and_pagination(search: SearchService) -> None:
    q = {"rgb": jpeg(person_image(2))}
    everything = search.search(q, options=SearchOptions(limit=N)).hits
    assert len(everything) == N
    cut = everything[5].score - 1e-4  # scores are rounded to 5 decimals
    above = search.search(q, options=SearchOptions(limit=N, threshold=cut)).hits
    assert all(h.score >= cut - 1e-6 for h in above) and len(above) >= 6
    pages = [search.search(q, options=SearchOptions(limit=10, offset=o)) for o in (0, 10, 20)]
    ids = [h.sighting_id for p in pages for h in p.hits]
    assert ids == [h.sighting_id for h in everything]
    assert [p.has_more for p in pages] == [True, True, False]


def test_malformed_queries_are_clear(search: SearchService) -> None:
    with pytest.raises(QueryError, match="at least one part"):
        search.search({})
    with pytest.raises(QueryError, match="unknown query part 'audio'"):
        search.search({"audio": b"..."})
    with pytest.raises(QueryError, match="not a decodable image"):
        search.search({"rgb": b"not an image"})
    with pytest.raises(QueryError, match="non-empty"):
        search.search({"text": "   "})
    with pytest.raises(ValueError, match="time_to is before time_from"):
        SearchFilters(time_from=T0, time_to=T0 - timedelta(days=1))


def test_find_similar_leaves_out_the_sighting_itself(search: SearchService) -> None:
    sid = _sighting_of(search, 4)
    res = search.find_similar(sid, options=SearchOptions(limit=N))
    assert sid not in [h.sighting_id for h in res.hits] and len(res.hits) == N - 1
    with pytest.raises(NotFound):
        search.find_similar(10**9)


def test_review_changes_search_at_once(search: SearchService, svc: Services) -> None:
    review = ReviewService(svc)
    a, b, c = (_sighting_of(search, i) for i in (10, 11, 12))
    ident = review.assign(a, None, "ana", label="suspect-1")
    review.confirm(b, ident, "ana", note="same coat")
    review.confirm(c, ident, "ana")
    res = search.search(
        {"rgb": jpeg(person_image(10))},
        SearchFilters(identity_ids=[ident]),
        SearchOptions(limit=10),
    )
    assert {h.sighting_id for h in res.hits} == {a, b, c}
    assert all(h.review == "confirmed" and h.identity_id == ident for h in res.hits)
    review.reject(c, ident, "bob", note="different shoes")
    res = search.search({"rgb": jpeg(person_image(12))}, options=SearchOptions(for_identity=ident))
    assert c not in [h.sighting_id for h in res.hits]
    res = search.search({"rgb": jpeg(person_image(12))}, SearchFilters(identity_ids=[ident]))
    assert {h.sighting_id for h in res.hits} == {a, b}
    confirmed = search.search(
        {"rgb": jpeg(person_image(12))}, SearchFilters(review="confirmed"), SearchOptions(limit=N)
    )
    assert {h.sighting_id for h in confirmed.hits} == {a, b}
    page = review.identity(ident)
    assert [s["sighting_id"] for s in page["sightings"]] == [a, b]
    with svc.sessions() as s:
        decisions = s.scalars(
            select(ReviewDecision).where(ReviewDecision.identity_id == ident)
        ).all()
        assert sorted((d.sighting_id, d.decision, d.actor) for d in decisions) == sorted(
            [(b, "confirm", "ana"), (c, "confirm", "ana"), (c, "reject", "bob")]
        )
        assert all(d.created_at is not None for d in decisions)


def test_merge_and_split(search: SearchService, svc: Services) -> None:
    review = ReviewService(svc)
    s1, s2, s3 = (_sighting_of(search, i) for i in (15, 16, 17))
    x = review.assign(s1, None, "ana")
    y = review.assign(s2, None, "ana")
    review.assign(s3, y, "ana")
    moved = review.merge(x, [y], "ana")
    assert moved == 2
    grouped = search.search(
        {"rgb": jpeg(person_image(15))},
        SearchFilters(identity_ids=[x]),
        SearchOptions(group_by_identity=True),
    )
    assert grouped.groups is not None and len(grouped.groups) == 1
    assert {h.sighting_id for h in grouped.groups[0].hits} == {s1, s2, s3}
    with pytest.raises(ReviewError, match="merged into"):
        review.assign(s1, y, "ana")
    with pytest.raises(ReviewError, match="into itself"):
        review.merge(x, [x], "ana")
    z = review.split(x, [s3], "bob", label="not the same")
    assert [s["sighting_id"] for s in review.identity(z)["sightings"]] == [s3]
    assert {s["sighting_id"] for s in review.identity(x)["sightings"]} == {s1, s2}
    with pytest.raises(ReviewError, match="not on identity"):
        review.split(x, [s3], "bob")
    with svc.sessions() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert "merge" in actions and "split" in actions
        assert s.get(Identity, y).merged_into_id == x  # type: ignore[union-attr]


def test_search_many_answers_like_one_by_one(search: SearchService) -> None:
    queries = [{"text": f"person number {i}", "sketch": person_image(i)} for i in range(3)]
    many = search.search_many(queries, options=SearchOptions(limit=5))
    for q, res in zip(queries, many, strict=True):
        one = search.search(q, options=SearchOptions(limit=5))
        assert [h.sighting_id for h in res.hits] == [h.sighting_id for h in one.hits]
        assert [h.score for h in res.hits] == pytest.approx([h.score for h in one.hits], abs=1e-4)
        assert res.query_parts == ["text", "sketch"]
    with pytest.raises(QueryError, match="same parts"):
        search.search_many([{"text": "a"}, {"sketch": person_image(1)}])
