"""Request and response bodies of the API (search ones live in ``platform.search.schemas``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aioreid.platform.search.schemas import SearchFilters, SearchOptions


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
    sighting_id: int
    identity_id: int
    note: str = Field(default="", max_length=2000)


class AssignRequest(BaseModel):
    sighting_id: int
    identity_id: int | None = Field(default=None, description="None: a new identity")
    label: str | None = Field(default=None, max_length=200)


class MergeRequest(BaseModel):
    target_id: int
    source_ids: list[int] = Field(min_length=1)


class SplitRequest(BaseModel):
    sighting_ids: list[int] = Field(min_length=1)
    label: str | None = Field(default=None, max_length=200)


class FolderIngestRequest(BaseModel):
    path: str = Field(description="a folder on the server, under one of the allowed roots")
    dataset: str | None = Field(
        default=None, description="a known dataset layout (market1501, sysu_mm01...) or None"
    )
    camera: str | None = None
    modality: Literal["rgb", "ir"] = "rgb"
    detector: Literal["crops", "background", "hog"] = "crops"
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


class IdentityOut(BaseModel):
    id: int
    label: str | None
    merged_into: int | None
    sightings: list[IdentitySighting]
    decisions: list[DecisionOut]


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
