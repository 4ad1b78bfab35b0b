"""Scenes and their labels as training sources: one shared class table, a split per scene, and
the scene bands matching the first scene's good bands. A scene on which no labelled pixel of
its labels falls (a tile beside the surveyed area) is skipped with a note, unless the run is
strict or no scene has labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from hsikit.classes import ClassEntry, ClassTable, value_lookup
from hsikit.data.samples import Source
from hsikit.data.splits import TEST, TRAIN, Split, SplitSpec, make_split
from hsikit.errors import InputError
from hsikit.preprocess import good_band_identity, match_bands

if TYPE_CHECKING:
    from hsikit.data.labels import Labels
    from hsikit.scene import Scene
    from hsikit.training.config import TrainConfig


@dataclass
class Placed:
    """Scenes with their labels on their grids, and the notes on the scenes left out."""

    scenes: list[tuple[str, Scene, Labels]] = field(default_factory=list)  # name, scene, labels
    skipped: list[str] = field(default_factory=list)


def place_labels(
    pairs: Sequence[tuple[str, str]],
    read: Callable[[str, str], tuple[Scene, Labels]],
    strict: bool,
) -> Placed:
    """Each (scene, labels file) of ``pairs`` read by ``read``; a scene no labelled pixel falls
    on is skipped with a note, so one vector file can label a set of tiles it only partly
    covers. ``strict`` refuses such a scene instead, naming it; no labelled scene at all is
    refused, naming the labels and the scenes."""
    from hsikit.data.labels import NoLabelsOnScene

    placed = Placed()
    for scene_name, labels_path in pairs:
        try:
            placed.scenes.append((scene_name, *read(scene_name, labels_path)))
        except NoLabelsOnScene as exc:
            if len(pairs) == 1:
                raise
            if strict:
                raise InputError(
                    scene_name,
                    f"{exc.reason} it ({labels_path})",
                    "give labels that cover this scene, or drop --strict to skip it",
                ) from exc
            placed.skipped.append(f"scene {scene_name}: {exc.reason} it ({labels_path}); skipped")
    if not placed.scenes:
        raise InputError(
            ", ".join(dict.fromkeys(labels for _, labels in pairs)),
            "no label feature marks a pixel of any of the scenes "
            f"({', '.join(scene for scene, _ in pairs)})",
            "check that the labels and the scenes cover the same area",
        )
    return placed


def load_sources(config: TrainConfig) -> tuple[list[Source], ClassTable, list[str]]:
    """Scenes with labels in one shared class table, their splits, and matched bands; and the
    notes on the scenes skipped for having no labelled pixel."""
    from hsikit.data.datasets import load

    if config.dataset is not None:
        dataset = load(config.dataset)
        placed = Placed([(config.dataset, dataset.scene, dataset.labels)])
    else:
        placed = place_labels(
            list(zip(config.scenes, config.labels)), _label_reader(config), config.strict
        )
    if config.split == "tiles" and len(placed.scenes) < 2:
        raise InputError(
            ", ".join(config.scenes),
            "the 'tiles' split needs at least two scenes with labels, and only "
            f"{len(placed.scenes)} has any",
            "label more of the scenes, or use the spatial split",
        )
    table, remapped = merge_tables(
        [(labels.values, labels.classes) for *_, labels in placed.scenes]
    )
    _, wavelengths, names = good_band_identity(placed.scenes[0][1])
    splits = _splits(config, remapped)
    sources = [
        Source(scene, labels, split, match_bands(wavelengths, names, scene), name)
        for (name, scene, _), labels, split in zip(placed.scenes, remapped, splits)
    ]
    return sources, table, placed.skipped


def _label_reader(config: TrainConfig) -> Callable[[str, str], tuple[Scene, Labels]]:
    """Opens a scene and puts a labels file on its grid with the config's label options."""
    from hsikit.data.labels import load_labels
    from hsikit.readers import open_scene

    def read(scene_path: str, labels_path: str) -> tuple[Scene, Labels]:
        scene = open_scene(scene_path)
        return scene, load_labels(
            labels_path,
            scene,
            config.class_field,
            config.name_field,
            config.layer,
            config.class_table,
        )

    return read


def merge_tables(items: list[tuple[np.ndarray, ClassTable]]) -> tuple[ClassTable, list[np.ndarray]]:
    """One class table for all sources, matched by class name; values renumbered if needed."""
    if len(items) == 1:
        return items[0][1], [items[0][0]]
    first = items[0][1]
    entries = {e.name: e for e in first.entries}
    for _, table in items[1:]:
        for entry in table.entries:
            if entry.name not in entries:
                value = max(e.value for e in entries.values()) + 1
                entries[entry.name] = ClassEntry(value, entry.name, entry.colour)
    merged = ClassTable(tuple(sorted(entries.values(), key=lambda e: e.value)))
    out = []
    for values, table in items:
        lookup = value_lookup(
            table.values,
            [entries[e.name].value for e in table.entries],
            int(values.max()) + 1,
            fill=0,
        )
        out.append(lookup[values].astype(values.dtype if merged.max_value < 256 else "uint16"))
    return merged, out


def _splits(config: TrainConfig, labels: list[np.ndarray]) -> list[Split]:
    spec = config.split_spec()
    if config.split != "tiles":
        return [make_split(values, spec) for values in labels]
    order = np.random.default_rng(config.seed).permutation(len(labels))
    n_test = min(len(labels) - 1, max(1, int(len(labels) * (1 - config.train_fraction))))
    test_tiles = set(order[:n_test].tolist())
    inner = SplitSpec(
        protocol="random",
        seed=config.seed,
        train_ratio=0.999,
        val_fraction=config.val_fraction,
        patch_size=spec.patch_size,
    )
    out = []
    for index, values in enumerate(labels):
        if index in test_tiles:
            roles = np.where(values > 0, TEST, 0).astype(np.uint8)
            out.append(Split(spec, roles, [f"tile {index}: test"]))
        else:
            split = make_split(values, inner)
            split.roles[split.roles == TEST] = TRAIN  # the whole tile trains, minus validation
            out.append(Split(spec, split.roles, [f"tile {index}: train"]))
    return out
