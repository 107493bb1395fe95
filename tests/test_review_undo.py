"""Safer identity work through the API (SDK): undo of merge, split and reject restores what an
analyst saw before, and is refused once later work touched the same sightings; bulk confirm is
all or none; the merge preview shows what a merge would give before it is made.

Postgres + local store + in-process index, tiny encoder; ten stills on two cameras. Each test
builds its own identities (auto assignments, as a matcher makes them) on its own sightings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from platform_fixtures import jpeg, make_services, person_image

from aioreid.platform.api.app import create_app
from aioreid.platform.db import crud
from aioreid.platform.db.models import AuditEvent, Identity, Media, Sighting
from aioreid.platform.pipeline.ingest import ingest_bytes
from aioreid.platform.sdk import ApiError, Client
from aioreid.platform.services import Services

T0 = datetime(2024, 6, 1, 9, 0, tzinfo=timezone.utc)


@dataclass
class World:
    svc: Services
    ann: Client
    bob: Client
    sightings: dict[int, int]  # seed -> sighting id


@pytest.fixture(scope="module")
def world(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Iterator[World]:
    svc = make_services(tmp_path_factory.mktemp("undo"), pg_url, migrate=False)
    for seed in range(14):
        # Seed 7 (hall) is seen half a second after seed 0 (gate): not one person.
        at = T0 + (timedelta(seconds=0.5) if seed == 7 else timedelta(minutes=seed))
        camera = "gate" if seed < 7 else "hall"
        res = ingest_bytes(
            svc, jpeg(person_image(seed)), f"p{seed}.jpg", camera=camera, start_time=at
        )
        assert res.status == "done", res
    with svc.sessions.begin() as s:
        ann, _ = crud.create_api_key(s, "ann", role="analyst")
        bob, _ = crud.create_api_key(s, "bob", role="analyst")
        rows = s.execute(sa.select(Media.original_name, Sighting.id).join(Sighting)).all()
    sightings = {int(name[1:-4]): sid for name, sid in rows}
    app = create_app(svc)
    try:
        yield World(
            svc,
            Client(api_key=ann, http_client=TestClient(app)),
            Client(api_key=bob, http_client=TestClient(app)),
            sightings,
        )
    finally:
        svc.close()


def _auto(world: World, seeds: list[int], label: str) -> int:
    """An identity holding these sightings as the matcher would (provenance auto)."""
    with world.svc.sessions.begin() as s:
        ident = crud.create_identity(s, label=label, created_by="matcher")
        for seed in seeds:
            crud.assign(s, world.sightings[seed], ident.id, "auto", "matcher", score=0.8)
        return ident.id


def _state(world: World, seed: int) -> tuple[int | None, str]:
    with world.svc.sessions() as s:
        state = crud.review_states(s, [world.sightings[seed]])[world.sightings[seed]]
    return state.identity, state.review


def _live_ids(world: World) -> set[int]:
    return {i.id for i in world.ann.identities(limit=500).items}


# ------------------------------------------------------------------------------ undo


def test_undoing_a_merge_puts_every_sighting_and_identity_back(world: World) -> None:
    a, b = _auto(world, [0, 1], "A"), _auto(world, [2], "B")
    c = _auto(world, [], "C")
    world.ann.confirm(world.sightings[3], c)  # an analyst's confirmation on C
    assert _state(world, 3) == (c, "confirmed") and _state(world, 2) == (b, "unreviewed")

    merged = world.ann.merge(a, [b, c])
    assert merged.moved == 2 and merged.event_id is not None
    assert {_state(world, n)[0] for n in (0, 1, 2, 3)} == {a}
    assert not {b, c} & _live_ids(world)

    undone = world.bob.undo(merged.event_id)  # another analyst may undo it
    assert (undone.undone, undone.action) == (merged.event_id, "merge")
    assert sorted(undone.sightings) == sorted(world.sightings[n] for n in (2, 3))
    # Back as before: B's sighting is the matcher's again (unreviewed), C's confirmed.
    assert _state(world, 2) == (b, "unreviewed")
    assert _state(world, 3) == (c, "confirmed")
    assert _state(world, 0) == (a, "unreviewed")
    assert {a, b, c} <= _live_ids(world)
    assert world.ann.identity(b).merged_into is None
    assert [s.sighting_id for s in world.ann.identity(c).sightings] == [world.sightings[3]]
    history = world.ann.identity(a).history
    assert [(h.action, h.id) for h in history] == [
        ("merge", merged.event_id),
        ("undo", undone.event_id),
    ]

    with pytest.raises(ApiError) as again:
        world.ann.undo(merged.event_id)
    assert again.value.status == 409 and f"already undone (event {undone.event_id})" in str(
        again.value
    )
    with world.svc.sessions() as s:
        event = s.get(AuditEvent, undone.event_id)
        assert event is not None and (event.action, event.actor) == ("undo", "bob")
        assert event.entity_id == str(merged.event_id) and event.key_id is not None


def test_undoing_a_split_merges_the_new_identity_back(world: World) -> None:
    a = _auto(world, [4, 5, 6], "D")
    split = world.ann.split(a, [world.sightings[5], world.sightings[6]], label="other")
    new = split.identity_id
    assert new is not None and _state(world, 5) == (new, "confirmed")

    world.ann.undo(split.event_id)  # type: ignore[arg-type]
    assert [_state(world, n) for n in (4, 5, 6)] == [(a, "unreviewed")] * 3
    assert new not in _live_ids(world)  # the split-off identity is gone from the list
    assert world.ann.identity(new).merged_into == a


def test_undoing_a_reject_makes_the_decision_stop_counting(world: World) -> None:
    a = _auto(world, [8], "E")
    rejected = world.ann.reject(world.sightings[8], a, note="not him")
    assert _state(world, 8) == (None, "rejected")
    assert world.ann.identity(a).sightings == []

    world.ann.undo(rejected.event_id)  # type: ignore[arg-type]
    assert _state(world, 8) == (a, "unreviewed")  # back on A, as the matcher put it
    decisions = world.ann.identity(a).decisions
    assert [(d.decision, d.undone_at is not None) for d in decisions] == [("reject", True)]
    # Searching for A no longer leaves the sighting out.
    hits = world.ann.find_similar(world.sightings[9], level="sighting", limit=50)
    assert world.sightings[8] in {h.sighting_id for h in hits.hits}
    hits = world.ann.search(text="someone", for_identity=a, level="sighting", limit=50)
    assert world.sightings[8] in {h.sighting_id for h in hits.hits}


def test_an_undo_is_refused_once_later_work_touched_the_sightings(world: World) -> None:
    a, b = _auto(world, [10], "F"), _auto(world, [11], "G")
    merged = world.ann.merge(a, [b])
    world.bob.confirm(world.sightings[11], a, note="checked")  # later work on the sighting
    with pytest.raises(ApiError) as refused:
        world.ann.undo(merged.event_id)  # type: ignore[arg-type]
    assert refused.value.status == 409
    assert f"sighting {world.sightings[11]}" in str(refused.value)
    assert "bob" in str(refused.value)
    assert _state(world, 11) == (a, "confirmed")  # nothing was changed

    rejected = world.ann.reject(world.sightings[10], a)
    world.ann.assign(world.sightings[10], label="someone else")
    with pytest.raises(ApiError) as reassigned:
        world.ann.undo(rejected.event_id)  # type: ignore[arg-type]
    assert reassigned.value.status == 409 and "since" in str(reassigned.value)


def test_only_merges_splits_and_rejects_with_undo_records_can_be_undone(world: World) -> None:
    ident = _auto(world, [12], "H")
    confirmed = world.ann.confirm(world.sightings[12], ident)
    with pytest.raises(ApiError) as not_undoable:
        world.ann.undo(confirmed.event_id)  # type: ignore[arg-type]
    assert not_undoable.value.status == 409 and "only merge, split, reject" in str(
        not_undoable.value
    )
    with pytest.raises(ApiError) as unknown:
        world.ann.undo(10**12)
    assert unknown.value.status == 404
    with world.svc.sessions.begin() as s:  # a merge recorded before undo existed
        old = crud.record_audit(
            s, actor="ann", action="merge", entity="identity", entity_id=ident, details={}
        )
        old_id = old.id
    with pytest.raises(ApiError) as legacy:
        world.ann.undo(old_id)
    assert legacy.value.status == 409 and "before undo existed" in str(legacy.value)


# ------------------------------------------------------------------------------ bulk, preview


def test_bulk_confirm_is_all_or_none(world: World) -> None:
    ident = _auto(world, [], "I")
    seeds = [0, 1, 13]
    with pytest.raises(ApiError) as missing:
        world.ann.confirm_bulk([world.sightings[0], 10**12], ident)
    assert missing.value.status == 404
    assert _state(world, 0)[1] != "confirmed" or _state(world, 0)[0] != ident  # nothing done

    done = world.ann.confirm_bulk([world.sightings[n] for n in seeds], ident, note="same coat")
    assert done.moved == 3
    assert [_state(world, n) for n in seeds] == [(ident, "confirmed")] * 3
    again = world.ann.confirm_bulk([world.sightings[n] for n in seeds], ident)
    assert again.moved == 0  # already confirmed: nothing written twice
    with world.svc.sessions() as s:
        events = s.scalars(
            sa.select(AuditEvent).where(
                AuditEvent.action == "confirm",
                AuditEvent.entity_id.in_([str(world.sightings[n]) for n in seeds]),
            )
        ).all()
    assert sum(1 for e in events if (e.details or {}).get("bulk")) == 3


def test_the_merge_preview_shows_counts_cameras_spans_and_conflicts(world: World) -> None:
    gate = _auto(world, [], "J")
    hall = _auto(world, [], "K")
    with world.svc.sessions.begin() as s:  # fresh assignments of seeds 0, 2 (gate), 7 (hall)
        for seed, ident in ((0, gate), (2, gate), (7, hall)):
            crud.assign(s, world.sightings[seed], ident, "auto", "matcher")
    preview = world.ann.merge_preview(gate, [hall])
    assert (preview.target.id, [p.id for p in preview.sources]) == (gate, [hall])
    assert (preview.target.sightings, preview.sources[0].sightings) == (2, 1)
    assert [c.camera for c in preview.target.cameras] == ["gate"]
    assert preview.target.first_time == T0 and preview.target.last_time == T0 + timedelta(minutes=2)
    assert preview.after.sightings == 3 and {c.camera for c in preview.after.cameras} == {
        "gate",
        "hall",
    }
    assert len(preview.target.samples) == 2 and preview.target.samples[0].url
    # Seen 0.5 s apart at the gate and in the hall: flagged.
    assert preview.simultaneous_count == 1
    pair = preview.simultaneous[0]
    assert (pair.target_sighting, pair.source_sighting) == (world.sightings[0], world.sightings[7])
    assert pair.seconds == pytest.approx(0.5)
    # The preview changed nothing.
    assert _state(world, 7)[0] == hall
    # Ids may also come comma-separated (a shareable console URL).
    other = _auto(world, [], "L")
    got = world.ann._http.get(
        "/v1/identities/merge-preview", params={"target": gate, "sources": f"{hall},{other}"}
    )
    assert got.status_code == 200 and [s["id"] for s in got.json()["sources"]] == [hall, other]
    junk = world.ann._http.get(
        "/v1/identities/merge-preview", params={"target": gate, "sources": f"{hall},x"}
    )
    assert junk.status_code == 422 and "'x' is not an identity id" in junk.text

    for target, sources in ((gate, [gate]), (gate, [])):
        with pytest.raises(ApiError) as bad:
            world.ann.merge_preview(target, sources)
        assert bad.value.status in (409, 422)
    with world.svc.sessions.begin() as s:
        gone = crud.create_identity(s, label="gone")
        s.flush()
        s.get(Identity, gone.id).merged_into_id = gate  # type: ignore[union-attr]
        gone_id = gone.id
    with pytest.raises(ApiError) as merged_away:
        world.ann.merge_preview(gate, [gone_id])
    assert merged_away.value.status == 409 and f"merged into {gate}" in str(merged_away.value)
