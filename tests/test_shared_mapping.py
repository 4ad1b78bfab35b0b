"""Fast mapping: networks that map whole windows at once give the probabilities of the
patch-by-patch path (every registered network, scene corners and nodata holes included), the
maps they write are the same, and the read-ahead / write-behind threads fail as the plain loop
would."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from hsikit.bundle import ModelSpec, load_bundle, new_meta, save_bundle
from hsikit.classes import ClassTable
from hsikit.models import architecture_config, create_model, get_entry, list_models
from hsikit.predict.classify import classify_scene, window_scores
from hsikit.predict.pipeline import WriteBehind, prefetched
from hsikit.preprocess import Preprocessor
from hsikit.readers import open_scene
from tests import synthetic

BANDS = 16
#: Every network family; the larger sizes run the same code as the tiny ones.
NETWORKS = [
    n
    for n in list_models(task="classification")
    if get_entry(n).family == "torch" and not n.endswith(("_small", "_base"))
]


def _shares(name: str) -> bool:
    patch = get_entry(name).architecture.get("patch_size", 1)
    wavelengths = [float(w) for w in synthetic.wavelengths(BANDS)]
    config = {
        **get_entry(name).recorded(patch),
        **architecture_config(name, patch_size=patch, wavelengths=wavelengths, gsd=20.0),
    }
    model = create_model(name, BANDS, 3, **config)
    return bool(getattr(model, "dense", False)) or hasattr(model, "pixel_features")


#: The networks with a shared path (the others map patch by patch on both paths).
SHARING = [n for n in NETWORKS if _shares(n)]


def _scene(tmp_path):
    """Random spectra with a nodata hole, a size that leaves partial windows at the edges."""
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 1, size=(BANDS, 29, 22)).astype("float32")
    data[:, 12:16, 5:11] = -9999
    data[:, 0, :3] = -9999  # at a corner
    return open_scene(
        synthetic.write_geotiff(
            tmp_path / "scene.tif", data, band_wavelengths=synthetic.wavelengths(BANDS)
        )
    )


def _bundle(tmp_path, name: str, scene, members: int = 1):
    """A bundle of ``name`` with random weights, built as training builds it."""
    entry = get_entry(name)
    patch = entry.architecture.get("patch_size", 1)
    wavelengths = [float(w) for w in scene.wavelengths]
    config = {
        **entry.recorded(patch),
        **architecture_config(name, patch_size=patch, wavelengths=wavelengths, gsd=20.0),
    }
    spec = ModelSpec(name=name, family="torch", config=config, members=members)
    torch.manual_seed(0)
    model = spec.build(BANDS, 3).eval()
    prep = Preprocessor(
        np.asarray(wavelengths),
        [str(n) for n in scene.band_values("name")],
        np.full(BANDS, 0.5),
        np.full(BANDS, 0.3),
    )
    meta = new_meta(
        model=spec,
        in_bands=BANDS,
        num_classes=3,
        patch_size=patch,
        band_wavelengths=wavelengths,
        band_names=prep.band_names,
        classes=ClassTable.from_names(["a", "b", "c"]).to_records(),
    )
    path = tmp_path / f"{name}_{members}.safetensors"
    return load_bundle(save_bundle(path, meta, model, prep))


def _all_scores(scene, bundle, shared: bool) -> tuple[np.ndarray, np.ndarray]:
    scores = np.zeros((3, scene.height, scene.width), np.float32)
    valid = np.zeros((scene.height, scene.width), bool)
    for core, window, mask in window_scores(scene, bundle, window=16, shared=shared):
        (r0, r1), (c0, c1) = core.toranges()
        scores[:, r0:r1, c0:c1], valid[r0:r1, c0:c1] = window, mask
    return scores, valid


def test_the_networks_without_a_shared_path_are_the_ones_docs_declare():
    assert SHARING == ["cnn3d", "hybridsn", "mamba_hsi_tiny"], SHARING


@pytest.mark.parametrize("name", SHARING)
def test_shared_and_per_patch_probabilities_are_equal(tmp_path, name):
    scene = _scene(tmp_path)
    bundle = _bundle(tmp_path, name, scene)
    shared, valid = _all_scores(scene, bundle, shared=True)
    patchwise, same_valid = _all_scores(scene, bundle, shared=False)
    assert (valid == same_valid).all() and not valid[12:16, 5:11].any()
    np.testing.assert_allclose(shared, patchwise, atol=1e-4)
    assert (shared[:, ~valid] == 0).all()


def test_which_networks_share_computation_and_old_cnn3d_bundles_keep_their_path(tmp_path):
    scene = _scene(tmp_path)
    for name in ("cnn3d", "hybridsn"):
        assert _bundle(tmp_path, name, scene).maps_densely, name
    assert _bundle(tmp_path, "cnn3d", scene, members=2).maps_densely  # an ensemble too
    assert _bundle(tmp_path, "mamba_hsi_tiny", scene).shares_pixels  # per-pixel part shared
    assert get_entry("cnn3d").recorded(5) == {"padding": "same"}  # too small for valid convs
    old = create_model("cnn3d", BANDS, 3)  # as bundles made before 'padding' were built
    assert old.features[0][0].padding == (1, 1, 1) and not old.dense


def test_a_map_through_the_shared_path_is_the_map_of_the_per_patch_path(tmp_path):
    scene = _scene(tmp_path)
    bundle = _bundle(tmp_path, "hybridsn", scene)
    for shared in (True, False):
        classify_scene(scene, bundle, tmp_path / f"{shared}.tif", window=16, shared=shared)
    with rasterio.open(tmp_path / "True.tif") as a, rasterio.open(tmp_path / "False.tif") as b:
        assert (a.read() == b.read()).all() and a.profile == b.profile


def test_a_read_error_in_the_read_ahead_thread_reaches_the_caller():
    def windows():
        yield 1
        raise OSError("the disk went away")

    got = []
    with pytest.raises(OSError, match="the disk went away"):
        for item in prefetched(windows()):
            got.append(item)
    assert got == [1]


def test_write_behind_writes_in_order_and_raises_a_failed_write():
    written: list[int] = []
    with WriteBehind(written.append) as behind:
        for value in range(5):
            behind.submit(value)
    assert written == [0, 1, 2, 3, 4]

    def fail(value: int) -> None:
        raise OSError("no space left on device")

    behind = WriteBehind(fail)
    behind.submit(1)
    with pytest.raises(OSError, match="no space left"):
        for value in range(10):
            behind.submit(value)
        behind.close()


def test_a_scene_that_fails_while_mapping_gives_one_sentence_and_no_map(
    tmp_path, run_cli, monkeypatch
):
    from tests.conftest import assert_one_sentence_error

    scene_path, _, bundle = synthetic.trained_bundle(tmp_path, "cnn3d", epochs=1, pca=0)
    from hsikit.errors import InputError
    from hsikit.scene import Scene

    real_read = Scene.read

    def failing_read(self, window, *args, **kwargs):
        if window.row_off > 0:
            raise InputError(self.path, "the file is truncated", "fetch it again")
        return real_read(self, window, *args, **kwargs)

    monkeypatch.setattr(Scene, "read", failing_read)
    output = tmp_path / "map.tif"
    result = run_cli("classify", scene_path, "-m", bundle, "-o", output, "--window", "8")
    assert_one_sentence_error(result, "scene.tif", "the file is truncated")
    assert not output.exists()


def test_batches_are_chosen_by_the_memory_a_pass_creates(tmp_path):
    from hsikit.predict.batching import BOUNDS, dense_pixels, patch_batch

    scene = _scene(tmp_path)
    light, heavy = _bundle(tmp_path, "cnn3d", scene), _bundle(tmp_path, "lola_specvit_tiny", scene)
    budget = 2**24
    assert BOUNDS[0] <= patch_batch(heavy, budget) < patch_batch(light, budget) <= BOUNDS[1]
    assert abs(patch_batch(light, budget) - 2 * patch_batch(light, budget // 2)) <= 2
    assert dense_pixels(light, budget) > patch_batch(light, budget)  # sharing needs less per pixel
    assert patch_batch(light) == BOUNDS[1]  # a light model takes the largest batch


def test_the_mapping_speed_job_reports_both_paths_side_by_side(tmp_path, run_cli):
    import json

    import yaml

    job = {
        "kind": "mapping_speed",
        "name": "tiny_speed",
        "models": ["random_forest"],
        "scenes": [{"name": "small", "side": 24, "bands": 200}],
        "output": str(tmp_path / "work"),
        "results": str(tmp_path / "speed.json"),
        "report": str(tmp_path / "benchmarks.md"),
    }
    path = tmp_path / "speed.yaml"
    path.write_text(yaml.safe_dump(job))
    result = run_cli("run", path)
    assert result.code == 0, result.stderr
    runs = json.loads((tmp_path / "speed.json").read_text())["runs"]
    assert [(r["model"], r["path"]) for r in runs] == [
        ("random_forest", "patch"),
        ("random_forest", "shared"),
    ]
    assert all(r["pixels"] == 24 * 24 and r["px_per_s"] > 0 for r in runs)
    assert {"read", "preprocess", "forward", "write"} <= set(runs[1]["timings"])
    assert "| small | random_forest |" in (tmp_path / "benchmarks.md").read_text()
    assert not list((tmp_path / "work").glob("*.tif"))  # scenes and maps are removed
