"""Scenes and their labels as training sources: one shared class table, a split per scene, and
the scene bands matching the first scene's good bands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hsikit.classes import ClassEntry, ClassTable, value_lookup
from hsikit.data.samples import Source
from hsikit.data.splits import TEST, TRAIN, Split, SplitSpec, make_split
from hsikit.preprocess import good_band_identity, match_bands

if TYPE_CHECKING:
    from hsikit.training.config import TrainConfig


def load_sources(config: TrainConfig) -> tuple[list[Source], ClassTable]:
    """Scenes with labels in one shared class table, their splits, and matched bands."""
    from hsikit.data.datasets import load
    from hsikit.data.labels import load_labels
    from hsikit.readers import open_scene

    if config.dataset is not None:
        dataset = load(config.dataset)
        raw = [(dataset.scene, dataset.labels.values, dataset.labels.classes, config.dataset)]
    else:
        raw = []
        for scene_path, label_path in zip(config.scenes, config.labels):
            scene = open_scene(scene_path)
            labels = load_labels(
                label_path,
                scene,
                config.class_field,
                config.name_field,
                config.layer,
                config.class_table,
            )
            raw.append((scene, labels.values, labels.classes, scene_path))
    table, remapped = merge_tables([(values, classes) for _, values, classes, _ in raw])
    first = raw[0][0]
    _, wavelengths, names = good_band_identity(first)
    splits = _splits(config, remapped)
    sources = [
        Source(scene, labels, split, match_bands(wavelengths, names, scene), name)
        for (scene, _, _, name), labels, split in zip(raw, remapped, splits)
    ]
    return sources, table


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
