"""Batch mapping: map (many scenes on dask.distributed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from hsikit.cli.app import (
    BandsByPositionOpt,
    DeviceOpt,
    PrecisionOpt,
    ResampleBandsOpt,
    app,
    err,
    out,
)


class TilesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f} tiles/s")


@app.command("map")
def map_command(
    scenes: Annotated[
        list[str],
        typer.Argument(
            help="Scenes: files or folders, globs ('tiles/*.tif'), text files listing paths "
            "(.txt), or STAC Item JSON files."
        ),
    ],
    bundle: Annotated[
        Path, typer.Option("--model-bundle", "-m", help="Trained bundle (.safetensors).")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output folder (new, or an earlier run's).")
    ],
    asset: Annotated[
        str | None, typer.Option(help="Asset key of STAC Items (default: the first raster).")
    ] = None,
    confidence: Annotated[bool, typer.Option(help="Also write each map's confidence.")] = False,
    window: Annotated[int, typer.Option(min=16, help="Tile side in pixels.")] = 256,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Local workers (default: one per core, as memory allows)."),
    ] = None,
    threads_per_worker: Annotated[int, typer.Option(min=1, help="Threads per local worker.")] = 1,
    torch_threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Torch threads per task (default: the local cores shared out; 1 on a cluster).",
            show_default=False,
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Address of a running dask scheduler (tcp://HOST:PORT) to use instead."),
    ] = None,
    retries: Annotated[int, typer.Option(min=0, help="Retries of a failing tile.")] = 2,
    device: DeviceOpt = "cpu",
    precision: PrecisionOpt = "fp32",
    resample_bands: ResampleBandsOpt = False,
    bands_by_position: BandsByPositionOpt = False,
) -> None:
    """Map many scenes with one bundle on dask.distributed: per scene the same GIS-ready map
    as 'hsikit classify', a VRT mosaic per CRS, STAC metadata and a report of the area per
    class. A rerun with the same folder resumes, skipping finished tiles."""
    from hsikit.devices import resolve_device
    from hsikit.jobs.mapping import MapSettings, map_scenes
    from hsikit.spectral_resampling import band_mode

    settings = MapSettings(
        scenes=scenes,
        bundle=bundle,
        output=output,
        asset=asset,
        window=window,
        confidence=confidence,
        workers=workers,
        threads_per_worker=threads_per_worker,
        torch_threads=torch_threads,
        scheduler=scheduler,
        device=resolve_device(device),
        precision=precision,
        retries=retries,
        bands=band_mode(resample_bands, bands_by_position),
    )
    with Progress(
        TextColumn("mapping"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tiles"),
        TilesPerSecond(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("tiles", total=None)
        outcome = map_scenes(
            settings,
            log=lambda line: err.print(line, highlight=False),
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    report_outcome(outcome)
    if outcome.failures:
        raise typer.Exit(1)


def report_outcome(outcome) -> None:
    """Each failed scene's sentence, then what was written."""
    for scene_id, sentence in outcome.failures.items():
        err.print(f"[bold red]failed:[/] {scene_id}: {sentence}", highlight=False, soft_wrap=True)
    mapped = len(outcome.scenes) - len(outcome.failures)
    out.print(
        f"mapped {mapped} of {len(outcome.scenes)} scenes ({outcome.tiles_run} tiles run) "
        f"in {outcome.wall_seconds:.1f} s into {outcome.folder}/: maps/, "
        f"report.html, report.csv, report.json"
        + (", stac/collection.json" if "stac" in outcome.files else "")
        + "".join(f", {p.name}" for p in outcome.files.get("mosaics", [])),
        highlight=False,
        soft_wrap=True,
    )
