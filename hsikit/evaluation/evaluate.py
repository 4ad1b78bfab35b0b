"""Accuracy of a bundle: on its own recorded test split (rebuilt from the bundle's config and
checked against its data checksum), or on independent reference labels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np

from hsikit.bundle import Bundle, load_bundle
from hsikit.classes import value_lookup
from hsikit.data.samples import Source, extract, read_spectra
from hsikit.data.sources import Placed, load_sources, merge_tables, place_labels
from hsikit.data.splits import TEST, Split, SplitSpec
from hsikit.devices import resolve_device
from hsikit.errors import InputError
from hsikit.evaluation.accuracy import ReferencePixels, accuracy_report
from hsikit.progress import Tell
from hsikit.spectral_resampling import BandMode, adaptation, for_bundle
from hsikit.training.config import LABELS_RULE, ResolvedTrainConfig, labels_per_scene
from hsikit.writers.provenance import sha256_of


class LabelOptions(TypedDict):
    """How reference labels files are read: ``load_labels``'s options, as ``train`` has them."""

    class_field: str | None
    name_field: str | None
    layer: str | None
    class_table: str | Path | None


def own_test_pixels(bundle: Bundle, tell: Tell | None = None) -> tuple[ReferencePixels, str]:
    """The bundle's own test pixels and the data checksum, recomputed from its config;
    ``tell(done, total)`` follows the windows cut into patches."""
    config = ResolvedTrainConfig.model_validate(bundle.meta.training["config"])
    sources, _, _ = load_sources(config)
    _, checksum, _ = read_spectra(sources)
    samples = extract(sources, bundle.preprocessor, config.patch_size, tell)
    lookup = {e.value: i for i, e in enumerate(bundle.classes.entries)}
    y = np.asarray([lookup.get(int(v), -1) for v in samples.y["test"]], np.int64)
    return ReferencePixels.of(samples, y, [s.scene for s in sources]), checksum


def _report(
    bundle: Bundle,
    pixels: ReferencePixels,
    protocol: str,
    reference: str | None = None,
    scene_names: Sequence[str] = (),
) -> dict:
    """Accuracy on ``pixels``: of the bundle's own split (``protocol``), or of ``reference``
    data, where the split and its seed mean nothing (per scene too, with ``scene_names``)."""
    report = accuracy_report(bundle, pixels, scene_names)
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


def _reference_scenes(
    scenes: Sequence[str],
    labels: Sequence[str],
    dataset: str | None,
    label_options: LabelOptions,
) -> Placed:
    """The reference scenes and their labels: a catalog dataset's, or each scene's own labels
    file (one --labels per scene, or one for all, as ``hsikit train`` takes them, with its
    label options: raster labels can only match the model's classes by name through a class
    table; a scene no label falls on skipped with a note, as there)."""
    from hsikit.data.datasets import load, resolve_scene
    from hsikit.data.labels import Labels, load_labels
    from hsikit.scene import Scene

    if dataset is not None:
        data = load(dataset)
        return Placed([(dataset, data.scene, data.labels)])
    if not labels:
        raise InputError(scenes[0], "no reference labels given", "pass --labels")
    paired = labels_per_scene(list(scenes), list(labels))
    if paired is None:
        raise InputError(
            None,
            f"{len(scenes)} scenes but {len(labels)} --labels files",
            LABELS_RULE,
        )

    def read(scene_argument: str, labels_path: str) -> tuple[Scene, Labels]:
        scene = resolve_scene(scene_argument)
        return scene, load_labels(labels_path, scene, **label_options)

    return place_labels(list(zip(scenes, paired)), read, strict=False)


def _with_bundle_bands(bundle: Bundle, placed: Placed, mode: BandMode) -> dict[str, str]:
    """Each reference scene with the bundle's bands (as ``classify`` adapts them when asked);
    what was done to each scene's bands, by scene."""
    done = {}
    for index, (name, scene, labels) in enumerate(placed.scenes):
        scene = for_bundle(scene, bundle, mode)
        placed.scenes[index] = (name, scene, labels)
        if (how := adaptation(scene)) is not None:
            done[name] = how
    return done


def _independent(
    bundle: Bundle, placed: Placed, named: str | None, tell: Tell | None
) -> ReferencePixels:
    """The labelled pixels of every reference scene, pooled, as class indices of the bundle
    (classes matched by name; those the model lacks dropped)."""
    table, remapped = merge_tables(
        [(labels.values, labels.classes) for *_, labels in placed.scenes]
    )
    by_name = {e.name: i for i, e in enumerate(bundle.classes.entries)}
    lookup = value_lookup(table.values, [by_name.get(e.name, -1) for e in table.entries])
    if (lookup < 0).all():
        raise InputError(
            named,
            "none of the reference classes is a class of the model "
            f"({', '.join(e.name for e in bundle.classes.entries)})",
            "use labels with the model's class names: name a raster's classes with "
            "--class-table, a vector's with --class-field (and --name-field for numeric classes)",
        )
    sources = [
        Source(
            scene,
            values,
            Split(SplitSpec(), np.where(values > 0, TEST, 0).astype(np.uint8)),
            bundle.preprocessor.match_bands(scene),
            name,
        )
        for (name, scene, _), values in zip(placed.scenes, remapped)
    ]
    samples = extract(sources, bundle.preprocessor, bundle.meta.patch_size, tell)
    return ReferencePixels.of(samples, lookup[samples.y["test"]], [s.scene for s in sources])


def _reference_kind(bundle: Bundle, scenes: Sequence[str], labels: Sequence[str]) -> str:
    """What the reference pixels are: independent, unless some reference scene is one the
    bundle was trained on (the same file, by path or inode), whatever labels it comes with:
    training and validation pixels are then among them, or right beside them."""
    config = bundle.meta.training.get("config", {})
    trained = dict(zip(map(_file_identity, config.get("scenes", [])), config.get("labels", [])))
    paired = labels_per_scene(list(scenes), list(labels)) or []
    own = [(scene, lab) for scene, lab in zip(scenes, paired) if _file_identity(scene) in trained]
    if not own:
        return "independent reference data"
    same_labels = all(_same_content(lab, trained[_file_identity(scene)]) for scene, lab in own)
    labelled = "and labels" if same_labels else "with other labels"
    if len(scenes) == 1:
        return f"the bundle's own training scene {labelled}, not independent data"
    names = ", ".join(scene for scene, _ in own)
    return (
        f"reference data including the bundle's own training scenes {labelled} ({names}), "
        "not independent data"
    )


def _same_content(path: str, other: str) -> bool:
    """Whether two labels files are one file or byte-for-byte copies."""
    if _file_identity(path) == _file_identity(other):
        return True
    try:
        return sha256_of(path) == sha256_of(other)
    except OSError:
        return False


def _file_identity(path: str) -> tuple[int, int] | str:
    """One file however it is named: its device and inode, else its resolved path."""
    try:
        found = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (found.st_dev, found.st_ino)


def evaluate_bundle(
    bundle_path: str | Path,
    *,
    scenes: Sequence[str] = (),
    labels: Sequence[str] = (),
    class_field: str | None = None,
    layer: str | None = None,
    class_table: str | Path | None = None,
    name_field: str | None = None,
    dataset: str | None = None,
    report_dir: str | Path | None = None,
    device: str = "auto",
    bands: BandMode = "own",
    tell: Tell | None = None,
) -> dict:
    """Accuracy of a bundle on its own test split, or on reference scenes (pooled into one
    confusion matrix, with each scene's figures beside it) or a catalog dataset; reference
    scenes get the bundle's bands as ``classify`` gives them (``bands``). ``tell(done,
    total)`` follows the windows read."""
    device = resolve_device(device)  # a missing GPU is refused before any reading
    bundle = load_bundle(bundle_path).to(device)
    trained_on = bundle.meta.training.get("config", {}).get("dataset")
    own_split = not scenes and (dataset is None or dataset == trained_on)
    if own_split:
        if not bundle.meta.training.get("config"):
            raise InputError(
                bundle_path,
                "the bundle records no training configuration",
                "evaluate on a scene with --labels instead",
            )
        pixels, checksum = own_test_pixels(bundle, tell)
        if checksum != bundle.meta.training.get("data_checksum"):
            raise InputError(
                bundle_path,
                "the training data found now differ from the data the "
                "bundle was trained on (checksum mismatch)",
                "evaluate on independent data with SCENE --labels",
            )
        report = _report(bundle, pixels, bundle.meta.training.get("split_protocol", "?"))
    else:
        label_options = LabelOptions(
            class_field=class_field, name_field=name_field, layer=layer, class_table=class_table
        )
        placed = _reference_scenes(scenes, labels, dataset, label_options)
        adapted = _with_bundle_bands(bundle, placed, bands)
        pixels = _independent(bundle, placed, ", ".join(dict.fromkeys(labels)) or dataset, tell)
        kind = _reference_kind(bundle, scenes, labels)
        names = [name for name, *_ in placed.scenes] if len(placed.scenes) > 1 else []
        report = _report(bundle, pixels, kind, reference=kind, scene_names=names)
        report.update(
            warnings=placed.skipped,
            scenes={"used": [name for name, *_ in placed.scenes], "skipped": placed.skipped},
        )
        if adapted:
            report["bands"] = adapted
    if report_dir is not None:
        from hsikit.training.report import confusion_png, oa_text, write_json
        from hsikit.writers.atomic import prepare_output_folder

        folder = prepare_output_folder(report_dir)
        write_json(folder / "metrics.json", report)
        confusion_png(
            folder / "confusion.png",
            np.asarray(report["confusion"]),
            report["class_names"],
            f"{report['model']}: {oa_text(report)}",
        )
    return report
