"""Training and streamed classification through the CLI, as a GIS analyst would run them."""

from __future__ import annotations

import json
import pickle

import geopandas as gpd
import numpy as np
import rasterio

from hsikit import open_scene
from hsikit.writers.classmap import read_class_table
from hsikit.writers.cube import write_cube
from tests import synthetic
from tests.conftest import assert_one_sentence_error

FAST = ["--model", "random_forest", "--split", "random", "--train-ratio", "0.3"]


def _train(run_cli, tmp_path, scene, labels, *extra):
    bundle = tmp_path / "model.safetensors"
    result = run_cli("train", scene, "--labels", labels, *FAST, "-o", bundle, *extra)
    assert result.code == 0, result.stderr + result.stdout
    return bundle


def test_classify_keeps_grid_nodata_and_class_table(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # provenance time fixed: reruns equal
    scene, labels, truth = synthetic.class_scene(tmp_path)
    bundle = _train(run_cli, tmp_path, scene, labels)
    report = json.loads((tmp_path / "model_report" / "metrics.json").read_text())
    assert report["oa"] > 0.95 and report["protocol"] == "random"
    for name in ("confusion.png", "confusion.csv", "config.json", "split.tif", "split.json"):
        assert (tmp_path / "model_report" / name).is_file(), name
    result = run_cli(
        "classify",
        scene,
        "-m",
        bundle,
        "-o",
        tmp_path / "map.tif",
        "--confidence",
        "--png",
        tmp_path / "map.png",
    )
    assert result.code == 0, result.stderr
    with rasterio.open(scene) as src, rasterio.open(tmp_path / "map.tif") as out:
        assert (out.width, out.height) == (src.width, src.height)
        assert out.crs == src.crs and out.transform == src.transform
        assert out.nodata == 0
        classes = out.read(1)
    assert (classes[:6, :8] == 0).all() and (classes[truth > 0] > 0).all()
    assert (classes[truth > 0] == truth[truth > 0]).mean() > 0.95
    assert [e.name for e in read_class_table(tmp_path / "map.tif").entries] == [
        "class 1",
        "class 2",
        "class 3",
        "class 4",
    ]
    assert (tmp_path / "map_confidence.tif").is_file() and (tmp_path / "map.qml").is_file()
    first = (tmp_path / "map.tif").read_bytes()
    assert run_cli("classify", scene, "-m", bundle, "-o", tmp_path / "map.tif").code == 0
    assert (tmp_path / "map.tif").read_bytes() == first  # a rerun gives an identical file


def test_bands_are_matched_by_wavelength(tmp_path, run_cli):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=200)
    bundle = _train(run_cli, tmp_path, scene, labels)
    assert run_cli("classify", scene, "-m", bundle, "-o", tmp_path / "a.tif").code == 0
    opened = open_scene(scene)
    order = np.random.default_rng(5).permutation(200)
    data = opened.read_raw()[order]
    shuffled = synthetic.write_geotiff(
        tmp_path / "shuffled.tif", data, band_wavelengths=opened.wavelengths[order]
    )
    assert run_cli("classify", shuffled, "-m", bundle, "-o", tmp_path / "b.tif").code == 0
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
    subset = synthetic.write_geotiff(
        tmp_path / "subset.tif", opened.read_raw()[:150], band_wavelengths=opened.wavelengths[:150]
    )
    result = run_cli("classify", subset, "-m", bundle, "-o", tmp_path / "c.tif")
    assert_one_sentence_error(
        result,
        "subset.tif",
        "lacks 50 of the model's 200 bands",
        f"{opened.wavelengths[150]:.1f} nm",
    )
    assert not (tmp_path / "c.tif").exists()


def test_vector_labels_in_wgs84_train_and_map_a_utm_scene(tmp_path, run_cli):
    scene, _, truth = synthetic.class_scene(tmp_path, nodata_block=False)
    from tests.test_labels import _pixel_box_in_wgs84

    polygons, names = [], []
    for k, name in enumerate(["water", "forest", "crop", "urban"]):
        col0 = k * 15 + 3
        polygons += [
            _pixel_box_in_wgs84(col0, 5, col0 + 9, 20),
            _pixel_box_in_wgs84(col0, 28, col0 + 9, 44),
        ]
        names += [name, name]
    vector = tmp_path / "fields.gpkg"
    gpd.GeoDataFrame({"crop": names}, geometry=polygons, crs="EPSG:4326").to_file(vector)
    result = run_cli(
        "classify",
        scene,
        "--labels",
        vector,
        "--class-field",
        "crop",
        "--model",
        "random_forest",
        "-o",
        tmp_path / "map.tif",
    )
    assert result.code == 0, result.stderr
    with rasterio.open(tmp_path / "map.tif") as src:
        mapped = src.read(1)
        assert src.crs.to_epsg() == 32633
    table = read_class_table(tmp_path / "map.tif")
    by_name = {e.name: e.value for e in table.entries}
    expected = np.vectorize(
        {1: by_name["water"], 2: by_name["forest"], 3: by_name["crop"], 4: by_name["urban"]}.get
    )(truth)
    assert (mapped == expected).mean() > 0.95
    assert (tmp_path / "map.safetensors").is_file()
    # the user is told where the bundle and the report went
    assert f"bundle: {tmp_path / 'map.safetensors'}" in result.stdout.replace("\n", "")
    assert "map_report/" in result.stdout


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_tampered_bundles_are_refused(tmp_path, run_cli):
    scene, labels, _ = synthetic.class_scene(tmp_path)
    bundle = _train(run_cli, tmp_path, scene, labels)
    bad_json = synthetic.edited_bundle(
        bundle, tmp_path / "bad_json.safetensors", lambda meta: "{not json"
    )
    wrong_shape = synthetic.edited_bundle(
        bundle,
        tmp_path / "wrong_shape.safetensors",
        lambda meta: {**meta, "in_bands": meta["in_bands"] + 3},
    )
    future = synthetic.edited_bundle(
        bundle,
        tmp_path / "future.safetensors",
        lambda meta: {**meta, "format_version": 99, "new_key": 1},
    )

    marker = tmp_path / "pwned"
    pickled = tmp_path / "pickle.safetensors"
    pickled.write_bytes(pickle.dumps(_Exploit(marker)))

    for path, fragment in (
        (bad_json, "the bundle description is invalid"),
        (wrong_shape, "the model takes 27 inputs but the bundle lists 24 bands"),
        (future, "bundle format 99 is newer than this hsikit reads"),
        (pickled, "not a safetensors bundle"),
    ):
        result = run_cli("classify", scene, "-m", path, "-o", tmp_path / "map.tif")
        assert_one_sentence_error(result, path.name, fragment)
        assert not (tmp_path / "map.tif").exists()
    assert not marker.exists()


def test_evaluate_reproduces_the_training_metrics(tmp_path, run_cli):
    scene, labels, _ = synthetic.class_scene(tmp_path)
    bundle = _train(run_cli, tmp_path, scene, labels, "--split", "spatial", "--block-size", "12")
    written = json.loads((tmp_path / "model_report" / "metrics.json").read_text())
    result = run_cli("evaluate", bundle, "--report", tmp_path / "eval")
    assert result.code == 0, result.stderr
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in ("oa", "aa", "kappa", "n_test", "confusion"):
        assert again[key] == written[key], key
    own = run_cli("evaluate", bundle, scene, "--labels", labels)
    assert own.code == 0 and "own training scene and labels, not independent data" in own.stdout
    assert "seed" not in own.stdout  # a seed means nothing for reference data
    copied = tmp_path / "copy_of_labels.tif"
    copied.write_bytes(labels.read_bytes())
    again = run_cli("evaluate", bundle, scene, "--labels", copied)
    assert again.code == 0 and "own training scene and labels, not independent" in again.stdout
    relabelled = tmp_path / "other_labels.tif"
    with rasterio.open(labels) as src:
        synthetic.write_geotiff(relabelled, src.read()[:, :, ::-1].copy(), nodata=None)
    other = run_cli("evaluate", bundle, scene, "--labels", relabelled)
    assert other.code == 0 and "own training scene with other labels, not independent" in (
        other.stdout
    )
    ignored = run_cli("evaluate", bundle, "--labels", labels, "--class-field", "crop")
    assert_one_sentence_error(ignored, "--labels, --class-field describe reference scenes")


def test_info_describes_a_bundle(tmp_path, run_cli):
    """What is in this model file: the answer a user gets without reading its JSON header."""
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=12)
    bundle = _train(run_cli, tmp_path, scene, labels, "--pca", "5")
    report = json.loads((tmp_path / "model_report" / "metrics.json").read_text())
    result = run_cli("info", bundle, "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kind"] == "classifier bundle" and summary["model"] == "random_forest"
    assert summary["parameters"] == report["parameters"] > 0
    assert (summary["bands"], summary["pca"], summary["split"]) == (12, 5, "random")
    assert summary["classes"] == ["class 1", "class 2", "class 3", "class 4"]
    assert summary["test_metrics"]["oa"] == report["oa"]
    assert summary["trained_on"] == [str(scene)] and summary["fine_tuned_from"] is None
    text = run_cli("info", bundle).stdout
    assert "random_forest (classical)" in text and f"OA {report['oa']:.2%}" in text
    assert_one_sentence_error(
        run_cli("info", tmp_path / "nothing.safetensors"), "nothing.safetensors: no such model file"
    )


def test_evaluate_demo_bundle_on_its_dataset(tmp_path, run_cli):
    bundle = tmp_path / "ip.safetensors"
    result = run_cli(
        "train",
        "--dataset",
        "indian_pines",
        "--model",
        "cnn3d",
        "--split",
        "random",
        "--epochs",
        "1",
        "--pca",
        "10",
        "--patch-size",
        "5",
        "--threads",
        "2",
        "-o",
        bundle,
    )
    assert result.code == 0, result.stderr
    written = json.loads((tmp_path / "ip_report" / "metrics.json").read_text())
    result = run_cli("evaluate", bundle, "--dataset", "indian_pines", "--report", tmp_path / "eval")
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert result.code == 0 and again["confusion"] == written["confusion"]
    assert again["oa"] == written["oa"] and again["n_test"] == 9224


def test_any_reader_gives_the_same_map(tmp_path, run_cli):
    """The same pixels through another format (Zarr copy) classify identically."""
    scene, labels, _ = synthetic.class_scene(tmp_path)
    bundle = _train(run_cli, tmp_path, scene, labels)
    zarr_path = write_cube(open_scene(scene), tmp_path / "scene.zarr")
    assert run_cli("classify", scene, "-m", bundle, "-o", tmp_path / "a.tif").code == 0
    assert run_cli("classify", zarr_path, "-m", bundle, "-o", tmp_path / "b.tif").code == 0
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
        assert a.crs == b.crs and a.transform == b.transform


def test_many_tiles_with_a_split_across_tiles(tmp_path, run_cli):
    tiles = []
    for index in range(3):
        folder = tmp_path / f"tile{index}"
        folder.mkdir()
        scene, labels, _ = synthetic.class_scene(folder, seed=0)  # same sensor: same spectra
        tiles.append((scene, labels))
    bundle = tmp_path / "tiles.safetensors"
    args = [t[0] for t in tiles]
    for _, labels in tiles:
        args += ["--labels", labels]
    result = run_cli("train", *args, "--model", "random_forest", "--split", "tiles", "-o", bundle)
    assert result.code == 0, result.stderr
    report = json.loads((tmp_path / "tiles_report" / "metrics.json").read_text())
    roles = [split["notes"][0] for split in report["split"]]
    assert sorted(r.split(": ")[1] for r in roles) == ["test", "train", "train"]
    test_tile = [i for i, r in enumerate(roles) if r.endswith("test")][0]
    test_labels = open_scene(tiles[test_tile][1]).read_raw()[0]
    assert report["n_test"] == int((test_labels > 0).sum())
    assert report["oa"] > 0.95
    for index in range(3):
        assert (tmp_path / "tiles_report" / f"split_{index}.tif").is_file()


def test_same_command_same_bundle(tmp_path, run_cli):
    """Principle 7: the same training command gives byte-identical bundles on one machine."""
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16)
    outputs = []
    for name in ("a", "b"):
        bundle = tmp_path / f"{name}.safetensors"
        result = run_cli(
            "train",
            scene,
            "--labels",
            labels,
            "--model",
            "cnn3d",
            "--epochs",
            "2",
            "--patch-size",
            "5",
            "--pca",
            "8",
            "--split",
            "random",
            "--train-ratio",
            "0.3",
            "-o",
            bundle,
        )
        assert result.code == 0, result.stderr
        outputs.append(bundle.read_bytes())
    assert outputs[0] == outputs[1]
