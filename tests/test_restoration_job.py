"""The restoration benchmark job (``kind: restoration``) and the bundles shipped for
``hsikit denoise / superres / restore`` without ``-m``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from hsikit.jobs.baselines import baseline, tuned_parameter
from hsikit.restorer import WEIGHTS, read_restorer_meta
from tests import synthetic
from tests.conftest import assert_one_sentence_error
from tests.helpers import snapshot


def _smooth_scene(tmp_path, bands=8, side=96):
    y, x = np.mgrid[0:side, 0:side] / 12.0
    data = np.stack([1000 + 300 * (np.sin(x + b / 3) + np.cos(y - b / 5)) for b in range(bands)])
    return synthetic.write_geotiff(
        tmp_path / "smooth.tif",
        data.astype("float32"),
        nodata=-9999,
        band_wavelengths=synthetic.wavelengths(bands),
    )


def _job(tmp_path, **changes) -> dict:
    job = {
        "kind": "restoration",
        "name": "tiny_restoration",
        "scene": str(_smooth_scene(tmp_path)),
        "block_size": 32,
        "test_share": 0.25,
        "val_share": 0.2,
        "heads": [
            {
                "name": "den",
                "bundle": str(tmp_path / "den.safetensors"),
                "options": {
                    "model": "hsdt_s",
                    "noise": "gaussian:30",
                    "epochs": 1,
                    "crops_per_epoch": 8,
                    "val_crops": 2,
                    "batch_size": 4,
                    "crop": 16,
                    "band_window": None,
                },
            }
        ],
        "settings": [
            {
                "name": "σ30",
                "noise": "gaussian:30",
                "baselines": ["input", "pca"],
                "heads": ["den"],
            },
            {"name": "SR ×2", "downsample": "2:bicubic", "baselines": ["bicubic"]},
        ],
        "output": str(tmp_path / "work"),
        "results": str(tmp_path / "restoration.json"),
        "report": str(tmp_path / "benchmarks.md"),
    }
    return {**job, **changes}


def _write(tmp_path, job: dict):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job, allow_unicode=True))
    return path


def test_the_job_trains_heads_and_scores_every_method_on_the_test_region(tmp_path, run_cli):
    path = _write(tmp_path, _job(tmp_path))
    (tmp_path / "benchmarks.md").write_text("# Benchmarks\n\nkept text\n")
    result = run_cli("run", path)
    assert result.code == 0, result.stderr
    results = json.loads((tmp_path / "restoration.json").read_text())
    scores = {name: s["settings"] for name, s in results["scores"].items()}
    assert set(scores) == {"input", "pca", "den", "bicubic"}
    noisy, pca = scores["input"]["σ30"], scores["pca"]["σ30"]
    assert pca["mpsnr"] > noisy["mpsnr"] + 2 and pca["sam_deg"] < noisy["sam_deg"], (noisy, pca)
    assert pca["parameter"] in (4, 8, 16, 32)  # chosen on validation blocks
    assert noisy["pixels"] == pca["pixels"] == scores["den"]["σ30"]["pixels"] > 0
    assert scores["bicubic"]["SR ×2"]["pixels"] == noisy["pixels"]  # the same blocks, fine grid
    meta, _ = read_restorer_meta(tmp_path / "den.safetensors")
    assert meta.training["command"] == f"hsikit run {path.as_posix()}"
    assert meta.training["train_seconds"] == results["trained"]["den"]["train_seconds"]
    info = run_cli("info", tmp_path / "den.safetensors")
    assert info.code == 0 and "use it with 'hsikit denoise'" in info.stdout, info.stderr
    assert "hsdt_s" in info.stdout and "test: denoise" in info.stdout
    report = (tmp_path / "benchmarks.md").read_text()
    assert "kept text" in report and "| σ30 | pca (" in report and "| SR ×2 | bicubic |" in report


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"settings": [{"name": "a", "noise": "gaussian:30", "heads": ["nobody"]}]}, "nobody"),
        ({"settings": [{"name": "a", "noise": "speckle:3"}]}, "setting a: --noise 'speckle:3'"),
        ({"downstream": {"settings": ["σ30"], "head": "den"}}, "needs a catalog dataset"),
        ({"heads": [{"name": "den", "bundle": "d.safetensors", "options": {"seed": 3}}]}, "seed"),
    ],
    ids=["unknown-head", "bad-noise", "downstream-without-labels", "shared-option"],
)
def test_an_invalid_job_is_refused_before_anything_runs(tmp_path, run_cli, change, fragment):
    path = _write(tmp_path, _job(tmp_path, **change))
    before = snapshot(tmp_path)
    result = run_cli("run", path)
    assert_one_sentence_error(result, "job.yaml", "restoration job is invalid", fragment)
    assert snapshot(tmp_path) == before


def test_baseline_parameters_are_chosen_by_the_validation_score():
    rng = np.random.default_rng(0)
    clean = np.repeat(rng.random((1, 16, 16)), 12, axis=0)  # rank one
    pairs = [(clean + 0.1 * rng.standard_normal(clean.shape), clean)]
    score = lambda c, r: -float(np.mean((c - r) ** 2))  # noqa: E731
    assert tuned_parameter("pca", pairs, score) == 4  # the smallest rank keeps the signal
    assert tuned_parameter("wavelet", pairs, score) is None
    assert baseline("bicubic", 2)(clean.astype(np.float32)).shape == (12, 32, 32)


SHIPPED = sorted(WEIGHTS.glob("*.safetensors"))


@pytest.mark.skipif(not SHIPPED, reason="no restoration bundles are shipped in this checkout")
@pytest.mark.parametrize(
    "command, extra, name",
    [
        ("denoise", [], "denoise"),
        ("superres", ["--scale", "2"], "superres_x2"),
        ("superres", ["--scale", "4"], "superres_x4"),
        ("restore", [], "restore"),
    ],
)
def test_each_command_works_out_of_the_box_with_its_shipped_bundle(
    tmp_path, run_cli, command, extra, name
):
    """Without -m, the bundle shipped for the task restores a scene with the bands it was
    trained on (here a small cube with Indian Pines' wavelengths)."""
    meta, _ = read_restorer_meta(WEIGHTS / f"{name}.safetensors")
    assert meta.training["command"].startswith("hsikit run pipelines/restoration_benchmark.yaml")
    assert meta.training["data_checksum"]
    bands, side = meta.in_bands, 24
    rng = np.random.default_rng(1)
    data = rng.uniform(*meta.data_range, size=(bands, side, side)).astype("float32")
    scene = synthetic.write_geotiff(
        tmp_path / "small.tif", data, band_wavelengths=np.asarray(meta.band_wavelengths)
    )
    output = tmp_path / "out.tif"
    result = run_cli(command, scene, *extra, "-o", output)
    assert result.code == 0, result.stderr
    import rasterio

    with rasterio.open(output) as src:
        assert src.count == bands and src.width == side * meta.scale
        assert src.tags()["HSIKIT_MODEL"] == meta.model.name
    info = run_cli("info", WEIGHTS / f"{name}.safetensors")
    assert info.code == 0 and f"use it with 'hsikit {command}'" in info.stdout, info.stderr
