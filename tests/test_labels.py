"""Labels on the scene grid: vector polygons in another CRS, label rasters."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import rasterio
from pyproj import Transformer
from shapely.geometry import box

from hsikit import open_scene
from hsikit.data.labels import load_labels
from tests import synthetic


def _scene(tmp_path):
    return synthetic.write_geotiff(tmp_path / "scene.tif", synthetic.cube(3, 40, 50))


def _pixel_box_in_wgs84(col0, row0, col1, row1):
    """The ground footprint of a pixel block of the synthetic UTM scene, in EPSG:4326."""
    t = synthetic.UTM_TRANSFORM
    x0, y0 = t @ (col0, row0)
    x1, y1 = t @ (col1, row1)
    to_wgs = Transformer.from_crs(32633, 4326, always_xy=True)
    (lon0, lon1), (lat0, lat1) = to_wgs.transform([x0, x1], [y0, y1])
    return box(min(lon0, lon1), min(lat0, lat1), max(lon0, lon1), max(lat0, lat1))


def test_wgs84_polygons_land_on_the_utm_grid(tmp_path, run_cli):
    scene_path = _scene(tmp_path)
    frame = gpd.GeoDataFrame(
        {"crop": ["wheat", "maize"]},
        geometry=[_pixel_box_in_wgs84(2, 3, 12, 10), _pixel_box_in_wgs84(30, 20, 45, 35)],
        crs="EPSG:4326",
    )
    vector = tmp_path / "fields.gpkg"
    frame.to_file(vector)
    result = run_cli(
        "rasterize",
        scene_path,
        vector,
        "--class-field",
        "crop",
        "-o",
        tmp_path / "labels.tif",
        "--png",
        tmp_path / "labels.png",
    )
    assert result.code == 0, result.stderr
    with rasterio.open(tmp_path / "labels.tif") as src:
        values = src.read(1)
        assert src.crs.to_epsg() == 32633 and src.transform == synthetic.UTM_TRANSFORM
    # classes are numbered in sorted name order: maize = 1, wheat = 2
    assert values[6, 7] == 2 and values[27, 37] == 1 and values[0, 0] == 0
    # the reprojected box covers the pixel block up to the sub-pixel skew of the projection
    assert abs(int((values == 2).sum()) - 10 * 7) <= 12
    labels = load_labels(tmp_path / "labels.tif", open_scene(scene_path))
    assert [e.name for e in labels.classes.entries] == ["maize", "wheat"]
    assert (tmp_path / "labels.png").stat().st_size > 0


def test_numeric_class_field_keeps_values_and_names(tmp_path):
    scene = open_scene(_scene(tmp_path))
    t = synthetic.UTM_TRANSFORM
    frame = gpd.GeoDataFrame(
        {"code": [7, 3], "label": ["urban", "water"]},
        geometry=[box(*(t @ (0, 10)), *(t @ (10, 0))), box(*(t @ (20, 30)), *(t @ (30, 20)))],
        crs=32633,
    )
    frame.to_file(tmp_path / "l.geojson")
    labels = load_labels(tmp_path / "l.geojson", scene, "code", name_field="label")
    assert labels.classes.values == [3, 7]
    assert labels.classes.name_of(7) == "urban"
    assert labels.counts() == {3: 100, 7: 100}


def test_label_raster_must_match_the_grid(tmp_path):
    scene = open_scene(_scene(tmp_path))
    truth = np.zeros((1, 40, 50), "uint8")
    truth[0, 5:10, 5:10] = 4
    good = synthetic.write_geotiff(tmp_path / "gt.tif", truth, nodata=None)
    assert load_labels(good, scene).counts() == {4: 25}
