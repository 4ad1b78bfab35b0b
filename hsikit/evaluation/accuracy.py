"""Accuracy of a bundle on labelled pixels, as its maps classify them (smoothing included):
shared by training (the test split) and ``hsikit evaluate``."""

from __future__ import annotations

from collections.abc import Sequence
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


def accuracy_report(
    bundle: Bundle, pixels: ReferencePixels, scene_names: Sequence[str] = ()
) -> dict:
    """Accuracy of the bundle on labelled pixels, as its maps classify them: with smoothing,
    from the smoothed map (the unsmoothed figures kept beside them for comparison). With
    ``scene_names`` (one per scene of ``pixels``), each scene's figures too, from the same
    predictions: pooled test tiles and the breakdown agree."""
    table = bundle.classes
    values = np.asarray(table.values)
    names = [e.name for e in table.entries]
    truth = values[pixels.y]

    def predicted(scores: np.ndarray) -> np.ndarray:
        return values[scores.argmax(1)] if len(scores) else np.empty(0, int)

    def report_for(classes: np.ndarray, keep: np.ndarray | slice = slice(None)) -> dict:
        return classification_report(truth[keep], classes[keep], table.values, names)

    patches = predicted(predict_batches(bundle, pixels.x))
    if bundle.meta.smoothing is None:
        mapped, report = patches, report_for(patches)
    else:
        mapped = predicted(map_scores(bundle, pixels.where, pixels.scenes))
        report, unsmoothed = report_for(mapped), report_for(patches)
        report.update(
            smoothing=bundle.meta.smoothing.model_dump(),
            unsmoothed={k: unsmoothed[k] for k in ("oa", "aa", "kappa")},
        )
    if scene_names:
        report["per_scene"] = [
            {"scene": name}
            | {
                k: v
                for k, v in report_for(mapped, pixels.where[:, 0] == index).items()
                if k not in ("class_values", "class_names")
            }
            for index, name in enumerate(scene_names)
        ]
    return report
