"""Commands that map and score: classify, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hsikit.cli.app import (
    BandsByPositionOpt,
    ClassTableOpt,
    DeviceOpt,
    LayerOpt,
    OutputOpt,
    PrecisionOpt,
    ResampleBandsOpt,
    SceneArg,
    SmoothEpsOpt,
    SmoothGuideOpt,
    SmoothOpt,
    app,
    err,
    out,
    scene_arg,
)
from hsikit.cli.common import adapted, check_map_outputs, print_metrics, with_sidecars
from hsikit.errors import InputError
from hsikit.progress import progress_bar, say_warning


@app.command()
def classify(
    scene: SceneArg,
    output: OutputOpt,
    bundle: Annotated[
        Path | None, typer.Option("--model-bundle", "-m", help="Trained bundle (.safetensors).")
    ] = None,
    labels: Annotated[str | None, typer.Option(help="Train on these labels first.")] = None,
    class_field: Annotated[str | None, typer.Option(help="Class field of vector labels.")] = None,
    layer: LayerOpt = None,
    class_table: ClassTableOpt = None,
    model: Annotated[str, typer.Option(help="Model to train with --labels.")] = "cnn3d",
    confidence: Annotated[bool, typer.Option(help="Also write map_confidence.tif.")] = False,
    probabilities: Annotated[bool, typer.Option(help="Also write map_probabilities.tif.")] = False,
    png: Annotated[Path | None, typer.Option(help="Also write a PNG with a legend.")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Patches per forward pass (default: what fits the model's memory)."
        ),
    ] = None,
    window: Annotated[int, typer.Option(min=1, help="Window side in pixels.")] = 256,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads.")] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    seed: Annotated[int, typer.Option()] = 0,
    smooth: SmoothOpt = None,
    smooth_eps: SmoothEpsOpt = None,
    smooth_guide: SmoothGuideOpt = None,
    resample_bands: ResampleBandsOpt = False,
    bands_by_position: BandsByPositionOpt = False,
) -> None:
    """Map a scene with a bundle, or train on --labels and map in one go. --smooth overrides
    the bundle's own smoothing (--smooth 0 turns it off)."""

    from hsikit.bundle import load_bundle
    from hsikit.devices import resolve_device, use_threads
    from hsikit.predict.classify import classify_scene
    from hsikit.smoothing import chosen_smoothing

    if (bundle is None) == (labels is None):
        raise InputError(
            None, "give either a bundle (-m) or labels (--labels)", "see 'hsikit classify --help'"
        )
    opened = scene_arg(scene)
    inputs = [opened.path, *([labels] if labels else []), *([bundle] if bundle else [])]
    check_map_outputs(
        output, png, inputs=inputs, confidence=confidence, probabilities=probabilities
    )
    device = resolve_device(device)
    use_threads(threads)
    if labels is not None:
        from hsikit.training.fit import train_beside

        chosen_smoothing(smooth, smooth_eps, smooth_guide)  # refused before training
        options = {
            "scenes": [scene],
            "labels": [labels],
            "model": model,
            "class_field": class_field,
            "layer": layer,
            "class_table": None if class_table is None else str(class_table),
            "seed": seed,
            "threads": threads,
            "device": device,
            "smooth": smooth,
            "smooth_eps": smooth_eps,
            "smooth_guide": smooth_guide,
        }
        result = train_beside(
            output, {k: v for k, v in options.items() if v is not None}, inputs=inputs
        )
        print_metrics(result.report, warnings=False)
        out.print(f"bundle: {result.bundle_path}\nreport: {result.report_dir}/")
        bundle = result.bundle_path
    assert bundle is not None  # given, or the one just trained
    loaded = load_bundle(bundle).to(device, precision)
    if (smooth, smooth_eps, smooth_guide) != (None, None, None):
        loaded = loaded.with_smoothing(
            chosen_smoothing(smooth, smooth_eps, smooth_guide, loaded.meta.smoothing)
        )
    mapped = adapted(opened, loaded, resample_bands, bands_by_position)
    with progress_bar("classifying") as tell:
        summary = classify_scene(
            mapped,
            loaded,
            output,
            window=window,
            batch_size=batch_size,
            confidence=confidence,
            probabilities=probabilities,
            on_window=tell,
        )
    if png is not None:
        from hsikit.writers.quicklook import class_map_png

        class_map_png(output, png)
    out.print(
        f"wrote {with_sidecars(output)}: {summary['classified']} pixels classified, "
        f"{summary['nodata']} nodata"
    )
    if summary["partly_nodata"]:
        say_warning(
            f"{opened.path}: {summary['partly_nodata']} classified "
            f"pixels have bands at the nodata value (up to {summary['most_nodata_bands']} of "
            f"{summary['bands']}); those bands were taken as the training mean, so check "
            "these pixels (--confidence shows how sure the model was)"
        )


@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Trained bundle (.safetensors).")],
    scenes: Annotated[
        list[str] | None,
        typer.Argument(
            help="Scenes with --labels (independent reference data), their pixels pooled.",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option(help="Reference labels: one file per scene, in order, or one for all."),
    ] = None,
    class_field: Annotated[str | None, typer.Option(help="Class field of vector labels.")] = None,
    name_field: Annotated[
        str | None, typer.Option(help="Field with class names for numeric classes.")
    ] = None,
    layer: LayerOpt = None,
    class_table: ClassTableOpt = None,
    dataset: Annotated[
        str | None, typer.Option(help="Catalog dataset: its test split as recorded in the bundle.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Folder for metrics.json and confusion.png.")
    ] = None,
    device: DeviceOpt = "auto",
    resample_bands: ResampleBandsOpt = False,
    bands_by_position: BandsByPositionOpt = False,
) -> None:
    """Accuracy of a bundle: on its own test split, or on independent labelled data (several
    scenes: one confusion matrix over all their pixels, and each scene's figures)."""
    from hsikit.evaluation.evaluate import evaluate_bundle
    from hsikit.spectral_resampling import band_mode
    from hsikit.training.report import scores_text
    from hsikit.writers.atomic import check_output_folder

    reference_options = {
        "--labels": labels,
        "--class-field": class_field,
        "--layer": layer,
        "--class-table": class_table,
        "--name-field": name_field,
    }
    given = [flag for flag, value in reference_options.items() if value]
    if given and not scenes:
        raise InputError(
            None,
            f"{', '.join(given)} describe reference scenes, and no scene is given",
            "name the scenes: hsikit evaluate BUNDLE SCENE… --labels FILE",
        )
    if report is not None:
        check_output_folder(report, inputs=[bundle, *(scenes or []), *(labels or [])])
    with progress_bar("evaluating") as tell:
        result = evaluate_bundle(
            bundle,
            scenes=scenes or [],
            labels=labels or [],
            class_field=class_field,
            layer=layer,
            class_table=class_table,
            name_field=name_field,
            dataset=dataset,
            report_dir=report,
            device=device,
            bands=band_mode(resample_bands, bands_by_position),
            tell=tell,
        )
    for scene_name, how in result.get("bands", {}).items():
        err.print(f"{scene_name}: bands {how}", highlight=False, soft_wrap=True)
    print_metrics(result)
    for row in result.get("per_scene", []):
        out.print(f"  {row['scene']}: {scores_text(row, 'pixels')}", highlight=False)
    if report is not None:
        out.print(f"report: {report}/")
