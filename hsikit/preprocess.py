"""Band selection, per-band standardisation and optional PCA — fitted on training pixels only.

The fitted state is plain arrays (stored in the bundle) plus the identity of the bands used
(wavelength and name), so inference can find the same bands in another scene by wavelength or
name, in any order, and refuse clearly when some are missing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from hsikit.errors import InputError
from hsikit.scene import Scene

#: Two band centres closer than this (nm) are the same band.
WAVELENGTH_TOLERANCE_NM = 1.0


@dataclass
class Preprocessor:
    band_wavelengths: np.ndarray  # nm, NaN if unknown — the bands the model was trained on
    band_names: list[str]
    mean: np.ndarray  # [C]
    std: np.ndarray  # [C]
    components: np.ndarray | None = None  # [k, C] PCA on standardised spectra
    pca_mean: np.ndarray | None = None  # [C]

    @property
    def out_channels(self) -> int:
        return self.mean.size if self.components is None else self.components.shape[0]

    @classmethod
    def fit(
        cls,
        spectra: np.ndarray,
        wavelengths: np.ndarray,
        names: list[str],
        pca: int | None = None,
        seed: int = 0,
    ) -> Preprocessor:
        """``spectra`` is ``[N, C]`` physical values of training pixels only; NaN (a band at
        nodata) is left out of its band's mean and spread, and counts as the mean in PCA."""
        with warnings.catch_warnings():  # a band that is NaN throughout: mean 0, spread 1
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nan_to_num(np.nanmean(spectra, axis=0))
            std = np.nan_to_num(np.nanstd(spectra, axis=0))
        std = np.where(std > 1e-12, std, 1.0)
        components = pca_mean = None
        if pca:
            from sklearn.decomposition import PCA

            standard = np.nan_to_num((spectra - mean) / std)
            model = PCA(n_components=min(pca, *standard.shape), random_state=seed).fit(standard)
            components, pca_mean = model.components_, model.mean_
        return cls(np.asarray(wavelengths, float), list(names), mean, std, components, pca_mean)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """``[C, ...]`` physical values of the matched bands → ``[k, ...]`` model input; a
        missing value (NaN) is the training mean, so one missing band does not void a pixel's
        principal components."""
        shape = values.shape[1:]
        flat = values.reshape(values.shape[0], -1)
        flat = np.where(np.isnan(flat), self.mean[:, None], flat)
        standard = (flat - self.mean[:, None]) / self.std[:, None]
        if self.components is not None and self.pca_mean is not None:
            standard = self.components @ (standard - self.pca_mean[:, None])
        return standard.reshape(-1, *shape).astype("float32")

    def dark_point(self) -> np.ndarray:
        """``[k]`` model input of an all-zero spectrum: ``transform`` is affine, so a spectrum
        scaled by ``s`` maps to this point plus ``s`` times its input's offset from it."""
        return self.transform(np.zeros((self.mean.size, 1)))[:, 0]

    def guide(self, block: np.ndarray, components: int) -> np.ndarray:
        """``[C, h, w]`` guide image for edge-preserving smoothing from a transformed block: the
        first ``components`` principal components, or without PCA the mean standardised band
        (one channel). Both are
        scaled by the band count so their spread is about one for any sensor, and one ε suits
        all."""
        if self.components is not None:
            return block[:components] / np.sqrt(self.mean.size)
        return block.mean(axis=0, keepdims=True)

    def state(self) -> dict[str, np.ndarray]:
        out = {"mean": self.mean, "std": self.std, "band_wavelengths": self.band_wavelengths}
        if self.components is not None:
            out["components"] = self.components
            if self.pca_mean is not None:
                out["pca_mean"] = self.pca_mean
        return out

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], names: list[str]) -> Preprocessor:
        return cls(
            arrays["band_wavelengths"],
            names,
            arrays["mean"],
            arrays["std"],
            arrays.get("components"),
            arrays.get("pca_mean"),
        )

    def match_bands(self, scene: Scene) -> np.ndarray:
        """Indices of the scene's bands, in training order: by wavelength, else by name."""
        return match_bands(self.band_wavelengths, self.band_names, scene)

    def subset(self, scene: Scene) -> tuple[Preprocessor, np.ndarray]:
        """For band-count agnostic models: the training bands this scene has (by wavelength),
        as a preprocessor restricted to them, and their scene indices."""
        if self.components is not None:  # PCA mixes every band: all of them are needed
            return self, self.match_bands(scene)
        scene_wl = np.where(np.isfinite(scene.wavelengths), scene.wavelengths, np.inf)
        kept, indices = [], []
        for position, target in enumerate(self.band_wavelengths):
            distance = np.abs(scene_wl - target)
            if distance.size and distance.min() <= WAVELENGTH_TOLERANCE_NM:
                kept.append(position)
                indices.append(int(distance.argmin()))
        if len(kept) < 2:
            self.match_bands(scene)  # raises the sentence that lists the missing bands
        keep = np.asarray(kept)
        return Preprocessor(
            self.band_wavelengths[keep],
            [self.band_names[i] for i in keep],
            self.mean[keep],
            self.std[keep],
        ), np.asarray(indices)


def good_bands(scene: Scene) -> np.ndarray:
    """The scene's bands not flagged bad: what a model is trained on."""
    good = np.flatnonzero(~scene.bad_bands)
    return good if good.size else np.arange(scene.count)


def good_band_identity(scene: Scene) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The good bands' indices, wavelengths (nm) and names: how a model names its bands."""
    chosen = good_bands(scene)
    return chosen, scene.wavelengths[chosen], [str(n) for n in scene.band_values("name")[chosen]]


def match_bands(wavelengths: np.ndarray, band_names: list[str], scene: Scene) -> np.ndarray:
    """Indices of ``scene``'s bands equal to the given ones: by wavelength (within 1 nm), by
    name only for a band without one (generic names like ``band_1`` say nothing about a
    scene without wavelengths: that is ``--bands-by-position``, asked for)."""
    wl, names = scene.wavelengths, [str(n) for n in scene.band_values("name")]
    found, missing = [], []
    for target_wl, target_name in zip(wavelengths, band_names):
        index = None
        if np.isfinite(target_wl):  # a band with a wavelength is that wavelength, whatever its name
            distance = np.abs(np.where(np.isfinite(wl), wl, np.inf) - target_wl)
            if distance.min() <= WAVELENGTH_TOLERANCE_NM:
                index = int(distance.argmin())
        elif target_name in names:
            index = names.index(target_name)
        if index is None:
            missing.append(f"{target_wl:.1f} nm" if np.isfinite(target_wl) else target_name)
        else:
            found.append(index)
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        raise InputError(
            scene.path,
            f"the scene lacks {len(missing)} of the model's {len(band_names)} bands: {shown}",
            "use a scene from the same sensor, with its wavelengths",
        )
    return np.asarray(found, dtype=int)
