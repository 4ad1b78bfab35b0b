"""EnMAP L2A product (folder or zip): the spectral image with its METADATA.XML applied.

From the XML (``level_X/specific``): per-band centre wavelength, FWHM, gain and offset
(``bandCharacterisation/bandID``); the VNIR and SWIR ``expectedChannelsList`` — bands in neither
list are flagged bad. Nodata is the image's own nodata tag, else EnMAP's fill value −32768.
Quality masks (``QL_*``) are listed in the scene notes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np

from hsikit.errors import FormatError
from hsikit.readers import gdal
from hsikit.scene import BandInfo, Scene

FILL_VALUE = -32768.0
METADATA_SUFFIX = "-METADATA.XML"
IMAGE_MARKER = "-SPECTRAL_IMAGE"


def _members(path: Path) -> list[str]:
    if path.is_dir():
        return [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    return []


def sniff(path: Path) -> bool:
    names = _members(path)
    return (any(n.upper().endswith(METADATA_SUFFIX) for n in names)
            and any(IMAGE_MARKER in n.upper() for n in names))


def _read_xml(path: Path, member: str) -> bytes:
    if path.is_dir():
        return (path / member).read_bytes()
    with zipfile.ZipFile(path) as zf:
        return zf.read(member)


def _gdal_location(path: Path, member: str) -> str:
    return str(path / member) if path.is_dir() else f"/vsizip/{path.resolve()}/{member}"


def parse_metadata(xml_bytes: bytes, source: str) -> tuple[BandInfo, list[str]]:
    """Band metadata and notes from METADATA.XML; malformed XML is refused with its line."""
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as exc:
        raise FormatError(source, f"METADATA.XML is not well-formed XML ({exc})",
                          "re-download the product") from exc
    bands = root.findall("specific/bandCharacterisation/bandID")
    if not bands:
        raise FormatError(source, "METADATA.XML has no specific/bandCharacterisation/bandID "
                          "entries", "this does not look like an EnMAP L1C/L2A product")

    def values(tag: str, default: float | None = None) -> list[float]:
        out = []
        for band in bands:
            text = band.findtext(tag)
            if text is None and default is None:
                raise FormatError(source, f"band {band.get('number')} lacks <{tag}> in "
                                  "METADATA.XML", "re-download the product")
            try:
                out.append(float(text) if text is not None else float(default))
            except ValueError as exc:
                raise FormatError(source, f"band {band.get('number')} has a non-numeric "
                                  f"<{tag}> ('{text}')", "re-download the product") from exc
        return out

    numbers = [int(b.get("number", i + 1)) for i, b in enumerate(bands)]
    expected: set[int] = set()
    for detector in ("vnirProductQuality", "swirProductQuality"):
        text = root.findtext(f"specific/{detector}/expectedChannelsList")
        if text:
            expected.update(int(x) for x in text.replace(" ", "").split(",") if x)
    bad = [bool(expected) and n not in expected for n in numbers]
    wavelengths = values("wavelengthCenterOfBand")
    info = BandInfo.build(
        len(bands), wavelength=wavelengths, fwhm=values("FWHMOfBand"), bad_band=bad,
        name=[f"band_{n} ({w:.1f} nm)" for n, w in zip(numbers, wavelengths)],
        scale=values("GainOfBand", 1.0), offset=values("OffsetOfBand", 0.0),
        source="EnMAP METADATA.XML",
    )
    notes = []
    product = root.findtext("base/name") or root.findtext("metadata/name")
    if product:
        notes.append(f"product {product.strip()}")
    return info, notes


def open_scene(path: Path, **_: object) -> Scene:
    names = _members(path)
    xml_member = next(n for n in names if n.upper().endswith(METADATA_SUFFIX))
    image_members = [n for n in names if IMAGE_MARKER in n.upper()
                     and n.upper().endswith((".TIF", ".TIFF", ".BSQ", ".BIL", ".BIP"))]
    if not image_members:
        raise FormatError(path, "the EnMAP product has no *-SPECTRAL_IMAGE raster",
                          "check that the folder or zip is complete")
    info, notes = parse_metadata(_read_xml(path, xml_member), f"{path} ({xml_member})")
    location = _gdal_location(path, image_members[0])
    scene = gdal.open_scene(location, format_name="EnMAP L2A", bands=info)
    if scene.count != info.wavelength.size:
        raise FormatError(path, f"METADATA.XML describes {info.wavelength.size} bands but the "
                          f"spectral image has {scene.count}", "the product is inconsistent")
    if scene.nodata is None:
        scene.data = scene.data.rio.write_nodata(FILL_VALUE, encoded=False)
        notes.append(f"nodata {FILL_VALUE:g} (EnMAP fill value; the image has no nodata tag)")
    masks = sorted({Path(n).name for n in names if "-QL_" in n.upper()})
    if masks:
        notes.append("quality masks: " + ", ".join(masks))
    if np.any(info.bad_band):
        notes.append(f"{int(info.bad_band.sum())} bands outside the VNIR/SWIR expected channels")
    scene.path, scene.notes = str(path), notes + scene.notes
    return scene
