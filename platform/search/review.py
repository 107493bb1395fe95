"""Analyst review: confirm or reject a match, (re)assign a sighting, merge and split identities.

Every change is written in one database transaction together with its review decision and/or
audit event (who, when, what), then mirrored into the live index payload (``identity``) so
identity filters follow at once. The database is the source of truth: search reads review
state and identities from it, never only from the payload.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from aioreid.platform.db import crud
from aioreid.platform.db.models import (
    Assignment,
    Identity,
    IndexGeneration,
    ReviewDecision,
    Sighting,
)
from aioreid.platform.pipeline.ingest import sync_track_identities
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
    def _sighting(self, s: Session, sighting_id: int) -> Sighting:
        row = s.get(Sighting, sighting_id)
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

    def _mirror(self, changes: Iterable[tuple[str, int | None]]) -> None:
        """Write identity changes into the live collection's payloads, and into collections a
        re-index is building (only points they already hold: later steps read the database).

        Building collections are listed before the alias is read, so a generation going live
        meanwhile is reached one way or the other.
        """
        changes = list(changes)
        by_identity: dict[int | None, list[str]] = {}
        for point, ident in changes:
            by_identity.setdefault(ident, []).append(point)
        with self.svc.sessions() as s:
            building = list(
                s.scalars(
                    select(IndexGeneration.collection).where(IndexGeneration.status == "building")
                )
            )
        live = self.svc.index.resolve_alias(self.svc.alias)
        sighting_points = [p for p, _ in changes]
        for collection in building:
            if collection == live:
                continue
            for ident, points in by_identity.items():
                held = [p.id for p in self.svc.index.retrieve(collection, points)]
                if held:
                    self.svc.index.set_payload(collection, held, {"identity": ident})
            sync_track_identities(self.svc, collection, sighting_points)
        if live is None:
            return
        for ident, points in by_identity.items():
            self.svc.index.set_payload(live, points, {"identity": ident})
        # Their tracks' pooled points follow (a track is found through any of its sightings).
        sync_track_identities(self.svc, live, sighting_points)

    # ---------------------------------------------------------------- actions
    def confirm(self, sighting_id: int, identity_id: int, actor: str, note: str = "") -> None:
        """The sighting is this identity (an analyst assignment)."""
        with self.svc.sessions.begin() as s:
            row = self._sighting(s, sighting_id)
            self._identity(s, identity_id)
            crud.assign(s, sighting_id, identity_id, provenance="analyst", actor=actor)
            crud.record_decision(
                s,
                sighting_id=sighting_id,
                identity_id=identity_id,
                decision="confirm",
                actor=actor,
                note=note,
            )
            point = row.point_id
        self._mirror([(point, identity_id)])

    def reject(self, sighting_id: int, identity_id: int, actor: str, note: str = "") -> None:
        """The sighting is NOT this identity: it leaves the identity and its searches."""
        with self.svc.sessions.begin() as s:
            row = self._sighting(s, sighting_id)
            self._identity(s, identity_id)
            crud.record_decision(
                s,
                sighting_id=sighting_id,
                identity_id=identity_id,
                decision="reject",
                actor=actor,
                note=note,
            )
            current = _active(s, sighting_id)
            changed = current is not None and current.identity_id == identity_id
            if changed:
                current.active = False
            point = row.point_id
        if changed:
            self._mirror([(point, None)])

    def assign(
        self, sighting_id: int, identity_id: int | None, actor: str, label: str | None = None
    ) -> int:
        """Put the sighting on an identity (a new one when ``identity_id`` is None)."""
        with self.svc.sessions.begin() as s:
            row = self._sighting(s, sighting_id)
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
            )
            point = row.point_id
        self._mirror([(point, identity_id)])
        return identity_id

    def merge(self, target_id: int, source_ids: Sequence[int], actor: str) -> int:
        """Move every sighting of ``source_ids`` onto ``target_id``; sources are retired."""
        sources = sorted(set(source_ids))
        if not sources:
            raise ReviewError("merge needs at least one source identity")
        if target_id in sources:
            raise ReviewError(f"cannot merge identity {target_id} into itself")
        changes = []
        with self.svc.sessions.begin() as s:
            self._identity(s, target_id)
            for src in sources:
                ident = self._identity(s, src)
                for a in _active_of_identity(s, src):
                    crud.assign(s, a.sighting_id, target_id, provenance="analyst", actor=actor)
                    changes.append((s.get(Sighting, a.sighting_id).point_id, target_id))  # type: ignore[union-attr]
                ident.merged_into_id = target_id
            crud.record_audit(
                s,
                actor=actor,
                action="merge",
                entity="identity",
                entity_id=target_id,
                details={"sources": sources, "moved": len(changes)},
            )
        self._mirror(changes)
        return len(changes)

    def split(
        self, identity_id: int, sighting_ids: Sequence[int], actor: str, label: str | None = None
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
            changes = []
            for sid in wanted:
                crud.assign(s, sid, new.id, provenance="analyst", actor=actor)
                changes.append((self._sighting(s, sid).point_id, new.id))
            crud.record_audit(
                s,
                actor=actor,
                action="split",
                entity="identity",
                entity_id=identity_id,
                details={"new_identity": new.id, "sightings": wanted},
            )
            new_id = new.id
        self._mirror(changes)
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
