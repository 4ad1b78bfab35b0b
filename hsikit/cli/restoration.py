"""Commands on cube quality: degrade (make test inputs), compare (score a result)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hsikit.cli.app import MemberOpt, OutputOpt, SceneArg, TimeOpt, app, out, scene_arg


@app.command()
def degrade(
    scene: SceneArg,
    output: OutputOpt,
    noise: Annotated[
        str | None,
        typer.Option(
            help="gaussian:SIGMA (of 255 of the data range), gaussian:LOW-HIGH (blind), "
            "noniid:LOW-HIGH (σ per band) or poisson:PEAK (photons at the range's top)."
        ),
    ] = None,
    stripes: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="Column stripes in this share of the bands (e.g. 0.33)."),
    ] = None,
    dead_lines: Annotated[
        float | None, typer.Option(min=0, max=1, help="Dead columns in this share of the bands.")
    ] = None,
    impulse: Annotated[
        str | None,
        typer.Option(
            help="Salt-and-pepper noise hitting AMOUNT (or LOW-HIGH) of the pixels of a third of "
            "the bands, e.g. 0.1-0.7."
        ),
    ] = None,
    blur: Annotated[float | None, typer.Option(min=0, help="Gaussian blur, σ in pixels.")] = None,
    band_loss: Annotated[
        float | None, typer.Option(min=0, max=1, help="Lose this share of the bands (set to zero).")
    ] = None,
    downsample: Annotated[
        str | None,
        typer.Option(
            help="SCALE[:area|bicubic], scale 2 or 4: coarser pixels, a grid scale times coarser."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    data_range: Annotated[
        str | None,
        typer.Option(
            "--range",
            help="LOW-HIGH: the data range σ is relative to (default: the scene's "
            "0.1–99.9 percentiles).",
        ),
    ] = None,
    member: MemberOpt = None,
    time: TimeOpt = None,
) -> None:
    """Write a degraded copy of a cube (noise, stripes, dead lines, blur, lost bands,
    downsampling): the same format family, band metadata kept, the degradation recorded."""
    from hsikit.degrade import degraded_scene, spec_from_options
    from hsikit.writers.cube import check_cube_output, write_cube

    spec = spec_from_options(
        noise=noise,
        stripes=stripes,
        dead_lines=dead_lines,
        impulse=impulse,
        blur=blur,
        band_loss=band_loss,
        downsample=downsample,
        seed=seed,
        data_range=data_range,
    )
    opened = scene_arg(scene, member, time)
    check_cube_output(output)
    degraded, spec = degraded_scene(opened, spec)
    written = write_cube(degraded, output, degradation=spec.model_dump_json())
    low, high = spec.data_range or (float("nan"), float("nan"))  # fixed by degraded_scene
    out.print(f"wrote {written}: {spec.describe()}, data range {low:g} – {high:g}")


@app.command()
def compare(
    reference: Annotated[str, typer.Argument(help="The clean cube.")],
    result: Annotated[str, typer.Argument(help="The cube to score, on the reference's grid.")],
    ratio: Annotated[
        float,
        typer.Option(
            min=1, help="ERGAS resolution ratio: the super-resolution scale (1 for denoising)."
        ),
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """MPSNR, MSSIM, SAM and ERGAS of a result against a reference, on valid pixels, bands
    matched by wavelength."""
    from hsikit.evaluation.quality import compare_scenes

    metrics = compare_scenes(scene_arg(reference), scene_arg(result), ratio)
    if as_json:
        out.print_json(json.dumps(metrics))
        return
    table = Table(
        show_header=False,
        title=f"{Path(result).name} against {Path(reference).name}",
        title_justify="left",
    )
    table.add_column(style="bold cyan")
    table.add_column()
    table.add_row("MPSNR", f"{metrics['mpsnr']:.2f} dB")
    table.add_row("MSSIM", f"{metrics['mssim']:.4f}")
    table.add_row("SAM", f"{metrics['sam_deg']:.3f}°")
    table.add_row("ERGAS", f"{metrics['ergas']:.3f}")
    table.add_row("pixels", f"{metrics['pixels']:,} valid in both, {metrics['bands']} bands")
    out.print(table)
