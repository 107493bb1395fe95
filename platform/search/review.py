"""Analyst review: confirm or reject a match, (re)assign a sighting, merge and split identities.

Every change is written in one database transaction together with its audit event (who, when,
what) and, for confirm and reject, its review decision; then the sightings' ``identity`` and
``review`` state (:func:`crud.review_states`) are mirrored into the index payload, so identity
and review-state filters follow at once. The database is the source of truth: search reports
identities and review states from it and drops a hit whose payload is behind.

Confirming or rejecting again what already stands (a double click, a client retry) writes
nothing: no second decision, assignment or audit event. It still mirrors, so a retry after a
failed mirror repairs the payload.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from aioreid.platform.db import crud
from aioreid.platform.db.enums import Decision, Provenance
from aioreid.platform.db.models import (
    Assignment,
    Identity,
    IndexGeneration,
    ReviewDecision,
    Sighting,
)
from aioreid.platform.pipeline.ingest import write_reviews
from aioreid.platform.search.service import NotFound
from aioreid.platform.services import Services


class ReviewError(ValueError):
    """A review action that makes no sense (merging an identity into itself, empty split...)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ReviewService:
    def __init__(self, svc: Services) -> None:
        self.svc = svc

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
                crud.assign(s, sighting_id, identity_id, provenance="analyst", actor=actor)
                self._decide(s, sighting_id, identity_id, Decision.CONFIRM, actor, note, key_id)
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
                if current is not None and current.identity_id == identity_id:
                    current.active = False
                self._decide(s, sighting_id, identity_id, Decision.REJECT, actor, note, key_id)
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
    ) -> None:
        """Record an analyst's decision and its audit event."""
        crud.record_decision(
            s,
            sighting_id=sighting_id,
            identity_id=identity_id,
            decision=decision,
            actor=actor,
            note=note,
        )
        crud.record_audit(
            s,
            actor=actor,
            action=str(decision),
            entity="sighting",
            entity_id=sighting_id,
            details={"identity": identity_id},
            key_id=key_id,
        )

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
            self._sighting(s, sighting_id)
            if identity_id is None:
                identity_id = crud.create_identity(s, label=label, created_by=actor).id
            else:
                self._identity(s, identity_id)
            crud.assign(s, sighting_id, identity_id, provenance="analyst", actor=actor)
            crud.record_audit(
                s,
                actor=actor,
                action="assign",
                entity="sighting",
                entity_id=sighting_id,
                details={"identity": identity_id},
                key_id=key_id,
            )
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
        with self.svc.sessions.begin() as s:
            self._identity(s, target_id)
            for src in sources:
                ident = self._identity(s, src)
                for a in _active_of_identity(s, src):
                    crud.assign(s, a.sighting_id, target_id, provenance="analyst", actor=actor)
                    moved.append(a.sighting_id)
                ident.merged_into_id = target_id
            crud.record_audit(
                s,
                actor=actor,
                action="merge",
                entity="identity",
                entity_id=target_id,
                details={"sources": sources, "moved": len(moved)},
                key_id=key_id,
            )
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
            owned = {a.sighting_id for a in _active_of_identity(s, identity_id)}
            foreign = [i for i in wanted if i not in owned]
            if foreign:
                raise ReviewError(f"sightings {foreign} are not on identity {identity_id}")
            new = crud.create_identity(s, label=label, created_by=actor)
            for sid in wanted:
                crud.assign(s, sid, new.id, provenance="analyst", actor=actor)
            crud.record_audit(
                s,
                actor=actor,
                action="split",
                entity="identity",
                entity_id=identity_id,
                details={"new_identity": new.id, "sightings": wanted},
                key_id=key_id,
            )
            new_id = new.id
        self._mirror(wanted)
        return new_id

    # ---------------------------------------------------------------- reading
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
                    }
                    for d in decisions
                ],
            }


def _stands(s: Session, sighting_id: int, identity_id: int, decision: Decision) -> bool:
    """True when ``decision`` on this sighting and identity already holds: it is their latest
    decision and the assignment still agrees (confirmed: an analyst's on the identity;
    rejected: not on it). Repeating it would only duplicate the record."""
    latest = s.scalar(
        select(ReviewDecision.decision)
        .where(ReviewDecision.sighting_id == sighting_id, ReviewDecision.identity_id == identity_id)
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
