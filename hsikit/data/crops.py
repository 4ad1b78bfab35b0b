"""Pixels for self-supervised restoration: spatial regions of a scene (training, validation,
test — whole blocks, as for classification, so no choice ever sees the test region), and crops
drawn from a region with a degradation applied on the fly.

A crop lies wholly inside its region and on valid pixels; band-count agnostic models may train
on a random window of contiguous bands (cheaper, and every band count then looks familiar).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rasterio.windows import Window

from hsikit.data.splits import TEST, TRAIN, UNUSED, VAL, block_ids
from hsikit.degrade import Degradation, apply


def region_roles(
    valid: np.ndarray, block: int, seed: int, test_share: float = 0.2, val_share: float = 0.15
) -> np.ndarray:
    """``uint8 [H, W]`` roles (train / val / test) of whole ``block``-px blocks, drawn by
    ``seed``; blocks without a valid pixel are unused."""
    ids = block_ids(valid.shape, block)
    blocks = np.unique(ids[valid])
    order = np.random.default_rng(seed).permutation(blocks)
    n_test = max(1, round(test_share * len(order)))
    n_val = max(1, round(val_share * len(order)))
    roles = np.full(valid.shape, UNUSED, np.uint8)
    for role, chosen in (
        (TEST, order[:n_test]),
        (VAL, order[n_test : n_test + n_val]),
        (TRAIN, order[n_test + n_val :]),
    ):
        roles[np.isin(ids, chosen) & valid] = role
    return roles


def crop_origins(inside: np.ndarray, size: int) -> np.ndarray:
    """``[N, 2]`` (row, col) of every ``size × size`` crop wholly inside the True pixels."""
    if min(inside.shape) < size:
        return np.empty((0, 2), int)
    table = np.pad(inside.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    totals = (
        table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    )
    return np.argwhere(totals == size * size)


@dataclass
class CropSampler:
    """Draws (degraded, clean, task) crops from one region of a scene, values scaled to the
    data range. ``degradations`` are the tasks (one, or one per task of an all-in-one model);
    ``scale`` > 1 makes the input ``scale`` times coarser than the clean crop (the network's
    upsampling restores the size), unless ``upsample_input`` brings it back to the clean size
    first (all-in-one models)."""

    scene: Any
    origins: np.ndarray  # [N, 2] crop origins on the clean grid
    size: int  # clean crop side
    data_range: tuple[float, float]
    degradations: list[Degradation]
    band_window: int | None = None  # contiguous bands per crop (band-agnostic models)
    upsample_input: bool = False
    seed: int = 0
    draws: int = field(default=0, init=False)

    def draw(self) -> tuple[np.ndarray, np.ndarray, int]:
        rng = np.random.default_rng([self.seed, self.draws])
        self.draws += 1
        row, col = self.origins[rng.integers(len(self.origins))]
        task = int(rng.integers(len(self.degradations)))
        return self.crop(
            int(row),
            int(col),
            task,
            int(rng.integers(2**31)),
            int(rng.integers(max(1, self.scene.count - (self.band_window or 0)) + 1)),
        )

    def crop(
        self, row: int, col: int, task: int, seed: int, first_band: int = 0
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """A given crop with the ``task``-th degradation drawn by ``seed``."""
        count = self.scene.count
        bands = np.arange(count)
        if self.band_window is not None and self.band_window < count:
            bands = np.arange(first_band, first_band + self.band_window)
        clean, valid = self.scene.read(Window(col, row, self.size, self.size), bands=bands)
        low, high = self.data_range
        clean = np.nan_to_num((clean - low) / (high - low)).astype(np.float32)
        spec = self.degradations[task].model_copy(update={"seed": seed})
        degraded, _ = apply(
            clean, valid, spec, np.arange(len(bands)), (0, 0), len(bands), self.size // spec.scale
        )
        degraded = degraded.astype(np.float32)
        if self.upsample_input and spec.scale > 1:
            degraded = upsampled(degraded, spec.scale)
        return degraded, clean, task


def region_blocks(
    scene: Any,
    roles: np.ndarray,
    role: int,
    block: int,
    value_range: tuple[float, float],
    degradation: Degradation,
    seed: int,
    index: int = 0,
) -> Any:
    """``(degraded, clean)`` of every whole ``block``-px block of ``role`` (scaled, the input
    on its own grid), each drawn by a seed of its own: every method scored on a region sees
    the same inputs. ``index`` tells several scenes' blocks apart."""
    origins = crop_origins(roles == role, block)
    origins = origins[(origins[:, 0] % block == 0) & (origins[:, 1] % block == 0)]
    sampler = CropSampler(scene, origins, block, value_range, [degradation], seed=seed)
    for number, (row, col) in enumerate(origins):
        degraded, clean, _ = sampler.crop(
            int(row), int(col), 0, seed * 1_000_003 + 10_000 * index + number
        )
        yield degraded, clean


def upsampled(cube: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upsampling by ``scale`` (as all-in-one models take coarse inputs)."""
    import torch

    x = torch.from_numpy(cube)[None]
    return torch.nn.functional.interpolate(
        x, scale_factor=scale, mode="bicubic", align_corners=False
    )[0].numpy()
