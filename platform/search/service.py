"""Cross-modal search over the live index.

A query is one or more parts (RGB image, IR image, sketch, text). All parts together are
embedded as ONE combined query (the AIO encoder reads them as one token sequence); each part
is also embedded alone so every hit can say which part scored it (``part_scores``,
``best_part``). Every filter (camera, time, modality, attributes, identity, review state) is
applied inside the vector search on the index payload, so pages are full and ``has_more`` is
exact; review decisions are mirrored into the payload as they are made (:mod:`.review`). What a
hit reports (identity, review state) is read from the database, the source of truth; a hit
whose payload is behind it (a mirror that failed) is left out rather than shown mislabelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from aioreid.encoder.inference import Encoder, EncoderInputError
from aioreid.platform.db import crud
from aioreid.platform.db.models import (
    Assignment,
    Camera,
    Identity,
    ReviewDecision,
    Sighting,
    Track,
)
from aioreid.platform.index import SearchFilter
from aioreid.platform.search.schemas import (
    QUERY_MODALITIES,
    Hit,
    IdentityGroup,
    SearchFilters,
    SearchOptions,
    SearchResponse,
    TrackInfo,
)
from aioreid.platform.services import Services

QueryInput = bytes | str | np.ndarray


#: Crops a track hit links to (its thumbnail strip).
MAX_TRACK_CROPS = 8


class QueryError(ValueError):
    """A malformed query: no parts, an unknown modality, an undecodable image, empty text."""


class NotFound(LookupError):
    """A sighting or identity that does not exist."""


def _ts(t: datetime | None) -> float | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


class SearchService:
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    # ---------------------------------------------------------------- queries
    def embed_parts(
        self, parts: Mapping[str, QueryInput], enc: Encoder | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The combined query vector and one vector per part (with the live encoder)."""
        if not parts:
            raise QueryError("a query needs at least one part: rgb, ir, sketch or text")
        for name in parts:
            if name not in QUERY_MODALITIES:
                raise QueryError(f"unknown query part {name!r}; use {', '.join(QUERY_MODALITIES)}")
        enc = enc or self.svc.live()[1]
        singles = {}
        for name, value in parts.items():
            try:
                singles[name] = enc.embed([value], name)[0]
            except EncoderInputError as exc:
                raise QueryError(f"{name}: {exc}") from None
        try:
            combined = (
                singles[next(iter(parts))] if len(parts) == 1 else enc.embed_query(dict(parts))
            )
        except EncoderInputError as exc:
            raise QueryError(str(exc)) from None
        return np.asarray(combined, np.float32), singles

    def search(
        self,
        parts: Mapping[str, QueryInput],
        filters: SearchFilters | None = None,
        options: SearchOptions | None = None,
    ) -> SearchResponse:
        t0 = time.perf_counter()
        collection, enc = self.svc.live()
        vector, singles = self.embed_parts(parts, enc)
        return self._search_vector(
            collection, enc.version, vector, singles, filters, options, exclude=(), t0=t0
        )

    def search_many(
        self,
        queries: Sequence[Mapping[str, QueryInput]],
        filters: SearchFilters | None = None,
        options: SearchOptions | None = None,
    ) -> list[SearchResponse]:
        """Many queries with the same parts (e.g. all text+sketch): the encoder runs in
        batches instead of once per query; answers are the same as :meth:`search`'s."""
        if not queries:
            return []
        names = list(queries[0])
        if any(list(q) != names for q in queries):
            raise QueryError("search_many needs every query to have the same parts")
        if not names or any(n not in QUERY_MODALITIES for n in names):
            raise QueryError(f"query parts must be among {', '.join(QUERY_MODALITIES)}")
        collection, enc = self.svc.live()
        try:
            singles = {n: enc.embed([q[n] for q in queries], n) for n in names}
            combined = (
                singles[names[0]]
                if len(names) == 1
                else enc.embed_query([dict(q) for q in queries])
            )
        except EncoderInputError as exc:
            raise QueryError(str(exc)) from None
        out = []
        for i in range(len(queries)):
            t0 = time.perf_counter()
            out.append(
                self._search_vector(
                    collection,
                    enc.version,
                    np.asarray(combined[i], np.float32),
                    {n: singles[n][i] for n in names},
                    filters,
                    options,
                    exclude=(),
                    t0=t0,
                )
            )
        return out

    def find_similar(
        self,
        sighting_id: int,
        filters: SearchFilters | None = None,
        options: SearchOptions | None = None,
    ) -> SearchResponse:
        """Sightings that look like a stored one (itself left out)."""
        t0 = time.perf_counter()
        with self.svc.sessions() as s:
            row = s.get(Sighting, sighting_id)
            if row is None:
                raise NotFound(f"sighting {sighting_id} does not exist")
            point, modality = row.point_id, row.modality
            identity = _active_identity(s, sighting_id)
        collection, enc = self.svc.live()
        found = self.svc.index.retrieve(collection, [point], with_vectors=True)
        if not found:
            raise NotFound(f"sighting {sighting_id} is not in the live index {collection!r}")
        vec = np.asarray(found[0].vector, np.float32)
        options = options or SearchOptions()
        if options.for_identity is None and identity is not None:
            options = options.model_copy(update={"for_identity": identity})
        return self._search_vector(
            collection,
            enc.version,
            vec,
            {f"sighting:{modality}": vec},
            filters,
            options,
            exclude=(sighting_id,),
            t0=t0,
        )

    # ---------------------------------------------------------------- core
    def _search_vector(
        self,
        collection: str,
        version: str,
        vector: np.ndarray,
        singles: Mapping[str, np.ndarray],
        filters: SearchFilters | None,
        options: SearchOptions | None,
        *,
        exclude: tuple[int, ...],
        t0: float,
    ) -> SearchResponse:
        filters = filters or SearchFilters()
        options = options or SearchOptions()
        rejected = self._rejected(options.for_identity)
        flt = SearchFilter(
            cameras=filters.cameras,
            time_from=_ts(filters.time_from),
            time_to=_ts(filters.time_to),
            modalities=list(filters.modalities) if filters.modalities else None,
            identity_ids=filters.identity_ids,
            attributes=filters.attributes,
            exclude_sighting_ids=sorted(set(exclude) | rejected) or None,
            level=options.level,
            review=None if filters.review == "any" else filters.review,
        )
        end = options.offset + options.limit
        raw = self.svc.index.search(
            collection, vector, limit=end + 1, flt=flt, score_threshold=options.threshold
        )
        # Offsets count the index's ranking, so pages neither overlap nor skip even when a
        # hit is dropped below; one more than the page tells whether more follow.
        page = self._hydrate(collection, raw[options.offset : end], singles)
        if filters.review != "any":
            # The index already filtered; this only drops a hit whose payload lags the
            # database (a decision whose mirror failed, a point not yet backfilled).
            page = [h for h in page if h.review == filters.review]
        groups = self._group(page) if options.group_by_identity else None
        return SearchResponse(
            candidates=self.svc.index.count(collection, flt),
            query_parts=list(singles),
            level=options.level,
            encoder_version=version,
            collection=collection,
            hits=page,
            groups=groups,
            offset=options.offset,
            limit=options.limit,
            has_more=len(raw) > end,
            took_ms=round((time.perf_counter() - t0) * 1000, 2),
        )

    def _rejected(self, identity_id: int | None) -> set[int]:
        if identity_id is None:
            return set()
        with self.svc.sessions() as s:
            return set(_rejected_for(s, identity_id))

    def _hydrate(self, collection: str, raw: list, singles: Mapping[str, np.ndarray]) -> list[Hit]:
        if not raw:
            return []
        ids = [h.id for h in raw]
        vecs = {
            p.id: np.asarray(p.vector, np.float32)
            for p in self.svc.index.retrieve(collection, ids, with_vectors=True)
        }
        track_ids = [int(h.payload["track"]) for h in raw if h.payload.get("level") == "track"]
        with self.svc.sessions() as s:
            tracks, stand_in, members = _tracks_and_representatives(
                s, track_ids, self.svc.store.presigned_url
            )
        sid_of = {
            h.id: stand_in.get(int(h.payload["track"]))
            if h.payload.get("level") == "track"
            else int(h.payload["sighting"])
            for h in raw
        }
        sighting_ids = [sid for sid in sid_of.values() if sid is not None]
        with self.svc.sessions() as s:
            rows = {
                r.id: r for r in s.scalars(select(Sighting).where(Sighting.id.in_(sighting_ids)))
            }
            cams = {c.id: c.name for c in s.scalars(select(Camera))}
            member_ids = [m for mine in members.values() for m in mine]
            states = crud.review_states(s, [*sighting_ids, *member_ids])
        out = []
        for h in raw:
            sid = sid_of[h.id]
            row = rows.get(sid) if sid is not None else None
            if row is None:  # deleted in the database, index not yet cleaned
                continue
            track = tracks.get(int(h.payload["track"])) if h.payload.get("level") else None
            ident, review = states[sid]
            if track is not None:
                # The track's state, as its payload holds it: its stand-in crop may be
                # unreviewed while an analyst decided on another of its crops.
                review = crud.track_review(states[m].review for m in members[track.track_id])
            v = vecs.get(h.id)
            part_scores = (
                {k: round(float(np.dot(q, v)), 5) for k, q in singles.items()}
                if v is not None
                else {}
            )
            best = (
                max(part_scores, key=part_scores.__getitem__)
                if part_scores
                else next(iter(singles))
            )
            out.append(
                Hit(
                    sighting_id=sid,
                    score=round(float(h.score), 5),
                    part_scores=part_scores,
                    best_part=best,
                    camera_id=row.camera_id,
                    camera=cams.get(row.camera_id) if row.camera_id is not None else None,
                    time=row.frame_time,
                    modality=row.modality,
                    media_id=row.media_id,
                    box=(row.box_x, row.box_y, row.box_w, row.box_h),
                    quality=row.quality,
                    identity_id=ident,
                    review=review,
                    object_key=row.object_key,
                    url=self.svc.store.presigned_url(row.object_key),
                    track_id=row.track_id,
                    track=track,
                )
            )
        return out

    def _group(self, hits: list[Hit]) -> list[IdentityGroup]:
        groups: dict[object, list[Hit]] = {}
        for h in hits:
            key = h.identity_id if h.identity_id is not None else ("sighting", h.sighting_id)
            groups.setdefault(key, []).append(h)
        ids = [k for k in groups if isinstance(k, int)]
        with self.svc.sessions() as s:
            labels = {
                i.id: i.label for i in s.scalars(select(Identity).where(Identity.id.in_(ids)))
            }
        return [
            IdentityGroup(
                identity_id=k if isinstance(k, int) else None,
                label=labels.get(k) if isinstance(k, int) else None,
                best_score=max(h.score for h in hs),
                hits=hs,
            )
            for k, hs in groups.items()
        ]


def _tracks_and_representatives(
    s: Session, track_ids: list[int], sign: Callable[[str], str]
) -> tuple[dict[int, TrackInfo], dict[int, int], dict[int, list[int]]]:
    """Each track's summary (with signed links to its first crops, in frame order), the
    sighting that stands for it (its best crop) and the ids of all its sightings."""
    if not track_ids:
        return {}, {}, {}
    members = crud.sightings_by_track(s, track_ids)
    info, best, ids = {}, {}, {}
    for t in s.scalars(select(Track).where(Track.id.in_(track_ids))):
        mine = members.get(t.id, [])
        if not mine:
            continue
        best[t.id] = crud.representative(mine).id  # type: ignore[union-attr]
        ids[t.id] = [r.id for r in mine]
        info[t.id] = TrackInfo(
            track_id=t.id,
            start=t.start_time,
            end=t.end_time,
            start_offset_s=t.start_offset_s,
            end_offset_s=t.end_offset_s,
            first_frame=t.first_frame,
            last_frame=t.last_frame,
            frames=t.frames,
            sightings=len(mine),
            crops=[
                sign(r.object_key)
                for r in sorted(mine, key=lambda r: r.frame_index)[:MAX_TRACK_CROPS]
            ],
        )
    return info, best, ids


def _active_identity(s, sighting_id: int) -> int | None:  # type: ignore[no-untyped-def]
    return s.scalar(
        select(Assignment.identity_id).where(
            Assignment.sighting_id == sighting_id, Assignment.active.is_(True)
        )
    )


def _rejected_for(s, identity_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    return list(
        s.scalars(
            select(ReviewDecision.sighting_id).where(
                ReviewDecision.identity_id == identity_id,
                ReviewDecision.decision == "reject",
                ReviewDecision.undone_at.is_(None),
            )
        )
    )
