"""Safer identity work through the API (SDK): undo of merge, split, reject, confirm and assign
restores what an analyst saw before (database, index payload, audit trail), and is refused once
later work touched the same sightings; an identity's history says which events can be undone;
bulk confirm is all or none; the merge preview shows what a merge would give before it is made.

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


def _payload(world: World, seed: int) -> tuple[int | None, str]:
    """The sighting's identity and review state as its index point holds them (what the
    identity and review-state filters of a search read)."""
    with world.svc.sessions() as s:
        point = s.get(Sighting, world.sightings[seed]).point_id  # type: ignore[union-attr]
    (got,) = world.svc.index.retrieve(world.svc.live_collection(), [point])
    return got.payload.get("identity"), got.payload["review"]


def _history(world: World, identity: int) -> dict[int, tuple[str, bool | None]]:
    """The identity's history: event id → (action, undoable)."""
    return {h.id: (h.action, h.undoable) for h in world.ann.identity(identity).history}


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


def test_undoing_a_confirm_gives_the_matchers_assignment_back(world: World) -> None:
    a = _auto(world, [12], "H")
    assert _state(world, 12) == (a, "unreviewed")
    confirmed = world.ann.confirm(world.sightings[12], a, note="same coat")
    assert confirmed.event_id is not None
    assert _state(world, 12) == _payload(world, 12) == (a, "confirmed")
    assert _history(world, a)[confirmed.event_id] == ("confirm", True)
    mine = {"review": "confirmed", "identity_ids": [a]}
    hits = world.ann.search(text="someone", filters=mine, level="sighting")
    assert world.sightings[12] in {h.sighting_id for h in hits.hits}

    undone = world.bob.undo(confirmed.event_id)
    assert (undone.action, undone.sightings, undone.identities) == (
        "confirm",
        [world.sightings[12]],
        [a],
    )
    # Back on A as the matcher put it; the index payload follows; the decision stops counting.
    assert _state(world, 12) == _payload(world, 12) == (a, "unreviewed")
    decisions = [
        (d.decision, d.undone_at is not None)
        for d in world.ann.identity(a).decisions
        if d.sighting_id == world.sightings[12]
    ]
    assert decisions == [("confirm", True)]
    hits = world.ann.search(text="someone", filters=mine, level="sighting")
    assert world.sightings[12] not in {h.sighting_id for h in hits.hits}
    history = _history(world, a)
    assert history[confirmed.event_id] == ("confirm", False)  # undone: no second undo
    assert history[undone.event_id] == ("undo", None)
    with world.svc.sessions() as s:
        event = s.get(AuditEvent, undone.event_id)
        assert event is not None and (event.action, event.actor) == ("undo", "bob")
        assert event.entity_id == str(confirmed.event_id)
        assert event.details["undid"] == "confirm"  # type: ignore[index]
    with pytest.raises(ApiError) as again:
        world.ann.undo(confirmed.event_id)
    assert again.value.status == 409 and "already undone" in str(again.value)


def test_undoing_a_confirm_onto_another_identity_moves_the_sighting_back(world: World) -> None:
    a, b = _auto(world, [13], "H2"), _auto(world, [], "H3")
    moved = world.ann.confirm(world.sightings[13], b)
    assert _state(world, 13) == _payload(world, 13) == (b, "confirmed")
    undone = world.ann.undo(moved.event_id)  # type: ignore[arg-type]
    assert sorted(undone.identities) == sorted([a, b])
    assert _state(world, 13) == _payload(world, 13) == (a, "unreviewed")
    assert world.ann.identity(b).sightings == []


def test_undoing_an_assign_restores_the_previous_assignment_or_none(world: World) -> None:
    with world.svc.sessions.begin() as s:
        crud.unassign(s, world.sightings[9])
    # Onto a new identity: undone, the sighting has none again; the identity stays, empty.
    created = world.ann.assign(world.sightings[9], label="someone new")
    new = created.identity_id
    assert new is not None and _state(world, 9) == _payload(world, 9) == (new, "confirmed")
    assert _history(world, new)[created.event_id] == ("assign", True)  # type: ignore[index]
    world.ann.undo(created.event_id)  # type: ignore[arg-type]
    assert _state(world, 9) == _payload(world, 9) == (None, "unreviewed")
    assert world.ann.identity(new).sightings == []
    # From the matcher's identity to another: undone, it is the matcher's again.
    a, b = _auto(world, [9], "N"), _auto(world, [], "O")
    reassigned = world.ann.assign(world.sightings[9], b)
    assert _state(world, 9) == (b, "confirmed")
    world.ann.undo(reassigned.event_id)  # type: ignore[arg-type]
    assert _state(world, 9) == _payload(world, 9) == (a, "unreviewed")
    with world.svc.sessions() as s:
        undos = s.scalars(
            sa.select(AuditEvent).where(
                AuditEvent.action == "undo",
                AuditEvent.entity_id.in_([str(created.event_id), str(reassigned.event_id)]),
            )
        ).all()
    assert sorted(u.details["undid"] for u in undos) == ["assign", "assign"]  # type: ignore[index]


def test_a_confirm_or_assign_undo_is_refused_once_later_work_touched_it(world: World) -> None:
    a = _auto(world, [1], "P")
    confirmed = world.ann.confirm(world.sightings[1], a)
    rejected = world.bob.reject(world.sightings[1], a, note="no, other shoes")
    assert _history(world, a)[confirmed.event_id] == ("confirm", False)  # type: ignore[index]
    assert _history(world, a)[rejected.event_id] == ("reject", True)  # type: ignore[index]
    with pytest.raises(ApiError) as refused:
        world.ann.undo(confirmed.event_id)  # type: ignore[arg-type]
    assert refused.value.status == 409 and "bob" in str(refused.value)
    assert _state(world, 1) == (None, "rejected")  # nothing was changed

    # The identity it came from was merged away since: nothing to go back to.
    b, c, d = _auto(world, [6], "Q"), _auto(world, [], "R"), _auto(world, [], "S")
    reassigned = world.ann.assign(world.sightings[6], c)
    world.ann.merge(d, [b])
    assert _history(world, c)[reassigned.event_id] == ("assign", False)  # type: ignore[index]
    with pytest.raises(ApiError) as merged:
        world.ann.undo(reassigned.event_id)  # type: ignore[arg-type]
    assert merged.value.status == 409 and f"identity {b} was merged" in str(merged.value)
    assert _state(world, 6) == (c, "confirmed")


def test_each_confirmation_of_a_bulk_confirm_can_be_undone(world: World) -> None:
    ident = _auto(world, [], "T")
    with world.svc.sessions.begin() as s:
        for seed in (2, 3):
            crud.unassign(s, world.sightings[seed])
    world.ann.confirm_bulk([world.sightings[2], world.sightings[3]], ident)
    events = {
        int(h.entity_id): h  # type: ignore[arg-type]
        for h in world.ann.identity(ident).history
        if h.action == "confirm"
    }
    assert set(events) == {world.sightings[2], world.sightings[3]}
    assert all(h.undoable for h in events.values())
    world.ann.undo(events[world.sightings[3]].id)
    assert _state(world, 3) == _payload(world, 3) == (None, "unreviewed")
    assert _state(world, 2) == _payload(world, 2) == (ident, "confirmed")


def test_only_review_actions_with_undo_records_can_be_undone(world: World) -> None:
    ident = _auto(world, [12], "U")
    confirmed = world.ann.confirm(world.sightings[12], ident)
    undone = world.ann.undo(confirmed.event_id)  # type: ignore[arg-type]
    with pytest.raises(ApiError) as not_undoable:
        world.ann.undo(undone.event_id)  # an undo is not undone
    assert not_undoable.value.status == 409 and "only merge, split, reject, confirm, assign" in str(
        not_undoable.value
    )
    with pytest.raises(ApiError) as unknown:
        world.ann.undo(10**12)
    assert unknown.value.status == 404
    with world.svc.sessions.begin() as s:  # actions recorded before undo existed
        old_ids = [
            crud.record_audit(
                s, actor="ann", action=action, entity=entity, entity_id=ref, details=details
            ).id
            for action, entity, ref, details in (
                ("merge", "identity", ident, {}),
                ("confirm", "sighting", world.sightings[12], {"identity": ident}),
                ("assign", "sighting", world.sightings[12], {"identity": ident}),
            )
        ]
    for old_id in old_ids:
        with pytest.raises(ApiError) as legacy:
            world.ann.undo(old_id)
        assert legacy.value.status == 409 and "before undo existed" in str(legacy.value)
    history = _history(world, ident)
    assert [history[i] for i in old_ids] == [
        ("merge", False),
        ("confirm", False),
        ("assign", False),
    ]


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
