"""Restoration commands: degrade (make test inputs), compare (score a result), denoise,
superres and restore (with a bundle, or the default one shipped), train-restorer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hsikit.cli.app import (
    DeviceOpt,
    MemberOpt,
    OutputOpt,
    SceneArg,
    TimeOpt,
    app,
    out,
    scene_arg,
)
from hsikit.errors import InputError
from hsikit.progress import progress_bar


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
    with progress_bar("degrading") as tell:
        written = write_cube(degraded, output, on_window=tell, degradation=spec.model_dump_json())
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


def _restorer(bundle: Path | None, job: str, device: str, scale: int = 1) -> Any:
    """The bundle given, else the default one shipped for ``job`` (and ``scale``); refused
    when it does another job."""
    from hsikit.restorer import default_bundle, load_restorer

    restorer = load_restorer(bundle if bundle is not None else default_bundle(job, scale))
    if restorer.meta.job != job:
        raise InputError(
            bundle,
            f"this bundle does {restorer.meta.job}, not {job}",
            f"use 'hsikit {restorer.meta.job}' with it, or a {job} bundle",
        )
    return restorer.to(device)


def _write_restored(
    scene: str,
    output: Path,
    restorer: Any,
    tile: int,
    overlap: int,
    task: int | None,
    member: int | None,
    time: str | None,
) -> None:
    from hsikit.predict.restore import restored_scene
    from hsikit.writers.cube import check_cube_output, write_cube

    opened = scene_arg(scene, member, time)
    check_cube_output(output)
    with progress_bar("restoring") as tell:
        restored = restored_scene(
            opened, restorer, tile=tile, overlap=overlap, task=task, on_tile=tell
        )
        written = write_cube(
            restored,
            output,
            model=restorer.meta.model.name,
            bundle=restorer.path,
            task=restorer.meta.job,
        )
    out.print(f"wrote {written}: {restored.count} bands, {restored.height} × {restored.width}")


BundleOpt = Annotated[
    Path | None,
    typer.Option(
        "--model-bundle", "-m", help="A restoration bundle (default: the one shipped for this job)."
    ),
]
TileOpt = Annotated[int, typer.Option(min=16, help="Tile side (px) restored at a time.")]
OverlapOpt = Annotated[
    int,
    typer.Option(min=0, help="Pixels each tile shares with each neighbour, blended (no seams)."),
]


@app.command()
def denoise(
    scene: SceneArg,
    output: OutputOpt,
    bundle: BundleOpt = None,
    tile: TileOpt = 128,
    overlap: OverlapOpt = 16,
    device: DeviceOpt = "auto",
    member: MemberOpt = None,
    time: TimeOpt = None,
) -> None:
    """Denoise a cube: same grid, bands, wavelengths and nodata."""
    from hsikit.devices import resolve_device

    restorer = _restorer(bundle, "denoise", resolve_device(device))
    _write_restored(scene, output, restorer, tile, overlap, None, member, time)


@app.command()
def superres(
    scene: SceneArg,
    output: OutputOpt,
    scale: Annotated[int, typer.Option(help="2 or 4: pixels this many times smaller.")] = 4,
    bundle: BundleOpt = None,
    tile: TileOpt = 64,
    overlap: OverlapOpt = 8,
    device: DeviceOpt = "auto",
    member: MemberOpt = None,
    time: TimeOpt = None,
) -> None:
    """Super-resolve a cube: the same bounds, pixels --scale times smaller. With a bundle from
    'hsikit train-downscaler', gridded fields (ERA5) become CF NetCDF / Zarr (every time and
    member) or a GeoTIFF (one of them), longitude wrapping around on global grids."""
    from hsikit.cli.downscaling import write_downscaled, writes_fields
    from hsikit.devices import resolve_device

    restorer = _restorer(bundle, "superres", resolve_device(device), scale)
    if restorer.meta.scale != scale:
        raise InputError(
            bundle,
            f"this bundle super-resolves ×{restorer.meta.scale}, not ×{scale}",
            f"give --scale {restorer.meta.scale} or a ×{scale} bundle",
        )
    if writes_fields(output, restorer):
        write_downscaled(scene, output, restorer, member, time)
        return
    _write_restored(scene, output, restorer, tile, overlap, None, member, time)


@app.command()
def restore(
    scene: SceneArg,
    output: OutputOpt,
    bundle: BundleOpt = None,
    task: Annotated[
        str | None,
        typer.Option(help="The degradation to undo (default: the bundle's classifier detects it)."),
    ] = None,
    tile: TileOpt = 128,
    overlap: OverlapOpt = 16,
    device: DeviceOpt = "auto",
    member: MemberOpt = None,
    time: TimeOpt = None,
) -> None:
    """All-in-one restoration: the degradation is detected (or given), printed and recorded."""
    from hsikit.devices import resolve_device
    from hsikit.predict.restore import detect_task

    restorer = _restorer(bundle, "restore", resolve_device(device))
    tasks = list(restorer.model.tasks)
    if task is not None and task not in tasks:
        raise InputError(
            None,
            f"--task '{task}' is not one of the bundle's tasks",
            f"choose one of {', '.join(tasks)}",
        )
    chosen = (
        tasks.index(task)
        if task is not None
        else detect_task(scene_arg(scene, member, time), restorer)
    )
    out.print(f"degradation: {tasks[chosen]}" + (" (detected)" if task is None else ""))
    _write_restored(scene, output, restorer, tile, overlap, chosen, member, time)


def _train_restorer(**values: Any) -> None:
    """Train a restoration head on scenes (Indian Pines by default): crops from a training
    region degraded on the fly, the best PSNR on a validation region, metrics on a test
    region; writes a bundle and a report."""
    from hsikit.cli.config_options import given, validated
    from hsikit.training.restore import RestoreConfig, train_restorer

    options = given(values, RestoreConfig)
    if values["scenes"]:
        options["scenes"] = values["scenes"]
    config = validated(RestoreConfig, options, "train-restorer")
    output = values["output"]
    report_dir = values["report"] or output.with_name(output.stem + "_report")
    report = train_restorer(config, output, report_dir)
    for task, metrics in report["test"].items():
        restored = metrics["restored"]
        baseline_name, baseline = next((k, v) for k, v in metrics.items() if k != "restored")
        out.print(
            f"[bold]{task}[/bold] on the test region: MPSNR {restored['mpsnr']:.2f} dB "
            f"(the {baseline_name}: {baseline['mpsnr']:.2f}), SAM "
            f"{restored['sam_deg']:.2f}° ({baseline['sam_deg']:.2f}°)"
        )
    out.print(f"bundle: {output}\nreport: {report_dir}/")


def _register_train_restorer() -> None:
    from hsikit.cli.config_options import (
        command_with_options,
        inputs_argument,
        output_option,
        report_option,
    )
    from hsikit.training.restore import RestoreConfig

    leading = [
        inputs_argument("scenes", "Scene files (default: Indian Pines)."),
        output_option("restorer.safetensors"),
        report_option(),
    ]
    app.command("train-restorer")(
        command_with_options(_train_restorer, leading, RestoreConfig, frozenset({"scenes"}))
    )


_register_train_restorer()
