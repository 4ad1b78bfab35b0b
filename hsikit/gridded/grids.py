"""Grids of cells on the sphere: coarsening by area mean (as a coarser model sees a field), the
coordinates of a refined grid, and the interpolation baselines."""

from __future__ import annotations

import numpy as np

#: The interpolations a downscaling model is compared with.
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def cell_areas(lat: np.ndarray) -> np.ndarray:
    """Relative areas of the cells centred at ``lat`` (degrees, regular spacing): the band
    between the cell's edges, ``sin(top) − sin(bottom)``."""
    half = abs(float(lat[1] - lat[0])) / 2 if len(lat) > 1 else 0.5
    top = np.clip(np.radians(lat + half), -np.pi / 2, np.pi / 2)
    bottom = np.clip(np.radians(lat - half), -np.pi / 2, np.pi / 2)
    return np.abs(np.sin(top) - np.sin(bottom))


def coarsen(values: np.ndarray, lat: np.ndarray, scale: int) -> np.ndarray:
    """``[..., Y, X]`` → ``[..., Y/s, X/s]``: the area-weighted mean of each s × s block
    (``Y`` and ``X`` multiples of ``scale``)."""
    *lead, height, width = values.shape
    weights = cell_areas(lat).reshape(height // scale, scale, 1, 1)
    blocks = values.reshape(*lead, height // scale, scale, width // scale, scale)
    total = (blocks * weights).sum(axis=(-3, -1))
    return (total / (weights.sum(axis=(-3, -1)) * scale)).astype(values.dtype)


def coarse_axis(centres: np.ndarray, scale: int) -> np.ndarray:
    """Centres of the coarse cells that s consecutive cells at ``centres`` make."""
    return centres.reshape(-1, scale).mean(axis=1)


def fine_axis(centres: np.ndarray, scale: int) -> np.ndarray:
    """Centres of the cells ``scale`` times finer over the same extent (the same order)."""
    step = float(centres[1] - centres[0]) if len(centres) > 1 else 1.0
    offsets = step * ((np.arange(scale) + 0.5) / scale - 0.5)
    return (centres[:, None] + offsets[None, :]).reshape(-1)


def interpolate(values: np.ndarray, scale: int, mode: str, periodic: bool) -> np.ndarray:
    """``[N, V, h, w]`` → ``[N, V, s·h, s·w]`` by ``mode`` (one of :data:`INTERPOLATIONS`),
    longitude wrapping around when ``periodic``."""
    import torch

    from hsikit.models.layers.periodic import upsample_field

    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        return upsample_field(x, scale, mode, periodic).numpy()


def training_block(length: int, scale: int) -> slice:
    """The centred rows (or columns) a training pair uses: the most that divide by ``scale``."""
    keep = length - length % scale
    start = (length - keep) // 2
    return slice(start, start + keep)
