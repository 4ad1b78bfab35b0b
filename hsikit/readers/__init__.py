"""``open_scene(path)``: pick the reader by sniffing the file, not by trusting its suffix.

Order matters: container formats first (EnMAP product folders/zips, hsikit Zarr cubes), then
files recognised by magic bytes (MATLAB, GRIB/NetCDF, TIFF), then ENVI headers; anything else is
offered to GDAL as a last resort.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path

from rasterio.errors import RasterioIOError

from hsikit.errors import FormatError, InputError
from hsikit.readers import enmap, envi, gdal, matlab, xarray_grid, zarr_cube
from hsikit.scene import Scene

#: (format name, sniff, open) in the order they are tried.
READERS: list[tuple[str, Callable[[Path], bool], Callable[..., Scene]]] = [
    ("enmap", enmap.sniff, enmap.open_scene),
    ("zarr", zarr_cube.sniff, zarr_cube.open_scene),
    ("matlab", matlab.sniff, matlab.open_scene),
    ("xarray", xarray_grid.sniff, xarray_grid.open_scene),
    ("geotiff", gdal.sniff, gdal.open_scene),
    ("envi", envi.sniff, envi.open_scene),
]
FORMATS = [name for name, _, _ in READERS]


def open_scene(path: str | PathLike[str], format: str | None = None, **options: object) -> Scene:
    """Open a scene lazily. ``format`` forces a reader; ``options`` go to it (e.g. ``member``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder", "check the path")
    if path.is_file() and path.stat().st_size == 0:
        raise FormatError(path, "the file is empty (0 bytes)", "re-download or re-export it")
    if format is not None:
        by_name = {name: opener for name, _, opener in READERS}
        if format not in by_name:
            raise InputError(path, f"unknown format '{format}'", f"use one of {', '.join(FORMATS)}")
        return by_name[format](path, **options)
    for _, sniff, opener in READERS:
        if sniff(path):
            return opener(path, **options)
    if path.is_file():
        try:
            return gdal.open_scene(path, format_name="GDAL raster", **options)
        except FormatError:
            pass
        except RasterioIOError:
            pass
    raise FormatError(path, "format not recognised (not GeoTIFF, ENVI, MATLAB, EnMAP L2A, NetCDF, "
                      "GRIB or Zarr)", "convert it to GeoTIFF, or pass --format")
