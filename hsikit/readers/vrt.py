"""GDAL VRT mosaics (``gdalbuildvrt``) of local GeoTIFF tiles, checked before GDAL sees them.

A VRT names other files, so GDAL would follow it anywhere: to URLs, to ``/vsi`` paths, into
other VRTs, or into pixel functions that run code. hsikit opens a VRT only when every band is
a plain sourced band whose sources are local TIFF files, and claims those files as inputs (no
output may replace a tile of the mosaic being mapped).

``gdalbuildvrt`` keeps the pixels but not the band metadata. When the VRT has none of its own
and the tiles agree on each band's wavelength, FWHM and bad-band flag, the mosaic takes them
from its tiles, and says so.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hsikit.errors import FormatError, InputError
from hsikit.inputs import claim_input
from hsikit.preprocess import WAVELENGTH_TOLERANCE_NM
from hsikit.readers import gdal
from hsikit.scene import Scene

#: A VRT is a small XML file: a larger one is refused before it is parsed.
MAX_VRT_BYTES = 16 * 2**20
#: The sources ``gdalbuildvrt`` writes; anything else (kernels, pixel functions) is refused.
SOURCE_TAGS = ("SimpleSource", "ComplexSource", "AveragedSource")


def sniff(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip()
    if head.startswith(b"<?xml"):
        head = head[head.find(b"?>") + 2 :].lstrip()
    return head.startswith(b"<VRTDataset")


@dataclass(frozen=True)
class BandSource:
    """Where a VRT band's pixels come from: a local file and its band (1-based)."""

    file: Path
    band: int


def band_sources(path: Path) -> list[list[BandSource]]:
    """Each VRT band's sources, checked: local TIFF files only, plain sourced bands only."""
    if path.stat().st_size > MAX_VRT_BYTES:
        raise FormatError(path, "the VRT is larger than 16 MB", "build the mosaic again")
    text = path.read_text(errors="replace")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise FormatError(path, "the VRT declares XML entities", "build it with gdalbuildvrt")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise FormatError(path, f"the VRT is not valid XML ({exc})", "build it again") from exc
    if root.tag != "VRTDataset" or root.get("subClass"):
        raise _refused(path, f"a {root.get('subClass') or root.tag} is not a plain mosaic")
    bands = []
    for band in root.findall("VRTRasterBand"):
        if band.get("subClass") not in (None, "VRTSourcedRasterBand"):
            raise _refused(path, f"band {band.get('band')} is a {band.get('subClass')}")
        sources = []
        for element in band:
            if element.tag.endswith("Source"):
                if element.tag not in SOURCE_TAGS:
                    raise _refused(path, f"band {band.get('band')} has a {element.tag}")
                sources.append(_source(path, element))
        bands.append(sources)
    return bands


def _source(vrt: Path, element: ET.Element) -> BandSource:
    name = element.find("SourceFilename")
    text = (name.text or "").strip() if name is not None else ""
    if not text or text.lower().startswith("/vsi") or "://" in text:
        raise _refused(vrt, f"a source is not a local file ({text or 'unnamed'})")
    relative = name is not None and name.get("relativeToVRT") == "1"
    file = Path(os.path.normpath(vrt.parent / text)) if relative else Path(text)
    if not file.is_file():
        raise InputError(
            vrt, f"its source {file} does not exist", "keep the tiles beside the mosaic"
        )
    if not gdal.sniff(file):
        raise _refused(vrt, f"its source {file} is not a TIFF file")
    band = element.find("SourceBand")
    number = (band.text or "1").strip() if band is not None else "1"
    if not number.isdigit():
        raise _refused(vrt, f"its source {file} names band '{number}'")
    return BandSource(file, int(number))


def _refused(vrt: Path, problem: str) -> FormatError:
    return FormatError(
        vrt,
        f"hsikit opens VRT mosaics of local TIFF tiles only, and {problem}",
        "build the mosaic with gdalbuildvrt from local GeoTIFF tiles, or convert it to "
        "GeoTIFF with gdal_translate",
    )


def open_scene(path: Path, **_: object) -> Scene:
    sources = band_sources(path)
    for file in {s.file for band in sources for s in band}:
        claim_input(file, "tile of an input mosaic")
    scene = gdal.open_scene(path, format_name="VRT", driver="VRT")
    if np.isfinite(scene.wavelengths).any() or not all(sources):
        return scene
    inherited = _tile_band_info(sources)
    if inherited is None:
        scene.notes.append("no band wavelengths: its tiles do not agree on them")
        return scene
    scene.notes.append(f"band metadata from its {len({s.file for b in sources for s in b})} tiles")
    info = scene.band_info()
    info.wavelength, info.fwhm, info.bad_band = inherited
    info.source = "the mosaic's tiles"
    return scene.with_band_info(info)


def _tile_band_info(
    sources: list[list[BandSource]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per VRT band, the wavelength, FWHM and bad-band flag its tiles all give it, or None
    when some band has no wavelength in its tiles or they differ."""
    tiles = {s.file: gdal.open_scene(s.file).band_info() for band in sources for s in band}
    wavelength, fwhm, bad = [], [], []
    for band in sources:
        infos = [(tiles[s.file], s.band - 1) for s in band]
        if any(index >= info.wavelength.size for info, index in infos):
            return None
        wl = np.array([info.wavelength[i] for info, i in infos])
        if not np.isfinite(wl).all() or np.ptp(wl) > WAVELENGTH_TOLERANCE_NM:
            return None
        wavelength.append(float(wl.mean()))
        fwhm.append(float(np.mean([info.fwhm[i] for info, i in infos])))
        bad.append(any(bool(info.bad_band[i]) for info, i in infos))
    return np.asarray(wavelength), np.asarray(fwhm), np.asarray(bad)
