"""Accuracy of a bundle: on its own recorded test split (rebuilt from the bundle's config and
checked against its data checksum), or on independent reference labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hsikit.bundle import Bundle, load_bundle
from hsikit.classes import value_lookup
from hsikit.data.samples import Source, extract, read_spectra
from hsikit.data.sources import load_sources
from hsikit.data.splits import TEST, Split, SplitSpec
from hsikit.devices import resolve_device
from hsikit.errors import InputError
from hsikit.evaluation.accuracy import ReferencePixels, accuracy_report
from hsikit.training.config import ResolvedTrainConfig


def own_test_pixels(bundle: Bundle) -> tuple[ReferencePixels, str]:
    """The bundle's own test pixels and the data checksum, recomputed from its config."""
    config = ResolvedTrainConfig.model_validate(bundle.meta.training["config"])
    sources, _ = load_sources(config)
    _, checksum, _ = read_spectra(sources)
    samples = extract(sources, bundle.preprocessor, config.patch_size)
    lookup = {e.value: i for i, e in enumerate(bundle.classes.entries)}
    y = np.asarray([lookup.get(int(v), -1) for v in samples.y["test"]], np.int64)
    return ReferencePixels.of(samples, y, [s.scene for s in sources]), checksum


def _report(
    bundle: Bundle, pixels: ReferencePixels, protocol: str, reference: str | None = None
) -> dict:
    """Accuracy on ``pixels``: of the bundle's own split (``protocol``), or of ``reference``
    data, where the split and its seed mean nothing."""
    report = accuracy_report(bundle, pixels)
    config = bundle.meta.training.get("config", {})
    if reference is not None:
        report["reference"] = reference
    report.update(
        model=bundle.meta.model.name,
        protocol=protocol,
        seed=config.get("seed"),
        init_seed=config.get("init_seed", config.get("seed")),  # older bundles: seed
        members=bundle.meta.model.members,
    )
    return report


def _independent(
    bundle: Bundle,
    scene_arg: str,
    labels_path: str | None,
    class_field: str | None,
    dataset: str | None,
    layer: str | None = None,
) -> ReferencePixels:
    from hsikit.data.datasets import load, resolve_scene
    from hsikit.data.labels import load_labels

    if dataset is not None:
        data = load(dataset)
        scene, values, table = data.scene, data.labels.values, data.labels.classes
    else:
        if labels_path is None:
            raise InputError(scene_arg, "no reference labels given", "pass --labels")
        scene = resolve_scene(scene_arg)
        placed = load_labels(labels_path, scene, class_field, layer=layer)
        scene, values, table = scene, placed.values, placed.classes
    by_name = {e.name: i for i, e in enumerate(bundle.classes.entries)}
    lookup = value_lookup(table.values, [by_name.get(e.name, -1) for e in table.entries])
    if (lookup < 0).all():
        raise InputError(
            labels_path or dataset,
            "none of the reference classes is a class of the model",
            "use labels with the model's class names",
        )
    roles = np.where(values > 0, TEST, 0).astype(np.uint8)
    source = Source(
        scene, values, Split(SplitSpec(), roles), bundle.preprocessor.match_bands(scene), scene.path
    )
    samples = extract([source], bundle.preprocessor, bundle.meta.patch_size)
    return ReferencePixels.of(samples, lookup[samples.y["test"]], [scene])


def _reference_kind(bundle: Bundle, scene: str | None, labels: str | None) -> str:
    """What the reference pixels are: independent, unless they are the bundle's own training
    scene and labels (its training and validation pixels are then among them)."""
    import os

    config = bundle.meta.training.get("config", {})
    trained = {
        (os.path.realpath(s), os.path.realpath(lab))
        for s, lab in zip(config.get("scenes", []), config.get("labels", []))
    }
    if scene and labels and (os.path.realpath(scene), os.path.realpath(labels)) in trained:
        return "the bundle's own training scene and labels (not independent)"
    return "independent reference data"


def evaluate_bundle(
    bundle_path: str | Path,
    *,
    scene: str | None = None,
    labels: str | None = None,
    class_field: str | None = None,
    layer: str | None = None,
    dataset: str | None = None,
    report_dir: str | Path | None = None,
    device: str = "auto",
) -> dict:
    device = resolve_device(device)  # a missing GPU is refused before any reading
    bundle = load_bundle(bundle_path).to(device)
    trained_on = bundle.meta.training.get("config", {}).get("dataset")
    own_split = scene is None and (dataset is None or dataset == trained_on)
    if own_split:
        if not bundle.meta.training.get("config"):
            raise InputError(
                bundle_path,
                "the bundle records no training configuration",
                "evaluate on a scene with --labels instead",
            )
        pixels, checksum = own_test_pixels(bundle)
        if checksum != bundle.meta.training.get("data_checksum"):
            raise InputError(
                bundle_path,
                "the training data found now differ from the data the "
                "bundle was trained on (checksum mismatch)",
                "evaluate on independent data with SCENE --labels",
            )
        report = _report(bundle, pixels, bundle.meta.training.get("split_protocol", "?"))
    else:
        pixels = _independent(bundle, scene or "", labels, class_field, dataset, layer)
        kind = _reference_kind(bundle, scene, labels)
        report = _report(bundle, pixels, kind, reference=kind)
    if report_dir is not None:
        from hsikit.training.report import confusion_png, write_json
        from hsikit.writers.atomic import prepare_output_folder

        folder = prepare_output_folder(report_dir)
        write_json(folder / "metrics.json", report)
        confusion_png(
            folder / "confusion.png",
            np.asarray(report["confusion"]),
            report["class_names"],
            f"{report['model']}: OA {report['oa']:.2%}",
        )
    return report
