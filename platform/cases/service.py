"""Cases: an analyst opens one and pins tracks, sightings and searches to it, with notes.

Cases are shared by every analyst key (an investigation is team work); each change is one
transaction with its audit event (entity ``case``, the case id, the acting key), so a case's
history is its audit trail. A closed case is read-only until it is reopened.

A pinned search (a *query item*) keeps what was asked and what came back: the text, the query
images (stored in the object store under content-addressed ``queries/`` keys), the filters
and options, the encoder version, and every hit with its score at pin time.

The service needs the database and the object store only (not the index or the encoder), so
the command line can use it next to a running API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from aioreid.platform.db import crud
from aioreid.platform.db.enums import CaseItemKind, CaseStatus
from aioreid.platform.db.models import (
    Assignment,
    AuditEvent,
    Camera,
    Case,
    Sighting,
    Track,
)
from aioreid.platform.storage import ObjectStore
from aioreid.platform.storage.base import InvalidKey, normalise_ext

#: Query parts whose values are images (stored), as opposed to text (kept inline).
IMAGE_PARTS = ("rgb", "ir", "sketch")
_UNSET: Any = object()


class CaseError(ValueError):
    """A case action its state does not allow (pinning to a closed case, say)."""


def sighting_brief(
    row: Sighting, cameras: Mapping[int, str], identity: int | None, url: str | None
) -> dict[str, Any]:
    """A sighting as case items and evidence list it."""
    media = row.media
    return {
        "sighting_id": row.id,
        "track_id": row.track_id,
        "media_id": row.media_id,
        "camera_id": row.camera_id,
        "camera": cameras.get(row.camera_id) if row.camera_id is not None else None,
        "time": row.frame_time,
        "frame_index": row.frame_index,
        "offset_s": round(crud.sighting_offset_s(row, media), 3),
        "box": (row.box_x, row.box_y, row.box_w, row.box_h),
        "quality": row.quality,
        "modality": str(row.modality),
        "identity_id": identity,
        "object_key": row.object_key,
        "url": url,
    }


def track_brief(
    t: Track, cameras: Mapping[int, str], crops: Sequence[Sighting], url: str | None
) -> dict[str, Any]:
    """A track as case items and evidence list it (``url``: its best crop's link)."""
    return {
        "track_id": t.id,
        "media_id": t.media_id,
        "camera_id": t.camera_id,
        "camera": cameras.get(t.camera_id) if t.camera_id is not None else None,
        "modality": str(t.modality),
        "start_time": t.start_time,
        "end_time": t.end_time,
        "start_offset_s": t.start_offset_s,
        "end_offset_s": t.end_offset_s,
        "first_frame": t.first_frame,
        "last_frame": t.last_frame,
        "frames": t.frames,
        "sightings": [r.id for r in sorted(crops, key=lambda r: (r.frame_index, r.id))],
        "crop_url": url,
    }


def audit_row(ev: AuditEvent) -> dict[str, Any]:
    return {
        "id": ev.id,
        "at": ev.created_at,
        "actor": ev.actor,
        "key_id": ev.key_id,
        "action": ev.action,
        "entity": ev.entity,
        "entity_id": ev.entity_id,
        "details": ev.details,
    }


@dataclass
class CaseService:
    sessions: sessionmaker[Session]
    store: ObjectStore

    # ---------------------------------------------------------------- changes
    def _audit(
        self,
        s: Session,
        case_id: int,
        action: str,
        actor: str,
        key_id: int | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        crud.record_audit(
            s,
            actor=actor,
            action=action,
            entity="case",
            entity_id=case_id,
            details=details,
            key_id=key_id,
        )

    @staticmethod
    def _open(s: Session, case_id: int, doing: str) -> Case:
        case = crud.get_case(s, case_id, lock=True)
        if case.status is not CaseStatus.OPEN:
            raise CaseError(f"case {case_id} is closed: reopen it to {doing}")
        return case

    def check_open(self, case_id: int, doing: str = "pin items") -> None:
        """NotFoundError or CaseError unless the case exists and is open (a cheap check before
        work that would be wasted)."""
        with self.sessions() as s:
            case = crud.get_case(s, case_id)
            if case.status is not CaseStatus.OPEN:
                raise CaseError(f"case {case_id} is closed: reopen it to {doing}")

    def create(self, title: str, description: str | None, *, actor: str, key_id: int | None) -> int:
        with self.sessions.begin() as s:
            case = crud.create_case(
                s, title=title, description=description, created_by=actor, key_id=key_id
            )
            self._audit(s, case.id, "create", actor, key_id, {"title": case.title})
            return case.id

    def update(
        self,
        case_id: int,
        *,
        title: str | None = None,
        description: str | None = _UNSET,
        status: CaseStatus | str | None = None,
        actor: str,
        key_id: int | None,
    ) -> dict[str, Any]:
        """Change the title, description or status (``closed`` closes, ``open`` reopens);
        audited as ``close``, ``reopen`` or ``update``. Returns what changed."""
        with self.sessions.begin() as s:
            kwargs: dict[str, Any] = {"title": title, "status": status}
            if description is not _UNSET:
                kwargs["description"] = description
            _, changed = crud.update_case(s, case_id, **kwargs)
            if changed:
                action = "update"
                if "status" in changed:
                    action = "close" if changed["status"][1] == "closed" else "reopen"
                self._audit(s, case_id, action, actor, key_id, {"changed": changed})
            return changed

    def pin(
        self,
        case_id: int,
        kind: CaseItemKind | str,
        ref_id: int,
        note: str | None,
        *,
        actor: str,
        key_id: int | None,
    ) -> int:
        """Pin a track or sighting; returns the item id."""
        kind = CaseItemKind(kind)
        if kind is CaseItemKind.QUERY:
            raise CaseError("pin a query with pin_query")
        with self.sessions.begin() as s:
            self._open(s, case_id, "pin items")
            item = crud.add_case_item(
                s, case_id, kind=kind, ref_id=ref_id, note=note, pinned_by=actor, key_id=key_id
            )
            details = {"item": item.id, "kind": str(kind), "ref": ref_id}
            self._audit(s, case_id, "pin", actor, key_id, details)
            return item.id

    def pin_query(
        self,
        case_id: int,
        query: dict[str, Any],
        note: str | None,
        *,
        actor: str,
        key_id: int | None,
    ) -> int:
        """Pin a search as :func:`query_record` describes it; returns the item id."""
        with self.sessions.begin() as s:
            self._open(s, case_id, "pin items")
            item = crud.add_case_item(
                s, case_id, kind="query", query=query, note=note, pinned_by=actor, key_id=key_id
            )
            details = {
                "item": item.id,
                "kind": "query",
                "parts": sorted(query.get("parts", {})),
                "hits": len(query.get("hits", [])),
            }
            self._audit(s, case_id, "pin", actor, key_id, details)
            return item.id

    def set_note(
        self, case_id: int, item_id: int, note: str | None, *, actor: str, key_id: int | None
    ) -> None:
        with self.sessions.begin() as s:
            self._open(s, case_id, "change notes")
            item = crud.get_case_item(s, case_id, item_id)
            if item.note != note:
                details = {"item": item.id, "old": item.note, "new": note}
                item.note = note
                self._audit(s, case_id, "note", actor, key_id, details)

    def unpin(self, case_id: int, item_id: int, *, actor: str, key_id: int | None) -> None:
        """Remove an item; its audit event keeps what it was (kind, ref, note, query)."""
        with self.sessions.begin() as s:
            self._open(s, case_id, "unpin items")
            item = crud.get_case_item(s, case_id, item_id)
            details = {
                "item": item.id,
                "kind": str(item.kind),
                "ref": item.ref_id,
                "note": item.note,
                "pinned_by": item.pinned_by,
            }
            if item.query is not None:
                details["query"] = item.query
            s.delete(item)
            self._audit(s, case_id, "unpin", actor, key_id, details)

    def store_query_image(self, part: str, data: bytes, filename: str | None) -> dict[str, Any]:
        """Keep a query image in the object store (content-addressed: the same image twice is
        stored once); returns what a query item records of it."""
        ext = PurePosixPath(filename or "").suffix
        try:
            ext = normalise_ext(ext)
        except InvalidKey:
            ext = ""
        key = self.store.put_bytes(data, kind="queries", ext=ext)
        return {
            "object_key": key,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "filename": filename,
        }

    # ---------------------------------------------------------------- reading
    def list_cases(
        self, *, status: str | None = None, offset: int = 0, limit: int = 50
    ) -> dict[str, Any]:
        with self.sessions() as s:
            rows, total = crud.list_cases(s, status=status, offset=offset, limit=limit)
            items = [{**_case_fields(c), "items": n} for c, n in rows]
        return {"items": items, "offset": offset, "limit": limit, "total": total}

    def describe(self, case_id: int, *, urls: bool = True) -> dict[str, Any]:
        """The case with its items (each hydrated: the track, the sighting, or the query with
        links to its images; ``missing`` when the track or sighting no longer exists) and its
        history (its audit events, oldest first)."""
        sign = self.store.presigned_url if urls else (lambda key: None)
        with self.sessions() as s:
            case = crud.get_case(s, case_id)
            items = list(case.items)
            cams = {c.id: c.name for c in s.scalars(sa.select(Camera))}
            track_ids = [i.ref_id for i in items if i.kind is CaseItemKind.TRACK]
            sighting_ids = [i.ref_id for i in items if i.kind is CaseItemKind.SIGHTING]
            tracks = {t.id: t for t in s.scalars(sa.select(Track).where(Track.id.in_(track_ids)))}
            crops = crud.sightings_by_track(s, list(tracks))
            sightings = {
                r.id: r for r in s.scalars(sa.select(Sighting).where(Sighting.id.in_(sighting_ids)))
            }
            identities = dict(
                s.execute(
                    sa.select(Assignment.sighting_id, Assignment.identity_id).where(
                        Assignment.sighting_id.in_(list(sightings)), Assignment.active.is_(True)
                    )
                ).all()
            )
            out_items = []
            for i in items:
                row: dict[str, Any] = {
                    "id": i.id,
                    "kind": str(i.kind),
                    "ref_id": i.ref_id,
                    "note": i.note,
                    "pinned_by": i.pinned_by,
                    "pinned_at": i.created_at,
                    "missing": False,
                    "track": None,
                    "sighting": None,
                    "query": None,
                }
                if i.kind is CaseItemKind.TRACK:
                    t = tracks.get(i.ref_id)  # type: ignore[arg-type]
                    if t is None:
                        row["missing"] = True
                    else:
                        mine = crops.get(t.id, [])
                        best = crud.representative(mine)
                        url = sign(best.object_key) if best is not None else None
                        row["track"] = track_brief(t, cams, mine, url)
                elif i.kind is CaseItemKind.SIGHTING:
                    r = sightings.get(i.ref_id)  # type: ignore[arg-type]
                    if r is None:
                        row["missing"] = True
                    else:
                        row["sighting"] = sighting_brief(
                            r, cams, identities.get(r.id), sign(r.object_key)
                        )
                else:
                    row["query"] = _with_image_urls(i.query or {}, sign)
                out_items.append(row)
            history = s.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.entity == "case", AuditEvent.entity_id == str(case_id))
                .order_by(AuditEvent.id)
            )
            return {
                **_case_fields(case),
                "items": out_items,
                "history": [audit_row(ev) for ev in history],
            }


def _case_fields(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "title": case.title,
        "description": case.description,
        "status": str(case.status),
        "created_by": case.created_by,
        "key_id": case.key_id,
        "created_at": case.created_at,
        "updated_at": case.updated_at,
        "closed_at": case.closed_at,
    }


def _with_image_urls(query: dict[str, Any], sign: Any) -> dict[str, Any]:
    """A stored query with a signed ``url`` beside each image part's object key."""
    parts = dict(query.get("parts") or {})
    for name in IMAGE_PARTS:
        part = parts.get(name)
        if isinstance(part, dict) and part.get("object_key"):
            parts[name] = {**part, "url": sign(part["object_key"])}
    return {**query, "parts": parts}


def query_record(
    parts: Mapping[str, Any],
    response: Any,
    *,
    filters: Mapping[str, Any],
    options: Mapping[str, Any],
    searched_at: datetime,
    similar_to: int | None = None,
) -> dict[str, Any]:
    """What a query item keeps of a search: its inputs (``parts``: the text itself, images as
    :meth:`CaseService.store_query_image` records them; or ``similar_to``, a sighting id), its
    filters and options, and from ``response`` (a SearchResponse) the encoder version, the
    collection and each hit's rank, ids and scores."""
    return {
        "type": "similar" if similar_to is not None else "search",
        "parts": dict(parts),
        "similar_to": similar_to,
        "filters": dict(filters),
        "options": dict(options),
        "encoder_version": response.encoder_version,
        "collection": response.collection,
        "level": response.level,
        "searched_at": searched_at.isoformat(),
        "has_more": response.has_more,
        "hits": [
            {
                "rank": response.offset + n + 1,
                "sighting_id": h.sighting_id,
                "track_id": h.track_id,
                "score": h.score,
                "part_scores": h.part_scores,
                "best_part": h.best_part,
                "camera_id": h.camera_id,
                "time": h.time.isoformat() if h.time is not None else None,
                "identity_id": h.identity_id,
                "review": h.review,
            }
            for n, h in enumerate(response.hits)
        ],
    }
