"""Labels on the scene grid: a label raster that already matches it, or vector polygons / points in
any CRS, reprojected and rasterised onto it. 0 = unlabelled.

For vector labels the class table comes from the class field: integer values keep their numbers
(names from ``name_field`` if given); text values are numbered 1…K in sorted order.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

from hsikit.classes import ClassTable
from hsikit.data.offgrid_truth import grid_relation, offgrid_truth, resample_hint
from hsikit.errors import InputError, LabelError
from hsikit.inputs import claim_input
from hsikit.scene import Scene

MAX_CLASS_VALUE = 65535  # class maps are uint8, or uint16 past 255 classes
#: Distinct values above which a raster is not class labels (an image band taken by mistake).
MAX_PLAUSIBLE_CLASSES = 255
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb", ".gml", ".kml", ".parquet")


class NoLabelsOnScene(LabelError):
    """No feature of a vector labels file marks a pixel of a scene: a run over several scenes
    skips that scene (:func:`hsikit.data.sources.place_labels`) rather than failing."""

    def __init__(self, labels: Path, scene: str, reason: str, hint: str) -> None:
        self.reason = reason  # a phrase the scene completes: "no label feature overlaps"
        super().__init__(labels, f"{reason} the scene {scene}", hint)


@dataclass
class Labels:
    values: np.ndarray  # (rows, cols) integer, 0 = unlabelled
    classes: ClassTable
    source: str

    def counts(self) -> dict[int, int]:
        values, counts = np.unique(self.values[self.values > 0], return_counts=True)
        return dict(zip(values.tolist(), counts.tolist()))


def load_labels(
    path: str | Path,
    scene: Scene,
    class_field: str | None = None,
    name_field: str | None = None,
    layer: str | None = None,
    class_table: str | Path | None = None,
) -> Labels:
    """Labels for ``scene`` from a raster (same grid; ``class_table``: a CSV or JSON file
    naming its classes) or a vector file (rasterised onto it; ``layer``: which of its layers,
    needed when it holds several)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder", "check the label path")
    for file in [path, *path.parent.glob(f"{glob.escape(path.stem)}.*")]:  # .shp's .dbf, .prj …
        if file == path or path.suffix.lower() == ".shp":
            claim_input(file, "labels file")
    if path.suffix.lower() in VECTOR_SUFFIXES:
        if class_table is not None:
            raise LabelError(
                path,
                "vector labels name their classes themselves, so --class-table does not apply",
                "use --class-field (and --name-field for numeric classes)",
            )
        return rasterize_vector(path, scene, class_field, name_field, layer)
    return _label_raster(path, scene, class_table)


def _label_raster(path: Path, scene: Scene, class_table: str | Path | None = None) -> Labels:
    import os

    from hsikit.readers import open_scene
    from hsikit.writers.classmap import read_class_table

    labels = open_scene(path)
    if labels.ground_truth is None and os.path.realpath(path) == os.path.realpath(scene.path):
        _refuse_scene_as_labels(path, labels)
    values = (
        labels.ground_truth if labels.ground_truth is not None else labels.read_raw(bands=[0])[0]
    )
    grid = (scene.height, scene.width)
    if values.shape != grid:
        raise LabelError(
            path,
            f"the label raster ({values.shape[0]} × {values.shape[1]}) is "
            f"{grid_relation(values.shape, grid)} the scene ({grid[0]} × {grid[1]})",
            resample_hint(values.shape, grid),
        )
    if (
        labels.georeferenced
        and scene.georeferenced
        and (labels.crs != scene.crs or not labels.transform.almost_equals(scene.transform))
    ):
        raise LabelError(
            path,
            "the label raster's CRS or transform differs from the scene's",
            "resample the labels onto the scene grid, or give vector labels",
        )
    if not np.issubdtype(values.dtype, np.integer):
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise LabelError(
                path,
                "label values are not whole numbers",
                "store class values as integers (0 = unlabelled)",
            )
    values = np.asarray(values).astype("int64")
    if values.min() < 0:
        raise LabelError(path, "label values are negative", "use 0 for unlabelled, 1… for classes")
    table = None
    if path.suffix.lower() in (".tif", ".tiff"):
        table = read_class_table(path)
    present = sorted(set(np.unique(values).tolist()) - {0})
    if len(present) > MAX_PLAUSIBLE_CLASSES:
        raise LabelError(
            path,
            f"holds {len(present)} distinct values: an image band, not class labels",
            "give a raster of class numbers (0 = unlabelled), or vector labels",
        )
    if class_table is not None:
        from hsikit.data.class_tables import read_class_table_file

        table = read_class_table_file(class_table, present)
    if table is None:
        table = ClassTable.from_values(present)
    dtype = "uint8" if table.max_value <= 255 and values.max() <= 255 else "uint16"
    return Labels(values.astype(dtype), table, str(path))


def _refuse_scene_as_labels(path: Path, scene: Scene) -> NoReturn:
    """The scene given as its own labels holds none on its grid: say what it holds instead (a
    MATLAB file's ground truth at another resolution), or that its bands are not labels."""
    candidates = offgrid_truth(scene)
    if candidates:
        raise LabelError(
            path,
            f"holds no ground truth on the cube's grid, only the {candidates[0].description()}",
            resample_hint(candidates[0].shape, candidates[0].grid),
        )
    raise LabelError(
        path,
        "is the scene itself, and it holds no ground truth: its first band is not labels",
        "give the labels file (for a .mat scene, the _gt.mat beside it)",
    )


def rasterize_vector(
    path: Path,
    scene: Scene,
    class_field: str | None,
    name_field: str | None = None,
    layer: str | None = None,
) -> Labels:
    """Vector labels rasterised onto ``scene``, in the class colours of the layer's QGIS style
    when it has a categorized one on the class field."""
    from rasterio.features import rasterize
    from shapely.geometry import box

    from hsikit.data.vector_layers import choose_layer, read_layer

    chosen = choose_layer(path, layer)
    frame = read_layer(path, chosen)
    if class_field is None:
        raise LabelError(
            path,
            "no class field given",
            "pass --class-field with one of: "
            + ", ".join(c for c in frame.columns if c != "geometry"),
        )
    if class_field not in frame.columns:
        raise LabelError(
            path,
            f"the class field '{class_field}' is not in the file "
            f"(fields: {', '.join(c for c in frame.columns if c != 'geometry')})",
            "choose one of those with --class-field",
        )
    frame = frame[frame.geometry.notna() & frame[class_field].notna()]
    if frame.empty:
        raise LabelError(path, "no feature has both a geometry and a class", "check the file")
    distinct = frame[class_field].nunique()
    if distinct > MAX_PLAUSIBLE_CLASSES:
        raise LabelError(
            path,
            f"the class field '{class_field}' has {distinct} distinct values: an identifier "
            "or a measurement, not classes",
            "choose the field that holds the classes with --class-field (fields: "
            + ", ".join(c for c in frame.columns if c != "geometry")
            + ")",
        )
    if scene.crs is not None:
        if frame.crs is None:
            raise LabelError(
                path,
                "the vector labels have no CRS",
                "set one (e.g. with ogr2ogr -a_srs) so they can be placed",
            )
        frame = frame.to_crs(scene.crs)
    bounds = box(*_scene_bounds(scene))
    if not frame.intersects(bounds).any():
        raise NoLabelsOnScene(
            path,
            scene.path,
            "no label feature overlaps",
            "check that the labels and the scene cover the same area",
        )
    table, codes = _class_table(frame, class_field, name_field, path)
    table = _styled(
        table, path, chosen, class_field, pd.api.types.is_numeric_dtype(frame[class_field])
    )
    shapes = ((geom, code) for geom, code in zip(frame.geometry, codes))
    dtype = "uint8" if table.max_value <= 255 else "uint16"
    values = rasterize(
        shapes,
        out_shape=(scene.height, scene.width),
        transform=scene.transform,
        fill=0,
        dtype=dtype,
    )
    if not values.any():
        raise NoLabelsOnScene(
            path,
            scene.path,
            "the label features cover no pixel centre of",
            "use larger polygons, or points on pixel centres",
        )
    return Labels(values, table, str(path))


def _styled(table: ClassTable, path: Path, layer: str, field: str, numeric: bool) -> ClassTable:
    """``table`` with the colours of the layer's categorized QGIS style on ``field``."""
    from dataclasses import replace

    from hsikit.data.vector_layers import categorized_colours, style_document

    colours = categorized_colours(style_document(path, layer) or "", field)
    if not colours:
        return table
    if numeric:  # QGIS writes a numeric category as "3" (or "3.0")
        colours |= {k.removesuffix(".0"): v for k, v in colours.items()}
    entries = tuple(
        replace(e, colour=colours.get(str(e.value) if numeric else e.name, e.colour))
        for e in table.entries
    )
    return ClassTable(entries)


def _scene_bounds(scene: Scene) -> tuple[float, float, float, float]:
    t = scene.transform
    corners = [t @ (c, r) for c in (0, scene.width) for r in (0, scene.height)]
    xs, ys = zip(*corners)
    return min(xs), min(ys), max(xs), max(ys)


def _class_table(
    frame, field: str, name_field: str | None, path: Path
) -> tuple[ClassTable, np.ndarray]:
    column = frame[field]
    if pd.api.types.is_bool_dtype(column):
        raise LabelError(
            path,
            f"class field '{field}' holds true/false values",
            "use class numbers (1…) or class names",
        )
    if pd.api.types.is_numeric_dtype(column):
        numbers = column.to_numpy(dtype="float64")
        fractional = numbers[~np.isfinite(numbers) | (numbers != np.round(numbers))]
        if fractional.size:
            raise LabelError(
                path,
                f"class field '{field}' holds numbers that are not whole (e.g. {fractional[0]:g})",
                "use whole class numbers (1…), or a text field of class names",
            )
        codes = numbers.astype("int64")
        if codes.min() <= 0:
            raise LabelError(
                path,
                f"class field '{field}' has values ≤ 0",
                "use 1… for classes (0 means unlabelled)",
            )
        if codes.max() > MAX_CLASS_VALUE:
            raise LabelError(
                path,
                f"class field '{field}' has values above {MAX_CLASS_VALUE}",
                "number the classes from 1",
            )
        names: dict[int, str] = {}
        if name_field is not None:
            if name_field not in frame.columns:
                raise LabelError(
                    path,
                    f"the name field '{name_field}' is not in the file",
                    "choose an existing field",
                )
            names = dict(zip(codes.tolist(), frame[name_field].astype(str)))
        return ClassTable.from_values(codes.tolist(), names), codes
    labels = column.astype(str)
    table = ClassTable.from_names(sorted(set(labels)))
    lookup = {e.name: e.value for e in table.entries}
    return table, labels.map(lookup).to_numpy().astype("int64")
