"""ENVI ``.hdr`` + raw data (BSQ / BIL / BIP), read with positioned reads of the window only.

The header is parsed with ``spectral``; pixels come from ``os.pread`` of the window's byte runs
(a memory map would fault in neighbouring pages too, growing memory with every window). ``map info``
becomes the affine transform. A ``rotation=`` in ``map info`` is **honoured** as a rotated affine,
the same convention as GDAL's ENVI driver (counter-clockwise degrees about the reference pixel),
so a rotated scene's pixels land where GDAL and QGIS put them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj.exceptions import CRSError
from rasterio.crs import CRS

from hsikit.errors import FormatError, InputError
from hsikit.readers.gdal_metadata import nm_factor
from hsikit.scene import PIXEL_GRID, BandInfo, Scene

DATA_SUFFIXES = ("", ".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".bin", ".IMG", ".DAT")
MAX_HEADER_BYTES = 64 * 2**20
REQUIRED_KEYS = ("samples", "lines", "bands", "data type", "interleave")
#: ENVI ``data type`` code → numpy type.
DTYPES = {
    1: "u1",
    2: "i2",
    3: "i4",
    4: "f4",
    5: "f8",
    6: "c8",
    9: "c16",
    12: "u2",
    13: "u4",
    14: "i8",
    15: "u8",
}
DTYPE_CODES = {np.dtype(v).str[1:]: k for k, v in DTYPES.items()}


def sniff(path: Path) -> bool:
    return find_header(path) is not None


def find_header(path: Path) -> Path | None:
    """The header for ``path``: itself if it is one, else ``path.hdr`` or the same stem + .hdr."""
    if path.suffix.lower() == ".hdr" and path.is_file():
        return path
    for candidate in (Path(str(path) + ".hdr"), path.with_suffix(".hdr"), path.with_suffix(".HDR")):
        if candidate.is_file() and candidate != path:
            return candidate
    return None


def find_data_file(header: Path) -> Path | None:
    stem = header.with_suffix("")
    for suffix in DATA_SUFFIXES:
        candidate = Path(str(stem) + suffix)
        if candidate.is_file() and candidate != header:
            return candidate
    return None


def read_header(header: Path) -> dict[str, Any]:
    from spectral.io import envi

    if header.stat().st_size > MAX_HEADER_BYTES:
        raise FormatError(
            header,
            f"the ENVI header is {header.stat().st_size / 2**20:.0f} MB, far "
            "larger than any real header",
            "check that this is an ENVI .hdr file",
        )
    try:
        meta = envi.read_envi_header(str(header))
    except Exception as exc:  # spectral raises its own types for malformed headers
        raise FormatError(
            header,
            f"the ENVI header cannot be parsed ({exc})",
            "check that it starts with 'ENVI' and that every '{' is closed",
        ) from exc
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise FormatError(
            header,
            f"the ENVI header lacks required keys: {', '.join(missing)}",
            "add them (samples, lines, bands, data type, interleave)",
        )
    return meta


def open_scene(path: Path, **_: object) -> Scene:
    header = find_header(path)
    if header is None:
        raise InputError(
            path,
            "no ENVI header (.hdr) found beside this file",
            "put the .hdr next to the data file",
        )
    meta = read_header(header)
    data_file = path if path != header and path.is_file() else find_data_file(header)
    if data_file is None:
        raise InputError(
            header,
            "the ENVI data file is missing (looked for the header's name "
            "with no suffix, .img, .dat, .raw, .bsq, .bil, .bip)",
            "put the data file next to the header",
        )
    try:
        samples, lines, bands = int(meta["samples"]), int(meta["lines"]), int(meta["bands"])
        code = int(meta["data type"])
        offset = int(meta.get("header offset", 0))
        big_endian = int(meta.get("byte order", 0)) == 1
    except ValueError as exc:
        raise FormatError(
            header,
            f"a size field of the ENVI header is not an integer ({exc})",
            "fix samples / lines / bands / data type",
        ) from exc
    if offset < 0:
        raise FormatError(
            header, f"the header offset is negative ({offset})", "fix 'header offset'"
        )
    if code not in DTYPES:
        raise FormatError(
            header, f"ENVI data type {code} is not supported", f"use one of {sorted(DTYPES)}"
        )
    dtype = np.dtype(DTYPES[code]).newbyteorder(">" if big_endian else "<")
    interleave = str(meta["interleave"]).strip().lower()
    if interleave not in ("bsq", "bil", "bip"):
        raise FormatError(header, f"unknown interleave '{interleave}'", "use bsq, bil or bip")
    expected = offset + bands * lines * samples * dtype.itemsize
    actual = data_file.stat().st_size
    if actual < expected:
        raise FormatError(
            data_file,
            f"the data file holds {actual} bytes but the header "
            f"describes {expected} ({bands} bands × {lines} lines × {samples} samples"
            f" × {dtype.itemsize} bytes + {offset} offset)",
            "the file is truncated or the header does not belong to it",
        )
    if min(bands, lines, samples) <= 0:
        raise FormatError(
            header,
            f"the raster is empty ({bands}×{lines}×{samples})",
            "check samples, lines and bands",
        )
    native = dtype.newbyteorder("=")

    def read(band_ids: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        """Positioned reads of exactly the window's byte runs: no mapping, no read-ahead."""
        row_ids = range(rows.start, rows.stop, rows.step or 1)
        c0, c1 = cols.start, cols.stop
        out = np.empty((len(band_ids), len(row_ids), c1 - c0), dtype=native)
        with open(data_file, "rb") as fh:
            fd = fh.fileno()

            def run(first_element: int, count: int) -> np.ndarray:
                raw = os.pread(fd, count * dtype.itemsize, offset + first_element * dtype.itemsize)
                return np.frombuffer(raw, dtype=dtype, count=count)

            for j, r in enumerate(row_ids):
                if interleave == "bsq":
                    for i, b in enumerate(band_ids):
                        out[i, j] = run((int(b) * lines + r) * samples + c0, c1 - c0)
                elif interleave == "bil":
                    for i, b in enumerate(band_ids):
                        out[i, j] = run((r * bands + int(b)) * samples + c0, c1 - c0)
                else:
                    pixels = run((r * samples + c0) * bands, (c1 - c0) * bands)
                    out[:, j] = pixels.reshape(c1 - c0, bands)[:, band_ids].T
        return out[:, :, :: cols.step or 1]

    crs, transform, notes = map_info_grid(meta, header)
    info, band_notes = band_info_from_header(meta, bands, header)
    return Scene.from_reader(
        read,
        shape=(bands, lines, samples),
        dtype=dtype.newbyteorder("="),
        bands=info,
        path=str(data_file),
        format="ENVI",
        crs=crs,
        transform=transform,
        nodata=_nodata(meta, header),
        notes=notes + band_notes,
    )


def _number(value: Any, key: str, header: Path) -> float:
    try:
        return float(str(value).strip())
    except ValueError:
        raise FormatError(
            header, f"the header's '{key}' is not a number ('{value}')", f"fix or remove '{key}'"
        ) from None


def _nodata(meta: dict[str, Any], header: Path) -> float | None:
    value = meta.get("data ignore value")
    return None if value is None else _number(value, "data ignore value", header)


def band_info_from_header(
    meta: dict[str, Any], count: int, header: Path
) -> tuple[BandInfo, list[str]]:
    """Band metadata from the header; a per-band list of the wrong length is refused (its values
    could not be matched to bands), band names of the wrong length are replaced, with a note."""

    def floats(key: str) -> np.ndarray | None:
        values = meta.get(key)
        if values is None:
            return None
        values = values if isinstance(values, list) else [values]
        if len(values) != count:
            raise FormatError(
                header,
                f"the header's '{key}' lists {len(values)} values for {count} bands",
                f"give one value per band, or remove '{key}'",
            )
        return np.asarray([_number(v, key, header) for v in values], dtype="float64")

    wl, fwhm = floats("wavelength"), floats("fwhm")
    factor = nm_factor(meta.get("wavelength units"), [] if wl is None else list(wl))
    bbl = floats("bbl")
    names = meta.get("band names")
    notes = []
    units = str(meta.get("wavelength units") or "")
    if wl is not None and units.strip().lower() == "unknown":
        unit = "micrometres" if factor == 1000.0 else "nanometres"
        notes.append(
            f"'wavelength units = {units}': the wavelengths were read as {unit} by their size"
        )
    if names is not None and not (isinstance(names, list) and len(names) == count):
        notes.append(
            f"'band names' lists {len(names) if isinstance(names, list) else 1} names "
            f"for {count} bands: named band_1 … band_{count} instead"
        )
    return BandInfo.build(
        count,
        wavelength=None if wl is None else wl * factor,
        fwhm=None if fwhm is None else fwhm * factor,
        bad_band=None if bbl is None else bbl == 0,
        name=names if isinstance(names, list) and len(names) == count else None,
        scale=floats("data gain values"),
        offset=floats("data offset values"),
        source="ENVI header" if wl is not None else "none",
    ), notes


def map_info_grid(meta: dict[str, Any], header: Path) -> tuple[CRS | None, Affine, list[str]]:
    """CRS and affine transform from ``map info`` (and ``coordinate system string``)."""
    info = meta.get("map info")
    if info is None:
        return None, PIXEL_GRID, ["no map info: pixel grid, no CRS"]
    fields = [str(f).strip() for f in (info if isinstance(info, list) else [info])]
    try:
        ref_x, ref_y, easting, northing, size_x, size_y = (float(v) for v in fields[1:7])
    except (ValueError, IndexError) as exc:
        raise FormatError(
            header,
            f"map info is malformed ({', '.join(fields)})",
            "it needs: projection, ref x, ref y, easting, northing, size x, size y",
        ) from exc
    rotation = 0.0
    for item in fields:
        if item.lower().startswith("rotation="):
            rotation = _number(item.split("=", 1)[1], "map info rotation", header)
    if (
        not all(
            math.isfinite(v) for v in (ref_x, ref_y, easting, northing, size_x, size_y, rotation)
        )
        or size_x == 0
        or size_y == 0
    ):
        raise FormatError(
            header,
            f"map info has a non-finite or zero value ({', '.join(fields)})",
            "fix the reference point and pixel sizes",
        )
    transform = (
        Affine.translation(easting, northing)
        @ Affine.rotation(rotation)
        @ Affine.scale(size_x, -size_y)
        @ Affine.translation(-(ref_x - 1), -(ref_y - 1))
    )
    return _map_info_crs(meta, fields, header), transform, []


def _map_info_crs(meta: dict[str, Any], fields: list[str], header: Path) -> CRS | None:
    wkt = meta.get("coordinate system string")
    if wkt:
        text = ",".join(wkt) if isinstance(wkt, list) else str(wkt)  # spectral splits on commas
        text = text.strip().removeprefix("{").removesuffix("}")
        try:
            return CRS.from_wkt(text)
        except Exception as exc:
            raise FormatError(
                header, f"the coordinate system string is not valid WKT ({exc})", "fix or remove it"
            ) from exc
    name = fields[0].lower()
    datum = next((f for f in fields[7:] if "wgs" in f.lower() or "nad" in f.lower()), "")
    if name == "utm" and len(fields) > 8 and "wgs" in datum.lower():
        zone, hemisphere = _number(fields[7], "map info zone", header), fields[8].lower()
        if zone != int(zone) or not 1 <= zone <= 60:
            raise FormatError(
                header, f"map info names UTM zone {fields[7]}", "UTM zones are 1 to 60"
            )
        return CRS.from_epsg((32600 if hemisphere.startswith("n") else 32700) + int(zone))
    if name.startswith("geographic") and "wgs" in datum.lower():
        return CRS.from_epsg(4326)
    try:  # some writers put an EPSG code or proj name
        return CRS.from_user_input(ProjCRS.from_user_input(fields[0]).to_wkt())
    except (CRSError, Exception):
        return None


def write_map_info(crs: CRS | None, transform: Affine) -> dict[str, Any]:
    """Header keys describing ``transform`` (rotation decomposed) and ``crs`` (as WKT)."""
    size_x = math.hypot(transform.a, transform.d)
    size_y = math.hypot(transform.b, transform.e)
    rotation = math.degrees(math.atan2(transform.d, transform.a))
    projection = "Arbitrary" if crs is None else "Unknown"
    if crs is not None and crs.to_epsg() == 4326:
        projection = "Geographic Lat/Lon"
    info = [projection, "1", "1", repr(transform.c), repr(transform.f), repr(size_x), repr(size_y)]
    if crs is not None and crs.to_epsg() and 32601 <= crs.to_epsg() <= 32760:
        epsg = crs.to_epsg()
        info = [
            "UTM",
            "1",
            "1",
            repr(transform.c),
            repr(transform.f),
            repr(size_x),
            repr(size_y),
            str(epsg % 100),
            "North" if epsg < 32700 else "South",
            "WGS-84",
        ]
    if abs(rotation) > 1e-12:
        info.append(f"rotation={rotation!r}")
    out: dict[str, Any] = {"map info": info}
    if crs is not None:
        out["coordinate system string"] = "{" + crs.to_wkt() + "}"
    return out
