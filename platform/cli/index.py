"""Index maintenance sub-commands of `aioreid`: reindex start|resume|status|sync-review,
retention."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import typer

from aioreid.platform.config import get_settings

reindex_app = typer.Typer(
    help="Re-index the gallery with another encoder, then swap search over at once.",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _services():  # type: ignore[no-untyped-def]
    from aioreid.platform.services import Services

    return Services.from_settings(get_settings())


def _encoder(path: Path):  # type: ignore[no-untyped-def]
    from aioreid.platform.services import load_encoder

    return load_encoder(path, get_settings().encoder)  # the configured runtime


def _async_runner(svc):  # type: ignore[no-untyped-def]
    """The configured job runner for --async: one whose work outlives this command. Asked
    for before a generation is started, so a refusal leaves no generation without a driver."""
    from aioreid.platform.pipeline.job_runners import RunnerConfigError, detached_runner_class

    try:
        return detached_runner_class(svc.settings.broker.runner)(svc.settings, svc.sessions, svc)
    except RunnerConfigError as exc:
        raise _fail(str(exc)) from None


def _queue(runner, svc, generation_id: int) -> None:  # type: ignore[no-untyped-def]
    try:
        runner.start_reindex(generation_id)
    finally:
        runner.shutdown()
    typer.echo(f"generation {generation_id} queued ({svc.settings.broker.runner} runner)")


def _run(svc, generation_id: int, batch: int) -> None:  # type: ignore[no-untyped-def]
    from tqdm.auto import tqdm

    from aioreid.platform.pipeline.reindex import progress, run_reindex

    start = progress(svc, generation_id)
    with tqdm(total=start.remaining, desc=f"re-index {start.version}", unit="sighting") as bar:
        done = run_reindex(svc, generation_id, batch=batch, on_step=bar.update)
    typer.echo(json.dumps(asdict(done), indent=2))


@reindex_app.command("start")
def reindex_start(
    checkpoint: Annotated[
        Path | None, typer.Option(help="encoder checkpoint; default: the configured encoder")
    ] = None,
    queue: Annotated[
        bool, typer.Option("--async", help="queue the re-index on the workers instead")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, help="sightings per step")] = 256,
) -> None:
    """Build the encoder's collection next to the live one, then swap the search alias."""
    from aioreid.platform.pipeline.reindex import ReindexRefused, start_reindex
    from aioreid.platform.services import EncoderUnavailable

    svc = _services()
    try:
        runner = _async_runner(svc) if queue else None
        try:
            encoder = _encoder(checkpoint) if checkpoint is not None else svc.encoder
            generation_id = start_reindex(svc, encoder)
        except ReindexRefused as exc:
            raise _fail(f"{exc}; see `aioreid reindex status` / `reindex resume`") from None
        except (EncoderUnavailable, FileNotFoundError) as exc:
            raise _fail(str(exc)) from None
        typer.echo(f"generation {generation_id} started")
        configured = get_settings().encoder.checkpoint
        if checkpoint is not None and (
            configured is None or Path(configured).resolve() != checkpoint.resolve()
        ):
            typer.secho(
                "note: AIOREID_ENCODER__CHECKPOINT names another encoder; the check_encoder "
                "beat re-indexes back to it unless the configuration is changed too",
                fg=typer.colors.YELLOW,
                err=True,
            )
        if runner is not None:
            _queue(runner, svc, generation_id)
        else:
            _run(svc, generation_id, batch)
    finally:
        svc.close()


@reindex_app.command("resume")
def reindex_resume(
    generation_id: Annotated[int, typer.Argument(help="generation id, see `reindex status`")],
    queue: Annotated[
        bool, typer.Option("--async", help="queue the re-index on the workers instead")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, help="sightings per step")] = 256,
) -> None:
    """Continue an interrupted re-index from its stored cursor."""
    from aioreid.platform.pipeline.reindex import ReindexError

    svc = _services()
    try:
        if queue:
            _queue(_async_runner(svc), svc, generation_id)
        else:
            _run(svc, generation_id, batch)
    except ReindexError as exc:
        raise _fail(str(exc)) from None
    finally:
        svc.close()


@reindex_app.command("status")
def reindex_status(
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Index generations with their status, points and cursor, and where the alias points."""
    from aioreid.platform.pipeline.reindex import generations

    svc = _services()
    try:
        gens = generations(svc)
        live = svc.index.resolve_alias(svc.alias)
    finally:
        svc.close()
    if json_out:
        doc = {"alias": svc.alias, "live": live, "generations": [asdict(g) for g in gens]}
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"alias {svc.alias} -> {live or '(none)'}")
    for g in gens:
        typer.echo(
            f"{g.generation_id:>4}  {g.status:<8}  points {g.points:<8} after {g.after:<8} "
            f"missing {g.missing:<5} remaining {g.remaining:<8} {g.version}  {g.collection}"
        )


@reindex_app.command("sync-review")
def reindex_sync_review() -> None:
    """Write analysts' review states into the live collection's payload and add the payload
    indexes it lacks (a collection built before the payload carried them; until then its
    points count as unreviewed). Safe to repeat."""
    from aioreid.platform.pipeline.reindex import backfill_reviews

    svc = _services()
    try:
        changed = backfill_reviews(svc)
    finally:
        svc.close()
    typer.echo(f"{changed} sighting payloads updated with their review state")


def retention(
    days: Annotated[
        float | None, typer.Option(min=0.0, help="delete media older than this many days")
    ] = None,
    failed_days: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="delete failed media without sightings (bad uploads) this many days after "
            "they failed; default: AIOREID_BROKER__FAILED_MEDIA_DAYS",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="only count what would be deleted")] = False,
) -> None:
    """Delete old media with their sightings, index points and objects, and what failed
    uploads left behind."""
    from aioreid.platform.pipeline.retention import (
        RetentionError,
        apply_retention,
        remove_failed_media,
    )

    if days is not None and days <= 0:
        raise _fail("--days must be more than 0")
    svc = _services()
    failed_days = svc.settings.broker.failed_media_days if failed_days is None else failed_days
    now = datetime.now(timezone.utc)
    report = {}
    try:
        if days is not None:
            report["old_media"] = apply_retention(svc, now - timedelta(days=days), dry_run=dry_run)
        if failed_days is not None:
            report["failed_media"] = remove_failed_media(
                svc, now - timedelta(days=failed_days), dry_run=dry_run
            )
    except RetentionError as exc:
        raise _fail(str(exc)) from None
    finally:
        svc.close()
    typer.echo(json.dumps(report, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(reindex_app, name="reindex")
    app.command()(retention)
