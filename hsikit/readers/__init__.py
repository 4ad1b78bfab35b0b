"""``open_scene(path)``: pick the reader by sniffing the file, not by trusting its suffix.

Order matters: container formats first (EnMAP product folders/zips, hsikit Zarr cubes), then
files recognised by magic bytes (MATLAB, GRIB/NetCDF, TIFF, VRT XML), then ENVI headers. Nothing
else is opened: GDAL's other drivers are not offered a file hsikit does not recognise, because
some of them read other files or URLs that the file names (a VRT is opened only once its
sources are checked: :mod:`hsikit.readers.vrt`). Local paths only.

Every file a scene is read from (with its sidecars) is claimed as an input of the running
command, so no output can replace it.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from hsikit.errors import FormatError, HsikitError, InputError, error_reason
from hsikit.inputs import claim_input
from hsikit.readers import enmap, envi, gdal, matlab, vrt, xarray_grid, zarr_cube
from hsikit.scene import Scene

#: (format name, sniff, open) in the order they are tried.
READERS: list[tuple[str, Callable[[Path], bool], Callable[..., Scene]]] = [
    ("enmap", enmap.sniff, enmap.open_scene),
    ("zarr", zarr_cube.sniff, zarr_cube.open_scene),
    ("matlab", matlab.sniff, matlab.open_scene),
    ("xarray", xarray_grid.sniff, xarray_grid.open_scene),
    ("geotiff", gdal.sniff, gdal.open_scene),
    ("vrt", vrt.sniff, vrt.open_scene),
    ("envi", envi.sniff, envi.open_scene),
]
FORMATS = [name for name, _, _ in READERS]
#: Sidecars GDAL and ENVI read beside a raster: part of the input, never to be overwritten.
SIDECAR_SUFFIXES = (".aux.xml", ".ovr", ".msk", ".hdr")
_REMOTE_PREFIXES = ("/vsi", "http:", "https:", "ftp:", "s3:", "gs:", "az:", "file:")


def input_files(path: Path) -> list[Path]:
    """``path`` and the sidecars a reader of it may use (those that exist)."""
    candidates = [path, *(Path(str(path) + s) for s in SIDECAR_SUFFIXES)]
    header = envi.find_header(path)
    if header is not None:
        candidates += [header, *filter(None, [envi.find_data_file(header)])]
    return [c for c in dict.fromkeys(candidates) if c.exists()]


def _refuse_remote(path: Path, text: str) -> None:
    if text.lower().startswith(_REMOTE_PREFIXES) or "://" in text:
        raise InputError(
            path,
            "hsikit opens local files and folders only, not URLs or GDAL virtual paths",
            "download the file first and give its local path",
        )


def _sniffed(path: Path, name: str, sniff: Callable[[Path], bool]) -> bool:
    """Whether ``path`` looks like format ``name``; a sniff that fails on damage is one
    sentence too."""
    try:
        return sniff(path)
    except Exception as exc:  # noqa: BLE001 — any library error on a damaged file
        raise FormatError(
            path,
            f"looks like {name} but cannot be read ({error_reason(exc)})",
            "the file is truncated or corrupt; re-download or re-export it",
        ) from exc


def _opened(path: Path, name: str, opener: Callable[..., Scene], options: dict) -> Scene:
    """``opener(path)``, with whatever a library raises on a damaged file as one sentence."""
    try:
        return opener(path, **options)
    except HsikitError:
        raise
    except MemoryError as exc:
        raise FormatError(
            path,
            "opening it needs more memory than this machine has",
            "the file declares sizes far beyond what it holds; check that it is intact",
        ) from exc
    except Exception as exc:  # noqa: BLE001 — any library error on a damaged file
        raise FormatError(
            path,
            f"cannot be read as {name} ({error_reason(exc)})",
            "the file is truncated or corrupt; re-download or re-export it",
        ) from exc


def open_scene(path: str | PathLike[str], format: str | None = None, **options: Any) -> Scene:
    """Open a scene lazily. ``format`` forces a reader; ``options`` go to it (e.g. ``member``)."""
    text = str(path)
    path = Path(path)
    _refuse_remote(path, text)
    if not path.exists():
        raise InputError(path, "no such file or folder", "check the path")
    if not (path.is_file() or path.is_dir()):
        raise InputError(
            path,
            "not a regular file or folder (a device, pipe or socket)",
            "give the path of a raster file",
        )
    if path.is_file() and path.stat().st_size == 0:
        raise FormatError(path, "the file is empty (0 bytes)", "re-download or re-export it")
    for file in input_files(path):
        claim_input(file, "input scene")
    if format is not None:
        by_name = {name: opener for name, _, opener in READERS}
        if format not in by_name:
            raise InputError(path, f"unknown format '{format}'", f"use one of {', '.join(FORMATS)}")
        return _opened(path, format, by_name[format], options)
    for name, sniff, opener in READERS:
        if _sniffed(path, name, sniff):
            return _opened(path, name, opener, options)
    raise FormatError(
        path,
        "format not recognised: hsikit reads GeoTIFF, VRT mosaics of GeoTIFF tiles, ENVI, "
        "MATLAB, EnMAP L2A, NetCDF, GRIB and Zarr (not other GDAL formats, which can "
        "read other files)",
        "convert it to GeoTIFF, e.g. with gdal_translate",
    )
