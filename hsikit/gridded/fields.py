"""Gridded files (ERA5 GRIB / NetCDF / Zarr) as a sequence of fields: every (time, member) is
one sample ``[V, Y, X]`` of the variables × levels on the latitude/longitude grid, read lazily
one sample at a time, with what an output needs to keep the file's nature (coordinates,
units, names).

The grid is kept as the file has it (latitude order, 0–360° or −180–180° longitude), except
that rows exactly at a pole are left out: there a grid point is a point, not a cell, and the
finer cells around it would lie beyond ±90°. A time axis stored as plain numbers (hours since
an epoch, as some Zarr archives store it) is decoded from its units attribute, or the
dataset's ``time_units``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from hsikit.errors import FormatError, InputError
from hsikit.readers.xarray_grid import (
    LAT_NAMES,
    LON_NAMES,
    MEMBER_NAMES,
    TIME_NAMES,
    Layer,
    engine_for,
    find_name,
    grid_layers,
    open_dataset,
)

#: Time axes stored as numbers, decoded from their units.
NUMERIC_TIME_NAMES = ("time_index",)
#: Longitudes span the globe when their count times their step is 360° within this (degrees).
GLOBE_TOLERANCE = 1e-6


@dataclass
class Fields:
    """A gridded file's fields, one sample per (time, member)."""

    path: Path
    dataset: xr.Dataset
    layers: list[Layer]
    lat_dim: str
    lon_dim: str
    lat: np.ndarray  # cell centres, degrees, in the file's order (pole rows left out)
    lon: np.ndarray
    rows: slice  # the file's rows that ``lat`` holds
    time_dim: str | None
    member_dim: str | None
    times: np.ndarray | None  # decoded datetime64 values
    members: np.ndarray | None
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    @property
    def periodic(self) -> bool:
        """Whether the longitudes circle the globe (a model then wraps around at the edges)."""
        if len(self.lon) < 2:
            return False
        step = abs(float(self.lon[1] - self.lon[0]))
        return abs(step * len(self.lon) - 360.0) < GLOBE_TOLERANCE * max(1.0, step)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.lat), len(self.lon)

    def samples(self) -> list[tuple[int, int]]:
        """(time index, member index) of every sample; 0 where the file has no such axis."""
        times = range(len(self.times)) if self.times is not None else [0]
        members = range(len(self.members)) if self.members is not None else [0]
        return [(t, m) for t in times for m in members]

    def read(self, time: int, member: int) -> np.ndarray:
        """``[V, Y, X]`` float32: every layer at one time and member."""
        chosen = self.dataset
        if self.time_dim is not None:
            chosen = chosen.isel({self.time_dim: time})
        if self.member_dim is not None:
            chosen = chosen.isel({self.member_dim: member})
        planes = []
        for layer in self.layers:
            da = chosen[layer.variable]
            if layer.level_dim is not None:
                da = da.sel({layer.level_dim: layer.level})
            for dim in [d for d in da.dims if d not in (self.lat_dim, self.lon_dim)]:
                da = da.isel({dim: 0})
            planes.append(da.transpose(self.lat_dim, self.lon_dim).values[self.rows])
        return np.stack(planes).astype(np.float32)

    def units(self, layer: Layer) -> str:
        return str(self.dataset[layer.variable].attrs.get("units", ""))


def _decoded_times(ds: xr.Dataset, dim: str, path: Path) -> np.ndarray:
    values = ds[dim].values
    if np.issubdtype(values.dtype, np.datetime64):
        return values
    units = ds[dim].attrs.get("units") or ds.attrs.get("time_units")
    if not units:
        raise FormatError(
            path,
            f"the time axis '{dim}' holds numbers without units",
            "give it a CF units attribute such as 'hours since 1940-01-01'",
        )
    try:
        return np.asarray(xr.coding.times.decode_cf_datetime(values, str(units).split(" (")[0]))
    except (ValueError, TypeError) as exc:
        raise FormatError(
            path, f"the time units '{units}' cannot be decoded ({exc})", "use CF time units"
        ) from exc


def _pole_free_rows(lat: np.ndarray) -> slice:
    """The rows strictly between the poles (grids that include ±90° start or end there)."""
    start = 1 if len(lat) and abs(abs(float(lat[0])) - 90.0) < 1e-9 else 0
    stop = len(lat) - 1 if len(lat) and abs(abs(float(lat[-1])) - 90.0) < 1e-9 else len(lat)
    return slice(start, stop)


def open_fields(path: str | Path, variables: list[str] | None = None) -> Fields:
    """The fields of a gridded file (``variables``: layer names such as ``t2m`` or
    ``t@850hPa``; default: all on the grid)."""
    path = Path(path)
    engine = engine_for(path)
    if engine is None:
        raise FormatError(
            path,
            "is not a gridded NetCDF, GRIB or Zarr file",
            "give an ERA5-style file with latitude and longitude axes",
        )
    ds, notes = open_dataset(path, engine)
    lat = find_name(LAT_NAMES[:2], ds.dims)
    lon = find_name(LON_NAMES[:2], ds.dims)
    if lat is None or lon is None:
        raise FormatError(
            path,
            f"no latitude/longitude grid among {list(ds.dims)}",
            "give a file with 1-D latitude and longitude axes",
        )
    # by variable name: a store's listing order (Zarr without consolidated metadata) is
    # arbitrary, and a bundle's layers must come in one order
    layers = sorted(grid_layers(ds, lat, lon), key=lambda layer: layer.variable)
    if variables:
        known = {layer.name: layer for layer in layers}
        missing = [v for v in variables if v not in known]
        if missing:
            raise InputError(
                path,
                f"has no layer {', '.join(missing)} (it has {', '.join(known)})",
                "choose --variables among those",
            )
        layers = [known[v] for v in variables]
    if not layers:
        raise FormatError(
            path, "no variable lies on the latitude/longitude grid", "check the file's variables"
        )
    time_dim = find_name(TIME_NAMES + NUMERIC_TIME_NAMES, ds.dims)
    member_dim = find_name(MEMBER_NAMES, ds.dims)
    lats = ds[lat].values.astype("float64")
    rows = _pole_free_rows(lats)
    if rows != slice(0, len(lats)):
        notes.append("rows at the poles left out (grid points there are not cells)")
    return Fields(
        path=path,
        dataset=ds,
        layers=layers,
        lat_dim=lat,
        lon_dim=lon,
        lat=lats[rows],
        lon=ds[lon].values.astype("float64"),
        rows=rows,
        time_dim=time_dim,
        member_dim=member_dim,
        times=None if time_dim is None else _decoded_times(ds, time_dim, path),
        members=None if member_dim is None else ds[member_dim].values,
        notes=notes,
    )


def check_values(fields: Fields, values: np.ndarray, where: str) -> None:
    """Refuse fields with missing values (a sea-surface field over land): the network and the
    coarsening both need every cell."""
    bad = [n for n, plane in zip(fields.names, values) if not np.isfinite(plane).all()]
    if bad:
        raise InputError(
            fields.path,
            f"{', '.join(bad)} have missing or non-finite values at {where}",
            "leave them out with --variables",
        )


def sample_index(fields: Fields, time: str | None, member: int | None) -> tuple[int, int]:
    """The (time, member) sample a one-field output holds: ``time`` an index or an ISO date
    and time, ``member`` an index; the first of each by default."""
    t = 0
    if time is not None and fields.times is not None:
        if time.lstrip("-").isdigit():
            t = int(time)
        else:
            try:
                wanted = np.datetime64(time)
            except ValueError as exc:
                raise InputError(
                    fields.path,
                    f"time '{time}' is not an ISO date and time",
                    "write it as e.g. 2017-01-01T12:00, or give an index",
                ) from exc
            found = np.nonzero(fields.times == wanted)[0]
            if not len(found):
                raise InputError(
                    fields.path,
                    f"time '{time}' is not in the file ({fields.times[0]} … {fields.times[-1]})",
                    "choose one of its times",
                )
            t = int(found[0])
    m = member or 0
    for index, count, what in ((t, fields.times, "time"), (m, fields.members, "member")):
        size = 1 if count is None else len(count)
        if not 0 <= index < size:
            raise InputError(
                fields.path,
                f"{what} index {index} is out of range (0–{size - 1})",
                f"choose a {what} index below {size}",
            )
    return t, m


def describe(fields: Fields) -> dict[str, Any]:
    """What a report records of a file's fields."""
    return {
        "path": str(fields.path),
        "layers": fields.names,
        "grid": [len(fields.lat), len(fields.lon)],
        "periodic": fields.periodic,
        "times": 0 if fields.times is None else len(fields.times),
        "members": 0 if fields.members is None else len(fields.members),
        "notes": fields.notes,
    }
