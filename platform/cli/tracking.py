"""Tracking evaluation sub-command of `aioreid`: evaluate-tracking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def evaluate_tracking(
    world: Annotated[Path, typer.Option(help="folder written by `aioreid synth`")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write per-clip and overall rows as JSON")
    ] = None,
    detector: Annotated[
        str, typer.Option(help="the pipeline's person detector, as build_detector names it")
    ] = "background",
    sample_fps: Annotated[
        float, typer.Option(min=0.1, help="frames per second the pipeline samples")
    ] = 5.0,
    dedup: Annotated[
        bool,
        typer.Option(help="skip near-duplicate frames as ingestion does (--no-dedup: score all)"),
    ] = True,
    reentry_gap: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="seconds out of view after which a person's return is a new track to find "
            "(the tracker does no re-identification); 0: one track per person per clip",
        ),
    ] = 2.0,
) -> None:
    """Score the pipeline's detector + tracker on a synthetic world's clips: HOTA, IDF1, MOTA.

    Uses the world's long footage (`aioreid synth --clip-minutes M`) when present, else its
    short clips; metrics are TrackEval's, on the frames the pipeline processed.
    """
    from aioreid.platform.evaluation.tracking import evaluate_world, format_table

    def progress(score) -> None:  # type: ignore[no-untyped-def]
        typer.echo(f"  {score.clip}: {score.frames} frames scored", err=True)

    try:
        report = evaluate_world(world, detector, sample_fps, dedup, reentry_gap, on_clip=progress)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(format_table(report))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")


def register(app: typer.Typer) -> None:
    app.command("evaluate-tracking")(evaluate_tracking)
