"""GeoTIFF / COG through rasterio windows, with GDAL restricted to an allow-list of drivers.

GDAL would open almost anything, including formats that read other files or URLs named inside
them (VRT, for one); each open here names the drivers it accepts, so a file that only looks
like a TIFF cannot make GDAL reach outside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError
from rasterio.windows import Window

from hsikit.errors import FormatError, error_reason
from hsikit.readers.gdal_metadata import band_info_from_gdal
from hsikit.scene import BandInfo, Scene

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(4) in _TIFF_MAGIC


#: The GDAL drivers hsikit uses: GeoTIFF / COG, ENVI for images inside EnMAP products, and
#: VRT for mosaics that :mod:`hsikit.readers.vrt` has checked first.
ALLOWED_DRIVERS = ("GTiff", "ENVI", "VRT")


def open_dataset(location: str, driver: str = "GTiff") -> rasterio.DatasetReader:
    """``rasterio.open`` for reading with one named, allowed GDAL driver."""
    if driver not in ALLOWED_DRIVERS:
        raise ValueError(f"GDAL driver {driver} is not allowed")
    return rasterio.open(location, driver=driver)


def open_scene(
    path: Path | str,
    *,
    format_name: str = "GeoTIFF",
    bands: BandInfo | None = None,
    driver: str = "GTiff",
    **_: object,
) -> Scene:
    """Open a GDAL raster lazily; ``path`` may be a GDAL virtual path (``/vsizip/…``) that
    hsikit built itself (EnMAP zips)."""
    location = str(path)
    try:
        with open_dataset(location, driver) as src:
            count, height, width = src.count, src.height, src.width
            dtype = np.dtype(src.dtypes[0])
            if count and len(set(src.dtypes)) > 1:  # promote mixed band types losslessly
                dtype = np.result_type(*[np.dtype(d) for d in src.dtypes])
            if bands is None:
                bands = band_info_from_gdal(
                    count,
                    [src.tags(i) for i in src.indexes],
                    [src.tags(i, ns="IMAGERY") for i in src.indexes],
                    src.tags(ns="ENVI"),
                    list(src.descriptions),
                    list(src.scales),
                    list(src.offsets),
                )
            native_mask = any(
                MaskFlags.per_dataset in flags or MaskFlags.alpha in flags
                for flags in src.mask_flag_enums
            )
            crs, transform, nodata = src.crs, src.transform, src.nodata
            variables = _variables(src)
            if count and height and width:
                _probe_last_block(src)
    except (RasterioError, ValueError, MemoryError) as exc:
        raise FormatError(
            location,
            f"GDAL cannot read this raster ({error_reason(exc)})",
            "check that the file is complete and is a GeoTIFF or another GDAL format",
        ) from exc

    def read(band_ids: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        window = Window.from_slices((rows.start, rows.stop), (cols.start, cols.stop))
        shape = (len(band_ids), len(range(*rows.indices(height))), len(range(*cols.indices(width))))
        try:
            with open_dataset(location, driver) as src:
                out = src.read(
                    [int(b) + 1 for b in band_ids],
                    window=window,
                    out_shape=shape if (rows.step or 1) > 1 or (cols.step or 1) > 1 else None,
                    out_dtype=dtype,
                )
        except RasterioError as exc:
            raise FormatError(
                location,
                f"reading rows {rows.start}–{rows.stop} failed ({error_reason(exc)})",
                "the file is truncated or corrupt; re-download or re-export it",
            ) from exc
        return out

    def read_mask(rows: slice, cols: slice) -> np.ndarray:
        window = Window.from_slices((rows.start, rows.stop), (cols.start, cols.stop))
        shape = (len(range(*rows.indices(height))), len(range(*cols.indices(width))))
        with open_dataset(location, driver) as src:
            return src.dataset_mask(window=window, out_shape=shape) > 0

    return Scene.from_reader(
        read,
        shape=(count, height, width),
        dtype=dtype,
        bands=bands,
        path=location,
        format=format_name,
        crs=crs,
        transform=transform,
        nodata=nodata,
        mask_reader=read_mask if native_mask else None,
    ).with_variables(**variables)


def _variables(src: rasterio.DatasetReader) -> dict:
    """What gridded bands measure and when, as hsikit's GeoTIFF writer records it (GDAL band
    units or ``units`` tags, ``long_name`` tags, dataset ``time`` / ``member`` tags): for
    :meth:`Scene.with_variables`, so a converted ERA5 cube converts again without loss."""
    band_tags = [src.tags(i) for i in src.indexes]
    units = [unit or tags.get("units", "") for unit, tags in zip(src.units, band_tags)]
    long_names = [tags.get("long_name", "") for tags in band_tags]
    dataset = src.tags()
    sample: dict[str, object] = {k: dataset[k] for k in ("time", "member") if k in dataset}
    if str(sample.get("member", "")).lstrip("-").isdigit():
        sample["member"] = int(str(sample["member"]))
    return {
        "units": units if any(units) else None,
        "long_names": long_names if any(long_names) else None,
        "sample": sample,
    }


def _probe_last_block(src: rasterio.DatasetReader) -> None:
    """Read the last block of the last band: a truncated file fails here, not mid-job."""
    block_h, block_w = src.block_shapes[-1]
    row = max(0, src.height - block_h) if block_h else 0
    col = max(0, src.width - block_w) if block_w else 0
    src.read(src.count, window=Window(col, row, min(block_w, src.width), min(block_h, src.height)))
