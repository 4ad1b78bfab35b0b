"""Streamed restoration: the restored cube as a lazy Scene, made tile by tile and blended.

The scene is cut into ``tile × tile`` tiles, each read with ``overlap`` pixels of its
neighbours on every side. Across each seam the two (or four) tiles' outputs are mixed with
linear ramps that sum to one over the central ``overlap`` pixels, so no seam shows; the outer
half of every overlap is context only, so no output pixel that counts was made at a tile's
edge, where the network saw padding instead of the scene.
Restored tiles are kept in a small cache of fixed size (the writer asks for windows row by
row), so memory stays flat in the scene's size. Super-resolution scales every output
coordinate by the head's scale: the same bounds, pixels ``scale`` times smaller.

Values go to the network scaled to the bundle's data range and come back physical (float32);
pixels whose source is nodata stay nodata.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window

from hsikit.errors import InputError
from hsikit.preprocess import match_bands
from hsikit.scene import BandInfo, Scene

#: Restored tiles kept for reuse: a row of tiles for scenes up to this many tiles wide.
CACHED_TILES = 48


def restored_scene(
    scene: Scene,
    restorer: Any,
    *,
    tile: int = 128,
    overlap: int = 16,
    task: int | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> Scene:
    """``scene`` restored by ``restorer`` (a :class:`~hsikit.restorer.Restorer`), lazily."""
    if not 0 <= overlap < tile // 2:
        raise InputError(
            None,
            f"the overlap ({overlap} px) must be under half the tile ({tile} px)",
            "use e.g. --tile 128 --overlap 16",
        )
    bands = _bands_for(scene, restorer)
    s = restorer.meta.scale
    height, width = scene.height * s, scene.width * s
    rows_of_tiles = -(-scene.height // tile)
    cols_of_tiles = -(-scene.width // tile)
    total = rows_of_tiles * cols_of_tiles
    cache: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
    nodata = scene.nodata if scene.nodata is not None and np.isfinite(scene.nodata) else np.nan

    def tile_output(i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(weighted restored values, validity) over tile (i, j)'s output extent."""
        if (i, j) in cache:
            cache.move_to_end((i, j))
            return cache[(i, j)]
        r0, r1 = max(0, i * tile - overlap), min(scene.height, (i + 1) * tile + overlap)
        c0, c1 = max(0, j * tile - overlap), min(scene.width, (j + 1) * tile + overlap)
        values, valid = scene.read(Window(c0, r0, c1 - c0, r1 - r0), bands=bands)
        restored = restorer.restore(np.where(valid, values, _fill(values, valid)), task)
        weight = np.outer(
            _ramp(r0, r1, i, rows_of_tiles, tile, overlap, s),
            _ramp(c0, c1, j, cols_of_tiles, tile, overlap, s),
        )
        valid_out = np.repeat(np.repeat(valid, s, axis=0), s, axis=1)
        cache[(i, j)] = (restored * weight, valid_out)
        if len(cache) > CACHED_TILES:
            cache.popitem(last=False)
        if on_tile is not None:
            on_tile(len(cache), total)
        return cache[(i, j)]

    def read(band_ids: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        out = np.zeros((len(bands), rows.stop - rows.start, cols.stop - cols.start), np.float32)
        valid = np.ones(out.shape[1:], bool)
        first_i = max(0, (rows.start // s - overlap) // tile)
        last_i = min(rows_of_tiles - 1, ((rows.stop - 1) // s + overlap) // tile)
        first_j = max(0, (cols.start // s - overlap) // tile)
        last_j = min(cols_of_tiles - 1, ((cols.stop - 1) // s + overlap) // tile)
        for i in range(first_i, last_i + 1):
            for j in range(first_j, last_j + 1):
                values, tile_valid = tile_output(i, j)
                top = max(0, i * tile - overlap) * s
                left = max(0, j * tile - overlap) * s
                r0, r1 = max(rows.start, top), min(rows.stop, top + values.shape[1])
                c0, c1 = max(cols.start, left), min(cols.stop, left + values.shape[2])
                if r0 >= r1 or c0 >= c1:
                    continue
                target = (
                    slice(r0 - rows.start, r1 - rows.start),
                    slice(c0 - cols.start, c1 - cols.start),
                )
                source = (slice(r0 - top, r1 - top), slice(c0 - left, c1 - left))
                out[(slice(None), *target)] += values[(slice(None), *source)]
                valid[target] &= tile_valid[source]
        out[:, ~valid] = nodata
        return out[band_ids][:, :: rows.step or 1, :: cols.step or 1]

    info = scene.band_info()
    kept = BandInfo.build(
        len(bands),
        wavelength=info.wavelength[bands],
        fwhm=info.fwhm[bands],
        bad_band=info.bad_band[bands],
        name=list(info.name[bands]),
        source=info.source,
    )
    return Scene.from_reader(
        read,
        shape=(len(bands), height, width),
        dtype="float32",
        bands=kept,
        path=scene.path,
        format=f"{scene.format}, restored",
        crs=scene.crs,
        transform=scene.transform @ Affine.scale(1 / s),
        nodata=float(nodata),
        notes=[*scene.notes, f"restored by {restorer.meta.model.name} ({restorer.meta.job})"],
    )


def _bands_for(scene: Scene, restorer: Any) -> np.ndarray:
    """The scene bands the head takes: all of them for a band-agnostic head, else the bundle's
    bands matched by wavelength (or name)."""
    if restorer.band_agnostic:
        return np.arange(scene.count)
    wavelengths = np.asarray([np.nan if w is None else w for w in restorer.meta.band_wavelengths])
    return match_bands(wavelengths, restorer.meta.band_names, scene)


def _fill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """What a nodata pixel shows the network: its band's mean over the tile's valid pixels."""
    if not valid.any():
        return np.zeros_like(values)
    return np.nanmean(np.where(valid, values, np.nan), axis=(1, 2), keepdims=True)


def _ramp(
    start: int, stop: int, index: int, count: int, tile: int, overlap: int, scale: int
) -> np.ndarray:
    """Blending weights along one axis of tile ``index``'s output, from input ``start`` to
    ``stop``: rising across the seam with the previous tile, falling across the one with the
    next (over ``overlap`` pixels centred on the seam), 1 elsewhere; a neighbour's ramp is its
    complement, and the outer ``overlap / 2`` pixels of the tile weigh 0."""
    positions = (np.arange((stop - start) * scale) + 0.5) / scale + start  # input coordinates
    weight = np.ones(positions.size)
    if overlap == 0:
        return weight
    if index > 0:
        edge = index * tile
        weight = np.minimum(weight, np.clip((positions - (edge - overlap / 2)) / overlap, 0, 1))
    if index < count - 1:
        edge = (index + 1) * tile
        weight = np.minimum(weight, np.clip(((edge + overlap / 2) - positions) / overlap, 0, 1))
    return weight


def detect_task(scene: Scene, restorer: Any, windows: int = 4, side: int = 96) -> int:
    """The degradation an all-in-one head's classifier sees in the scene: its class scores
    averaged over a few windows spread over the scene (index into the head's tasks)."""
    import torch

    bands = _bands_for(scene, restorer)
    low, high = restorer.meta.data_range
    high_side, wide_side = min(side, scene.height), min(side, scene.width)
    rows = np.linspace(0, scene.height - high_side, windows).astype(int)
    cols = np.linspace(0, scene.width - wide_side, windows).astype(int)
    model = restorer.model
    device = next(model.parameters()).device
    scores = np.zeros(len(restorer.model.tasks))
    for row, col in zip(rows, cols):
        values, valid = scene.read(Window(int(col), int(row), wide_side, high_side), bands=bands)
        values = np.where(valid, values, _fill(values, valid))
        x = torch.as_tensor((values - low) / (high - low), dtype=torch.float32, device=device)
        with torch.inference_mode():
            scores = scores + torch.softmax(model.classifier(x[None]), dim=1)[0].cpu().numpy()
    return int(np.argmax(scores))
