"""Maps opened in a real QGIS, headless, where QGIS is installed (Debian: qgis, python3-qgis):
the class QGIS identifies at known pixels, and the legend it shows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests import synthetic
from tests.conftest import REPO

QGIS_PYTHON = Path("/usr/bin/python3")


def _qgis(*maps: Path) -> list[dict]:
    if (
        not QGIS_PYTHON.is_file()
        or subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True).returncode
        != 0
    ):
        pytest.skip("QGIS's Python bindings are not installed (apt install qgis python3-qgis)")
    result = subprocess.run(
        [QGIS_PYTHON, REPO / "tests" / "qgis_check.py", *maps],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_qgis_shows_a_pixel_grid_map_north_up_with_its_legend(tmp_path, run_cli):
    from hsikit.data.datasets import load

    assert run_cli("data", "labels", "indian_pines", "-o", tmp_path / "gt.tif").code == 0
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(tmp_path / "gt.tif", alone / "gt.tif")  # without .qml and .aux.xml
    styled, bare = _qgis(tmp_path / "gt.tif", alone / "gt.tif")
    truth = load("indian_pines").labels.values
    assert styled["top_left"] == truth[0, 0] == 3  # QGIS 3.22 showed it upside down before
    assert styled["renderer"] == "paletted"
    assert [name for _, name in styled["legend"]][:2] == ["Alfalfa", "Corn-notill"]
    assert len(styled["legend"]) == 16
    assert len(bare["legend"]) == 32  # the colour table alone: 2^5 entries, not 256


def test_qgis_identifies_classes_on_a_georeferenced_map(tmp_path, run_cli):
    scene, labels, truth = synthetic.class_scene(tmp_path, bands=6, rows=20, cols=24, classes=3)
    assert run_cli("rasterize", scene, labels, "-o", tmp_path / "placed.tif").code == 0
    (described,) = _qgis(tmp_path / "placed.tif")
    assert described["crs"] == "EPSG:32633"
    assert described["top_left"] is None and truth[0, 0] == 0  # nodata stays nodata
    assert described["bottom_right"] == truth[-1, -1] == 3
    assert np.unique(truth[truth > 0]).tolist() == [v for v, _ in described["legend"]]
