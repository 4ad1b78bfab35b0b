"""Helpers every command group shares: checking a map's outputs up front, naming the files
that travel with a map, printing metrics, a validated config from options."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hsikit.cli.app import err, out
from hsikit.errors import InputError, validation_sentence
from hsikit.progress import say_warning


def check_map_outputs(
    output: Path,
    png: Path | None,
    *,
    inputs: Sequence[object] = (),
    confidence: bool = False,
    probabilities: bool = False,
) -> None:
    """Every file a map command will write, refused before any work if one is unsafe."""
    from hsikit.writers.classmap import check_class_map_output
    from hsikit.writers.quicklook import check_png_output

    check_class_map_output(
        output,
        confidence=confidence,
        probabilities=probabilities,
        inputs=tuple(str(i) for i in inputs),
    )
    if png is not None:
        check_png_output(png, inputs=[str(i) for i in inputs])


def with_sidecars(output: Path) -> str:
    """The map and the files that travel with it, as the user should keep them together."""
    from hsikit.writers.classmap import sidecar_paths

    paths = sidecar_paths(output)
    return (
        f"{output} (keep with it: {paths['aux'].name} for class names and the attribute "
        f"table, {paths['qml'].name} for the QGIS style)"
    )


def config_from_options(
    config_class: type,
    command: str,
    scenes: list[str] | None,
    labels: list[str] | None,
    dataset: str | None,
    **fields: Any,
) -> Any:
    """A validated config from CLI options; the first problem becomes one sentence."""
    from pydantic import ValidationError

    given = {k: v for k, v in fields.items() if v is not None}
    try:
        return config_class(scenes=scenes or [], labels=labels or [], dataset=dataset, **given)
    except ValidationError as exc:
        raise InputError(
            None,
            f"invalid {command}ing options: {validation_sentence(exc)}",
            f"see 'hsikit {command} --help'",
        ) from exc


def print_metrics(report: dict, warnings: bool = True) -> None:
    """The scores line; the report's warnings first unless they were said already
    (``warnings=False``: training says them before it fits)."""
    from hsikit.training.report import scores_text, seed_text

    for warning in report.get("warnings", []) if warnings else []:
        say_warning(warning)
    where = (
        f"on {report['reference']}"
        if "reference" in report
        else f"{report['protocol']} split, {seed_text(report)}"
    )
    out.print(f"[bold]{report['model']}[/bold] ({where}): {scores_text(report)}")
    if "unsmoothed" in report and report["n_test"]:
        raw = report["unsmoothed"]
        out.print(
            f"  with smoothing (radius {report['smoothing']['radius']}); without: OA "
            f"{raw['oa']:.2%}  AA {raw['aa']:.2%}  kappa {raw['kappa']:.4f}"
        )


def adapted(scene: Any, bundle: Any, resample: bool, by_position: bool) -> Any:
    """``scene`` with the bundle's bands (``--resample-bands`` / ``--bands-by-position``), and
    what was done to them printed."""
    from hsikit.spectral_resampling import adaptation, band_mode, for_bundle

    result = for_bundle(scene, bundle, band_mode(resample, by_position))
    if (how := adaptation(result)) is not None:
        err.print(f"{result.path}: bands {how}", highlight=False, soft_wrap=True)
    return result
