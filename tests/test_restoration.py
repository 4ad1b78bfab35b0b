"""Restoration end to end: self-supervised training on held-out regions, streamed restoration
with blended tiles, grids and band metadata kept, super-resolution grids exact, bad inputs
refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch

from hsikit.bundle import ModelSpec
from hsikit.data.crops import crop_origins, region_roles
from hsikit.predict.restore import restored_scene
from hsikit.readers import open_scene
from hsikit.restorer import Restorer, RestorerMeta
from tests import synthetic
from tests.conftest import assert_one_sentence_error
from tests.helpers import snapshot


def _smooth_cube(tmp_path, bands=10, rows=96, cols=112, name="smooth.tif"):
    """Smooth spectra over smooth fields: what a denoiser can learn quickly."""
    y, x = np.mgrid[0:rows, 0:cols] / 16.0
    base = np.stack([np.sin(x + b / 3) + np.cos(y - b / 5) for b in range(bands)])
    data = (1000 + 300 * base).astype("float32")
    return synthetic.write_geotiff(
        tmp_path / name, data, nodata=-9999, band_wavelengths=synthetic.wavelengths(bands)
    )


def test_regions_are_whole_disjoint_blocks_and_crops_stay_inside():
    valid = np.ones((100, 130), bool)
    valid[:20, :20] = False
    roles = region_roles(valid, 16, seed=3)
    assert set(np.unique(roles[valid])) == {1, 2, 3} and (roles[~valid] == 0).all()
    ids = (np.arange(100)[:, None] // 16) * 9 + np.arange(130)[None, :] // 16
    blocks = [roles[(ids == b) & valid] for b in np.unique(ids)]
    assert all(len(np.unique(b)) == 1 for b in blocks if b.size)  # every block one role
    origins = crop_origins(roles == 1, 12)
    assert len(origins) and all((roles[r : r + 12, c : c + 12] == 1).all() for r, c in origins[:50])


class _Local(torch.nn.Module):
    """A translation-equivariant, local restorer (3 × 3 smoothing): what streaming must not
    change away from the scene's edges."""

    band_agnostic = True

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # where the restorer finds the device

    def forward(self, x):
        kernel = torch.ones(x.shape[1], 1, 3, 3) / 9
        return torch.nn.functional.conv2d(x, kernel, padding=1, groups=x.shape[1])


def _local_restorer(bands):
    meta = RestorerMeta(
        job="denoise",
        model=ModelSpec(name="hsdt_s", family="torch"),
        in_bands=bands,
        band_wavelengths=[None] * bands,
        band_names=[f"b{i}" for i in range(bands)],
        data_range=(0.0, 2000.0),
    )
    return Restorer(meta, _Local())


def test_streamed_restoration_equals_the_whole_cube_and_keeps_nodata(tmp_path):
    path = _smooth_cube(tmp_path)
    scene = open_scene(path)
    restorer = _local_restorer(scene.count)
    whole = restorer.restore(scene.read()[0])
    streamed = restored_scene(scene, restorer, tile=32, overlap=4).read_raw()
    inner = (slice(None), slice(1, -1), slice(1, -1))  # the scene's edge pads differently
    np.testing.assert_allclose(streamed[inner], whole[inner], atol=1e-3)
    data = scene.read_raw()
    data[:, :5, :7] = -9999
    holed = synthetic.write_geotiff(tmp_path / "holed.tif", data, nodata=-9999)
    values, valid = restored_scene(open_scene(holed), restorer, tile=32, overlap=4).read()
    assert not valid[:5, :7].any() and valid[5:, 7:].all()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A denoiser trained briefly on a smooth synthetic scene, through the CLI's library."""
    from hsikit.training.restore import RestoreConfig, train_restorer

    folder = tmp_path_factory.mktemp("restorer")
    scene = _smooth_cube(folder, rows=128, cols=128)
    config = RestoreConfig(
        scenes=[str(scene)],
        model="hsdt_s",
        noise="gaussian:30",
        epochs=8,
        crops_per_epoch=48,
        val_crops=8,
        crop=24,
        block_size=32,
        batch_size=8,
        lr=2e-3,
        band_window=None,
        threads=2,
    )
    report = train_restorer(config, folder / "den.safetensors", folder / "report", progress=False)
    return scene, folder / "den.safetensors", report


def test_training_restores_the_held_out_region_better_than_the_noisy_input(trained):
    _, bundle, report = trained
    metrics = report["test"]["denoise"]
    assert metrics["restored"]["mpsnr"] > metrics["input"]["mpsnr"] + 1.0, metrics
    assert metrics["restored"]["sam_deg"] < metrics["input"]["sam_deg"]
    assert report["regions"][0]["test"] > 0 and report["job"] == "denoise"
    assert (bundle.parent / "report" / "regions.tif").is_file()


def test_denoise_keeps_the_grid_and_band_metadata(tmp_path, run_cli, trained):
    scene, bundle, _ = trained
    noisy = tmp_path / "noisy.tif"
    assert run_cli("degrade", scene, "--noise", "gaussian:30", "--seed", "5", "-o", noisy).code == 0
    for suffix in (".tif", ".zarr"):
        output = tmp_path / f"clean{suffix}"
        result = run_cli("denoise", noisy, "-m", bundle, "-o", output, "--tile", "48")
        assert result.code == 0, result.stderr
        restored, original = open_scene(output), open_scene(scene)
        assert restored.crs == original.crs and restored.transform == original.transform
        np.testing.assert_allclose(restored.wavelengths, original.wavelengths)
    scores = {
        name: json.loads(run_cli("compare", scene, path, "--json").stdout)["mpsnr"]
        for name, path in (("noisy", noisy), ("clean", tmp_path / "clean.tif"))
    }
    assert scores["clean"] > scores["noisy"], scores
    with rasterio.open(tmp_path / "clean.tif") as src:
        assert src.tags()["HSIKIT_MODEL"] == "hsdt_s"


def test_super_resolution_scales_the_grid_exactly(tmp_path):
    from hsikit.models import create_model

    scene = open_scene(_smooth_cube(tmp_path, rows=40, cols=48))
    model = create_model("essaformer_x2", scene.count).eval()
    meta = RestorerMeta(
        job="superres",
        model=ModelSpec(name="essaformer_x2", family="torch"),
        in_bands=scene.count,
        scale=2,
        band_wavelengths=[float(w) for w in scene.wavelengths],
        band_names=[str(n) for n in scene.band_values("name")],
        data_range=(0.0, 2000.0),
    )
    fine = restored_scene(scene, Restorer(meta, model), tile=16, overlap=4)
    assert (fine.height, fine.width) == (80, 96)
    assert fine.transform == scene.transform @ rasterio.Affine.scale(0.5)
    left, top = fine.transform @ (0, 0)
    right, bottom = fine.transform @ (fine.width, fine.height)
    assert (left, top, right, bottom) == (scene.transform @ (0, 0)) + (
        scene.transform @ (scene.width, scene.height)
    )
    assert fine.read_raw().shape == (scene.count, 80, 96)


@pytest.mark.parametrize(
    "command, args, fragment",
    [
        ("denoise", ["-m", "CLASSIFIER"], "this is a classifier bundle, not a restoration bundle"),
        ("superres", ["-m", "DENOISER", "--scale", "4"], "this bundle does denoise, not superres"),
        (
            "denoise",
            ["-m", "DENOISER", "-o", "out.jpg"],
            "cannot tell the output format from '.jpg'",
        ),
        ("denoise", ["-m", "DENOISER", "-o", "missing/out.tif"], "does not exist"),
    ],
    ids=["classifier-bundle", "wrong-job", "bad-suffix", "unwritable"],
)
def test_restoration_commands_refuse_bad_input(
    tmp_path, run_cli, trained, command, args, fragment, monkeypatch
):
    scene, bundle, _ = trained
    classifier = synthetic.trained_bundle(tmp_path, "random_forest", bands=6, rows=16, cols=20)[2]
    monkeypatch.chdir(tmp_path)
    given = [{"CLASSIFIER": classifier, "DENOISER": bundle}.get(a, a) for a in args]
    if "-o" not in given:
        given += ["-o", tmp_path / "out.tif"]
    before = snapshot(tmp_path)
    assert_one_sentence_error(run_cli(command, scene, *given), fragment)
    assert snapshot(tmp_path) == before


def test_a_denoiser_refuses_a_scene_without_its_bands(tmp_path, run_cli):
    from hsikit.models import create_model
    from hsikit.restorer import save_restorer

    model = create_model("essaformer_x2", 4)
    meta = RestorerMeta(
        job="superres",
        model=ModelSpec(name="essaformer_x2", family="torch"),
        in_bands=4,
        scale=2,
        band_wavelengths=[2500.0, 2510.0, 2520.0, 2530.0],
        band_names=["a", "b", "c", "d"],
        data_range=(0.0, 1.0),
    )
    bundle = save_restorer(tmp_path / "sr.safetensors", meta, model)
    scene = _smooth_cube(tmp_path, bands=6, rows=16, cols=16)
    result = run_cli("superres", scene, "-m", bundle, "--scale", "2", "-o", tmp_path / "f.tif")
    assert_one_sentence_error(result, "smooth.tif", "the scene lacks 4 of the model's 4 bands")
    assert not (tmp_path / "f.tif").exists()
