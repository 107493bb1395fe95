"""Search routes: multimodal search (multipart) and find-similar."""

from __future__ import annotations

import json
from typing import cast, get_args

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, UploadFile
from pydantic import ValidationError

from aioreid.platform.api.deps import Caller, get_services, require_role
from aioreid.platform.api.schemas import (
    MAX_ID,
    MAX_SMALL_ID,
    SimilarRequest,
    error_responses,
    known_keys,
)
from aioreid.platform.api.uploads import read_upload
from aioreid.platform.search.schemas import (
    Level,
    SearchFilters,
    SearchOptions,
    SearchResponse,
)
from aioreid.platform.search.service import SearchService
from aioreid.platform.services import Services

router = APIRouter(prefix="/v1", tags=["search"])

LEVELS: tuple[str, ...] = get_args(Level)


def _filters(raw: str | None) -> SearchFilters:
    if not raw:
        return SearchFilters()
    try:
        return SearchFilters.model_validate(known_keys(SearchFilters, json.loads(raw)))
    except json.JSONDecodeError as exc:
        raise HTTPException(422, f"filters is not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise HTTPException(422, "filters is nested too deeply") from None
    except ValidationError as exc:
        raise HTTPException(
            422,
            [{"loc": ["filters", *e["loc"]], "msg": e["msg"]} for e in exc.errors()],
        ) from None
    except ValueError as exc:  # unknown keys, from known_keys
        raise HTTPException(422, [{"loc": ["filters"], "msg": str(exc)}]) from None


def _level(raw: str) -> Level:
    # Checked here, not by a Literal annotation, so the 422 says in words what is allowed.
    value = raw.strip().lower()
    if value not in LEVELS:
        raise HTTPException(422, f"level must be {' or '.join(map(repr, LEVELS))}, got {raw!r}")
    return cast(Level, value)


@router.post("/search", response_model=SearchResponse, responses=error_responses(400, 413, 503))
def search(
    text: str | None = Form(default=None, description="a description of the person"),
    rgb: UploadFile | None = File(default=None, description="an RGB photo"),
    ir: UploadFile | None = File(default=None, description="an infrared image"),
    sketch: UploadFile | None = File(default=None, description="a sketch"),
    filters: str | None = Form(default=None, description="SearchFilters as JSON"),
    limit: int = Form(default=20, ge=1, le=500),
    offset: int = Form(default=0, ge=0, le=10_000),
    threshold: float | None = Form(default=None, ge=-1.0, le=1.0),
    group_by_identity: bool = Form(default=False),
    for_identity: int | None = Form(default=None, ge=1, le=MAX_SMALL_ID),
    level: str = Form(
        default="track",
        description="track: one hit per person track; sighting: one hit per crop",
    ),
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> SearchResponse:
    """Search with any combination of an RGB image, an IR image, a sketch and a text."""
    chosen = _level(level)  # before reading uploads: a typo fails fast
    limit_bytes = int(svc.settings.api.max_upload_mb * 1024 * 1024)
    parts: dict[str, bytes | str] = {}
    for name, upload in (("rgb", rgb), ("ir", ir), ("sketch", sketch)):
        if upload is not None:
            parts[name] = read_upload(upload, limit_bytes, field=name)
    if text is not None and text.strip():
        parts["text"] = text
    if not parts:
        raise HTTPException(
            422,
            "a query needs at least one part: text, rgb, ir or sketch",
        )
    options = SearchOptions(
        limit=limit,
        offset=offset,
        threshold=threshold,
        group_by_identity=group_by_identity,
        for_identity=for_identity,
        level=chosen,
    )
    return SearchService(svc).search(parts, _filters(filters), options)


@router.post(
    "/sightings/{sighting_id}/similar",
    response_model=SearchResponse,
    responses=error_responses(400, 404, 503),
)
def find_similar(
    sighting_id: int = Path(ge=1, le=MAX_ID),
    body: SimilarRequest | None = None,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> SearchResponse:
    """Sightings that look like a stored one."""
    body = body or SimilarRequest()
    return SearchService(svc).find_similar(sighting_id, body.filters, body.options)
