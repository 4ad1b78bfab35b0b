"""Accuracy of a bundle on labelled pixels, as its maps classify them (smoothing included):
shared by training (the test split) and ``hsikit evaluate``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsikit.bundle import Bundle
from hsikit.data.samples import Samples
from hsikit.evaluation.scoring import classification_report
from hsikit.predict.classify import map_scores, predict_batches
from hsikit.scene import Scene


@dataclass
class ReferencePixels:
    """Labelled pixels to score: patches, class indices of the bundle, and where they lie."""

    x: np.ndarray  # [N, C, P, P]
    y: np.ndarray  # [N] class indices
    where: np.ndarray  # [N, 3] scene index, row, col
    scenes: list[Scene]

    @classmethod
    def of(cls, samples: Samples, y: np.ndarray, scenes: list[Scene]) -> ReferencePixels:
        """The test role of ``samples`` with class indices ``y``; pixels with y < 0 dropped."""
        keep = y >= 0
        return cls(samples.x["test"][keep], y[keep], samples.where["test"][keep], scenes)


def accuracy_report(bundle: Bundle, pixels: ReferencePixels) -> dict:
    """Accuracy of the bundle on labelled pixels, as its maps classify them: with smoothing,
    from the smoothed map (the unsmoothed figures kept beside them for comparison)."""
    table = bundle.classes
    values = np.asarray(table.values)

    def report_for(scores: np.ndarray) -> dict:
        predicted = values[scores.argmax(1)] if len(scores) else np.empty(0, int)
        return classification_report(
            values[pixels.y], predicted, table.values, [e.name for e in table.entries]
        )

    patch_report = report_for(predict_batches(bundle, pixels.x))
    if bundle.meta.smoothing is None:
        return patch_report
    report = report_for(map_scores(bundle, pixels.where, pixels.scenes))
    report.update(
        smoothing=bundle.meta.smoothing.model_dump(),
        unsmoothed={k: patch_report[k] for k in ("oa", "aa", "kappa")},
    )
    return report
