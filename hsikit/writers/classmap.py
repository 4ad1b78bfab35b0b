"""Classification maps as GIS-ready Cloud-Optimized GeoTIFFs, written window by window.

Layout of ``map.tif``: one band, uint8 (uint16 past 255 classes), nodata 0, colour table, tiled,
DEFLATE-compressed, nearest-neighbour overviews, COG layout; beside it ``map.tif.aux.xml``
(category names + RAT) and ``map.qml`` (QGIS paletted style). Optional ``map_confidence.tif``
(uint8 0–100, nodata 255) and ``map_probabilities.tif`` (uint8 0–100 per class, nodata 255).

Windows go to tiled temporary GeoTIFFs first; the COG driver then copies them with overviews —
GDAL's COG driver needs a complete source, so this two-step path keeps memory bounded.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from hsikit.classes import ClassEntry, ClassTable, palette_colour
from hsikit.errors import FormatError
from hsikit.scene import Grid
from hsikit.writers.atomic import staged_output
from hsikit.writers.styles import pam_categories, qml_style, read_pam_categories

CLASS_NODATA = 0
SCORE_NODATA = 255
BLOCKSIZE = 256
COG_OPTIONS = {"COMPRESS": "DEFLATE", "BLOCKSIZE": BLOCKSIZE, "BIGTIFF": "IF_SAFER",
               "OVERVIEWS": "AUTO"}


def sidecar_paths(path: Path) -> dict[str, Path]:
    stem = path.with_suffix("")
    return {"aux": Path(str(path) + ".aux.xml"), "qml": path.with_suffix(".qml"),
            "confidence": Path(f"{stem}_confidence.tif"),
            "probabilities": Path(f"{stem}_probabilities.tif")}


def _profile(grid: Grid, dtype: str, count: int, nodata: int) -> dict:
    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": count,
               "dtype": dtype, "nodata": nodata, "transform": grid.transform, "tiled": True,
               "blockxsize": BLOCKSIZE, "blockysize": BLOCKSIZE, "compress": "DEFLATE",
               "BIGTIFF": "IF_SAFER"}
    if grid.crs is not None:
        profile["crs"] = grid.crs
    return profile


def _percent(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.clip(np.rint(np.asarray(values, dtype="float32") * 100.0), 0, 100).astype("uint8")
    out[..., ~valid] = SCORE_NODATA
    return out


class ClassMapWriter:
    """Context manager: ``write(window, classes, confidence=, probabilities=)`` per window.

    ``classes`` holds class values with 0 where the input was nodata; confidence and
    probabilities are floats in 0–1. Nothing appears at ``path`` unless the block exits cleanly.
    """

    def __init__(self, path: str | Path, grid: Grid, classes: ClassTable, *,
                 confidence: bool = False, probabilities: bool = False) -> None:
        self.path = Path(path)
        self.grid = grid
        self.classes = classes
        self.dtype = "uint8" if classes.max_value <= 255 else "uint16"
        self.want_confidence = confidence
        self.want_probabilities = probabilities
        self._stack = ExitStack()
        self._datasets: dict[str, rasterio.io.DatasetWriter] = {}

    def __enter__(self) -> ClassMapWriter:
        self._stage = self._stack.enter_context(staged_output(self.path))
        self._open("classes", _profile(self.grid, self.dtype, 1, CLASS_NODATA))
        if self.want_confidence:
            self._open("confidence", _profile(self.grid, "uint8", 1, SCORE_NODATA))
        if self.want_probabilities:
            self._open("probabilities",
                       _profile(self.grid, "uint8", len(self.classes), SCORE_NODATA))
        return self

    def _open(self, key: str, profile: dict) -> None:
        dataset = rasterio.open(self._stage / f"{key}.tmp.tif", "w", **profile)
        self._datasets[key] = self._stack.enter_context(dataset)

    def write(self, window: Window, classes: np.ndarray, *, confidence: np.ndarray | None = None,
              probabilities: np.ndarray | None = None) -> None:
        valid = classes != CLASS_NODATA
        self._datasets["classes"].write(classes.astype(self.dtype), 1, window=window)
        if self.want_confidence:
            if confidence is None:
                raise ValueError("this writer was opened with confidence=True")
            self._datasets["confidence"].write(_percent(confidence, valid), 1, window=window)
        if self.want_probabilities:
            if probabilities is None:
                raise ValueError("this writer was opened with probabilities=True")
            self._datasets["probabilities"].write(_percent(probabilities, valid), window=window)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        if exc_type is None:
            try:
                self._finish()
            except BaseException as error:  # discard the staging folder, keep the error
                self._stack.__exit__(type(error), error, error.__traceback__)
                raise
        return self._stack.__exit__(exc_type, exc, tb)

    def _finish(self) -> None:
        """Colour table and names, then COG copies under the final names, then the sidecars."""
        colours = {v: (0, 0, 0, 0) for v in range(min(256, self.classes.max_value + 1))}
        colours.update({e.value: (*e.colour, 255) for e in self.classes.entries if e.value < 256})
        classes_ds = self._datasets["classes"]
        if self.dtype == "uint8":
            classes_ds.write_colormap(1, colours)
        classes_ds.set_band_description(1, "class")
        classes_ds.update_tags(1, CLASS_NAMES=";".join(e.name for e in self.classes.entries))
        if "probabilities" in self._datasets:
            for i, entry in enumerate(self.classes.entries, start=1):
                self._datasets["probabilities"].set_band_description(i, entry.name)
        for dataset in self._datasets.values():
            dataset.close()
        paths = sidecar_paths(self.path)
        targets = {"classes": self.path, "confidence": paths["confidence"],
                   "probabilities": paths["probabilities"]}
        for key in self._datasets:
            resampling = "NEAREST" if key == "classes" else "AVERAGE"
            rasterio.shutil.copy(self._stage / f"{key}.tmp.tif", self._stage / targets[key].name,
                                 driver="COG", RESAMPLING=resampling, **COG_OPTIONS)
            (self._stage / f"{key}.tmp.tif").unlink()
        (self._stage / paths["aux"].name).write_text(pam_categories(self.classes))
        (self._stage / paths["qml"].name).write_text(qml_style(self.classes))


def write_class_map(path: str | Path, classes: np.ndarray, grid: Grid, table: ClassTable) -> Path:
    """Write a whole in-memory class array (labels, small maps) as a class-map COG."""
    with ClassMapWriter(path, grid, table) as writer:
        writer.write(Window(0, 0, grid.width, grid.height), classes)
    return Path(path)


def read_class_table(path: str | Path) -> ClassTable | None:
    """The class table of a class map: colour table + category names (``.aux.xml``), or None."""
    path = Path(path)
    try:
        with rasterio.open(path) as src:
            if src.count != 1 or not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
                return None
            try:
                colormap = src.colormap(1)
            except ValueError:
                colormap = {}
            names_tag = src.tags(1).get("CLASS_NAMES")
    except rasterio.errors.RasterioIOError as exc:
        raise FormatError(path, "GDAL cannot read this raster", "check the file") from exc
    aux = Path(str(path) + ".aux.xml")
    names = read_pam_categories(aux.read_text()) if aux.is_file() else {}
    if not names and not colormap:
        return None
    values = sorted(names) or sorted(v for v, c in colormap.items() if v > 0 and c[3] > 0)
    if not names and names_tag:
        names = dict(zip(values, names_tag.split(";")))
    return ClassTable(tuple(
        ClassEntry(v, names.get(v, str(v)), tuple(colormap.get(v, palette_colour(i))[:3]))
        for i, v in enumerate(values)))
