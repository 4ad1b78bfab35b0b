"""Streamed prediction over a scene: halo window → preprocessing → batched patches → window write.

Memory is bounded by the window and batch sizes, not by the scene: nothing holds an H×W×K
probability array, and each window's probabilities are written and dropped before the next.
Nodata pixels are never classified; they stay 0 (nodata) in every output. A bundle with
smoothing predicts a margin around each window so that windows join seamlessly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from hsikit.bundle import Bundle
from hsikit.errors import InputError
from hsikit.patches import (
    STREAM_WINDOW,
    BandGaps,
    HaloWindow,
    around,
    batched_pixels,
    halo_windows,
    patches_at,
    read_block,
)
from hsikit.predict.batching import dense_pixels, patch_batch
from hsikit.predict.pipeline import Stopwatch, WriteBehind, prefetched
from hsikit.scene import Scene
from hsikit.smoothing import guided_filter
from hsikit.spectral_resampling import adaptation
from hsikit.writers.classmap import CLASS_NODATA, ClassMapWriter
from hsikit.writers.provenance import precision_fact, provenance

PREDICT_BATCH = 2048


def predict_batches(bundle_like, x: np.ndarray) -> np.ndarray:
    """``[N, K]`` class probabilities of ``[N, C, P, P]`` patches, a batch at a time."""
    out = [
        bundle_like.predict_proba(x[i : i + PREDICT_BATCH]) for i in range(0, len(x), PREDICT_BATCH)
    ]
    return np.concatenate(out) if out else np.empty((0, 0))


def window_scores(
    scene: Scene,
    bundle: Bundle,
    *,
    window: int = STREAM_WINDOW,
    batch_size: int | None = None,
    only: set[tuple[int, int]] | None = None,
    shared: bool = True,
    timings: dict[str, float] | None = None,
    gaps: BandGaps | None = None,
) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """(window, ``[K, h, w]`` class probabilities, ``[h, w]`` valid mask) across the scene, as
    the map gets them: with the bundle's smoothing, probabilities are predicted over the window
    plus the filter's margin, filtered, then cut back. Invalid pixels have all-zero scores.
    ``only``: the (row, col) offsets of the windows wanted; the others are skipped. The next
    window is read while this one is computed. ``shared=False`` forces the patch-by-patch path
    even for a network that maps whole windows (what the shared path is checked against).
    ``timings`` (seconds) gets what reading, preprocessing and the model took, for profiles.
    ``batch_size`` None: patches (or pixels) per forward pass chosen by the model's memory.
    ``gaps`` counts the valid pixels with some bands at nodata."""
    bundle, bands = bundle.for_scene(scene)
    patch, smoothing = bundle.meta.patch_size, bundle.meta.smoothing
    margin = smoothing.margin if smoothing is not None else 0
    dense = shared and bundle.maps_densely
    per_pixel = shared and not dense and bundle.shares_pixels
    if dense:
        pixels_per_pass = dense_pixels(bundle) if batch_size is None else batch_size
    elif batch_size is None:
        batch_size = patch_batch(bundle)
    wanted = (
        outer
        for outer in halo_windows(scene.height, scene.width, window, margin)
        if only is None or (outer.core.row_off, outer.core.col_off) in only
    )

    clock = Stopwatch(timings)

    def read(outer: HaloWindow) -> tuple[HaloWindow, np.ndarray, np.ndarray, np.ndarray]:
        around_it = around(outer.read, patch // 2, scene.height, scene.width)
        with clock("read"):
            block, valid, gap_counts = read_block(
                scene,
                around_it,
                bands,
                clock.timed("preprocess", bundle.preprocessor.transform),
            )
        clock.add("read", -clock.last("preprocess"))
        return outer, block, valid, gap_counts

    for outer, block, valid, gap_counts in prefetched(map(read, wanted)):
        core, region = outer.core, outer.read  # region: the core and its margin, in the scene
        (r0, r1), (c0, c1) = core.toranges()
        with clock("forward"):
            if dense:
                scores = bundle.dense_proba(block, valid.shape, pixels_per_pass)
                scores[:, ~valid] = 0.0
            else:
                pixels = bundle.pixel_features(block) if per_pixel else block
                scores = np.zeros((len(bundle.classes), *valid.shape), np.float32)
                for rows, cols in batched_pixels(valid, batch_size or 1):
                    patches = patches_at(pixels, rows, cols, patch)
                    scores[:, rows, cols] = bundle.predict_proba(patches, per_pixel).T
        if smoothing is not None:
            half = patch // 2
            guide = bundle.preprocessor.guide(
                block[:, half : half + valid.shape[0], half : half + valid.shape[1]],
                smoothing.guide,
            )
            scores = guided_filter(guide, scores, valid, smoothing)
        cut = (
            slice(r0 - region.row_off, r1 - region.row_off),
            slice(c0 - region.col_off, c1 - region.col_off),
        )
        if gaps is not None:
            gaps.add(gap_counts[cut], len(bands))
        yield core, scores[(slice(None), *cut)], valid[cut]


def map_scores(bundle: Bundle, where: np.ndarray, scenes: Sequence[Scene]) -> np.ndarray:
    """``[N, K]`` class probabilities of chosen pixels exactly as the maps give them (smoothing
    included); ``where`` holds (scene index, row, col) per pixel."""
    out = np.zeros((len(where), len(bundle.classes)), np.float32)
    for index, scene in enumerate(scenes):
        pick = np.flatnonzero(where[:, 0] == index)
        rows, cols = where[pick, 1], where[pick, 2]
        key_rows, key_cols = (
            rows // STREAM_WINDOW * STREAM_WINDOW,
            cols // STREAM_WINDOW * STREAM_WINDOW,
        )
        wanted = set(zip(key_rows.tolist(), key_cols.tolist()))
        for core, scores, _ in window_scores(scene, bundle, only=wanted):
            inside = (key_rows == core.row_off) & (key_cols == core.col_off)
            out[pick[inside]] = scores[
                :, rows[inside] - core.row_off, cols[inside] - core.col_off
            ].T
    return out


def nothing_to_map(path: str) -> InputError:
    """The refusal of a scene without a single valid pixel."""
    return InputError(
        path,
        "no pixel of the scene is valid (every one is nodata or not a finite number), "
        "so there is nothing to map",
        "check the scene's nodata value and its bands",
    )


def classify_scene(
    scene: Scene,
    bundle: Bundle,
    output: str | Path,
    *,
    window: int = STREAM_WINDOW,
    batch_size: int | None = None,
    confidence: bool = False,
    probabilities: bool = False,
    on_window: Callable[[int, int], None] | None = None,
    shared: bool = True,
    timings: dict[str, float] | None = None,
) -> dict:
    """Write the class map (and optional confidence / probabilities) for ``scene``; a scene
    without a single valid pixel is refused and nothing is written."""
    table = bundle.classes
    values = np.asarray(table.values)
    total = -(-scene.height // window) * -(-scene.width // window)
    classified, gaps = 0, BandGaps()
    tags = provenance(
        source=scene.path,
        model=bundle.meta.model.name,
        bundle=bundle.path,
        bundle_sha256=bundle.sha256(),
        precision=precision_fact(bundle.precision),
        bands=adaptation(scene),
    )
    with (
        ClassMapWriter(
            output, scene.grid, table, confidence=confidence, probabilities=probabilities, tags=tags
        ) as writer,
        WriteBehind(Stopwatch(timings).timed("write", writer.write)) as behind,
    ):
        windows = window_scores(
            scene,
            bundle,
            window=window,
            batch_size=batch_size,
            shared=shared,
            timings=timings,
            gaps=gaps,
        )
        for done, (core, scores, valid) in enumerate(windows, start=1):
            classes = np.where(valid, values[scores.argmax(axis=0)], CLASS_NODATA)
            classified += int(valid.sum())
            behind.submit(
                core,
                classes,
                confidence=scores.max(axis=0) if confidence else None,
                probabilities=scores if probabilities else None,
            )
            if on_window is not None:
                on_window(done, total)
        if classified == 0:
            raise nothing_to_map(scene.path)
    return {
        "pixels": scene.width * scene.height,
        "classified": classified,
        "nodata": scene.width * scene.height - classified,
        "partly_nodata": gaps.pixels,
        "most_nodata_bands": gaps.worst,
        "bands": gaps.bands,
    }
