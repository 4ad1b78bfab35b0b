"""What a user hears about a split that leaves classes (or the whole test set) short of pixels:
a warning on stderr naming the classes, with what to change for the split actually used."""

from __future__ import annotations

import json

import numpy as np

from tests import synthetic

FAST = ["--model", "svm_rbf"]
SPATIAL_HINT = "label more pixels, or give a smaller --block-size or a larger --train-fraction"


def _two_blocks_share_a_rare_class(tmp_path):
    """8-px blocks where the rarest class lies in blocks 0 and 1, so one trains and the other
    tests whatever the seed, and classes 2 and 3 each lie in only one of them: one of the two
    gets no training pixels, the other no test pixels; class 1 trains on 2 pixels."""
    scene, _, _ = synthetic.class_scene(tmp_path, bands=6, rows=24, cols=30, nodata_block=False)
    labels = np.zeros((24, 30), np.uint8)
    labels[2, 2:4] = labels[2, 10:12] = 1
    labels[4:6, 0:8] = 2
    labels[4:6, 8:16] = 3
    labels[8:, :] = 4
    return scene, synthetic.write_geotiff(tmp_path / "rare.tif", labels[None], nodata=None)


def _train(tmp_path, run_cli, *arguments):
    """``hsikit train ARGUMENTS…`` of a fast model; its output and the report's metrics."""
    result = run_cli("train", *arguments, *FAST, "-o", tmp_path / "m.safetensors")
    assert result.code == 0, result.stderr
    return result, json.loads((tmp_path / "m_report" / "metrics.json").read_text())


def test_a_spatial_split_that_starves_classes_says_which_and_what_to_change(tmp_path, run_cli):
    scene, labels = _two_blocks_share_a_rare_class(tmp_path)
    result, report = _train(tmp_path, run_cli, scene, "--labels", labels, "--block-size", 8)
    (lacking,) = report["classes_without_training_pixels"]
    assert lacking in ("class 2", "class 3") and lacking not in report["class_names"]
    untested = "class 3" if lacking == "class 2" else "class 2"
    said = [
        f"1 of 4 labelled classes have no training pixels ({lacking}), so the bundle cannot "
        f"predict them: {SPATIAL_HINT}",
        f"classes train on fewer than 5 pixels each: class 1 (2); {SPATIAL_HINT}",
        f"1 of 3 classes of the bundle have no test pixels ({untested}), so the accuracy does "
        "not score them: label more pixels, or give a smaller --block-size or a smaller "
        "--train-fraction",
    ]
    for warning in said:
        assert f"warning: {warning}" in result.stderr
    assert "--per-class" not in result.stderr and "--train-ratio" not in result.stderr
    assert report["warnings"] == said


def test_a_split_without_test_pixels_says_so_instead_of_nan(tmp_path, run_cli):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=6, rows=24, cols=30)
    # one block holds the whole scene, so all of it trains
    result, report = _train(tmp_path, run_cli, scene, "--labels", labels, "--block-size", 64)
    text = (tmp_path / "m_report" / "metrics.json").read_text()
    assert "NaN" not in text and report["oa"] is None  # strict JSON: unmeasured is null
    assert (
        "warning: the split leaves no test pixels, so the bundle's accuracy is not measured: "
        "label more pixels, or give a smaller --block-size or a smaller --train-fraction"
    ) in result.stderr
    assert "svm_rbf (spatial split, seed 0): no test pixels" in result.stdout
    assert "nan" not in (result.stdout + result.stderr).lower()


def test_a_tiles_split_says_to_label_more_scenes(tmp_path, run_cli):
    tiles = []
    for name, classes in (("a", 4), ("b", 3)):  # class 4 is labelled on tile a only
        (tmp_path / name).mkdir()
        tiles.append(
            synthetic.class_scene(tmp_path / name, bands=6, rows=24, cols=30, classes=classes)
        )
    (scene_a, labels_a, _), (scene_b, labels_b, _) = tiles
    result, _ = _train(
        tmp_path, run_cli, scene_a, scene_b, "--labels", labels_a, "--labels", labels_b,
        "--split", "tiles",
    )  # fmt: skip
    said = "label them on more scenes, or choose other"
    assert "(class 4)" in result.stderr and said in result.stderr
    assert "--block-size" not in result.stderr and "--per-class" not in result.stderr


def test_the_warnings_are_said_before_the_fit(tmp_path, run_cli, monkeypatch):
    """A run the user would stop is said to be one before it spends its time fitting."""
    from hsikit.models.classical import ClassicalClassifier

    def fit_fails(*_, **__):
        raise KeyboardInterrupt  # what the user does on reading the warning

    monkeypatch.setattr(ClassicalClassifier, "fit", fit_fails)
    scene, labels = _two_blocks_share_a_rare_class(tmp_path)
    result = run_cli("train", scene, "--labels", labels, *FAST, "--block-size", 8, "-o",
                     tmp_path / "m.safetensors")  # fmt: skip
    assert result.code != 0 and "classes train on fewer than 5 pixels" in result.stderr
    assert not (tmp_path / "m.safetensors").exists()
