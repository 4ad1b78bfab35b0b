"""``--precision fp16|bf16``: a network's forward pass under autocast, checked against fp32 on
the CPU (the GPU path runs the same code on another device type)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from tests import synthetic
from tests.conftest import assert_one_sentence_error

#: What a reduced-precision map may differ by from the fp32 map of the same bundle: class
#: probabilities by this much, and labels only where fp32's two best classes are this close.
TOLERANCE = 0.02


@pytest.fixture(scope="module")
def cnn_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("precision")
    scene, _, bundle = synthetic.trained_bundle(
        folder, "cnn3d", rows=32, cols=40, epochs=8, warmup_epochs=0
    )  # trained long enough that most pixels have a clear best class
    return scene, bundle


def _map(run_cli, scene, bundle, output, *options):
    result = run_cli("classify", scene, "-m", bundle, "--probabilities", "-o", output, *options)
    assert result.code == 0, result.stderr + result.stdout
    with (
        rasterio.open(output) as classes,
        rasterio.open(output.with_name(output.stem + "_probabilities.tif")) as scores,
    ):
        return classes.read(1), scores.read(), classes.tags()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_reduced_precision_map_stays_within_the_stated_tolerance(
    cnn_bundle, tmp_path, run_cli, precision
):
    scene, bundle = cnn_bundle
    exact, exact_scores, exact_tags = _map(run_cli, scene, bundle, tmp_path / "fp32.tif")
    classes, scores, tags = _map(
        run_cli, scene, bundle, tmp_path / "low.tif", "--precision", precision
    )
    assert tags["HSIKIT_PRECISION"] == precision
    assert "HSIKIT_PRECISION" not in exact_tags  # fp32 maps are unchanged
    assert np.array_equal(classes == 0, exact == 0)  # nodata stays nodata
    valid = exact > 0
    # the probabilities file holds whole percentages: the tolerance, plus one for rounding
    points = round(100 * TOLERANCE) + 1
    low, high = scores[:, valid].astype(int), exact_scores[:, valid].astype(int)
    assert np.abs(low - high).max() <= points
    ranked = np.sort(high, axis=0)
    clear = ranked[-1] - ranked[-2] > 2 * points
    assert np.array_equal(classes[valid][clear], exact[valid][clear])
    assert clear.mean() > 0.5  # the check covers most of the map


def test_precision_is_refused_for_a_scikit_learn_model_and_an_unknown_name(tmp_path, run_cli):
    scene, _, bundle = synthetic.trained_bundle(tmp_path, "svm_rbf", bands=6, rows=20, cols=24)
    output = tmp_path / "map.tif"
    result = run_cli("classify", scene, "-m", bundle, "--precision", "fp16", "-o", output)
    assert_one_sentence_error(result, "--precision fp16 applies to neural networks")
    assert not output.exists()
    result = run_cli("classify", scene, "-m", bundle, "--precision", "int8", "-o", output)
    assert_one_sentence_error(result, "--precision int8 is not a precision", "fp32, fp16, bf16")
    assert not output.exists()
