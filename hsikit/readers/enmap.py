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

from hsikit.errors import FormatError, error_reason
from hsikit.readers import gdal
from hsikit.scene import BandInfo, Scene

FILL_VALUE = -32768.0
METADATA_SUFFIX = "-METADATA.XML"
IMAGE_MARKER = "-SPECTRAL_IMAGE"
#: A real METADATA.XML is a few MB; a larger one is refused before it is read (zip bombs).
MAX_XML_BYTES = 64 * 2**20


def _members(path: Path) -> list[str]:
    if path.is_dir():
        return [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                return zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
            return []  # not a zip this reader can read: not an EnMAP product
    return []


def _check_member(path: Path, member: str) -> None:
    """A member must lie inside the product: no absolute names, no '..', no link outside."""
    parts = Path(member).parts
    if Path(member).is_absolute() or ".." in parts or "\\" in member:
        raise FormatError(
            path,
            f"the product names a file outside itself ('{member}')",
            "use an unmodified EnMAP product",
        )
    if path.is_dir():
        inside = (path / member).resolve()
        if not inside.is_relative_to(path.resolve()):
            raise FormatError(
                path,
                f"'{member}' links to a file outside the product folder",
                "use an unmodified EnMAP product",
            )


def sniff(path: Path) -> bool:
    names = _members(path)
    return any(n.upper().endswith(METADATA_SUFFIX) for n in names) and any(
        IMAGE_MARKER in n.upper() for n in names
    )


def _read_xml(path: Path, member: str) -> bytes:
    _check_member(path, member)
    try:
        if path.is_dir():
            size = (path / member).stat().st_size
        else:
            with zipfile.ZipFile(path) as zf:
                size = zf.getinfo(member).file_size
        if size > MAX_XML_BYTES:
            raise FormatError(
                path,
                f"{member} would be {size / 2**20:.0f} MB, far larger than any EnMAP METADATA.XML",
                "use an unmodified EnMAP product",
            )
        if path.is_dir():
            return (path / member).read_bytes()
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            data = fh.read(MAX_XML_BYTES + 1)  # the size in the zip may lie
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise FormatError(
            path,
            f"{member} cannot be read from the product ({error_reason(exc)})",
            "re-download the product",
        ) from exc
    if len(data) > MAX_XML_BYTES:
        raise FormatError(
            path,
            f"{member} expands beyond {MAX_XML_BYTES // 2**20} MB",
            "use an unmodified EnMAP product",
        )
    return data


def _gdal_location(path: Path, member: str) -> str:
    return str(path / member) if path.is_dir() else f"/vsizip/{path.resolve()}/{member}"


def parse_metadata(xml_bytes: bytes, source: str) -> tuple[BandInfo, list[str]]:
    """Band metadata and notes from METADATA.XML; malformed XML is refused with its line."""
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as exc:
        raise FormatError(
            source, f"METADATA.XML is not well-formed XML ({exc})", "re-download the product"
        ) from exc
    bands = root.findall("specific/bandCharacterisation/bandID")
    if not bands:
        raise FormatError(
            source,
            "METADATA.XML has no specific/bandCharacterisation/bandID entries",
            "this does not look like an EnMAP L1C/L2A product",
        )

    def values(tag: str, default: float | None = None) -> list[float]:
        out = []
        for band in bands:
            text = band.findtext(tag)
            if text is None and default is None:
                raise FormatError(
                    source,
                    f"band {band.get('number')} lacks <{tag}> in METADATA.XML",
                    "re-download the product",
                )
            try:
                out.append(float(text if text is not None else default))  # type: ignore[arg-type]
            except ValueError as exc:
                raise FormatError(
                    source,
                    f"band {band.get('number')} has a non-numeric <{tag}> ('{text}')",
                    "re-download the product",
                ) from exc
        return out

    numbers = _integers(
        [b.get("number", str(i + 1)) for i, b in enumerate(bands)], source, "bandID number"
    )
    expected: set[int] = set()
    for detector in ("vnirProductQuality", "swirProductQuality"):
        text = root.findtext(f"specific/{detector}/expectedChannelsList")
        if text:
            expected.update(
                _integers(
                    [x for x in text.replace(" ", "").split(",") if x],
                    source,
                    f"{detector}/expectedChannelsList",
                )
            )
    bad = [bool(expected) and n not in expected for n in numbers]
    wavelengths = values("wavelengthCenterOfBand")
    info = BandInfo.build(
        len(bands),
        wavelength=wavelengths,
        fwhm=values("FWHMOfBand"),
        bad_band=bad,
        name=[f"band_{n} ({w:.1f} nm)" for n, w in zip(numbers, wavelengths)],
        scale=values("GainOfBand", 1.0),
        offset=values("OffsetOfBand", 0.0),
        source="EnMAP METADATA.XML",
    )
    notes = []
    product = root.findtext("base/name") or root.findtext("metadata/name")
    if product:
        notes.append(f"product {product.strip()}")
    return info, notes


def _integers(items: list[str], source: str, what: str) -> list[int]:
    try:
        return [int(item) for item in items]
    except ValueError as exc:
        raise FormatError(
            source, f"METADATA.XML has a non-numeric {what} ({exc})", "re-download the product"
        ) from exc


def open_scene(path: Path, **_: object) -> Scene:
    names = _members(path)
    xml_member = next(n for n in names if n.upper().endswith(METADATA_SUFFIX))
    image_members = [
        n
        for n in names
        if IMAGE_MARKER in n.upper()
        and n.upper().endswith((".TIF", ".TIFF", ".BSQ", ".BIL", ".BIP"))
    ]
    if not image_members:
        raise FormatError(
            path,
            "the EnMAP product has no *-SPECTRAL_IMAGE raster",
            "check that the folder or zip is complete",
        )
    info, notes = parse_metadata(_read_xml(path, xml_member), f"{path} ({xml_member})")
    _check_member(path, image_members[0])
    location = _gdal_location(path, image_members[0])
    driver = "GTiff" if image_members[0].upper().endswith((".TIF", ".TIFF")) else "ENVI"
    scene = gdal.open_scene(location, format_name="EnMAP L2A", driver=driver)
    if scene.count != info.wavelength.size:
        raise FormatError(
            path,
            f"METADATA.XML describes {info.wavelength.size} bands but the "
            f"spectral image has {scene.count}",
            "the product is inconsistent",
        )
    scene = scene.with_band_info(info)
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
