"""The seed models through the CLI: band-agnostic LESS ViT, pretraining, LoRA fine-tuning and the
cyclical LoRA-strength schedule."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from hsikit.bundle import read_safetensors
from hsikit.data.datasets import load
from hsikit.models import create_model
from hsikit.models.layers import inject_lora, lora_layers
from hsikit.training.loops import fit_torch
from hsikit.training.schedule import schedule
from hsikit.training.tasks.base import Recipe
from tests import synthetic
from tests.conftest import assert_one_sentence_error

QUICK = ["--split", "random", "--train-ratio", "0.3", "--epochs", "2", "--threads", "2"]


def _metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


def test_training_stops_when_its_time_budget_is_spent(tmp_path, run_cli):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16, rows=24, cols=30)
    result = run_cli(
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        "cnn3d",
        *QUICK[:4],
        "--epochs",
        "1000",
        "--max-minutes",
        "0.000001",
        "-o",
        tmp_path / "m.safetensors",
    )
    assert result.code == 0, result.stderr + result.stdout
    fit = _metrics(tmp_path / "m_report")["fit"]
    assert fit["stopped_by_time_budget"] and fit["epochs_run"] < 1000, fit
    assert (tmp_path / "m.safetensors").is_file()


#: A value other than the default for every recipe option, as the CLI takes it.
RECIPE_VALUES = {
    "epochs": 3,
    "lr": 0.004,
    "batch_size": 16,
    "weight_decay": 0.001,
    "label_smoothing": 0.2,
    "warmup_epochs": 1,
    "balanced": True,
    "patience": 4,
    "keep": "last",
    "max_minutes": 30.0,
    "context_dropout": 0.5,
    "brightness": 0.2,
    "mixup": 0.4,
    "refit": True,
    "ema": 0.9,
    "lora_min_strength": 0.5,
}


def test_every_recipe_option_has_a_test_value():
    from hsikit.training.config import RECIPE_FIELDS

    assert set(RECIPE_VALUES) | {"lora_cycles"} == RECIPE_FIELDS  # lora_cycles: LoRA tests


def _cli_flag(key: str, value: object) -> list[str]:
    flag = "--" + key.replace("_", "-")
    return [flag] if value is True else [flag, str(value)]


@pytest.mark.parametrize("key", sorted(RECIPE_VALUES))
def test_each_recipe_option_reaches_training(tmp_path, run_cli, monkeypatch, key):
    """The recipe training runs with holds the option the user gave (not only the report):
    a field dropped between the command line and the training loop fails here."""
    from hsikit.training import loops

    seen = []

    def recording_fit(model, x_train, y_train, x_val, y_val, recipe, seed, log_dir):
        seen.append(recipe)
        return {"refit_on": "train", "epochs_run": 0}

    monkeypatch.setattr(loops, "fit_torch", recording_fit)
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16, rows=16, cols=20)
    value = RECIPE_VALUES[key]
    result = run_cli(
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        "cnn3d",
        "--split",
        "random",
        "--pca",
        "8",
        *_cli_flag(key, value),
        "-o",
        tmp_path / "m.safetensors",
    )
    assert result.code == 0, result.stderr + result.stdout
    # the time budget reaches training as the share left when it starts: a hair below
    assert len(seen) == 1 and getattr(seen[0], key) == (
        pytest.approx(value, rel=1e-3) if isinstance(value, float) else value
    )
    config = json.loads((tmp_path / "m_report" / "config.json").read_text())
    assert config["recipe"][key] == value
    training = read_safetensors(tmp_path / "m.safetensors")[0]["training"]
    assert training["config"]["recipe"][key] == value


@pytest.fixture(scope="module")
def augmentation_baseline(tmp_path_factory):
    """Weights of a short Mamba training without augmentation, and its scene."""
    from hsikit.bundle import load_bundle
    from hsikit.training.config import TrainConfig
    from hsikit.training.fit import train

    folder = tmp_path_factory.mktemp("baseline")
    scene, labels, _ = synthetic.class_scene(folder, bands=16, rows=24, cols=30)
    config = TrainConfig(
        scenes=[str(scene)],
        labels=[str(labels)],
        model="mamba_hsi_tiny",
        split="random",
        train_ratio=0.3,
        epochs=2,
        threads=2,
        pca=8,
    )
    train(config, folder / "m.safetensors", folder / "report", progress=False)
    return scene, labels, load_bundle(folder / "m.safetensors").model.state_dict()


@pytest.mark.parametrize("key", ["brightness", "mixup"])
def test_augmentations_change_what_is_learnt(tmp_path, run_cli, augmentation_baseline, key):
    """The same seed and split with the option on gives other weights than without it."""
    from hsikit.bundle import load_bundle

    scene, labels, baseline = augmentation_baseline
    result = run_cli(
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        "mamba_hsi_tiny",
        *QUICK,
        "--pca",
        "8",
        *_cli_flag(key, RECIPE_VALUES[key]),
        "-o",
        tmp_path / "m.safetensors",
    )
    assert result.code == 0, result.stderr + result.stdout
    weights = load_bundle(tmp_path / "m.safetensors").model.state_dict()
    assert any(not torch.equal(weights[k], baseline[k]) for k in baseline)


def test_retraining_to_the_same_output_replaces_its_log_quietly(tmp_path, run_cli, recwarn):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16, rows=24, cols=30)
    for epochs in ("3", "2"):
        result = run_cli(
            "train",
            scene,
            "--labels",
            labels,
            "--model",
            "cnn3d",
            *QUICK,
            "--epochs",
            epochs,
            "--pca",
            "8",
            "-o",
            tmp_path / "m.safetensors",
        )
        assert result.code == 0, result.stderr + result.stdout
    logged = (tmp_path / "m_report" / "metrics.csv").read_text().splitlines()[1:]
    assert {row.split(",")[0] for row in logged} == {"0", "1"}  # the second run's epochs only
    assert not [w for w in recwarn if "logs directory" in str(w.message)]


def test_init_seed_changes_the_weights_and_leaves_the_split_and_pca_alone(tmp_path, run_cli):
    """--init-seed N on split seed 0: the same split.tif and PCA arrays, other weights; left
    out, the model follows the split seed (the bundle of plain --seed 0 is reproduced)."""
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16, rows=24, cols=30)
    runs = {"plain": [], "same": ["--init-seed", "0"], "other": ["--init-seed", "7"]}
    arrays, splits = {}, {}
    for name, extra in runs.items():
        result = run_cli(
            "train",
            scene,
            "--labels",
            labels,
            "--model",
            "cnn3d",
            *QUICK,
            "--pca",
            "8",
            "--patch-size",
            "5",
            *extra,
            "-o",
            tmp_path / f"{name}.safetensors",
        )
        assert result.code == 0, result.stderr + result.stdout
        arrays[name] = read_safetensors(tmp_path / f"{name}.safetensors")[1]
        with rasterio.open(tmp_path / f"{name}_report" / "split.tif") as src:
            splits[name] = src.read(1)
        assert _metrics(tmp_path / f"{name}_report")["init_seed"] == (7 if name == "other" else 0)
        assert ("initial weights seed 7" in result.stdout) == (name == "other")
    assert all(np.array_equal(arrays["plain"][k], arrays["same"][k]) for k in arrays["plain"])
    assert np.array_equal(splits["plain"], splits["other"])
    preprocess = [k for k in arrays["plain"] if k.startswith("preprocess.")]
    assert preprocess and all(
        np.array_equal(arrays["plain"][k], arrays["other"][k]) for k in preprocess
    )
    weights = [k for k in arrays["plain"] if k.startswith("model.")]
    assert not all(np.array_equal(arrays["plain"][k], arrays["other"][k]) for k in weights)
    evaluated = run_cli("evaluate", tmp_path / "other.safetensors", "--report", tmp_path / "e")
    assert evaluated.code == 0 and "initial weights seed 7" in evaluated.stdout
    assert _metrics(tmp_path / "e")["oa"] == _metrics(tmp_path / "other_report")["oa"]


def test_members_train_an_ensemble_of_the_single_runs_and_its_maps_average_them(tmp_path, run_cli):
    """--members 2 --init-seed 3 holds exactly the networks of --init-seed 3 and 1003 trained
    alone, and its probability map is theirs averaged; report, info and refusals say so."""
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16, rows=24, cols=30)
    common = [
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        "cnn3d",
        *QUICK,
        "--pca",
        "8",
        "--patch-size",
        "5",
    ]
    runs = {
        "ensemble": ["--members", "2", "--init-seed", "3"],
        "first": ["--init-seed", "3"],
        "second": ["--init-seed", "1003"],
    }
    maps, printed = {}, {}
    for name, extra in runs.items():
        result = run_cli(*common, *extra, "-o", tmp_path / f"{name}.safetensors")
        assert result.code == 0, result.stderr + result.stdout
        printed[name] = " ".join(result.stdout.split())
        mapped = run_cli(
            "classify",
            scene,
            "-m",
            tmp_path / f"{name}.safetensors",
            "-o",
            tmp_path / f"{name}.tif",
            "--probabilities",
        )
        assert mapped.code == 0, mapped.stderr
        with rasterio.open(tmp_path / f"{name}_probabilities.tif") as src:
            maps[name] = src.read().astype(np.float64)
    assert "2 members, initial weights seeds 3, 1003" in printed["ensemble"]
    ensemble = read_safetensors(tmp_path / "ensemble.safetensors")[1]
    for index, single in enumerate(("first", "second")):
        arrays = read_safetensors(tmp_path / f"{single}.safetensors")[1]
        for key in (k for k in arrays if k.startswith("model.")):
            member_key = key.replace("model.", f"model.members.{index}.", 1)
            np.testing.assert_array_equal(ensemble[member_key], arrays[key])
    # stored as whole percent: the mean of two rounded values is within one of the ensemble's
    assert np.abs(maps["first"] - maps["second"]).max() > 2  # two different networks
    np.testing.assert_allclose(maps["ensemble"], (maps["first"] + maps["second"]) / 2, atol=1)
    with rasterio.open(scene) as src, rasterio.open(tmp_path / "ensemble.tif") as out:
        assert (out.crs, out.transform, out.nodata) == (src.crs, src.transform, 0)
    report = _metrics(tmp_path / "ensemble_report")
    single = _metrics(tmp_path / "first_report")
    assert [m["init_seed"] for m in report["fit"]["members"]] == [3, 1003]
    assert report["parameters"] == report["trainable_parameters"] == 2 * single["parameters"]
    assert all(
        (tmp_path / "ensemble_report" / f"member_{i}" / "curves.png").is_file() for i in (0, 1)
    )
    evaluated = run_cli("evaluate", tmp_path / "ensemble.safetensors", "--report", tmp_path / "e")
    assert "2 members, initial weights seeds 3, 1003" in " ".join(evaluated.stdout.split())
    assert _metrics(tmp_path / "e")["oa"] == report["oa"]
    info = run_cli("info", tmp_path / "ensemble.safetensors")
    assert "in an ensemble of 2 networks" in " ".join(info.stdout.split())
    refused = run_cli(
        *common, "--init", tmp_path / "ensemble.safetensors", "-o", tmp_path / "tuned.safetensors"
    )
    assert_one_sentence_error(refused, "ensemble.safetensors", "an ensemble of 2 networks")
    assert not (tmp_path / "tuned.safetensors").exists()


def test_a_refit_ensemble_chooses_the_epochs_once_and_trains_every_member_on_all_pixels(
    tmp_path, run_cli
):
    """With --refit the first network is exactly the single refit run; the second skips the
    selection run and trains on training + validation pixels for the epochs chosen there."""
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16, rows=24, cols=30)
    common = [
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        "cnn3d",
        *QUICK,
        "--epochs",
        "4",
        "--pca",
        "8",
        "--patch-size",
        "5",
        "--refit",
        "--init-seed",
        "3",
    ]
    for name, extra in {"ensemble": ["--members", "2"], "single": []}.items():
        result = run_cli(*common, *extra, "-o", tmp_path / f"{name}.safetensors")
        assert result.code == 0, result.stderr + result.stdout
    first, second = _metrics(tmp_path / "ensemble_report")["fit"]["members"]
    assert first["refit_on"] == second["refit_on"] == "train+val"
    assert second["refit_epochs"] == first["refit_epochs"] == first["best_epoch"] + 1
    assert second["epochs_chosen_by"] == "member_0" and "best_epoch" not in second
    assert second["init_seed"] == 1003
    ensemble = read_safetensors(tmp_path / "ensemble.safetensors")[1]
    single = read_safetensors(tmp_path / "single.safetensors")[1]
    for key in (k for k in single if k.startswith("model.")):
        np.testing.assert_array_equal(
            ensemble[key.replace("model.", "model.members.0.", 1)], single[key]
        )


def test_ensemble_members_share_what_is_left_of_the_time_budget():
    """Each training gets an equal share of the budget still left, so the time an earlier
    member did not use goes to the later ones, and a spent budget leaves each a second."""
    from hsikit.training.fit import member_minutes

    assert member_minutes(None, 1, 2) is None
    assert 4.99 < member_minutes(time.perf_counter() + 600, 1, 2) <= 5.0  # 10 minutes, 2 left
    assert 9.99 < member_minutes(time.perf_counter() + 600, 1, 1) <= 10.0
    # a refit ensemble's first network: selection and refit of the three trainings left
    assert 5.99 < member_minutes(time.perf_counter() + 540, 2, 3) <= 6.0
    assert member_minutes(time.perf_counter() - 60, 1, 2) == pytest.approx(1 / 2 / 60)


@pytest.mark.parametrize(
    "option",
    [
        ["--ema", "0.9"],
        ["--context-dropout", "0.5"],
        ["--brightness", "0.2"],
        ["--mixup", "0.4"],
        ["--members", "2"],
    ],
)
def test_gradient_training_options_are_refused_for_classical_models(tmp_path, run_cli, option):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16, rows=24, cols=30)
    result = run_cli(
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        "svm_rbf",
        *option,
        "-o",
        tmp_path / "m.safetensors",
    )
    assert_one_sentence_error(result, "svm_rbf is not trained by gradient steps")
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize(
    "model, option, fitted_on",
    [
        ("svm_rbf", [], "train+val"),
        ("svm_rbf", ["--no-refit"], "train"),
        ("mamba_hsi_tiny", ["--refit"], "train+val"),
        ("mamba_hsi_tiny", [], "train"),
    ],
)
def test_refit_option_says_which_pixels_trained_the_final_model(
    tmp_path, run_cli, model, option, fitted_on
):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16, rows=24, cols=30)
    result = run_cli(
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        model,
        *QUICK,
        "--pca",
        "8",
        *option,
        "-o",
        tmp_path / "m.safetensors",
    )
    assert result.code == 0, result.stderr + result.stdout
    assert _metrics(tmp_path / "m_report")["fit"]["refit_on"] == fitted_on


def test_context_dropout_fills_neighbours_with_the_centre_spectrum():
    from hsikit.training.augment import context_dropout

    x = torch.randn(200, 5, 7, 7)
    assert torch.equal(context_dropout(x, 0.0), x)
    out = context_dropout(x, 0.5, torch.Generator().manual_seed(0))
    kept, filled = (out == x).all(1), (out == x[:, :, 3, 3, None, None]).all(1)
    assert (kept | filled).all()  # every pixel is itself or its patch's centre spectrum
    assert torch.equal(out[:, :, 3, 3], x[:, :, 3, 3])
    share = (~kept).float().mean((1, 2))
    assert 60 < (share == 0).sum() < 140  # about half the patches untouched
    assert share.max() > 0.7  # the filled share varies per patch, up to nearly all


def _preprocessed_patches(count: int, pca: int | None) -> tuple:
    """Random physical 4-band 5 × 5 patches, the preprocessor fitted on them, and its output:
    what the training augmentations see."""
    from hsikit.preprocess import Preprocessor

    raw = np.random.default_rng(0).uniform(500, 5000, size=(count, 4, 5, 5))
    fitted = Preprocessor.fit(
        raw.transpose(0, 2, 3, 1).reshape(-1, 4), np.arange(4.0), list("abcd"), pca=pca
    )
    return raw, fitted, np.stack([fitted.transform(patch) for patch in raw])


@pytest.mark.parametrize("pca", [None, 3])
def test_brightness_augment_equals_scaling_the_physical_spectra(pca):
    """Scaling the model input about the preprocessor's dark point is what a brighter or darker
    surface would give: the augmentation needs no raw spectra."""
    from hsikit.training.augment import brightness_augment

    raw, fitted, x = _preprocessed_patches(6, pca)
    dark = fitted.dark_point()
    out = brightness_augment(
        torch.from_numpy(x), 0.3, torch.from_numpy(dark), torch.Generator().manual_seed(0)
    ).numpy()
    offset, scaled = x - dark[:, None, None], out - dark[:, None, None]
    scale = (scaled * offset).sum((1, 2, 3)) / (offset * offset).sum((1, 2, 3))  # per patch
    assert ((scale >= 0.7) & (scale <= 1.3)).all() and scale.std() > 0.05
    expected = np.stack([fitted.transform(s * patch) for s, patch in zip(scale, raw)])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="dark point"):
        Recipe(brightness=0.2)


@pytest.mark.parametrize("pca", [None, 3])
def test_mixup_mixes_the_physical_spectra_and_the_labels_in_the_same_shares(pca):
    """A mixed model input is the model input of the mixed physical spectra (the preprocessing
    is affine), and each target holds the two classes in the shares their patches were mixed."""
    from hsikit.training.augment import mixed_targets, mixup

    raw, fitted, x = _preprocessed_patches(64, pca)
    x = torch.from_numpy(x)
    y = torch.from_numpy(np.random.default_rng(1).integers(0, 5, 64))
    torch.manual_seed(0)
    mixed, partner, share = mixup(x, 0.4)
    assert sorted(partner.tolist()) == list(range(64))  # every patch is someone's partner
    assert ((share > 0) & (share < 1)).all() and share.std() > 0.2  # Beta(0.4, 0.4): U-shaped
    weight = share.double().numpy()[:, None, None, None]
    expected = np.stack(
        [fitted.transform(p) for p in weight * raw + (1 - weight) * raw[partner.numpy()]]
    )
    np.testing.assert_allclose(mixed.numpy(), expected, rtol=1e-4, atol=1e-4)
    targets = mixed_targets(y, partner, share, 6)
    assert targets.shape == (64, 6) and torch.allclose(targets.sum(1), torch.ones(64))
    same = y == y[partner]
    assert torch.allclose(targets[same, y[same]], torch.ones(int(same.sum())))
    rows = torch.arange(64)[~same]
    assert torch.allclose(targets[rows, y[rows]], share[rows])
    assert torch.allclose(targets[rows, y[partner][rows]], 1 - share[rows])


def test_less_vit_trained_on_200_indian_pines_bands_maps_a_150_band_subset(tmp_path, run_cli):
    bundle = tmp_path / "less.safetensors"
    result = run_cli(
        "train",
        "--dataset",
        "indian_pines",
        "--model",
        "less_vit_tiny",
        "--split",
        "random",
        "--train-ratio",
        "0.05",
        "--epochs",
        "1",
        "-o",
        bundle,
    )
    assert result.code == 0, result.stderr + result.stdout
    scene = load("indian_pines").scene
    keep = np.sort(np.random.default_rng(0).choice(200, 150, replace=False))
    crop = scene.read_raw(Window(40, 40, 48, 40))[keep]  # a corner keeps the test quick
    subset = synthetic.write_geotiff(
        tmp_path / "ip150.tif", crop, nodata=None, band_wavelengths=scene.wavelengths[keep]
    )
    result = run_cli("classify", subset, "-m", bundle, "-o", tmp_path / "map.tif")
    assert result.code == 0, result.stderr + result.stdout
    with rasterio.open(tmp_path / "map.tif") as out:
        classes = out.read(1)
    assert classes.shape == (40, 48) and (classes > 0).all()
    # (models with fixed inputs refuse such a subset: test_classify.py lists the missing bands)


@pytest.mark.parametrize("model", ["less_vit_tiny", "spectralgpt_tiny"])
def test_pretraining_lowers_heldout_loss_and_the_encoder_fine_tunes(tmp_path, run_cli, model):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=30)
    pretrained = tmp_path / "pre.safetensors"
    result = run_cli(
        "pretrain",
        scene,
        "--model",
        model,
        "--samples",
        "600",
        "--epochs",
        "6",
        "-o",
        pretrained,
        "--threads",
        "2",
    )
    assert result.code == 0, result.stderr + result.stdout
    header, arrays = read_safetensors(pretrained)
    training = header["training"]
    assert header["format"] == "hsikit-pretrained" and header["model"] == model
    assert training["heldout_loss_after"] < training["heldout_loss_before"]
    assert arrays and all(k.startswith("model.encoder.") for k in arrays)
    # an encoder is not a classifier: classify says what to do with it
    assert_one_sentence_error(
        run_cli("classify", scene, "-m", pretrained, "-o", tmp_path / "map.tif"),
        "pre.safetensors: this is a pretrained encoder",
        "--init",
    )
    assert not (tmp_path / "map.tif").exists()
    bundle = tmp_path / "model.safetensors"
    result = run_cli(
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        model,
        "--init",
        pretrained,
        *QUICK,
        "-o",
        bundle,
    )
    assert result.code == 0, result.stderr + result.stdout
    fit = _metrics(tmp_path / "model_report")["fit"]
    assert fit["init_kind"] == "pretrained encoder" and fit["tensors_loaded"] == len(arrays)
    # `hsikit info` tells the two files apart and says where the bundle came from
    described = json.loads(run_cli("info", pretrained, "--json").stdout)
    assert described["kind"] == "pretrained encoder" and described["model"] == model
    assert described["heldout_loss"] == [
        training["heldout_loss_before"],
        training["heldout_loss_after"],
    ]
    described = json.loads(run_cli("info", bundle, "--json").stdout)
    assert described["kind"] == "classifier bundle" and described["model"] == model
    assert described["fine_tuned_from"] == str(pretrained) and described["band_agnostic"] == (
        model == "less_vit_tiny"
    )
    # a pretrained encoder only loads into the model it was made for
    other = "spectralgpt_tiny" if model == "less_vit_tiny" else "less_vit_tiny"
    assert_one_sentence_error(
        run_cli(
            "train",
            scene,
            "--labels",
            labels,
            "--model",
            other,
            "--init",
            pretrained,
            *QUICK,
            "-o",
            tmp_path / "x.safetensors",
        ),
        "pre.safetensors",
        f"'{model}'",
    )


def test_pretraining_with_a_split_uses_only_its_training_pixels(tmp_path, run_cli):
    scene, labels, truth = synthetic.class_scene(tmp_path, bands=30, rows=40, cols=48)
    pretrained = tmp_path / "pre.safetensors"
    result = run_cli(
        "pretrain",
        scene,
        "--labels",
        labels,
        "--split",
        "spatial",
        "--model",
        "less_vit_tiny",
        "--epochs",
        "1",
        "-o",
        pretrained,
    )
    assert result.code == 0, result.stderr + result.stdout
    training = read_safetensors(pretrained)[0]["training"]
    assert training["config"]["split"] == "spatial"
    # the same options in `hsikit train` write the split: pretraining saw exactly its training
    # pixels, and held out exactly its validation pixels — never a test pixel
    assert (
        run_cli(
            "train",
            scene,
            "--labels",
            labels,
            "--model",
            "less_vit_tiny",
            "--split",
            "spatial",
            "--epochs",
            "1",
            "-o",
            tmp_path / "m.safetensors",
        ).code
        == 0
    )
    with rasterio.open(tmp_path / "m_report" / "split.tif") as src:
        roles = src.read(1)
    assert training["train_patches"] == int((roles == 1).sum()) < (truth > 0).sum()
    assert training["heldout_patches"] == int((roles == 2).sum())


def test_lora_fine_tuning_trains_a_small_share_and_maps(tmp_path, run_cli):
    scene, labels, truth = synthetic.class_scene(tmp_path, bands=30, rows=32, cols=40)
    base = tmp_path / "base.safetensors"
    assert (
        run_cli(
            "train", scene, "--labels", labels, "--model", "lola_specvit_tiny", *QUICK, "-o", base
        ).code
        == 0
    )
    tuned = tmp_path / "tuned.safetensors"
    # no --model: fine-tuning takes the model of the --init file
    result = run_cli(
        "train",
        scene,
        "--labels",
        labels,
        "--init",
        base,
        "--lora",
        "--lora-rank",
        "4",
        "--lora-cycles",
        "2",
        *QUICK,
        "-o",
        tuned,
    )
    assert result.code == 0, result.stderr + result.stdout
    report = _metrics(tmp_path / "tuned_report")
    assert report["model"] == "lola_specvit_tiny"
    assert report["trainable_parameters"] <= 0.2 * report["parameters"]  # ≥ 80 % fewer
    assert report["fit"]["lora_layers"] == 10 and report["fit"]["lora_cycles"] == 2
    assert run_cli("classify", scene, "-m", tuned, "-o", tmp_path / "map.tif").code == 0
    with rasterio.open(tmp_path / "map.tif") as out:
        assert (out.read(1)[truth > 0] > 0).all()
    assert_one_sentence_error(
        run_cli(
            "train",
            scene,
            "--labels",
            labels,
            "--model",
            "lola_specvit_tiny",
            "--lora",
            *QUICK,
            "-o",
            tmp_path / "x.safetensors",
        ),
        "LoRA fine-tunes existing weights",
    )


def test_fine_tuning_a_bundle_on_another_scene_keeps_its_preprocessing(tmp_path, run_cli):
    """The base's weights expect its own scaling and PCA basis; refitting them on the new
    scene's pixels would feed the weights a different input."""
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=30, rows=32, cols=40)
    base = tmp_path / "base.safetensors"
    assert (
        run_cli(
            "train", scene, "--labels", labels, "--model", "lola_specvit_tiny", *QUICK, "-o", base
        ).code
        == 0
    )
    (tmp_path / "other").mkdir()
    other, other_labels, _ = synthetic.class_scene(
        tmp_path / "other", bands=30, rows=32, cols=40, seed=1
    )
    tuned = tmp_path / "tuned.safetensors"
    result = run_cli(
        "train",
        other,
        "--labels",
        other_labels,
        "--model",
        "lola_specvit_tiny",
        "--init",
        base,
        "--keep",
        "last",
        "--val-fraction",
        "0.1",
        *QUICK,
        "-o",
        tuned,
    )
    assert result.code == 0, result.stderr + result.stdout
    assert _metrics(tmp_path / "tuned_report")["fit"]["kept"] == "last"
    before, after = read_safetensors(base)[1], read_safetensors(tuned)[1]
    for key in ("preprocess.mean", "preprocess.std", "preprocess.components"):
        np.testing.assert_array_equal(after[key], before[key])
    assert_one_sentence_error(
        run_cli(
            "train",
            other,
            "--labels",
            other_labels,
            "--model",
            "lola_specvit_tiny",
            "--init",
            base,
            "--pca",
            "10",
            *QUICK,
            "-o",
            tmp_path / "x.safetensors",
        ),
        "base.safetensors",
        "trained with PCA 15 and this run asks for 10",
        "--pca 15",
    )
    assert not (tmp_path / "x.safetensors").exists()


def test_cyclical_schedule_restarts_and_ends_each_cycle_at_full_strength():
    recipe = Recipe(epochs=12, warmup_epochs=0, lora_cycles=3, lora_min_strength=0.2)
    steps = [schedule(step, recipe, 10) for step in range(120)]
    lr = np.array([s[0] for s in steps])
    strength = np.array([s[1] for s in steps])
    restarts = np.flatnonzero(np.diff(lr) > 0) + 1
    assert restarts.tolist() == [40, 80]
    assert strength[0] == pytest.approx(0.2) and strength[39] > 0.99 and strength[-1] > 0.99
    assert np.all(np.diff(strength[:40]) > 0)  # strength rises as the LR falls, every cycle
    plain = [schedule(step, Recipe(epochs=12, warmup_epochs=0), 10) for step in range(120)]
    assert all(s[1] == 1.0 for s in plain) and np.all(np.diff([s[0] for s in plain]) <= 0)


def test_cyclical_schedule_modulates_lora_during_training(tmp_path):
    torch.manual_seed(0)
    model = create_model("lola_specvit_tiny", 15, 3, patch_size=11)
    inject_lora(model, model.lora_targets, rank=2)
    seen: list[float] = []
    layer = lora_layers(model)[0]
    layer.register_forward_hook(
        lambda module, *_: seen.append(module.strength) if module.training else None
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 15, 11, 11)).astype("float32")
    y = np.arange(64) % 3
    recipe = Recipe(epochs=4, batch_size=16, warmup_epochs=0, lora_cycles=2, progress=False)
    fit_torch(model, x, y, x[:16], y[:16], recipe, 0, str(tmp_path))
    assert min(seen) < 0.5 and max(seen) > 0.9 and len(set(seen)) > 4
    assert layer.strength == 1.0  # inference (and the merged bundle) use full strength


def test_band_projection_sees_where_along_the_spectrum_a_feature_lies():
    """The paper's spectral mean cannot tell a feature at band 10 from the same feature at band
    14 (convolutions shift with it, the mean forgets the shift); the learned projection can."""
    patches = torch.zeros(2, 30, 11, 11)
    patches[0, 10], patches[1, 14] = 1.0, 1.0
    stems = {}
    for name in ("lola_specvit_tiny", "lola_specvit_proj_tiny"):
        torch.manual_seed(0)
        model = create_model(name, 30, 3, patch_size=11).eval()
        with torch.no_grad():
            stems[name] = model.stem(patches)
    change = {name: float((s[0] - s[1]).abs().mean() / s.abs().mean()) for name, s in stems.items()}
    assert stems["lola_specvit_tiny"].shape == stems["lola_specvit_proj_tiny"].shape
    assert change["lola_specvit_tiny"] < 1e-5  # float rounding only
    assert change["lola_specvit_proj_tiny"] > 0.5
