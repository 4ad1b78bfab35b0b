"""Accuracy of a bundle: on its own recorded test split (rebuilt from the bundle's config and
checked against its data checksum), or on independent reference labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hsikit.bundle import Bundle, load_bundle
from hsikit.errors import InputError
from hsikit.metrics import classification_report
from hsikit.splits import TEST, Split, SplitSpec
from hsikit.training.run import predict_batches, rebuild_test_set
from hsikit.training.samples import Source, extract


def _report(bundle: Bundle, x: np.ndarray, y: np.ndarray, protocol: str) -> dict:
    table = bundle.classes
    values = np.asarray(table.values)
    scores = predict_batches(bundle, x)
    report = classification_report(values[y], values[scores.argmax(1)], table.values,
                                   [e.name for e in table.entries])
    config = bundle.meta.training.get("config", {})
    report.update(model=bundle.meta.model.name, protocol=protocol, seed=config.get("seed"),
                  init_seed=config.get("init_seed", config.get("seed")))  # older bundles: seed
    return report


def _independent(bundle: Bundle, scene_arg: str, labels_path: str | None,
                 class_field: str | None, dataset: str | None) -> tuple[np.ndarray, np.ndarray]:
    from hsikit.datasets import load, resolve_scene
    from hsikit.labels import load_labels

    if dataset is not None:
        data = load(dataset)
        scene, values, table = data.scene, data.labels.values, data.labels.classes
    else:
        if labels_path is None:
            raise InputError(scene_arg, "no reference labels given", "pass --labels")
        scene = resolve_scene(scene_arg)
        placed = load_labels(labels_path, scene, class_field)
        scene, values, table = scene, placed.values, placed.classes
    by_name = {e.name: i for i, e in enumerate(bundle.classes.entries)}
    lookup = np.full(table.max_value + 1, -1, np.int64)
    for entry in table.entries:
        lookup[entry.value] = by_name.get(entry.name, -1)
    if (lookup < 0).all():
        raise InputError(labels_path or dataset, "none of the reference classes is a class of "
                         "the model", "use labels with the model's class names")
    roles = np.where(values > 0, TEST, 0).astype(np.uint8)
    source = Source(scene, values, Split(SplitSpec(), roles),
                    bundle.preprocessor.match_bands(scene), scene.path)
    samples = extract([source], bundle.preprocessor, bundle.meta.patch_size)
    y = lookup[samples.y["test"]]
    return samples.x["test"][y >= 0], y[y >= 0]


def evaluate_bundle(bundle_path: str | Path, *, scene: str | None = None,
                    labels: str | None = None, class_field: str | None = None,
                    dataset: str | None = None, report_dir: str | Path | None = None) -> dict:
    bundle = load_bundle(bundle_path)
    trained_on = bundle.meta.training.get("config", {}).get("dataset")
    own_split = scene is None and (dataset is None or dataset == trained_on)
    if own_split:
        if not bundle.meta.training.get("config"):
            raise InputError(bundle_path, "the bundle records no training configuration",
                             "evaluate on a scene with --labels instead")
        x, y, checksum = rebuild_test_set(bundle)
        if checksum != bundle.meta.training.get("data_checksum"):
            raise InputError(bundle_path, "the training data found now differ from the data the "
                             "bundle was trained on (checksum mismatch)",
                             "evaluate on independent data with SCENE --labels")
        report = _report(bundle, x, y, bundle.meta.training.get("split_protocol", "?"))
    else:
        x, y = _independent(bundle, scene or "", labels, class_field, dataset)
        report = _report(bundle, x, y, "independent reference data")
    if report_dir is not None:
        import json

        from hsikit.training.report import confusion_png

        folder = Path(report_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
        confusion_png(folder / "confusion.png", np.asarray(report["confusion"]),
                      report["class_names"], f"{report['model']}: OA {report['oa']:.2%}")
    return report
