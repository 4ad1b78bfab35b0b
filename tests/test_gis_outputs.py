"""What a GIS client sees in hsikit's outputs: pixel grids north-up, palettes as long as the
class values need, named nodata, styled confidence, provenance inside every file."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import ColorInterp

from hsikit.writers.provenance import sha256_of
from tests import synthetic
from tests.helpers import MINISBLACK, PHOTOMETRIC, first_ifd_tag


def test_a_pixel_grid_map_opens_north_up(tmp_path, run_cli):
    """Indian Pines has no CRS: its ground truth, read back with GDAL, is north-up and its
    first row is the array's first row (as in the PNG)."""
    from hsikit.data.datasets import load

    assert run_cli("data", "labels", "indian_pines", "-o", tmp_path / "gt.tif").code == 0
    truth = load("indian_pines").labels.values
    with rasterio.open(tmp_path / "gt.tif") as src:
        assert src.crs is None
        assert src.transform.e < 0 and src.transform == rasterio.Affine(1, 0, 0, 0, -1, 0)
        np.testing.assert_array_equal(src.read(1)[0], truth[0])
        top_left = src.index(0.5, -0.5)
    assert top_left == (0, 0)


def test_a_converted_pixel_grid_stays_north_up(tmp_path, run_cli):
    header, _ = synthetic.write_envi(tmp_path, synthetic.cube(3, 12, 10))  # no map info
    assert run_cli("convert", header, "-o", tmp_path / "cube.tif").code == 0
    with rasterio.open(tmp_path / "cube.tif") as src:
        assert src.transform == rasterio.Affine(1, 0, 0, 0, -1, 0)


def _identify(path, x: float, y: float) -> float:
    """The value a GIS client's identify tool shows at map coordinates (x, y)."""
    with rasterio.open(path) as src:
        return float(next(src.sample([(x, y)], indexes=1))[0])


def test_pixel_look_ups_hit_the_pixel_on_a_pixel_grid(tmp_path, run_cli):
    """QGIS and EnMAP-Box read pixel (row, col) of a CRS-less grid at (col + 0.5, −(row + 0.5))
    under (0, 1, 0, 0, 0, −1): a north-up grid that started at y = H would draw the same but
    every look-up would miss, so hsikit's grid starts at y = 0."""
    rows, cols = 7, 11
    values = (np.arange(rows * cols).reshape(1, rows, cols) + 1).astype("int16")
    header, _ = synthetic.write_envi(tmp_path, values)  # no map info: a pixel grid
    assert run_cli("convert", header, "-o", tmp_path / "grid.tif").code == 0
    for row, col in [(0, 0), (0, 10), (6, 0), (3, 8), (6, 10)]:
        assert _identify(tmp_path / "grid.tif", col + 0.5, -(row + 0.5)) == values[0, row, col]


def test_a_grid_starting_at_y_h_is_kept_exactly(tmp_path, run_cli):
    """A file whose own transform starts at y = H keeps it (nothing re-anchored): look-ups at
    its coordinates hit, and the pixel-grid convention's coordinates are off its extent."""
    rows, cols = 7, 11
    values = (np.arange(rows * cols).reshape(1, rows, cols) + 1).astype("int16")
    start_at_h = rasterio.Affine(1, 0, 0, 0, -1, rows)
    source = synthetic.write_geotiff(
        tmp_path / "h.tif", values, crs=None, transform=start_at_h, nodata=None
    )
    assert run_cli("convert", source, "-o", tmp_path / "out.tif").code == 0
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.transform == start_at_h and out.crs is None
        assert out.index(3 + 0.5, -(2 + 0.5)) == (rows + 2, 3)  # outside: 7 rows only
    for row, col in [(0, 0), (6, 10), (2, 3)]:
        assert _identify(tmp_path / "out.tif", col + 0.5, rows - (row + 0.5)) == values[0, row, col]


def _map(tmp_path, run_cli, *extra, classes=3):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=6, rows=20, cols=24, classes=classes)
    bundle = tmp_path / "m.safetensors"
    assert (
        run_cli(
            "train",
            scene,
            "--labels",
            labels,
            "--model",
            "random_forest",
            "--split",
            "random",
            "-o",
            bundle,
        ).code
        == 0
    )
    result = run_cli("classify", scene, "-m", bundle, "-o", tmp_path / "map.tif", *extra)
    assert result.code == 0, result.stderr
    return scene, bundle, result


def test_class_map_palette_names_and_provenance(tmp_path, run_cli):
    scene, bundle, result = _map(tmp_path, run_cli, "--confidence")
    assert "map.tif.aux.xml" in result.stdout and "map.qml" in result.stdout  # what to keep
    with rasterio.open(tmp_path / "map.tif") as src:
        palette = src.colormap(1)
        assert len(palette) == 4  # values 0–3: NBITS 2, not 256 entries
        assert src.tags(1, ns="IMAGE_STRUCTURE")["NBITS"] == "2"
        tags = src.tags()
        assert tags["TIFFTAG_SOFTWARE"].startswith("hsikit ")
        assert tags["TIFFTAG_DATETIME"][4] == ":"  # TIFF's YYYY:MM:DD HH:MM:SS
        assert tags["HSIKIT_MODEL"] == "random_forest"
        assert tags["HSIKIT_SOURCE"] == str(scene)
        assert tags["HSIKIT_BUNDLE_SHA256"] == sha256_of(bundle)
        assert src.tags(1)["CLASS_VALUES"] == "1;2;3"
    names = [c.text for c in ET.parse(tmp_path / "map.tif.aux.xml").getroot().iter("Category")]
    assert names == ["nodata", "class 1", "class 2", "class 3"]
    with rasterio.open(tmp_path / "map_confidence.tif") as src:
        assert src.descriptions == ("confidence of the mapped class (%)",)
        assert src.units == ("%",) and src.nodata == 255
        assert src.tags()["HSIKIT_MODEL"] == "random_forest"
    style = ET.parse(tmp_path / "map_confidence.qml").getroot()
    renderer = style.find(".//rasterrenderer")
    assert renderer.get("type") == "singlebandpseudocolor"
    assert [i.get("value") for i in style.iter("item")] == ["0", "25", "50", "75", "100"]


def test_probabilities_of_four_classes_are_four_plain_bands(tmp_path, run_cli):
    """Four uint8 bands are plain data to every TIFF reader, not an RGBA picture."""
    _map(tmp_path, run_cli, "--probabilities", classes=4)
    probabilities = tmp_path / "map_probabilities.tif"
    with rasterio.open(probabilities) as src:
        assert src.count == 4 and src.descriptions == tuple(f"class {v}" for v in range(1, 5))
        assert ColorInterp.alpha not in src.colorinterp and ColorInterp.red not in src.colorinterp
    assert first_ifd_tag(probabilities, PHOTOMETRIC) == MINISBLACK


def test_provenance_in_cubes_and_pngs(tmp_path, run_cli):
    scene = synthetic.write_geotiff(tmp_path / "scene.tif", synthetic.cube(3, 10, 12))
    assert run_cli("convert", scene, "-o", tmp_path / "cube.tif").code == 0
    with rasterio.open(tmp_path / "cube.tif") as src:
        assert src.tags()["HSIKIT_SOURCE"] == str(scene)
    assert run_cli("convert", scene, "-o", tmp_path / "cube.hdr").code == 0
    assert "HSIKIT_SOURCE=" in (tmp_path / "cube.hdr").read_text()
    assert run_cli("quicklook", scene, "-o", tmp_path / "q.png").code == 0
    text = Image.open(tmp_path / "q.png").text
    assert text["Software"].startswith("hsikit ") and text["Source"] == str(scene)


def test_source_date_epoch_fixes_the_time(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    scene = synthetic.write_geotiff(tmp_path / "scene.tif", synthetic.cube(3, 10, 12))
    assert run_cli("convert", scene, "-o", tmp_path / "cube.tif").code == 0
    with rasterio.open(tmp_path / "cube.tif") as src:
        assert src.tags()["TIFFTAG_DATETIME"] == "2026:01:01 00:00:00"


def test_a_map_without_its_sidecars_keeps_values_and_names(tmp_path, run_cli):
    """Copied alone (as gdalwarp or an e-mail does), the map still carries its classes."""
    from hsikit.writers.classmap import read_class_table

    _map(tmp_path, run_cli)
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "map.tif").write_bytes((tmp_path / "map.tif").read_bytes())
    assert [(e.value, e.name) for e in read_class_table(lone / "map.tif").entries] == [
        (1, "class 1"),
        (2, "class 2"),
        (3, "class 3"),
    ]
