"""hsikit Zarr cubes: a group holding array ``cube`` ``(band, y, x)`` and an ``hsikit`` attribute
with CRS (WKT), transform, nodata and band metadata. Written by :mod:`hsikit.writers.cube`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from affine import Affine
from rasterio.crs import CRS

from hsikit.errors import FormatError
from hsikit.scene import BandInfo, Scene

ARRAY_NAME = "cube"
ATTR_KEY = "hsikit"


def sniff(path: Path) -> bool:
    if not path.is_dir():
        return False
    for meta in ("zarr.json", ".zattrs"):
        file = path / meta
        if file.is_file():
            try:
                doc = json.loads(file.read_text())
            except (OSError, json.JSONDecodeError):
                return False
            attrs = doc.get("attributes", doc) if meta == "zarr.json" else doc
            return ATTR_KEY in attrs
    return False


def _floats(values: list[Any] | None, count: int, default: float) -> np.ndarray:
    if values is None:
        return np.full(count, default)
    return np.asarray([default if v is None else float(v) for v in values], dtype="float64")


def open_scene(path: Path, **_: object) -> Scene:
    try:
        group = zarr.open_group(str(path), mode="r")
        array = group[ARRAY_NAME]
    except Exception as exc:
        raise FormatError(path, f"not a readable hsikit Zarr cube ({exc})",
                          "write cubes with 'hsikit convert … -o cube.zarr'") from exc
    meta = dict(group.attrs[ATTR_KEY])
    count = int(array.shape[0])
    bands = BandInfo.build(
        count,
        wavelength=_floats(meta.get("wavelength"), count, np.nan),
        fwhm=_floats(meta.get("fwhm"), count, np.nan),
        bad_band=meta.get("bad_band"),
        name=meta.get("name"),
        scale=_floats(meta.get("scale"), count, 1.0),
        offset=_floats(meta.get("offset"), count, 0.0),
        source="hsikit Zarr attributes",
    )

    def read(band_ids: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        lo, hi = int(band_ids.min()), int(band_ids.max()) + 1
        return np.asarray(array[lo:hi, rows, cols])[band_ids - lo]

    crs = CRS.from_wkt(meta["crs"]) if meta.get("crs") else None
    nodata = float("nan") if meta.get("nodata_is_nan") else meta.get("nodata")
    return Scene.from_reader(
        read, shape=tuple(array.shape), dtype=array.dtype, bands=bands, path=str(path),
        format="Zarr", crs=crs, transform=Affine(*meta["transform"][:6]),
        nodata=None if nodata is None else float(nodata),
    )
