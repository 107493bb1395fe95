"""Review routes: confirm, reject, assign, merge, split; identities and sightings."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from sqlalchemy import func, select

from aioreid.platform.api.deps import Caller, get_services, require_role
from aioreid.platform.api.routes_tracks import sighting_offset_s
from aioreid.platform.api.schemas import (
    MAX_ID,
    MAX_SMALL_ID,
    Ack,
    AssignRequest,
    ConfirmRequest,
    IdentityList,
    IdentityOut,
    IdentitySummary,
    MergeRequest,
    SightingOut,
    SplitRequest,
    error_responses,
)
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
    ReviewService(svc).confirm(
        body.sighting_id, body.identity_id, caller.actor, body.note, key_id=caller.key_id
    )
    return Ack(identity_id=body.identity_id)


@router.post("/review/reject", response_model=Ack, responses=_ACTION_ERRORS)
def reject(
    body: ConfirmRequest,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> Ack:
    """The sighting is not this identity; it leaves the identity and its searches."""
    ReviewService(svc).reject(
        body.sighting_id, body.identity_id, caller.actor, body.note, key_id=caller.key_id
    )
    return Ack(identity_id=body.identity_id)


@router.post("/review/assign", response_model=Ack, responses=_ACTION_ERRORS)
def assign(
    body: AssignRequest,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> Ack:
    """Put a sighting on an identity (a new one when ``identity_id`` is null)."""
    ident = ReviewService(svc).assign(
        body.sighting_id, body.identity_id, caller.actor, body.label, key_id=caller.key_id
    )
    return Ack(identity_id=ident)


@router.post("/identities/merge", response_model=Ack, responses=_ACTION_ERRORS)
def merge(
    body: MergeRequest,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> Ack:
    moved = ReviewService(svc).merge(
        body.target_id, body.source_ids, caller.actor, key_id=caller.key_id
    )
    return Ack(identity_id=body.target_id, moved=moved)


@router.post("/identities/{identity_id}/split", response_model=Ack, responses=_ACTION_ERRORS)
def split(
    body: SplitRequest,
    identity_id: int = Path(ge=1, le=MAX_SMALL_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> Ack:
    new = ReviewService(svc).split(
        identity_id, body.sighting_ids, caller.actor, body.label, key_id=caller.key_id
    )
    return Ack(identity_id=new, moved=len(set(body.sighting_ids)))


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
            clip_offset_s=round(sighting_offset_s(row, media), 3),
        )
