"""Degradations (``hsikit degrade``) and restoration metrics (``hsikit compare``): measured,
repeatable, band metadata and grids kept, bad options refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from hsikit.degrade import Degradation, degraded_scene, spec_from_options
from hsikit.evaluation.quality import quality
from hsikit.readers import open_scene
from tests import synthetic
from tests.conftest import assert_one_sentence_error
from tests.helpers import snapshot

RANGE = "0-2550"  # 1/255 of this range is 10 data units


def _flat(tmp_path, bands=8, rows=128, cols=160, value=1000.0):
    data = np.full((bands, rows, cols), value, "float32")
    return synthetic.write_geotiff(
        tmp_path / "flat.tif", data, nodata=-9999, band_wavelengths=synthetic.wavelengths(bands)
    )


def _degraded(path, seed=0, **options):
    spec = spec_from_options(seed=seed, data_range=RANGE, **options)
    return degraded_scene(open_scene(path), spec)


@pytest.mark.parametrize("sigma", [10, 30, 50])
def test_gaussian_noise_has_the_sigma_asked_for(tmp_path, sigma):
    scene, _ = _degraded(_flat(tmp_path), noise=f"gaussian:{sigma}")
    noise = scene.read_raw() - 1000.0
    assert noise.std() == pytest.approx(sigma * 10.0, rel=0.02)
    assert abs(noise.mean()) < sigma * 10.0 * 0.02


def test_noniid_noise_differs_per_band_within_its_range(tmp_path):
    scene, _ = _degraded(_flat(tmp_path, bands=12), noise="noniid:10-70")
    sigmas = (scene.read_raw() - 1000.0).std(axis=(1, 2)) / 10.0
    assert sigmas.min() > 9 and sigmas.max() < 71 and sigmas.std() > 5


def test_stripes_and_dead_lines_hit_whole_columns_of_a_share_of_the_bands(tmp_path):
    scene, _ = _degraded(_flat(tmp_path, bands=30), stripes=0.33, seed=3)
    offset = scene.read_raw() - 1000.0
    column_offsets = offset.mean(axis=1)  # [bands, cols]
    assert np.allclose(offset, column_offsets[:, None, :], atol=1e-3)  # constant down columns
    hit_bands = (np.abs(column_offsets) > 1e-3).any(axis=1)
    assert 4 <= hit_bands.sum() <= 18  # about a third of 30
    share = (np.abs(column_offsets[hit_bands]) > 1e-3).mean(axis=1)
    assert share.min() >= 0.04 and share.max() <= 0.16
    dead, _ = _degraded(_flat(tmp_path, bands=30), dead_lines=0.33, seed=3)
    values = dead.read_raw()
    zero_columns = (values == 0).all(axis=1)
    assert zero_columns.any() and ((values == 0) == zero_columns[:, None, :]).all()


def test_impulse_poisson_blur_and_band_loss(tmp_path):
    gradient = np.linspace(0, 2550, 160, dtype="float32")[None, None].repeat(64, 1).repeat(6, 0)
    path = synthetic.write_geotiff(
        tmp_path / "g.tif", gradient, nodata=None, band_wavelengths=synthetic.wavelengths(6)
    )
    impulse, _ = _degraded(path, impulse="0.5", seed=1)
    values = impulse.read_raw()
    extremes = ((values == 0) | (values == 2550)) & ~((gradient == 0) | (gradient == 2550))
    assert extremes.any() and extremes.mean() < 0.5
    poisson, _ = _degraded(path, noise="poisson:50")
    residual = poisson.read_raw() - gradient
    bright = gradient > 2000
    assert residual[bright].std() > residual[gradient < 500].std()  # shot noise grows
    blurred, _ = _degraded(path, blur=2.0)
    assert np.allclose(
        blurred.read_raw()[:, 10:-10, 10:-10], gradient[:, 10:-10, 10:-10], atol=0.5
    )  # a linear ramp is unchanged by a symmetric blur
    lost, _ = _degraded(path, band_loss=0.3)
    zero = (lost.read_raw() == 0).all(axis=(1, 2))
    assert zero.sum() == 2  # round(0.3 × 6)


def test_degradations_repeat_for_any_window_and_differ_by_seed(tmp_path):
    path = _flat(tmp_path)
    options = {"noise": "noniid:10-70", "stripes": 0.5, "impulse": "0.2"}
    scene, _ = _degraded(path, seed=7, **options)
    whole = scene.read_raw()
    part = scene.read_raw(Window(37, 50, 41, 29), bands=[2, 5])
    np.testing.assert_array_equal(part, whole[[2, 5], 50:79, 37:78])
    again, _ = _degraded(path, seed=7, **options)
    np.testing.assert_array_equal(again.read_raw(), whole)
    other, _ = _degraded(path, seed=8, **options)
    assert not np.array_equal(other.read_raw(), whole)


@pytest.mark.parametrize("method", ["area", "bicubic"])
def test_downsampling_keeps_the_bounds_and_scales_the_pixels(tmp_path, method):
    scene = open_scene(
        synthetic.write_geotiff(tmp_path / "s.tif", synthetic.cube(4, 64, 80), nodata=None)
    )
    coarse, _ = degraded_scene(scene, spec_from_options(downsample=f"4:{method}"))
    assert (coarse.height, coarse.width) == (16, 20)
    assert coarse.transform == scene.transform @ rasterio.Affine.scale(4)
    assert coarse.crs == scene.crs
    if method == "area":
        expected = scene.read()[0][0].reshape(16, 4, 20, 4).mean(axis=(1, 3))
        np.testing.assert_allclose(coarse.read()[0][0], expected, rtol=1e-5)


def test_nodata_stays_nodata(tmp_path):
    data = np.full((4, 64, 64), 500.0, "float32")
    data[:, :10, :10] = -9999
    path = synthetic.write_geotiff(tmp_path / "n.tif", data, nodata=-9999)
    scene, _ = _degraded(path, noise="gaussian:30", blur=1.0)
    values, valid = scene.read()
    assert not valid[:10, :10].any() and valid[10:, 10:].all()
    assert abs(np.nanmean(values[:, 20:, 20:]) - 500) < 5  # nodata did not darken the blur


def test_degrade_writes_every_format_with_band_metadata_and_the_spec(tmp_path, run_cli):
    scene = synthetic.write_geotiff(
        tmp_path / "scene.tif", synthetic.cube(6, 40, 50), band_wavelengths=synthetic.wavelengths(6)
    )
    for suffix in (".tif", ".hdr", ".zarr"):
        output = tmp_path / f"noisy{suffix}"
        result = run_cli(
            "degrade",
            scene,
            "--noise",
            "gaussian:30",
            "--stripes",
            "0.3",
            "--seed",
            "2",
            "-o",
            output,
        )
        assert result.code == 0, result.stderr
        degraded, original = open_scene(output), open_scene(scene)
        np.testing.assert_allclose(degraded.wavelengths, original.wavelengths)
        np.testing.assert_allclose(degraded.band_values("fwhm"), original.band_values("fwhm"))
        assert degraded.crs == original.crs and degraded.transform == original.transform
        assert "gaussian(sigma=30.0)" in result.stdout
    with rasterio.open(tmp_path / "noisy.tif") as src:
        recorded = Degradation.model_validate_json(src.tags()["HSIKIT_DEGRADATION"])
    assert recorded.seed == 2 and recorded.data_range is not None
    assert [s.kind for s in recorded.steps] == ["gaussian", "stripes"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--noise", "brownian:3"], "--noise 'brownian:3' names no noise hsikit knows"),
        (["--noise", "gaussian:a"], "--noise 'a' is not a number or a range"),
        (["--downsample", "3"], "invalid degradation: steps[0].down.scale"),
        ([], "no degradation given"),
        (["--noise", "gaussian:30", "--range", "5-1"], "the data range must be (low, high)"),
    ],
    ids=["unknown-noise", "bad-number", "bad-scale", "nothing", "bad-range"],
)
def test_bad_degradations_are_refused(tmp_path, run_cli, args, fragment):
    scene = synthetic.write_geotiff(tmp_path / "scene.tif", synthetic.cube(3, 20, 20))
    before = snapshot(tmp_path)
    assert_one_sentence_error(
        run_cli("degrade", scene, *args, "-o", tmp_path / "out.tif"), fragment
    )
    assert snapshot(tmp_path) == before


def test_metrics_equal_hand_computed_values():
    from torchmetrics.functional.image import (
        error_relative_global_dimensionless_synthesis,
        spectral_angle_mapper,
    )

    rng = np.random.default_rng(0)
    reference = rng.uniform(100, 200, size=(5, 16, 16))
    result = reference + rng.normal(0, 5, size=reference.shape)
    valid = np.ones((16, 16), bool)
    metrics = quality(reference, result, valid, (0.0, 255.0))
    scaled_mse = (((result - reference) / 255.0) ** 2).mean(axis=(1, 2))
    assert metrics["mpsnr"] == pytest.approx(np.mean(10 * np.log10(1 / scaled_mse)))
    as_batch = lambda a: torch.as_tensor(a)[None]  # noqa: E731
    sam = spectral_angle_mapper(as_batch(result), as_batch(reference))
    assert metrics["sam_deg"] == pytest.approx(float(np.degrees(sam.item())), rel=1e-6)
    ergas = error_relative_global_dimensionless_synthesis(
        as_batch(result), as_batch(reference), ratio=1.0
    )
    assert metrics["ergas"] == pytest.approx(float(ergas), rel=1e-6)
    assert quality(reference, reference, valid, (0.0, 255.0))["mssim"] == pytest.approx(1.0)
    masked = valid.copy()
    masked[:4] = False
    part = quality(reference, result, masked, (0.0, 255.0))
    assert part["pixels"] == 12 * 16


def test_compare_scores_a_degraded_copy_and_refuses_another_grid(tmp_path, run_cli):
    scene = synthetic.write_geotiff(
        tmp_path / "scene.tif", synthetic.cube(6, 40, 50), band_wavelengths=synthetic.wavelengths(6)
    )
    assert run_cli("degrade", scene, "--noise", "gaussian:30", "-o", tmp_path / "n.tif").code == 0
    result = run_cli("compare", scene, tmp_path / "n.tif", "--json")
    assert result.code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert 15 < metrics["mpsnr"] < 25 and metrics["sam_deg"] > 0  # σ = 30/255 of the range
    identical = json.loads(run_cli("compare", scene, scene, "--json").stdout)
    assert identical["sam_deg"] == pytest.approx(0, abs=1e-6) and identical["mpsnr"] > 150
    assert run_cli("degrade", scene, "--downsample", "2", "-o", tmp_path / "c.tif").code == 0
    assert_one_sentence_error(
        run_cli("compare", scene, tmp_path / "c.tif"),
        "c.tif",
        "is not the reference's",
        "same grid",
    )
