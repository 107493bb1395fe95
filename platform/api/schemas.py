"""Request and response bodies of the API (search ones live in ``platform.search.schemas``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aioreid.platform.pipeline.detector_names import DetectorName
from aioreid.platform.search.schemas import BigId, SearchFilters, SearchOptions, SmallId

#: The largest id a BIGINT key holds: bigger ids in a path are a 422, not a database error.
MAX_ID = 2**63 - 1
#: The largest id a 32-bit key (cameras, media) holds.
MAX_SMALL_ID = 2**31 - 1


class ErrorItem(BaseModel):
    """One invalid field: where (``loc``, e.g. ``["body", "sighting_id"]``) and why."""

    model_config = ConfigDict(extra="allow")  # FastAPI adds type, input and ctx

    loc: list[str | int]
    msg: str


class ErrorOut(BaseModel):
    """The body of every 4xx and 5xx answer."""

    detail: str | list[ErrorItem] = Field(
        description="what went wrong, in words, or one item per invalid field"
    )


_ERROR_WORDS = {
    400: "the body is not valid JSON",
    401: "no API key, or an unknown or revoked one",
    403: "the key's role does not allow this route",
    404: "an id in the request does not exist",
    409: "the request conflicts with the current state; detail says how",
    413: "the request body or an uploaded file is over its size limit",
    422: "a parameter or body field is invalid; detail names it",
    503: "the encoder, the index or the object store is not available",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting ``codes`` with the :class:`ErrorOut` body."""
    return {code: {"model": ErrorOut, "description": _ERROR_WORDS[code]} for code in codes}


#: What every route behind an API key may answer besides its own errors (FastAPI's default 422
#: documents only validation lists; the routes' own 422s carry a sentence).
KEYED_ERRORS = error_responses(401, 403, 422)


def known_keys(model: type[BaseModel], data: object) -> object:
    """``data`` unchanged; ValueError when it is a dict with keys ``model`` does not have.

    The search models ignore unknown keys, so a misspelt filter would silently match all."""
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(model.model_fields))
        if unknown:
            known = ", ".join(model.model_fields)
            raise ValueError(f"unknown field(s) {', '.join(map(str, unknown))}; known: {known}")
    return data


class SimilarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filters: SearchFilters = Field(default_factory=SearchFilters)
    options: SearchOptions = Field(default_factory=SearchOptions)

    @field_validator("filters", mode="before")
    @classmethod
    def _known_filters(cls, v: object) -> object:
        return known_keys(SearchFilters, v)

    @field_validator("options", mode="before")
    @classmethod
    def _known_options(cls, v: object) -> object:
        return known_keys(SearchOptions, v)


class ConfirmRequest(BaseModel):
    sighting_id: BigId
    identity_id: SmallId
    note: str = Field(default="", max_length=2000)


def _label_with_text(label: str | None) -> str | None:
    # An identity's label is a name or nothing: "" or spaces would be a 500 from the database
    # layer, which refuses blank labels.
    if label is not None and not label.strip():
        raise ValueError("label must hold some text, or be left out")
    return label


class AssignRequest(BaseModel):
    sighting_id: BigId
    identity_id: SmallId | None = Field(default=None, description="None: a new identity")
    label: str | None = Field(default=None, min_length=1, max_length=200)

    _label = field_validator("label")(_label_with_text)


class MergeRequest(BaseModel):
    target_id: SmallId
    source_ids: list[SmallId] = Field(min_length=1)


class SplitRequest(BaseModel):
    sighting_ids: list[BigId] = Field(min_length=1)
    label: str | None = Field(default=None, min_length=1, max_length=200)

    _label = field_validator("label")(_label_with_text)


class FolderIngestRequest(BaseModel):
    path: str = Field(
        min_length=1,
        max_length=4096,
        pattern=r"^[^\x00]*$",  # a NUL byte is no path any filesystem accepts
        description="a folder on the server, under one of the allowed roots",
    )
    dataset: str | None = Field(
        default=None, description="a known dataset layout (market1501, sysu_mm01...) or None"
    )
    camera: str | None = None
    modality: Literal["rgb", "ir"] = "rgb"
    detector: DetectorName = "crops"
    start_time: datetime | None = None


class JobFailureOut(BaseModel):
    item: str
    reason: str


class JobOut(BaseModel):
    id: int
    kind: str
    source: str | None
    status: str
    total: int
    processed: int
    failed: int
    created_by: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = None
    failures: list[JobFailureOut] = Field(default_factory=list)
    sightings: int | None = Field(
        default=None, description="sightings its media gave so far (on the job's own page)"
    )


class JobList(BaseModel):
    items: list[JobOut]
    offset: int
    limit: int
    total: int


class SightingOut(BaseModel):
    sighting_id: int
    media_id: int
    camera_id: int | None
    time: datetime | None
    modality: str
    box: tuple[int, int, int, int]
    quality: float
    identity_id: int | None
    object_key: str
    url: str
    track_id: int | None = None
    frame_index: int = 0
    clip_url: str | None = Field(default=None, description="signed link to the source media")
    clip_offset_s: float = Field(
        default=0.0, description="seconds into the source media where this crop was taken"
    )


class IdentitySighting(BaseModel):
    sighting_id: int
    camera_id: int | None
    time: datetime | None
    modality: str
    object_key: str
    url: str


class DecisionOut(BaseModel):
    sighting_id: int
    decision: str
    actor: str | None
    at: datetime | None
    undone_at: datetime | None = Field(
        default=None, description="set when the decision was undone: it no longer counts"
    )


class IdentityOut(BaseModel):
    id: int
    label: str | None
    merged_into: int | None
    sightings: list[IdentitySighting]
    decisions: list[DecisionOut]
    history: list[AuditOut] = Field(
        default_factory=list,
        description="merges into it, splits from it, and confirms, rejects and assigns of "
        "sightings for it (audit events, oldest first), with their undos; each event's id is "
        "what POST /v1/review/undo takes, and its undoable says whether it would now",
    )


class IdentitySummary(BaseModel):
    id: int
    label: str | None
    sightings: int


class IdentityList(BaseModel):
    items: list[IdentitySummary]
    offset: int
    limit: int
    total: int


class CameraOut(BaseModel):
    id: int
    name: str
    modality: str
    location: str | None = Field(default=None, description="a free-text label of the place")
    latitude: float | None = Field(default=None, description="WGS 84 degrees north")
    longitude: float | None = Field(default=None, description="WGS 84 degrees east")


class CameraPosition(BaseModel):
    """Where a camera stands, in WGS 84 degrees; both null removes the position."""

    model_config = ConfigDict(extra="forbid")

    latitude: float | None = Field(ge=-90.0, le=90.0)
    longitude: float | None = Field(ge=-180.0, le=180.0)
    location: str | None = Field(
        default=None, max_length=256, description="optionally, a label of the place too"
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> CameraPosition:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude go together: give both or neither")
        return self


class EncoderVersionOut(BaseModel):
    version: str
    dim: int
    registered_at: datetime | None


class GenerationOut(BaseModel):
    collection: str
    encoder_version: str
    status: str
    points: int
    live: bool


class StatsOut(BaseModel):
    media: int
    media_failed: int
    sightings: int
    identities: int
    cameras: int
    alias: str
    live_collection: str | None
    encoder_versions: list[EncoderVersionOut]
    generations: list[GenerationOut]


class Ack(BaseModel):
    ok: bool = True
    identity_id: int | None = None
    moved: int | None = None
    event_id: int | None = Field(
        default=None,
        description="the audit event this action wrote (POST /v1/review/undo takes it for a "
        "merge, split, reject, confirm or assign); null when it changed nothing",
    )


class JobCreated(BaseModel):
    job_id: int
    status: str


class ReindexStarted(BaseModel):
    generation_id: int
    version: str


class GenerationProgress(BaseModel):
    generation_id: int
    collection: str
    version: str
    status: str
    after: int
    points: int
    missing: int
    remaining: int
    heartbeat: float | None = None


class TrackSummary(BaseModel):
    """One person track, as listed: where, when, how long, and its best crop."""

    id: int
    media_id: int
    camera_id: int | None
    camera: str | None = Field(description="the camera's name")
    number: int = Field(description="the track's number within its media")
    modality: str
    start_time: datetime | None
    end_time: datetime | None
    start_offset_s: float = Field(description="seconds into the source media")
    end_offset_s: float
    first_frame: int
    last_frame: int
    frames: int = Field(description="processed frames the person was seen in")
    quality: float
    sighting_count: int = Field(description="representative crops (each a sighting)")
    crop_url: str | None = Field(description="signed link to the best-quality crop")


class TrackSighting(BaseModel):
    """One representative crop of a track."""

    sighting_id: int
    frame_index: int
    time: datetime | None
    offset_s: float = Field(description="seconds into the source media")
    box: tuple[int, int, int, int]
    quality: float
    url: str


class TrackOut(TrackSummary):
    """One track in full: every box, its crops and a link into its source clip."""

    boxes: list[tuple[int, int, int, int, int]] = Field(
        description="[frame, x, y, w, h] for every processed frame the person was seen in"
    )
    sightings: list[TrackSighting] = Field(description="its crops, in frame order")
    media_kind: str
    clip_url: str | None = Field(description="signed link to the source media")
    clip_offset_s: float = Field(description="where the track starts in the source media")
    clip_url_at: str | None = Field(
        default=None,
        description="videos: clip_url with a #t= media fragment, so a player starts there",
    )


class TrackList(BaseModel):
    items: list[TrackSummary]
    offset: int
    limit: int
    total: int


class UploadLimits(BaseModel):
    """Upload limits of this API (from its settings)."""

    max_upload_mb: float = Field(description="largest file per upload")
    max_files_per_request: int
    max_request_mb: float = Field(description="largest upload request body")


KeyRoleName = Literal["analyst", "operator", "admin"]


class KeyOut(BaseModel):
    """An API key as admins see it: never its secret nor its hash, only the prefix."""

    id: int
    name: str
    prefix: str = Field(description="the key's first 8 characters, to tell keys apart")
    role: KeyRoleName
    created_at: datetime
    rotated_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class KeyCreated(KeyOut):
    key: str = Field(description="the secret: shown this once, only its hash is stored")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=128, description="who uses the key; unique, not all digits"
    )
    role: KeyRoleName = Field(
        default="analyst",
        description="analyst: search, review, reading; operator: + ingest and re-index; "
        "admin: + key management",
    )


# ---------------------------------------------------------------------------- audit


class AuditOut(BaseModel):
    """One audit event: who (actor, key), what (action) to which row (entity, entity_id)."""

    id: int
    at: datetime
    actor: str
    key_id: int | None = Field(description="the API key that acted; null: command line, workers")
    action: str
    entity: str
    entity_id: str | None
    details: dict[str, Any] | None
    undoable: bool | None = Field(
        default=None,
        description="in an identity's history: whether POST /v1/review/undo would undo this "
        "event now (false once undone or touched by later work); null elsewhere and for "
        "actions that cannot be undone",
    )


class AuditList(BaseModel):
    items: list[AuditOut]
    offset: int
    limit: int
    total: int
    scope: Literal["all", "own"] = Field(
        description="all: every key's events (admin keys); own: only the calling key's"
    )


# ---------------------------------------------------------------------------- review extras


class UndoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: BigId = Field(
        description="the audit event of the merge, split, reject, confirm or assign"
    )


class UndoOut(BaseModel):
    event_id: int = Field(description="the undo's own audit event")
    undone: int = Field(description="the audit event that was undone")
    action: str = Field(description="merge, split, reject, confirm or assign")
    sightings: list[int] = Field(description="sightings whose previous assignment is back")
    identities: list[int]


class BulkConfirmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sighting_ids: list[BigId] = Field(min_length=1, max_length=1000)
    identity_id: SmallId
    note: str = Field(default="", max_length=2000)


class PreviewCamera(BaseModel):
    camera_id: int | None
    camera: str | None
    sightings: int


class PreviewSample(BaseModel):
    sighting_id: int
    camera_id: int | None
    time: datetime | None
    url: str


class PreviewSpan(BaseModel):
    sightings: int
    tracks: int
    cameras: list[PreviewCamera]
    first_time: datetime | None
    last_time: datetime | None


class IdentityPreview(PreviewSpan):
    id: int
    label: str | None
    samples: list[PreviewSample] = Field(description="its best crops")


class Simultaneous(BaseModel):
    """A target and a source sighting seen at nearly the same time on different cameras."""

    target_sighting: int
    source_sighting: int
    seconds: float


class MergePreviewOut(BaseModel):
    target: IdentityPreview
    sources: list[IdentityPreview]
    after: PreviewSpan = Field(description="the target after the merge")
    simultaneous: list[Simultaneous] = Field(
        description="up to 5 pairs seen less than 2 s apart on different cameras, closest "
        "first: a sign the identities are different people"
    )
    simultaneous_count: int


# ---------------------------------------------------------------------------- cases

CaseStatusName = Literal["open", "closed"]


def _title_with_text(title: str | None) -> str | None:
    if title is not None and not title.strip():
        raise ValueError("title must hold some text")
    return title


class CaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=20_000)

    _title = field_validator("title")(_title_with_text)


class CaseUpdate(BaseModel):
    """Fields to change; ``status`` closed closes the case (read-only), open reopens it."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=20_000)
    status: CaseStatusName | None = None

    _title = field_validator("title")(_title_with_text)


class CaseSummary(BaseModel):
    id: int
    title: str
    description: str | None
    status: CaseStatusName
    created_by: str
    key_id: int | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class CaseListItem(CaseSummary):
    items: int = Field(description="pinned items")


class CaseList(BaseModel):
    items: list[CaseListItem]
    offset: int
    limit: int
    total: int


class CaseTrack(BaseModel):
    track_id: int
    media_id: int
    camera_id: int | None
    camera: str | None
    modality: str
    start_time: datetime | None
    end_time: datetime | None
    start_offset_s: float
    end_offset_s: float
    first_frame: int
    last_frame: int
    frames: int
    sightings: list[int] = Field(description="its sightings (crops), in frame order")
    crop_url: str | None


class CaseSighting(BaseModel):
    sighting_id: int
    track_id: int | None
    media_id: int
    camera_id: int | None
    camera: str | None
    time: datetime | None
    frame_index: int
    offset_s: float
    box: tuple[int, int, int, int]
    quality: float
    modality: str
    identity_id: int | None
    object_key: str
    url: str | None


class CaseItemOut(BaseModel):
    id: int
    kind: Literal["track", "sighting", "query"]
    ref_id: int | None = Field(description="the track or sighting id; null for a query")
    note: str | None
    pinned_by: str
    pinned_at: datetime
    missing: bool = Field(description="the track or sighting no longer exists (retention)")
    track: CaseTrack | None
    sighting: CaseSighting | None
    query: dict[str, Any] | None = Field(
        description="a pinned search: type (search or similar), parts (text; images with "
        "object_key, sha256, size and a signed url), similar_to, filters, options, "
        "encoder_version, collection, level, searched_at, has_more and hits (rank, "
        "sighting_id, track_id, score, part_scores...)"
    )


class CaseOut(CaseSummary):
    items: list[CaseItemOut]
    history: list[AuditOut] = Field(description="the case's audit events, oldest first")


class PinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["track", "sighting"]
    ref_id: BigId = Field(description="the track or sighting id")
    note: str | None = Field(default=None, max_length=20_000)


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(max_length=20_000)
