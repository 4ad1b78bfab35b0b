"""The Typer app, its consoles and shared options, and the entry point: expected failures
(:class:`hsikit.errors.HsikitError`) print one sentence and exit 2; ``--debug`` shows the
traceback."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import rasterio.errors
import typer
from rich.console import Console

from hsikit.devices import DEVICE_HELP
from hsikit.errors import HsikitError
from hsikit.progress import say_warning

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Hyperspectral and geospatial rasters to GIS-ready maps.",
)
data_app = typer.Typer(no_args_is_help=True, help="The data catalog: list, fetch, import.")
app.add_typer(data_app, name="data")
out = Console()
err = Console(stderr=True)
_state = {"debug": False}

SceneArg = Annotated[str, typer.Argument(help="Scene file or folder, or a catalog dataset name.")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output path.")]
MemberOpt = Annotated[int | None, typer.Option(help="Ensemble member index (ERA5); default 0.")]
TimeOpt = Annotated[str | None, typer.Option(help="Time index or ISO time (ERA5); default first.")]
SmoothOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Edge-preserving smoothing of the class probabilities (guided filter) with "
        "this radius in pixels; 0 = off.",
    ),
]
DeviceOpt = Annotated[str, typer.Option(help=f"Torch device: {DEVICE_HELP}.")]
ClassTableOpt = Annotated[
    Path | None,
    typer.Option(help="CSV (value,name,colour) or JSON naming the classes of raster labels."),
]
LayerOpt = Annotated[
    str | None,
    typer.Option(help="The labels layer of a vector file that holds several (a GeoPackage)."),
]
ResampleBandsOpt = Annotated[
    bool,
    typer.Option(
        help="Resample the scene's bands to the model's (Gaussian responses from the FWHM, "
        "else linear interpolation) when they differ; recorded in the map's provenance."
    ),
]
BandsByPositionOpt = Annotated[
    bool,
    typer.Option(
        help="Take the bands of a scene without wavelengths (a gdalbuildvrt mosaic) as the "
        "model's, in order, when their counts agree; recorded in the map's provenance."
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        help="A network's forward pass in fp32, or under autocast in fp16 or bf16 (for GPUs; "
        "probabilities differ slightly from fp32's, see docs/classification.md)."
    ),
]
SmoothEpsOpt = Annotated[
    float | None,
    typer.Option(
        help="The smoothing's ε (> 0): guide steps above about √ε count as field edges (default "
        "0.01)."
    ),
]
SmoothGuideOpt = Annotated[
    int | None,
    typer.Option(
        help="Principal components in the smoothing's guide image: 3 (default) a colour guide, "
        "1 the first component alone."
    ),
]


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (and the libraries' own log messages).")
    ] = False,
) -> None:
    _state["debug"] = debug
    if debug:
        logging.basicConfig(level=logging.WARNING)


def scene_arg(argument: str, member: int | None = None, time: str | None = None):
    """The scene a SCENE argument names; what its reader had to skip is printed as warnings."""
    from hsikit.data.datasets import resolve_scene

    options: dict[str, Any] = {}
    if member is not None:
        options["member"] = member
    if time is not None:
        options["time"] = int(time) if time.lstrip("-").isdigit() else time
    opened = resolve_scene(argument, **options)
    for warning in opened.warnings:
        say_warning(f"{opened.path}: {warning}")
    return opened


def main() -> None:
    """Console entry point: one sentence and exit 2 for expected errors."""
    from hsikit.inputs import forget_inputs

    forget_inputs()
    # libraries log what they skip (cfgrib) or warn about (GDAL); readers route what matters
    # into their sentence or the scene's warnings, so nothing else reaches the terminal
    logging.getLogger().addHandler(logging.NullHandler())
    warnings.filterwarnings("ignore", module="pyproj")
    # pixel-grid scenes (benchmark .mat files) are expected; 'hsikit info' says "no CRS"
    warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)
    try:
        code = app(standalone_mode=False, prog_name="hsikit")
        if isinstance(code, int) and code:  # typer.Exit(N) comes back as N, not raised
            sys.exit(code)
    except HsikitError as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {exc.sentence()}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument
        exc.show()  # type: ignore[attr-defined]  # typer's vendored click exceptions have it
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
