"""Review routes: confirm (one or many), reject, assign, merge (with a preview), split, undo;
identities and sightings."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from sqlalchemy import func, select

from aioreid.platform.api.deps import Caller, get_services, require_role
from aioreid.platform.api.schemas import (
    MAX_ID,
    MAX_SMALL_ID,
    Ack,
    AssignRequest,
    BulkConfirmRequest,
    ConfirmRequest,
    IdentityList,
    IdentityOut,
    IdentitySummary,
    MergePreviewOut,
    MergeRequest,
    SightingOut,
    SplitRequest,
    UndoOut,
    UndoRequest,
    error_responses,
)
from aioreid.platform.db import crud
from aioreid.platform.db.models import Assignment, Identity, Sighting
from aioreid.platform.search.review import ReviewService
from aioreid.platform.services import Services

router = APIRouter(prefix="/v1", tags=["review"])
#: A review action names sightings and identities that must exist and be in a state that allows
#: it (409 otherwise); it updates the index, which may be unavailable.
_ACTION_ERRORS = error_responses(400, 404, 409, 503)


@router.post("/review/confirm", response_model=Ack, responses=_ACTION_ERRORS)
def confirm(
    body: ConfirmRequest,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> Ack:
    """The sighting is this identity."""
    review = ReviewService(svc)
    review.confirm(
        body.sighting_id, body.identity_id, caller.actor, body.note, key_id=caller.key_id
    )
    return Ack(identity_id=body.identity_id, event_id=review.last_event)


@router.post("/review/reject", response_model=Ack, responses=_ACTION_ERRORS)
def reject(
    body: ConfirmRequest,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> Ack:
    """The sighting is not this identity; it leaves the identity and its searches."""
    review = ReviewService(svc)
    review.reject(body.sighting_id, body.identity_id, caller.actor, body.note, key_id=caller.key_id)
    return Ack(identity_id=body.identity_id, event_id=review.last_event)


@router.post("/review/assign", response_model=Ack, responses=_ACTION_ERRORS)
def assign(
    body: AssignRequest,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> Ack:
    """Put a sighting on an identity (a new one when ``identity_id`` is null)."""
    review = ReviewService(svc)
    ident = review.assign(
        body.sighting_id, body.identity_id, caller.actor, body.label, key_id=caller.key_id
    )
    return Ack(identity_id=ident, event_id=review.last_event)


@router.post("/review/confirm-bulk", response_model=Ack, responses=_ACTION_ERRORS)
def confirm_bulk(
    body: BulkConfirmRequest,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> Ack:
    """These sightings are all this identity: one transaction, all or none; ``moved`` says
    how many were confirmed now (those already confirmed stay as they are)."""
    changed = ReviewService(svc).confirm_bulk(
        body.sighting_ids, body.identity_id, caller.actor, body.note, key_id=caller.key_id
    )
    return Ack(identity_id=body.identity_id, moved=changed)


@router.post("/review/undo", response_model=UndoOut, responses=_ACTION_ERRORS)
def undo(
    body: UndoRequest,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> UndoOut:
    """Undo a merge, split, reject, confirm or assign, named by its audit event id: the
    sightings get back their previous assignments (or none), a reject's or confirm's decision
    stops counting, and the index payloads follow. 409 when it was undone already or a later
    action touched the same sightings or identities. Audited as ``undo``."""
    return UndoOut.model_validate(
        ReviewService(svc).undo(body.event_id, caller.actor, key_id=caller.key_id)
    )


@router.get(
    "/identities/merge-preview",
    response_model=MergePreviewOut,
    responses=error_responses(404, 409),
)
def merge_preview(
    target: int = Query(ge=1, le=MAX_SMALL_ID, description="the identity that stays"),
    sources: list[str] = Query(
        min_length=1,
        max_length=100,
        description="identities to merge into it: repeat the key or separate ids by commas",
    ),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> MergePreviewOut:
    """What a merge would give, refused (409) as the merge would be: per identity its
    sightings, tracks, cameras, time span and best crops; the result; and sightings seen at
    nearly the same time on different cameras."""
    ids = []
    for part in (p.strip() for value in sources for p in value.split(",")):
        if not part.isdigit() or not 1 <= int(part) <= MAX_SMALL_ID:
            raise HTTPException(422, f"sources: {part!r} is not an identity id")
        ids.append(int(part))
    if len(ids) > 100:
        raise HTTPException(422, "sources: at most 100 identities at once")
    return MergePreviewOut.model_validate(ReviewService(svc).merge_preview(target, ids))


@router.post("/identities/merge", response_model=Ack, responses=_ACTION_ERRORS)
def merge(
    body: MergeRequest,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> Ack:
    review = ReviewService(svc)
    moved = review.merge(body.target_id, body.source_ids, caller.actor, key_id=caller.key_id)
    return Ack(identity_id=body.target_id, moved=moved, event_id=review.last_event)


@router.post("/identities/{identity_id}/split", response_model=Ack, responses=_ACTION_ERRORS)
def split(
    body: SplitRequest,
    identity_id: int = Path(ge=1, le=MAX_SMALL_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> Ack:
    review = ReviewService(svc)
    new = review.split(
        identity_id, body.sighting_ids, caller.actor, body.label, key_id=caller.key_id
    )
    return Ack(identity_id=new, moved=len(set(body.sighting_ids)), event_id=review.last_event)


@router.get("/identities/{identity_id}", response_model=IdentityOut, responses=error_responses(404))
def identity(
    identity_id: int = Path(ge=1, le=MAX_SMALL_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> IdentityOut:
    return IdentityOut.model_validate(ReviewService(svc).identity(identity_id))


@router.get("/identities", response_model=IdentityList)
def identities(
    offset: int = Query(default=0, ge=0, le=MAX_ID),
    limit: int = Query(default=50, ge=1, le=500),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> IdentityList:
    """Identities that were not merged away, with their sighting counts, newest first."""
    with svc.sessions() as s:
        live = Identity.merged_into_id.is_(None)
        total = s.scalar(select(func.count()).select_from(Identity).where(live)) or 0
        counts = (
            select(Assignment.identity_id, func.count().label("n"))
            .where(Assignment.active.is_(True))
            .group_by(Assignment.identity_id)
            .subquery()
        )
        rows = s.execute(
            select(Identity.id, Identity.label, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.identity_id == Identity.id)
            .where(live)
            .order_by(Identity.id.desc())
            .offset(offset)
            .limit(limit)
        ).all()
    items = [IdentitySummary(id=i, label=lbl, sightings=n) for i, lbl, n in rows]
    return IdentityList(items=items, offset=offset, limit=limit, total=total)


@router.get("/sightings/{sighting_id}", response_model=SightingOut, responses=error_responses(404))
def sighting(
    sighting_id: int = Path(ge=1, le=MAX_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> SightingOut:
    """One sighting: its crop, its track, and a signed link into its source media."""
    with svc.sessions() as s:
        row = s.get(Sighting, sighting_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"sighting {sighting_id} does not exist")
        ident = s.scalar(
            select(Assignment.identity_id).where(
                Assignment.sighting_id == sighting_id, Assignment.active.is_(True)
            )
        )
        media = row.media
        return SightingOut(
            sighting_id=row.id,
            media_id=row.media_id,
            camera_id=row.camera_id,
            time=row.frame_time,
            modality=row.modality,
            box=(row.box_x, row.box_y, row.box_w, row.box_h),
            quality=row.quality,
            identity_id=ident,
            object_key=row.object_key,
            url=svc.store.presigned_url(row.object_key),
            track_id=row.track_id,
            frame_index=row.frame_index,
            clip_url=svc.store.presigned_url(media.object_key),
            clip_offset_s=round(crud.sighting_offset_s(row, media), 3),
        )
