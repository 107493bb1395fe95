"""`aioreid case` and `aioreid cameras`: evidence export and checking, camera positions.

    aioreid case list                           # id, status, items, title
    aioreid case export 3 --out case3.zip       # the evidence ZIP (see docs/cases.md)
    aioreid case verify case3.zip               # OK, or each problem; exit 1 on any
    aioreid cameras list
    aioreid cameras set-location lobby --lat 52.37 --lon 4.89

Like `aioreid keys`, these open the metadata database and the object store only (never the
vector index or the encoder), so they run next to an API on the embedded profile; actions
are audited with the actor ``cli`` and no key id. `case verify` reads only the ZIP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aioreid.platform.config import Profile, get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from aioreid.platform.storage import ObjectStore

case_app = typer.Typer(
    help="Investigation cases: list them, export one as an evidence ZIP, verify a ZIP.",
    no_args_is_help=True,
)
cameras_app = typer.Typer(help="Cameras: list them, set where they stand.", no_args_is_help=True)
ACTOR = "cli"


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


@contextmanager
def _db_and_store() -> Iterator[tuple[sessionmaker[Session], ObjectStore]]:
    """Sessions on the configured database (the embedded SQLite file migrated first, as the
    API does) and the object store; every failure becomes one `error:` line."""
    from sqlalchemy.exc import SQLAlchemyError

    from aioreid.platform.cases.service import CaseError
    from aioreid.platform.cli.keys import _first_line, _revision
    from aioreid.platform.db.engine import engine_from_settings, session_factory
    from aioreid.platform.db.errors import DbError
    from aioreid.platform.db.migrate import head_revision, init_database
    from aioreid.platform.storage import StorageError, build_store

    settings = get_settings()
    engine = None
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = engine_from_settings(settings)
        if settings.profile is Profile.EMBEDDED and _revision(engine) != head_revision():
            init_database(settings.database_url)
        yield session_factory(engine), build_store(settings)
    except (DbError, CaseError, StorageError) as exc:
        raise _fail(str(exc)) from None
    except SQLAlchemyError as exc:
        raise _fail(f"database error: {_first_line(exc)}") from None
    finally:
        if engine is not None:
            engine.dispose()


@case_app.command("list")
def case_list(
    status: Annotated[str | None, typer.Option(help="open or closed")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Cases, newest first."""
    from aioreid.platform.cases.service import CaseService

    if status not in (None, "open", "closed"):
        raise _fail(f"--status must be open or closed, got {status!r}")
    with _db_and_store() as (sessions, store):
        page = CaseService(sessions, store).list_cases(status=status, limit=500)
    if as_json:
        typer.echo(json.dumps(page, indent=2, default=str))
        return
    if not page["items"]:
        typer.echo("no cases yet")
        return
    for c in page["items"]:
        typer.echo(f"{c['id']:>5}  {c['status']:<6}  {c['items']:>4} items  {c['title']}")


@case_app.command("export")
def case_export(
    case_id: Annotated[int, typer.Argument(help="the case id", min=1)],
    out: Annotated[Path, typer.Option("--out", help="the ZIP to write")],
    media: Annotated[
        str,
        typer.Option(
            help="original: the source media's untranscoded bytes; reference: only their "
            "SHA-256 and size (for very long videos)"
        ),
    ] = "original",
) -> None:
    """Write a case's evidence ZIP: media, crops, frames, searches, review trail, manifest."""
    from aioreid.platform.cases.evidence import MEDIA_MODES, export_case

    if media not in MEDIA_MODES:
        raise _fail(f"--media must be {' or '.join(MEDIA_MODES)}, got {media!r}")
    with _db_and_store() as (sessions, store):
        result = export_case(
            sessions,
            store,
            case_id,
            out,
            actor=ACTOR,
            key_id=None,
            media=media,  # type: ignore[arg-type]
        )
    typer.echo(
        f"wrote {result.path}: {result.files} files ({result.bytes / 2**20:.2f} MB); "
        f"manifest SHA-256 {result.manifest_sha256} (audit event {result.audit_event_id})"
    )
    for note in result.not_exported:
        typer.echo(f"  not exported: {note}")


@case_app.command("verify")
def case_verify(
    zip_path: Annotated[Path, typer.Argument(metavar="ZIP", help="an evidence ZIP")],
) -> None:
    """Re-hash every file of an evidence ZIP against its manifest; exit 1 on any problem
    (a changed, missing or extra file), naming each."""
    from aioreid.platform.cases.evidence import describe_report, verify_zip

    if not zip_path.is_file():
        raise _fail(f"no such file: {zip_path}")
    report = verify_zip(zip_path)
    typer.echo(describe_report(report))
    if not report.ok:
        raise typer.Exit(code=1)


@cameras_app.command("list")
def cameras_list() -> None:
    """Every camera with its position."""
    import sqlalchemy as sa

    from aioreid.platform.db.models import Camera

    with _db_and_store() as (sessions, _), sessions() as s:
        rows = list(s.scalars(sa.select(Camera).order_by(Camera.id)))
    if not rows:
        typer.echo("no cameras yet (ingest creates them)")
    for c in rows:
        where = f"{c.latitude:.6f}, {c.longitude:.6f}" if c.latitude is not None else "-"
        typer.echo(f"{c.id:>4}  {c.name:<24} {c.modality!s:<4}  {where}  {c.location or ''}")


@cameras_app.command("set-location")
def cameras_set_location(
    name: Annotated[str, typer.Argument(help="the camera's name (or id)")],
    lat: Annotated[float | None, typer.Option("--lat", help="latitude, WGS 84 degrees")] = None,
    lon: Annotated[float | None, typer.Option("--lon", help="longitude, WGS 84 degrees")] = None,
    label: Annotated[str | None, typer.Option(help="a label of the place")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove the position")] = False,
) -> None:
    """Place a camera on the map (the console's camera map uses it)."""
    import sqlalchemy as sa

    from aioreid.platform.db import crud
    from aioreid.platform.db.models import Camera

    if clear and (lat is not None or lon is not None):
        raise _fail("--clear takes no --lat/--lon")
    if not clear and (lat is None or lon is None):
        raise _fail("give both --lat and --lon (or --clear)")
    with _db_and_store() as (sessions, _), sessions.begin() as s:
        cam = s.scalar(sa.select(Camera).where(Camera.name == name))
        if cam is None and name.isdigit():
            cam = s.get(Camera, int(name))
        if cam is None:
            raise _fail(f"no camera named {name!r}")
        crud.set_camera_position(s, cam.id, lat, lon)
        details: dict[str, object] = {"latitude": lat, "longitude": lon}
        if label is not None:
            cam.location = label.strip() or None
            details["location"] = cam.location
        crud.record_audit(
            s, actor=ACTOR, action="locate", entity="camera", entity_id=cam.id, details=details
        )
        about = f"camera {cam.id} ({cam.name})"
    typer.echo(f"{about}: " + ("position removed" if clear else f"at {lat}, {lon}"))


def register(app: typer.Typer) -> None:
    app.add_typer(case_app, name="case")
    app.add_typer(cameras_app, name="cameras")
