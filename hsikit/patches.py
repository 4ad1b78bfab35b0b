"""Spectral-spatial patches around pixels, and the halo window grid for streaming.

Training and inference share one path: read a window plus a halo of ``P // 2`` pixels (reflect
padding where the halo leaves the scene), preprocess the block, then cut ``P × P`` patches for the
pixels wanted — as strided views, copied one batch at a time, never one Python loop per pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from rasterio.windows import Window

from hsikit.scene import Scene

#: Pixels per side of the windows a scene is streamed in (training reads and mapping).
STREAM_WINDOW = 256


@dataclass(frozen=True)
class HaloWindow:
    """``core`` is what gets predicted; ``read`` is core + halo clipped to the scene;
    ``pad`` is (top, bottom, left, right) reflect padding to restore the full halo."""

    core: Window
    read: Window
    pad: tuple[int, int, int, int]


def around(core: Window, halo: int, height: int, width: int) -> HaloWindow:
    """``core`` with a halo of ``halo`` pixels, clipped to a ``height × width`` scene."""
    row, col, h, w = core.row_off, core.col_off, core.height, core.width
    r0, r1 = max(0, row - halo), min(height, row + h + halo)
    c0, c1 = max(0, col - halo), min(width, col + w + halo)
    pad = (halo - (row - r0), halo - (r1 - row - h), halo - (col - c0), halo - (c1 - col - w))
    return HaloWindow(core, Window(c0, r0, c1 - c0, r1 - r0), pad)


def halo_windows(height: int, width: int, size: int, halo: int) -> Iterator[HaloWindow]:
    for row in range(0, height, size):
        for col in range(0, width, size):
            core = Window(col, row, min(size, width - col), min(size, height - row))
            yield around(core, halo, height, width)


def pad_block(block: np.ndarray, pad: tuple[int, int, int, int]) -> np.ndarray:
    """Reflect-pad a ``[C, h, w]`` block; falls back to edge padding for blocks thinner than the
    pad (reflect needs at least pad + 1 pixels)."""
    top, bottom, left, right = pad
    if not any(pad):
        return block
    widths = ((0, 0), (top, bottom), (left, right))
    small = block.shape[1] <= max(top, bottom) or block.shape[2] <= max(left, right)
    return np.pad(block, widths, mode="edge" if small else "reflect")


@dataclass
class BandGaps:
    """Valid pixels where some good bands hold the nodata value: classified from values that
    are not data, so a map run counts them (the worst pixel too) and says so."""

    pixels: int = 0
    worst: int = 0
    bands: int = 0

    def add(self, counts: np.ndarray, bands: int) -> None:
        self.pixels += int(np.count_nonzero(counts))
        self.worst = max(self.worst, int(counts.max(initial=0)))
        self.bands = bands


def read_block(
    scene: Scene,
    window: HaloWindow,
    bands: np.ndarray,
    transform: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Preprocessed ``[k, h + 2r, w + 2r]`` block around ``window.core``, the core valid mask
    and, per core pixel, how many of its bands hold the nodata value (see :class:`BandGaps`).

    Invalid pixels are zero after preprocessing (the training mean), so a neighbour that is nodata
    contributes nothing rather than a NaN. Bands at nodata in a valid pixel are not data either:
    the preprocessing fills them with the training mean, never with the nodata value.
    """
    values, valid = scene.read(window.read, bands=bands)
    r_off = window.core.row_off - window.read.row_off
    c_off = window.core.col_off - window.read.col_off
    core = (
        slice(r_off, r_off + window.core.height),
        slice(c_off, c_off + window.core.width),
    )
    gaps = scene.nodata_in_bands(values, bands)
    gap_counts = gaps[(slice(None), *core)].sum(axis=0)
    values[gaps] = np.nan
    block = np.nan_to_num(transform(values), nan=0.0)
    block[:, ~valid] = 0.0
    block = pad_block(block, window.pad)
    return block.astype("float32", copy=False), valid[core], gap_counts


def patches_at(block: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """``[n, C, P, P]`` patches centred on core pixels (rows, cols) of a halo-padded block.

    With a halo of ``P // 2``, view index ``(i, j)`` is exactly the patch centred on core pixel
    ``(i, j)``, so core coordinates index the views directly.
    """
    views = sliding_window_view(block, (size, size), axis=(1, 2))  # [C, h, w, P, P] views
    return np.ascontiguousarray(views[:, rows, cols].transpose(1, 0, 2, 3))


def batched_pixels(mask: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows, cols) of the True pixels of ``mask``, ``batch_size`` at a time."""
    rows, cols = np.nonzero(mask)
    for start in range(0, rows.size, batch_size):
        yield rows[start : start + batch_size], cols[start : start + batch_size]
