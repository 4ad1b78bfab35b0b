"""How close downscaled fields are to the truth, per layer, in the layer's units: RMSE and bias
weighted by cell area (a polar cell counts for less, as in WeatherBench), the error of the
gradient magnitude (do fronts and jets keep their sharpness?), and the error in the two columns
beside the grid's wrap-around seam against the error elsewhere."""

from __future__ import annotations

import numpy as np

from hsikit.gridded.grids import cell_areas


def gradient_magnitude(values: np.ndarray, periodic: bool) -> np.ndarray:
    """``|∇f|`` per cell of ``[..., Y, X]`` fields, in units per cell (central differences;
    longitude wraps around when ``periodic``, one-sided differences at the other edges)."""
    dy = np.gradient(values, axis=-2)
    if periodic:
        dx = (np.roll(values, -1, axis=-1) - np.roll(values, 1, axis=-1)) / 2
    else:
        dx = np.gradient(values, axis=-1)
    return np.hypot(dx, dy)


class FieldScores:
    """Sums over samples for one method: errors ``[N, V, Y, X]`` accumulate per layer."""

    def __init__(self, lat: np.ndarray, layers: int, periodic: bool) -> None:
        self.weights = cell_areas(lat)[:, None] / cell_areas(lat).mean()
        self.periodic = periodic
        self.count = 0
        self.squared = np.zeros(layers)
        self.signed = np.zeros(layers)
        self.gradient = np.zeros(layers)
        self.columns: np.ndarray | None = None  # squared error per layer and column

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        error = (predicted - truth).astype(np.float64)
        weighted = error * self.weights
        cells = truth.shape[-2] * truth.shape[-1]
        self.count += error.shape[0] * cells
        self.squared += (error * weighted).sum(axis=(0, 2, 3))
        self.signed += weighted.sum(axis=(0, 2, 3))
        gradients = gradient_magnitude(predicted, self.periodic) - gradient_magnitude(
            truth, self.periodic
        )
        self.gradient += (gradients**2 * self.weights).sum(axis=(0, 2, 3))
        columns = (error * weighted).sum(axis=(0, 2))
        self.columns = columns if self.columns is None else self.columns + columns

    def result(self, names: list[str]) -> dict[str, dict[str, float]]:
        """Per layer: ``rmse``, ``bias``, ``gradient_rmse`` and ``seam_ratio`` (RMSE in the
        first and last columns over the RMSE of all columns; 1 means no seam)."""
        assert self.columns is not None, "no sample was added"
        rows = self.count / self.columns.shape[1]
        seam = np.sqrt(self.columns[:, [0, -1]].sum(axis=1) / (2 * rows))
        out = {}
        for index, name in enumerate(names):
            rmse = float(np.sqrt(self.squared[index] / self.count))
            out[name] = {
                "rmse": rmse,
                "bias": float(self.signed[index] / self.count),
                "gradient_rmse": float(np.sqrt(self.gradient[index] / self.count)),
                "seam_ratio": float(seam[index] / rmse) if rmse > 0 else 1.0,
            }
        return out
