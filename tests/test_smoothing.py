"""Edge-preserving smoothing of class probabilities: the filter against a slow reference, and
the maps, metrics and bundles that use it, through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from hsikit.smoothing import Smoothing, guided_filter
from tests import synthetic
from tests.conftest import assert_one_sentence_error


def _slow_guided_filter(guide, probabilities, valid, radius, eps):
    """He et al.'s guided filter written out pixel by pixel, means over valid pixels only: in
    each window a ridge regression of each class's probabilities on the guide's channels."""
    channels, h, w = guide.shape

    def window(i, j):
        rows = slice(max(0, i - radius), min(h, i + radius + 1))
        cols = slice(max(0, j - radius), min(w, j + radius + 1))
        return rows, cols

    a = np.zeros((channels, *probabilities.shape))
    b = np.zeros(probabilities.shape)
    for i in range(h):
        for j in range(w):
            rows, cols = window(i, j)
            m = valid[rows, cols]
            if not m.any():
                continue
            g = guide[:, rows, cols][:, m]  # [C, n]
            centred = g - g.mean(axis=1, keepdims=True)
            sigma = centred @ centred.T / m.sum() + eps * np.eye(channels)
            for k, p in enumerate(probabilities[:, rows, cols]):
                p = p[m]
                a[:, k, i, j] = np.linalg.solve(sigma, centred @ (p - p.mean()) / m.sum())
                b[k, i, j] = p.mean() - a[:, k, i, j] @ g.mean(axis=1)
    out = np.zeros(probabilities.shape)
    for i in range(h):
        for j in range(w):
            if not valid[i, j]:
                continue
            rows, cols = window(i, j)
            m = valid[rows, cols]
            for k in range(len(probabilities)):
                out[k, i, j] = (
                    a[:, k, rows, cols][:, m].mean(axis=1) @ guide[:, i, j]
                    + b[k, rows, cols][m].mean()
                )
    out = np.clip(out, 0, None)
    total = out.sum(0, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


@pytest.mark.parametrize(
    "radius, eps, channels", [(1, 0.01, 1), (2, 0.1, 1), (1, 0.01, 3), (2, 0.03, 3)]
)
def test_guided_filter_matches_the_pixel_by_pixel_definition(radius, eps, channels):
    rng = np.random.default_rng(radius)
    guide = rng.normal(size=(channels, 13, 17))
    probabilities = rng.dirichlet(np.ones(4), size=(13, 17)).transpose(2, 0, 1)
    valid = rng.random((13, 17)) > 0.2
    probabilities[:, ~valid] = 0
    fast = guided_filter(guide, probabilities, valid, Smoothing(radius=radius, eps=eps))
    slow = _slow_guided_filter(guide, probabilities, valid, radius, eps)
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    np.testing.assert_allclose(fast.sum(0)[valid], 1.0, atol=1e-5)
    assert (fast[:, ~valid] == 0).all()


def _two_fields(step_channel: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A three-channel guide of two fields that differ in one channel only, their true
    classes, and probabilities that are right but for one wrong pixel inside the left field."""
    guide = np.zeros((3, 9, 12))
    guide[step_channel, :, 6:] = 1.0
    truth = (np.arange(12) >= 6).astype(int)[None].repeat(9, 0)
    probabilities = np.stack([1 - truth, truth]).astype(float) * 0.8 + 0.1
    probabilities[:, 4, 2] = probabilities[::-1, 4, 2]
    return guide, truth, probabilities


def test_an_isolated_error_is_removed_and_the_field_edge_kept():
    guide, truth, probabilities = _two_fields(step_channel=0)
    smoothed = guided_filter(guide[:1], probabilities, np.ones((9, 12), bool), Smoothing(radius=1))
    assert (smoothed.argmax(0) == truth).all()
    # a plain 3 × 3 average of the same probabilities would have blurred nothing here either,
    # but it moves the edge pixels towards 50 %: the guided filter keeps them confident
    assert smoothed[0][:, 5].min() > 0.85 and smoothed[1][:, 6].min() > 0.85


def test_a_colour_guide_keeps_an_edge_the_first_component_does_not_show():
    """Two fields alike in the first principal component and unlike in the second."""
    guide, truth, probabilities = _two_fields(step_channel=1)
    valid = np.ones((9, 12), bool)
    grey = guided_filter(guide[:1], probabilities, valid, Smoothing(radius=2))
    colour = guided_filter(guide, probabilities, valid, Smoothing(radius=2))
    assert (colour.argmax(0) == truth).all()
    assert colour[0][:, 5].min() > 0.85 and colour[1][:, 6].min() > 0.85
    assert grey[0][:, 5].max() < 0.75  # a flat grey guide averages across the edge


def test_smoothing_cleans_a_noisy_map_and_travels_with_the_bundle(tmp_path, run_cli):
    scene, labels, truth = synthetic.class_scene(tmp_path, bands=12, noise=1500)
    bundle = tmp_path / "model.safetensors"
    result = run_cli(
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        "random_forest",
        "--split",
        "random",
        "--train-ratio",
        "0.3",
        "--smooth",
        "1",
        "-o",
        bundle,
    )
    assert result.code == 0, result.stderr
    assert "with smoothing (radius 1); without: OA" in result.stdout
    report = json.loads((tmp_path / "model_report" / "metrics.json").read_text())
    assert report["smoothing"] == {"radius": 1, "eps": 0.01, "guide": 3}
    assert report["oa"] > report["unsmoothed"]["oa"] + 0.1  # 97.6 % against 71.0 % here
    # evaluate rebuilds the test set and scores it the way the bundle maps
    assert run_cli("evaluate", bundle, "--report", tmp_path / "eval").code == 0
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert again["oa"] == report["oa"] and again["unsmoothed"] == report["unsmoothed"]
    maps = {}
    for name, extra in {
        "own": [],
        "small_windows": ["--window", "16"],
        "off": ["--smooth", "0"],
        "wider": ["--smooth", "2"],
        "edges_blur": ["--smooth-eps", "100"],
    }.items():
        result = run_cli("classify", scene, "-m", bundle, "-o", tmp_path / f"{name}.tif", *extra)
        assert result.code == 0, result.stderr
        with rasterio.open(tmp_path / f"{name}.tif") as out:
            maps[name] = out.read(1)
            assert out.nodata == 0
    assert (maps["own"] == maps["small_windows"]).all()  # windows join seamlessly
    assert (maps["own"][truth == 0] == 0).all()  # nodata stays nodata
    labelled = truth > 0
    accuracy = {k: (v[labelled] == truth[labelled]).mean() for k, v in maps.items()}
    assert accuracy["own"] > accuracy["off"] + 0.1
    assert (maps["wider"] != maps["own"]).any() and (maps["edges_blur"] != maps["own"]).any()
    described = json.loads(run_cli("info", bundle, "--json").stdout)
    assert described["smoothing"] == {"radius": 1, "eps": 0.01, "guide": 3}
    assert described["test_metrics"]["unsmoothed"]["oa"] == report["unsmoothed"]["oa"]


def test_smoothing_widens_the_spatial_buffer_so_no_test_pixel_sees_a_training_one(
    tmp_path, run_cli
):
    """A smoothed pixel's class depends on the patches 2 × radius pixels around it."""
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=12)
    for name, extra in {"plain": [], "smoothed": ["--smooth", "2"]}.items():
        result = run_cli(
            "train",
            scene,
            "--labels",
            labels,
            "--model",
            "random_forest",
            "--split",
            "spatial",
            "--block-size",
            "12",
            "--patch-size",
            "5",
            *extra,
            "-o",
            tmp_path / f"{name}.safetensors",
        )
        assert result.code == 0, result.stderr
    spec = {
        name: json.loads((tmp_path / f"{name}_report" / "split.json").read_text())["spec"]
        for name in ("plain", "smoothed")
    }
    assert (spec["plain"]["patch_size"], spec["smoothed"]["patch_size"]) == (5, 5 + 4 * 2)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ["--smooth-eps", "0.1"],
            "--smooth-eps sets part of the smoothing, and no smoothing is on",
        ),
        (
            ["--smooth-guide", "1"],
            "--smooth-guide sets part of the smoothing, and no smoothing is on",
        ),
        (["--smooth", "1", "--smooth-eps", "-1"], "must be above 0"),
        (["--smooth", "1", "--smooth-guide", "0"], "needs at least 1 component, not 0"),
    ],
)
def test_smoothing_options_are_checked(tmp_path, run_cli, args, fragment):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=6, rows=16, cols=20)
    result = run_cli("classify", scene, "--labels", labels, *args, "-o", tmp_path / "map.tif")
    assert_one_sentence_error(result, fragment)
    assert not (tmp_path / "map.tif").exists()


def test_the_guide_is_chosen_recorded_and_kept_for_bundles_of_format_1(tmp_path, run_cli):
    """A bundle written before colour guides (format 1) maps as it did: first component only."""
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=12, noise=1500)
    bundle = tmp_path / "model.safetensors"
    result = run_cli(
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        "random_forest",
        "--pca",
        "4",
        "--split",
        "random",
        "--train-ratio",
        "0.3",
        "--smooth",
        "2",
        "-o",
        bundle,
    )
    assert result.code == 0, result.stderr
    assert "guided by the first 3 principal component(s)" in run_cli("info", bundle).stdout

    def old_format(meta):
        smoothing = {k: v for k, v in meta["smoothing"].items() if k != "guide"}
        return {**meta, "format_version": 1, "smoothing": smoothing}

    old = synthetic.edited_bundle(bundle, tmp_path / "old.safetensors", old_format)
    assert "guided by the first 1 principal component(s)" in run_cli("info", old).stdout
    probabilities = {}
    for name, model, extra in (
        ("colour", bundle, []),
        ("old", old, []),
        ("grey", bundle, ["--smooth-guide", "1"]),
        ("old_colour", old, ["--smooth-guide", "3"]),
    ):
        result = run_cli(
            "classify",
            scene,
            "-m",
            model,
            "-o",
            tmp_path / f"{name}.tif",
            "--probabilities",
            *extra,
        )
        assert result.code == 0, result.stderr
        with rasterio.open(tmp_path / f"{name}_probabilities.tif") as out:
            probabilities[name] = out.read()
    np.testing.assert_array_equal(probabilities["old"], probabilities["grey"])
    np.testing.assert_array_equal(probabilities["old_colour"], probabilities["colour"])
    assert np.abs(probabilities["colour"] - probabilities["grey"]).max() > 0.01
