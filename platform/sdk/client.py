"""Typed Python client for the aio-reid search API.

    from aioreid.platform.sdk import Client
    with Client("http://127.0.0.1:8000", api_key="...") as c:
        res = c.search(text="a woman in a red coat", sketch="sketch.png", limit=10)
        for hit in res.hits:
            print(hit.sighting_id, hit.score, hit.camera, hit.best_part)
        track = c.track(res.hits[0].track_id)  # boxes, crops, clip_url_at

Images may be paths, bytes or uint8 numpy arrays (RGB). Every API error becomes
:class:`ApiError` with the HTTP status and the server's readable ``detail``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import numpy as np
from PIL import Image

from aioreid.platform.api.schemas import (
    Ack,
    AuditList,
    CameraOut,
    CaseList,
    CaseOut,
    GenerationProgress,
    IdentityList,
    IdentityOut,
    JobCreated,
    JobList,
    JobOut,
    KeyCreated,
    KeyOut,
    MergePreviewOut,
    ReindexStarted,
    SightingOut,
    StatsOut,
    TrackList,
    TrackOut,
    UndoOut,
    UploadLimits,
)
from aioreid.platform.search.schemas import Level, SearchFilters, SearchOptions, SearchResponse

ImageLike = str | Path | bytes | np.ndarray


class ApiError(RuntimeError):
    """The API answered with an error status."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{status}: {_readable(detail)}")


def _readable(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for d in detail:
            if isinstance(d, dict):
                loc = ".".join(str(x) for x in d.get("loc", []) if x != "body")
                parts.append(f"{loc}: {d.get('msg')}" if loc else str(d.get("msg")))
            else:
                parts.append(str(d))
        return "; ".join(parts)
    return str(detail)


def _image_bytes(value: ImageLike, field: str) -> tuple[str, bytes, str]:
    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8:
            raise ValueError(f"{field}: image arrays must be uint8")
        try:  # Pillow, not OpenCV: the SDK stays a light client
            buf = io.BytesIO()
            Image.fromarray(value).save(buf, format="PNG")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{field}: could not encode the array as PNG ({exc})") from exc
        return f"{field}.png", buf.getvalue(), "image/png"
    if isinstance(value, bytes | bytearray):
        return f"{field}.jpg", bytes(value), "application/octet-stream"
    path = Path(value)
    return path.name, path.read_bytes(), "application/octet-stream"


class Client:
    """Synchronous client; pass ``http_client`` to reuse one (e.g. an in-process TestClient)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        if http_client is not None:
            http_client.headers.update(headers)
            self._http = http_client
        else:
            self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    # ---------------------------------------------------------------- plumbing
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the API: {exc}") from exc
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise ApiError(resp.status_code, detail)
        return resp

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._request(method, path, **kwargs)
        return resp.json() if resp.content else None

    # ---------------------------------------------------------------- search
    def search(
        self,
        *,
        text: str | None = None,
        rgb: ImageLike | None = None,
        ir: ImageLike | None = None,
        sketch: ImageLike | None = None,
        filters: SearchFilters | dict | None = None,
        limit: int = 20,
        offset: int = 0,
        threshold: float | None = None,
        group_by_identity: bool = False,
        for_identity: int | None = None,
        level: Level = "track",
    ) -> SearchResponse:
        """Search with any combination of parts (at least one).

        ``level="track"`` gives one hit per person track (``hit.track`` says where and when);
        ``level="sighting"`` one hit per representative crop.
        """
        data, files = _search_form(
            text=text,
            rgb=rgb,
            ir=ir,
            sketch=sketch,
            filters=filters,
            limit=limit,
            offset=offset,
            group_by_identity=group_by_identity,
            level=level,
            threshold=threshold,
            for_identity=for_identity,
        )
        return SearchResponse.model_validate(
            self._call("POST", "/v1/search", data=data, files=files)
        )

    def find_similar(
        self,
        sighting_id: int,
        *,
        filters: SearchFilters | dict | None = None,
        limit: int = 20,
        offset: int = 0,
        threshold: float | None = None,
        group_by_identity: bool = False,
        level: Level = "track",
    ) -> SearchResponse:
        """Sightings (or tracks, at ``level="track"``) that look like a stored sighting."""
        f = (
            filters
            if isinstance(filters, SearchFilters)
            else SearchFilters.model_validate(filters or {})
        )
        opts = SearchOptions(
            limit=limit,
            offset=offset,
            threshold=threshold,
            group_by_identity=group_by_identity,
            level=level,
        )
        body = {"filters": json.loads(f.model_dump_json()), "options": opts.model_dump()}
        return SearchResponse.model_validate(
            self._call("POST", f"/v1/sightings/{sighting_id}/similar", json=body)
        )

    def sighting(self, sighting_id: int) -> SightingOut:
        return SightingOut.model_validate(self._call("GET", f"/v1/sightings/{sighting_id}"))

    def sighting_frame(self, sighting_id: int, box: bool = True) -> bytes:
        """The full source frame of a sighting as JPEG bytes, its box drawn unless ``box``
        is false."""
        params = {"box": "true" if box else "false"}
        return self._request("GET", f"/v1/sightings/{sighting_id}/frame", params=params).content

    # ---------------------------------------------------------------- tracks
    def tracks(
        self,
        *,
        camera: int | None = None,
        media: int | None = None,
        time_from: datetime | str | None = None,
        time_to: datetime | str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> TrackList:
        """Person tracks by start time; ``camera``/``media`` are ids, times keep the tracks
        overlapping ``[time_from, time_to]``."""
        params = _query(
            offset=offset,
            limit=limit,
            camera=camera,
            media=media,
            time_from=time_from,
            time_to=time_to,
        )
        return TrackList.model_validate(self._call("GET", "/v1/tracks", params=params))

    def track(self, track_id: int) -> TrackOut:
        """One track with its boxes, its crops and a link into its source clip."""
        return TrackOut.model_validate(self._call("GET", f"/v1/tracks/{track_id}"))

    # ---------------------------------------------------------------- review
    def confirm(self, sighting_id: int, identity_id: int, note: str = "") -> Ack:
        body = {"sighting_id": sighting_id, "identity_id": identity_id, "note": note}
        return Ack.model_validate(self._call("POST", "/v1/review/confirm", json=body))

    def reject(self, sighting_id: int, identity_id: int, note: str = "") -> Ack:
        body = {"sighting_id": sighting_id, "identity_id": identity_id, "note": note}
        return Ack.model_validate(self._call("POST", "/v1/review/reject", json=body))

    def assign(
        self, sighting_id: int, identity_id: int | None = None, label: str | None = None
    ) -> Ack:
        body = {"sighting_id": sighting_id, "identity_id": identity_id, "label": label}
        return Ack.model_validate(self._call("POST", "/v1/review/assign", json=body))

    def merge(self, target_id: int, source_ids: Sequence[int]) -> Ack:
        body = {"target_id": target_id, "source_ids": list(source_ids)}
        return Ack.model_validate(self._call("POST", "/v1/identities/merge", json=body))

    def split(self, identity_id: int, sighting_ids: Sequence[int], label: str | None = None) -> Ack:
        body = {"sighting_ids": list(sighting_ids), "label": label}
        return Ack.model_validate(
            self._call("POST", f"/v1/identities/{identity_id}/split", json=body)
        )

    def confirm_bulk(self, sighting_ids: Sequence[int], identity_id: int, note: str = "") -> Ack:
        """Confirm many sightings as one identity (all or none); ``moved``: how many changed."""
        body = {"sighting_ids": list(sighting_ids), "identity_id": identity_id, "note": note}
        return Ack.model_validate(self._call("POST", "/v1/review/confirm-bulk", json=body))

    def undo(self, event_id: int) -> UndoOut:
        """Undo the merge, split, reject, confirm or assign recorded as audit event
        ``event_id`` (an action's ``Ack.event_id``, or an identity's ``history``)."""
        body = {"event_id": event_id}
        return UndoOut.model_validate(self._call("POST", "/v1/review/undo", json=body))

    def merge_preview(self, target_id: int, source_ids: Sequence[int]) -> MergePreviewOut:
        """What merging ``source_ids`` into ``target_id`` would give (nothing is changed)."""
        params = {"target": target_id, "sources": list(source_ids)}
        return MergePreviewOut.model_validate(
            self._call("GET", "/v1/identities/merge-preview", params=params)
        )

    def identity(self, identity_id: int) -> IdentityOut:
        return IdentityOut.model_validate(self._call("GET", f"/v1/identities/{identity_id}"))

    def identities(self, *, offset: int = 0, limit: int = 50) -> IdentityList:
        params = {"offset": offset, "limit": limit}
        return IdentityList.model_validate(self._call("GET", "/v1/identities", params=params))

    # ---------------------------------------------------------------- ingest
    def ingest_files(
        self,
        paths: Sequence[str | Path],
        *,
        camera: str | None = None,
        modality: str = "rgb",
        detector: str = "crops",
        start_time: datetime | None = None,
    ) -> JobCreated:
        """Upload files from disk (streamed, not read into memory) and start an ingest job."""
        with ExitStack() as stack:
            files = [(Path(p).name, stack.enter_context(open(p, "rb"))) for p in paths]
            return self.upload_files(
                files, camera=camera, modality=modality, detector=detector, start_time=start_time
            )

    def upload_files(
        self,
        files: Sequence[tuple[str, bytes | BinaryIO]],
        *,
        camera: str | None = None,
        modality: str = "rgb",
        detector: str = "crops",
        start_time: datetime | None = None,
    ) -> JobCreated:
        """Start an ingest job over files given as ``(name, bytes or an open binary file)``.
        Files the server cannot take (over its :meth:`limits`, empty, unknown type) fail
        alone in the job, by name."""
        parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
        data: dict[str, str] = {"modality": modality, "detector": detector}
        if camera:
            data["camera"] = camera
        if start_time:
            data["start_time"] = start_time.isoformat()
        return JobCreated.model_validate(self._call("POST", "/v1/ingest", data=data, files=parts))

    def ingest_folder(
        self,
        path: str | Path,
        *,
        dataset: str | None = None,
        camera: str | None = None,
        modality: str = "rgb",
        detector: str = "crops",
        start_time: datetime | None = None,
    ) -> JobCreated:
        """Ingest a folder on the server (a dataset layout, or every image/video in it)."""
        body = {
            "path": str(path),
            "dataset": dataset,
            "camera": camera,
            "modality": modality,
            "detector": detector,
            "start_time": start_time.isoformat() if start_time else None,
        }
        return JobCreated.model_validate(self._call("POST", "/v1/ingest/folder", json=body))

    def limits(self) -> UploadLimits:
        """The server's upload limits: MB per file, files per request, MB per request."""
        return UploadLimits.model_validate(self._call("GET", "/v1/limits"))

    def job(self, job_id: int) -> JobOut:
        return JobOut.model_validate(self._call("GET", f"/v1/jobs/{job_id}"))

    def jobs(self, *, offset: int = 0, limit: int = 20) -> JobList:
        return JobList.model_validate(
            self._call("GET", "/v1/jobs", params={"offset": offset, "limit": limit})
        )

    def wait_for_job(self, job_id: int, *, timeout: float = 600.0, poll: float = 0.25) -> JobOut:
        """Poll until the job is done, failed or cancelled (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            j = self.job(job_id)
            if j.status in ("done", "failed", "cancelled"):
                return j
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {j.status} after {timeout} s")
            time.sleep(poll)

    # ---------------------------------------------------------------- admin
    def stats(self) -> StatsOut:
        return StatsOut.model_validate(self._call("GET", "/v1/stats"))

    def start_reindex(self) -> ReindexStarted:
        """Re-index every sighting with the API's configured encoder (swap when complete)."""
        return ReindexStarted.model_validate(self._call("POST", "/v1/index/reindex"))

    def generations(self) -> list[GenerationProgress]:
        """Every index generation with its re-index progress."""
        return [
            GenerationProgress.model_validate(g) for g in self._call("GET", "/v1/index/generations")
        ]

    def cameras(self) -> list[CameraOut]:
        return [CameraOut.model_validate(c) for c in self._call("GET", "/v1/cameras")]

    def set_camera_location(
        self,
        camera_id: int,
        latitude: float | None,
        longitude: float | None,
        *,
        location: str | None = None,
    ) -> CameraOut:
        """Place a camera (WGS 84 degrees; both None removes it); operator keys."""
        body: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
        if location is not None:
            body["location"] = location
        return CameraOut.model_validate(self._call("PATCH", f"/v1/cameras/{camera_id}", json=body))

    # ---------------------------------------------------------------- audit
    def audit(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        entity: str | None = None,
        entity_id: int | str | None = None,
        key_id: int | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> AuditList:
        """Audit events, newest first: every key's for admin keys, else the caller's own."""
        params = _query(
            offset=offset,
            limit=limit,
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            key_id=key_id,
            since=since,
            until=until,
        )
        return AuditList.model_validate(self._call("GET", "/v1/audit", params=params))

    # ---------------------------------------------------------------- cases
    def cases(self, *, status: str | None = None, offset: int = 0, limit: int = 50) -> CaseList:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if status is not None:
            params["status"] = status
        return CaseList.model_validate(self._call("GET", "/v1/cases", params=params))

    def create_case(self, title: str, description: str | None = None) -> CaseOut:
        body = {"title": title, "description": description}
        return CaseOut.model_validate(self._call("POST", "/v1/cases", json=body))

    def case(self, case_id: int) -> CaseOut:
        """A case with its items (hydrated) and its history."""
        return CaseOut.model_validate(self._call("GET", f"/v1/cases/{case_id}"))

    def update_case(self, case_id: int, **fields: Any) -> CaseOut:
        """Change ``title``, ``description`` and/or ``status`` ("open" or "closed")."""
        return CaseOut.model_validate(self._call("PATCH", f"/v1/cases/{case_id}", json=fields))

    def close_case(self, case_id: int) -> CaseOut:
        return self.update_case(case_id, status="closed")

    def reopen_case(self, case_id: int) -> CaseOut:
        return self.update_case(case_id, status="open")

    def pin(self, case_id: int, kind: str, ref_id: int, note: str | None = None) -> CaseOut:
        """Pin a ``track`` or a ``sighting`` to a case, with a note."""
        body = {"kind": kind, "ref_id": ref_id, "note": note}
        return CaseOut.model_validate(self._call("POST", f"/v1/cases/{case_id}/items", json=body))

    def pin_query(
        self,
        case_id: int,
        *,
        text: str | None = None,
        rgb: ImageLike | None = None,
        ir: ImageLike | None = None,
        sketch: ImageLike | None = None,
        similar_to: int | None = None,
        filters: SearchFilters | dict | None = None,
        limit: int = 20,
        offset: int = 0,
        threshold: float | None = None,
        for_identity: int | None = None,
        level: Level = "track",
        note: str | None = None,
    ) -> CaseOut:
        """Pin a search (as :meth:`search` takes it, or ``similar_to`` a sighting): the server
        runs it and keeps its inputs, filters, options, encoder version and scored hits."""
        data, files = _search_form(
            text=text,
            rgb=rgb,
            ir=ir,
            sketch=sketch,
            filters=filters,
            limit=limit,
            offset=offset,
            level=level,
            similar_to=similar_to,
            threshold=threshold,
            for_identity=for_identity,
            note=note,
        )
        return CaseOut.model_validate(
            self._call("POST", f"/v1/cases/{case_id}/queries", data=data, files=files)
        )

    def set_note(self, case_id: int, item_id: int, note: str | None) -> CaseOut:
        return CaseOut.model_validate(
            self._call("PATCH", f"/v1/cases/{case_id}/items/{item_id}", json={"note": note})
        )

    def unpin(self, case_id: int, item_id: int) -> CaseOut:
        return CaseOut.model_validate(self._call("DELETE", f"/v1/cases/{case_id}/items/{item_id}"))

    def export_case(
        self, case_id: int, out: str | Path, *, media: str = "original", timeout: float = 600.0
    ) -> Path:
        """Download the case's evidence ZIP to ``out`` (streamed to disk); check it with
        ``aioreid case verify``. Returns ``out``."""
        out = Path(out)
        path = f"/v1/cases/{case_id}/export"
        try:
            with self._http.stream("POST", path, params={"media": media}, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    try:
                        detail = resp.json().get("detail", resp.text)
                    except ValueError:
                        detail = resp.text
                    raise ApiError(resp.status_code, detail)
                partial = out.with_name(out.name + ".partial")
                with open(partial, "wb") as f:
                    for chunk in resp.iter_bytes(1 << 20):
                        f.write(chunk)
                partial.replace(out)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the API: {exc}") from exc
        return out

    # ---------------------------------------------------------------- keys (admin keys only)
    def keys(self) -> list[KeyOut]:
        """Every API key, revoked ones included (never a secret or a hash)."""
        return [KeyOut.model_validate(k) for k in self._call("GET", "/v1/keys")]

    def create_key(self, name: str, role: str = "analyst") -> KeyCreated:
        """A new key with ``role`` (analyst, operator or admin); ``.key`` is its secret, shown
        this once."""
        body = {"name": name, "role": role}
        return KeyCreated.model_validate(self._call("POST", "/v1/keys", json=body))

    def revoke_key(self, key_id: int) -> KeyOut:
        return KeyOut.model_validate(self._call("POST", f"/v1/keys/{key_id}/revoke"))

    def rotate_key(self, key_id: int) -> KeyCreated:
        """A new secret (``.key``) for the key; its old secret stops working at once."""
        return KeyCreated.model_validate(self._call("POST", f"/v1/keys/{key_id}/rotate"))

    def health(self) -> dict[str, str]:
        return self._call("GET", "/healthz")

    def fetch(self, url: str) -> bytes:
        """Bytes behind a hit's ``url`` (relative API links or presigned MinIO links)."""
        resp = self._http.get(url) if url.startswith("/") else httpx.get(url, timeout=30)
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, resp.text)
        return resp.content


def _query(**values: Any) -> dict[str, Any]:
    """Query parameters: the values given (None left out), datetimes as ISO 8601."""
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in values.items()
        if value is not None
    }


def _search_form(
    *,
    text: str | None,
    rgb: ImageLike | None,
    ir: ImageLike | None,
    sketch: ImageLike | None,
    filters: SearchFilters | dict | None,
    **fields: Any,
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """A search as the multipart form ``/v1/search`` and pinned queries take: the fields
    given (None left out, booleans as true/false), the filters as JSON, the images as files."""
    files = {
        name: _image_bytes(value, name)
        for name, value in (("rgb", rgb), ("ir", ir), ("sketch", sketch))
        if value is not None
    }
    data = {
        name: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for name, value in fields.items()
        if value is not None
    }
    if text is not None:
        data["text"] = text
    if filters is not None:
        f = filters if isinstance(filters, SearchFilters) else SearchFilters.model_validate(filters)
        data["filters"] = f.model_dump_json(exclude_none=True)
    return data, files or None
