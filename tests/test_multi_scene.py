"""Several scenes with one vector labels file, as a user trains and evaluates on a set of tiles:
tiles the labels miss are skipped with a note (or refused with --strict), and evaluation pools
the tiles' pixels into one confusion matrix with each tile's figures beside it."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine

from tests import synthetic
from tests.conftest import assert_one_sentence_error

FAST = ["--model", "svm_rbf", "--split", "random", "--class-field", "code"]
#: Tile B: tile A's pixels 100 km east of it, so no feature placed on A falls on B.
EAST = Affine.translation(100_000.0, 0.0) @ synthetic.UTM_TRANSFORM


def _tiles(tmp_path):
    """Tiles A.tif and B.tif (same pixels, disjoint places), A's label raster and truth."""
    scene, labels, truth = synthetic.class_scene(tmp_path, bands=6, rows=24, cols=30)
    tile_a = scene.rename(tmp_path / "A.tif")
    with rasterio.open(tile_a) as src:
        data = src.read()
    tile_b = synthetic.write_geotiff(
        tmp_path / "B.tif", data, transform=EAST, band_wavelengths=synthetic.wavelengths(6)
    )
    return tile_a, tile_b, labels, truth


def _points(path, truth, transforms, step=5):
    """Every ``step``-th labelled pixel of ``truth`` as a point at its centre, on the tile of
    each transform given, with its class number in 'code'."""
    rows, cols = np.nonzero(truth)
    rows, cols = rows[::step], cols[::step]
    centres = [t @ (c + 0.5, r + 0.5) for t in transforms for r, c in zip(rows, cols)]
    codes = np.tile(truth[rows, cols], len(transforms)).astype(int)
    frame = gpd.GeoDataFrame(
        {"code": codes}, geometry=gpd.points_from_xy(*zip(*centres)), crs="EPSG:32633"
    )
    frame.to_file(path)
    return path


def test_one_geopackage_for_two_tiles_skips_the_tile_it_misses(tmp_path, run_cli):
    tile_a, tile_b, _, truth = _tiles(tmp_path)
    points = _points(tmp_path / "labels.gpkg", truth, [synthetic.UTM_TRANSFORM])
    bundle = tmp_path / "m.safetensors"
    result = run_cli("train", tile_a, tile_b, "--labels", points, *FAST, "-o", bundle)
    assert result.code == 0, result.stderr
    assert f"scene {tile_b}: no label feature overlaps it ({points}); skipped" in result.stderr
    report = json.loads((tmp_path / "m_report" / "metrics.json").read_text())
    assert report["scenes"]["used"] == [str(tile_a)]
    assert len(report["scenes"]["skipped"]) == 1 and "B.tif" in report["scenes"]["skipped"][0]
    assert report["n_test"] > 0
    described = run_cli("info", bundle, "--json")
    assert json.loads(described.stdout)["skipped"] == report["scenes"]["skipped"]

    strict = run_cli("train", tile_a, tile_b, "--labels", points, *FAST, "--strict", "-o",
                     tmp_path / "s.safetensors")  # fmt: skip
    assert_one_sentence_error(strict, f"{tile_b}: no label feature overlaps it", "--strict")
    assert not (tmp_path / "s.safetensors").exists()

    far = Affine.translation(0.0, 300_000.0) @ synthetic.UTM_TRANSFORM
    nowhere = _points(tmp_path / "elsewhere.gpkg", truth, [far])
    refused = run_cli("train", tile_a, tile_b, "--labels", nowhere, *FAST, "-o",
                      tmp_path / "n.safetensors")  # fmt: skip
    assert_one_sentence_error(refused, "elsewhere.gpkg", "any of the scenes", "A.tif", "B.tif")
    assert not (tmp_path / "n.safetensors").exists()


def test_evaluate_pools_tiles_into_one_confusion_matrix(tmp_path, run_cli):
    tile_a, tile_b, labels, truth = _tiles(tmp_path)
    bundle = tmp_path / "m.safetensors"
    trained = run_cli("train", tile_a, "--labels", labels, *FAST[:4], "--train-ratio", "0.05",
                      "-o", bundle)  # fmt: skip
    assert trained.code == 0, trained.stderr
    points = _points(tmp_path / "reference.gpkg", truth, [synthetic.UTM_TRANSFORM, EAST], step=3)
    reports = {}
    for name, tiles in (("a", [tile_a]), ("b", [tile_b]), ("ab", [tile_a, tile_b])):
        result = run_cli("evaluate", bundle, *tiles, "--labels", points, "--class-field", "code",
                         "--report", tmp_path / name)  # fmt: skip
        assert result.code == 0, result.stderr
        reports[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    a, b, pooled = reports["a"], reports["b"], reports["ab"]
    assert np.array_equal(
        np.asarray(pooled["confusion"]), np.asarray(a["confusion"]) + np.asarray(b["confusion"])
    )
    assert pooled["n_test"] == a["n_test"] + b["n_test"] > 0
    rows = pooled["per_scene"]
    assert [row["scene"] for row in rows] == [str(tile_a), str(tile_b)]
    assert [row["confusion"] for row in rows] == [a["confusion"], b["confusion"]]
    assert rows[0]["oa"] == a["oa"] and "per_scene" not in a
    assert "own training scenes and labels" not in json.dumps(pooled)  # other labels
    text = result.stdout
    assert f"{tile_a}: OA {a['oa']:.2%}" in text and f"{tile_b}: OA {b['oa']:.2%}" in text
    only_a = _points(tmp_path / "only_a.gpkg", truth, [synthetic.UTM_TRANSFORM], step=3)
    partial = run_cli("evaluate", bundle, tile_a, tile_b, "--labels", only_a, "--class-field",
                      "code", "--report", tmp_path / "partial")  # fmt: skip
    assert partial.code == 0, partial.stderr
    assert f"scene {tile_b}: no label feature overlaps it" in partial.stderr
    partial_report = json.loads((tmp_path / "partial" / "metrics.json").read_text())
    assert partial_report["confusion"] == a["confusion"]
    assert partial_report["scenes"]["used"] == [str(tile_a)]
    mismatch = run_cli("evaluate", bundle, tile_a, tile_b, "--labels", points, "--labels",
                       points, "--labels", points)  # fmt: skip
    assert_one_sentence_error(mismatch, "2 scenes but 3 --labels files", "one for all scenes")
