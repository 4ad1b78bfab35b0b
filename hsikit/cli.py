"""The ``hsikit`` command: parse arguments, call the library, print with rich. No logic lives here.

Expected failures (:class:`hsikit.errors.HsikitError`) print one sentence and exit 2; ``--debug``
shows the traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import rasterio.errors
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Column, Table

from hsikit.devices import DEVICE_HELP
from hsikit.errors import HsikitError, InputError, validation_sentence

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Hyperspectral and geospatial rasters to GIS-ready maps.")
data_app = typer.Typer(no_args_is_help=True, help="The data catalog: list, fetch, import.")
app.add_typer(data_app, name="data")
out = Console()
err = Console(stderr=True)
_state = {"debug": False}

SceneArg = Annotated[str, typer.Argument(help="Scene file or folder, or a catalog dataset name.")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output path.")]
MemberOpt = Annotated[int | None, typer.Option(help="Ensemble member index (ERA5); default 0.")]
TimeOpt = Annotated[str | None, typer.Option(help="Time index or ISO time (ERA5); default first.")]
SmoothOpt = Annotated[int | None, typer.Option(
    min=0, help="Edge-preserving smoothing of the class probabilities (guided filter) with "
                "this radius in pixels; 0 = off.")]
DeviceOpt = Annotated[str, typer.Option(help=f"Torch device: {DEVICE_HELP}.")]
SmoothEpsOpt = Annotated[float | None, typer.Option(
    help="The smoothing's ε (> 0): guide steps above about √ε count as field edges (default "
         "0.01).")]
SmoothGuideOpt = Annotated[int | None, typer.Option(
    help="Principal components in the smoothing's guide image: 3 (default) a colour guide, "
         "1 the first component alone.")]


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (and the "
                                                           "libraries' own log messages).")
                           ] = False) -> None:
    _state["debug"] = debug
    if debug:
        logging.basicConfig(level=logging.WARNING)


def _scene(argument: str, member: int | None = None, time: str | None = None):
    """The scene a SCENE argument names; what its reader had to skip is printed as warnings."""
    from hsikit.datasets import resolve_scene

    options: dict[str, Any] = {}
    if member is not None:
        options["member"] = member
    if time is not None:
        options["time"] = int(time) if time.lstrip("-").isdigit() else time
    opened = resolve_scene(argument, **options)
    for warning in opened.warnings:
        err.print(f"[bold yellow]warning:[/] {opened.path}: {warning}", highlight=False,
                  soft_wrap=True)
    return opened


@app.command()
def info(scene: SceneArg, as_json: Annotated[bool, typer.Option("--json")] = False,
         member: MemberOpt = None, time: TimeOpt = None) -> None:
    """Describe a scene (format, grid, bands, wavelengths, nodata) or a model file (.safetensors:
    model, input, classes, training data, test scores)."""
    from hsikit.info import summarize
    from hsikit.model_info import is_model_file, summarize_model_file

    if is_model_file(scene):
        summary = summarize_model_file(scene)
        rows = _model_file_rows(summary)
    else:
        summary = summarize(_scene(scene, member, time))
        rows = _scene_rows(summary)
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table(show_header=False, title=summary["path"], title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    for key, value in rows:
        table.add_row(key, str(value))
    out.print(table)


def _wavelengths_text(summary: dict) -> str:
    wl = summary["wavelength_range_nm"]
    return "unknown" if wl is None else f"{wl[0]:.1f}–{wl[1]:.1f} nm"


def _scene_rows(summary: dict) -> list[tuple[str, Any]]:
    names = summary["band_names"]
    rows = [
        ("format", summary["format"]),
        ("size", f"{summary['bands']} bands × {summary['rows']} rows × {summary['cols']} cols"),
        ("dtype", summary["dtype"]),
        ("CRS", summary["crs"] or "none (pixel grid)"),
        ("resolution", "{:g} × {:g}".format(*summary["resolution"])
         + (" (rotated)" if summary["rotated"] else "")),
        ("bounds", "{left:g}, {bottom:g}, {right:g}, {top:g}".format(**summary["bounds"])),
        ("nodata", f"{summary['nodata']} — {summary['nodata_fraction']:.2%} of pixels"
         + ("" if summary["nodata_fraction_exact"] else " (estimated from a sample)")),
        ("wavelengths", _wavelengths_text(summary) + (
            "" if summary["wavelength_range_nm"] is None
            else f" (from {summary['spectral_metadata_source']})")),
        ("bad bands", ", ".join(map(str, summary["bad_bands"])) or "none"),
        ("scale / offset", f"{_few(summary['scale'])} / {_few(summary['offset'])}"),
        ("band names", ", ".join(names[:6]) + (f", … ({len(names)})" if len(names) > 6 else "")),
    ]
    if summary["ground_truth"]:
        gt = summary["ground_truth"]
        rows.append(("ground truth", f"{gt['classes']} classes, {gt['labelled_pixels']} "
                     "labelled pixels"))
    return rows + [("note", note) for note in summary["notes"]]


def _model_file_rows(summary: dict) -> list[tuple[str, Any]]:
    bands = f"{summary['bands']} bands, {_wavelengths_text(summary)}"
    trained_on = ", ".join(summary["trained_on"]) or "unrecorded"
    if summary["split"] not in (None, "none"):
        seed = summary.get("seed")
        trained_on += f" ({summary['split']} split{'' if seed is None else f', seed {seed}'})"
    if summary["kind"] == "pretrained encoder":
        before, after = summary["heldout_loss"]
        return [
            ("kind", f"pretrained encoder ({summary['objective']}; hsikit "
                     f"{summary['hsikit_version']}) — fine-tune it with 'hsikit train --init'"),
            ("model", f"{summary['model']}, {summary['stored_values']:,} stored values"),
            ("input", f"{bands}; {summary['patch_size']} × {summary['patch_size']} patches"),
            ("pretrained on", f"{trained_on}: {summary['train_patches']:,} patches"),
            ("held-out loss", f"{before:.4f} → {after:.4f} on {summary['heldout_patches']:,} "
                              "patches (reconstruction)"),
        ]
    classes = summary["classes"]
    preprocessing = f"PCA {summary['pca']}" if summary["pca"] else "no PCA"
    agnostic = "; runs on any subset with wavelengths" if summary["band_agnostic"] else ""
    rows = [
        ("kind", f"classifier bundle (hsikit {summary['hsikit_version']})"),
        ("model", f"{summary['model']} ({summary['family']}), {summary['parameters']:,} "
                  "parameters" + (f" in an ensemble of {summary['members']} networks (class "
                                  "probabilities averaged)" if summary["members"] > 1 else "")),
        ("input", f"{bands}{agnostic}; {preprocessing}; {summary['patch_size']} × "
                  f"{summary['patch_size']} patches"),
        ("classes", f"{len(classes)}: " + ", ".join(classes[:8])
         + (", …" if len(classes) > 8 else "")),
        ("trained on", trained_on),
    ]
    if summary["fine_tuned_from"]:
        rows.append(("fine-tuned from", summary["fine_tuned_from"]
                     + (" (LoRA, merged)" if summary["lora"] else "")))
    if summary["smoothing"]:
        smoothing = summary["smoothing"]
        guide = (f"first {min(smoothing['guide'], summary['pca'])} principal component(s)"
                 if summary["pca"] else "mean band")
        rows.append(("smoothing", f"guided filter, radius {smoothing['radius']}, ε "
                                  f"{smoothing['eps']:g}, guided by the {guide} (every map; "
                                  "'hsikit classify --smooth 0' turns it off)"))
    scores = summary["test_metrics"]
    text = (f"OA {scores['oa']:.2%}, AA {scores['aa']:.2%}, kappa {scores['kappa']:.4f} on "
            f"{scores['n_test']:,} test pixels" if scores.get("n_test") else
            "none (no test pixels)")
    if "unsmoothed" in scores:
        text += f" (unsmoothed: OA {scores['unsmoothed']['oa']:.2%})"
    return rows + [("test scores", text)]


def _few(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values[:3]) + (" …" if len(values) > 3 else "")


@app.command()
def quicklook(
    scene: SceneArg,
    output: OutputOpt,
    bands: Annotated[str | None, typer.Option(help="Three 1-based bands, e.g. 30,20,10 (or "
                                                   "one, for grey).")] = None,
    max_size: Annotated[int, typer.Option(min=1, help="Longest side in pixels.")] = 1024,
    member: MemberOpt = None,
    time: TimeOpt = None,
) -> None:
    """PNG quicklook: true colour for cubes, a legend for class maps."""
    from hsikit.writers.classmap import read_class_table
    from hsikit.writers.quicklook import (check_png_output, class_map_quicklook, decimation,
                                          parse_bands, scene_quicklook)

    chosen = None if bands is None else parse_bands(bands)
    opened = _scene(scene, member, time)
    check_png_output(output)
    table = read_class_table(opened.path) if opened.format == "GeoTIFF" else None
    if table is not None:
        step = decimation(opened.height, opened.width, max_size)
        class_map_quicklook(opened.read_raw(bands=[0], step=step)[0], table, output,
                            title=Path(opened.path).name, source=opened.path)
    else:
        scene_quicklook(opened, output, chosen, max_size)
    out.print(f"wrote {output}")


@app.command()
def convert(scene: SceneArg, output: OutputOpt, member: MemberOpt = None,
            time: TimeOpt = None) -> None:
    """Copy a cube to GeoTIFF (.tif), ENVI (.hdr) or Zarr (.zarr) with its band metadata."""
    from hsikit.writers.cube import check_cube_output, write_cube

    opened = _scene(scene, member, time)
    check_cube_output(output)
    written = write_cube(opened, output)
    out.print(f"wrote {written}")


@app.command()
def rasterize(
    scene: SceneArg,
    labels: Annotated[Path, typer.Argument(help="Vector (GeoPackage, GeoJSON, Shapefile) or "
                                                "raster labels.")],
    output: OutputOpt,
    class_field: Annotated[str | None, typer.Option(help="Field holding the class.")] = None,
    name_field: Annotated[str | None, typer.Option(help="Field with class names for numeric "
                                                        "classes.")] = None,
    png: Annotated[Path | None, typer.Option(help="Also write a PNG with a legend.")] = None,
) -> None:
    """Put labels on the scene grid and write them as a class-map COG."""
    from hsikit.labels import load_labels
    from hsikit.writers.classmap import write_class_map
    from hsikit.writers.provenance import provenance
    from hsikit.writers.quicklook import class_map_quicklook

    opened = _scene(scene)
    _check_map_outputs(output, png, inputs=[labels])
    placed = load_labels(labels, opened, class_field, name_field)
    write_class_map(output, placed.values, opened.grid, placed.classes,
                    tags=provenance(source=opened.path, labels=labels))
    if png is not None:
        class_map_quicklook(placed.values, placed.classes, png, title=labels.name,
                            source=str(labels))
    counts = placed.counts()
    out.print(f"wrote {_with_sidecars(output)}: {len(placed.classes)} classes, "
              f"{sum(counts.values())} labelled pixels")


def _check_map_outputs(output: Path, png: Path | None, *, inputs: list = (),
                       confidence: bool = False, probabilities: bool = False) -> None:
    """Every file a map command will write, refused before any work if one is unsafe."""
    from hsikit.writers.classmap import check_class_map_output
    from hsikit.writers.quicklook import check_png_output

    check_class_map_output(output, confidence=confidence, probabilities=probabilities,
                           inputs=tuple(str(i) for i in inputs))
    if png is not None:
        check_png_output(png, inputs=[str(i) for i in inputs])


def _with_sidecars(output: Path) -> str:
    """The map and the files that travel with it, as the user should keep them together."""
    from hsikit.writers.classmap import sidecar_paths

    paths = sidecar_paths(output)
    return (f"{output} (keep with it: {paths['aux'].name} for class names and the attribute "
            f"table, {paths['qml'].name} for the QGIS style)")


def _options(config_class: type, command: str, scenes: list[str] | None,
             labels: list[str] | None, dataset: str | None, **fields: Any) -> Any:
    """A validated config from CLI options; the first problem becomes one sentence."""
    from pydantic import ValidationError

    given = {k: v for k, v in fields.items() if v is not None}
    try:
        return config_class(scenes=scenes or [], labels=labels or [], dataset=dataset, **given)
    except ValidationError as exc:
        raise InputError(None, f"invalid {command}ing options: {validation_sentence(exc)}",
                         f"see 'hsikit {command} --help'") from exc


def _train_config(scenes: list[str] | None, labels: list[str] | None, dataset: str | None,
                  **fields: Any) -> Any:
    from hsikit.training.run import TrainConfig

    return _options(TrainConfig, "train", scenes, labels, dataset, **fields)


def _print_metrics(report: dict) -> None:
    from hsikit.training.report import seed_text

    out.print(f"[bold]{report['model']}[/bold] ({report['protocol']} split, "
              f"{seed_text(report)}): OA {report['oa']:.2%}  AA {report['aa']:.2%}  "
              f"kappa {report['kappa']:.4f}  on {report['n_test']} test pixels")
    if "unsmoothed" in report:
        raw = report["unsmoothed"]
        out.print(f"  with smoothing (radius {report['smoothing']['radius']}); without: OA "
                  f"{raw['oa']:.2%}  AA {raw['aa']:.2%}  kappa {raw['kappa']:.4f}")


@app.command()
def train(
    scenes: Annotated[list[str] | None, typer.Argument(help="Scene files (one per labels).")
                      ] = None,
    labels: Annotated[list[str] | None, typer.Option("--labels", help="Labels per scene "
                                                     "(raster or vector; repeat).")] = None,
    dataset: Annotated[str | None, typer.Option(help="A catalog dataset instead of scenes.")
                       ] = None,
    model: Annotated[str | None, typer.Option(
        help="Model name (hsikit models); default: the --init file's model, else cnn3d.")
    ] = None,
    output: OutputOpt = Path("model.safetensors"),
    report: Annotated[Path | None, typer.Option(help="Report folder (default: beside the "
                                                     "bundle).")] = None,
    class_field: Annotated[str | None, typer.Option(help="Class field of vector labels.")] = None,
    name_field: Annotated[str | None, typer.Option(help="Class-name field.")] = None,
    split: Annotated[str, typer.Option(help="random, spatial or tiles.")] = "spatial",
    train_ratio: Annotated[float | None, typer.Option(help="random: share per class.")] = None,
    per_class: Annotated[int | None, typer.Option(help="random: pixels per class.")] = None,
    block_size: Annotated[int | None, typer.Option(help="spatial: block side (px).")] = None,
    buffer_patch: Annotated[int | None, typer.Option(help="spatial: buffer as for this patch "
                                                          "size (compare models on one split).")
                            ] = None,
    patch_size: Annotated[int | None, typer.Option(help="Patch side (odd).")] = None,
    pca: Annotated[int | None, typer.Option(help="PCA components (0 = none).")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay (default "
                                                            "0.01).")] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    balanced: Annotated[bool, typer.Option(help="Class-balanced sampling.")] = False,
    val_fraction: Annotated[float | None, typer.Option(help="Share of the training pixels "
                                                            "kept for validation.")] = None,
    label_smoothing: Annotated[float | None, typer.Option()] = None,
    keep: Annotated[str | None, typer.Option(help="Weights kept: 'best' on validation "
                                                  "(early stopping) or 'last' (the whole "
                                                  "schedule).")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Training-time budget: stop after "
                                                           "this many minutes.")] = None,
    context_dropout: Annotated[float | None, typer.Option(
        help="Share of training patches whose neighbour pixels are partly overwritten by the "
             "centre pixel (spatial generalisation).")] = None,
    brightness: Annotated[float | None, typer.Option(
        help="Scale each training patch by a random factor in 1 ± this (a brighter or darker "
             "surface of the same class; e.g. 0.2); 0 = off.")] = None,
    mixup: Annotated[float | None, typer.Option(
        help="Mix training patches in pairs, labels alike, in shares drawn from Beta(this, "
             "this) (mixed pixels; e.g. 0.4); 0 = off.")] = None,
    refit: Annotated[bool | None, typer.Option(
        "--refit/--no-refit", help="Train the final model on training + validation pixels "
        "once the choices are made on validation (default: classical models yes, neural no).")
    ] = None,
    ema: Annotated[float | None, typer.Option(
        help="Decay of an exponential moving average of the weights (e.g. 0.99), which "
             "validation judges and the bundle keeps; 0 = off.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split, PCA and (unless --init-seed) "
                                           "the model.")] = 0,
    init_seed: Annotated[int | None, typer.Option(
        help="Seed of the model's own randomness (initial weights, batch order, dropout): "
             "vary it on a fixed split to see what initialisation alone changes.")] = None,
    members: Annotated[int | None, typer.Option(
        help="A deep ensemble: train this many networks from different initial weights and "
             "average their class probabilities (a --max-minutes budget is shared).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    device: DeviceOpt = "auto",
    init: Annotated[Path | None, typer.Option(help="Start from this bundle or pretrained "
                                                   "encoder (hsikit pretrain).")] = None,
    lora: Annotated[bool, typer.Option(help="LoRA fine-tuning: train only low-rank adapters "
                                            "and the head (needs --init).")] = False,
    lora_rank: Annotated[int | None, typer.Option(help="LoRA rank.")] = None,
    lora_cycles: Annotated[int | None, typer.Option(help="Cyclical LoRA-strength schedule "
                                                         "with this many cosine restarts.")
                           ] = None,
    smooth: SmoothOpt = None,
    smooth_eps: SmoothEpsOpt = None,
    smooth_guide: SmoothGuideOpt = None,
) -> None:
    """Train a classifier on labelled scenes and write a bundle and a report. With --smooth
    the bundle smooths every map it makes, and the test metrics are those of the smoothed map."""
    from hsikit.smoothing import chosen_smoothing
    from hsikit.training.finetune import initial_model_name
    from hsikit.training.run import train as run_training

    if model is None and init is not None:
        model = initial_model_name(init)
    chosen_smoothing(smooth, smooth_eps, smooth_guide)  # refuses them without --smooth
    config = _train_config(scenes, labels, dataset, model=model, class_field=class_field,
                           name_field=name_field, split=split, train_ratio=train_ratio,
                           per_class=per_class, block_size=block_size,
                           buffer_patch=buffer_patch, patch_size=patch_size,
                           pca=pca, epochs=epochs, lr=lr, weight_decay=weight_decay,
                           batch_size=batch_size,
                           balanced=balanced, val_fraction=val_fraction,
                           label_smoothing=label_smoothing, keep=keep,
                           max_minutes=max_minutes, context_dropout=context_dropout,
                           brightness=brightness, mixup=mixup,
                           refit=refit, ema=ema, seed=seed, init_seed=init_seed,
                           members=members, threads=threads, device=device,
                           init=str(init) if init else None, lora=lora,
                           lora_rank=lora_rank, lora_cycles=lora_cycles, smooth=smooth,
                           smooth_eps=smooth_eps, smooth_guide=smooth_guide)
    report_dir = report or output.with_name(output.stem + "_report")
    result = run_training(config, output, report_dir)
    _print_metrics(result.report)
    out.print(f"bundle: {output}\nreport: {report_dir}/")


@app.command()
def pretrain(
    scenes: Annotated[list[str] | None, typer.Argument(help="Scene files or catalog names.")
                      ] = None,
    model: Annotated[str, typer.Option(help="less_vit_* (Hyper-MAE) or spectralgpt_* "
                                            "(3-D MAE).")] = "less_vit_tiny",
    output: OutputOpt = Path("pretrained.safetensors"),
    dataset: Annotated[str | None, typer.Option(help="A catalog dataset instead of scenes.")
                       ] = None,
    labels: Annotated[list[str] | None, typer.Option("--labels", help="Labels per scene, to "
                                                     "pretrain inside a split's training "
                                                     "region only.")] = None,
    split: Annotated[str, typer.Option(help="none, random or spatial: with a split only its "
                                            "training pixels are used.")] = "none",
    samples: Annotated[int | None, typer.Option(help="Patches to pretrain on.")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Self-supervised pretraining of a seed encoder on unlabelled pixels."""
    from hsikit.training.pretrain import PretrainConfig
    from hsikit.training.pretrain import pretrain as run_pretraining

    config = _options(PretrainConfig, "pretrain", scenes, labels, dataset, model=model,
                      split=split, seed=seed, samples=samples, epochs=epochs, threads=threads,
                      device=device)
    result = run_pretraining(config, output)
    out.print(f"held-out reconstruction loss {result['heldout_loss_before']:.4f} → "
              f"{result['heldout_loss_after']:.4f} ({result['train_patches']} patches, "
              f"{result['seconds']:.0f} s)\npretrained encoder: {output}")


@app.command()
def classify(
    scene: SceneArg,
    output: OutputOpt,
    bundle: Annotated[Path | None, typer.Option("--model-bundle", "-m", help="Trained bundle "
                                                "(.safetensors).")] = None,
    labels: Annotated[str | None, typer.Option(help="Train on these labels first.")] = None,
    class_field: Annotated[str | None, typer.Option(help="Class field of vector labels.")] = None,
    model: Annotated[str, typer.Option(help="Model to train with --labels.")] = "cnn3d",
    confidence: Annotated[bool, typer.Option(help="Also write map_confidence.tif.")] = False,
    probabilities: Annotated[bool, typer.Option(help="Also write map_probabilities.tif.")
                             ] = False,
    png: Annotated[Path | None, typer.Option(help="Also write a PNG with a legend.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Patches per forward pass.")] = 1024,
    window: Annotated[int, typer.Option(min=1, help="Window side in pixels.")] = 256,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads.")] = None,
    device: DeviceOpt = "auto",
    seed: Annotated[int, typer.Option()] = 0,
    smooth: SmoothOpt = None,
    smooth_eps: SmoothEpsOpt = None,
    smooth_guide: SmoothGuideOpt = None,
) -> None:
    """Map a scene with a bundle, or train on --labels and map in one go. --smooth overrides
    the bundle's own smoothing (--smooth 0 turns it off)."""
    from rich.progress import Progress

    from hsikit.bundle import BUNDLE_SUFFIXES, load_bundle
    from hsikit.devices import resolve_device
    from hsikit.inference import classify_scene
    from hsikit.smoothing import chosen_smoothing
    from hsikit.writers.atomic import check_output, check_output_folder

    if (bundle is None) == (labels is None):
        raise InputError(None, "give either a bundle (-m) or labels (--labels)",
                         "see 'hsikit classify --help'")
    opened = _scene(scene)
    inputs = [opened.path, *([labels] if labels else []), *([bundle] if bundle else [])]
    _check_map_outputs(output, png, inputs=inputs, confidence=confidence,
                       probabilities=probabilities)
    device = resolve_device(device)
    if labels is not None:
        chosen_smoothing(smooth, smooth_eps, smooth_guide)  # refused before training
        bundle = check_output(output.with_suffix(".safetensors"), suffixes=BUNDLE_SUFFIXES,
                              what="a bundle", inputs=inputs)
        report_dir = check_output_folder(output.with_name(output.stem + "_report"),
                                         inputs=inputs)
    if threads:
        import torch

        torch.set_num_threads(threads)
    if labels is not None:
        from hsikit.training.run import train as run_training

        config = _train_config([scene], [labels], None, model=model, class_field=class_field,
                               seed=seed, threads=threads, device=device, smooth=smooth,
                               smooth_eps=smooth_eps, smooth_guide=smooth_guide)
        result = run_training(config, bundle, report_dir)
        _print_metrics(result.report)
    loaded = load_bundle(bundle).to(device)
    if (smooth, smooth_eps, smooth_guide) != (None, None, None):
        loaded = loaded.with_smoothing(chosen_smoothing(smooth, smooth_eps, smooth_guide,
                                                        loaded.meta.smoothing))
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("classifying", total=None)
        summary = classify_scene(
            opened, loaded, output, window=window, batch_size=batch_size, confidence=confidence,
            probabilities=probabilities,
            on_window=lambda done, total: progress.update(task, completed=done, total=total))
    if png is not None:
        _map_png(output, png)
    out.print(f"wrote {_with_sidecars(output)}: {summary['classified']} pixels classified, "
              f"{summary['nodata']} nodata")


def _map_png(class_map: Path, png: Path) -> None:
    """The legend PNG of a class map just written, from a decimated read of it."""
    from hsikit.readers import open_scene
    from hsikit.writers.classmap import read_class_table
    from hsikit.writers.quicklook import class_map_quicklook, decimation

    written = open_scene(class_map)
    step = decimation(written.height, written.width, 1024)
    class_map_quicklook(written.read_raw(bands=[0], step=step)[0], read_class_table(class_map),
                        png, title=class_map.name, source=str(class_map))


@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Trained bundle (.safetensors).")],
    scene: Annotated[str | None, typer.Argument(help="Scene with --labels (independent "
                                                     "reference data).")] = None,
    labels: Annotated[str | None, typer.Option(help="Reference labels for SCENE.")] = None,
    class_field: Annotated[str | None, typer.Option()] = None,
    dataset: Annotated[str | None, typer.Option(help="Catalog dataset: its test split as "
                                                     "recorded in the bundle.")] = None,
    report: Annotated[Path | None, typer.Option(help="Folder for metrics.json and "
                                                     "confusion.png.")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Accuracy of a bundle: on its own test split, or on independent labelled data."""
    from hsikit.evaluation import evaluate_bundle
    from hsikit.writers.atomic import check_output_folder

    if report is not None:
        check_output_folder(report, inputs=[bundle, *filter(None, [scene, labels])])
    result = evaluate_bundle(bundle, scene=scene, labels=labels, class_field=class_field,
                             dataset=dataset, report_dir=report, device=device)
    _print_metrics(result)
    if report is not None:
        out.print(f"report: {report}/")


@app.command()
def run(pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML (pipelines/*.yaml).")],
        models: Annotated[str | None, typer.Option(
            help="Comma-separated rows to rerun; the others' runs are kept from the existing "
                 "results file when their configuration is unchanged.")] = None,
        seeds: Annotated[str | None, typer.Option(
            help="Comma-separated seeds to run (others kept as with --models).")] = None,
        protocols: Annotated[str | None, typer.Option(
            help="Comma-separated protocols to run (others kept as with --models).")] = None
        ) -> None:
    """Run a declarative job, e.g. the Indian Pines benchmark."""
    from hsikit.pipelines import load_pipeline, run_benchmark

    spec = load_pipeline(pipeline)
    only = None
    if models is not None:
        only = [m.strip() for m in models.split(",") if m.strip()]
        unknown = sorted(set(only) - set(spec.names))
        if unknown:
            raise InputError(pipeline, f"--models names {', '.join(unknown)}, which the pipeline "
                             "does not run", f"choose from {', '.join(spec.names)}")
    chosen_seeds = None
    if seeds is not None:
        try:
            chosen_seeds = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError as exc:
            raise InputError(None, f"--seeds '{seeds}' is not a list of integers",
                             "write e.g. --seeds 0,1") from exc
    chosen_protocols = None
    if protocols is not None:
        chosen_protocols = [p.strip() for p in protocols.split(",") if p.strip()]
        unknown = sorted(set(chosen_protocols) - {p.name for p in spec.protocols})
        if unknown:
            raise InputError(pipeline, f"--protocols names {', '.join(unknown)}, which the "
                             "pipeline does not run", "see its 'protocols' list")
    results = run_benchmark(spec, log=out.print, only=only, seeds=chosen_seeds,
                            protocols=chosen_protocols)
    out.print(f"results: {spec.results}\nreport: {spec.report}")
    if any("error" in r for r in results["runs"]):
        raise typer.Exit(1)


def _whole_names_column(names: list[str]) -> Column:
    """A "name" column rich never cuts: a narrow terminal would show ``lola_specvit_proj_…``,
    and the name is what the user types next."""
    return Column("name", no_wrap=True, min_width=max(map(len, names), default=4))


@app.command("models")
def models_list(pattern: Annotated[str, typer.Argument()] = "*") -> None:
    """List registered models."""
    from hsikit.models import get_entry, list_models

    names = list_models(pattern)
    table = Table(_whole_names_column(names), "family", "defaults", "description")
    for name in names:
        entry = get_entry(name)
        defaults = ", ".join(f"{k}={v}" for k, v in entry.defaults.items())
        table.add_row(name, entry.family, defaults, entry.description)
    out.print(table)


@data_app.command("list")
def data_list() -> None:
    """List catalog datasets and whether they are available here."""
    from hsikit.catalog import catalog
    from hsikit.fetch import cached_file

    cards = catalog()
    table = Table(_whole_names_column(list(cards)), "kind", "sensor", "size", "classes",
                  "available")
    for name, card in cards.items():
        size = (f"{card.shape.rows}×{card.shape.cols}×{card.shape.bands}" if card.shape else "")
        if card.offline_source:
            here = f"yes ({card.offline_source})"
        elif card.files:
            here = "yes" if all(cached_file(card, f.role) for f in card.files) else "no"
        else:
            here = "—"
        table.add_row(name, card.kind, card.sensor, size, str(len(card.classes) or ""), here)
    out.print(table)


@data_app.command("info")
def data_info(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a catalog card."""
    from hsikit.catalog import get_card

    card = get_card(name)
    if as_json:
        out.print_json(card.model_dump_json())
        return
    out.print(f"[bold]{card.title}[/bold] ({card.name}, {card.kind})\n{card.description}\n")
    if card.shape:
        out.print(f"size: {card.shape.rows}×{card.shape.cols}, {card.shape.bands} bands; "
                  f"GSD {card.gsd_m} m")
    if card.spectral:
        out.print(f"spectral: {card.spectral.range_nm[0]:g}–{card.spectral.range_nm[1]:g} nm, "
                  f"{card.spectral.band_count} bands ({card.spectral.source})")
    for spec in card.files:
        out.print(f"file: {spec.name} ({spec.role}, {spec.bytes or '?'} bytes, "
                  f"sha256 {spec.sha256 or 'not published'})")
    if card.classes:
        table = Table("value", "class", "colour", "pixels")
        counts = card.class_counts or [None] * len(card.classes)
        for cls, count in zip(card.classes, counts):
            table.add_row(str(cls.value), cls.name, f"[{cls.colour}]██[/] {cls.colour}",
                          "" if count is None else str(count))
        out.print(table)
    out.print(f"licence: {card.licence}\ncitation: {card.citation}")


@data_app.command("fetch")
def data_fetch(
    name: str,
    mirror: Annotated[str | None, typer.Option(help="Base URL of a mirror holding the files.")
                      ] = None,
    allow_unverified: Annotated[bool, typer.Option(help="Accept files with no published "
                                                        "sha256.")] = False,
) -> None:
    """Download a dataset into the cache (resumable, sha256-checked)."""
    from hsikit.fetch import fetch

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        paths = fetch(name, mirror=mirror, allow_unverified=allow_unverified, progress=progress)
    for path in paths:
        out.print(f"verified {path}")


@data_app.command("import")
def data_import(name: str, files: Annotated[list[Path], typer.Argument()]) -> None:
    """Verify files you already have and register them in the cache."""
    from hsikit.fetch import import_files

    for path in import_files(name, files):
        out.print(f"verified {path}")


@data_app.command("labels")
def data_labels(name: str, output: OutputOpt,
                png: Annotated[Path | None, typer.Option(help="Also write a PNG legend.")] = None
                ) -> None:
    """Write a catalog dataset's ground truth as a class-map COG."""
    from hsikit.datasets import load
    from hsikit.writers.classmap import write_class_map
    from hsikit.writers.provenance import provenance
    from hsikit.writers.quicklook import class_map_quicklook

    _check_map_outputs(output, png)
    dataset = load(name)
    write_class_map(output, dataset.labels.values, dataset.scene.grid, dataset.labels.classes,
                    tags=provenance(source=f"catalog:{name}"))
    if png is not None:
        class_map_quicklook(dataset.labels.values, dataset.labels.classes, png,
                            title=dataset.card.title, source=f"catalog:{name}")
    out.print(f"wrote {_with_sidecars(output)}")


def main() -> None:
    """Console entry point: one sentence and exit 2 for expected errors."""
    from hsikit.writers.atomic import forget_inputs

    forget_inputs()
    # libraries log what they skip (cfgrib) or warn about (GDAL); readers route what matters
    # into their sentence or the scene's warnings, so nothing else reaches the terminal
    logging.getLogger().addHandler(logging.NullHandler())
    warnings.filterwarnings("ignore", module="pyproj")
    # pixel-grid scenes (benchmark .mat files) are expected; 'hsikit info' says "no CRS"
    warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)
    try:
        app(standalone_mode=False, prog_name="hsikit")
    except HsikitError as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {exc.sentence()}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
