"""Indian Pines offline, and the CLI info/labels commands on it."""

from __future__ import annotations

import json

import numpy as np
import rasterio
import scipy.io

from hsikit.data.datasets import load
from hsikit.writers.classmap import read_class_table


def test_indian_pines_loads_with_200_wavelengths():
    dataset = load("indian_pines")
    scene = dataset.scene
    assert (scene.count, scene.height, scene.width) == (200, 145, 145)
    wl = scene.wavelengths
    assert wl.size == 200 and 399 < wl.min() < 401 and 2480 < wl.max() < 2500
    # AVIRIS spectrometers overlap, so centres are not monotonic; they match 92AV3C.spc
    assert np.isfinite(wl).all() and np.isfinite(scene.band_values("fwhm")).all()
    assert len(dataset.labels.classes) == 16
    values, valid = scene.read()
    assert valid.all() and 955 <= values.min() and values.max() <= 9604


def test_indian_pines_labels_equal_the_official_ground_truth(shared_data):
    official = scipy.io.loadmat(shared_data / "indian_pines" / "Indian_pines_gt.mat")
    np.testing.assert_array_equal(load("indian_pines").labels.values, official["indian_pines_gt"])


def test_info_json_for_scripts(run_cli):
    result = run_cli("info", "indian_pines", "--json")
    assert result.code == 0
    summary = json.loads(result.stdout)
    assert summary["bands"] == 200 and summary["crs"] is None
    assert summary["ground_truth"] == {"classes": 16, "labelled_pixels": 10249}
    assert summary["nodata_fraction"] == 0.0


def test_ground_truth_class_map(tmp_path, run_cli):
    result = run_cli(
        "data", "labels", "indian_pines", "-o", tmp_path / "gt.tif", "--png", tmp_path / "gt.png"
    )
    assert result.code == 0, result.stderr
    with rasterio.open(tmp_path / "gt.tif") as src:
        assert src.nodata == 0 and (src.width, src.height) == (145, 145)
        assert int((src.read(1) > 0).sum()) == 10249
    table = read_class_table(tmp_path / "gt.tif")
    assert table.name_of(1) == "Alfalfa" and table.name_of(16) == "Stone-Steel-Towers"
    assert (tmp_path / "gt.qml").is_file() and (tmp_path / "gt.png").stat().st_size > 10_000
