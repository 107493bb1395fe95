"""Evidence export of a case as one ZIP, and the check of such a ZIP (``aioreid case verify``).

The ZIP holds, for every pinned track and sighting (a track brings all its sightings):

- ``media/media-<id><ext>``: the source media's original bytes, untranscoded (``media=
  "reference"`` leaves them out and lists only their SHA-256 and size, for very long videos);
  each pinned track's exact segment (first/last frame, offsets and wall-clock times) is in the
  manifest's ``segments``. Nothing is cut: an exact cut means re-encoding (new bytes, no longer
  the original) and a stream copy can only cut at key frames (not exact);
- ``crops/sighting-<id>.jpg``: the stored crops, as stored;
- ``frames/sighting-<id>.jpg``: the full source frame of each sighting with its box drawn;
- ``queries/item-<id>.json`` and its images: each pinned search with its inputs, filters,
  options, encoder version and hits with scores at pin time;
- ``case.json``, ``tracks.json``, ``sightings.json``: the case, its items and notes;
- ``review/decisions.json``, ``review/assignments.json``, ``review/audit.json``: the review
  decisions and identity assignments of those sightings, and the audit events touching the
  case, the sightings or the identities they were ever assigned to;
- ``manifest.json``: every other file with its SHA-256 and size, the case, the export time,
  the exporting actor and key, the software version.

Memory stays bounded: each file is streamed into the archive (hashed on the way), media from
the store's own file or one temporary download; the archive is written to disk, never held.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal

import cv2
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from aioreid.platform.cases.service import (
    IMAGE_PARTS,
    CaseService,
    audit_row,
    sighting_brief,
    track_brief,
)
from aioreid.platform.db import crud
from aioreid.platform.db.models import (
    Assignment,
    AuditEvent,
    Camera,
    Media,
    ReviewDecision,
    Sighting,
    Track,
)
from aioreid.platform.storage import ObjectNotFound, ObjectStore
from aioreid.platform.storage.base import CHUNK_BYTES

FORMAT = "aioreid-evidence"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MediaMode = Literal["original", "reference"]
MEDIA_MODES: tuple[str, ...] = ("original", "reference")


def software_version() -> str:
    try:
        return importlib.metadata.version("aio-reid")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | set):
        return list(value)
    return str(value)


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n").encode()


def _ext(key: str, fallback: str = "") -> str:
    suffix = PurePosixPath(key).suffix.lower()
    return suffix if 1 < len(suffix) <= 17 and suffix[1:].isalnum() else fallback


# ------------------------------------------------------------------------------------ writing


class _ZipWriter:
    """Adds files to an open ZipFile, hashing each on the way; remembers them for the
    manifest. Already compressed content (media, JPEG) is stored, JSON is deflated."""

    def __init__(self, zf: zipfile.ZipFile, when: datetime) -> None:
        self.zf = zf
        self.when = when.astimezone(timezone.utc).timetuple()[:6]
        self.files: list[dict[str, Any]] = []

    def _write(self, path: str, chunks: Iterable[bytes], compress: bool, **meta: Any) -> None:
        info = zipfile.ZipInfo(path, date_time=self.when)  # type: ignore[arg-type]
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        digest, size = hashlib.sha256(), 0
        with self.zf.open(info, "w", force_zip64=True) as out:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        self.files.append({"path": path, "sha256": digest.hexdigest(), "size": size, **meta})

    def add_bytes(self, path: str, data: bytes, *, compress: bool = False, **meta: Any) -> None:
        self._write(path, [data], compress, **meta)

    def add_json(self, path: str, obj: Any, **meta: Any) -> None:
        self._write(path, [_json_bytes(obj)], True, **meta)

    def add_file(self, path: str, src: BinaryIO, **meta: Any) -> None:
        self._write(path, iter(lambda: src.read(CHUNK_BYTES), b""), False, **meta)

    def sha256_of(self, path: str) -> str | None:
        return next((f["sha256"] for f in self.files if f["path"] == path), None)


@dataclass
class _Gathered:
    """Everything the export reads from the database, read in one short session."""

    case: dict[str, Any]
    items: list[dict[str, Any]]
    tracks: list[dict[str, Any]]
    sightings: list[dict[str, Any]]
    media: list[dict[str, Any]]
    assignments: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    queries: dict[int, dict[str, Any]]
    pinned_sightings: set[int] = field(default_factory=set)


def _gather(sessions: sessionmaker[Session], store: ObjectStore, case_id: int) -> _Gathered:
    described = CaseService(sessions, store).describe(case_id, urls=False)
    items = described.pop("items")
    described.pop("history")
    with sessions() as s:
        track_ids = [i["ref_id"] for i in items if i["kind"] == "track" and not i["missing"]]
        pinned = {i["ref_id"] for i in items if i["kind"] == "sighting" and not i["missing"]}
        cams = {c.id: c.name for c in s.scalars(sa.select(Camera))}
        tracks = list(s.scalars(sa.select(Track).where(Track.id.in_(track_ids)).order_by(Track.id)))
        crops = crud.sightings_by_track(s, [t.id for t in tracks])
        wanted = sorted(pinned | {r.id for mine in crops.values() for r in mine})
        sightings = list(
            s.scalars(sa.select(Sighting).where(Sighting.id.in_(wanted)).order_by(Sighting.id))
        )
        assignments = list(
            s.scalars(
                sa.select(Assignment)
                .where(Assignment.sighting_id.in_(wanted))
                .order_by(Assignment.id)
            )
        )
        active = {a.sighting_id: a.identity_id for a in assignments if a.active}
        identities = sorted({a.identity_id for a in assignments})
        decisions = list(
            s.scalars(
                sa.select(ReviewDecision)
                .where(ReviewDecision.sighting_id.in_(wanted))
                .order_by(ReviewDecision.id)
            )
        )
        touching = sa.or_(
            sa.and_(AuditEvent.entity == "case", AuditEvent.entity_id == str(case_id)),
            sa.and_(
                AuditEvent.entity == "sighting",
                AuditEvent.entity_id.in_([str(i) for i in wanted]),
            ),
            sa.and_(
                AuditEvent.entity == "identity",
                AuditEvent.entity_id.in_([str(i) for i in identities]),
            ),
        )
        events = list(s.scalars(sa.select(AuditEvent).where(touching)))
        undos = s.scalars(
            sa.select(AuditEvent).where(
                AuditEvent.entity == "audit_event",
                AuditEvent.entity_id.in_([str(e.id) for e in events]),
            )
        )
        events = sorted({e.id: e for e in [*events, *undos]}.values(), key=lambda e: e.id)
        media_ids = {r.media_id for r in sightings} | {t.media_id for t in tracks}
        media = list(s.scalars(sa.select(Media).where(Media.id.in_(media_ids)).order_by(Media.id)))
        return _Gathered(
            case=described,
            items=items,
            tracks=[
                {
                    **track_brief(t, cams, crops.get(t.id, []), None),
                    "boxes": t.boxes,
                    "media_kind": str(t.media.kind),
                    "fps": t.media.fps,
                }
                for t in tracks
            ],
            sightings=[sighting_brief(r, cams, active.get(r.id), None) for r in sightings],
            media=[
                {
                    "media_id": m.id,
                    "sha256": m.sha256,
                    "kind": str(m.kind),
                    "object_key": m.object_key,
                    "original_name": m.original_name,
                    "size": m.size_bytes,
                    "content_type": m.content_type,
                    "camera_id": m.camera_id,
                    "camera": cams.get(m.camera_id) if m.camera_id is not None else None,
                    "start_time": m.start_time,
                    "fps": m.fps,
                    "frame_count": m.frame_count,
                    "width": m.width,
                    "height": m.height,
                }
                for m in media
            ],
            assignments=[
                {
                    "id": a.id,
                    "sighting_id": a.sighting_id,
                    "identity_id": a.identity_id,
                    "provenance": str(a.provenance),
                    "score": a.score,
                    "actor": a.actor,
                    "at": a.created_at,
                    "active": a.active,
                }
                for a in assignments
            ],
            decisions=[
                {
                    "id": d.id,
                    "sighting_id": d.sighting_id,
                    "identity_id": d.identity_id,
                    "query_key": d.query_key,
                    "decision": str(d.decision),
                    "actor": d.actor,
                    "note": d.note,
                    "at": d.created_at,
                    "undone_at": d.undone_at,
                }
                for d in decisions
            ],
            audit=[audit_row(e) for e in events],
            queries={i["id"]: i["query"] for i in items if i["kind"] == "query"},
            pinned_sightings=pinned,
        )


class _MediaFiles:
    """Local paths of media objects: the store's own file, else one download per media into
    a temporary folder (removed with it)."""

    def __init__(self, store: ObjectStore, tmp: Path) -> None:
        self.store, self.tmp = store, tmp
        self._paths: dict[str, Path] = {}

    def path(self, key: str) -> Path:
        if key not in self._paths:
            local = self.store.local_path(key)
            if local is None:
                local = self.store.download_to(key, self.tmp / f"m{len(self._paths)}{_ext(key)}")
            self._paths[key] = local
        return self._paths[key]


def _frames(
    gathered: _Gathered, media_files: _MediaFiles, notes: list[str]
) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Each sighting's full frame with its box drawn, as JPEG bytes."""
    from aioreid.platform.pipeline.frames import (
        MediaDecodeError,
        decode_image_frame,
        frame_jpeg,
        read_frame,
    )

    media = {m["media_id"]: m for m in gathered.media}
    for sighting in gathered.sightings:
        m = media[sighting["media_id"]]
        try:
            path = media_files.path(m["object_key"])
            if m["kind"] == "video":
                rgb = read_frame(path, sighting["frame_index"]).image
            else:
                rgb = decode_image_frame(path.read_bytes()).image
            yield sighting, frame_jpeg(rgb, tuple(sighting["box"]))
        except ObjectNotFound:
            notes.append(
                f"frame of sighting {sighting['sighting_id']}: media {m['media_id']} is no "
                "longer stored"
            )
        except (MediaDecodeError, cv2.error, ValueError) as exc:
            notes.append(f"frame of sighting {sighting['sighting_id']}: cannot be read: {exc}")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    manifest_sha256: str
    files: int
    bytes: int
    audit_event_id: int
    not_exported: list[str]


def export_case(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    case_id: int,
    dest: str | Path,
    *,
    actor: str,
    key_id: int | None,
    media: MediaMode = "original",
) -> ExportResult:
    """Write case ``case_id``'s evidence ZIP to ``dest`` (atomically: a partial file never
    has the final name) and record the export as an audit event of the case."""
    if media not in MEDIA_MODES:
        raise ValueError(f"media must be {' or '.join(MEDIA_MODES)}, got {media!r}")
    dest = Path(dest)
    gathered = _gather(sessions, store, case_id)
    exported_at = datetime.now(timezone.utc)
    notes: list[str] = [
        f"item {i['id']}: {i['kind']} {i['ref_id']} no longer exists"
        for i in gathered.items
        if i["missing"]
    ]
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    os.close(fd)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="aioreid-export-") as tmp,
            zipfile.ZipFile(partial, "w", allowZip64=True) as zf,
        ):
            out = _ZipWriter(zf, exported_at)
            manifest_extra = _write_contents(out, gathered, store, Path(tmp), media, notes)
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "hash": "sha256",
                "case": {**gathered.case, "items": len(gathered.items)},
                "exported_at": exported_at,
                "exported_by": {"actor": actor, "key_id": key_id},
                "software": {"name": "aio-reid", "version": software_version()},
                "media_mode": media,
                **manifest_extra,
                "not_exported": notes,
                "files": sorted(out.files, key=lambda f: f["path"]),
            }
            manifest_bytes = _json_bytes(manifest)
            info = zipfile.ZipInfo(MANIFEST, date_time=out.when)  # type: ignore[arg-type]
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, manifest_bytes)
        os.replace(partial, dest)
    finally:
        Path(partial).unlink(missing_ok=True)
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
    total = sum(f["size"] for f in out.files)
    with sessions.begin() as s:
        event = crud.record_audit(
            s,
            actor=actor,
            action="export",
            entity="case",
            entity_id=case_id,
            details={
                "manifest_sha256": manifest_sha,
                "files": len(out.files),
                "bytes": total,
                "media": media,
                "not_exported": len(notes),
            },
            key_id=key_id,
        )
        event_id = event.id
    return ExportResult(dest, manifest_sha, len(out.files), total, event_id, notes)


def _write_contents(
    out: _ZipWriter,
    g: _Gathered,
    store: ObjectStore,
    tmp: Path,
    media_mode: MediaMode,
    notes: list[str],
) -> dict[str, Any]:
    """Every file but the manifest; returns the manifest's ``media`` and ``segments``."""
    media_files = _MediaFiles(store, tmp)
    crop_paths: dict[int, str] = {}
    for sighting in g.sightings:
        sid = sighting["sighting_id"]
        try:
            data = store.get_bytes(sighting["object_key"])
        except ObjectNotFound:
            notes.append(f"crop of sighting {sid}: no longer stored ({sighting['object_key']})")
            continue
        path = f"crops/sighting-{sid}{_ext(sighting['object_key'], '.jpg')}"
        out.add_bytes(path, data, role="crop", sighting_id=sid)
        crop_paths[sid] = path
    frame_paths: dict[int, str] = {}
    for sighting, jpeg in _frames(g, media_files, notes):
        sid = sighting["sighting_id"]
        path = f"frames/sighting-{sid}.jpg"
        out.add_bytes(
            path, jpeg, role="frame", sighting_id=sid, frame_index=sighting["frame_index"]
        )
        frame_paths[sid] = path

    media_rows, media_paths = _write_media(out, g, media_files, media_mode, notes)
    query_files = _write_queries(out, g, store, notes)

    out.add_json(
        "case.json",
        {
            **g.case,
            "items": [
                {
                    **{k: v for k, v in i.items() if k not in ("track", "sighting", "query")},
                    "files": query_files.get(i["id"], []),
                }
                for i in g.items
            ],
        },
        role="case",
    )
    out.add_json(
        "tracks.json",
        [{**t, "media_file": media_paths.get(t["media_id"]), "crop_url": None} for t in g.tracks],
        role="tracks",
    )
    out.add_json(
        "sightings.json",
        [
            {
                **{k: v for k, v in r.items() if k != "url"},
                "pinned": r["sighting_id"] in g.pinned_sightings,
                "crop_file": crop_paths.get(r["sighting_id"]),
                "frame_file": frame_paths.get(r["sighting_id"]),
                "media_file": media_paths.get(r["media_id"]),
            }
            for r in g.sightings
        ],
        role="sightings",
    )
    out.add_json("review/decisions.json", g.decisions, role="review")
    out.add_json("review/assignments.json", g.assignments, role="review")
    out.add_json("review/audit.json", g.audit, role="audit")
    media_by_id = {m["media_id"]: m for m in g.media}
    segments = [
        {
            "track_id": t["track_id"],
            "media_id": t["media_id"],
            "media_file": media_paths.get(t["media_id"]),
            "media_sha256": media_by_id[t["media_id"]]["sha256"],
            "first_frame": t["first_frame"],
            "last_frame": t["last_frame"],
            "start_offset_s": t["start_offset_s"],
            "end_offset_s": t["end_offset_s"],
            "start_time": t["start_time"],
            "end_time": t["end_time"],
            "fps": t["fps"],
        }
        for t in g.tracks
        if t["media_kind"] == "video"
    ]
    return {"media": media_rows, "segments": segments}


def _write_media(
    out: _ZipWriter,
    g: _Gathered,
    media_files: _MediaFiles,
    mode: MediaMode,
    notes: list[str],
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    rows, paths = [], {}
    for m in g.media:
        row = {**m, "included": False, "file": None}
        rows.append(row)
        if mode == "reference":
            continue
        ext = _ext(m["object_key"]) or _ext(m["original_name"] or "")
        path = f"media/media-{m['media_id']}{ext}"
        try:
            with open(media_files.path(m["object_key"]), "rb") as src:
                out.add_file(path, src, role="media", media_id=m["media_id"])
        except ObjectNotFound:
            notes.append(f"media {m['media_id']}: no longer stored ({m['object_key']})")
            continue
        row.update(included=True, file=path)
        paths[m["media_id"]] = path
        if out.sha256_of(path) != m["sha256"]:
            notes.append(
                f"media {m['media_id']}: the stored bytes' SHA-256 differs from the one "
                "recorded at ingest"
            )
    return rows, paths


def _write_queries(
    out: _ZipWriter, g: _Gathered, store: ObjectStore, notes: list[str]
) -> dict[int, list[str]]:
    files: dict[int, list[str]] = {}
    for item_id, query in sorted(g.queries.items()):
        mine: list[str] = []
        parts = dict(query.get("parts") or {})
        for name in IMAGE_PARTS:
            part = parts.get(name)
            if not isinstance(part, dict) or not part.get("object_key"):
                continue
            key = part["object_key"]
            path = f"queries/item-{item_id}-{name}{_ext(key)}"
            try:
                out.add_bytes(path, store.get_bytes(key), role="query_image", item=item_id)
            except ObjectNotFound:
                notes.append(f"query item {item_id}: its {name} image is no longer stored")
                continue
            parts[name] = {**part, "file": path}
            mine.append(path)
        path = f"queries/item-{item_id}.json"
        out.add_json(path, {**query, "parts": parts}, role="query", item=item_id)
        files[item_id] = [path, *mine]
    return files


# ------------------------------------------------------------------------------------ checking


@dataclass
class VerifyReport:
    """What :func:`verify_zip` found: ``problems`` make it fail; ``notes`` are what the
    export itself reported as not exported (the archive can still be intact)."""

    path: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    manifest_sha256: str | None = None
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _hash_member(zf: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with zf.open(name) as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify_zip(path: str | Path) -> VerifyReport:
    """Re-hash every file of an evidence ZIP against its manifest: each listed file must be
    there once with its size and SHA-256, and nothing else may be there."""
    report = VerifyReport(Path(path))
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        report.problems.append(f"{Path(path).name}: not a readable ZIP ({exc})")
        return report
    with zf:
        names = zf.namelist()
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        for name, n in sorted(counts.items()):
            if n > 1:
                report.problems.append(f"{name}: appears {n} times in the ZIP")
        manifest = _read_manifest(zf, counts, report)
        if manifest is None:
            return report
        listed: dict[str, dict[str, Any]] = {}
        for entry in manifest.get("files", []):
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                report.problems.append(f"{MANIFEST}: a file entry without a path: {entry!r}")
                continue
            listed[entry["path"]] = entry
        for name in sorted(listed):
            entry = listed[name]
            if name not in counts:
                report.problems.append(f"{name}: listed in the manifest but missing from the ZIP")
                continue
            try:
                digest, size = _hash_member(zf, name)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
                report.problems.append(f"{name}: damaged, cannot be read back ({exc})")
                continue
            if size != entry.get("size"):
                report.problems.append(
                    f"{name}: {size} bytes, the manifest says {entry.get('size')} (file changed)"
                )
            elif digest != entry.get("sha256"):
                report.problems.append(f"{name}: SHA-256 differs from the manifest (file changed)")
            report.files += 1
            report.bytes += size
        for name in sorted(counts):
            if name != MANIFEST and name not in listed:
                report.problems.append(f"{name}: in the ZIP but not listed in the manifest")
    report.notes = [str(n) for n in manifest.get("not_exported", [])]
    return report


def _read_manifest(
    zf: zipfile.ZipFile, counts: dict[str, int], report: VerifyReport
) -> dict[str, Any] | None:
    if MANIFEST not in counts:
        report.problems.append(f"{MANIFEST}: missing, nothing can be checked")
        return None
    try:
        raw = zf.read(MANIFEST)
        manifest = json.loads(raw)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        report.problems.append(f"{MANIFEST}: damaged, cannot be read back ({exc})")
        return None
    except ValueError as exc:
        report.problems.append(f"{MANIFEST}: not valid JSON ({exc})")
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        report.problems.append(f"{MANIFEST}: not an aio-reid evidence manifest")
        return None
    if manifest.get("format_version") != FORMAT_VERSION:
        report.problems.append(
            f"{MANIFEST}: format version {manifest.get('format_version')!r}, this checker "
            f"reads {FORMAT_VERSION}"
        )
        return None
    report.manifest = manifest
    report.manifest_sha256 = hashlib.sha256(raw).hexdigest()
    return manifest


def describe_report(report: VerifyReport) -> str:
    """The report in words: an OK line with what was checked, or FAILED and each problem."""
    m = report.manifest or {}
    case = m.get("case") or {}
    who = m.get("exported_by") or {}
    about = (
        f"case {case.get('id')} {case.get('title')!r}, exported {m.get('exported_at')} by "
        f"{who.get('actor')} (key {who.get('key_id')}) with aio-reid "
        f"{(m.get('software') or {}).get('version')}"
        if m
        else None
    )
    lines = []
    if report.ok:
        lines.append(
            f"OK: {report.path.name}: {report.files} files ({report.bytes / 2**20:.2f} MB), "
            "every SHA-256 and size matches the manifest, nothing missing or extra"
        )
    else:
        n = len(report.problems)
        lines.append(f"FAILED: {report.path.name}: {n} problem{'s' if n != 1 else ''}")
        lines.extend(f"  {p}" for p in report.problems)
    if about:
        lines.append(f"  {about}")
    if report.manifest_sha256:
        lines.append(
            f"  manifest SHA-256 {report.manifest_sha256}: the export's audit event records it"
        )
    lines.extend(f"  note: not exported: {n}" for n in report.notes)
    return "\n".join(lines)
