"""``hsikit train --config FILE.yaml``: the options of a benchmark row in a file, the command
line on top; both validated by the one declaration of each option (``TrainConfig``)."""

from __future__ import annotations

import json

import yaml

from tests import synthetic
from tests.conftest import assert_one_sentence_error


def test_a_config_file_trains_and_the_command_line_overrides_it(tmp_path, run_cli):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=8, rows=20, cols=24)
    config = tmp_path / "row.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": "random_forest",
                "split": "random",
                "train_ratio": 0.2,
                "labels": [str(labels)],
                "recipe": {"weight_decay": 0.5},
            }
        )
    )
    result = run_cli(
        "train", scene, "--config", config, "--train-ratio", "0.3", "-o", tmp_path / "m.safetensors"
    )
    assert result.code == 0, result.stderr + result.stdout
    recorded = json.loads((tmp_path / "m_report" / "config.json").read_text())
    assert recorded["model"] == "random_forest" and recorded["train_ratio"] == 0.3
    assert recorded["recipe"]["weight_decay"] == 0.5 and recorded["scenes"] == [str(scene)]


def test_a_config_file_with_a_misspelt_option_is_refused(tmp_path, run_cli):
    config = tmp_path / "row.yaml"
    config.write_text("dataset: indian_pines\nmixpu: 0.4\n")
    result = run_cli("train", "--config", config, "-o", tmp_path / "m.safetensors")
    assert_one_sentence_error(result, "row.yaml", "invalid training options: mixpu")
    config.write_text("- not\n- a mapping\n")
    result = run_cli("train", "--config", config, "-o", tmp_path / "m.safetensors")
    assert_one_sentence_error(result, "row.yaml", "must hold 'name: value' lines")
    assert not (tmp_path / "m.safetensors").exists()


def test_flat_and_sectioned_recipe_options_are_one_config():
    from hsikit.training.config import TrainConfig

    flat = TrainConfig(dataset="indian_pines", mixup=0.4, epochs=3)
    sectioned = TrainConfig(dataset="indian_pines", recipe={"mixup": 0.4, "epochs": 3})
    assert flat == sectioned and flat.model_dump()["recipe"]["mixup"] == 0.4
    assert TrainConfig.model_validate(flat.model_dump()) == flat  # as bundles store it


def test_the_progress_bar_counts_epochs_from_one():
    from types import SimpleNamespace

    from hsikit.training.loops import EpochProgressBar

    bar = EpochProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=30)  # what Lightning attaches
    assert bar._get_train_description(29).strip() == "Epoch 30/30"
    assert bar._get_train_description(0).strip() == "Epoch 1/30"


def test_a_pca_cut_to_what_the_training_pixels_allow_is_said_and_recorded(tmp_path, run_cli):
    from tests import synthetic

    scene, labels, _ = synthetic.class_scene(tmp_path, bands=8, rows=24, cols=30)
    bundle = tmp_path / "m.safetensors"
    result = run_cli(
        "train", scene, "--labels", labels, "--model", "svm_rbf", "--pca", "30", "-o", bundle
    )
    assert result.code == 0, result.stderr
    assert "PCA keeps 8 components, not 30" in result.stderr
    assert "PCA 8" in run_cli("info", bundle).stdout
