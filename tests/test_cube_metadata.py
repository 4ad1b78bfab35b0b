"""What a cube output says about its bands beyond the pixels: a gridded scene's time, member
and units; a bad band list only where it means something; the CRS hsikit had to assume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from pyproj import CRS
from spectral.io.envi import read_envi_header

from tests import synthetic
from tests.conftest import assert_one_sentence_error

ASSUMED = "no CF grid mapping: longitude/latitude on WGS 84 (EPSG:4326) assumed"


def _era5_like(path, grid_mapping: bool | dict = False, members=(0, 1)):
    """A small ERA5-style NetCDF: t2m (K) and u10 (m s-1) at two times and two members;
    ``grid_mapping``: a bare latitude_longitude mapping (True) or these mapping attributes."""
    shape = (2, 2, 3, 4)  # time, number, latitude, longitude
    attrs = [{"units": "K", "long_name": "2 metre temperature"}, {"units": "m s**-1"}]
    ds = xr.Dataset(
        {
            name: (
                ("time", "number", "latitude", "longitude"),
                np.arange(np.prod(shape), dtype="float32").reshape(shape) + offset,
                attr | ({"grid_mapping": "crs"} if grid_mapping else {}),
            )
            for name, offset, attr in zip(("t2m", "u10"), (250.0, 0.0), attrs)
        },
        coords={
            "time": pd.date_range("2020-01-01", periods=2, freq="6h"),
            "number": list(members),
            "latitude": [10.0, 9.0, 8.0],
            "longitude": [0.0, 1.0, 2.0, 3.0],
        },
    )
    if grid_mapping:
        mapping = grid_mapping if isinstance(grid_mapping, dict) else {}
        ds["crs"] = ((), np.int32(0), mapping or {"grid_mapping_name": "latitude_longitude"})
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def test_zarr_cube_of_a_gridded_scene_keeps_time_member_and_units(tmp_path, run_cli):
    source = _era5_like(tmp_path / "era5.nc")
    cube = tmp_path / "cube.zarr"
    result = run_cli("convert", source, "-o", cube, "--time", "2020-01-01T06:00", "--member", "1")
    assert result.code == 0, result.stderr
    with xr.open_zarr(cube) as ds:
        assert ds["time"].values == np.datetime64("2020-01-01T06:00")
        assert int(ds["member"].values) == 1
        assert "time" in ds["cube"].coords and "member" in ds["cube"].coords
        assert ds["band"].attrs["band_names"] == ["t2m", "u10"]
        assert ds["band"].attrs["band_units"] == ["K", "m s**-1"]
        assert ds["band"].attrs["band_long_names"] == ["2 metre temperature", ""]
        assert float(ds["cube"].values[0, 0, 0]) == 250.0 + 3 * 12  # time 1, member 1


def test_a_named_member_is_kept_as_an_attribute_of_the_zarr_cube(tmp_path, run_cli):
    source = _era5_like(tmp_path / "era5.nc", members=("control", "perturbed"))
    cube = tmp_path / "cube.zarr"
    assert run_cli("convert", source, "-o", cube, "--member", "1").code == 0
    with xr.open_zarr(cube) as ds:
        assert ds["cube"].attrs["member"] == "perturbed" and "member" not in ds.coords


def test_geotiff_of_a_gridded_scene_keeps_time_and_units_per_band(tmp_path, run_cli):
    source = _era5_like(tmp_path / "era5.nc")
    target = tmp_path / "cube.tif"
    assert run_cli("convert", source, "-o", target, "--time", "1").code == 0
    with rasterio.open(target) as src:
        assert src.tags()["time"] == "2020-01-01T06:00:00"
        assert src.tags()["member"] == "0"
        assert src.descriptions == ("t2m", "u10")
        assert src.units == ("K", "m s**-1")
        assert src.tags(1)["units"] == "K" and src.tags(1)["long_name"] == "2 metre temperature"
        assert src.tags(2)["units"] == "m s**-1" and "long_name" not in src.tags(2)


def test_weather_variables_get_no_bad_band_list(tmp_path, run_cli):
    source = _era5_like(tmp_path / "era5.nc")
    assert run_cli("convert", source, "-o", tmp_path / "w.hdr").code == 0
    assert "bbl" not in read_envi_header(str(tmp_path / "w.hdr"))
    assert run_cli("convert", source, "-o", tmp_path / "w.tif").code == 0
    with rasterio.open(tmp_path / "w.tif") as src:
        assert "bbl" not in src.tags(ns="ENVI") and "bbl" not in src.tags(1)


def test_spectral_cubes_keep_their_bad_band_list(tmp_path, run_cli):
    spectral = synthetic.write_geotiff(
        tmp_path / "s.tif", synthetic.cube(3, 4, 5), band_wavelengths=synthetic.wavelengths(3)
    )
    assert run_cli("convert", spectral, "-o", tmp_path / "s.hdr").code == 0
    assert read_envi_header(str(tmp_path / "s.hdr"))["bbl"] == ["1", "1", "1"]
    assert run_cli("convert", spectral, "-o", tmp_path / "s2.tif").code == 0
    with rasterio.open(tmp_path / "s2.tif") as src:
        assert src.tags(ns="ENVI")["bbl"] == "{1, 1, 1}" and src.tags(1)["bbl"] == "1"


def test_a_flagged_band_gets_a_bad_band_list_without_wavelengths(tmp_path, run_cli):
    header, _ = synthetic.write_envi(
        tmp_path, synthetic.cube(3, 4, 5), extra={"bbl": "{1, 0, 1}"}, name="plain"
    )
    assert run_cli("convert", header, "-o", tmp_path / "p.hdr").code == 0
    assert read_envi_header(str(tmp_path / "p.hdr"))["bbl"] == ["1", "0", "1"]


@pytest.mark.parametrize(
    ("grid_mapping", "said"),
    [
        (False, ASSUMED),
        (True, "the CF grid mapping 'crs' names no datum: longitude/latitude on WGS 84"),
        (CRS.from_epsg(4326).to_cf(), None),
    ],
)
def test_an_assumed_wgs84_is_said_once(tmp_path, run_cli, grid_mapping, said):
    source = _era5_like(tmp_path / "era5.nc", grid_mapping=grid_mapping)
    info = run_cli("info", source)
    converted = run_cli("convert", source, "-o", tmp_path / "out.tif")
    assert info.code == 0 and converted.code == 0
    described = json.loads(run_cli("info", source, "--json").stdout)
    assert described["crs"] == "EPSG:4326"
    if said is None:
        assert "WGS 84" not in info.stderr + converted.stderr and not described["warnings"]
    else:
        assert info.stderr.count(said) == 1 and converted.stderr.count(said) == 1
        assert any(said in warning for warning in described["warnings"])


def test_a_projected_cf_grid_keeps_its_crs(tmp_path, run_cli):
    """A y/x grid in metres with a transverse-Mercator grid mapping is on that CRS, exactly."""
    ds = xr.Dataset(
        {"t2m": (("y", "x"), np.ones((3, 4), "float32"), {"grid_mapping": "utm", "units": "K"})},
        coords={
            "y": [4_000_015.0, 3_999_985.0, 3_999_955.0],
            "x": [500_015.0 + 30 * i for i in range(4)],
        },
    )
    ds["utm"] = ((), np.int32(0), CRS.from_epsg(32633).to_cf())
    ds.to_netcdf(tmp_path / "utm.nc", engine="h5netcdf")
    assert run_cli("convert", tmp_path / "utm.nc", "-o", tmp_path / "utm.tif").code == 0
    with rasterio.open(tmp_path / "utm.tif") as out:
        assert out.crs.to_epsg() == 32633
        assert out.transform == rasterio.Affine(30, 0, 500_000, 0, -30, 4_000_030)
    broken = xr.Dataset(
        {"t2m": (("latitude", "longitude"), np.ones((2, 2), "float32"), {"grid_mapping": "gone"})},
        coords={"latitude": [1.0, 0.0], "longitude": [0.0, 1.0]},
    )
    broken.to_netcdf(tmp_path / "broken.nc", engine="h5netcdf")
    refused = run_cli("info", tmp_path / "broken.nc")
    assert_one_sentence_error(refused, "broken.nc", "grid mapping 'gone', which the file lacks")


def test_time_member_and_units_survive_hsikit_s_own_outputs(tmp_path, run_cli):
    """GeoTIFF → Zarr → GeoTIFF: each reader takes back what the writers record."""
    source = _era5_like(tmp_path / "era5.nc")
    first, middle, last = tmp_path / "a.tif", tmp_path / "b.zarr", tmp_path / "c.tif"
    assert run_cli("convert", source, "-o", first, "--time", "1", "--member", "1").code == 0
    assert run_cli("convert", first, "-o", middle).code == 0
    assert run_cli("convert", middle, "-o", last).code == 0
    with xr.open_zarr(middle) as ds:
        assert ds["time"].values == np.datetime64("2020-01-01T06:00")
        assert int(ds["member"].values) == 1
        assert ds["band"].attrs["band_units"] == ["K", "m s**-1"]
    with rasterio.open(first) as a, rasterio.open(last) as c:
        assert c.tags()["time"] == a.tags()["time"] == "2020-01-01T06:00:00"
        assert c.tags()["member"] == "1" and c.units == a.units == ("K", "m s**-1")
        assert c.tags(1)["long_name"] == "2 metre temperature"
        np.testing.assert_array_equal(a.read(), c.read())
