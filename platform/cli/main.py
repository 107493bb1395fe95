"""The `aioreid` command line. Each sub-command is a thin shell over library functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aioreid.platform.cli.cases import register as register_case_commands
from aioreid.platform.cli.encoder import register as register_encoder_commands
from aioreid.platform.cli.index import register as register_index_commands
from aioreid.platform.cli.jobs import register as register_job_commands
from aioreid.platform.cli.service import register as register_platform_commands
from aioreid.platform.cli.tracking import register as register_tracking_commands
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


def _int_pair(text: str, option: str) -> tuple[int, int]:
    """``"2,4"`` -> ``(2, 4)``; anything else is a ValueError naming ``option``."""
    parts = text.split(",")
    if len(parts) == 2:
        try:
            return int(parts[0]), int(parts[1])
        except ValueError:
            pass
    raise ValueError(f"{option} takes MIN,MAX (two integers), got {text!r}")


@app.command()
def config() -> None:
    """Print the effective settings (environment AIOREID_*, .env, defaults); secrets masked."""
    typer.echo(json.dumps(get_settings().redacted(), indent=2))


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="output folder for the world")],
    identities: Annotated[int, typer.Option(min=2, help="number of identities")] = 100,
    seed: Annotated[int, typer.Option(help="random seed; same seed, same bytes")] = 0,
    train_fraction: Annotated[
        float,
        typer.Option(
            help="share of identities for training, in (0, 1); the rest are held out for "
            "zero-shot tests"
        ),
    ] = 0.75,
    images_per_camera: Annotated[
        str,
        typer.Option(
            metavar="MIN,MAX",
            help="images of each person per camera that sees them (RGB and IR), drawn "
            "uniformly from MIN..MAX; more gives denser training data per person",
        ),
    ] = "2,4",
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 2,
    videos: Annotated[bool, typer.Option(help="also render video clips per camera")] = True,
    clip_minutes: Annotated[
        float | None,
        typer.Option(
            help="also render one long clip of this many minutes per camera, with "
            "MOTChallenge ground truth, under <out>/footage (for evaluate-tracking)"
        ),
    ] = None,
) -> None:
    """Generate the synthetic multi-camera multimodal world in the public dataset layouts."""
    from aioreid.encoder.data.synth import (
        FootageOptions,
        SynthConfig,
        generate_world,
        write_footage,
    )

    try:
        per_camera = _int_pair(images_per_camera, "--images-per-camera")
        cfg = SynthConfig(
            identities=identities,
            seed=seed,
            train_fraction=train_fraction,
            images_per_camera=per_camera,
            workers=workers,
            videos_per_camera=1 if videos else 0,
        )
        footage = None if clip_minutes is None else FootageOptions(clip_minutes, workers=workers)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    manifest = generate_world(out, cfg)
    typer.echo(f"world written to {out} ({len(manifest.identities)} identities)")
    if footage is not None:
        index = write_footage(out, footage)
        typer.echo(f"footage written to {out / 'footage'} ({len(index['clips'])} clips)")


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


def _data_roots(items: list[str] | None) -> dict[str, Path]:
    """``["llcm=/data/LLCM", ...]`` -> ``{"llcm": Path("/data/LLCM")}``; ValueError otherwise."""
    roots: dict[str, Path] = {}
    for item in items or []:
        name, sep, root = item.partition("=")
        if not sep or not name.strip() or not root.strip():
            raise ValueError(f"--data takes NAME=PATH (e.g. llcm=/data/LLCM), got {item!r}")
        roots[name.strip()] = Path(root.strip())
    return roots


@app.command()
def train(
    config: Annotated[
        str, typer.Option(help="YAML file, or a built-in name (cpu-synthetic, gpu-paper)")
    ],
    world: Annotated[Path | None, typer.Option(help="override the config's world folder")] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            metavar="NAME=PATH",
            help="root of a dataset the config's sources list (repeatable), e.g. "
            "--data llcm=/data/LLCM; replaces a root the file gives",
        ),
    ] = None,
    data_root: Annotated[
        Path | None,
        typer.Option(help="folder holding the dataset folders, for sources given no root"),
    ] = None,
    output_dir: Annotated[Path | None, typer.Option(help="override the output folder")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="override the time budget")] = None,
    resume: Annotated[bool, typer.Option(help="continue from output_dir/last.pt")] = True,
) -> None:
    """Train the AIO encoder progressively; prints where the final checkpoint is."""
    from aioreid.encoder.training.config import load_config, with_data_roots
    from aioreid.encoder.training.trainer import Trainer

    try:
        cfg = load_config(config, world=world, output_dir=output_dir, max_minutes=max_minutes)
        cfg = with_data_roots(cfg, _data_roots(data), data_root)
        trainer = Trainer(cfg)  # loads every dataset: a missing or malformed root fails here
    except (FileNotFoundError, ValueError, TypeError) as exc:
        raise _fail(str(exc)) from exc
    summary = trainer.fit(resume=resume)
    typer.echo(json.dumps(summary, indent=2))


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="final.pt written by `aioreid train`")],
    dataset: Annotated[
        str,
        typer.Option(
            help="synthetic, market1501, sysu_mm01, regdb, llcm, "
            "pku_sketch, cuhk_pedes, icfg_pedes, rstpreid"
        ),
    ],
    root: Annotated[Path, typer.Option(help="dataset folder (or its parent)")],
    trials: Annotated[int, typer.Option(min=1, help="SYSU/RegDB/PKU trials to average")] = 10,
    compare: Annotated[
        bool, typer.Option(help="also evaluate the histogram baseline and the untrained model")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="write results as JSON")] = None,
) -> None:
    """Zero-shot evaluation: the paper's table (Rank-1/5/10, mAP, mINP) for a dataset."""
    from aioreid.encoder.inference import Encoder
    from aioreid.encoder.zeroshot import HistogramEmbedder, report
    from aioreid.encoder.zeroshot.dataset_eval import evaluate_dataset
    from aioreid.encoder.zeroshot.encoder_embedder import EncoderEmbedder

    try:
        encoder = Encoder.load(checkpoint)
        models = [EncoderEmbedder(encoder, name=f"AIO {encoder.version}")]
        if compare:
            untrained = Encoder.untrained(encoder.config)
            models += [HistogramEmbedder(), EncoderEmbedder(untrained, name="AIO untrained")]
        results = [evaluate_dataset(m, dataset, root, trials=trials, progress=True) for m in models]
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(report(results, title=f"zero-shot on {dataset}"))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(
            json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False)
        )


@app.command()
def demo(
    identities: Annotated[int | None, typer.Option(help="identities in the demo world")] = None,
    seed: Annotated[int | None, typer.Option(help="world seed")] = None,
    out: Annotated[Path | None, typer.Option(help="demo folder; default <home>/demo")] = None,
    train_minutes: Annotated[
        float, typer.Option(help="training budget when no encoder checkpoint is cached")
    ] = 4.0,
) -> None:
    """Synthesise a world, train if needed, ingest, search every modality, print the table."""
    from aioreid.platform.cli.demo import run_demo

    settings = get_settings()
    run_demo(
        out or settings.home / "demo",
        identities=identities or settings.synth.identities,
        seed=settings.synth.seed if seed is None else seed,
        checkpoint=settings.encoder.checkpoint,
        settings=settings,
        train_minutes=train_minutes,
    )


register_platform_commands(app)
register_encoder_commands(app)
register_index_commands(app)
register_job_commands(app)
register_tracking_commands(app)
register_case_commands(app)


def main() -> None:
    """Console-script entry point."""
    app()
