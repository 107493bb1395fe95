"""Analyst review: confirm or reject a match, (re)assign a sighting, merge and split identities.

Every change is written in one database transaction together with its audit event (who, when,
what) and, for confirm and reject, its review decision; then the sightings' ``identity`` and
``review`` state (:func:`crud.review_states`) are mirrored into the index payload, so identity
and review-state filters follow at once. The database is the source of truth: search reports
identities and review states from it and drops a hit whose payload is behind.

Confirming or rejecting again what already stands (a double click, a client retry) writes
nothing: no second decision, assignment or audit event. It still mirrors, so a retry after a
failed mirror repairs the payload.

Every action records in its audit event what it changed (each moved sighting, the assignment
it had and the one it got; a decision's row), so :meth:`ReviewService.undo` can restore the
previous assignments exactly, as new assignment rows (history stays append-only), and mark the
decision undone. An undo is refused when a later action touched the same sightings or
identities. Undoing a confirm or an assign puts the sighting back on the identity it had, with
the provenance it had (or on none); an identity an assign created stays, empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aioreid.platform.db import crud
from aioreid.platform.db.enums import Decision, Provenance
from aioreid.platform.db.models import (
    Assignment,
    AuditEvent,
    Camera,
    Identity,
    IndexGeneration,
    ReviewDecision,
    Sighting,
)
from aioreid.platform.pipeline.ingest import write_reviews
from aioreid.platform.search.service import NotFound
from aioreid.platform.services import Services

T = TypeVar("T")


class ReviewError(ValueError):
    """A review action that makes no sense (merging an identity into itself, empty split...)."""


#: Actions :meth:`ReviewService.undo` reverts, and those that count as touching a sighting.
UNDOABLE = ("merge", "split", "reject", "confirm", "assign")
REVIEW_ACTIONS = ("confirm", "reject", "assign", "merge", "split", "undo")
#: Review actions recorded on one sighting; their details name the identity.
SIGHTING_ACTIONS = ("confirm", "reject", "assign")
#: The most sightings one bulk confirmation takes.
MAX_BULK = 1000
#: Sample crops per identity in a merge preview.
PREVIEW_SAMPLES = 6
#: Two sightings closer in time than this on different cameras cannot be one person.
SIMULTANEOUS_S = 2.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ReviewService:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        #: The audit event the last action wrote (None when it changed nothing): what an
        #: undo names.
        self.last_event: int | None = None

    # ---------------------------------------------------------------- helpers
    def _sighting(self, s: Session, sighting_id: int, *, lock: bool = False) -> Sighting:
        """The sighting; ``lock`` holds its row until commit, so two identical decisions made
        at once run one after the other and the second sees the first."""
        row = s.get(Sighting, sighting_id, with_for_update=lock)
        if row is None:
            raise NotFound(f"sighting {sighting_id} does not exist")
        return row

    def _identity(self, s: Session, identity_id: int) -> Identity:
        row = s.get(Identity, identity_id)
        if row is None:
            raise NotFound(f"identity {identity_id} does not exist")
        if row.merged_into_id is not None:
            raise ReviewError(
                f"identity {identity_id} was merged into {row.merged_into_id}; use that one"
            )
        return row

    def _mirror(self, sighting_ids: Iterable[int]) -> None:
        """Write these sightings' review payloads, read back from the database after the
        change committed, into the live collection and into collections a re-index is building
        (only points they already hold: later steps read the database). Their tracks' pooled
        points follow (a track is found through any of its sightings).

        Building collections are listed before the alias is read, so a generation going live
        meanwhile is reached one way or the other.
        """
        ids = sorted(set(sighting_ids))
        with self.svc.sessions() as s:
            building = list(
                s.scalars(
                    select(IndexGeneration.collection).where(IndexGeneration.status == "building")
                )
            )
            states = crud.review_states(s, ids)
            rows = s.execute(select(Sighting.point_id, Sighting.id).where(Sighting.id.in_(ids)))
            by_point = {point: states[sid] for point, sid in rows}
        live = self.svc.index.resolve_alias(self.svc.alias)
        for collection in building:
            if collection == live:
                continue
            held = {p.id for p in self.svc.index.retrieve(collection, list(by_point))}
            write_reviews(self.svc, collection, {p: st for p, st in by_point.items() if p in held})
        if live is not None:
            write_reviews(self.svc, live, by_point)

    # ---------------------------------------------------------------- actions
    def confirm(
        self,
        sighting_id: int,
        identity_id: int,
        actor: str,
        note: str = "",
        *,
        key_id: int | None = None,
    ) -> None:
        """The sighting is this identity (an analyst assignment); a no-op when that stands."""
        with self.svc.sessions.begin() as s:
            self._sighting(s, sighting_id, lock=True)
            self._identity(s, identity_id)
            if not _stands(s, sighting_id, identity_id, Decision.CONFIRM):
                before = _active(s, sighting_id)
                got = crud.assign(s, sighting_id, identity_id, provenance="analyst", actor=actor)
                self.last_event = self._decide(
                    s,
                    sighting_id,
                    identity_id,
                    Decision.CONFIRM,
                    actor,
                    note,
                    key_id,
                    undo=_swap(before, got),
                )
        self._mirror([sighting_id])

    def reject(
        self,
        sighting_id: int,
        identity_id: int,
        actor: str,
        note: str = "",
        *,
        key_id: int | None = None,
    ) -> None:
        """The sighting is NOT this identity: it leaves the identity and its searches; a no-op
        when that stands."""
        with self.svc.sessions.begin() as s:
            self._sighting(s, sighting_id, lock=True)
            self._identity(s, identity_id)
            if not _stands(s, sighting_id, identity_id, Decision.REJECT):
                current = _active(s, sighting_id)
                deactivated = None
                if current is not None and current.identity_id == identity_id:
                    current.active = False
                    deactivated, current = current.id, None
                self.last_event = self._decide(
                    s,
                    sighting_id,
                    identity_id,
                    Decision.REJECT,
                    actor,
                    note,
                    key_id,
                    undo={
                        "deactivated": deactivated,
                        "active_after": current.id if current is not None else None,
                    },
                )
        self._mirror([sighting_id])

    @staticmethod
    def _decide(
        s: Session,
        sighting_id: int,
        identity_id: int,
        decision: Decision,
        actor: str,
        note: str,
        key_id: int | None = None,
        *,
        undo: dict | None = None,
        bulk: bool = False,
    ) -> int:
        """Record an analyst's decision and its audit event (``undo``: what an undo needs)."""
        row = crud.record_decision(
            s,
            sighting_id=sighting_id,
            identity_id=identity_id,
            decision=decision,
            actor=actor,
            note=note,
        )
        details: dict = {"identity": identity_id}
        if undo is not None:
            details.update(undo, decision=row.id)
        if bulk:
            details["bulk"] = True
        return crud.record_audit(
            s,
            actor=actor,
            action=str(decision),
            entity="sighting",
            entity_id=sighting_id,
            details=details,
            key_id=key_id,
        ).id

    def assign(
        self,
        sighting_id: int,
        identity_id: int | None,
        actor: str,
        label: str | None = None,
        *,
        key_id: int | None = None,
    ) -> int:
        """Put the sighting on an identity (a new one when ``identity_id`` is None)."""
        with self.svc.sessions.begin() as s:
            # Locked: the assignment read as "before" is the one this assign replaces.
            self._sighting(s, sighting_id, lock=True)
            created = identity_id is None
            if identity_id is None:
                identity_id = crud.create_identity(s, label=label, created_by=actor).id
            else:
                self._identity(s, identity_id)
            before = _active(s, sighting_id)
            got = crud.assign(s, sighting_id, identity_id, provenance="analyst", actor=actor)
            details: dict = {"identity": identity_id, **_swap(before, got)}
            if created:
                details["created"] = True
            self.last_event = crud.record_audit(
                s,
                actor=actor,
                action="assign",
                entity="sighting",
                entity_id=sighting_id,
                details=details,
                key_id=key_id,
            ).id
        self._mirror([sighting_id])
        return identity_id

    def merge(
        self, target_id: int, source_ids: Sequence[int], actor: str, *, key_id: int | None = None
    ) -> int:
        """Move every sighting of ``source_ids`` onto ``target_id``; sources are retired."""
        sources = sorted(set(source_ids))
        if not sources:
            raise ReviewError("merge needs at least one source identity")
        if target_id in sources:
            raise ReviewError(f"cannot merge identity {target_id} into itself")
        moved: list[int] = []
        moves: list[dict[str, int]] = []
        with self.svc.sessions.begin() as s:
            self._identity(s, target_id)
            for src in sources:
                ident = self._identity(s, src)
                for a in _active_of_identity(s, src):
                    got = crud.assign(
                        s, a.sighting_id, target_id, provenance="analyst", actor=actor
                    )
                    moved.append(a.sighting_id)
                    moves.append(_move(a, got))
                ident.merged_into_id = target_id
            self.last_event = crud.record_audit(
                s,
                actor=actor,
                action="merge",
                entity="identity",
                entity_id=target_id,
                details={"sources": sources, "moved": len(moved), "moves": moves},
                key_id=key_id,
            ).id
        self._mirror(moved)
        return len(moved)

    def split(
        self,
        identity_id: int,
        sighting_ids: Sequence[int],
        actor: str,
        label: str | None = None,
        *,
        key_id: int | None = None,
    ) -> int:
        """Move some of an identity's sightings to a new identity; returns its id."""
        wanted = sorted(set(sighting_ids))
        if not wanted:
            raise ReviewError("split needs at least one sighting")
        with self.svc.sessions.begin() as s:
            self._identity(s, identity_id)
            owned = {a.sighting_id: a for a in _active_of_identity(s, identity_id)}
            foreign = [i for i in wanted if i not in owned]
            if foreign:
                raise ReviewError(f"sightings {foreign} are not on identity {identity_id}")
            new = crud.create_identity(s, label=label, created_by=actor)
            moves = []
            for sid in wanted:
                got = crud.assign(s, sid, new.id, provenance="analyst", actor=actor)
                moves.append(_move(owned[sid], got))
            self.last_event = crud.record_audit(
                s,
                actor=actor,
                action="split",
                entity="identity",
                entity_id=identity_id,
                details={"new_identity": new.id, "sightings": wanted, "moves": moves},
                key_id=key_id,
            ).id
            new_id = new.id
        self._mirror(wanted)
        return new_id

    def confirm_bulk(
        self,
        sighting_ids: Sequence[int],
        identity_id: int,
        actor: str,
        note: str = "",
        *,
        key_id: int | None = None,
    ) -> int:
        """Confirm many sightings as one identity in one transaction (all or none); those
        already confirmed are left as they stand. Returns how many were confirmed now."""
        wanted = sorted(set(sighting_ids))
        if not wanted:
            raise ReviewError("bulk confirmation needs at least one sighting")
        if len(wanted) > MAX_BULK:
            raise ReviewError(f"at most {MAX_BULK} sightings per bulk confirmation")
        changed = 0
        with self.svc.sessions.begin() as s:
            self._identity(s, identity_id)
            for sid in wanted:
                self._sighting(s, sid, lock=True)
            for sid in wanted:
                if not _stands(s, sid, identity_id, Decision.CONFIRM):
                    before = _active(s, sid)
                    got = crud.assign(s, sid, identity_id, provenance="analyst", actor=actor)
                    self._decide(
                        s,
                        sid,
                        identity_id,
                        Decision.CONFIRM,
                        actor,
                        note,
                        key_id,
                        undo=_swap(before, got),
                        bulk=True,
                    )
                    changed += 1
        self._mirror(wanted)
        return changed

    def undo(self, event_id: int, actor: str, *, key_id: int | None = None) -> dict:
        """Undo the merge, split, reject, confirm or assign recorded as audit event
        ``event_id``: its sightings get back the assignments they had before (as new rows, or
        none), a merge's sources come back, a split's new identity is merged back into the one
        it came from, a reject's or confirm's decision stops counting. Refused (ReviewError)
        when the event was undone already, predates undo records, or a later action touched
        its sightings or identities. Returns what was done:
        ``{"undone": event id, "action", "sightings": [...], "identities": [...]}``."""
        with self.svc.sessions.begin() as s:
            ev = s.get(AuditEvent, event_id, with_for_update=True)  # one undo at a time
            if ev is None:
                raise NotFound(f"audit event {event_id} does not exist")
            if ev.action not in UNDOABLE:
                raise ReviewError(
                    f"event {event_id} is a {ev.action!r}; only {', '.join(UNDOABLE)} can be undone"
                )
            done = s.scalar(
                select(AuditEvent.id).where(
                    AuditEvent.action == "undo",
                    AuditEvent.entity == "audit_event",
                    AuditEvent.entity_id == str(ev.id),
                )
            )
            if done is not None:
                raise ReviewError(f"event {event_id} was already undone (event {done})")
            details = ev.details or {}
            if ev.action == "reject":
                sightings, identities = self._undo_reject(s, ev, details, actor)
            elif ev.action in ("confirm", "assign"):
                sightings, identities = self._undo_assignment(s, ev, details, actor)
            else:
                sightings, identities = self._undo_moves(s, ev, details, actor)
            self.last_event = crud.record_audit(
                s,
                actor=actor,
                action="undo",
                entity="audit_event",
                entity_id=ev.id,
                details={
                    "undid": ev.action,
                    "by": ev.actor,
                    "sightings": sightings,
                    "identities": identities,
                },
                key_id=key_id,
            ).id
        self._mirror(sightings)
        return {
            "event_id": self.last_event,
            "undone": event_id,
            "action": ev.action,
            "sightings": sightings,
            "identities": identities,
        }

    def _undo_moves(
        self, s: Session, ev: AuditEvent, details: dict, actor: str
    ) -> tuple[list[int], list[int]]:
        expected = _expected(ev)
        moves = details["moves"]
        here, others = _parties(ev)
        sightings = [int(m["sighting"]) for m in moves]
        _refuse_if_touched(s, ev, expected)
        _refuse_if_identities_changed(s, ev, here, others)
        if ev.action == "merge":
            for src in others:
                s.get(Identity, src).merged_into_id = None  # type: ignore[union-attr]
        for m in moves:
            was = s.get(Assignment, int(m["was"]))
            if was is None:  # its identity was deleted: nothing to go back to
                raise ReviewError(f"sighting {m['sighting']}'s previous assignment is gone")
            crud.assign(
                s,
                was.sighting_id,
                was.identity_id,
                provenance=was.provenance,
                actor=actor,
                score=was.score,
            )
        if ev.action == "split":
            s.get(Identity, others[0]).merged_into_id = here  # type: ignore[union-attr]
        return sightings, sorted({here, *others})

    def _undo_reject(
        self, s: Session, ev: AuditEvent, details: dict, actor: str
    ) -> tuple[list[int], list[int]]:
        sid, identity_id = int(ev.entity_id), int(details["identity"])  # type: ignore[arg-type]
        _refuse_if_touched(s, ev, _expected(ev))
        was = _restorable(s, ev)
        decision = s.get(ReviewDecision, int(details["decision"]))
        if decision is not None:
            decision.undone_at = _now()
        if was is not None:
            crud.assign(
                s, sid, identity_id, provenance=was.provenance, actor=actor, score=was.score
            )
        return [sid], [identity_id]

    def _undo_assignment(
        self, s: Session, ev: AuditEvent, details: dict, actor: str
    ) -> tuple[list[int], list[int]]:
        """A confirm or assign: the sighting goes back to the assignment it had (its
        identity, provenance and score) or to none; a confirm's decision stops counting."""
        sid, identity_id = int(ev.entity_id), int(details["identity"])  # type: ignore[arg-type]
        _refuse_if_touched(s, ev, _expected(ev))
        was = _restorable(s, ev)
        if ev.action == "confirm" and details.get("decision") is not None:
            decision = s.get(ReviewDecision, int(details["decision"]))
            if decision is not None:
                decision.undone_at = _now()
        if was is None:
            crud.unassign(s, sid)
            return [sid], [identity_id]
        crud.assign(
            s, sid, was.identity_id, provenance=was.provenance, actor=actor, score=was.score
        )
        return [sid], sorted({identity_id, was.identity_id})

    # ---------------------------------------------------------------- reading
    def merge_preview(self, target_id: int, source_ids: Sequence[int]) -> dict:
        """What merging ``source_ids`` into ``target_id`` would give, refused as the merge
        would be: per identity its sightings, tracks, cameras, time span and sample crops;
        the same for the result; and sightings of the target and a source that were seen at
        nearly the same time on different cameras (a sign they are different people)."""
        sources = sorted(set(source_ids))
        if not sources:
            raise ReviewError("merge needs at least one source identity")
        if target_id in sources:
            raise ReviewError(f"cannot merge identity {target_id} into itself")
        with self.svc.sessions() as s:
            idents = [self._identity(s, i) for i in (target_id, *sources)]
            cams = {c.id: c.name for c in s.scalars(select(Camera))}
            rows = s.execute(
                select(Assignment.identity_id, Sighting)
                .join(Sighting, Sighting.id == Assignment.sighting_id)
                .where(
                    Assignment.identity_id.in_([i.id for i in idents]),
                    Assignment.active.is_(True),
                )
            ).all()
            by_ident: dict[int, list[Sighting]] = {i.id: [] for i in idents}
            for ident_id, row in rows:
                by_ident[ident_id].append(row)
            out = [
                {
                    "id": i.id,
                    "label": i.label,
                    **self._summary(by_ident[i.id], cams, samples=True),
                }
                for i in idents
            ]
            after = self._summary([r for _, r in rows], cams, samples=False)
            simultaneous = _simultaneous(by_ident[target_id], [r for _, r in rows])
        return {
            "target": out[0],
            "sources": out[1:],
            "after": after,
            "simultaneous": simultaneous[:5],
            "simultaneous_count": len(simultaneous),
        }

    def _summary(self, rows: Sequence[Sighting], cams: dict[int, str], *, samples: bool) -> dict:
        times = sorted(r.frame_time for r in rows if r.frame_time is not None)
        per_camera: dict[int | None, int] = {}
        for r in rows:
            per_camera[r.camera_id] = per_camera.get(r.camera_id, 0) + 1
        best = sorted(rows, key=lambda r: (-r.quality, r.id))[:PREVIEW_SAMPLES] if samples else []
        return {
            "sightings": len(rows),
            "tracks": len({r.track_id for r in rows if r.track_id is not None}),
            "cameras": [
                {"camera_id": c, "camera": cams.get(c) if c is not None else None, "sightings": n}
                for c, n in sorted(per_camera.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
            ],
            "first_time": times[0] if times else None,
            "last_time": times[-1] if times else None,
            "samples": [
                {
                    "sighting_id": r.id,
                    "camera_id": r.camera_id,
                    "time": r.frame_time,
                    "url": self.svc.store.presigned_url(r.object_key),
                }
                for r in best
            ],
        }

    def identity(self, identity_id: int) -> dict:
        """The identity with its sightings in time order and its review history."""
        with self.svc.sessions() as s:
            ident = s.get(Identity, identity_id)
            if ident is None:
                raise NotFound(f"identity {identity_id} does not exist")
            sightings = [
                s.get(Sighting, a.sighting_id) for a in _active_of_identity(s, identity_id)
            ]
            sightings.sort(key=lambda r: (r.frame_time is None, r.frame_time or _now(), r.id))  # type: ignore[union-attr]
            decisions = s.scalars(
                select(ReviewDecision)
                .where(ReviewDecision.identity_id == identity_id)
                .order_by(ReviewDecision.created_at)
            ).all()
            # Merges into it and splits from it; confirms, rejects and assigns of sightings
            # for it; and the undos of those.
            events = list(
                s.scalars(
                    select(AuditEvent).where(
                        AuditEvent.entity == "identity", AuditEvent.entity_id == str(identity_id)
                    )
                )
            )
            events += _sighting_events(s, identity_id)
            undos = [
                u
                for ids in _chunks([str(e.id) for e in events])
                for u in s.scalars(
                    select(AuditEvent).where(
                        AuditEvent.action == "undo",
                        AuditEvent.entity == "audit_event",
                        AuditEvent.entity_id.in_(ids),
                    )
                )
            ]
            undone = {int(u.entity_id) for u in undos}  # type: ignore[arg-type]
            history = sorted([*events, *undos], key=lambda e: e.id)
            undoable = _undoable(
                s, [e for e in events if e.action in UNDOABLE and e.id not in undone]
            )
            return {
                "id": ident.id,
                "label": ident.label,
                "merged_into": ident.merged_into_id,
                "sightings": [
                    {
                        "sighting_id": r.id,  # type: ignore[union-attr]
                        "camera_id": r.camera_id,  # type: ignore[union-attr]
                        "time": r.frame_time,  # type: ignore[union-attr]
                        "modality": r.modality,  # type: ignore[union-attr]
                        "object_key": r.object_key,  # type: ignore[union-attr]
                        "url": self.svc.store.presigned_url(r.object_key),  # type: ignore[union-attr]
                    }
                    for r in sightings
                ],
                "decisions": [
                    {
                        "sighting_id": d.sighting_id,
                        "decision": d.decision,
                        "actor": d.actor,
                        "at": d.created_at,
                        "undone_at": d.undone_at,
                    }
                    for d in decisions
                ],
                "history": [
                    {
                        "id": e.id,
                        "at": e.created_at,
                        "actor": e.actor,
                        "key_id": e.key_id,
                        "action": e.action,
                        "entity": e.entity,
                        "entity_id": e.entity_id,
                        "details": e.details,
                        "undoable": undoable.get(e.id, False) if e.action in UNDOABLE else None,
                    }
                    for e in history
                ],
            }


def _stands(s: Session, sighting_id: int, identity_id: int, decision: Decision) -> bool:
    """True when ``decision`` on this sighting and identity already holds: it is their latest
    decision and the assignment still agrees (confirmed: an analyst's on the identity;
    rejected: not on it). Repeating it would only duplicate the record."""
    latest = s.scalar(
        select(ReviewDecision.decision)
        .where(
            ReviewDecision.sighting_id == sighting_id,
            ReviewDecision.identity_id == identity_id,
            ReviewDecision.undone_at.is_(None),
        )
        .order_by(ReviewDecision.created_at.desc(), ReviewDecision.id.desc())
        .limit(1)
    )
    if latest != decision:
        return False
    current = _active(s, sighting_id)
    on_it = current is not None and current.identity_id == identity_id
    if decision == Decision.REJECT:
        return not on_it
    return on_it and current.provenance == Provenance.ANALYST  # type: ignore[union-attr]


def _refuse_if_touched(s: Session, ev: AuditEvent, expected: dict[int, int | None]) -> None:
    """ReviewError unless no later review action (confirm, reject, assign...) named any of
    the sightings and each still has the assignment ``ev`` left it with (``expected``:
    sighting → assignment id, None for none). A later action is looked for first: its
    message says who did what (a reject leaves no assignment to name anyone by)."""
    ids = sorted(expected)
    later = s.execute(
        select(AuditEvent.id, AuditEvent.action, AuditEvent.entity_id, AuditEvent.actor)
        .where(
            AuditEvent.id > ev.id,
            AuditEvent.entity == "sighting",
            AuditEvent.entity_id.in_([str(i) for i in ids]),
            AuditEvent.action.in_(REVIEW_ACTIONS),
        )
        .order_by(AuditEvent.id)
        .limit(1)
    ).first()
    if later is not None:
        raise ReviewError(
            f"cannot undo event {ev.id}: sighting {later.entity_id} was touched since "
            f"({later.action} by {later.actor}, event {later.id})"
        )
    active = {
        a.sighting_id: a
        for a in s.scalars(
            select(Assignment).where(Assignment.sighting_id.in_(ids), Assignment.active.is_(True))
        )
    }
    for sid in ids:
        now = active.get(sid)
        if (now.id if now is not None else None) != expected[sid]:
            who = f" (by {now.actor} at {now.created_at:%Y-%m-%d %H:%M:%S})" if now else ""
            raise ReviewError(
                f"cannot undo event {ev.id}: sighting {sid} was reassigned since{who}"
            )


def _expected(ev: AuditEvent) -> dict[int, int | None]:
    """What ``ev`` left each of its sightings with (sighting → assignment id, None for none),
    which an undo requires to still hold. ReviewError when ``ev`` was recorded before undo
    records existed (or is no review action)."""
    details = ev.details or {}
    old = ReviewError(
        f"event {ev.id} ({ev.action}) was recorded before undo existed and cannot be undone "
        "automatically"
    )
    if ev.action in ("merge", "split"):
        moves = details.get("moves")
        if not isinstance(moves, list):
            raise old
        return {int(m["sighting"]): int(m["now"]) for m in moves}
    sid = int(ev.entity_id)  # type: ignore[arg-type]
    if ev.action == "reject" and "decision" in details:
        after = details.get("active_after")
        return {sid: None if after is None else int(after)}
    if ev.action in ("confirm", "assign") and "now" in details:
        return {sid: int(details["now"])}
    raise old


def _restorable(s: Session, ev: AuditEvent) -> Assignment | None:
    """The assignment a confirm, assign or reject replaced, which its undo restores (None:
    the sighting had none, or a reject left it where it was). ReviewError when its identity
    was merged away or deleted since."""
    details = ev.details or {}
    key = "deactivated" if ev.action == "reject" else "was"
    if details.get(key) is None:
        return None
    was = s.get(Assignment, int(details[key]))
    ident = s.get(Identity, was.identity_id) if was is not None else None
    if was is None or ident is None or ident.merged_into_id is not None:
        who = was.identity_id if was is not None else details.get("identity")
        raise ReviewError(f"cannot undo event {ev.id}: identity {who} was merged or deleted since")
    return was


def _parties(ev: AuditEvent) -> tuple[int, list[int]]:
    """A merge's target and sources; a split's source and new identity."""
    details = ev.details or {}
    here = int(ev.entity_id)  # type: ignore[arg-type]
    if ev.action == "merge":
        return here, [int(i) for i in details.get("sources", [])]
    return here, [int(details["new_identity"])]


def _chunks(values: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """``values`` in pieces small enough for one SQL ``IN`` list on any backend."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _sighting_events(s: Session, identity_id: int) -> list[AuditEvent]:
    """Confirms, rejects and assigns for this identity: review actions on the sightings it
    ever held or was decided on, whose details name it."""
    linked = set(
        s.scalars(select(Assignment.sighting_id).where(Assignment.identity_id == identity_id))
    )
    linked.update(
        s.scalars(
            select(ReviewDecision.sighting_id).where(ReviewDecision.identity_id == identity_id)
        )
    )
    return [
        e
        for ids in _chunks([str(i) for i in sorted(linked)])
        for e in s.scalars(
            select(AuditEvent).where(
                AuditEvent.entity == "sighting",
                AuditEvent.entity_id.in_(ids),
                AuditEvent.action.in_(SIGHTING_ACTIONS),
            )
        )
        if (e.details or {}).get("identity") == identity_id
    ]


def _undoable(s: Session, events: Sequence[AuditEvent]) -> dict[int, bool]:
    """For events not undone yet, whether :meth:`ReviewService.undo` would take each now: the
    same rules (undo records, assignments as the event left them, no later review action on
    its sightings, its identities unchanged), read in two queries for all of them."""
    expected: dict[int, dict[int, int | None]] = {}
    for e in events:
        try:
            expected[e.id] = _expected(e)
        except ReviewError:
            continue
    sids = sorted({sid for want in expected.values() for sid in want})
    active: dict[int, int] = {}
    latest: dict[int, int] = {}
    for ids in _chunks(sids):
        for sid, assignment in s.execute(
            select(Assignment.sighting_id, Assignment.id).where(
                Assignment.sighting_id.in_(ids), Assignment.active.is_(True)
            )
        ):
            active[sid] = assignment
        for entity_id, last in s.execute(
            select(AuditEvent.entity_id, func.max(AuditEvent.id))
            .where(
                AuditEvent.entity == "sighting",
                AuditEvent.entity_id.in_([str(i) for i in ids]),
                AuditEvent.action.in_(REVIEW_ACTIONS),
            )
            .group_by(AuditEvent.entity_id)
        ):
            latest[int(entity_id)] = last
    out: dict[int, bool] = {}
    for e in events:
        want = expected.get(e.id)
        ok = want is not None and all(
            active.get(sid) == now and latest.get(sid, 0) <= e.id for sid, now in want.items()
        )
        if ok:
            try:
                if e.action in ("merge", "split"):
                    _refuse_if_identities_changed(s, e, *_parties(e))
                else:
                    _restorable(s, e)
            except ReviewError:
                ok = False
        out[e.id] = ok
    return out


def _swap(before: Assignment | None, after: Assignment) -> dict[str, int | None]:
    """What a confirm or assign keeps for its undo: the assignment the sighting had (``was``,
    None for none) and the one it got (``now``)."""
    return {"was": before.id if before is not None else None, "now": after.id}


def _refuse_if_identities_changed(s: Session, ev: AuditEvent, here: int, others: list[int]) -> None:
    """ReviewError when the identities of a merge or split changed since: merged elsewhere,
    a source given new sightings, the split's new identity used."""
    ident = s.get(Identity, here)
    if ident is None or ident.merged_into_id is not None:
        raise ReviewError(f"cannot undo event {ev.id}: identity {here} was merged or deleted since")
    for other in others:
        row = s.get(Identity, other)
        expected_parent = here if ev.action == "merge" else None
        if row is None or row.merged_into_id != expected_parent:
            raise ReviewError(
                f"cannot undo event {ev.id}: identity {other} was merged or deleted since"
            )
    # A merge's sources are retired (nothing can be assigned to them); a split's new identity
    # must hold only what the split gave it.
    if ev.action == "split":
        moved = {int(m["now"]) for m in (ev.details or {}).get("moves", [])}
        extra = s.scalar(
            select(Assignment.sighting_id)
            .where(
                Assignment.identity_id == others[0],
                Assignment.active.is_(True),
                Assignment.id.not_in(moved),
            )
            .limit(1)
        )
        if extra is not None:
            raise ReviewError(
                f"cannot undo event {ev.id}: sighting {extra} was put on identity {others[0]} since"
            )


def _simultaneous(target: Sequence[Sighting], every: Sequence[Sighting]) -> list[dict]:
    """Pairs (a target sighting, a source sighting) less than SIMULTANEOUS_S apart on
    different cameras, closest first."""
    mine = {r.id for r in target}
    timed = sorted(
        (r for r in every if r.frame_time is not None), key=lambda r: (r.frame_time, r.id)
    )
    pairs = []
    for i, a in enumerate(timed):
        for b in timed[i + 1 :]:
            gap = (b.frame_time - a.frame_time).total_seconds()  # type: ignore[operator]
            if gap >= SIMULTANEOUS_S:
                break
            if (a.id in mine) == (b.id in mine) or a.camera_id == b.camera_id:
                continue
            t, o = (a, b) if a.id in mine else (b, a)
            pairs.append({"target_sighting": t.id, "source_sighting": o.id, "seconds": gap})
    return sorted(pairs, key=lambda p: (p["seconds"], p["target_sighting"]))


def _move(before: Assignment, after: Assignment) -> dict[str, int]:
    """One moved sighting, as its audit event keeps it for an undo: the identity it left and
    the assignment it had (``was``) and got (``now``)."""
    return {
        "sighting": before.sighting_id,
        "from": before.identity_id,
        "was": before.id,
        "now": after.id,
    }


def _active(s: Session, sighting_id: int) -> Assignment | None:
    return s.scalar(
        select(Assignment).where(Assignment.sighting_id == sighting_id, Assignment.active.is_(True))
    )


def _active_of_identity(s: Session, identity_id: int) -> list[Assignment]:
    return list(
        s.scalars(
            select(Assignment).where(
                Assignment.identity_id == identity_id, Assignment.active.is_(True)
            )
        )
    )
