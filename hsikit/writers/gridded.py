"""Downscaled gridded fields as the user's own kind of file: a CF-compliant NetCDF (``.nc``) or
Zarr store (``.zarr``) with latitude / longitude at the new resolution and the source's
variables, levels, units, time and member coordinates; or a GeoTIFF (``.tif``) of one time and
member, one band per layer.

Fields are computed one sample (time, member) at a time as the writer asks for them (a dask
graph written chunk by chunk), so memory stays that of a few fine fields whatever the archive's
length.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.gridded.fields import Fields
from hsikit.gridded.grids import fine_axis
from hsikit.writers.atomic import staged_output

GRIDDED_SUFFIXES = (".nc", ".zarr", ".tif", ".tiff")
#: What outputs made from Copernicus data must say (ERA5's CC-BY 4.0 licence).
COPERNICUS_ATTRIBUTION = (
    "Contains modified Copernicus Climate Change Service information {year}; neither the "
    "European Commission nor ECMWF is responsible for any use that may be made of the "
    "Copernicus information or data it contains."
)
AXIS_ATTRS = {
    "lat": {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"},
    "lon": {"units": "degrees_east", "standard_name": "longitude", "axis": "X"},
}


def _from_copernicus(fields: Fields) -> bool:
    text = " ".join(str(v) for v in fields.dataset.attrs.values()).lower()
    words = ("ecmwf", "era5", "copernicus", "european centre for medium-range")
    return any(word in text for word in words)


def _global_attrs(fields: Fields, facts: dict[str, Any]) -> dict[str, str]:
    from datetime import datetime

    year = datetime.now(UTC).year
    attrs = {
        k: str(v)
        for k, v in fields.dataset.attrs.items()
        if not k.startswith("GRIB_") and k not in ("history", "Conventions", "time_units")
    }
    attrs |= {
        "Conventions": "CF-1.8",
        "history": f"{fields.dataset.attrs.get('history', '')}\n{facts['history']}".strip(),
        "hsikit_source": str(fields.path),
        "hsikit_method": facts["method"],
        "hsikit_scale": str(facts["scale"]),
        "hsikit_grid": "coordinates are cell centres; each coarse cell splits into scale × scale",
    }
    if _from_copernicus(fields):
        attrs["attribution"] = COPERNICUS_ATTRIBUTION.format(year=year)
    return attrs


def _dataset(fields: Fields, scale: int, sample: Callable[[int, int], np.ndarray], facts: dict):
    """An xarray Dataset of dask arrays: each sample computed once when first written."""
    import dask
    import dask.array as da
    import xarray as xr

    lat = fine_axis(fields.lat, scale)
    lon = fine_axis(fields.lon, scale)
    shape = (len(fields.layers), len(lat), len(lon))
    samples = {
        key: dask.delayed(sample, pure=True)(*key, dask_key_name=f"fine-{key[0]}-{key[1]}")
        for key in fields.samples()
    }
    times = fields.times is not None
    members = fields.members is not None
    coords: dict[str, Any] = {
        fields.lat_dim: (fields.lat_dim, lat, AXIS_ATTRS["lat"]),
        fields.lon_dim: (fields.lon_dim, lon, AXIS_ATTRS["lon"]),
    }
    if times:
        coords["time"] = ("time", fields.times, {"standard_name": "time", "axis": "T"})
    if members:
        assert fields.member_dim is not None
        coords[fields.member_dim] = (
            fields.member_dim,
            fields.members,
            {"long_name": "ensemble member"},
        )
    variables: dict[str, Any] = {}
    for variable in dict.fromkeys(layer.variable for layer in fields.layers):
        indices = [i for i, layer in enumerate(fields.layers) if layer.variable == variable]
        level_dim = fields.layers[indices[0]].level_dim
        per_sample = {
            key: da.from_delayed(task, shape, np.float32)[indices] for key, task in samples.items()
        }
        time_count = len(fields.times) if fields.times is not None else 1
        member_count = len(fields.members) if fields.members is not None else 1
        rows = [
            da.stack([per_sample[(t, m)] for m in range(member_count)]) for t in range(time_count)
        ]
        stacked = da.stack(rows)  # [T, M, L, Y, X]
        dims = ["time", fields.member_dim, level_dim, fields.lat_dim, fields.lon_dim]
        keep = [times, members, level_dim is not None, True, True]
        squeeze = tuple(i for i, k in enumerate(keep) if not k)
        data = stacked.squeeze(axis=squeeze) if squeeze else stacked
        source = fields.dataset[variable]
        attrs = {k: v for k, v in source.attrs.items() if not k.startswith("GRIB_")}
        attrs["hsikit_method"] = facts["method"]
        variables[variable] = ([d for d, k in zip(dims, keep) if k], data, attrs)
        if level_dim is not None:
            levels = [fields.layers[i].level for i in indices]
            coords[level_dim] = (level_dim, levels, dict(fields.dataset[level_dim].attrs))
    return xr.Dataset(variables, coords=coords, attrs=_global_attrs(fields, facts))


def write_gridded(
    path: str | Path,
    fields: Fields,
    scale: int,
    sample: Callable[[int, int], np.ndarray],
    facts: dict[str, Any],
    chosen: tuple[int, int] = (0, 0),
) -> Path:
    """Write the fine fields ``sample(time, member)`` → ``[V, s·Y, s·X]``; a GeoTIFF holds
    the ``chosen`` (time, member)."""
    import dask

    path = Path(path)
    with staged_output(path, suffixes=GRIDDED_SUFFIXES, what="a gridded output") as stage:
        target = stage / path.name
        if path.suffix.lower() in (".tif", ".tiff"):
            _write_geotiff(target, fields, scale, sample(*chosen), facts)
            return path
        dataset = _dataset(fields, scale, sample, facts)
        with dask.config.set(scheduler="synchronous"):  # torch keeps the cores busy itself
            if path.suffix.lower() == ".zarr":
                # version 2 with consolidated metadata: what most tools read today
                dataset.to_zarr(target, mode="w-", consolidated=True, zarr_format=2)
            else:
                dataset.to_netcdf(target, engine="h5netcdf")
    return path


def _write_geotiff(
    target: Path, fields: Fields, scale: int, values: np.ndarray, facts: dict
) -> None:
    """One band per layer, north-up, EPSG:4326, the layers' names and units on their bands."""
    import rasterio
    from affine import Affine

    lat, lon = fine_axis(fields.lat, scale), fine_axis(fields.lon, scale)
    if lat[0] < lat[-1]:
        lat, values = lat[::-1], values[:, ::-1]
    dx, dy = float(lon[1] - lon[0]), float(lat[1] - lat[0])
    transform = Affine(dx, 0.0, float(lon[0]) - dx / 2, 0.0, dy, float(lat[0]) - dy / 2)
    profile = {
        "driver": "GTiff",
        "width": values.shape[2],
        "height": values.shape[1],
        "count": values.shape[0],
        "dtype": "float32",
        "crs": "EPSG:4326",
        "transform": transform,
        "nodata": float("nan"),
        "tiled": True,
        "compress": "deflate",
    }
    with rasterio.open(target, "w", **profile) as out:
        out.write(np.ascontiguousarray(values, dtype=np.float32))
        out.update_tags(**_global_attrs(fields, facts))
        for band, layer in enumerate(fields.layers, start=1):
            out.set_band_description(band, layer.name)
            out.update_tags(band, units=fields.units(layer))
