"""Case routes: open a case, pin tracks, sightings and searches to it with notes, close it,
and export it as an evidence ZIP (see :mod:`aioreid.platform.cases`).

Cases are shared by every analyst key; each change is audited (entity ``case``) with the
calling key, and a case's audit events come back with it as its ``history``.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path as FilePath
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from aioreid.platform.api.deps import Caller, get_services, require_role
from aioreid.platform.api.routes_search import _filters, _level
from aioreid.platform.api.schemas import (
    MAX_ID,
    MAX_SMALL_ID,
    CaseCreate,
    CaseList,
    CaseOut,
    CaseUpdate,
    NoteRequest,
    PinRequest,
    error_responses,
)
from aioreid.platform.api.uploads import read_upload
from aioreid.platform.cases.evidence import export_case
from aioreid.platform.cases.service import CaseService, query_record
from aioreid.platform.search.schemas import SearchOptions
from aioreid.platform.search.service import SearchService
from aioreid.platform.services import Services

router = APIRouter(prefix="/v1", tags=["cases"])

_CHANGE_ERRORS = error_responses(400, 404, 409)
_ZIP_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/zip": {}},
        "description": "the evidence ZIP; its manifest's SHA-256 is in X-Manifest-SHA256",
    },
    **error_responses(404, 503),
}


def _cases(svc: Services) -> CaseService:
    return CaseService(svc.sessions, svc.store)


def _case_out(svc: Services, case_id: int) -> CaseOut:
    return CaseOut.model_validate(_cases(svc).describe(case_id))


CaseId = Path(ge=1, le=MAX_SMALL_ID)


@router.get("/cases", response_model=CaseList)
def list_cases(
    status: Literal["open", "closed"] | None = Query(default=None),
    offset: int = Query(default=0, ge=0, le=MAX_ID),
    limit: int = Query(default=50, ge=1, le=500),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> CaseList:
    """Cases, newest first, with their item counts and a total for paging."""
    return CaseList.model_validate(
        _cases(svc).list_cases(status=status, offset=offset, limit=limit)
    )


@router.post("/cases", response_model=CaseOut, status_code=201, responses=error_responses(400))
def create_case(
    body: CaseCreate,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> CaseOut:
    """Open a case."""
    case_id = _cases(svc).create(
        body.title, body.description, actor=caller.actor, key_id=caller.key_id
    )
    return _case_out(svc, case_id)


@router.get("/cases/{case_id}", response_model=CaseOut, responses=error_responses(404))
def get_case(
    case_id: int = CaseId,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> CaseOut:
    """A case with its items (tracks, sightings and searches with notes) and its history."""
    return _case_out(svc, case_id)


@router.patch("/cases/{case_id}", response_model=CaseOut, responses=_CHANGE_ERRORS)
def update_case(
    body: CaseUpdate,
    case_id: int = CaseId,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> CaseOut:
    """Change the title or description; ``status`` closed closes it (read-only), open
    reopens it. A field left out stays as it is."""
    fields: dict[str, Any] = {"title": body.title, "status": body.status}
    if "description" in body.model_fields_set:
        fields["description"] = body.description
    _cases(svc).update(case_id, **fields, actor=caller.actor, key_id=caller.key_id)
    return _case_out(svc, case_id)


@router.post(
    "/cases/{case_id}/items", response_model=CaseOut, status_code=201, responses=_CHANGE_ERRORS
)
def pin_item(
    body: PinRequest,
    case_id: int = CaseId,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> CaseOut:
    """Pin a track or a sighting, with a note. 409 when the case is closed or the item is
    pinned already."""
    _cases(svc).pin(
        case_id, body.kind, body.ref_id, body.note, actor=caller.actor, key_id=caller.key_id
    )
    return _case_out(svc, case_id)


@router.post(
    "/cases/{case_id}/queries",
    response_model=CaseOut,
    status_code=201,
    responses=error_responses(400, 404, 409, 413, 503),
)
def pin_query(
    case_id: int = CaseId,
    text: str | None = Form(default=None, description="a description of the person"),
    rgb: UploadFile | None = File(default=None, description="an RGB photo"),
    ir: UploadFile | None = File(default=None, description="an infrared image"),
    sketch: UploadFile | None = File(default=None, description="a sketch"),
    similar_to: int | None = Form(
        default=None, ge=1, le=MAX_ID, description="a find-similar query: the sighting id"
    ),
    filters: str | None = Form(default=None, description="SearchFilters as JSON"),
    limit: int = Form(default=20, ge=1, le=500),
    offset: int = Form(default=0, ge=0, le=10_000),
    threshold: float | None = Form(default=None, ge=-1.0, le=1.0),
    for_identity: int | None = Form(default=None, ge=1, le=MAX_SMALL_ID),
    level: str = Form(default="track"),
    note: str | None = Form(default=None, max_length=20_000),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> CaseOut:
    """Pin a search: the same fields as ``POST /v1/search`` (or ``similar_to`` for a
    find-similar). The search runs now; the item keeps its inputs (query images are stored),
    filters, options, encoder version and every hit with its score."""
    chosen = _level(level)
    cases = _cases(svc)
    cases.check_open(case_id)
    limit_bytes = int(svc.settings.api.max_upload_mb * 1024 * 1024)
    images: dict[str, tuple[bytes, str | None]] = {}
    for name, upload in (("rgb", rgb), ("ir", ir), ("sketch", sketch)):
        if upload is not None:
            images[name] = (read_upload(upload, limit_bytes, field=name), upload.filename)
    parts: dict[str, Any] = {name: data for name, (data, _) in images.items()}
    if text is not None and text.strip():
        parts["text"] = text
    if similar_to is not None and parts:
        raise HTTPException(
            422, "a pinned query is a search (text, rgb, ir, sketch) or similar_to, not both"
        )
    if similar_to is None and not parts:
        raise HTTPException(422, "a query needs at least one part: text, rgb, ir or sketch")
    chosen_filters = _filters(filters)
    options = SearchOptions(
        limit=limit, offset=offset, threshold=threshold, for_identity=for_identity, level=chosen
    )
    searched_at = datetime.now(timezone.utc)
    search = SearchService(svc)
    if similar_to is not None:
        response = search.find_similar(similar_to, chosen_filters, options)
    else:
        response = search.search(parts, chosen_filters, options)
    stored: dict[str, Any] = {
        name: cases.store_query_image(name, data, filename)
        for name, (data, filename) in images.items()
    }
    if "text" in parts:
        stored["text"] = parts["text"]
    record = query_record(
        stored,
        response,
        filters=chosen_filters.model_dump(mode="json", exclude_none=True),
        options=options.model_dump(mode="json"),
        searched_at=searched_at,
        similar_to=similar_to,
    )
    cases.pin_query(case_id, record, note, actor=caller.actor, key_id=caller.key_id)
    return _case_out(svc, case_id)


@router.patch("/cases/{case_id}/items/{item_id}", response_model=CaseOut, responses=_CHANGE_ERRORS)
def set_note(
    body: NoteRequest,
    case_id: int = CaseId,
    item_id: int = Path(ge=1, le=MAX_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> CaseOut:
    """Change an item's note (null removes it)."""
    _cases(svc).set_note(case_id, item_id, body.note, actor=caller.actor, key_id=caller.key_id)
    return _case_out(svc, case_id)


@router.delete("/cases/{case_id}/items/{item_id}", response_model=CaseOut, responses=_CHANGE_ERRORS)
def unpin_item(
    case_id: int = CaseId,
    item_id: int = Path(ge=1, le=MAX_ID),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> CaseOut:
    """Unpin an item; its audit event keeps what it was, note included."""
    _cases(svc).unpin(case_id, item_id, actor=caller.actor, key_id=caller.key_id)
    return _case_out(svc, case_id)


@router.post("/cases/{case_id}/export", response_class=FileResponse, responses=_ZIP_RESPONSE)
def export(
    case_id: int = CaseId,
    media: Literal["original", "reference"] = Query(
        default="original",
        description="original: the source media's untranscoded bytes; reference: only their "
        "SHA-256 and size (for very long videos)",
    ),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> FileResponse:
    """The case's evidence ZIP: original media, crops, frames with boxes, pinned searches,
    review decisions and audit events, and a manifest with every file's SHA-256 (check it
    with ``aioreid case verify``). Built on disk and streamed; the export is audited."""
    tmp = tempfile.mkdtemp(prefix="aioreid-evidence-")
    try:
        result = export_case(
            svc.sessions,
            svc.store,
            case_id,
            FilePath(tmp) / f"case-{case_id}-evidence.zip",
            actor=caller.actor,
            key_id=caller.key_id,
            media=media,
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return FileResponse(
        result.path,
        media_type="application/zip",
        filename=f"case-{case_id}-evidence-{stamp}.zip",
        headers={"X-Manifest-SHA256": result.manifest_sha256, "Cache-Control": "no-store"},
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )
