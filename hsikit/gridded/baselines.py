"""The learnt baseline a downscaling network must also beat: per layer, a linear regression on
features of the bicubic interpolation — its value, its gradients and curvature, and which of
the s × s sub-cells of the coarse cell the fine cell is (an area mean is not a point value:
the correction differs across the cell)."""

from __future__ import annotations

import numpy as np

from hsikit.gridded.grids import interpolate

#: Fine cells per layer the regression is fitted on (a random subset of the training fields).
FIT_CELLS = 200_000


def _features(bicubic: np.ndarray, scale: int, periodic: bool) -> np.ndarray:
    """``[N, Y, X]`` bicubic fields of one layer → ``[N·Y·X, F]`` features."""
    if periodic:
        dx = (np.roll(bicubic, -1, -1) - np.roll(bicubic, 1, -1)) / 2
        lap_x = np.roll(bicubic, -1, -1) + np.roll(bicubic, 1, -1) - 2 * bicubic
    else:
        dx = np.gradient(bicubic, axis=-1)
        lap_x = np.gradient(dx, axis=-1)
    dy = np.gradient(bicubic, axis=-2)
    lap_y = np.gradient(dy, axis=-2)
    count, height, width = bicubic.shape
    phase = (np.arange(height)[:, None] % scale) * scale + np.arange(width)[None, :] % scale
    one_hot = np.eye(scale * scale, dtype=np.float32)[np.broadcast_to(phase, bicubic.shape)]
    columns = [bicubic, dx, dy, lap_x + lap_y]
    stacked = np.stack(columns, axis=-1).reshape(-1, len(columns))
    return np.concatenate([stacked, one_hot.reshape(-1, scale * scale)], axis=1)


class BicubicRegression:
    """One linear regression per layer (ridge, a small penalty) from bicubic features."""

    def __init__(self, scale: int, periodic: bool) -> None:
        self.scale, self.periodic = scale, periodic
        self.models: list = []

    def fit(self, coarse: np.ndarray, fine: np.ndarray, seed: int = 0) -> BicubicRegression:
        """``coarse`` ``[N, V, h, w]`` and ``fine`` ``[N, V, s·h, s·w]`` training fields."""
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        bicubic = interpolate(coarse, self.scale, "bicubic", self.periodic)
        rng = np.random.default_rng(seed)
        for layer in range(fine.shape[1]):
            x = _features(bicubic[:, layer], self.scale, self.periodic)
            y = fine[:, layer].reshape(-1)
            chosen = rng.choice(len(y), size=min(FIT_CELLS, len(y)), replace=False)
            model = make_pipeline(StandardScaler(), Ridge(alpha=1e-3))  # features of any units
            self.models.append(model.fit(x[chosen], y[chosen]))
        return self

    def predict(self, coarse: np.ndarray) -> np.ndarray:
        bicubic = interpolate(coarse, self.scale, "bicubic", self.periodic)
        out = np.empty_like(bicubic)
        for layer, model in enumerate(self.models):
            x = _features(bicubic[:, layer], self.scale, self.periodic)
            out[:, layer] = model.predict(x).reshape(out[:, layer].shape)
        return out
