"""The `aioreid` command line. Each sub-command is a thin shell over library functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aioreid.platform.config import get_settings

app = typer.Typer(
    name="aioreid",
    help="All-in-One multimodal person re-identification: data, evaluation and search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(
    help="Inspect ReID datasets in their public layouts.", no_args_is_help=True
)
app.add_typer(datasets_app, name="datasets")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


@app.command()
def config() -> None:
    """Print the effective settings (environment AIOREID_*, .env, defaults); secrets masked."""
    typer.echo(json.dumps(get_settings().redacted(), indent=2))


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="output folder for the world")],
    identities: Annotated[int, typer.Option(min=2, help="number of identities")] = 100,
    seed: Annotated[int, typer.Option(help="random seed; same seed, same bytes")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 2,
    videos: Annotated[bool, typer.Option(help="also render video clips per camera")] = True,
) -> None:
    """Generate the synthetic multi-camera multimodal world in the public dataset layouts."""
    from aioreid.encoder.data.synth import SynthConfig, generate_world

    cfg = SynthConfig(
        identities=identities, seed=seed, workers=workers,
        videos_per_camera=1 if videos else 0,
    )
    manifest = generate_world(out, cfg)
    typer.echo(f"world written to {out} ({len(manifest.identities)} identities)")


@datasets_app.command("list")
def datasets_list() -> None:
    """List the dataset layouts the loaders read."""
    from aioreid.encoder.data.datasets import list_datasets

    for name in list_datasets():
        typer.echo(name)


@datasets_app.command("inspect")
def datasets_inspect(
    name: Annotated[str, typer.Argument(help="dataset name, see `aioreid datasets list`")],
    root: Annotated[Path, typer.Argument(help="dataset folder or its parent")],
) -> None:
    """Load a dataset and print record, identity and camera counts per split."""
    from aioreid.encoder.data.datasets import load_dataset
    from aioreid.encoder.data.records import DatasetLayoutError

    try:
        ds = load_dataset(name, root)
    except (DatasetLayoutError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(json.dumps(ds.summary(), indent=2))


@app.command()
def baseline(
    world: Annotated[Path, typer.Option(help="folder written by `aioreid synth`")],
    json_out: Annotated[Path | None, typer.Option("--json", help="write the table as JSON")] = None,
) -> None:
    """Evaluate the non-learned histogram baseline zero-shot on a synthetic world."""
    from aioreid.encoder.zeroshot import HistogramEmbedder, evaluate_world, report

    try:
        results = evaluate_world(HistogramEmbedder(), world, progress=True)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(report(results, title="histogram baseline (zero-shot, held-out identities)"))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results.to_json(), indent=2))


@app.command()
def demo(
    identities: Annotated[int | None, typer.Option(help="identities in the demo world")] = None,
    seed: Annotated[int | None, typer.Option(help="world seed")] = None,
    out: Annotated[Path | None, typer.Option(help="demo folder; default <home>/demo")] = None,
) -> None:
    """Run the main job end to end on the embedded profile and print its tables."""
    from aioreid.platform.demo import run_demo

    settings = get_settings()
    run_demo(
        out or settings.home / "demo",
        identities=identities or settings.synth.identities,
        seed=settings.synth.seed if seed is None else seed,
    )


def main() -> None:
    """Console-script entry point."""
    app()
