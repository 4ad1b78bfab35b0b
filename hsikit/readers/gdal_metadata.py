"""Spectral band metadata ⇄ GDAL metadata, in the keys GDAL, QGIS and EnMAP-Box read.

Written (and read back, first match wins):

1. ``IMAGERY`` domain per band: ``CENTRAL_WAVELENGTH_UM``, ``FWHM_UM`` (GDAL ≥ 3.10 convention);
2. default domain per band: ``wavelength``, ``wavelength_units``, ``fwhm``, ``bbl``
   (EnMAP-Box convention; ``bad_band_multiplier`` is accepted as an alias of ``bbl``);
3. ``ENVI`` domain on the dataset: ``wavelength = {…}``, ``fwhm``, ``bbl``, ``wavelength_units``.

Band names travel as band descriptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from hsikit.scene import BandInfo

_UNIT_TO_NM = {
    "nanometers": 1.0,
    "nanometer": 1.0,
    "nm": 1.0,
    "micrometers": 1000.0,
    "micrometer": 1000.0,
    "microns": 1000.0,
    "micron": 1000.0,
    "um": 1000.0,
    "µm": 1000.0,
    "mu": 1000.0,
    "millimeters": 1e6,
    "mm": 1e6,
}


#: Unit values that say the unit is not known (ENVI's own "Unknown"): the magnitude decides.
UNKNOWN_UNITS = ("unknown", "")


def nm_factor(units: str | None, values: ArrayLike) -> float:
    """Factor to nanometres; with no unit (or ENVI's ``Unknown``), values under 100 are taken
    as micrometres."""
    if units and units.strip().lower() not in UNKNOWN_UNITS:
        key = units.strip().lower()
        if key in _UNIT_TO_NM:
            return _UNIT_TO_NM[key]
        return float("nan")  # wavenumber, GHz, index …: not a wavelength
    numbers = np.asarray(values, dtype="float64").ravel()
    finite = numbers[np.isfinite(numbers)]
    return 1000.0 if finite.size and finite.max() < 100 else 1.0


def parse_envi_list(text: str) -> list[str]:
    """``"{1, 2, 3}"`` → ``["1", "2", "3"]``."""
    inner = text.strip().removeprefix("{").removesuffix("}")
    return [item.strip() for item in inner.split(",") if item.strip()]


def _floats(items: Sequence[str | None]) -> np.ndarray:
    out = []
    for item in items:
        try:
            out.append(float(item) if item is not None else np.nan)
        except ValueError:
            out.append(np.nan)
    return np.asarray(out, dtype="float64")


def band_info_from_gdal(
    count: int,
    band_tags: Sequence[Mapping[str, str]],
    imagery_tags: Sequence[Mapping[str, str]],
    envi_tags: Mapping[str, str],
    descriptions: Sequence[str | None],
    scales: Sequence[float],
    offsets: Sequence[float],
) -> BandInfo:
    """Best available spectral metadata, in the order documented in this module."""
    names = [d if d else None for d in descriptions]
    name_arg = [n or f"band_{i + 1}" for i, n in enumerate(names)]
    common: dict[str, Any] = dict(name=name_arg, scale=scales, offset=offsets)

    if all("CENTRAL_WAVELENGTH_UM" in t for t in imagery_tags) and count:
        wl = _floats([t["CENTRAL_WAVELENGTH_UM"] for t in imagery_tags]) * 1000.0
        fwhm = _floats([t.get("FWHM_UM") for t in imagery_tags]) * 1000.0
        bbl = _bad_from_bbl([t.get("bbl", t.get("bad_band_multiplier")) for t in band_tags])
        return BandInfo.build(
            count, wavelength=wl, fwhm=fwhm, bad_band=bbl, source="GDAL IMAGERY domain", **common
        )

    if all("wavelength" in t for t in band_tags) and count:
        raw = _floats([t["wavelength"] for t in band_tags])
        factor = nm_factor(band_tags[0].get("wavelength_units"), raw)
        fwhm = _floats([t.get("fwhm") for t in band_tags]) * factor
        bbl = _bad_from_bbl([t.get("bbl", t.get("bad_band_multiplier")) for t in band_tags])
        return BandInfo.build(
            count,
            wavelength=raw * factor,
            fwhm=fwhm,
            bad_band=bbl,
            source="GDAL band metadata",
            **common,
        )

    if "wavelength" in envi_tags:
        raw = _floats(parse_envi_list(envi_tags["wavelength"]))
        if raw.size == count:
            units = envi_tags.get("wavelength_units") or envi_tags.get("wavelength units")
            factor = nm_factor(units, raw)
            envi_fwhm = (
                _floats(parse_envi_list(envi_tags["fwhm"])) * factor
                if "fwhm" in envi_tags
                else None
            )
            bbl = _bad_from_bbl(parse_envi_list(envi_tags["bbl"])) if "bbl" in envi_tags else None
            return BandInfo.build(
                count,
                wavelength=raw * factor,
                fwhm=envi_fwhm,
                bad_band=bbl,
                source="GDAL ENVI domain",
                **common,
            )

    return BandInfo.build(count, source="none", **common)


def _bad_from_bbl(values: Sequence[str | None]) -> np.ndarray | None:
    """ENVI ``bbl``: 1 = good band, 0 = bad band; missing entries are good."""
    if all(v is None for v in values):
        return None
    return np.asarray([v is not None and float(v) == 0 for v in values], dtype=bool)


def _fmt(value: float) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.6g}"


def has_bad_band_list(info: BandInfo) -> bool:
    """Whether a bad band list (``bbl``) means anything: for spectral bands, or when a band is
    flagged bad; weather variables (t2m, u10 …) have no bands to leave out."""
    return bool(np.isfinite(info.wavelength).any() or info.bad_band.any())


def gdal_band_metadata(
    info: BandInfo,
) -> tuple[list[dict[str, str]], list[dict[str, str]], dict[str, str]]:
    """Per-band default-domain tags, per-band IMAGERY tags, dataset ENVI tags for ``info``."""
    per_band, imagery = [], []
    bbl = has_bad_band_list(info)
    for i in range(info.wavelength.size):
        tags = {"bbl": "0" if info.bad_band[i] else "1"} if bbl else {}
        img: dict[str, str] = {}
        if np.isfinite(info.wavelength[i]):
            tags.update(wavelength=_fmt(info.wavelength[i]), wavelength_units="Nanometers")
            img["CENTRAL_WAVELENGTH_UM"] = _fmt(info.wavelength[i] / 1000.0)
        if np.isfinite(info.fwhm[i]):
            tags["fwhm"] = _fmt(info.fwhm[i])
            img["FWHM_UM"] = _fmt(info.fwhm[i] / 1000.0)
        per_band.append(tags)
        imagery.append(img)
    envi: dict[str, str] = {}
    if bbl:
        envi["bbl"] = "{" + ", ".join("0" if b else "1" for b in info.bad_band) + "}"
    if np.isfinite(info.wavelength).any():
        envi["wavelength"] = "{" + ", ".join(_fmt(v) for v in info.wavelength) + "}"
        envi["wavelength_units"] = "Nanometers"
    if np.isfinite(info.fwhm).any():
        envi["fwhm"] = "{" + ", ".join(_fmt(v) for v in info.fwhm) + "}"
    return per_band, imagery, envi
