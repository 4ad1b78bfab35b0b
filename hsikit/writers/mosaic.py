"""A VRT mosaic of class maps that share a CRS and a pixel size: one file QGIS (or GDAL) opens
as a single layer, with the classes' colours and names, reading the maps where they lie.

Maps whose grids cannot be mosaicked as they are (no CRS, rotated) are left out, and maps of
another CRS or pixel size go to a mosaic of their own: nothing is resampled.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from affine import Affine

from hsikit.classes import UNLABELLED, ClassTable
from hsikit.scene import Grid, is_pixel_grid
from hsikit.writers.atomic import write_text
from hsikit.writers.classmap import CLASS_NODATA


@dataclass(frozen=True)
class MappedScene:
    path: Path
    grid: Grid


def _group_key(grid: Grid) -> tuple[str, float, float] | None:
    t = grid.transform
    if grid.crs is None or is_pixel_grid(t, grid.crs) or t.b != 0.0 or t.d != 0.0:
        return None
    return grid.crs.to_wkt(), t.a, t.e


def _name(grid: Grid, taken: set[str]) -> str:
    assert grid.crs is not None
    code = grid.crs.to_epsg()
    base = f"mosaic_EPSG{code}" if code else "mosaic"
    name, n = f"{base}.vrt", 2
    while name in taken:
        name, n = f"{base}_{n}.vrt", n + 1
    return name


def write_mosaics(
    maps: Sequence[MappedScene], folder: Path, table: ClassTable, dtype: str
) -> list[Path]:
    """One VRT per (CRS, pixel size) in ``folder``; the paths written."""
    groups: dict[tuple[str, float, float], list[MappedScene]] = {}
    for mapped in maps:
        key = _group_key(mapped.grid)
        if key is not None:
            groups.setdefault(key, []).append(mapped)
    written: list[Path] = []
    taken: set[str] = set()
    for members in groups.values():
        name = _name(members[0].grid, taken)
        taken.add(name)
        written.append(
            write_text(folder / name, _vrt(members, folder, table, dtype), what="a VRT mosaic")
        )
    return written


def _vrt(members: Sequence[MappedScene], folder: Path, table: ClassTable, dtype: str) -> str:
    first = members[0].grid.transform
    xres, yres = first.a, first.e  # yres < 0 for north-up
    lefts = [m.grid.transform.c for m in members]
    rights = [m.grid.transform.c + m.grid.width * xres for m in members]
    tops = [m.grid.transform.f for m in members]
    bottoms = [m.grid.transform.f + m.grid.height * yres for m in members]
    left = min(lefts) if xres > 0 else max(lefts)
    top = max(tops) if yres < 0 else min(tops)
    width = round(abs((max(rights) if xres > 0 else min(rights)) - left) / abs(xres))
    height = round(abs((min(bottoms) if yres < 0 else max(bottoms)) - top) / abs(yres))
    origin = Affine(xres, 0.0, left, 0.0, yres, top)
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    assert members[0].grid.crs is not None
    ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = members[0].grid.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        repr(v) for v in (origin.c, origin.a, origin.b, origin.f, origin.d, origin.e)
    )
    band = ET.SubElement(root, "VRTRasterBand", dataType=_gdal_type(dtype), band="1")
    ET.SubElement(band, "NoDataValue").text = str(CLASS_NODATA)
    ET.SubElement(band, "ColorInterp").text = "Palette"
    names = ET.SubElement(band, "CategoryNames")
    by_value = {e.value: e for e in table.entries}
    for value in range(table.max_value + 1):
        entry = by_value.get(value)
        ET.SubElement(names, "Category").text = (
            entry.name if entry else "nodata" if value == UNLABELLED else ""
        )
    colours = ET.SubElement(band, "ColorTable")
    for value in range(table.max_value + 1):
        entry = by_value.get(value)
        r, g, b = entry.colour if entry else (0, 0, 0)
        ET.SubElement(colours, "Entry", c1=str(r), c2=str(g), c3=str(b), c4="255" if entry else "0")
    for member in members:
        col, row = ~origin @ (member.grid.transform.c, member.grid.transform.f)
        source = ET.SubElement(band, "ComplexSource")
        ET.SubElement(source, "SourceFilename", relativeToVRT="1").text = os.path.relpath(
            member.path, folder
        )
        ET.SubElement(source, "SourceBand").text = "1"
        size = {"xSize": str(member.grid.width), "ySize": str(member.grid.height)}
        ET.SubElement(source, "SrcRect", {"xOff": "0", "yOff": "0", **size})
        ET.SubElement(source, "DstRect", {"xOff": _number(col), "yOff": _number(row), **size})
        ET.SubElement(source, "NODATA").text = str(CLASS_NODATA)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _number(value: float) -> str:
    rounded = round(value)
    return str(rounded) if abs(value - rounded) < 1e-6 else repr(value)


def _gdal_type(dtype: str) -> str:
    return {"uint8": "Byte", "uint16": "UInt16"}[dtype]
