"""Streamed prediction over a scene: halo window → preprocessing → batched patches → window write.

Memory is bounded by the window and batch sizes, not by the scene: nothing holds an H×W×K
probability array, and each window's probabilities are written and dropped before the next.
Nodata pixels are never classified; they stay 0 (nodata) in every output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from hsikit.bundle import Bundle
from hsikit.patches import batched_pixels, halo_windows, patches_at, read_block
from hsikit.scene import Scene
from hsikit.writers.classmap import CLASS_NODATA, ClassMapWriter


def classify_scene(scene: Scene, bundle: Bundle, output: str | Path, *, window: int = 256,
                   batch_size: int = 1024, confidence: bool = False, probabilities: bool = False,
                   on_window: Callable[[int, int], None] | None = None) -> dict:
    """Write the class map (and optional confidence / probabilities) for ``scene``."""
    bundle, bands = bundle.for_scene(scene)
    patch = bundle.meta.patch_size
    table = bundle.classes
    values = np.asarray(table.values)
    windows = list(halo_windows(scene.height, scene.width, window, patch // 2))
    classified = 0
    with ClassMapWriter(output, scene.grid, table, confidence=confidence,
                        probabilities=probabilities) as writer:
        for done, hw in enumerate(windows, start=1):
            block, valid = read_block(scene, hw, bands, bundle.preprocessor.transform)
            classes = np.full(valid.shape, CLASS_NODATA, dtype=np.int64)
            conf = np.zeros(valid.shape, np.float32) if confidence else None
            probs = (np.zeros((len(table), *valid.shape), np.float32) if probabilities
                     else None)
            for rows, cols in batched_pixels(valid, batch_size):
                scores = bundle.predict_proba(patches_at(block, rows, cols, patch))
                classes[rows, cols] = values[scores.argmax(axis=1)]
                if conf is not None:
                    conf[rows, cols] = scores.max(axis=1)
                if probs is not None:
                    probs[:, rows, cols] = scores.T
            classified += int(valid.sum())
            writer.write(hw.core, classes, confidence=conf, probabilities=probs)
            if on_window is not None:
                on_window(done, len(windows))
    return {"pixels": scene.width * scene.height, "classified": classified,
            "nodata": scene.width * scene.height - classified}
