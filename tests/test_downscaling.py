"""Gridded-field downscaling: ``hsikit train-downscaler`` and ``hsikit superres`` on ERA5-style
files — held-out times and members, CF NetCDF / Zarr / GeoTIFF outputs on exact fine grids,
longitude wrapping around with no seam, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import xarray as xr

from hsikit.gridded.fields import open_fields
from hsikit.gridded.grids import coarsen, fine_axis, interpolate
from hsikit.gridded.training import DownscaleConfig, split_samples
from hsikit.models.restoration.gridsr import GridSR
from tests import synthetic
from tests.conftest import assert_one_sentence_error

TIMES = pd.date_range("2020-01-01", periods=10, freq="6h")


def global_fields(path, *, members: int = 2, times: int = 10, numeric_time: bool = False):
    """A smooth global field on a 2° grid (89 … −89° N, 0 … 358° E) with mountains too sharp
    for the coarse grid: t2m, and z at two pressure levels; ``members`` ensemble members."""
    lat = np.arange(89.0, -90.0, -2.0)
    lon = np.arange(0.0, 360.0, 2.0)
    la, lo = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    rng = np.random.default_rng(0)
    centres = rng.uniform([-60, 0], [60, 360], size=(12, 2))
    mountains = sum(
        np.exp(-(((lat[:, None] - a) / 3) ** 2 + ((lon[None, :] - b) / 3) ** 2)) for a, b in centres
    )
    t2m = np.empty((times, members, len(lat), len(lon)), np.float32)
    z = np.empty((times, members, 2, len(lat), len(lon)), np.float32)
    for t in range(times):
        for m in range(members):
            wave = np.sin(2 * lo + 0.4 * t + 0.3 * m) * np.cos(la)
            t2m[t, m] = 250 + 40 * np.cos(la) + 5 * wave - 12 * mountains
            for k in range(2):  # 850 and 500 hPa
                z[t, m, k] = 9.81 * (1500 * (k + 1) + 80 * wave + 300 * mountains / (k + 1))
    time_dim = "time_index" if numeric_time else "time"
    time_values = (
        np.asarray((TIMES[:times] - pd.Timestamp("1940-01-01")) // pd.Timedelta("1h"), np.int64)
        if numeric_time
        else TIMES[:times]
    )
    ds = xr.Dataset(
        {
            "t2m": ((time_dim, "number", "latitude", "longitude"), t2m, {"units": "K"}),
            "z": (
                (time_dim, "number", "isobaricInhPa", "latitude", "longitude"),
                z,
                {"units": "m**2 s**-2", "standard_name": "geopotential"},
            ),
        },
        coords={
            time_dim: time_values,
            "number": np.arange(members),
            "isobaricInhPa": ("isobaricInhPa", [850.0, 500.0], {"units": "hPa"}),
            "latitude": lat,
            "longitude": lon,
        },
        attrs={"institution": "European Centre for Medium-Range Weather Forecasts"},
    )
    if numeric_time:
        ds.attrs["time_units"] = "hours since 1940-01-01 00:00"
        ds.to_zarr(path, consolidated=False)
    else:
        ds.to_netcdf(path, engine="h5netcdf")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("downscaling")
    source = global_fields(folder / "era5.nc", times=6)
    bundle = folder / "x4.safetensors"
    from typer.testing import CliRunner

    from hsikit.cli import app

    result = CliRunner().invoke(
        app,
        [
            "train-downscaler",
            str(source),
            "--scale",
            "4",
            "--epochs",
            "12",
            "--fields-per-epoch",
            "12",
            "--lr",
            "0.003",
            "-o",
            str(bundle),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "x4_report" / "metrics.json").read_text())
    # what the outputs are checked on: the same kind of file, two times of it
    return global_fields(folder / "small.nc", times=2), bundle, report


def test_held_out_times_and_members_are_never_trained_on(tmp_path):
    fields = open_fields(global_fields(tmp_path / "f.nc", members=5))
    split = split_samples(fields, DownscaleConfig(files=["f.nc"]))
    times = {role: {t for t, _ in samples} for role, samples in split.items()}
    members = {role: {m for _, m in samples} for role, samples in split.items()}
    assert times == {"train": set(range(7)), "val": {7}, "test": {8, 9}}
    assert members["train"] == {0, 1, 2, 3} and members["test"] == members["val"] == {4}


def test_the_head_beats_bicubic_and_the_baselines_on_held_out_times(trained):
    _, _, report = trained
    assert report["samples"] == {"train": 3, "val": 1, "test": 2}
    methods = report["test"]["methods"]
    for layer in ("t2m", "z@850hPa", "z@500hPa"):
        model = methods["gridsr_x4"][layer]["rmse"]
        assert model < methods["bicubic"][layer]["rmse"] < methods["nearest"][layer]["rmse"]
        assert model < methods["bicubic_regression"][layer]["rmse"]
        assert 0.5 < methods["gridsr_x4"][layer]["seam_ratio"] < 2.0


def test_superres_writes_a_cf_netcdf_on_the_exact_fine_grid(trained, tmp_path, run_cli):
    source, bundle, _ = trained
    output = tmp_path / "fine.nc"
    result = run_cli("superres", source, "-m", bundle, "--scale", "4", "-o", output)
    assert result.code == 0, result.stderr + result.stdout
    assert "longitude wrapping around" in result.stdout
    with xr.open_dataset(source) as coarse, xr.open_dataset(output) as fine:
        assert fine.attrs["Conventions"] == "CF-1.8"
        assert "Copernicus" in fine.attrs["attribution"]
        lat, lon = fine["latitude"].values, fine["longitude"].values
        np.testing.assert_allclose(lat, fine_axis(coarse["latitude"].values, 4))
        np.testing.assert_allclose(lon, fine_axis(coarse["longitude"].values, 4))
        assert lat[0] == pytest.approx(89.75) and lon[0] == pytest.approx(-0.75)  # same extent
        assert np.diff(lon) == pytest.approx(0.5) and np.diff(lat) == pytest.approx(-0.5)
        assert fine["latitude"].attrs["units"] == "degrees_north"
        assert fine["longitude"].attrs["standard_name"] == "longitude"
        assert fine["z"].dims == ("time", "number", "isobaricInhPa", "latitude", "longitude")
        assert fine["z"].attrs["units"] == "m**2 s**-2"
        assert list(fine["isobaricInhPa"].values) == [850.0, 500.0]
        assert (fine["time"].values == coarse["time"].values).all()
        assert fine["t2m"].shape == (2, 2, 360, 720)
        # the fine field's area mean is close to the coarse one it came from
        back = coarsen(fine["t2m"].values[0, 0], lat, 4)
        assert np.abs(back - coarse["t2m"].values[0, 0]).mean() < 1.0
    info = run_cli("info", output)
    assert info.code == 0 and "t2m" in info.stdout


def test_zarr_and_geotiff_outputs(trained, tmp_path, run_cli):
    source, bundle, _ = trained
    result = run_cli("superres", source, "-m", bundle, "-o", tmp_path / "fine.zarr")
    assert result.code == 0, result.stderr + result.stdout
    with xr.open_zarr(tmp_path / "fine.zarr") as fine:
        assert fine["t2m"].shape == (2, 2, 360, 720)
    tif = tmp_path / "fine.tif"
    result = run_cli("superres", source, "-m", bundle, "--time", "2020-01-01T06:00", "-o", tif)
    assert result.code == 0, result.stderr + result.stdout
    with rasterio.open(tif) as out:
        assert out.crs.to_epsg() == 4326
        assert out.transform.a == pytest.approx(0.5) and out.transform.e == pytest.approx(-0.5)
        assert (out.transform.c, out.transform.f) == pytest.approx((-1.0, 90.0))
        assert out.descriptions == ("t2m", "z@850hPa", "z@500hPa")
        assert out.tags(1)["units"] == "K"


def test_a_numeric_time_axis_is_decoded_from_its_units(tmp_path):
    fields = open_fields(global_fields(tmp_path / "f.zarr", numeric_time=True))
    assert (fields.times == TIMES.to_numpy()).all()
    assert fields.periodic and fields.names == ["t2m", "z@850hPa", "z@500hPa"]


def test_longitude_wraps_around_so_the_dateline_has_no_seam():
    torch.manual_seed(0)
    model = GridSR(2, 4, width=8, blocks=1).eval()
    torch.nn.init.normal_(model.tail.weight, std=0.1)  # not the bicubic start: a real network
    x = torch.randn(1, 2, 12, 30)
    with torch.inference_mode():
        y = model(x)
        shifted = model(torch.roll(x, 7, dims=-1))
    # shifting the globe shifts the map: no column is special, the wrap included
    torch.testing.assert_close(shifted, torch.roll(y, 7 * 4, dims=-1), atol=1e-5, rtol=1e-5)
    fields = x.numpy()
    bicubic = interpolate(fields, 4, "bicubic", periodic=True)
    rolled = interpolate(np.roll(fields, 7, axis=-1), 4, "bicubic", periodic=True)
    np.testing.assert_allclose(rolled, np.roll(bicubic, 28, axis=-1), atol=1e-5)
    # a regional grid does not wrap: its west edge knows nothing of its east edge
    model.set_periodic(False)
    changed = x.clone()
    changed[..., -1] += 10
    with torch.inference_mode():
        assert torch.equal(model(changed)[..., :8], model(x)[..., :8])


def test_a_classifier_or_spectral_bundle_is_refused_for_gridded_fields(tmp_path, run_cli):
    source = global_fields(tmp_path / "era5.nc")
    _, _, classifier = synthetic.trained_bundle(tmp_path, "svm_rbf", bands=6, rows=20, cols=24)
    output = tmp_path / "fine.nc"
    result = run_cli("superres", source, "-m", classifier, "-o", output)
    assert_one_sentence_error(result, "classifier bundle, not a restoration bundle")
    assert not output.exists()
    result = run_cli("superres", source, "--scale", "4", "-o", output)  # the shipped spectral one
    assert_one_sentence_error(result, "super-resolves spectral cubes, not gridded fields")
    assert not output.exists()


def test_a_file_without_the_bundles_layers_is_refused(trained, tmp_path, run_cli):
    _, bundle, _ = trained
    other = global_fields(tmp_path / "other.nc")
    with xr.open_dataset(other) as ds:
        ds.drop_vars("z").to_netcdf(tmp_path / "t2m_only.nc", engine="h5netcdf")
    output = tmp_path / "fine.nc"
    result = run_cli("superres", tmp_path / "t2m_only.nc", "-m", bundle, "-o", output)
    assert_one_sentence_error(result, "has no layer z@850hPa")
    assert not output.exists()


def test_the_real_era5_samples_read_as_fields(shared_data):
    zarr = shared_data / "era5" / "era5_global_1deg_2026-03.zarr"
    grib = shared_data / "era5" / "era5-levels-members.grib"
    if not zarr.is_dir() or not grib.is_file():
        pytest.skip("the ERA5 samples are not in ../shared/data/era5")
    fields = open_fields(zarr)
    assert fields.names == ["msl", "t2m", "tp", "u10", "v10"]  # by name, in any store
    assert str(fields.times[0]).startswith("2026-03-25") and len(fields.times) == 24
    assert fields.shape == (179, 360) and fields.periodic  # the pole rows left out
    pytest.importorskip("cfgrib", reason="GRIB needs the era5 extra")
    fields = open_fields(grib)
    assert fields.names == ["t@850hPa", "t@500hPa", "z@850hPa", "z@500hPa"]
    assert len(fields.members) == 10 and len(fields.times) == 4 and fields.periodic
