"""Labels on the scene grid: vector polygons in another CRS, label rasters."""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET

import geopandas as gpd
import numpy as np
import rasterio
from pyproj import Transformer
from shapely.geometry import box

from hsikit import open_scene
from hsikit.data.labels import load_labels
from tests import synthetic
from tests.conftest import assert_one_sentence_error


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


QML = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.4-Białowieża" styleCategories="Symbology">
  <renderer-v2 type="categorizedSymbol" attr="crop" forceraster="0" enableorderby="0">
    <categories>
      <category value="maize" label="Maize" symbol="0" render="true"/>
      <category value="wheat" label="Wheat" symbol="1" render="true"/>
    </categories>
    <symbols>
      <symbol type="marker" name="0" alpha="1"><layer class="SimpleMarker"><Option type="Map">
        <Option type="QString" name="color" value="227,26,28,255"/>
      </Option></layer></symbol>
      <symbol type="marker" name="1" alpha="1"><layer class="SimpleMarker">
        <prop k="color" v="51,160,44,255"/>
      </layer></symbol>
    </symbols>
  </renderer-v2>
</qgis>
"""


#: The colours the QGIS style above gives maize and wheat.
QGIS_COLOURS = {1: (227, 26, 28), 2: (51, 160, 44)}


def _qgis_geopackage(path, *, other_layer=True):
    """Point layers (one, or two with ``other_layer``) and QGIS's layer_styles table holding a
    categorized style for the first."""
    import pandas as pd
    import pyogrio

    t = synthetic.UTM_TRANSFORM
    centres = [t @ (c + 0.5, r + 0.5) for c, r in [(3, 4), (5, 6), (30, 20), (33, 25)]]
    points = gpd.GeoDataFrame(
        {"crop": ["wheat", "wheat", "maize", "maize"]},
        geometry=gpd.points_from_xy(*zip(*centres)),
        crs="EPSG:32633",
    )
    points.to_file(path, layer="points")
    if other_layer:
        points.iloc[:1].to_file(path, layer="other", mode="a")
    styles = pd.DataFrame(
        {
            "f_table_catalog": [""],
            "f_table_schema": [""],
            "f_table_name": ["points"],
            "f_geometry_column": ["geom"],
            "styleName": ["points"],
            "styleQML": [QML],
            "useAsDefault": [True],
        }
    )
    pyogrio.write_dataframe(styles, path, layer="layer_styles", append=True)
    return path


def _rasterized(run_cli, *args):
    """``hsikit rasterize ARGS…`` with every Python warning recorded (pytest would otherwise
    capture them, so stderr could never show one): the result, the warnings and the colours of
    the map written."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cli("rasterize", *args)
    assert result.code == 0, result.stderr
    output = args[args.index("-o") + 1]
    with rasterio.open(output) as src:
        colours = {value: src.colormap(1)[value][:3] for value in QGIS_COLOURS}
    return result, [str(w.message) for w in caught], colours


def _layer_warnings(messages):
    return [m for m in messages if "layer" in m.lower()]


def test_a_qgis_geopackage_layer_is_chosen_and_keeps_its_qgis_colours(tmp_path, run_cli):
    scene_path = _scene(tmp_path)
    vector = _qgis_geopackage(tmp_path / "labels.gpkg")
    output = tmp_path / "labels.tif"
    common = ["--class-field", "crop", "-o", output]
    refused = run_cli("rasterize", scene_path, vector, *common)
    assert refused.code == 2 and "holds 2 layers with geometries (points, other)" in refused.stderr
    assert "--layer" in refused.stderr and not output.exists()
    result, caught, colours = _rasterized(run_cli, scene_path, vector, "--layer", "points", *common)
    assert _layer_warnings(caught) == [] and "layer" not in result.stderr.lower()
    with rasterio.open(output) as src:
        values = src.read(1)
    assert values[4, 3] == 2 and values[20, 30] == 1  # maize = 1, wheat = 2 (sorted names)
    assert colours == QGIS_COLOURS
    unknown = run_cli("rasterize", scene_path, vector, "--layer", "roads", *common)
    assert unknown.code == 2 and "has no layer 'roads'" in unknown.stderr


def test_a_map_style_beside_a_geopackage_leaves_its_qgis_colours(tmp_path, run_cli):
    """QGIS's usual GeoPackage: one layer and its style. Rasterizing it to fields.tif writes the
    map's raster style fields.qml beside fields.gpkg; the next run still takes QGIS's colours."""
    scene_path = _scene(tmp_path)
    vector = _qgis_geopackage(tmp_path / "fields.gpkg", other_layer=False)
    for name in ("fields.tif", "again.tif"):
        result, caught, colours = _rasterized(
            run_cli, scene_path, vector, "--class-field", "crop", "-o", tmp_path / name
        )
        assert _layer_warnings(caught) == [] and "layer" not in result.stderr.lower()
        assert colours == QGIS_COLOURS, name
    beside = ET.parse(tmp_path / "fields.qml").getroot()
    assert beside.find(".//rasterrenderer") is not None  # hsikit's style of the map


def test_a_qgis_style_beside_geojson_labels_gives_their_colours(tmp_path, run_cli):
    scene_path = _scene(tmp_path)
    vector = tmp_path / "labels.geojson"
    gpd.read_file(_qgis_geopackage(tmp_path / "labels.gpkg"), layer="points").to_file(vector)
    (tmp_path / "labels.qml").write_text(QML)
    _, _, colours = _rasterized(
        run_cli, scene_path, vector, "--class-field", "crop", "-o", tmp_path / "map.tif"
    )
    assert colours == QGIS_COLOURS


def test_sparse_labels_are_said_to_train_on_a_handful_of_pixels(tmp_path, run_cli):
    scene, _, truth = synthetic.class_scene(tmp_path, bands=6, rows=24, cols=30)
    sparse = np.zeros_like(truth)
    for value in range(1, 5):  # three labelled pixels per class, as a few field points give
        rows, cols = np.nonzero(truth == value)
        sparse[rows[:3], cols[:3]] = value
    labels = synthetic.write_geotiff(tmp_path / "sparse.tif", sparse[None], nodata=None)
    output = tmp_path / "m.safetensors"
    result = run_cli(
        "train", scene, "--labels", labels, "--model", "svm_rbf", "--split", "random", "-o", output
    )
    assert result.code == 0, result.stderr
    said = (  # the random split trains each class on one of its three pixels, tests the rest
        "classes train on fewer than 5 pixels each: class 1 (1), class 2 (1), class 3 (1), "
        "class 4 (1); label more pixels, or give --per-class N or a larger --train-ratio"
    )
    assert f"warning: {said}" in result.stderr
    assert "--block-size" not in result.stderr and "--train-fraction" not in result.stderr
    report = json.loads((tmp_path / "m_report" / "metrics.json").read_text())
    assert report["warnings"] == [said]


def test_labels_on_nodata_pixels_are_counted_and_said(tmp_path, run_cli):
    scene, _, truth = synthetic.class_scene(tmp_path, bands=6, rows=24, cols=30)
    labelled = truth.copy()
    labelled[:6, :8] = 1  # the scene's nodata block, labelled anyway
    labels = synthetic.write_geotiff(tmp_path / "all.tif", labelled[None], nodata=None)
    result = run_cli(
        "train", scene, "--labels", labels, "--model", "svm_rbf", "--split", "random",
        "-o", tmp_path / "m.safetensors",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "labelled pixels are nodata in the scene and were left out" in result.stderr


def test_an_image_given_as_labels_is_refused(tmp_path, run_cli):
    scene, _, _ = synthetic.class_scene(tmp_path, bands=6, rows=24, cols=30)
    output = tmp_path / "m.safetensors"
    result = run_cli("train", scene, "--labels", scene, "--model", "svm_rbf", "-o", output)
    assert result.code == 2 and "is the scene itself" in result.stderr and not output.exists()
    image = np.arange(24 * 30, dtype="uint16").reshape(1, 24, 30) + 1
    labels = synthetic.write_geotiff(tmp_path / "image.tif", image, nodata=None)
    result = run_cli("train", scene, "--labels", labels, "--model", "svm_rbf", "-o", output)
    assert result.code == 2 and "720 distinct values" in result.stderr and not output.exists()
    # a vector field of identifiers, one per point, is not a class field either
    rows, cols = np.mgrid[0:24, 0:30]
    x, y = synthetic.UTM_TRANSFORM @ (cols.ravel() + 0.5, rows.ravel() + 0.5)
    points = gpd.GeoDataFrame(
        {"fid_": np.arange(x.size), "crop": (cols.ravel() % 3).astype(str)},
        geometry=gpd.points_from_xy(x, y),
        crs=synthetic.UTM,
    )
    points.to_file(tmp_path / "points.gpkg")
    result = run_cli(
        "train", scene, "--labels", tmp_path / "points.gpkg", "--class-field", "fid_",
        "--model", "svm_rbf", "-o", output,
    )  # fmt: skip
    assert_one_sentence_error(
        result, "points.gpkg", "'fid_' has 720 distinct values", "--class-field", "crop"
    )


def test_info_describes_a_geopackage_of_labels(tmp_path, run_cli):
    vector = _qgis_geopackage(tmp_path / "labels.gpkg")
    result = run_cli("info", vector)
    assert result.code == 0, result.stderr
    assert "points: 4 Point" in result.stdout and "other: 1 Point" in result.stdout
    assert "maize (2)" in result.stdout and "QGIS style" in result.stdout
    document = json.loads(run_cli("info", vector, "--json").stdout)
    points = document["layers"][0]
    assert points["crs"] == "EPSG:32633" and points["qgis_style_on"] == ["crop"]
    assert points["fields"]["crop"]["values"] == {"maize": 2, "wheat": 2}
    assert [layer["name"] for layer in document["layers"]] == ["points", "other"]


def test_raster_labels_take_their_class_names_from_a_class_table(tmp_path, run_cli):
    from hsikit.writers.classmap import read_class_table

    scene, labels, _ = synthetic.class_scene(tmp_path, bands=6, rows=24, cols=30)
    table = tmp_path / "classes.csv"
    table.write_text("value,name,colour\n1,water,#1f78b4\n2,forest,#33a02c\n3,crop,#ffff99\n")
    output = tmp_path / "named.tif"
    result = run_cli("rasterize", scene, labels, "--class-table", table, "-o", output)
    assert result.code == 0, result.stderr
    named = read_class_table(output)
    assert [e.name for e in named.entries] == ["water", "forest", "crop", "class 4"]
    assert named.entries[0].colour == (0x1F, 0x78, 0xB4)
    bundle = tmp_path / "m.safetensors"
    trained = run_cli(
        "train", scene, "--labels", labels, "--class-table", table, "--model", "svm_rbf",
        "--split", "random", "-o", bundle,
    )  # fmt: skip
    assert trained.code == 0, trained.stderr
    assert "forest" in run_cli("info", bundle).stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("value,name\none,water\n")
    refused = run_cli("rasterize", scene, labels, "--class-table", bad, "-o", tmp_path / "x.tif")
    assert refused.code == 2 and "entry 1 is not a class" in refused.stderr


def test_mat_ground_truth_at_another_resolution_is_described_and_refused(tmp_path, run_cli):
    """A 4× finer label map beside the cube: info says what it is and what train does with
    it, and train does exactly that."""
    import scipy.io

    rng = np.random.default_rng(0)
    scene = tmp_path / "fine_gt.mat"
    gt = rng.integers(0, 4, size=(32, 24)).astype("uint8")
    scipy.io.savemat(scene, {"cube": rng.random((8, 6, 5)), "gt": gt})
    info = run_cli("info", scene)
    assert info.code == 0, info.stderr
    said = "ground truth candidate 'gt' 4× finer than the cube (32 × 24 vs 8 × 6)"
    assert said in info.stdout and "'hsikit train' refuses it" in info.stdout
    (candidate,) = json.loads(run_cli("info", scene, "--json").stdout)["ground_truth_candidates"]
    assert candidate["shape"] == [32, 24] and candidate["cube"] == [8, 6]
    output = tmp_path / "m.safetensors"
    trained = run_cli("train", scene, "--labels", scene, "--model", "svm_rbf", "-o", output)
    assert_one_sentence_error(trained, said, "majority class of each 4 × 4 block")
    assert candidate["train"].removeprefix("'hsikit train' refuses it: ") in trained.stderr
    beside = tmp_path / "fine_gt_gt.mat"
    scipy.io.savemat(beside, {"gt": gt})
    trained = run_cli("train", scene, "--labels", beside, "--model", "svm_rbf", "-o", output)
    assert_one_sentence_error(trained, "(32 × 24) is 4× finer than the scene (8 × 6)", "4 × 4")
    assert not output.exists()


def test_evaluate_matches_raster_reference_labels_by_their_class_table(tmp_path, run_cli):
    table = tmp_path / "classes.csv"
    table.write_text("value,name\n1,water\n2,forest\n3,crop\n4,urban\n")
    scene, labels, bundle = synthetic.trained_bundle(tmp_path, "svm_rbf", class_table=str(table))
    with rasterio.open(labels) as src:
        reference = src.read(1)
    reference[::2] = 0  # another survey of the scene: every other row
    surveyed = synthetic.write_geotiff(tmp_path / "reference.tif", reference[None], nodata=None)
    scored = run_cli(
        "evaluate", bundle, scene, "--labels", surveyed, "--class-table", table,
        "--report", tmp_path / "scores",
    )  # fmt: skip
    assert scored.code == 0, scored.stderr
    assert f"on {int((reference > 0).sum())} test pixels" in scored.stdout
    report = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert report["class_names"] == ["water", "forest", "crop", "urban"]
    assert list(report["per_class"]) == report["class_names"]
    unnamed = run_cli("evaluate", bundle, scene, "--labels", surveyed)
    assert_one_sentence_error(
        unnamed, "reference.tif", "none of the reference classes is a class of the model (water, "
        "forest, crop, urban)", "--class-table", "--name-field",
    )  # fmt: skip
