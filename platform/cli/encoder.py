"""Encoder sub-commands of `aioreid`: export (ONNX, parity-checked) and embed (features of
your own files or captions to a .npy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=code)


def export(
    checkpoint: Annotated[Path, typer.Option(help="final.pt written by `aioreid train`")],
    out: Annotated[
        Path | None,
        typer.Option(help="export folder; default <checkpoint dir>/<checkpoint stem>-onnx"),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="also write int8 dynamically quantised graphs (own encoder version, +int8)",
        ),
    ] = False,
    views: Annotated[
        str,
        typer.Option(
            help="comma-separated views to export, e.g. rgb,ir,sketch,text,sketch+text; "
            "'all' = every modality and combination"
        ),
    ] = "all",
    samples: Annotated[int, typer.Option(min=1, help="parity samples per view")] = 16,
    threshold: Annotated[
        float, typer.Option(help="least cosine ONNX vs PyTorch for every sample")
    ] = 0.9999,
    int8_threshold: Annotated[
        float, typer.Option(help="least cosine int8 vs PyTorch for every sample")
    ] = 0.8,
    world: Annotated[
        Path | None,
        typer.Option(
            help="also evaluate the zero-shot table of this synthetic world through PyTorch "
            "and ONNX (and int8) and require the same Rank-1 (minutes for a large world)"
        ),
    ] = None,
    sysu_trials: Annotated[int, typer.Option(min=1, help="SYSU trials with --world")] = 10,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the report as JSON")
    ] = None,
) -> None:
    """Export the encoder to ONNX (one graph per view) and check parity with PyTorch.

    Fails (exit 1, nothing written) when a sample's cosine falls below the threshold.
    """
    from aioreid.encoder.export import ParityError, export_onnx, parse_views
    from aioreid.platform.config import get_settings

    try:
        names = [v.strip() for v in views.split(",") if v.strip()]
        report = export_onnx(
            checkpoint,
            out,
            local_files_only=get_settings().encoder.local_files_only,
            views=parse_views(names) if names != ["all"] else None,
            int8=int8,
            samples=samples,
            threshold=threshold,
            int8_threshold=int8_threshold,
            world=world,
            sysu_trials=sysu_trials,
            log=lambda msg: typer.echo(msg, err=True),
        )
    except ParityError as exc:
        raise _fail(str(exc), code=1) from None
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"exported {len(report.views)} graphs to {report.folder} in {report.seconds:.0f} s")
    typer.echo(f"encoder version {report.version} (dim {report.dim})")
    if report.int8_version:
        typer.echo(f"int8 version    {report.int8_version}")
    typer.echo(f"parity on {report.samples} samples (least cosine to PyTorch per view):")
    for name, cos in report.min_cosine.items():
        line = f"  {name:<20} fp32 {cos:.6f}"
        if report.int8_min_cosine:
            line += f"   int8 {report.int8_min_cosine[name]:.6f}"
        typer.echo(line)
    if report.zeroshot:
        for runtime, rows in report.zeroshot["tables"].items():
            r1 = "  ".join(f"{s} {m['R1']:.1f}" for s, m in rows.items())
            typer.echo(f"zero-shot R1 {runtime:<10} {r1}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")


def _expand(paths: list[str]) -> list[str]:
    """Files as given; a folder gives its image files, sorted."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(str(f) for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def embed(
    checkpoint: Annotated[Path, typer.Option(help="final.pt written by `aioreid train`")],
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help="image files or folders; for --modality text, the captions themselves"),
    ] = None,
    modality: Annotated[str, typer.Option(help="rgb, ir, sketch or text")] = "rgb",
    out: Annotated[Path, typer.Option(help="where to write the N x dim float32 .npy")] = Path(
        "features.npy"
    ),
    text_file: Annotated[
        Path | None, typer.Option(help="--modality text: read captions from this file, one a line")
    ] = None,
    runtime: Annotated[
        str | None, typer.Option(help="torch or onnx; default: the configured encoder.runtime")
    ] = None,
    onnx_dir: Annotated[Path | None, typer.Option(help="export folder for --runtime onnx")] = None,
    int8: Annotated[bool, typer.Option("--int8", help="--runtime onnx: the int8 graphs")] = False,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
) -> None:
    """Embed your own images (or captions) into an N x dim float32 .npy, rows in input order."""
    import numpy as np

    from aioreid.encoder.data.records import Modality
    from aioreid.encoder.inference import Encoder, EncoderInputError
    from aioreid.platform.config import get_settings

    cfg = get_settings().encoder
    try:
        mod = Modality.parse(modality)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    items = list(inputs or [])
    if mod is Modality.TEXT:
        if text_file is not None:
            try:
                lines = text_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise _fail(f"cannot read {text_file}: {exc.strerror or exc}") from None
            items += [line for line in lines if line.strip()]
    else:
        if text_file is not None:
            raise _fail("--text-file is for --modality text")
        items = _expand(items)
    if not items:
        raise _fail("nothing to embed: give files (or captions with --modality text)")
    try:
        encoder = Encoder.load(
            checkpoint,
            device=cfg.device,
            batch_size=batch_size,
            local_files_only=cfg.local_files_only,
            runtime=runtime or cfg.runtime,
            onnx_dir=onnx_dir if onnx_dir is not None else cfg.onnx_dir,
            int8=int8,
            threads=cfg.onnx_threads,
        )
        vectors = encoder.embed(items, mod)
    except (EncoderInputError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, vectors.astype(np.float32, copy=False))
    typer.echo(
        f"wrote {out}: shape {tuple(vectors.shape)} float32, encoder {encoder.version} "
        f"({encoder.runtime_name})"
    )


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("embed")(embed)
