"""NetCDF, GRIB and Zarr datasets through xarray — ERA5 and similar gridded products.

Every data variable on the latitude/longitude grid becomes one band per vertical level, named
``t@850hPa`` (or ``t2m`` without levels). The ensemble member and time are chosen by option
(default: the first of each, recorded in the scene notes so ``hsikit info`` states it).
Latitudes are put north-up, 0–360° longitudes are shifted to −180…180° where the grid stays
contiguous, and the grid becomes EPSG:4326 with an exact affine transform. Data stay lazy (dask)
until a window is read."""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from hsikit.errors import FormatError, InputError, error_reason
from hsikit.readers.grib import message_problem
from hsikit.readers.hdf5 import check_self_contained
from hsikit.scene import LONG_NAME_COORD, UNITS_COORD, BandInfo, Scene

LAT_NAMES = ("latitude", "lat", "y")
LON_NAMES = ("longitude", "lon", "x")
MEMBER_NAMES = ("number", "member", "realization", "ensemble")
TIME_NAMES = ("time", "valid_time", "forecast_reference_time")
LEVEL_NAMES = ("isobaricInhPa", "pressure_level", "plev", "level", "isobaricLevel")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Said when a latitude/longitude grid comes without a CF grid mapping.
WGS84_ASSUMED = "longitude/latitude on WGS 84 (EPSG:4326) assumed"
ASSUMED_WGS84 = f"no CF grid mapping: {WGS84_ASSUMED}"
#: Grid-mapping attributes that name a datum (CF 5.6; ``crs_wkt`` / ``spatial_ref`` as GDAL writes).
DATUM_KEYS = {
    "crs_wkt",
    "spatial_ref",
    "semi_major_axis",
    "earth_radius",
    "reference_ellipsoid_name",
    "horizontal_datum_name",
    "geographic_crs_name",
}


def engine_for(path: Path) -> str | None:
    """The xarray engine for a path, or None if this is not a NetCDF / GRIB / Zarr store."""
    if path.is_dir():
        markers = (".zgroup", ".zarray", "zarr.json")
        return "zarr" if any((path / m).exists() for m in markers) else None
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] == b"GRIB":
        return "cfgrib"
    if head[:3] == b"CDF":
        return "scipy"
    if head == HDF5_MAGIC and path.suffix.lower() in (".nc", ".nc4", ".netcdf", ".h5", ".hdf5"):
        return "h5netcdf"
    return None


def sniff(path: Path) -> bool:
    return engine_for(path) is not None


def has_consolidated_metadata(store: Path) -> bool:
    """Whether a Zarr store carries consolidated metadata (version 2's ``.zmetadata``, or the
    ``consolidated_metadata`` entry of version 3's root ``zarr.json``). Said to xarray up front,
    so a store without it opens without a warning about the failed consolidated attempt."""
    if (store / ".zmetadata").is_file():
        return True
    root = store / "zarr.json"
    try:
        return json.loads(root.read_text()).get("consolidated_metadata") is not None
    except (OSError, ValueError, AttributeError):
        return False


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().strip().splitlines()[0])


@contextmanager
def _routed_logs(name: str) -> Iterator[list[str]]:
    """Messages a library logs while the block runs, kept instead of printed on stderr."""
    logger, handler = logging.getLogger(name), _Collect()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def open_dataset(path: Path, engine: str) -> tuple[xr.Dataset, list[str]]:
    """The dataset and the warnings for what its engine skipped."""
    if engine == "cfgrib" and importlib.util.find_spec("cfgrib") is None:
        raise InputError(
            path,
            "reading GRIB needs cfgrib and eccodes, which are not installed",
            "install them with: pip install 'hsikit[era5]'",
        )
    kwargs: dict[str, Any] = {"chunks": {}}
    if engine == "cfgrib":  # never write .idx files beside the user's data
        kwargs["backend_kwargs"] = {"indexpath": ""}
        problem = message_problem(path)
        if problem is not None:
            raise FormatError(
                path, f"the GRIB file cannot be read whole: {problem}", "re-download it"
            )
    if engine == "h5netcdf":
        check_self_contained(path, netcdf=True)
    if engine == "zarr":
        kwargs["consolidated"] = has_consolidated_metadata(path)
    with _routed_logs("cfgrib") as logged, warnings.catch_warnings():
        # zarr warns of files in a store that are not arrays (a sample's own notes)
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr")
        try:
            dataset = xr.open_dataset(path, engine=engine, **kwargs)
        except Exception as exc:  # engines raise many types for unreadable files
            raise FormatError(
                path,
                f"cannot be opened as {engine} ({error_reason(exc)})",
                "check that the file is complete",
            ) from exc
    skipped = sorted(
        {m.split(":", 1)[1].strip() for m in logged if m.startswith("skipping variable:")}
    )
    notes = (
        [
            f"GRIB variables that do not fit one grid with the others were skipped: "
            f"{'; '.join(skipped)}"
        ]
        if skipped
        else []
    )
    return dataset, notes


def find_name(names: tuple[str, ...], dims: Any) -> str | None:
    """The first of ``names`` among ``dims`` (dimension or coordinate names)."""
    return next((n for n in names if n in dims), None)


def _label(value: Any) -> Any:
    """A coordinate value as a person reads it: times to the minute, not the nanosecond."""
    if isinstance(value, np.datetime64):
        return np.datetime_as_string(value, unit="m")
    return value


def _select(
    ds: xr.Dataset, dim: str, choice: int | str | None, what: str, path: Path, notes: list[str]
) -> xr.Dataset:
    values = ds[dim].values
    if choice is None:
        index = 0
    elif isinstance(choice, str) and not choice.lstrip("-").isdigit():
        try:
            wanted = np.datetime64(choice)
        except ValueError as exc:
            raise InputError(
                path,
                f"{what} '{choice}' is not an ISO date and time",
                "write it as e.g. 2017-01-01T12:00, or give an index",
            ) from exc
        matches: Any = (
            np.nonzero(values.astype(str) == wanted.astype(values.dtype).astype(str))[0]
            if np.issubdtype(values.dtype, np.datetime64)
            else []
        )
        if len(matches) == 0:
            raise InputError(
                path,
                f"{what} '{choice}' is not in the file ({_label(values[0])} … "
                f"{_label(values[-1])})",
                f"choose one of the {what}s listed",
            )
        index = int(matches[0])
    else:
        index = int(choice)
        if not -len(values) <= index < len(values):
            raise InputError(
                path,
                f"{what} index {index} is out of range (0–{len(values) - 1})",
                f"choose a {what} index below {len(values)}",
            )
    label = _label(values[index])
    how = "first, by default" if choice is None else "chosen"
    notes.append(f"{what} {label} ({how}; {len(values)} available)")
    return ds.isel({dim: index})


def open_scene(
    path: Path, *, member: int | str | None = None, time: int | str | None = None, **_: object
) -> Scene:
    engine = engine_for(path)
    ds, warnings = open_dataset(path, engine or "")
    lat = find_name(LAT_NAMES, ds.dims) or find_name(LAT_NAMES, ds.coords)
    lon = find_name(LON_NAMES, ds.dims) or find_name(LON_NAMES, ds.coords)
    if lat is None or lon is None:
        raise FormatError(
            path,
            f"no latitude/longitude (or y/x) grid among {list(ds.dims)}",
            "hsikit reads gridded data with 1-D latitude and longitude",
        )
    notes: list[str] = []
    for names_, choice, what in ((MEMBER_NAMES, member, "member"), (TIME_NAMES, time, "time")):
        dim = find_name(names_, ds.dims)
        if dim is not None:
            ds = _select(ds, dim, choice, what, path, notes)
        elif choice is not None:
            raise InputError(
                path,
                f"has no {what} axis, so --{what} {choice} does not apply",
                f"leave out --{what}",
            )
    off_grid = [
        str(n) for n, da in ds.data_vars.items() if lat not in da.dims or lon not in da.dims
    ]
    if off_grid:
        notes.append(
            f"variables not on the latitude/longitude grid, left out: {', '.join(off_grid)}"
        )
    layers: list[xr.DataArray] = []
    names: list[str] = []
    variables: list[str] = []
    for layer in grid_layers(ds, lat, lon):
        da = ds[layer.variable]
        others = [str(d) for d in da.dims if d not in (lat, lon, layer.level_dim)]
        for dim in others:  # e.g. a length-1 'step': take the first and say so
            if layer.level_dim is None or layer.level == ds[layer.level_dim].values[0]:
                notes.append(f"{layer.variable}: dimension '{dim}' reduced to its first entry")
            da = da.isel({dim: 0})
        if layer.level_dim is not None:
            da = da.sel({layer.level_dim: layer.level})
        layers.append(da.transpose(lat, lon))
        names.append(layer.name)
        variables.append(layer.variable)
    if not layers:
        raise FormatError(
            path, "no variable lies on the latitude/longitude grid", "check the file's variables"
        )
    stack = xr.concat(
        [
            layer.astype("float32").drop_vars([c for c in layer.coords if c not in (lat, lon)])
            for layer in layers
        ],
        dim="band",
    )

    crs, assumed = _grid_mapping_crs(ds, variables, path)
    if crs is None and lat in LAT_NAMES[:2]:
        crs = CRS.from_epsg(4326)
        if engine != "cfgrib":  # GRIB is not CF: its grids are on the ellipsoid it names
            warnings.append(assumed)
    geographic = crs.is_geographic if crs is not None else lat in LAT_NAMES[:2]
    stack, transform, grid_notes = _north_up_grid(stack, lat, lon, path, geographic)
    data = stack.data  # dask array (band, lat, lon)

    def read(bands: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        return np.asarray(data[bands][:, rows, cols].compute(scheduler="synchronous"))

    nodata = float("nan")
    scene = Scene.from_reader(
        read,
        shape=(int(stack.shape[0]), int(stack.shape[1]), int(stack.shape[2])),
        dtype="float32",
        bands=BandInfo.build(len(names), name=names, source="none"),
        path=str(path),
        format={"cfgrib": "GRIB", "zarr": "Zarr (xarray)"}.get(engine or "", "NetCDF"),
        crs=crs,
        transform=transform,
        nodata=nodata,
        notes=notes + grid_notes,
        warnings=warnings,
    )
    units, long_names = (
        [str(ds[v].attrs.get(key, "")) for v in variables] for key in (UNITS_COORD, LONG_NAME_COORD)
    )
    return scene.with_variables(units, long_names, _sample(ds))


def _grid_mapping_crs(ds: xr.Dataset, variables: list[str], path: Path) -> tuple[CRS | None, str]:
    """The CRS the variables' CF grid mapping describes (an attribute, or moved to the encoding
    when xarray decoded it), or None and the sentence that says WGS 84 is assumed: without a
    mapping, or with a longitude/latitude one that names no datum. A projected grid keeps its
    own CRS; a mapping that describes none is refused rather than guessed."""
    from pyproj import CRS as ProjCRS
    from pyproj.exceptions import CRSError

    named = [
        ds[v].attrs.get("grid_mapping") or ds[v].encoding.get("grid_mapping") for v in variables
    ]
    name = next((str(n) for n in named if n), None)
    if name is None:
        return None, ASSUMED_WGS84
    if name not in ds.variables:
        raise FormatError(
            path,
            f"the variables name the grid mapping '{name}', which the file lacks",
            "add the grid-mapping variable, or remove the grid_mapping attribute",
        )
    attrs = dict(ds[name].attrs)
    if attrs.get("grid_mapping_name") == "latitude_longitude" and not DATUM_KEYS & set(attrs):
        return None, f"the CF grid mapping '{name}' names no datum: {WGS84_ASSUMED}"
    try:
        return CRS.from_wkt(ProjCRS.from_cf(attrs).to_wkt()), ""
    except (CRSError, ValueError) as exc:
        raise FormatError(
            path,
            f"its CF grid mapping '{name}' does not describe a CRS ({error_reason(exc)})",
            "fix the grid-mapping attributes (CF conventions, section 5.6)",
        ) from exc


def _sample(ds: xr.Dataset) -> dict[str, Any]:
    """The time (ISO 8601) and member left as scalar coordinates once chosen, or the file's
    only ones."""
    sample: dict[str, Any] = {}
    for names, what in ((TIME_NAMES, "time"), (MEMBER_NAMES, "member")):
        name = next((n for n in names if n in ds.coords and ds[n].ndim == 0), None)
        if name is not None:
            value = ds[name].values[()]
            iso = isinstance(value, np.datetime64)
            sample[what] = np.datetime_as_string(value, unit="s") if iso else value.item()
    return sample


@dataclass(frozen=True)
class Layer:
    """One 2-D field of a dataset: a variable, at one vertical level if it has levels."""

    name: str  # "t@850hPa", or "t2m" without levels
    variable: str
    level_dim: str | None = None
    level: Any = None


def grid_layers(ds: xr.Dataset, lat: str, lon: str) -> list[Layer]:
    """The variables on the latitude/longitude grid, one layer per vertical level."""
    layers = []
    for var_name, da in ds.data_vars.items():
        if lat not in da.dims or lon not in da.dims:
            continue
        level = find_name(LEVEL_NAMES, da.dims)
        if level is None:
            layers.append(Layer(str(var_name), str(var_name)))
            continue
        units = str(ds[level].attrs.get("units", "hPa")).replace("millibars", "hPa")
        layers += [
            Layer(f"{var_name}@{value:g}{units}", str(var_name), level, value)
            for value in ds[level].values
        ]
    return layers


def _regular_step(values: np.ndarray) -> float | None:
    steps = np.diff(values.astype("float64"))
    if steps.size == 0:
        return None
    return float(steps.mean()) if np.allclose(steps, steps[0], rtol=1e-4, atol=1e-9) else None


def _north_up_grid(
    stack: xr.DataArray, lat: str, lon: str, path: Path, geographic: bool
) -> tuple[xr.DataArray, Affine, list[str]]:
    """The grid flipped north-up, 0–360° longitudes (``geographic`` grids only: a projected
    x is metres) shifted to −180–180° when it stays regular, and its exact transform."""
    notes = []
    lats = stack[lat].values
    if lats.size > 1 and lats[1] > lats[0]:
        stack = stack.isel({lat: slice(None, None, -1)})
        notes.append("latitudes flipped to north-up")
    lons = stack[lon].values.astype("float64")
    if geographic and lons.max() > 180:
        shifted = ((lons + 180.0) % 360.0) - 180.0
        order = np.argsort(shifted, kind="stable")
        if _regular_step(shifted[order]) is not None:
            stack = stack.isel({lon: order}).assign_coords({lon: shifted[order]})
            notes.append("longitudes shifted from 0–360° to −180–180°")
    lats, lons = stack[lat].values, stack[lon].values
    dy, dx = _regular_step(lats), _regular_step(lons)
    if dx is None or dy is None:
        raise FormatError(
            path, "the latitude/longitude grid is not regular", "regrid it to a regular grid first"
        )
    transform = Affine(dx, 0.0, float(lons[0]) - dx / 2, 0.0, dy, float(lats[0]) - dy / 2)
    return stack, transform, notes
