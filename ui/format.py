"""Pure helpers behind the console's pages (no Streamlit, so they are tested directly)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, fields, replace
from datetime import datetime, tzinfo
from typing import Any


def attribute_filter(text: str) -> dict[str, str]:
    """``"bag=yes, hat = beanie"`` → ``{"bag": "yes", "hat": "beanie"}``; ValueError says
    which part is not ``key=value``."""
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"attribute filter {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def job_progress(job: Any) -> tuple[float, str]:
    """Fraction done (0..1) and a label such as ``running 12/40, 1 failed``."""
    total = max(1, job.total)
    frac = min(1.0, job.processed / total) if job.total else (1.0 if job.status == "done" else 0.0)
    label = f"{job.status} {job.processed}/{job.total}"
    if job.failed:
        label += f", {job.failed} failed"
    return frac, label


def timeline_rows(
    sightings: list[Any], camera_names: dict[int, str], tz: tzinfo
) -> list[dict[str, Any]]:
    """Sightings with a time as timeline rows: local time, camera name, sighting id."""
    return [
        {
            "time": s.time.astimezone(tz).replace(tzinfo=None),
            "camera": camera_names.get(s.camera_id, f"camera {s.camera_id}"),
            "sighting": s.sighting_id,
        }
        for s in sightings
        if s.time is not None
    ]


def camera_route(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The route across cameras in time order: consecutive sightings at one camera are one
    stop (first and last time, how many sightings)."""
    stops: list[dict[str, Any]] = []
    for r in sorted(rows, key=lambda r: r["time"]):
        if stops and stops[-1]["camera"] == r["camera"]:
            stops[-1]["last"] = r["time"]
            stops[-1]["sightings"] += 1
        else:
            stops.append(
                {"camera": r["camera"], "first": r["time"], "last": r["time"], "sightings": 1}
            )
    return stops


def within_limits(
    sizes: list[tuple[str, int]], max_upload_mb: float, max_files: int
) -> tuple[list[int], list[str]]:
    """Which files of an upload to send: the indices that fit the API's limits (per-file MB,
    files per request, in order), and a line per file left out saying why."""
    limit = int(max_upload_mb * 2**20)
    keep, left_out = [], []
    for i, (name, size) in enumerate(sizes):
        if size > limit:
            left_out.append(f"{name}: {size / 2**20:.1f} MB is over the {max_upload_mb:g} MB limit")
        elif len(keep) >= max_files:
            left_out.append(f"{name}: over {max_files} files per upload; send it separately")
        else:
            keep.append(i)
    return keep, left_out


# ------------------------------------------------------------------------- search state

#: Query-string keys of a search (what a shared link carries).
_LIST_KEYS = ("cams", "mods")


@dataclass(frozen=True)
class SearchState:
    """One submitted search, as the URL holds it: the console shows results for exactly
    this state, so no widget change silently re-runs another query. Uploaded images cannot
    travel in a URL; ``images`` names them by a short hash the session keeps."""

    text: str = ""
    similar: int | None = None
    images: tuple[str, ...] = ()  # "rgb:3fa2c1d0", ...
    cams: tuple[int, ...] = ()
    mods: tuple[str, ...] = ()
    review: str = "any"
    attrs: str = ""
    time_from: str = ""
    time_to: str = ""
    min_score: float | None = None
    level: str = "track"
    sort: str = "score"
    per_page: int = 24
    page: int = 1

    @property
    def empty(self) -> bool:
        return not (self.text or self.similar or self.images)

    def to_query(self) -> dict[str, str]:
        """Only what differs from the defaults, as strings (``st.query_params``)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if isinstance(value, tuple):
                out[f.name] = ",".join(str(v) for v in value)
            else:
                out[f.name] = str(value)
        return out

    @classmethod
    def from_query(cls, query: dict[str, str]) -> SearchState:
        """The state a URL names; a malformed value falls back to its default."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            raw = query.get(f.name)
            if raw is None or raw == "":
                continue
            try:
                kwargs[f.name] = _parse_field(f.name, raw)
            except ValueError:
                continue
        state = cls(**kwargs)
        if state.level not in ("track", "sighting") or state.sort not in ("score", "time"):
            state = replace(state, level="track", sort="score")
        return replace(state, page=max(1, state.page), per_page=min(max(6, state.per_page), 120))

    def filters(self, tz: tzinfo) -> dict[str, Any]:
        """The API's ``SearchFilters``; times are read in ``tz`` (naive input) and sent UTC."""
        flt: dict[str, Any] = {}
        if self.cams:
            flt["cameras"] = list(self.cams)
        if self.mods:
            flt["modalities"] = list(self.mods)
        if self.review != "any":
            flt["review"] = self.review
        attrs = attribute_filter(self.attrs)
        if attrs:
            flt["attributes"] = attrs
        for key, value in (("time_from", self.time_from), ("time_to", self.time_to)):
            if value:
                t = datetime.fromisoformat(value)
                flt[key] = (t if t.tzinfo else t.replace(tzinfo=tz)).isoformat()
        return flt


def _parse_field(name: str, raw: str) -> Any:
    if name in ("similar", "per_page", "page"):
        return int(raw)
    if name == "min_score":
        return float(raw)
    if name == "cams":
        return tuple(int(v) for v in raw.split(",") if v)
    if name in ("images", "mods"):
        return tuple(v for v in raw.split(",") if v)
    return raw


def time_order(hits: list[Any]) -> list[Any]:
    """Hits by the time their card shows (a track's start, else the sighting's; unknown
    times last), for "sort by time" over the best matches. A track hit's own ``time`` is its
    representative crop's, which can be late in the track: ordering by it put a track that
    starts at 08:00:07 before one that starts at 08:00:04."""

    def key(hit: Any) -> tuple[bool, datetime]:
        track = getattr(hit, "track", None)
        shown = track.start if track is not None and track.start is not None else hit.time
        return shown is None, shown or datetime.min

    return sorted(hits, key=key)


def local_span(start: datetime | None, end: datetime | None, tz: tzinfo) -> str:
    """``2024-03-04 08:01:12–08:01:40 CET`` in the viewer's zone (dates once when equal)."""
    if start is None:
        return "time unknown"
    a = start.astimezone(tz)
    if end is None or end == start:
        return f"{a:%Y-%m-%d %H:%M:%S} {a.tzname()}"
    b = end.astimezone(tz)
    tail = f"{b:%H:%M:%S}" if b.date() == a.date() else f"{b:%Y-%m-%d %H:%M:%S}"
    return f"{a:%Y-%m-%d %H:%M:%S}–{tail} {a.tzname()}"


def is_query_image(object_key: str, query_shas: set[str]) -> bool:
    """Whether a hit's crop is byte for byte one of the query's images (keys are
    content-addressed: ``crops/ab/<sha256>.jpg``), e.g. an IR query finding itself."""
    name = object_key.rsplit("/", 1)[-1]
    return name.split(".", 1)[0] in query_shas


# ------------------------------------------------------------------------- result cards

#: Thumbnails are scaled to this many pixels tall (twice the height they are shown at, for
#: high-density screens): a card's HTML carries them inline, so their size is the page's.
THUMB_HEIGHT = 192
THUMB_SHOWN_PX = 96


def thumbnail_jpeg(data: bytes, height: int = THUMB_HEIGHT) -> bytes:
    """A crop scaled down (never up) to ``height`` pixels tall, as JPEG. Bytes that do not
    decode come back as they are (the browser may still show them)."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return data
    h, w = img.shape[:2]
    if h > height:
        img = cv2.resize(img, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)
    elif data[:3] == b"\xff\xd8\xff":
        return data  # a JPEG no taller than a thumbnail already is one
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else data


def data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def card_html(thumbs: list[str], title: str, lines: list[str], note: str | None = None) -> str:
    """One result card as one HTML block: its thumbnails (``src`` values, data URIs), a bold
    score and plain title, smaller lines below, and an optional note. Every text is escaped
    here (camera names come from whoever registered the camera).

    One block instead of an image, a markdown, a caption and an info element per card: each
    Streamlit element is a message, a React subtree and a layout pass in the browser."""
    score, _, rest = title.partition(" · ")
    imgs = "".join(
        # Not loading="lazy": inline data needs no request, and a lazy image below the
        # fold would hold back "every image shown" (the browser tests and the benchmark).
        f'<img src="{html.escape(src)}" alt="crop" decoding="async" '
        f'style="height:{THUMB_SHOWN_PX}px;width:auto;border-radius:2px">'
        for src in thumbs
    )
    strip = (
        f'<div style="display:flex;gap:2px;overflow:hidden">{imgs}</div>'
        if imgs
        else '<div style="opacity:.6;font-size:.85rem">(image unavailable)</div>'
    )
    head = f"<b>{html.escape(score)}</b>" + (f" · {html.escape(rest)}" if rest else "")
    small = "<br>".join(html.escape(line) for line in lines)
    out = (
        f'<div>{strip}<div style="margin-top:.35rem">{head}</div>'
        f'<div style="font-size:.85rem;opacity:.7;line-height:1.35">{small}</div>'
    )
    if note:
        out += (
            '<div style="margin-top:.3rem;padding:.3rem .5rem;border-radius:.4rem;'
            f'background:rgba(28,131,225,.12);font-size:.85rem">{html.escape(note)}</div>'
        )
    return out + "</div>"


def card_actions_html(sid: int, actions: list[tuple[str, str]]) -> str:
    """A card's action buttons (``(action, label)`` pairs) for the result grid: plain HTML
    buttons whose clicks the grid component sends back to Python as ``{"action", "sid"}``."""
    buttons = "".join(
        f'<button type="button" data-action="{html.escape(action)}" data-sid="{int(sid)}">'
        f"{html.escape(label)}</button>"
        for action, label in actions
    )
    return f'<div class="aio-acts">{buttons}</div>'


def cards_grid_html(cards: list[str], per_row: int) -> str:
    """Result cards (each already escaped HTML) in rows of ``per_row``."""
    cells = "".join(f'<div class="aio-card">{card}</div>' for card in cards)
    return (
        f'<div class="aio-grid" style="grid-template-columns:repeat({int(per_row)},'
        f'minmax(0,1fr))">{cells}</div>'
    )


def history_line(event: Any) -> str:
    """What an identity's history event did, in words: ``confirm sighting 12``, ``assign
    sighting 12 (new identity)``, ``split identity 3 → 7``, ``undo of merge (event 41)``."""
    details = event.details or {}
    if event.action == "undo":
        return f"undo of {details.get('undid', 'an action')} (event {event.entity_id})"
    if event.action == "merge":
        sources = ", ".join(str(i) for i in details.get("sources", []))
        return f"merge of identity {sources} into {event.entity_id}"
    if event.action == "split":
        return f"split of identity {event.entity_id} → {details.get('new_identity', '?')}"
    line = f"{event.action} {event.entity} {event.entity_id or ''}".rstrip()
    return line + (" (new identity)" if details.get("created") else "")
