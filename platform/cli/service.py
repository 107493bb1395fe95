"""Platform sub-commands of `aioreid`: db, keys, ingest, import, search, api."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aioreid.platform.cli.keys import keys_app
from aioreid.platform.config import get_settings
from aioreid.platform.pipeline.detector_names import DETECTOR_HELP

if TYPE_CHECKING:  # the search models load only when a search runs (a fast CLI start-up)
    from aioreid.platform.search.schemas import TrackInfo

db_app = typer.Typer(help="Metadata database migrations.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _services():  # type: ignore[no-untyped-def]
    from aioreid.platform.services import Services

    return Services.from_settings(get_settings())


def _optimize(svc) -> None:  # type: ignore[no-untyped-def]
    """After a bulk load, build the live collection's HNSW graph (a no-op on a server)."""
    collection = svc.index.resolve_alias(svc.alias)
    if collection is not None:
        typer.echo("optimising the index (HNSW build)…")
        svc.index.optimize(collection)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Migrate the configured database (the services profile's one-shot migration)."""
    from aioreid.platform.db.migrate import current, upgrade

    url = get_settings().database_url
    upgrade(url, revision)
    typer.echo(f"database at revision {current(url)}")


@db_app.command("check")
def db_check() -> None:
    """Fail when the database is behind or differs from the models."""
    from aioreid.platform.db.errors import SchemaMismatchError
    from aioreid.platform.db.migrate import check

    try:
        check(get_settings().database_url)
    except SchemaMismatchError as exc:
        raise _fail(str(exc)) from None
    typer.echo("database matches the models")


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="image/video files or folders")],
    camera: Annotated[str | None, typer.Option(help="camera name for every file")] = None,
    modality: Annotated[str, typer.Option(help="rgb or ir")] = "rgb",
    detector: Annotated[str, typer.Option(help=DETECTOR_HELP)] = "crops",
    start_time: Annotated[
        datetime | None, typer.Option(help="recording start (ISO 8601) of videos")
    ] = None,
    sample_fps: Annotated[float, typer.Option(help="video frames sampled per second")] = 5.0,
    run_async: Annotated[
        bool,
        typer.Option("--async", help="submit a job to the Celery workers and return at once"),
    ] = False,
) -> None:
    """Ingest files or folders (in this process, or through the workers with --async)."""
    if run_async:  # the jobs CLI queues it (and turns bad paths into a clear error)
        from aioreid.platform.cli.jobs import ingest_async

        ingest_async(paths, camera, modality, detector, start_time, sample_fps)
        return
    from aioreid.platform.cli.jobs import media_files
    from aioreid.platform.pipeline.frames import SamplingOptions
    from aioreid.platform.pipeline.ingest import IngestOptions, ingest_many

    try:
        files = media_files(paths)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    if modality not in ("rgb", "ir"):
        raise _fail(f"modality must be rgb or ir, got {modality!r}")
    from aioreid.platform.pipeline.detect import build_detector

    try:
        build_detector(detector)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    items = [
        {"path": f, "camera": camera, "modality": modality, "start_time": start_time} for f in files
    ]
    opts = IngestOptions(detector=detector, sampling=SamplingOptions(sample_fps=sample_fps))
    svc = _services()
    try:
        job_id, results = ingest_many(svc, items, options=opts, source=", ".join(map(str, paths)))
        _optimize(svc)
    finally:
        svc.close()
    failed = [r for r in results if r.status == "failed"]
    skipped = [r for r in results if r.note]
    typer.echo(
        f"job {job_id}: {len(results) - len(failed) - len(skipped)} files ingested, "
        f"{sum(r.sightings for r in results)} sightings, {len(skipped)} skipped, "
        f"{len(failed)} failed"
    )
    for r in skipped:
        typer.echo(f"  skipped: {r.name}: {r.note}")
    for r in failed:
        typer.echo(f"  failed: {r.name}: {_without_name(r.error or '', r.name)}")


def _without_name(error: str, name: str) -> str:
    """A failure reason without the file name it starts with (the line names the file)."""
    short = Path(name).name
    return error.removeprefix(f"{short}: ") if short else error


def import_dataset(
    name: Annotated[str, typer.Argument(help="dataset layout: market1501, sysu_mm01, ...")],
    root: Annotated[Path, typer.Argument(help="dataset folder (or its parent)")],
    split: Annotated[list[str] | None, typer.Option(help="train, query, gallery")] = None,
) -> None:
    """Bulk-import a dataset folder, keeping its cameras and identity labels."""
    from aioreid.encoder.data.records import DatasetLayoutError
    from aioreid.platform.pipeline.dataset_import import SPLITS
    from aioreid.platform.pipeline.dataset_import import import_dataset as run

    svc = _services()
    try:
        summary = run(svc, root, name, splits=split or SPLITS)
        _optimize(svc)
    except (DatasetLayoutError, KeyError, ValueError) as exc:
        raise _fail(str(exc)) from None
    finally:
        svc.close()
    typer.echo(
        f"job {summary.job_id}: {summary.imported} images imported, {summary.failed} failed, "
        f"{summary.skipped_query_material} sketches/captions skipped (query material)"
    )


def search(
    text: Annotated[str | None, typer.Option(help="description")] = None,
    rgb: Annotated[Path | None, typer.Option(help="RGB image")] = None,
    ir: Annotated[Path | None, typer.Option(help="infrared image")] = None,
    sketch: Annotated[Path | None, typer.Option(help="sketch image")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 10,
    level: Annotated[
        str, typer.Option(help="track: one hit per person track; sighting: one per crop")
    ] = "track",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Search the live index in this process and print the hits."""
    from aioreid.platform.search.schemas import SearchOptions
    from aioreid.platform.search.service import QueryError, SearchService

    if level not in ("track", "sighting"):
        raise _fail(f"--level must be track or sighting, got {level!r}")
    parts: dict[str, object] = {}
    for name, path in (("rgb", rgb), ("ir", ir), ("sketch", sketch)):
        if path is not None:
            if not path.is_file():
                raise _fail(f"no such file: {path}")
            parts[name] = path.read_bytes()
    if text:
        parts["text"] = text
    svc = _services()
    try:
        options = SearchOptions(limit=limit, level=level)  # type: ignore[arg-type]
        res = SearchService(svc).search(parts, options=options)  # type: ignore[arg-type]
    except QueryError as exc:
        raise _fail(str(exc)) from None
    finally:
        svc.close()
    if as_json:
        typer.echo(res.model_dump_json(indent=2))
        return
    typer.echo(
        f"{len(res.hits)} hits at {res.level} level "
        f"({res.took_ms:.0f} ms, encoder {res.encoder_version})"
    )
    for h in res.hits:
        typer.echo(
            f"  sighting {h.sighting_id:>6}  score {h.score:.3f}  {h.camera or '-':<14} "
            f"{h.time.isoformat() if h.time else '-':<26} identity {h.identity_id or '-'}  "
            f"[{h.best_part}]"
        )
        if h.track is not None:
            typer.echo(f"      {_track_span(h.track)}")


def _track_span(t: TrackInfo) -> str:
    """A hit's track in one line: its id, when (wall clock, else offsets) and how long."""
    seconds = max(0.0, t.end_offset_s - t.start_offset_s)
    if t.start is not None and t.end is not None:
        when = f"{t.start.isoformat()} -> {t.end.isoformat()}"
    else:
        when = f"{t.start_offset_s:.1f} s -> {t.end_offset_s:.1f} s into the media"
    return f"track {t.track_id}: {when} ({seconds:.1f} s), {t.frames} frames, {t.sightings} crops"


def api(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """Serve the search API with uvicorn."""
    import uvicorn

    from aioreid.platform.api.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings=settings),
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_level=settings.log_level.lower(),
    )


def ui(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8501,
    api_url: Annotated[
        str | None,
        typer.Option(help="search API to use; default: the API in-process (embedded profile)"),
    ] = None,
) -> None:
    """Start the Streamlit console."""
    import importlib.util
    import math
    import os
    import sys

    spec = importlib.util.find_spec("aioreid.ui.app")
    if spec is None or spec.origin is None:
        raise _fail("the console (aioreid.ui.app) is not installed")
    env = dict(os.environ)
    if api_url:
        env["AIOREID_UI_API_URL"] = api_url
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        spec.origin,
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",  # no "Deploy" button: this is a product, not a notebook
        "minimal",
        # Streamlit's own upload limit is the API's, so the widget promises what the API takes.
        "--server.maxUploadSize",
        str(max(1, math.ceil(get_settings().api.max_upload_mb))),
    ]
    # Replace this process so that signals (and a supervisor's stop) reach streamlit itself.
    os.execve(sys.executable, cmd, env)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(keys_app, name="keys")
    app.command()(ingest)
    app.command("import")(import_dataset)
    app.command()(search)
    app.command()(api)
    app.command()(ui)
