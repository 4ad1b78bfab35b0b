"""``hsikit info`` on a class map: each class with its pixels and ground area."""

from __future__ import annotations

import json

import numpy as np
import rasterio
from affine import Affine
from pyproj import Geod

from tests import synthetic

FAST = ["--model", "random_forest", "--split", "random", "--train-ratio", "0.3"]
NAMES = ["water", "forest", "crop", "class 4"]  # class 4 is not in the class table
#: 1/1024° pixels at 50° N, about 70 m × 108 m
GEOGRAPHIC = Affine(1 / 1024, 0.0, 10.0, 0.0, -1 / 1024, 50.0)


def _class_map(tmp_path, run_cli, **grid):
    """A map classified from a small synthetic scene (on ``grid``: crs and transform, else the
    synthetic UTM grid) whose labels are named by a class table; the map's path and its values."""
    scene, labels, truth = synthetic.class_scene(tmp_path, bands=6, rows=20, cols=24)
    if grid:
        with rasterio.open(scene) as src:
            data = src.read()
        scene = synthetic.write_geotiff(
            tmp_path / "moved.tif", data, band_wavelengths=synthetic.wavelengths(6), **grid
        )
        labels = synthetic.write_geotiff(
            tmp_path / "moved_gt.tif", truth[None], nodata=None, **grid
        )
    table = tmp_path / "classes.csv"
    table.write_text("value,name\n1,water\n2,forest\n3,crop\n")
    bundle = tmp_path / "m.safetensors"
    trained = run_cli(
        "train", scene, "--labels", labels, "--class-table", table, *FAST, "-o", bundle
    )
    assert trained.code == 0, trained.stderr
    output = tmp_path / "map.tif"
    assert run_cli("classify", scene, "-m", bundle, "-o", output).code == 0
    with rasterio.open(output) as src:
        values = src.read(1)
    return output, values


def _classes(run_cli, output):
    result = run_cli("info", output, "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)["classes"]


def _counts(values):
    found, counts = np.unique(values[values > 0], return_counts=True)
    return dict(zip(found.tolist(), counts.tolist()))


def test_info_lists_each_class_of_a_map_with_pixels_and_hectares(tmp_path, run_cli):
    output, values = _class_map(tmp_path, run_cli)
    classes, counts = _classes(run_cli, output), _counts(values)
    assert [c["value"] for c in classes] == [1, 2, 3, 4]  # nodata (0) is no class
    assert [c["name"] for c in classes] == NAMES
    assert {c["value"]: c["pixels"] for c in classes} == counts
    for entry in classes:  # 30 m × 30 m pixels
        assert np.isclose(entry["hectares"], counts[entry["value"]] * 30 * 30 / 10_000)
    text = run_cli("info", output)
    assert text.code == 0, text.stderr
    for entry in classes:
        pixels, hectares = entry["pixels"], entry["hectares"]
        assert f"{entry['name']}: {pixels:,} pixels, {hectares:,.2f} ha" in text.stdout


def test_a_geographic_map_has_its_areas_on_the_ellipsoid(tmp_path, run_cli):
    output, values = _class_map(
        tmp_path, run_cli, crs=rasterio.CRS.from_epsg(4326), transform=GEOGRAPHIC
    )
    geod, t = Geod(ellps="WGS84"), GEOGRAPHIC
    for entry in _classes(run_cli, output):
        rows, _ = np.nonzero(values == entry["value"])
        square_metres = 0.0
        for row in rows:  # each pixel's own geodesic area
            top, bottom = t.f + t.e * row, t.f + t.e * (row + 1)
            lons, lats = [t.c, t.c + t.a, t.c + t.a, t.c], [top, top, bottom, bottom]
            area, _ = geod.polygon_area_perimeter(lons, lats)
            square_metres += abs(area)
        assert np.isclose(entry["hectares"], square_metres / 10_000, rtol=1e-6), entry


def test_a_map_without_a_crs_lists_pixels_only(tmp_path, run_cli):
    output, values = _class_map(tmp_path, run_cli, crs=None, transform=Affine.identity())
    classes = _classes(run_cli, output)
    assert {c["value"]: c["pixels"] for c in classes} == _counts(values)
    assert all(c["hectares"] is None for c in classes)
    text = run_cli("info", output).stdout
    assert "no areas: the map has no CRS" in text
    for entry in classes:
        assert f"{entry['name']}: {entry['pixels']:,} pixels " in text  # no hectares after it
