"""Search routes: multimodal search (multipart) and find-similar.

Each answered search is one audit event (action ``search``, entity ``search``; a find-similar
names its sighting as ``entity_id``): the query's part kinds and text (never image bytes), the
filters and options that differ from the defaults, the encoder version and the hit count. It
is one small insert, run as a background task once the answer is sent, so it adds nothing to
a search's latency (a process killed in between loses that one event).
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast, get_args

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    File,
    Form,
    HTTPException,
    Path,
    UploadFile,
)
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
from aioreid.platform.db import crud
from aioreid.platform.search.schemas import (
    Level,
    SearchFilters,
    SearchOptions,
    SearchResponse,
)
from aioreid.platform.search.service import SearchService
from aioreid.platform.services import Services

router = APIRouter(prefix="/v1", tags=["search"])
_log = logging.getLogger(__name__)

LEVELS: tuple[str, ...] = get_args(Level)
#: The longest query text an audit event keeps.
AUDIT_TEXT_CHARS = 500


def _audit_search(*args: Any, **kwargs: Any) -> None:
    # After the answer is sent: a failure here can only be logged, never reach the caller.
    try:
        audit_search(*args, **kwargs)
    except Exception:
        _log.exception("could not record the audit event of a search")


def audit_search(
    svc: Services,
    caller: Caller,
    parts: list[str],
    filters: SearchFilters,
    options: SearchOptions,
    response: SearchResponse,
    *,
    text: str | None = None,
    similar_to: int | None = None,
) -> None:
    """Record an answered search (one insert in its own short transaction)."""
    details: dict[str, Any] = {
        "parts": parts,
        "filters": filters.model_dump(mode="json", exclude_defaults=True),
        "options": options.model_dump(mode="json", exclude_defaults=True),
        "level": response.level,
        "encoder_version": response.encoder_version,
        "hits": len(response.hits),
        "has_more": response.has_more,
    }
    if text is not None:
        details["text"] = text[:AUDIT_TEXT_CHARS]
    with svc.sessions.begin() as s:
        crud.record_audit(
            s,
            actor=caller.actor,
            action="search",
            entity="search",
            entity_id=similar_to,
            details=details,
            key_id=caller.key_id,
        )


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
    background: BackgroundTasks,
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
    chosen_filters = _filters(filters)
    response = SearchService(svc).search(parts, chosen_filters, options)
    query_text = parts.get("text")
    background.add_task(
        _audit_search,
        svc,
        caller,
        sorted(parts),
        chosen_filters,
        options,
        response,
        text=query_text if isinstance(query_text, str) else None,
    )
    return response


@router.post(
    "/sightings/{sighting_id}/similar",
    response_model=SearchResponse,
    responses=error_responses(400, 404, 503),
)
def find_similar(
    background: BackgroundTasks,
    sighting_id: int = Path(ge=1, le=MAX_ID),
    body: SimilarRequest | None = None,
    svc: Services = Depends(get_services),
    caller: Caller = Depends(require_role("analyst")),
) -> SearchResponse:
    """Sightings that look like a stored one."""
    body = body or SimilarRequest()
    response = SearchService(svc).find_similar(sighting_id, body.filters, body.options)
    background.add_task(
        _audit_search,
        svc,
        caller,
        ["sighting"],
        body.filters,
        body.options,
        response,
        similar_to=sighting_id,
    )
    return response
