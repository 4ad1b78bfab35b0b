"""Sidecars that make a class map self-describing in GIS: a QGIS ``.qml`` style and GDAL's PAM
``.aux.xml`` with category names and a thematic raster attribute table (RAT).

GeoTIFF cannot hold category names or a RAT inside the file; GDAL (and so QGIS) reads both from
the ``.aux.xml`` beside it, which is what GDAL itself writes when asked to store them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hsikit.classes import UNLABELLED, ClassTable, hex_colour

# GDAL RAT field types and usages (gdal.h: GDALRATFieldType, GDALRATFieldUsage)
_INTEGER, _STRING = 0, 2
_USAGE_GENERIC, _USAGE_NAME, _USAGE_MINMAX, _USAGE_RED, _USAGE_GREEN, _USAGE_BLUE = 0, 2, 5, 6, 7, 8


#: A perceptually even ramp (matplotlib's viridis at five stops) for 0–100 % scores.
SCORE_RAMP = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")


def qml_style(classes: ClassTable) -> str:
    """A paletted QGIS style: one legend entry per class, nodata (0) transparent."""
    qgis, pipe, renderer = _qml_skeleton(type="paletted")
    palette = ET.SubElement(renderer, "colorPalette")
    for entry in classes.entries:
        ET.SubElement(
            palette,
            "paletteEntry",
            value=str(entry.value),
            color=hex_colour(entry.colour),
            alpha="255",
            label=entry.name,
        )
    return _qml_text(qgis, pipe)


def score_qml_style(label: str) -> str:
    """A pseudocolour QGIS style for a 0–100 % score band (confidence): legend in percent."""
    qgis, pipe, renderer = _qml_skeleton(
        type="singlebandpseudocolor", classificationMin="0", classificationMax="100"
    )
    shader = ET.SubElement(
        ET.SubElement(renderer, "rastershader"),
        "colorrampshader",
        colorRampType="INTERPOLATED",
        classificationMode="1",
        clip="0",
        minimumValue="0",
        maximumValue="100",
        labelPrecision="0",
    )
    stops = len(SCORE_RAMP) - 1
    for index, colour in enumerate(SCORE_RAMP):
        value = 100 * index // stops
        ET.SubElement(
            shader,
            "item",
            value=str(value),
            color=colour,
            alpha="255",
            label=f"{value} % {label}" if index in (0, stops) else f"{value} %",
        )
    return _qml_text(qgis, pipe)


def _qml_skeleton(**renderer_attributes: str) -> tuple[ET.Element, ET.Element, ET.Element]:
    qgis = ET.Element("qgis", version="3.34", styleCategories="AllStyleCategories")
    pipe = ET.SubElement(qgis, "pipe")
    renderer = ET.SubElement(
        pipe,
        "rasterrenderer",
        band="1",
        opacity="1",
        alphaBand="-1",
        attrib={"nodataColor": "", **renderer_attributes},
    )
    ET.SubElement(renderer, "rasterTransparency")
    return qgis, pipe, renderer


def _qml_text(qgis: ET.Element, pipe: ET.Element) -> str:
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(
        pipe,
        "huesaturation",
        saturation="0",
        grayscaleMode="0",
        colorizeOn="0",
        colorizeRed="255",
        colorizeGreen="128",
        colorizeBlue="128",
        colorizeStrength="100",
        invertColors="0",
    )
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(qgis, "blendMode").text = "0"
    ET.indent(qgis)
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        + ET.tostring(qgis, encoding="unicode")
        + "\n"
    )


def pam_categories(classes: ClassTable, unlabelled_name: str) -> str:
    """``.aux.xml`` for band 1: CategoryNames indexed by value (0 named ``unlabelled_name``;
    values that are no class stay empty), and a thematic RAT."""
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    names = ET.SubElement(band, "CategoryNames")
    by_value = {e.value: e.name for e in classes.entries}
    for value in range(classes.max_value + 1):
        default = unlabelled_name if value == UNLABELLED else ""
        ET.SubElement(names, "Category").text = by_value.get(value, default)
    rat = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    fields = [
        ("Value", _INTEGER, _USAGE_MINMAX),
        ("Class", _STRING, _USAGE_NAME),
        ("Red", _INTEGER, _USAGE_RED),
        ("Green", _INTEGER, _USAGE_GREEN),
        ("Blue", _INTEGER, _USAGE_BLUE),
        ("Colour", _STRING, _USAGE_GENERIC),
    ]
    for index, (name, kind, usage) in enumerate(fields):
        defn = ET.SubElement(rat, "FieldDefn", index=str(index))
        ET.SubElement(defn, "Name").text = name
        ET.SubElement(defn, "Type").text = str(kind)
        ET.SubElement(defn, "Usage").text = str(usage)
    for row, entry in enumerate(classes.entries):
        element = ET.SubElement(rat, "Row", index=str(row))
        for field in (entry.value, entry.name, *entry.colour, hex_colour(entry.colour)):
            ET.SubElement(element, "F").text = str(field)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def read_pam_categories(xml_text: str) -> dict[int, str]:
    """Category names by value from an ``.aux.xml`` (band 1); empty names are skipped.
    Raises ``ET.ParseError`` for text that is not XML."""
    root = ET.fromstring(xml_text)
    band = root.find("PAMRasterBand[@band='1']")
    if band is None:
        return {}
    names = [c.text or "" for c in band.findall("CategoryNames/Category")]
    return {value: name for value, name in enumerate(names) if name and value != UNLABELLED}
