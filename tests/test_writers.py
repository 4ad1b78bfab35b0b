"""Writers, checked by reopening what a user would open: grid, nodata, colours, names, COG
layout."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from matplotlib.image import imread
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from hsikit import open_scene
from hsikit.classes import ClassTable
from hsikit.scene import Grid
from hsikit.writers.classmap import ClassMapWriter, read_class_table, write_class_map
from hsikit.writers.quicklook import display_bands
from tests import synthetic
from tests.helpers import MINISBLACK, PHOTOMETRIC, first_ifd_tag

TABLE = ClassTable.from_names(["Water", "Forest", "Crop"])


def _labels(rows=600, cols=700):
    values = (np.add.outer(np.arange(rows) // 50, np.arange(cols) // 70) % 4).astype("uint8")
    values[:20, :20] = 0  # nodata corner
    return values


def test_class_map_is_a_gis_ready_cog(tmp_path):
    grid = Grid(700, 600, synthetic.UTM_TRANSFORM, synthetic.UTM)
    labels = _labels()
    path = write_class_map(tmp_path / "map.tif", labels, grid, TABLE)
    with rasterio.open(path) as src:
        assert (src.width, src.height) == (700, 600)
        assert src.crs == synthetic.UTM and src.transform == synthetic.UTM_TRANSFORM
        assert src.nodata == 0 and src.dtypes[0] == "uint8"
        np.testing.assert_array_equal(src.read(1), labels)
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.profile["tiled"] and src.compression.name == "deflate"
        assert src.overviews(1), "a 700×600 COG gets overviews"
        colours = src.colormap(1)
        assert colours[2] == (255, 127, 14, 255) and colours[0][3] == 0
    # category names and RAT for GDAL/QGIS, in the PAM sidecar
    aux = ET.parse(tmp_path / "map.tif.aux.xml").getroot()
    names = [c.text or "" for c in aux.iter("Category")]
    assert names == ["unlabelled", "Water", "Forest", "Crop"]
    rat = aux.find(".//GDALRasterAttributeTable")
    assert rat.get("tableType") == "thematic"
    assert [r.findall("F")[1].text for r in rat.findall("Row")] == ["Water", "Forest", "Crop"]
    qml = ET.parse(tmp_path / "map.qml").getroot()
    entries = qml.findall(".//paletteEntry")
    assert [(e.get("value"), e.get("label"), e.get("color")) for e in entries] == [
        ("1", "Water", "#1f77b4"),
        ("2", "Forest", "#ff7f0e"),
        ("3", "Crop", "#2ca02c"),
    ]
    assert read_class_table(path) == TABLE


def test_class_map_without_crs_is_a_north_up_pixel_grid(tmp_path):
    """GDAL's default (0, 1, 0, 0, 0, 1) is south-up: QGIS would show the map upside down."""
    grid = Grid(30, 20, rasterio.Affine.identity(), None)
    values = np.ones((20, 30), "uint8")
    values[0, :5] = 3  # the array's first row
    path = write_class_map(tmp_path / "m.tif", values, grid, TABLE)
    with rasterio.open(path) as src:
        assert src.crs is None and src.transform == rasterio.Affine(1, 0, 0, 0, -1, 0)
        assert src.read(1)[0, :6].tolist() == [3, 3, 3, 3, 3, 1]
        assert src.xy(0, 0) == (0.5, -0.5)  # row 0 is the top of the map


def test_confidence_and_probabilities_written_beside_the_map(tmp_path):
    grid = Grid(40, 30, synthetic.UTM_TRANSFORM, synthetic.UTM)
    classes = np.full((30, 40), 2, "uint8")
    classes[0, 0] = 0
    probs = np.zeros((3, 30, 40), "float32")
    probs[1] = 0.8
    probs[0] = 0.2
    with ClassMapWriter(
        tmp_path / "map.tif", grid, TABLE, confidence=True, probabilities=True
    ) as writer:
        writer.write(
            Window(0, 0, 40, 30), classes, confidence=probs.max(axis=0), probabilities=probs
        )
    with rasterio.open(tmp_path / "map_confidence.tif") as src:
        conf = src.read(1)
        assert conf[0, 0] == 255 and conf[5, 5] == 80 and src.nodata == 255
    with rasterio.open(tmp_path / "map_probabilities.tif") as src:
        assert src.count == 3 and src.descriptions == ("Water", "Forest", "Crop")
        assert src.read(2)[5, 5] == 80 and src.crs == synthetic.UTM
        assert ColorInterp.red not in src.colorinterp and ColorInterp.alpha not in src.colorinterp
    # plain data, as QGIS must see it: three uint8 bands are not an RGB picture
    assert first_ifd_tag(tmp_path / "map_probabilities.tif", PHOTOMETRIC) == MINISBLACK


def test_failed_write_leaves_nothing_at_the_output(tmp_path):
    grid = Grid(40, 30, synthetic.UTM_TRANSFORM, synthetic.UTM)
    with pytest.raises(RuntimeError):
        with ClassMapWriter(tmp_path / "map.tif", grid, TABLE) as writer:
            writer.write(Window(0, 0, 40, 15), np.ones((15, 40), "uint8"))
            raise RuntimeError("model crashed half-way")
    assert list(tmp_path.iterdir()) == []


def test_geotiff_envi_zarr_geotiff_round_trip(tmp_path, run_cli):
    data = synthetic.cube(5, 33, 41)
    data[:, 0, 0] = -9999
    src = synthetic.write_geotiff(
        tmp_path / "in.tif", data, band_wavelengths=synthetic.wavelengths(5)
    )
    with rasterio.open(src, "r+") as dst:
        dst.update_tags(4, bbl="0")
    chain = [src, tmp_path / "a.hdr", tmp_path / "b.zarr", tmp_path / "c.tif"]
    for source, target in zip(chain, chain[1:]):
        result = run_cli("convert", source, "-o", target)
        assert result.code == 0, result.stderr
    first, last = open_scene(src), open_scene(chain[-1])
    np.testing.assert_array_equal(last.read_raw(), data)
    for coord in ("wavelength", "fwhm", "bad_band", "scale", "offset"):
        np.testing.assert_allclose(
            last.band_values(coord).astype(float), first.band_values(coord).astype(float), rtol=1e-6
        )
    assert last.bad_bands.tolist() == [False, False, False, True, False]
    assert last.crs == first.crs and last.transform == first.transform
    assert last.nodata == -9999
    assert open_scene(tmp_path / "a.hdr").format == "ENVI"
    assert open_scene(tmp_path / "b.zarr").format == "Zarr"


def test_true_colour_quicklook_uses_bands_nearest_rgb(tmp_path, run_cli):
    data = synthetic.cube(20, 30, 40)
    wl = np.linspace(400, 1000, 20)
    path = synthetic.write_geotiff(tmp_path / "s.tif", data, band_wavelengths=wl)
    chosen = display_bands(open_scene(path))
    assert [round(float(wl[b])) for b in chosen] == [653, 558, 463]
    result = run_cli("quicklook", path, "-o", tmp_path / "q.png")
    assert result.code == 0 and "true colour: 653 nm, 558 nm, 463 nm" in result.stdout
    image = imread(tmp_path / "q.png")
    assert image.shape == (30, 40, 4)


def test_a_quicklook_without_wavelengths_says_which_bands_it_shows(tmp_path, run_cli):
    path = synthetic.write_geotiff(tmp_path / "s.tif", synthetic.cube(4, 10, 12))
    result = run_cli("quicklook", path, "-o", tmp_path / "q.png")
    assert result.code == 0
    assert "bands 1, 2, 3" in result.stdout and "no visible wavelengths" in result.stdout


def test_class_map_quicklook_has_legend(tmp_path, run_cli):
    grid = Grid(70, 60, synthetic.UTM_TRANSFORM, synthetic.UTM)
    write_class_map(tmp_path / "map.tif", _labels(60, 70), grid, TABLE)
    result = run_cli("quicklook", tmp_path / "map.tif", "-o", tmp_path / "map.png")
    assert result.code == 0
    image = imread(tmp_path / "map.png")
    water = np.asarray([31, 119, 180]) / 255.0
    assert np.isclose(image[..., :3], water, atol=0.01).all(axis=-1).sum() > 50


def test_a_zarr_cube_is_a_self_describing_xarray_dataset(tmp_path, run_cli):
    import xarray as xr

    data = synthetic.cube(4, 6, 5)
    wl = synthetic.wavelengths(4)
    src = synthetic.write_geotiff(tmp_path / "in.tif", data, band_wavelengths=wl)
    cube = tmp_path / "cube.zarr"
    assert run_cli("convert", src, "-o", cube).code == 0
    with xr.open_zarr(cube) as ds:
        da = ds["cube"]
        assert da.dims == ("band", "y", "x") and da.shape == (4, 6, 5)
        t = synthetic.UTM_TRANSFORM
        np.testing.assert_allclose(ds["x"].values, t.c + t.a * (np.arange(5) + 0.5))
        np.testing.assert_allclose(ds["y"].values, t.f + t.e * (np.arange(6) + 0.5))
        np.testing.assert_allclose(ds["wavelength"].values, wl)
        assert "wavelength" in da.coords and "UTM" in ds["spatial_ref"].attrs["crs_wkt"]
        np.testing.assert_allclose(da.values[:, 2, 3], data[:, 2, 3])
    back = run_cli("convert", cube, "-o", tmp_path / "back.tif")  # hsikit still reads it
    assert back.code == 0, back.stderr


def test_a_mat_cube_quicklook_says_which_bands_it_shows(tmp_path, run_cli):
    import scipy.io

    cube = np.random.default_rng(0).random((12, 10, 5)).astype("float32")  # rows, cols, bands
    scipy.io.savemat(tmp_path / "cube.mat", {"cube": cube})
    result = run_cli("quicklook", tmp_path / "cube.mat", "-o", tmp_path / "q.png")
    assert result.code == 0, result.stderr
    assert imread(tmp_path / "q.png").shape[:2] == (12, 10)
    assert "bands 1, 2, 3" in result.stdout and "no visible wavelengths" in result.stdout
