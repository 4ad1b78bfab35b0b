"""Classification maps as GIS-ready Cloud-Optimized GeoTIFFs, written window by window.

Layout of ``map.tif``: one band, uint8 (uint16 past 255 classes), nodata 0, a colour table of
the fewest entries TIFF allows for the class values (``NBITS``: 2, 4, … 256), tiled,
DEFLATE-compressed, nearest-neighbour overviews, COG layout, provenance tags; beside it
``map.tif.aux.xml`` (category names + RAT) and ``map.qml`` (QGIS paletted style). Optional
``map_confidence.tif`` (uint8 0–100 %, nodata 255, with ``map_confidence.qml``) and
``map_probabilities.tif`` (uint8 0–100 % per class, nodata 255).

Windows go to tiled temporary GeoTIFFs first; the COG driver then copies them with overviews —
GDAL's COG driver needs a complete source, so this two-step path keeps memory bounded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from hsikit.classes import ClassEntry, ClassTable, default_class_name, palette_colour
from hsikit.errors import FormatError, error_reason
from hsikit.scene import PIXEL_GRID, Grid, is_pixel_grid
from hsikit.writers.atomic import check_output, staged_output
from hsikit.writers.provenance import provenance
from hsikit.writers.styles import pam_categories, qml_style, read_pam_categories, score_qml_style

CLASS_NODATA = 0
SCORE_NODATA = 255
BLOCKSIZE = 256
SUFFIXES = (".tif", ".tiff")
WHAT = "a class map"
COG_OPTIONS = {
    "COMPRESS": "DEFLATE",
    "BLOCKSIZE": BLOCKSIZE,
    "BIGTIFF": "IF_SAFER",
    "OVERVIEWS": "AUTO",
}


def sidecar_paths(path: Path) -> dict[str, Path]:
    """Every file a class map is written as, by role (the map itself under "classes")."""
    stem = path.with_suffix("")
    return {
        "classes": path,
        "aux": Path(str(path) + ".aux.xml"),
        "qml": path.with_suffix(".qml"),
        "confidence": Path(f"{stem}_confidence.tif"),
        "confidence_qml": Path(f"{stem}_confidence.qml"),
        "probabilities": Path(f"{stem}_probabilities.tif"),
    }


def output_names(path: Path, *, confidence: bool = False, probabilities: bool = False) -> list[str]:
    """File names a class map with these options writes beside ``path``."""
    skipped = set() if confidence else {"confidence", "confidence_qml"}
    skipped |= set() if probabilities else {"probabilities"}
    return [p.name for role, p in sidecar_paths(path).items() if role not in skipped]


def check_class_map_output(
    path: str | Path, *, confidence: bool = False, probabilities: bool = False, inputs: tuple = ()
) -> Path:
    """Refuse, before any work, a class-map path that a write could not honour safely."""
    path = Path(path)
    return check_output(
        path,
        entries=output_names(path, confidence=confidence, probabilities=probabilities),
        suffixes=SUFFIXES,
        what=WHAT,
        inputs=inputs,
    )


def palette_bits(max_value: int) -> int:
    """Bits per pixel (TIFF ``NBITS``) whose palette, 2**bits entries, holds 0…``max_value``."""
    return min(8, max(1, int(max_value).bit_length()))


def _profile(grid: Grid, dtype: str, count: int, nodata: int) -> dict:
    transform = PIXEL_GRID if is_pixel_grid(grid.transform, grid.crs) else grid.transform
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": count,
        "dtype": dtype,
        "nodata": nodata,
        "transform": transform,
        "tiled": True,
        "blockxsize": BLOCKSIZE,
        "blockysize": BLOCKSIZE,
        "compress": "DEFLATE",
        "BIGTIFF": "IF_SAFER",
    }
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
    ``tags``: provenance written into every raster (default: software and time);
    ``unlabelled_name``: what value 0 is
    called in the category names (nodata in a map, unlabelled in labels).
    """

    def __init__(
        self,
        path: str | Path,
        grid: Grid,
        classes: ClassTable,
        *,
        confidence: bool = False,
        probabilities: bool = False,
        tags: dict[str, str] | None = None,
        unlabelled_name: str = "nodata",
    ) -> None:
        self.path = Path(path)
        self.grid = grid
        self.classes = classes
        self.dtype = "uint8" if classes.max_value <= 255 else "uint16"
        self.want_confidence = confidence
        self.want_probabilities = probabilities
        self.tags = dict(tags) if tags is not None else provenance()
        self.unlabelled_name = unlabelled_name
        self._stack = ExitStack()
        self._datasets: dict[str, rasterio.io.DatasetWriter] = {}

    def __enter__(self) -> ClassMapWriter:
        check_class_map_output(
            self.path, confidence=self.want_confidence, probabilities=self.want_probabilities
        )
        self._stage = self._stack.enter_context(
            staged_output(self.path, suffixes=SUFFIXES, what=WHAT)
        )
        self._open("classes", _profile(self.grid, self.dtype, 1, CLASS_NODATA))
        if self.want_confidence:
            self._open("confidence", _profile(self.grid, "uint8", 1, SCORE_NODATA))
        if self.want_probabilities:
            profile = _profile(self.grid, "uint8", len(self.classes), SCORE_NODATA)
            # plain data bands: 3 or 4 uint8 bands would otherwise be an RGB(A) picture
            profile["photometric"] = "MINISBLACK"
            self._open("probabilities", profile)
        return self

    def _open(self, key: str, profile: dict) -> None:
        dataset = rasterio.open(self._stage / f"{key}.tmp.tif", "w", **profile)
        self._datasets[key] = self._stack.enter_context(dataset)

    def write(
        self,
        window: Window,
        classes: np.ndarray,
        *,
        confidence: np.ndarray | None = None,
        probabilities: np.ndarray | None = None,
    ) -> None:
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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if exc_type is None:
            try:
                self._finish()
            except BaseException as error:  # discard the staging folder, keep the error
                self._stack.__exit__(type(error), error, error.__traceback__)
                raise
        return self._stack.__exit__(exc_type, exc, tb)

    def _describe(self) -> None:
        """Colour table, names, units and provenance on the temporary rasters."""
        entries = self.classes.entries
        classes_ds = self._datasets["classes"]
        if self.dtype == "uint8":
            colours = {v: (0, 0, 0, 0) for v in range(1 << palette_bits(self.classes.max_value))}
            colours.update({e.value: (*e.colour, 255) for e in entries})
            classes_ds.write_colormap(1, colours)
        classes_ds.set_band_description(1, "class")
        classes_ds.update_tags(
            1,
            CLASS_VALUES=";".join(str(e.value) for e in entries),
            CLASS_NAMES=";".join(e.name for e in entries),
        )
        if "confidence" in self._datasets:
            confidence = self._datasets["confidence"]
            confidence.set_band_description(1, "confidence of the mapped class (%)")
            confidence.set_band_unit(1, "%")
        if "probabilities" in self._datasets:
            probabilities = self._datasets["probabilities"]
            probabilities.colorinterp = [ColorInterp.gray] + [ColorInterp.undefined] * (
                probabilities.count - 1
            )
            for i, entry in enumerate(entries, start=1):
                probabilities.set_band_description(i, entry.name)
                probabilities.set_band_unit(i, "%")
        for dataset in self._datasets.values():
            dataset.update_tags(**self.tags)

    def _finish(self) -> None:
        """Describe, then COG copies under the final names, then the sidecars."""
        self._describe()
        for dataset in self._datasets.values():
            dataset.close()
        paths = sidecar_paths(self.path)
        for key in self._datasets:
            staged, final = self._stage / f"{key}.tmp.tif", self._stage / paths[key].name
            if key == "probabilities":
                _plain_bands_cog(staged, final)
            else:
                options = dict(COG_OPTIONS, RESAMPLING="NEAREST" if key == "classes" else "AVERAGE")
                if key == "classes" and self.dtype == "uint8":
                    options["NBITS"] = palette_bits(self.classes.max_value)
                rasterio.shutil.copy(staged, final, driver="COG", **options)
            staged.unlink()
        (self._stage / paths["aux"].name).write_text(
            pam_categories(self.classes, self.unlabelled_name)
        )
        (self._stage / paths["qml"].name).write_text(qml_style(self.classes))
        if "confidence" in self._datasets:
            (self._stage / paths["confidence_qml"].name).write_text(score_qml_style("confidence"))


def _plain_bands_cog(staged: Path, final: Path) -> None:
    """A cloud-optimised GeoTIFF of plain data bands (photometric MINISBLACK): GDAL's COG
    driver makes any 3 or 4 uint8 bands an RGB(A) picture, so the probabilities of 3 or 4
    classes are tiled, given averaged overviews and copied overviews-first by the GTiff driver
    instead, the layout the COG driver writes."""
    with rasterio.open(staged, "r+") as src:
        factors: list[int] = []
        side = max(src.width, src.height)
        while side > BLOCKSIZE:
            factors.append(2 ** (len(factors) + 1))
            side //= 2
        if factors:
            src.build_overviews(factors, Resampling.average)
    rasterio.shutil.copy(
        staged,
        final,
        driver="GTiff",
        TILED="YES",
        BLOCKXSIZE=BLOCKSIZE,
        BLOCKYSIZE=BLOCKSIZE,
        COMPRESS="DEFLATE",
        BIGTIFF="IF_SAFER",
        COPY_SRC_OVERVIEWS="YES",
        PHOTOMETRIC="MINISBLACK",
    )


def write_class_map(
    path: str | Path,
    classes: np.ndarray,
    grid: Grid,
    table: ClassTable,
    *,
    tags: dict[str, str] | None = None,
    unlabelled_name: str = "unlabelled",
) -> Path:
    """Write a whole in-memory class array (labels, small maps) as a class-map COG."""
    with ClassMapWriter(path, grid, table, tags=tags, unlabelled_name=unlabelled_name) as writer:
        writer.write(Window(0, 0, grid.width, grid.height), classes)
    return Path(path)


def read_class_table(path: str | Path) -> ClassTable | None:
    """The class table of a class map — its values, names (tags, else ``.aux.xml``) and colour
    table — or None for a raster that is not one."""
    from hsikit.readers.gdal import open_dataset

    path = Path(path)
    try:
        with open_dataset(str(path)) as src:
            if src.count != 1 or not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
                return None
            try:
                colormap = src.colormap(1)
            except ValueError:
                colormap = {}
            tags = src.tags(1)
    except RasterioError as exc:
        raise FormatError(
            path, f"GDAL cannot read this raster ({error_reason(exc)})", "check the file"
        ) from exc
    names = _tagged_classes(tags)
    aux = Path(str(path) + ".aux.xml")
    if not names and aux.is_file():
        try:
            names = read_pam_categories(aux.read_text(errors="replace"))
        except ET.ParseError as exc:
            raise FormatError(
                aux,
                f"the class names beside the map are not valid XML ({exc})",
                "delete the .aux.xml or write the map again",
            ) from exc
    if not names and not colormap:
        return None
    values = sorted(names) or sorted(v for v, c in colormap.items() if v > 0 and c[3] > 0)
    return ClassTable(
        tuple(
            ClassEntry(
                v,
                names.get(v) or default_class_name(v),
                tuple(colormap.get(v, palette_colour(i))[:3]),
            )
            for i, v in enumerate(values)
        )
    )


def _tagged_classes(tags: dict[str, str]) -> dict[int, str]:
    """Values and names from the map's own tags (older maps carry names only: not enough)."""
    names = tags.get("CLASS_NAMES", "")
    values = tags.get("CLASS_VALUES", "")
    if not names or not values:
        return {}
    try:
        numbers = [int(v) for v in values.split(";")]
    except ValueError:
        return {}
    listed = names.split(";")
    return dict(zip(numbers, listed)) if len(listed) == len(numbers) else {}
