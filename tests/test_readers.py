"""Every reader: real files from ../shared/data where they exist, synthetic fixtures for the
rest."""

from __future__ import annotations

import importlib.util
import json
import resource
import struct
import warnings
import zlib

import h5py
import numpy as np
import pytest
import rasterio
import scipy.io
from affine import Affine
from rasterio.windows import Window

from hsikit import open_scene
from hsikit.scene import BandInfo, Scene
from tests import synthetic

# -- the lazy core -------------------------------------------------------------------------------


def test_scene_read_asks_only_for_the_window():
    data = synthetic.cube(4, 300, 200)
    calls = []

    def reader(bands, rows, cols):
        calls.append((tuple(bands), rows, cols))
        return data[bands][:, rows, cols]

    scene = Scene.from_reader(
        reader,
        shape=data.shape,
        dtype=data.dtype,
        bands=BandInfo.build(4),
        path="mem",
        format="test",
    )
    assert calls == []  # opening reads nothing
    values, valid = scene.read(Window(10, 20, 64, 64))
    assert len(calls) == 1
    assert calls[0][1:] == (slice(20, 84, 1), slice(10, 74, 1))
    np.testing.assert_array_equal(values, data[:, 20:84, 10:74].astype("float32"))
    assert valid.all()


def test_nodata_and_nan_pixels_are_invalid_and_nan():
    data = synthetic.cube(3, 10, 10).astype("float32")
    data[:, 0, 0] = -9999  # nodata in every band
    data[1, 5, 5] = np.nan  # one non-finite band
    scene = Scene.from_reader(
        lambda b, r, c: data[b][:, r, c],
        shape=data.shape,
        dtype=data.dtype,
        bands=BandInfo.build(3),
        path="m",
        format="t",
        nodata=-9999,
    )
    values, valid = scene.read()
    assert not valid[0, 0] and not valid[5, 5] and valid.sum() == 98
    assert np.isnan(values[:, 0, 0]).all()


def test_twenty_gigabyte_scene_opens_lazily_and_reads_one_window(tmp_path):
    """A sparse 20 GB ENVI file: opening and a 64×64 read stay within a few MB of memory."""
    rows, cols, bands = 40_000, 25_000, 10
    header = tmp_path / "huge.hdr"
    header.write_text(
        f"ENVI\nsamples = {cols}\nlines = {rows}\nbands = {bands}\n"
        "header offset = 0\ndata type = 4\ninterleave = bsq\nbyte order = 0\n"
    )
    data_file = tmp_path / "huge.img"
    with open(data_file, "wb") as fh:
        fh.truncate(rows * cols * bands * 4)  # 40 GB apparent, nothing on disk
        fh.seek(((3 * rows + 1000) * cols + 2000) * 4)  # band 4, row 1000, col 2000
        fh.write(np.float32(42.0).tobytes())
    assert data_file.stat().st_size >= 20 * 2**30
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scene = open_scene(header)
    values, valid = scene.read(Window(2000, 1000, 64, 64))
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert values.shape == (bands, 64, 64) and valid.all()
    assert values[3, 0, 0] == 42.0 and values.sum() == 42.0
    assert grown_kb < 20_000, f"reading one window grew the process by {grown_kb} kB"


# -- GeoTIFF -------------------------------------------------------------------------------------


def test_geotiff_grid_nodata_and_wavelengths(tmp_path):
    data = synthetic.cube(5)
    path = synthetic.write_geotiff(
        tmp_path / "s.tif", data, band_wavelengths=synthetic.wavelengths(5), tiled=True
    )
    scene = open_scene(path)
    assert scene.format == "GeoTIFF"
    assert scene.crs == synthetic.UTM and scene.transform == synthetic.UTM_TRANSFORM
    assert scene.nodata == -9999
    np.testing.assert_allclose(scene.wavelengths, synthetic.wavelengths(5), atol=1e-3)
    np.testing.assert_allclose(scene.band_values("fwhm"), 10.0)
    np.testing.assert_array_equal(scene.read_raw(Window(3, 4, 7, 9)), data[:, 4:13, 3:10])


def test_real_rgb_geotiff(shared_data):
    scene = open_scene(shared_data / "geotiff" / "RGB.byte.tif")
    assert scene.crs.to_epsg() == 32618 and scene.nodata == 0
    assert (scene.count, scene.height, scene.width) == (3, 718, 791)
    with rasterio.open(shared_data / "geotiff" / "RGB.byte.tif") as src:
        assert scene.transform == src.transform
        expected_valid = src.dataset_mask() > 0
    _, valid = scene.read()
    np.testing.assert_array_equal(valid, expected_valid)


# -- ENVI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("suffix", ["", ".img", ".dat"])
def test_envi_layouts(tmp_path, interleave, big_endian, suffix):
    data = synthetic.cube(4, 12, 9, dtype="uint16")
    header, _ = synthetic.write_envi(
        tmp_path,
        data,
        interleave=interleave,
        big_endian=big_endian,
        suffix=suffix,
        map_info="UTM, 1, 1, 500000.0, 4000020.0, 30.0, 30.0, 33, North, WGS-84, units=Meters",
        extra={
            "wavelength": "{450, 550, 650, 850}",
            "fwhm": "{10, 10, 12, 14}",
            "bbl": "{1, 1, 0, 1}",
            "data ignore value": "0",
            "wavelength units": "nm",
        },
    )
    scene = open_scene(header)
    np.testing.assert_array_equal(scene.read_raw(), data)
    np.testing.assert_array_equal(
        scene.read_raw(Window(2, 3, 4, 5), bands=[3, 1]), data[[3, 1], 3:8, 2:6]
    )
    assert scene.crs.to_epsg() == 32633 and scene.transform == synthetic.UTM_TRANSFORM
    np.testing.assert_array_equal(scene.wavelengths, [450, 550, 650, 850])
    np.testing.assert_array_equal(scene.bad_bands, [False, False, True, False])
    assert scene.nodata == 0


def test_envi_opened_from_its_data_file(tmp_path):
    data = synthetic.cube(2, 5, 5)
    _, data_file = synthetic.write_envi(tmp_path, data, suffix=".img")
    np.testing.assert_array_equal(open_scene(data_file).read_raw(), data)


def test_envi_rotated_map_info_matches_gdal(tmp_path):
    """Rotation is honoured with GDAL's convention, so pixels land where QGIS puts them."""
    data = synthetic.cube(2, 10, 8)
    header, data_file = synthetic.write_envi(
        tmp_path,
        data,
        map_info="UTM, 1, 1, 500000.0, 4000000.0, 30.0, 30.0, 33, North, "
        "WGS-84, units=Meters, rotation=25.0",
    )
    scene = open_scene(header)
    with rasterio.open(data_file) as src:  # GDAL's ENVI driver
        gdal_transform = src.transform
    assert scene.transform.almost_equals(gdal_transform, precision=1e-6)
    assert scene.transform.b != 0


# -- MATLAB --------------------------------------------------------------------------------------


def test_real_ground_truth_mat_files(shared_data):
    ip = open_scene(shared_data / "indian_pines" / "Indian_pines_gt.mat")
    assert ip.format == "MATLAB v5" and ip.ground_truth.shape == (145, 145)
    assert np.bincount(ip.ground_truth.ravel())[1:].tolist() == [
        46,
        1428,
        830,
        237,
        483,
        730,
        28,
        478,
        20,
        972,
        2455,
        593,
        205,
        1265,
        386,
        93,
    ]
    for stem in ("salinas/Salinas_gt", "pavia_university/PaviaU_gt"):
        v5 = open_scene(shared_data / f"{stem}.mat")
        v73 = open_scene(shared_data / f"{stem}_v73.mat")
        assert v73.format == "MATLAB v7.3"
        np.testing.assert_array_equal(v5.ground_truth, v73.ground_truth)  # transposed back
    assert open_scene(shared_data / "salinas" / "Salinas_gt.mat").ground_truth.shape == (512, 217)
    ksc = open_scene(shared_data / "ksc" / "KSC_gt_v73.mat")
    assert ksc.ground_truth.shape == (512, 614) and ksc.ground_truth.max() == 13


def _write_v73(path, arrays: dict[str, np.ndarray]) -> None:
    """A MATLAB v7.3 file: 512-byte text header + HDF5, arrays stored transposed as MATLAB does."""
    with h5py.File(path, "w", userblock_size=512) as h5:
        for name, array in arrays.items():
            ds = h5.create_dataset(name, data=np.ascontiguousarray(array.T))
            ds.attrs["MATLAB_class"] = np.bytes_(array.dtype.name.replace("float64", "double"))
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: hsikit test".ljust(128))


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_mat_cube_and_ground_truth_found_without_fixed_keys(tmp_path, version):
    rows, cols, bands = 7, 9, 11  # rows × cols × bands, MATLAB order
    cube = np.arange(rows * cols * bands, dtype="uint16").reshape(rows, cols, bands)
    truth = (np.arange(rows * cols).reshape(rows, cols) % 4).astype("uint8")
    path = tmp_path / "scene.mat"
    arrays = {"whatever_cube_name": cube, "weird_labels": truth, "note": np.arange(3.0)}
    if version == "v5":
        scipy.io.savemat(path, arrays, do_compression=True)
    else:
        _write_v73(path, arrays)
    scene = open_scene(path)
    assert scene.format == f"MATLAB {version}"
    assert (scene.count, scene.height, scene.width) == (bands, rows, cols)
    np.testing.assert_array_equal(scene.read_raw(), cube.transpose(2, 0, 1))
    np.testing.assert_array_equal(
        scene.read_raw(Window(2, 1, 3, 4), bands=[5, 0]),
        cube[1:5, 2:5][:, :, [5, 0]].transpose(2, 0, 1),
    )
    np.testing.assert_array_equal(scene.ground_truth, truth)


def _mat_element(kind: int, payload: bytes) -> bytes:
    """A v5 data element: 8-byte tag (type, byte count), data padded to 8 bytes."""
    return struct.pack("<II", kind, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _write_double_stored_as_int16(path, name: str, values: np.ndarray, compress: bool) -> None:
    """A v5 file as MATLAB writes a class-double array of small integers: stored as miINT16."""
    matrix = _mat_element(
        14,  # miMATRIX
        _mat_element(6, struct.pack("<II", 6, 0))  # array flags (miUINT32): mxDOUBLE_CLASS
        + _mat_element(5, struct.pack(f"<{values.ndim}i", *values.shape))  # dimensions
        + _mat_element(1, name.encode())  # name (miINT8)
        + _mat_element(3, values.astype("<i2").tobytes(order="F")),  # real part: miINT16
    )
    if compress:
        packed = zlib.compress(matrix)
        matrix = struct.pack("<II", 15, len(packed)) + packed  # miCOMPRESSED, not padded
    text = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by: hsikit test".ljust(116)
    header = text + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    assert len(header) == 128
    path.write_bytes(header + matrix)


@pytest.mark.parametrize("compress", [True, False])
def test_a_mat_double_stored_as_int16_is_read_and_written_as_int16(tmp_path, run_cli, compress):
    values = (np.arange(5 * 4 * 3).reshape(5, 4, 3) * 97 - 2000).astype("int16")
    path = tmp_path / "d.mat"
    _write_double_stored_as_int16(path, "cube", values, compress)
    assert scipy.io.whosmat(path) == [("cube", (5, 4, 3), "double")]
    np.testing.assert_array_equal(scipy.io.loadmat(path)["cube"], values)
    info = json.loads(run_cli("info", path, "--json").stdout)
    assert info["dtype"] == "int16"
    assert run_cli("convert", path, "-o", tmp_path / "d.tif").code == 0
    with rasterio.open(tmp_path / "d.tif") as src:
        assert src.dtypes == ("int16",) * 3
        np.testing.assert_array_equal(src.read(), values.transpose(2, 0, 1))


def test_a_mat_double_stored_as_double_stays_float64(tmp_path, run_cli):
    path = tmp_path / "f.mat"
    scipy.io.savemat(path, {"cube": np.full((5, 4, 3), 0.5)}, do_compression=True)
    assert "float64" in run_cli("info", path).stdout


# -- EnMAP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("zip_it", [False, True])
def test_enmap_product_metadata(tmp_path, zip_it):
    product, truth = synthetic.enmap_product(tmp_path, zip_it=zip_it)
    scene = open_scene(product)
    assert scene.format == "EnMAP L2A"
    np.testing.assert_allclose(scene.wavelengths, truth["wavelength"], rtol=1e-5)
    np.testing.assert_allclose(scene.band_values("fwhm"), truth["fwhm"], rtol=1e-5)
    np.testing.assert_array_equal(scene.bad_bands, truth["bad"])
    assert scene.nodata == -32768
    values, valid = scene.read()
    assert not valid[0, :3].any() and valid[1:].all()
    np.testing.assert_allclose(values[:, 5, 5], truth["data"][:, 5, 5] * 1e-4, rtol=1e-5)
    assert scene.crs.to_epsg() == 32633
    assert any("QL_PIXELMASK" in note for note in scene.notes)


# -- ERA5 / NetCDF / GRIB ------------------------------------------------------------------------

needs_grib = pytest.mark.skipif(
    importlib.util.find_spec("cfgrib") is None,
    reason="cfgrib/eccodes not installed (pip install 'hsikit[era5]')",
)


@needs_grib
def test_era5_grib_levels_members(shared_data):
    path = shared_data / "era5" / "era5-levels-members.grib"
    scene = open_scene(path)
    assert list(scene.band_values("name")) == ["z@850hPa", "z@500hPa", "t@850hPa", "t@500hPa"]
    assert scene.crs.to_epsg() == 4326 and (scene.height, scene.width) == (61, 120)
    assert scene.transform == Affine(3.0, 0.0, -181.5, 0.0, -3.0, 91.5)
    assert "member 0 (first, by default; 10 available)" in scene.notes
    assert any(n.startswith("time 2017-01-01T00:00 (first, by default") for n in scene.notes)
    other = open_scene(path, member=3, time="2017-01-01T12:00")
    assert not np.array_equal(other.read_raw(bands=[2]), scene.read_raw(bands=[2]))
    import xarray as xr

    ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    t850 = ds["t"].isel(number=0, time=0).sel(isobaricInhPa=850)
    # longitude 0° is column 60 after the shift to −180…180°, latitude 90° is row 0
    assert scene.read_raw(bands=[2])[0, 0, 60] == pytest.approx(float(t850.values[0, 0]))


@needs_grib
def test_era5_single_level(shared_data):
    scene = open_scene(shared_data / "era5" / "era5-single-level-scalar-time.grib")
    assert list(scene.band_values("name")) == ["t2m"]
    assert scene.transform == Affine(0.25, 0.0, -10.125, 0.0, -0.25, 60.125)


@pytest.mark.parametrize("store", ["era5.nc", "era5.zarr", "era5_v3.zarr"])
def test_gridded_ascending_latitudes_and_0_360_longitudes(tmp_path, store):
    import xarray as xr

    lat = np.array([-10.0, 0.0, 10.0])
    lon = np.arange(0.0, 360.0, 90.0)
    temps = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    ds = xr.Dataset(
        {"t": (("pressure_level", "latitude", "longitude"), temps)},
        coords={
            "pressure_level": ("pressure_level", [850.0, 500.0], {"units": "hPa"}),
            "latitude": lat,
            "longitude": lon,
        },
    )
    path = tmp_path / store
    if store.endswith(".nc"):
        ds.to_netcdf(path, engine="h5netcdf")
    else:
        # version 2 with consolidated metadata, as the public ERA5 stores (ARCO-ERA5); version 3
        # has no consolidated metadata in its specification
        version = 3 if "v3" in store else 2
        ds.to_zarr(path, zarr_format=version, consolidated=version == 2)
    with warnings.catch_warnings():  # the user sees no warning about how the store was read
        warnings.simplefilter("error", RuntimeWarning)
        scene = open_scene(path)
    assert scene.format == ("NetCDF" if store.endswith(".nc") else "Zarr (xarray)")
    assert list(scene.band_values("name")) == ["t@850hPa", "t@500hPa"]
    assert scene.transform == Affine(90.0, 0.0, -225.0, 0.0, -10.0, 15.0)
    raw = scene.read_raw()
    # row 0 is latitude 10 (north-up); column 0 is longitude −180 (= 180° in the file)
    assert raw[0, 0, 0] == temps[0, 2, 2] and raw[1, 2, 2] == temps[1, 0, 0]


def test_info_samples_the_nodata_fraction_of_large_scenes(tmp_path, run_cli):
    import json

    header = tmp_path / "big.hdr"
    header.write_text(
        "ENVI\nsamples = 2000\nlines = 1500\nbands = 2\ndata type = 2\n"
        "interleave = bsq\ndata ignore value = 0\n"
    )
    with open(tmp_path / "big.img", "wb") as fh:
        fh.truncate(2000 * 1500 * 2 * 2)  # all zeros = all nodata
    summary = json.loads(run_cli("info", header, "--json").stdout)
    assert summary["nodata_fraction"] == 1.0 and summary["nodata_fraction_exact"] is False
    small = synthetic.write_geotiff(tmp_path / "s.tif", synthetic.cube(2, 10, 10))
    summary = json.loads(run_cli("info", small, "--json").stdout)
    assert summary["nodata_fraction"] == 0.0 and summary["nodata_fraction_exact"] is True


def test_info_shows_bounds_to_the_metre_and_json_bounds_equal_rasterios(tmp_path, run_cli):
    transform = Affine(30.0, 0.0, 448_359.0, 0.0, -30.0, 4_483_591.5)
    path = synthetic.write_geotiff(tmp_path / "s.tif", synthetic.cube(2, 4, 5), transform=transform)
    text = run_cli("info", path)
    assert text.code == 0 and "448359, 4483471.5, 448509, 4483591.5" in text.stdout
    document = json.loads(run_cli("info", path, "--json").stdout)
    with rasterio.open(path) as src:
        left, bottom, right, top = src.bounds
    assert document["bounds"] == {"left": left, "bottom": bottom, "right": right, "top": top}


@pytest.mark.parametrize(("values", "nm"), [("0.45, 0.55, 0.65", 450.0), ("450, 550, 650", 450.0)])
def test_envi_unknown_wavelength_units_keep_the_wavelengths_by_their_size(
    tmp_path, run_cli, values, nm
):
    header, _ = synthetic.write_envi(
        tmp_path,
        synthetic.cube(3, 4, 5).astype("float32"),
        extra={"wavelength": f"{{{values}}}", "wavelength units": "Unknown"},
    )
    scene = open_scene(header)
    assert scene.wavelengths[0] == pytest.approx(nm)
    assert any("wavelength units = Unknown" in note for note in scene.notes)
    assert "wavelength units = Unknown" in run_cli("info", header).stdout


def test_a_member_or_time_the_file_lacks_is_refused_with_readable_times(tmp_path, run_cli):
    import pandas as pd
    import xarray as xr

    ds = xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), np.zeros((2, 3, 4), "float32"))},
        coords={
            "time": pd.date_range("2020-01-01", periods=2, freq="6h"),
            "latitude": [10.0, 9.0, 8.0],
            "longitude": [0.0, 1.0, 2.0, 3.0],
        },
    )
    path = tmp_path / "t.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    result = run_cli("info", path, "--member", "3")
    assert result.code == 2 and "has no member axis, so --member 3 does not apply" in result.stderr
    result = run_cli("info", path, "--time", "2021-05-01T00:00")
    assert result.code == 2 and "(2020-01-01T00:00 … 2020-01-01T06:00)" in result.stderr


def test_a_mat_cube_is_chosen_by_its_bands_not_by_the_files_order(tmp_path):
    cube = synthetic.cube(12, 10, 8).transpose(1, 2, 0).astype("float32")  # rows, cols, bands
    rgb = np.zeros((40, 32, 3), "uint8")  # a larger RGB image saved first
    path = tmp_path / "scene.mat"
    scipy.io.savemat(path, {"a_rgb": rgb, "b_cube": cube})
    scene = open_scene(path)
    assert scene.count == 12 and (scene.height, scene.width) == (10, 8)


def test_a_grid_of_fine_geographic_pixels_opens(tmp_path, run_cli):
    """Pixels of 0.0003° (a few tens of metres): their centres are counted, not stepped, so
    float rounding cannot add a row."""
    from affine import Affine
    from rasterio.crs import CRS

    for step in (0.001, 0.0003):
        path = synthetic.write_geotiff(
            tmp_path / f"fine_{step}.tif",
            synthetic.cube(2, 20, 1000),
            crs=CRS.from_epsg(4326),
            transform=Affine(step, 0, 10.0, 0, -step, 50.0),
        )
        result = run_cli("info", path, "--json")
        assert result.code == 0, result.stderr
        scene = open_scene(path)
        assert scene.data.sizes == {"band": 2, "y": 20, "x": 1000}
        assert float(scene.data["x"][-1]) == pytest.approx(10.0 + 999.5 * step)
