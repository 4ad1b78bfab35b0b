"""A scene's class map assembled from its finished tiles, with its area statistics.

The map goes through the same :class:`ClassMapWriter` as ``hsikit classify`` (COG, colour table,
names, RAT, ``.qml``, overviews that keep class values, optional confidence), tile by tile in the
window order classify writes, so memory stays one tile and the file is the one classify writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hsikit.classes import ClassTable
from hsikit.evaluation.area import SQUARE_METRES_PER_HECTARE, AreaUnknown, row_pixel_areas
from hsikit.predict.classify import nothing_to_map
from hsikit.predict.manifest import PlannedScene
from hsikit.predict.tiles import read_tile
from hsikit.writers.classmap import CLASS_NODATA, ClassMapWriter


@dataclass
class ClassTally:
    """Pixels, ground area and summed confidence per class value, accumulated tile by tile."""

    values: np.ndarray
    row_areas: np.ndarray | None
    area_note: str | None = None
    pixels: np.ndarray = field(init=False)
    square_metres: np.ndarray = field(init=False)
    confidence: np.ndarray = field(init=False)
    nodata: int = 0

    def __post_init__(self) -> None:
        self._index = np.full(int(self.values.max()) + 1, -1, np.int64)
        self._index[self.values] = np.arange(len(self.values))
        self.pixels = np.zeros(len(self.values), np.int64)
        self.square_metres = np.zeros(len(self.values))
        self.confidence = np.zeros(len(self.values))

    def add(self, row_off: int, classes: np.ndarray, confidence: np.ndarray | None) -> None:
        index = self._index[classes]
        valid = (classes != CLASS_NODATA) & (index >= 0)
        self.nodata += int((~valid).sum())
        k = len(self.values)
        self.pixels += np.bincount(index[valid], minlength=k)[:k]
        if self.row_areas is not None:
            rows = np.broadcast_to(np.arange(classes.shape[0])[:, None] + row_off, classes.shape)
            weights = self.row_areas[rows[valid]]
            self.square_metres += np.bincount(index[valid], weights=weights, minlength=k)[:k]
        if confidence is not None:
            self.confidence += np.bincount(
                index[valid], weights=confidence[valid].astype("float64"), minlength=k
            )[:k]

    def summary(self, table: ClassTable, *, with_confidence: bool) -> dict:
        """Per class and in total: pixels, hectares (None where the grid has no ground area),
        mean confidence of the mapped class (None when it was not asked for)."""
        classes = []
        for entry, pixels, area, conf in zip(
            table.entries, self.pixels, self.square_metres, self.confidence
        ):
            classes.append(
                {
                    "value": entry.value,
                    "name": entry.name,
                    "colour": "#{:02x}{:02x}{:02x}".format(*entry.colour),
                    "pixels": int(pixels),
                    "hectares": None
                    if self.row_areas is None
                    else float(area) / SQUARE_METRES_PER_HECTARE,
                    "mean_confidence": float(conf / pixels) if with_confidence and pixels else None,
                }
            )
        classified = int(self.pixels.sum())
        return {
            "classes": classes,
            "classified_pixels": classified,
            "nodata_pixels": self.nodata,
            "hectares": None
            if self.row_areas is None
            else float(self.square_metres.sum()) / SQUARE_METRES_PER_HECTARE,
            "area_note": self.area_note,
            "mean_confidence": float(self.confidence.sum() / classified)
            if with_confidence and classified
            else None,
        }


def assemble_scene(
    planned: PlannedScene,
    tiles: Path,
    output: Path,
    table: ClassTable,
    *,
    confidence: bool,
    tags: dict[str, str],
) -> dict:
    """Write ``planned``'s map at ``output`` from its tiles; its area statistics."""
    assert planned.grid is not None, "only planned (not failed) scenes are assembled"
    grid = planned.grid.grid
    try:
        areas, note = row_pixel_areas(grid), None
    except AreaUnknown as exc:
        areas, note = None, str(exc)
    tally = ClassTally(np.asarray(table.values), areas, note)
    with ClassMapWriter(output, grid, table, confidence=confidence, tags=tags) as writer:
        for job in planned.tile_jobs():
            arrays = read_tile(job.path_in(tiles), job, confidence=confidence)
            if arrays is None:
                raise FileNotFoundError(f"tile {job.path_in(tiles)} is missing or incomplete")
            scores = arrays.get("confidence")
            writer.write(job.window, arrays["classes"], confidence=scores)
            tally.add(job.row, arrays["classes"], scores)
        if not tally.pixels.sum():
            raise nothing_to_map(planned.source)
    return tally.summary(table, with_confidence=confidence)
