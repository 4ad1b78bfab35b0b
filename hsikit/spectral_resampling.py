"""A scene's bands as a model's bands, when they are not the same bands: opt-in only.

Two ways, each asked for by a flag and written into the output's provenance:

* **resampling** (``--resample-bands``): each model band is a weighted sum of the scene's
  bands. With the scene's FWHM known, the weights are the overlap of Gaussian response
  functions (the scene band's and the model band's, whose FWHM is the model's band spacing,
  since the bundle records centres only); without it, linear interpolation between the two
  nearest scene bands. A model band no scene band reaches is refused, never extrapolated.
* **by position** (``--bands-by-position``): a scene without any spectral metadata (a
  ``gdalbuildvrt`` mosaic) whose band count is the model's takes the model's bands in order.

The result is a lazy :class:`~hsikit.scene.Scene` with the model's bands, so every mapping
path reads it as it reads any scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from rasterio.windows import Window

from hsikit.errors import InputError
from hsikit.preprocess import WAVELENGTH_TOLERANCE_NM
from hsikit.scene import BandInfo, Scene

if TYPE_CHECKING:
    from hsikit.bundle import Bundle

#: FWHM = 2 √(2 ln 2) σ for a Gaussian.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: A model band is covered when a scene band lies within this many of its FWHM.
REACH_FWHM = 1.5
#: Weights below this fraction of a model band's largest are dropped (fewer bands read).
WEIGHT_FLOOR = 1e-3
#: The width given to a lone band, which has no neighbours to measure it by (a typical
#: imaging-spectrometer FWHM).
LONE_BAND_WIDTH_NM = 10.0
#: The scene attribute that records how its bands were made the model's.
ADAPTATION_ATTR = "hsikit_band_adaptation"


@dataclass(frozen=True)
class Resampling:
    """``weights[m, k]``: model band ``m`` from scene band ``sources[k]``; ``method``: how."""

    sources: np.ndarray
    weights: np.ndarray
    method: str


def band_spacing(centres: np.ndarray) -> np.ndarray:
    """Each band's distance to its neighbours (mean of both sides): its width when the
    sensor samples contiguously, as imaging spectrometers do."""
    order = np.argsort(centres)
    sorted_wl = centres[order]
    if sorted_wl.size < 2:
        return np.full(centres.shape, LONE_BAND_WIDTH_NM)
    widths = np.gradient(sorted_wl)
    out = np.empty_like(widths)
    out[order] = np.maximum(widths, WAVELENGTH_TOLERANCE_NM)
    return out


def gaussian_weights(
    source_wl: np.ndarray, source_fwhm: np.ndarray, target_wl: np.ndarray, target_fwhm: np.ndarray
) -> np.ndarray:
    """``[T, S]`` overlap integrals of Gaussian responses, each row summing to 1."""
    variance = (source_fwhm[None, :] ** 2 + target_fwhm[:, None] ** 2) / FWHM_PER_SIGMA**2
    offset = source_wl[None, :] - target_wl[:, None]
    overlap = np.exp(-0.5 * offset**2 / variance) / np.sqrt(variance)
    return overlap / overlap.sum(axis=1, keepdims=True)


def interpolation_weights(source_wl: np.ndarray, target_wl: np.ndarray) -> np.ndarray:
    """``[T, S]`` linear interpolation between the two scene bands around each model band."""
    order = np.argsort(source_wl)
    sorted_wl = source_wl[order]
    weights = np.zeros((target_wl.size, source_wl.size))
    for row, centre in enumerate(target_wl):
        right = int(np.clip(np.searchsorted(sorted_wl, centre), 1, sorted_wl.size - 1))
        left = right - 1
        span = sorted_wl[right] - sorted_wl[left]
        share = np.clip((centre - sorted_wl[left]) / span, 0.0, 1.0) if span > 0 else 0.0
        weights[row, order[left]] += 1.0 - share
        weights[row, order[right]] += share
    return weights


def resampling_for(scene: Scene, target_wl: np.ndarray) -> Resampling:
    """How to make ``target_wl`` (nm) from ``scene``'s good bands; refused when the scene has
    no wavelengths or some model band lies beyond every scene band."""
    usable = np.flatnonzero(~scene.bad_bands & np.isfinite(scene.wavelengths))
    if usable.size < 2:
        raise InputError(
            scene.path,
            "the scene has no band wavelengths, so its bands cannot be resampled",
            "give the scene its wavelengths, or use --bands-by-position when its bands are "
            "the model's bands in order",
        )
    source_wl = scene.wavelengths[usable]
    source_fwhm = scene.band_values("fwhm")[usable]
    target_fwhm = band_spacing(target_wl)
    distance = np.abs(source_wl[None, :] - target_wl[:, None])
    nearest = distance.argmin(axis=1)
    reach = REACH_FWHM * np.maximum(target_fwhm, band_spacing(source_wl)[nearest])
    unreached = distance.min(axis=1) > reach
    if unreached.any():
        shown = ", ".join(f"{wl:.1f} nm" for wl in target_wl[unreached][:8])
        more = f" and {unreached.sum() - 8} more" if unreached.sum() > 8 else ""
        raise InputError(
            scene.path,
            f"{int(unreached.sum())} of the model's {target_wl.size} bands lie where the "
            f"scene has no good band (its bands span {source_wl.min():.1f}–"
            f"{source_wl.max():.1f} nm): {shown}{more}",
            "use a scene whose bands span the model's",
        )
    if np.isfinite(source_fwhm).all() and (source_fwhm > 0).all():
        weights = gaussian_weights(source_wl, source_fwhm, target_wl, target_fwhm)
        method = "Gaussian response functions (scene FWHM; model FWHM = its band spacing)"
    else:
        weights, method = interpolation_weights(source_wl, target_wl), "linear interpolation"
    weights = np.where(weights >= WEIGHT_FLOOR * weights.max(axis=1, keepdims=True), weights, 0)
    weights /= weights.sum(axis=1, keepdims=True)
    used = np.flatnonzero(weights.any(axis=0))
    return Resampling(usable[used], weights[:, used].astype("float32"), method)


def resampled_scene(scene: Scene, target_wl: np.ndarray, target_names: list[str]) -> Scene:
    """``scene`` seen through the model's bands (float32, NaN nodata), read lazily: each window
    reads only the scene bands its model bands need."""
    if not np.isfinite(target_wl).all():
        raise InputError(
            scene.path,
            "the model's bands have no wavelengths, so nothing can be resampled to them",
            "map a scene with the model's own bands",
        )
    plan = resampling_for(scene, target_wl)

    def read(bands: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        weights = plan.weights[bands]
        needed = np.flatnonzero(weights.any(axis=0))
        window = Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
        values, _ = scene.read(window, bands=plan.sources[needed], step=rows.step or 1)
        flat = values.reshape(needed.size, -1)
        return (weights[:, needed] @ flat).reshape(bands.size, *values.shape[1:])

    info = BandInfo.build(
        target_wl.size,
        wavelength=target_wl,
        fwhm=band_spacing(target_wl),
        name=target_names,
        source=f"{scene.band_info().source}, resampled by {plan.method}",
    )
    resampled = Scene.from_reader(
        read,
        shape=(target_wl.size, scene.height, scene.width),
        dtype="float32",
        bands=info,
        path=scene.path,
        format=scene.format,
        crs=scene.crs,
        transform=scene.transform,
        nodata=float("nan"),
        notes=scene.notes,
        ground_truth=scene.truth,
    )
    shown = f"{len(plan.sources)} scene bands to the model's {target_wl.size} by {plan.method}"
    resampled.data.attrs[ADAPTATION_ATTR] = f"resampled: {shown}"
    return resampled


def bands_by_position(scene: Scene, target_wl: np.ndarray, target_names: list[str]) -> Scene:
    """``scene``'s bands taken as the model's, in order: only for a scene without any band
    wavelength whose band count is the model's (anything else would be a guess)."""
    if np.isfinite(scene.wavelengths).any():
        raise InputError(
            scene.path,
            "the scene has band wavelengths, so its bands are matched by wavelength, "
            "not by position",
            "use --resample-bands when its bands differ from the model's",
        )
    if scene.count != target_wl.size:
        raise InputError(
            scene.path,
            f"the scene has {scene.count} bands and the model {target_wl.size}, so bands "
            "cannot be taken by position",
            "the model's bands are its training scene's good bands: give a scene with exactly "
            "those, or one with wavelengths (a VRT mosaic takes them from its tiles when they "
            "carry them)",
        )
    info = scene.band_info()
    info.wavelength = np.asarray(target_wl, float).copy()
    info.name = np.asarray(target_names, dtype=object)
    info.source = "the model's bands, taken by position"
    adapted = scene.with_band_info(info)
    adapted.data.attrs[ADAPTATION_ATTR] = (
        f"by position: scene band 1 = {target_wl[0]:.1f} nm … band {scene.count} = "
        f"{target_wl[-1]:.1f} nm"
    )
    return adapted


def adaptation(scene: Scene) -> str | None:
    """How the scene's bands were made the model's (for provenance), None when they are its own."""
    value = scene.data.attrs.get(ADAPTATION_ATTR)
    return None if value is None else str(value)


#: How a scene's bands become a bundle's: its own (found by wavelength, else refused),
#: resampled, or taken by position; the latter two only when asked.
BandMode = Literal["own", "resample", "position"]


def band_mode(resample: bool, by_position: bool) -> BandMode:
    """The mode the ``--resample-bands`` / ``--bands-by-position`` flags ask for."""
    if resample and by_position:
        raise InputError(
            None, "--resample-bands and --bands-by-position exclude each other", "choose one"
        )
    return "resample" if resample else "position" if by_position else "own"


def for_bundle(scene: Scene, bundle: Bundle, mode: BandMode = "own") -> Scene:
    """``scene`` with ``bundle``'s bands: its own when the bundle finds them in it, else
    adapted as ``mode`` asks; without a mode the refusal says which flag would help."""
    target_wl = bundle.preprocessor.band_wavelengths
    target_names = bundle.preprocessor.band_names
    if mode == "position":
        return bands_by_position(scene, target_wl, target_names)
    try:
        bundle.for_scene(scene)
        return scene
    except InputError as refused:
        if mode == "resample":
            return resampled_scene(scene, target_wl, target_names)
        has_wavelengths = np.isfinite(scene.wavelengths).any()
        raise InputError(
            refused.path,
            refused.problem,
            f"{refused.hint}, or map it anyway with "
            + (
                "--resample-bands (its bands resampled to the model's)"
                if has_wavelengths
                else "--bands-by-position (the scene has no wavelengths; its bands taken as "
                "the model's, in order, when their counts agree)"
            ),
        ) from refused
