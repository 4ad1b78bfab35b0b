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
from rasterio.errors import CRSError

from hsikit.errors import FormatError, error_reason
from hsikit.scene import BandInfo, Scene

ARRAY_NAME = "cube"
ATTR_KEY = "hsikit"
#: CF units of the scalar ``time`` coordinate of a gridded scene's cube.
TIME_UNITS = "seconds since 1970-01-01T00:00:00"


def sniff(path: Path) -> bool:
    if not path.is_dir():
        return False
    for meta in ("zarr.json", ".zattrs"):
        file = path / meta
        if file.is_file():
            try:
                doc = json.loads(file.read_text())
            except (OSError, ValueError, RecursionError):
                return False
            attrs = (
                doc.get("attributes", doc) if meta == "zarr.json" and isinstance(doc, dict) else doc
            )
            return isinstance(attrs, dict) and ATTR_KEY in attrs
    return False


def _attribute_error(path: Path, problem: str) -> FormatError:
    return FormatError(
        path,
        f"the cube's '{ATTR_KEY}' attributes are invalid: {problem}",
        "write cubes with 'hsikit convert … -o cube.zarr'",
    )


def _list(meta: dict[str, Any], key: str, count: int, path: Path) -> list[Any] | None:
    values = meta.get(key)
    if values is None:
        return None
    if not isinstance(values, list) or len(values) != count:
        raise _attribute_error(path, f"'{key}' must list one value for each of the {count} bands")
    return values


def _floats(meta: dict[str, Any], key: str, count: int, default: float, path: Path) -> np.ndarray:
    values = _list(meta, key, count, path)
    if values is None:
        return np.full(count, default)
    try:
        return np.asarray([default if v is None else float(v) for v in values], dtype="float64")
    except (TypeError, ValueError) as exc:
        raise _attribute_error(path, f"'{key}' holds a value that is not a number") from exc


def _grid(meta: dict[str, Any], path: Path) -> tuple[CRS | None, Affine, float | None]:
    transform = meta.get("transform")
    try:
        numbers = [float(v) for v in transform]  # type: ignore[union-attr]  # None: TypeError
    except (TypeError, ValueError) as exc:
        raise _attribute_error(path, "'transform' must be six numbers") from exc
    if len(numbers) < 6 or not np.all(np.isfinite(numbers[:6])):
        raise _attribute_error(path, "'transform' must be six finite numbers")
    try:
        crs = CRS.from_wkt(meta["crs"]) if meta.get("crs") else None
    except (CRSError, TypeError) as exc:
        raise _attribute_error(path, f"'crs' is not a valid WKT ({error_reason(exc)})") from exc
    nodata = float("nan") if meta.get("nodata_is_nan") else meta.get("nodata")
    if nodata is not None and not isinstance(nodata, (int, float)):
        raise _attribute_error(path, "'nodata' is not a number")
    return crs, Affine(*numbers[:6]), None if nodata is None else float(nodata)


def open_scene(path: Path, **_: object) -> Scene:
    try:
        group = zarr.open_group(str(path), mode="r")
        array = group[ARRAY_NAME]
        meta = group.attrs[ATTR_KEY]
    except Exception as exc:
        raise FormatError(
            path,
            f"not a readable hsikit Zarr cube ({error_reason(exc)})",
            "write cubes with 'hsikit convert … -o cube.zarr'",
        ) from exc
    if not isinstance(meta, dict):
        raise _attribute_error(path, "they are not a JSON object")
    if not isinstance(array, zarr.Array) or array.ndim != 3:
        raise FormatError(
            path,
            f"'{ARRAY_NAME}' is not a 3-D array (band, y, x)",
            "write cubes with 'hsikit convert … -o cube.zarr'",
        )
    count = int(array.shape[0])
    bad = _list(meta, "bad_band", count, path)
    bands = BandInfo.build(
        count,
        wavelength=_floats(meta, "wavelength", count, np.nan, path),
        fwhm=_floats(meta, "fwhm", count, np.nan, path),
        bad_band=None if bad is None else [bool(b) for b in bad],
        name=_list(meta, "name", count, path),
        scale=_floats(meta, "scale", count, 1.0, path),
        offset=_floats(meta, "offset", count, 0.0, path),
        source="hsikit Zarr attributes",
    )
    crs, transform, nodata = _grid(meta, path)

    def read(band_ids: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        lo, hi = int(band_ids.min()), int(band_ids.max()) + 1
        return np.asarray(array[lo:hi, rows, cols])[band_ids - lo]

    return Scene.from_reader(
        read,
        shape=(int(array.shape[0]), int(array.shape[1]), int(array.shape[2])),
        dtype=array.dtype,
        bands=bands,
        path=str(path),
        format="Zarr",
        crs=crs,
        transform=transform,
        nodata=nodata,
    ).with_variables(**_variables(group, array, count))


def _variables(group: zarr.Group, array: zarr.Array, count: int) -> dict[str, Any]:
    """What gridded bands measure and when, as the cube writer records it (the band
    coordinate's ``band_units`` / ``band_long_names``, scalar ``time`` in CF seconds and
    ``member``): for :meth:`Scene.with_variables`. Anything malformed is left out."""

    def texts(attr: str) -> list[str] | None:
        band = group.get("band")
        values: Any = band.attrs.get(attr) if isinstance(band, zarr.Array) else None
        ok = isinstance(values, list) and len(values) == count
        return [str(v) for v in values] if ok else None

    def scalar(name: str) -> Any:
        found = group.get(name)
        ok = isinstance(found, zarr.Array) and found.shape == ()
        return np.asarray(found[()]).item() if ok else None  # type: ignore[index]

    sample: dict[str, Any] = {}
    time = group.get("time")
    if scalar("time") is not None and time is not None and time.attrs.get("units") == TIME_UNITS:
        seconds = np.datetime64(int(scalar("time")), "s")
        sample["time"] = np.datetime_as_string(seconds, unit="s")
    if scalar("member") is not None:
        sample["member"] = scalar("member")
    elif "member" in array.attrs:
        sample["member"] = str(array.attrs["member"])
    return {
        "units": texts("band_units"),
        "long_names": texts("band_long_names"),
        "sample": sample,
    }
