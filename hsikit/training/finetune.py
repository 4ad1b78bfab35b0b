"""Start a model from earlier weights (a trained bundle or a pretrained encoder) and, for LoRA
fine-tuning, freeze everything but the low-rank adapters and the classification head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from hsikit.bundle import PretrainedMeta, read_description
from hsikit.errors import InputError
from hsikit.models.layers import count_parameters, freeze_all_but_lora, inject_lora
from hsikit.preprocess import Preprocessor


def initial_weights(path: Path) -> tuple[str, dict[str, torch.Tensor], str]:
    """(model name, weights without the ``model.`` prefix, kind) from a bundle or pretrained
    file; the JSON is validated before any array is used."""
    meta, arrays = read_description(path)
    if isinstance(meta, PretrainedMeta):
        name, kind = meta.model, "pretrained encoder"
    elif meta.model.members > 1:
        raise InputError(
            path,
            f"this bundle is an ensemble of {meta.model.members} networks, "
            "and training starts from one network's weights",
            "start from a bundle trained without --members",
        )
    else:
        name, kind = meta.model.name, "bundle"
    weights = {
        k.removeprefix("model."): torch.from_numpy(v.copy())
        for k, v in arrays.items()
        if k.startswith("model.")
    }
    return name, weights, kind


def bundle_preprocessor(
    path: str | Path, pca: int | None, patch_size: int, wavelengths: np.ndarray, names: list[str]
) -> Preprocessor | None:
    """A bundle's own preprocessing, kept when fine-tuning from it: its weights were trained on
    exactly that input (bands, scaling, PCA basis), and a basis refitted on other pixels would
    feed them something else. ``None`` for a pretrained encoder (refitted scaling is what it
    expects). A different PCA size, patch size or band set is refused."""
    from hsikit.bundle import load_bundle

    path = Path(path)
    if isinstance(read_description(path)[0], PretrainedMeta):
        return None
    bundle = load_bundle(path)
    meta = bundle.meta
    if (meta.pca or 0) != (pca or 0):
        raise InputError(
            path,
            f"the bundle was trained with PCA {meta.pca or 0} and this run asks for {pca or 0}",
            f"fine-tune with --pca {meta.pca or 0}",
        )
    if meta.patch_size != patch_size:
        raise InputError(
            path,
            f"the bundle was trained on {meta.patch_size}-pixel patches and "
            f"this run asks for {patch_size}",
            f"fine-tune with --patch-size {meta.patch_size}",
        )
    trained = bundle.preprocessor
    same = (
        len(trained.band_names) == len(names)
        and np.allclose(trained.band_wavelengths, wavelengths, atol=1.0, equal_nan=True)
        and (np.isfinite(wavelengths).all() or trained.band_names == list(names))
    )
    if not same:
        raise InputError(
            path,
            f"the bundle was trained on {len(trained.band_names)} bands that "
            f"these scenes' {len(names)} bands do not match",
            "fine-tune on scenes with the bundle's bands",
        )
    return trained


def initial_model_name(path: str | Path) -> str:
    """The model a bundle or pretrained file was made for: what ``--init`` alone implies."""
    return initial_weights(Path(path))[0]


def load_initial_weights(model: nn.Module, model_name: str, path: str | Path) -> dict:
    """Copy every matching tensor from ``path`` into ``model``. The head may differ (another
    class count); any other mismatch is refused so a wrong file never half-loads silently."""
    path = Path(path)
    name, weights, kind = initial_weights(path)
    if name != model_name:
        raise InputError(
            path,
            f"this {kind} is for '{name}', not '{model_name}'",
            f"train with --model {name}, or use a file made for {model_name}",
        )
    state = model.state_dict()
    head = getattr(model, "head_prefix", "head")
    loaded, skipped, wrong = [], [], []
    for key, value in weights.items():
        if key in state and state[key].dim() == 0 and value.numel() == 1:
            value = value.reshape(())  # scalars (batch-norm counters) are stored as [1]
        if key in state and state[key].shape == value.shape:
            state[key] = value
            loaded.append(key)
        elif key.startswith(head):
            skipped.append(key)
        else:
            wrong.append(key)
    if wrong or not loaded:
        shown = ", ".join(wrong[:3]) if wrong else "no tensor matched"
        raise InputError(
            path,
            f"the {kind} does not fit this model ({shown})",
            "use the same model size and the same bands",
        )
    model.load_state_dict(state)
    return {
        "init": str(path),
        "init_kind": kind,
        "tensors_loaded": len(loaded),
        "head_reinitialised": bool(skipped) or not any(k.startswith(head) for k in loaded),
    }


def prepare_lora(model: nn.Module, rank: int, alpha: float | None) -> dict:
    """Inject LoRA into the model's declared targets and freeze the rest except the head."""
    targets = getattr(model, "lora_targets", None)
    if not targets:
        raise InputError(
            None,
            f"{type(model).__name__} has no LoRA targets",
            "use a transformer or Mamba model for --lora",
        )
    replaced = inject_lora(model, targets, rank=rank, alpha=alpha)
    freeze_all_but_lora(model, also=(getattr(model, "head_prefix", "head"),))
    counts = count_parameters(model)
    return {
        "lora_layers": len(replaced),
        "lora_rank": rank,
        "trainable_parameters": counts["trainable"],
        "trainable_share": round(counts["trainable"] / counts["total"], 4),
    }
