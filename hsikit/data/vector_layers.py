"""The layer of a vector labels file, and the class colours its user chose in QGIS.

A GeoPackage saved by QGIS holds the points or polygons and, beside them, QGIS's own
``layer_styles`` table (no geometry), whose default style for a layer is a QML document. A
shapefile or GeoJSON carries the same QML in a ``.qml`` file beside it. A *categorized* style
there says which colour each value of a field has. Labels drawn in those colours become a map
drawn in the same colours.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from hsikit.errors import LabelError

#: QGIS's table of layer styles in a GeoPackage (not a labels layer).
STYLES_TABLE = "layer_styles"


def _unreadable(path: Path, exc: Exception) -> LabelError:
    return LabelError(
        path,
        f"cannot read vector labels ({str(exc).splitlines()[0]})",
        "check that it is a GeoPackage, GeoJSON or Shapefile",
    )


def read_layer(path: Path, layer: str) -> Any:
    """One layer of a vector file as a GeoDataFrame; an unreadable file is one sentence."""
    import pyogrio

    try:
        return pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise _unreadable(path, exc) from exc


def geometry_layers(path: Path) -> list[str]:
    """The layers of ``path`` that hold geometries (QGIS's styles table is not one)."""
    import pyogrio

    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise _unreadable(path, exc) from exc
    return [str(name) for name, geometry in layers if geometry is not None and name != STYLES_TABLE]


def choose_layer(path: Path, layer: str | None) -> str:
    """The labels layer: the one asked for, or the only one with geometries."""
    layers = geometry_layers(path)
    if layer is not None:
        if layer not in layers:
            raise LabelError(
                path,
                f"has no layer '{layer}' with geometries (it has: {', '.join(layers) or 'none'})",
                "choose one of those with --layer",
            )
        return layer
    if not layers:
        raise LabelError(path, "holds no layer with geometries", "check the file")
    if len(layers) > 1:
        raise LabelError(
            path,
            f"holds {len(layers)} layers with geometries ({', '.join(layers)})",
            "choose the labels layer with --layer",
        )
    return layers[0]


def _colour(symbol: ET.Element) -> tuple[int, int, int] | None:
    """The fill colour of a QML symbol (QGIS 3's Option map, or older ``prop`` elements)."""
    for element in symbol.iter():
        key = element.get("name") if element.tag == "Option" else element.get("k")
        value = element.get("value") if element.tag == "Option" else element.get("v")
        if key == "color" and value:
            parts = value.split(",")
            try:
                return int(parts[0]), int(parts[1]), int(parts[2])
            except (ValueError, IndexError):
                return None
    return None


def categorized_colours(qml: str, field: str) -> dict[str, tuple[int, int, int]]:
    """Category value (as text) → RGB of a categorized *vector* QML style on ``field``; empty
    for any other style (a raster style, as hsikit writes beside a map, has no ``renderer-v2``),
    or a style on another field."""
    try:
        root = ET.fromstring(qml)
    except ET.ParseError:
        return {}
    renderer = root.find(".//renderer-v2")
    if renderer is None or renderer.get("type") != "categorizedSymbol":
        return {}
    if renderer.get("attr") != field:
        return {}
    symbols = {s.get("name"): s for s in renderer.iter("symbol")}
    colours = {}
    for category in renderer.iter("category"):
        symbol = symbols.get(category.get("symbol"))
        colour = _colour(symbol) if symbol is not None else None
        if colour is not None and category.get("value") not in (None, ""):
            colours[str(category.get("value"))] = colour
    return colours


def style_document(path: Path, layer: str) -> str | None:
    """The QML of the layer's default QGIS style. As in QGIS, a GeoPackage's own style for the
    layer wins over a ``.qml`` beside the file: that name is also the one hsikit gives the
    (raster) style of a map written beside the labels, e.g. ``fields.qml`` of ``fields.tif``."""
    sidecar = path.with_suffix(".qml")
    own = _geopackage_style(path, layer) if path.suffix.lower() == ".gpkg" else None
    if own is None and sidecar.is_file():
        return sidecar.read_text(errors="replace")
    return own


def _geopackage_style(path: Path, layer: str) -> str | None:
    """The layer's default style in the GeoPackage's ``layer_styles`` table, if it has one."""
    import pyogrio

    names = [str(name) for name, _ in pyogrio.list_layers(path)]
    if STYLES_TABLE not in names:
        return None
    styles = pyogrio.read_dataframe(path, layer=STYLES_TABLE, read_geometry=False)
    if "f_table_name" not in styles.columns or "styleQML" not in styles.columns:
        return None
    mine = styles[styles["f_table_name"] == layer]
    if "useAsDefault" in mine.columns and mine["useAsDefault"].astype(bool).any():
        mine = mine[mine["useAsDefault"].astype(bool)]
    return None if mine.empty else str(mine["styleQML"].iloc[0])


#: Distinct values of a field listed by ``hsikit info`` (more are counted, not listed).
LISTED_VALUES = 30


def summarize_vector(path: Path) -> dict:
    """What a vector labels file holds, for ``hsikit info``: per layer with geometries its
    geometry type, feature count, CRS, extent and fields, and for text or integer fields the
    values (the classes a ``--class-field`` would give) with their counts; whether a QGIS style
    colours it."""
    layers = []
    for name in geometry_layers(path):
        frame = read_layer(path, name)
        fields = {}
        for column in (c for c in frame.columns if c != "geometry"):
            values = frame[column].dropna()
            counts = values.astype(str).value_counts()
            fields[column] = {
                "type": str(frame[column].dtype),
                "distinct": int(len(counts)),
                "values": {k: int(v) for k, v in counts.head(LISTED_VALUES).items()},
            }
        style = style_document(path, name)
        styled = [f for f in fields if style and categorized_colours(style, f)]
        layers.append(
            {
                "name": name,
                "geometry": sorted({str(g) for g in frame.geom_type.dropna().unique()}),
                "features": int(len(frame)),
                "crs": None if frame.crs is None else frame.crs.to_string(),
                "bounds": [float(v) for v in frame.total_bounds],
                "fields": fields,
                "qgis_style_on": styled,
            }
        )
    return {"path": str(path), "format": "vector labels", "layers": layers}
