"""What a search asks and what it answers (pydantic: the API returns these as they are)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

QUERY_MODALITIES = ("rgb", "ir", "sketch", "text")
ReviewFilter = Literal["any", "confirmed", "unreviewed"]
#: Ids of 32-bit keys (cameras, identities, media, jobs) and of 64-bit keys (sightings,
#: tracks): a number the database cannot hold is a 422 naming the field, not a database error.
SmallId = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
BigId = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
#: Attribute names are payload keys: dots, brackets and quotes would change the path.
_ATTR_NAME_BAD = set(".[]\"'")

#: ``track``: one hit per person track (its pooled embedding); ``sighting``: one per crop.
Level = Literal["track", "sighting"]


class SearchFilters(BaseModel):
    """Restrictions on the gallery; every field is optional (a misspelt one is an error)."""

    model_config = ConfigDict(extra="forbid")

    cameras: list[SmallId] | None = Field(default=None, description="camera ids")
    time_from: datetime | None = None
    time_to: datetime | None = None
    modalities: list[Literal["rgb", "ir"]] | None = Field(
        default=None, description="gallery modalities"
    )
    attributes: dict[str, str] | None = Field(
        default=None, description="exact attribute values, e.g. {'upper_colour': 'red'}"
    )
    identity_ids: list[SmallId] | None = None
    review: ReviewFilter = "any"

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for name in v or {}:
            if not name or _ATTR_NAME_BAD & set(name):
                raise ValueError(
                    f"attribute name {name!r} must be non-empty, without . [ ] or quotes"
                )
        return v

    @field_validator("time_to")
    @classmethod
    def _order(cls, v: datetime | None, info) -> datetime | None:  # type: ignore[no-untyped-def]
        start = info.data.get("time_from")
        if v is not None and start is not None and v < start:
            raise ValueError("time_to is before time_from")
        return v


class SearchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=10_000)
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    group_by_identity: bool = False
    for_identity: SmallId | None = Field(
        default=None,
        description="looking for this identity: its rejected sightings are left out",
    )
    level: Level = Field(
        default="track",
        description="track: one hit per person track (pooled over its best crops); "
        "sighting: one hit per representative crop",
    )


class TrackInfo(BaseModel):
    """The track a hit belongs to: where and when the person was followed."""

    track_id: int
    start: datetime | None
    end: datetime | None
    start_offset_s: float = Field(description="seconds into the source media")
    end_offset_s: float
    first_frame: int
    last_frame: int
    frames: int = Field(description="processed frames the person was seen in")
    sightings: int = Field(description="representative crops (each a sighting)")
    crops: list[str] = Field(
        default_factory=list, description="signed links to its first crops, in frame order"
    )


class Hit(BaseModel):
    sighting_id: int
    score: float
    part_scores: dict[str, float] = Field(
        description="cosine of each query part alone against this sighting"
    )
    best_part: str = Field(description="the query part that scored this sighting highest")
    camera_id: int | None
    camera: str | None
    time: datetime | None
    modality: str
    media_id: int
    box: tuple[int, int, int, int]
    quality: float
    identity_id: int | None
    review: Literal["confirmed", "unreviewed", "rejected"] = Field(
        description="analyst review state; at level=track the track's: confirmed when any of "
        "its sightings was confirmed, else rejected when any was rejected"
    )
    object_key: str
    url: str | None = None
    track_id: int | None = None
    track: TrackInfo | None = Field(
        default=None, description="at level=track: the track this hit stands for"
    )


class IdentityGroup(BaseModel):
    identity_id: int | None
    label: str | None = None
    best_score: float
    hits: list[Hit]


class SearchResponse(BaseModel):
    query_parts: list[str]
    level: Level = "track"
    encoder_version: str
    collection: str
    hits: list[Hit]
    groups: list[IdentityGroup] | None = None
    offset: int
    limit: int
    has_more: bool
    candidates: int | None = Field(
        default=None,
        description="gallery points (at this level) that pass the filters: what was ranked",
    )
    took_ms: float
