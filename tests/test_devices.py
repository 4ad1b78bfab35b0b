"""``--device``: every command takes it, a missing GPU is one sentence, and nothing in a model's
forward or backward pass, nor in the training augmentations, creates tensors on the CPU behind
the input's back (checked on PyTorch's "meta" device, which any CPU tensor mixed in would
break; a CUDA machine is not needed for that)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch

from hsikit.bundle import read_safetensors
from hsikit.models import architecture_config, create_model, get_entry, list_models
from hsikit.training.augment import (
    brightness_augment,
    context_dropout,
    dihedral_augment,
    mixed_targets,
    mixup,
)
from tests import synthetic
from tests.conftest import assert_one_sentence_error

TORCH_MODELS = [n for n in list_models(task="classification") if get_entry(n).family == "torch"]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_model_forward_and_backward_stay_on_the_inputs_device(name):
    bands, patch = 16, get_entry(name).architecture["patch_size"]
    wavelengths = [float(w) for w in np.linspace(450, 900, bands)]
    config = architecture_config(name, patch_size=patch, wavelengths=wavelengths, gsd=20.0)
    model = create_model(name, bands, 4, **config).to("meta")
    x = torch.randn(3, bands, patch, patch, device="meta", requires_grad=True)
    logits = model(x)
    assert logits.device.type == "meta" and logits.shape == (3, 4)
    logits.sum().backward()
    assert x.grad is not None and x.grad.device.type == "meta"
    if getattr(model, "uses_wavelengths", False):  # bundles pass their wavelengths from the CPU
        assert model(x, torch.tensor(wavelengths)).device.type == "meta"


def test_training_augmentations_stay_on_the_batchs_device():
    x = torch.randn(8, 5, 7, 7, device="meta")
    generator = torch.Generator().manual_seed(0)
    assert dihedral_augment(x, generator).device.type == "meta"
    assert context_dropout(x, 0.5, generator).device.type == "meta"
    dark_point = torch.zeros(5, device="meta")
    assert brightness_augment(x, 0.2, dark_point, generator).device.type == "meta"
    mixed, partner, share = mixup(x, 0.4)
    assert mixed.device.type == "meta"
    y = torch.zeros(8, dtype=torch.long, device="meta")
    assert mixed_targets(y, partner, share, 4).device.type == "meta"


@NO_GPU
@pytest.mark.parametrize("command", ["train", "train_svm", "pretrain", "classify", "evaluate"])
def test_asking_for_a_gpu_the_machine_lacks_is_refused_before_any_work(tmp_path, run_cli, command):
    """Also for a CPU-only model: the same flag is not refused by one command and ignored by
    another."""
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16, rows=24, cols=30)
    output = tmp_path / "out.safetensors"
    args = {
        "train": ["train", scene, "--labels", labels, "-o", output],
        "train_svm": ["train", scene, "--labels", labels, "--model", "svm_rbf", "-o", output],
        "pretrain": ["pretrain", scene, "-o", output],
        "classify": ["classify", scene, "--labels", labels, "-o", tmp_path / "map.tif"],
        "evaluate": ["evaluate", tmp_path / "absent.safetensors"],
    }[command]
    result = run_cli(*args, "--device", "cuda")
    assert_one_sentence_error(
        result, "--device cuda: torch sees no CUDA device", "use --device cpu"
    )
    assert list(tmp_path.glob("out*")) == [] and not (tmp_path / "map.tif").exists()


@pytest.mark.parametrize("command", ["train", "classify"])
def test_a_device_name_torch_does_not_know_is_refused(tmp_path, run_cli, command):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16, rows=24, cols=30)
    output = tmp_path / ("m.safetensors" if command == "train" else "map.tif")
    result = run_cli(command, scene, "--labels", labels, "--device", "gpu", "-o", output)
    assert_one_sentence_error(result, "'gpu' is not a device", "cuda:N")
    assert not output.exists()


def test_auto_device_trains_maps_and_evaluates_on_the_cpu_here_and_says_so(tmp_path, run_cli):
    if torch.cuda.is_available():
        pytest.skip("on a CUDA machine auto picks the GPU")
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=16, rows=24, cols=30)
    bundle = tmp_path / "m.safetensors"
    result = run_cli(
        "train",
        scene,
        "--labels",
        labels,
        "--model",
        "mamba_hsi_tiny",
        "--split",
        "random",
        "--train-ratio",
        "0.3",
        "--epochs",
        "2",
        "--pca",
        "8",
        "-o",
        bundle,
    )
    assert result.code == 0, result.stderr + result.stdout
    report = json.loads((tmp_path / "m_report" / "metrics.json").read_text())
    assert report["device"] == "cpu"
    assert read_safetensors(bundle)[0]["training"]["device"] == "cpu"
    mapped = run_cli("classify", scene, "-m", bundle, "--device", "cpu", "-o", tmp_path / "a.tif")
    assert mapped.code == 0, mapped.stderr + mapped.stdout
    mapped = run_cli("classify", scene, "-m", bundle, "-o", tmp_path / "b.tif")  # auto
    assert mapped.code == 0, mapped.stderr + mapped.stdout
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))
    evaluated = run_cli("evaluate", bundle, "--device", "cpu", "--report", tmp_path / "e")
    assert evaluated.code == 0, evaluated.stderr + evaluated.stdout
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["oa"] == report["oa"]
