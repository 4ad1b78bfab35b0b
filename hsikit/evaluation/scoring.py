"""Classification metrics: OA, AA, Cohen's kappa, per-class accuracy, confusion; mean ± std."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hsikit.classes import value_lookup


def confusion(truth: np.ndarray, predicted: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Rows = reference class, columns = predicted class, both in the order of ``values``."""
    lookup = value_lookup(values, range(len(values)))
    t, p = lookup[np.asarray(truth)], lookup[np.asarray(predicted)]
    if (t < 0).any() or (p < 0).any():
        raise ValueError("labels outside the class table")
    matrix = np.zeros((len(values), len(values)), np.int64)
    np.add.at(matrix, (t, p), 1)
    return matrix


def classification_report(
    truth: np.ndarray, predicted: np.ndarray, values: Sequence[int], names: Sequence[str]
) -> dict:
    matrix = confusion(truth, predicted, values)
    total = matrix.sum()
    per_class_total = matrix.sum(axis=1)
    correct = np.diag(matrix)
    present = per_class_total > 0
    per_class = np.where(present, correct / np.maximum(per_class_total, 1), np.nan)
    oa = correct.sum() / total if total else float("nan")
    expected = (matrix.sum(axis=0) * per_class_total).sum() / total**2 if total else float("nan")
    kappa = (oa - expected) / (1 - expected) if expected < 1 else float("nan")
    return {
        "oa": float(oa),
        "aa": float(np.nanmean(per_class)) if present.any() else float("nan"),
        "kappa": float(kappa),
        "n_test": int(total),
        "per_class": {
            name: (None if np.isnan(acc) else float(acc)) for name, acc in zip(names, per_class)
        },
        "confusion": matrix.tolist(),
        "class_values": list(map(int, values)),
        "class_names": list(names),
    }


def summarize_runs(reports: Sequence[dict], keys: Sequence[str] = ("oa", "aa", "kappa")) -> dict:
    """Mean and sample standard deviation of each key over runs (seeds)."""
    out = {}
    for key in keys:
        values = np.asarray([r[key] for r in reports], float)
        out[key] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "n": int(values.size),
        }
    return out
