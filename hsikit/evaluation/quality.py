"""Restoration quality of a cube against its reference, on valid pixels only, accumulated
window by window so a scene of any size is scored in bounded memory.

- **MPSNR**: the mean over bands of ``10 log10(1 / MSE_b)`` with both cubes scaled to the
  reference's data range (as σ is stated: ``degrade.data_range``), so a band's peak is 1.
- **MSSIM**: the mean over bands of SSIM (torchmetrics: Gaussian window 11, σ 1.5) on the
  scaled cubes, per window, averaged with the windows' valid pixels as weights; invalid pixels
  are set to the same value in both cubes.
- **SAM**: the mean spectral angle between result and reference spectra, in degrees.
- **ERGAS**: ``100 / ratio · sqrt(mean_b (RMSE_b / μ_b)²)``, μ_b the reference band's mean
  and ``ratio`` the super-resolution scale (1 for denoising), as torchmetrics defines it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class QualityAccumulator:
    """Sums over windows of ``bands``-band cubes; ``result()`` gives the four metrics."""

    bands: int
    data_range: tuple[float, float]
    ratio: float = 1.0
    pixels: int = 0
    angle_sum: float = 0.0
    ssim_sum: float = 0.0
    ssim_weight: float = 0.0
    squared_error: np.ndarray = field(init=False)  # per band, on the scaled cubes
    physical_error: np.ndarray = field(init=False)  # per band, physical units (ERGAS)
    reference_sum: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.squared_error = np.zeros(self.bands)
        self.physical_error = np.zeros(self.bands)
        self.reference_sum = np.zeros(self.bands)

    def update(self, reference: np.ndarray, result: np.ndarray, valid: np.ndarray) -> None:
        """Add a window: ``[C, h, w]`` physical values of both cubes, ``[h, w]`` validity."""
        count = int(valid.sum())
        if count == 0:
            return
        low, high = self.data_range
        ref = reference[:, valid].astype(np.float64)
        out = result[:, valid].astype(np.float64)
        self.physical_error += ((out - ref) ** 2).sum(axis=1)
        self.squared_error += (((out - ref) / (high - low)) ** 2).sum(axis=1)
        self.reference_sum += ref.sum(axis=1)
        self.pixels += count
        dot = (ref * out).sum(axis=0)
        norms = np.linalg.norm(ref, axis=0) * np.linalg.norm(out, axis=0)
        cosine = np.clip(dot / np.maximum(norms, 1e-30), -1.0, 1.0)
        self.angle_sum += float(np.degrees(np.arccos(cosine)).sum())
        if min(valid.shape) >= 11:
            self.ssim_sum += _mean_ssim(reference, result, valid, low, high) * count
            self.ssim_weight += count

    def result(self) -> dict[str, float]:
        if self.pixels == 0:
            raise ValueError("no valid pixel was compared")
        mse = self.squared_error / self.pixels
        psnr = 10 * np.log10(1.0 / np.maximum(mse, 1e-20))
        rmse = np.sqrt(self.physical_error / self.pixels)
        mean = self.reference_sum / self.pixels
        ergas = (
            100.0 / self.ratio * np.sqrt(np.mean((rmse / np.where(mean != 0, mean, np.nan)) ** 2))
        )
        return {
            "mpsnr": float(psnr.mean()),
            "mssim": float(self.ssim_sum / self.ssim_weight) if self.ssim_weight else float("nan"),
            "sam_deg": self.angle_sum / self.pixels,
            "ergas": float(ergas),
            "pixels": self.pixels,
        }


def _mean_ssim(
    reference: np.ndarray, result: np.ndarray, valid: np.ndarray, low: float, high: float
) -> float:
    """Band-averaged SSIM of one window (torchmetrics), invalid pixels equal in both."""
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure

    ref = np.where(valid, (reference - low) / (high - low), 0.0)
    out = np.where(valid, (result - low) / (high - low), 0.0)
    as_batch = lambda a: torch.as_tensor(a, dtype=torch.float64)[:, None]  # noqa: E731
    ssim = structural_similarity_index_measure(as_batch(out), as_batch(ref), data_range=1.0)
    assert isinstance(ssim, torch.Tensor)  # one value: the mean over the bands
    return float(ssim)


def quality(
    reference: np.ndarray,
    result: np.ndarray,
    valid: np.ndarray,
    data_range: tuple[float, float],
    ratio: float = 1.0,
) -> dict[str, float]:
    """The four metrics of whole in-memory cubes (test regions, tests)."""
    accumulator = QualityAccumulator(reference.shape[0], data_range, ratio)
    accumulator.update(reference, result, valid)
    return accumulator.result()


def compare_scenes(reference: Any, result: Any, ratio: float = 1.0) -> dict[str, Any]:
    """The four metrics of ``result`` against ``reference`` over their whole grid, window by
    window: bands matched by wavelength (else name), pixels valid in both."""
    from hsikit.degrade import data_range
    from hsikit.errors import InputError
    from hsikit.preprocess import match_bands

    same_grid = (
        (reference.height, reference.width) == (result.height, result.width)
        and reference.crs == result.crs
        and reference.transform.almost_equals(result.transform)
    )
    if not same_grid:
        raise InputError(
            result.path,
            f"the result's grid ({result.height} × {result.width}, "
            f"{result.crs or 'no CRS'}) is not the reference's ({reference.height} "
            f"× {reference.width}, {reference.crs or 'no CRS'})",
            "compare cubes on the same grid (same size, CRS and transform)",
        )
    wavelengths = reference.wavelengths
    names = [str(n) for n in reference.band_values("name")]
    matched = match_bands(wavelengths, names, result)
    accumulator = QualityAccumulator(reference.count, data_range(reference), ratio)
    for window in reference.windows(256):
        ref, ref_valid = reference.read(window)
        out, out_valid = result.read(window, bands=matched)
        accumulator.update(ref, out, ref_valid & out_valid)
    try:
        metrics = accumulator.result()
    except ValueError:
        raise InputError(
            result.path,
            "no pixel is valid in both cubes",
            "check that they cover the same area and their nodata",
        ) from None
    return {**metrics, "bands": int(reference.count), "data_range": list(accumulator.data_range)}
