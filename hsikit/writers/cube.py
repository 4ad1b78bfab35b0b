"""Cubes as GeoTIFF, ENVI or Zarr, streamed window by window with their spectral metadata.

Values are written as stored (same dtype, no scaling applied) and scale/offset travel as metadata,
so a round trip through any of the three formats returns identical numbers.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import zarr

from hsikit.errors import OutputError
from hsikit.progress import Tell
from hsikit.readers import envi, zarr_cube
from hsikit.readers.gdal_metadata import gdal_band_metadata, has_bad_band_list
from hsikit.scene import LONG_NAME_COORD, UNITS_COORD, Scene, is_pixel_grid
from hsikit.writers.atomic import check_output, staged_output
from hsikit.writers.provenance import provenance

WINDOW_BYTES = 64 * 2**20  # read/write this much per window, whatever the scene size
ENVI_DATA_SUFFIX = ".img"
FORMATS = {
    ".tif": "GeoTIFF",
    ".tiff": "GeoTIFF",
    ".hdr": "ENVI",
    ".img": "ENVI",
    ".bsq": "ENVI",
    ".zarr": "Zarr",
}


def window_size(scene: Scene) -> int:
    """Square window side (multiple of 64) keeping one window under ``WINDOW_BYTES``."""
    per_pixel = scene.count * scene.dtype.itemsize
    side = int(math.sqrt(WINDOW_BYTES / max(per_pixel, 1))) // 64 * 64
    return max(64, min(side, 2048))


def format_for(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise OutputError(
            path,
            f"cannot tell the output format from '{path.suffix}'",
            "use .tif (GeoTIFF), .hdr (ENVI) or .zarr (Zarr)",
        ) from None


def _final(path: Path) -> tuple[Path, list[str]]:
    """The main output path for ``path`` and every name written beside it."""
    if format_for(path) == "ENVI":
        header = path.with_suffix(".hdr")
        return header, [header.name, header.with_suffix(ENVI_DATA_SUFFIX).name]
    return path, [path.name]


def check_cube_output(path: str | Path) -> Path:
    """Refuse, before any work, a cube path that a write could not honour safely."""
    final, names = _final(Path(path))
    return check_output(final, entries=names, what="a cube", suffixes=tuple(FORMATS))


def write_cube(
    scene: Scene, path: str | Path, *, on_window: Tell | None = None, **facts: object
) -> Path:
    """Write ``scene`` to ``path``; the suffix picks the format; ``facts`` join the provenance
    (a degradation's spec, a model …); ``on_window(done, total)`` follows the windows written
    (a lazy scene computes as it is read). Returns the main output path."""
    path = Path(path)
    writer = {"GeoTIFF": _write_geotiff, "ENVI": _write_envi, "Zarr": _write_zarr}[format_for(path)]
    final = check_cube_output(path)
    with staged_output(final, suffixes=tuple(FORMATS), what="a cube") as stage:
        writer(scene, stage / final.name, provenance(source=scene.path, **facts), on_window)
    return final


def _windows(scene: Scene, on_window: Tell | None) -> Any:
    windows = list(scene.windows(window_size(scene)))
    for done, window in enumerate(windows, start=1):
        yield window, scene.read_raw(window)
        if on_window is not None:
            on_window(done, len(windows))


def _write_geotiff(
    scene: Scene, target: Path, tags: dict[str, str], on_window: Tell | None
) -> None:
    info = scene.band_info()
    per_band, imagery, envi_tags = gdal_band_metadata(info)
    block = 256
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": scene.width,
        "height": scene.height,
        "count": scene.count,
        "dtype": scene.dtype.name,
        "transform": scene.transform,
        "compress": "DEFLATE",
        "interleave": "band",
        "BIGTIFF": "IF_SAFER",
        "nodata": scene.nodata,
    }
    if scene.width >= block and scene.height >= block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    if scene.crs is not None:
        profile["crs"] = scene.crs
    variables = _variable_tags(scene)
    with rasterio.open(target, "w", **profile) as dst:
        for i in range(scene.count):
            dst.set_band_description(i + 1, str(info.name[i]))
            dst.update_tags(i + 1, **per_band[i], **variables[i])
            if imagery[i]:
                dst.update_tags(i + 1, ns="IMAGERY", **imagery[i])
        if (units := scene.band_texts(UNITS_COORD)) is not None:
            dst.units = tuple(units)  # GDAL's band unit type, what QGIS shows
        dst.update_tags(ns="ENVI", **envi_tags)
        dst.update_tags(**tags, **{key: str(value) for key, value in scene.sample.items()})
        dst.scales = tuple(float(v) for v in info.scale)
        dst.offsets = tuple(float(v) for v in info.offset)
        for window, raw in _windows(scene, on_window):
            dst.write(raw, window=window)


def _variable_tags(scene: Scene) -> list[dict[str, str]]:
    """Per band, the ``units`` and ``long_name`` of a gridded scene's variable (where known)."""
    columns = {key: scene.band_texts(key) for key in (UNITS_COORD, LONG_NAME_COORD)}
    return [
        {key: texts[i] for key, texts in columns.items() if texts is not None and texts[i]}
        for i in range(scene.count)
    ]


def _envi_list(values: np.ndarray) -> list[str] | None:
    return None if not np.isfinite(values).any() else [f"{v:.10g}" for v in values]


def _write_envi(scene: Scene, header: Path, tags: dict[str, str], on_window: Tell | None) -> None:
    from spectral.io import envi as spy_envi

    info = scene.band_info()
    code = envi.DTYPE_CODES.get(scene.dtype.str[1:])
    if code is None:
        raise OutputError(header, f"ENVI cannot store {scene.dtype}", "write GeoTIFF or Zarr")
    meta: dict[str, Any] = {
        "lines": scene.height,
        "samples": scene.width,
        "bands": scene.count,
        "data type": code,
        "interleave": "bsq",
        "byte order": 0,
        "header offset": 0,
        "band names": [str(n) for n in info.name],
        "data gain values": [f"{v:.10g}" for v in info.scale],
        "data offset values": [f"{v:.10g}" for v in info.offset],
        "description": "{"
        + "; ".join(
            f"{k}={v}".replace("{", "(").replace("}", ")")
            for k, v in tags.items()
            if k.startswith("HSIKIT_")
        )
        + "}",
    }
    if has_bad_band_list(info):
        meta["bbl"] = [0 if b else 1 for b in info.bad_band]
    if (wl := _envi_list(info.wavelength)) is not None:
        meta.update({"wavelength": wl, "wavelength units": "Nanometers"})
    if (fwhm := _envi_list(info.fwhm)) is not None:
        meta["fwhm"] = fwhm
    if scene.nodata is not None:
        meta["data ignore value"] = f"{scene.nodata:.10g}"
    if not is_pixel_grid(scene.transform, scene.crs):
        meta.update(envi.write_map_info(scene.crs, scene.transform))
    image = spy_envi.create_image(str(header), meta, ext=ENVI_DATA_SUFFIX, force=True)
    cube = image.open_memmap(interleave="source", writable=True)  # (bands, rows, cols) for bsq
    for window, raw in _windows(scene, on_window):
        (r0, r1), (c0, c1) = window.toranges()
        cube[:, r0:r1, c0:c1] = raw
    cube.flush()
    del cube


def _jsonable(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in values]


def _describe_for_xarray(group: Any, array: Any, scene: Scene, info: Any) -> None:
    """Coordinates and a CF grid mapping beside the cube, so that plain ``xarray.open_zarr``
    (and rioxarray) see a self-describing dataset: dims band / y / x, cell-centre x and y, the
    band numbers, wavelengths and names, the CRS, and for a gridded scene its variables' units
    and long names and the time and member its bands are of."""
    t = scene.transform

    def coordinate(name: str, values: Any, dims: tuple[str, ...], attrs: dict) -> None:
        values = np.asarray(values)
        coord = group.create_array(
            name, shape=values.shape, dtype=values.dtype, dimension_names=dims
        )
        coord[...] = values
        coord.attrs.update(attrs)

    # texts as attributes: Zarr 3 has no portable string data type yet
    band_attrs: dict[str, Any] = {
        "long_name": "band number",
        "band_names": [str(n) for n in info.name],
    }
    for key, attr in ((UNITS_COORD, "band_units"), (LONG_NAME_COORD, "band_long_names")):
        if (texts := scene.band_texts(key)) is not None:
            band_attrs[attr] = texts
    coordinate("band", np.arange(1, scene.count + 1), ("band",), band_attrs)
    coordinate(
        "wavelength",
        np.asarray(info.wavelength, dtype="float64"),
        ("band",),
        {"units": "nm", "long_name": "band centre wavelength"},
    )
    names = ["wavelength"]
    sample = scene.sample
    if "time" in sample:
        seconds = np.datetime64(sample["time"], "s").astype("int64")
        coordinate("time", seconds, (), {"standard_name": "time", "units": zarr_cube.TIME_UNITS})
        names.append("time")
    if isinstance(sample.get("member"), (int, float)):
        coordinate("member", sample["member"], (), {"long_name": "ensemble member"})
        names.append("member")
    elif "member" in sample:  # a named member: Zarr 3 has no portable string type yet
        array.attrs["member"] = str(sample["member"])
    if not (t.b or t.d):  # a north-up grid: 1-D cell-centre coordinates
        geographic = scene.crs is not None and scene.crs.is_geographic
        x_attrs = {"standard_name": "longitude" if geographic else "projection_x_coordinate"}
        y_attrs = {"standard_name": "latitude" if geographic else "projection_y_coordinate"}
        coordinate("x", t.c + t.a * (np.arange(scene.width) + 0.5), ("x",), x_attrs)
        coordinate("y", t.f + t.e * (np.arange(scene.height) + 0.5), ("y",), y_attrs)
    if scene.crs is not None:
        mapping = group.create_array("spatial_ref", shape=(), dtype="int32")
        mapping.attrs.update(
            {
                "crs_wkt": scene.crs.to_wkt(),
                "spatial_ref": scene.crs.to_wkt(),
                "GeoTransform": " ".join(str(v) for v in (t.c, t.a, t.b, t.f, t.d, t.e)),
            }
        )
        array.attrs["grid_mapping"] = "spatial_ref"
        names.append("spatial_ref")
    array.attrs["coordinates"] = " ".join(names)


def _write_zarr(scene: Scene, target: Path, tags: dict[str, str], on_window: Tell | None) -> None:
    info = scene.band_info()
    side = min(window_size(scene), 512)
    group = zarr.open_group(str(target), mode="w")
    nodata = scene.nodata
    array = group.create_array(
        zarr_cube.ARRAY_NAME,
        shape=(scene.count, scene.height, scene.width),
        dtype=scene.dtype,
        chunks=(min(scene.count, 16), min(side, scene.height), min(side, scene.width)),
        dimension_names=("band", "y", "x"),
        fill_value=nodata if nodata is not None else None,
    )
    _describe_for_xarray(group, array, scene, info)
    group.attrs[zarr_cube.ATTR_KEY] = {
        "version": 1,
        "crs": None if scene.crs is None else scene.crs.to_wkt(),
        "transform": list(scene.transform)[:6],
        "nodata": None if nodata is None or not np.isfinite(nodata) else nodata,
        "nodata_is_nan": nodata is not None and not np.isfinite(nodata),
        "wavelength": _jsonable(info.wavelength),
        "fwhm": _jsonable(info.fwhm),
        "bad_band": [bool(b) for b in info.bad_band],
        "name": [str(n) for n in info.name],
        "scale": _jsonable(info.scale),
        "offset": _jsonable(info.offset),
        "provenance": tags,
    }
    for window, raw in _windows(scene, on_window):
        (r0, r1), (c0, c1) = window.toranges()
        array[:, r0:r1, c0:c1] = raw
    with warnings.catch_warnings():  # consolidated metadata is not in the v3 spec yet
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata")
        zarr.consolidate_metadata(str(target))  # what xarray opens without a warning
