"""Classical restoration baselines for the restoration benchmark, on ``[C, h, w]`` cubes scaled
to the data range: the anchors a learned head must beat.

- ``input``: the degraded input itself (the first row of every denoising setting).
- ``bicubic``: super-resolution by bicubic interpolation (the input of the SR rows).
- ``tv``: spectral-spatial total variation (Chambolle; the cube as one 3-D volume).
- ``wavelet``: per-band BayesShrink wavelet thresholding (its threshold is set from the data).
- ``pca``: low-rank truncation, the cube's pixels projected on its leading principal spectra.
- ``bm4d``: BM4D with the noise level estimated from the cube (the ``bench`` extra).

A baseline with a free parameter (TV weight, PCA rank) has it chosen once per setting on the
validation region, never on the test region; noise levels are estimated from the degraded
input itself, so every baseline is as blind as the learned heads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hsikit.data.crops import upsampled
from hsikit.errors import InputError

#: Candidate parameters tried on the validation region: TV weight as a multiple of the
#: estimated noise σ, PCA rank.
GRIDS: dict[str, Sequence[float]] = {"tv": (0.5, 1.0, 2.0, 4.0), "pca": (4, 8, 16, 32)}
DENOISERS = ("tv", "wavelet", "pca", "bm4d")


def noise_sigma(cube: np.ndarray) -> float:
    """The noise σ of a cube, averaged over bands (wavelet MAD estimate)."""
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(cube, channel_axis=0, average_sigmas=True))


def _tv(cube: np.ndarray, factor: float) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(cube, weight=factor * noise_sigma(cube))


def _wavelet(cube: np.ndarray, _: float | None) -> np.ndarray:
    from skimage.restoration import denoise_wavelet

    return denoise_wavelet(cube, channel_axis=0, method="BayesShrink", mode="soft")


def _pca(cube: np.ndarray, rank: float) -> np.ndarray:
    pixels = cube.reshape(cube.shape[0], -1).T.astype(np.float64)
    mean = pixels.mean(axis=0)
    _, _, basis = np.linalg.svd(pixels - mean, full_matrices=False)
    kept = basis[: int(rank)]
    return (((pixels - mean) @ kept.T) @ kept + mean).T.reshape(cube.shape)


def _bm4d(cube: np.ndarray, _: float | None) -> np.ndarray:
    try:
        import bm4d
    except ImportError as exc:
        raise InputError(
            None,
            "the BM4D baseline needs the bm4d package",
            "pip install 'hsikit[bench]', or leave bm4d out of the job's baselines",
        ) from exc
    volume = np.ascontiguousarray(cube.transpose(1, 2, 0))
    return np.asarray(bm4d.bm4d(volume, max(noise_sigma(cube), 1e-4))).transpose(2, 0, 1)


def _bicubic(cube: np.ndarray, scale: float | None) -> np.ndarray:
    return upsampled(cube.astype(np.float32), int(scale or 1))


METHODS: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "input": lambda cube, _: cube,
    "tv": _tv,
    "wavelet": _wavelet,
    "pca": _pca,
    "bm4d": _bm4d,
    "bicubic": _bicubic,
}


def baseline(name: str, parameter: float | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The baseline ``name`` with its parameter fixed: scaled cube in → restored cube out."""
    method = METHODS[name]
    return lambda cube: np.asarray(method(cube, parameter), np.float32)


def tuned_parameter(
    name: str,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    score: Callable[[np.ndarray, np.ndarray], float],
) -> float | None:
    """The grid value of baseline ``name`` with the best mean ``score(clean, restored)`` over
    validation ``(degraded, clean)`` pairs; None for a baseline without a parameter."""
    if name not in GRIDS:
        return None
    means = [
        np.mean([score(clean, baseline(name, value)(degraded)) for degraded, clean in pairs])
        for value in GRIDS[name]
    ]
    return float(GRIDS[name][int(np.argmax(means))])
