"""Gridded fields: train-downscaler, and the gridded branch of superres (CF NetCDF / Zarr /
GeoTIFF out of ERA5-style files)."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

from hsikit.cli.app import app, out


def writes_fields(output: Path, restorer: Any) -> bool:
    """Whether ``superres`` takes the gridded path: a gridded-field bundle, or a NetCDF
    output (which only gridded fields can fill; a spectral bundle is then refused)."""
    from hsikit.gridded.downscale import gridded_bundle

    if restorer.meta.fields is not None:
        return True
    if output.suffix.lower() == ".nc":
        gridded_bundle(restorer, restorer.path)
    return False


def write_downscaled(
    source: str, output: Path, restorer: Any, member: int | None, time: str | None
) -> None:
    """Downscale every time and member of ``source`` into ``output`` (a GeoTIFF: the chosen
    ``time`` and ``member``, default the first)."""
    from datetime import datetime

    from hsikit.gridded.downscale import check_layers, downscale, gridded_bundle
    from hsikit.gridded.fields import check_values, open_fields, sample_index
    from hsikit.writers.atomic import check_output
    from hsikit.writers.gridded import GRIDDED_SUFFIXES, write_gridded
    from hsikit.writers.provenance import sha256_of

    check_output(
        output, suffixes=GRIDDED_SUFFIXES, what="a gridded output", inputs=[source, restorer.path]
    )
    gridded_bundle(restorer, restorer.path)
    stats = restorer.meta.fields
    fields = open_fields(source, stats.layers)
    check_layers(restorer, fields)
    scale = restorer.meta.scale

    def sample(t: int, m: int) -> Any:
        values = fields.read(t, m)
        check_values(fields, values, f"time {t}, member {m}")
        return downscale(restorer, values[None], fields.periodic)[0]

    bundle = restorer.path
    method = f"{restorer.meta.model.name} ×{scale} ({bundle}, sha256 {sha256_of(bundle)})"
    when = datetime.now(UTC).isoformat(timespec="seconds")
    facts = {"method": method, "scale": scale, "history": f"{when} hsikit superres: {method}"}
    chosen = sample_index(fields, time, member)
    written = write_gridded(output, fields, scale, sample, facts, chosen)
    samples = len(fields.samples()) if output.suffix.lower() in (".nc", ".zarr") else 1
    step = abs(float(fields.lon[1] - fields.lon[0])) / scale if len(fields.lon) > 1 else 0.0
    out.print(
        f"wrote {written}: {len(fields.layers)} layers × {samples} fields, "
        f"{len(fields.lat) * scale} × {len(fields.lon) * scale} cells of {step:g}°"
        + (", longitude wrapping around" if fields.periodic else "")
    )


def _train_downscaler(**values: Any) -> None:
    """Train a super-resolution head for gridded fields (ERA5 GRIB / NetCDF / Zarr) on pairs
    made by coarsening the file's own fields; held-out times (and members) validate and
    test; the report compares it with nearest, bilinear, bicubic and a bicubic regression."""
    from hsikit.cli.config_options import given, validated
    from hsikit.gridded.training import DownscaleConfig, train_downscaler

    options = given(values, DownscaleConfig) | {"files": values["files"]}
    config = validated(DownscaleConfig, options, "train-downscaler")
    output = values["output"]
    report_dir = values["report"] or output.with_name(output.stem + "_report")
    report = train_downscaler(config, output, report_dir)
    methods = report["test"]["methods"]
    for name, gain in report["test"]["rmse_reduction_vs_bicubic"].items():
        model = methods[report["model"]][name]["rmse"]
        bicubic = methods["bicubic"][name]["rmse"]
        out.print(
            f"[bold]{name}[/bold] test RMSE {model:.4g} (bicubic {bicubic:.4g}): "
            f"{gain:+.1%} against bicubic"
        )
    out.print(f"bundle: {output}\nreport: {report_dir}/")


def _register_train_downscaler() -> None:
    from hsikit.cli.config_options import (
        command_with_options,
        inputs_argument,
        output_option,
        report_option,
    )
    from hsikit.gridded.training import DownscaleConfig

    leading = [
        inputs_argument("files", "Gridded files (GRIB, NetCDF, Zarr) of one product.", True),
        output_option("downscaler.safetensors"),
        report_option(),
    ]
    app.command("train-downscaler")(
        command_with_options(_train_downscaler, leading, DownscaleConfig, frozenset({"files"}))
    )


_register_train_downscaler()
