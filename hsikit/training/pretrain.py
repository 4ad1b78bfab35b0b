"""``hsikit pretrain``: masked-autoencoder pretraining of a seed encoder on unlabelled pixels.

Without a split, patches are centred on randomly drawn valid pixels of the scenes (a share held
out to measure reconstruction). With a split (catalog dataset or labels + ``--split``), only the
*training* pixels of that split are used and its validation pixels are held out, so an encoder
later fine-tuned and tested on the same split has never seen a test area. The file written
holds the encoder weights (safetensors) and a JSON description; ``hsikit train --init`` loads it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import model_validator

from hsikit import __version__
from hsikit.bundle import BUNDLE_SUFFIXES, HEADER_KEY, PRETRAINED_FORMAT, PretrainedMeta
from hsikit.data.samples import Source, extract, read_spectra
from hsikit.data.sources import load_sources
from hsikit.data.splits import TRAIN, VAL, Split, SplitSpec
from hsikit.devices import resolve_device, use_threads
from hsikit.errors import InputError
from hsikit.models import create_model, get_entry
from hsikit.models.pretraining import build_pretrainer
from hsikit.preprocess import Preprocessor, good_band_identity, match_bands
from hsikit.training.config import DATA, MODEL, RECIPE, DataOptions, TrainConfig, option
from hsikit.training.fit import architecture_for
from hsikit.writers.atomic import check_output, staged_output


class PretrainConfig(DataOptions):
    """A self-supervised pretraining run: its pixels (a split's training region, or all),
    the encoder and its recipe. Declared once: the CLI's options come from these fields."""

    model: str = option(
        MODEL, "less_vit_tiny", description="less_vit_* (Hyper-MAE) or spectralgpt_* (3-D MAE)"
    )
    split: Literal["none", "random", "spatial"] = option(
        DATA,
        "none",
        description="none, random or spatial: with a split only its training "
        "pixels are used (needs --labels or --dataset)",
    )
    samples: int = option(DATA, 4000, gt=0, description="patches drawn for pretraining")
    holdout: float = option(
        DATA,
        0.1,
        gt=0,
        lt=1,
        description="share of the patches held out "
        "to measure the reconstruction loss (without a split)",
    )
    epochs: int = option(RECIPE, 30, gt=0, description="epochs of the schedule")
    lr: float = option(RECIPE, 1e-3, gt=0, description="peak learning rate of AdamW")
    batch_size: int = option(RECIPE, 64, gt=0, description="patches per step")
    weight_decay: float = option(RECIPE, 0.05, ge=0, description="AdamW weight decay")
    warmup_epochs: int = option(
        RECIPE, 2, ge=0, description="epochs of linear learning-rate warm-up"
    )

    @model_validator(mode="after")
    def _split_needs_labels(self) -> PretrainConfig:
        if self.split != "none" and self.dataset is None and not self.labels:
            raise ValueError("a split needs labels (or a catalog dataset)")
        return self


#: The pretraining options that are recipe options (the rest choose pixels and the model).
PRETRAIN_RECIPE = {"epochs", "lr", "batch_size", "weight_decay", "warmup_epochs"}


def _split_sources(config: PretrainConfig, patch_size: int) -> list[Source]:
    """The split's sources, exactly as ``hsikit train`` would build them for the same options."""
    data = {k: getattr(config, k) for k in DataOptions.model_fields}
    assert config.split != "none"  # only split runs build split sources
    train_config = TrainConfig(
        model=config.model, split=config.split, patch_size=patch_size, **data
    )
    return load_sources(train_config)[0]


def _random_sources(config: PretrainConfig) -> list[Source]:
    """Randomly drawn pixels of each scene as pseudo-labels: train, plus a held-out share."""
    from hsikit.data.datasets import load, resolve_scene

    scenes = (
        [load(config.dataset).scene]
        if config.dataset
        else [resolve_scene(s) for s in config.scenes]
    )
    rng = np.random.default_rng(config.seed)
    first = scenes[0]
    _, wavelengths, names = good_band_identity(first)
    per_scene = int(np.ceil(config.samples * (1 + config.holdout) / len(scenes)))
    sources = []
    for scene in scenes:
        pixels = scene.height * scene.width
        flat = rng.choice(pixels, size=min(per_scene, pixels), replace=False)
        labels = np.zeros((scene.height, scene.width), np.uint8)
        roles = np.zeros_like(labels)
        labels.flat[flat] = 1
        held = int(round(len(flat) * config.holdout / (1 + config.holdout)))
        roles.flat[flat[:held]] = VAL
        roles.flat[flat[held:]] = TRAIN
        split = Split(
            SplitSpec(protocol="random", seed=config.seed), roles, ["random unlabelled pixels"]
        )
        sources.append(
            Source(
                scene, labels, split, match_bands(wavelengths, names, scene), scene.path or "scene"
            )
        )
    return sources


def _subsample(x: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if len(x) <= limit:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), limit, replace=False))]


def heldout_loss(
    pretrainer: Any, x: np.ndarray, seed: int, device: str = "cpu", batch: int = 256
) -> float:
    """Mean reconstruction loss on held-out patches with fixed masks (comparable across runs:
    the masks are drawn on the CPU whatever the device)."""
    pretrainer.to(device).eval()
    generator = torch.Generator().manual_seed(seed)
    losses, weights = [], []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            chunk = torch.from_numpy(x[start : start + batch]).to(device)
            losses.append(float(pretrainer.loss(chunk, generator)))
            weights.append(len(chunk))
    return float(np.average(losses, weights=weights))


def pretrain(config: PretrainConfig, output: str | Path, progress: bool = True) -> dict:
    from hsikit.training.loops import fit_pretraining
    from hsikit.training.tasks.base import Recipe

    output = check_output(
        output,
        suffixes=BUNDLE_SUFFIXES,
        what="a pretrained encoder",
        inputs=[*config.scenes, *config.labels],
    )
    entry = get_entry(config.model)
    objective = entry.pretrain
    if objective is None:
        raise InputError(
            None,
            f"{config.model} has no self-supervised objective",
            "pretrain a less_vit_* or spectralgpt_* model",
        )
    device = resolve_device(config.device)
    use_threads(config.threads)
    started = time.perf_counter()
    patch_size = entry.architecture["patch_size"]
    sources = (
        _split_sources(config, patch_size) if config.split != "none" else _random_sources(config)
    )
    spectra, checksum, _ = read_spectra(sources)
    if len(spectra) == 0:
        raise InputError(None, "no valid pixels to pretrain on", "check the scenes and split")
    first = sources[0].scene
    _, wavelengths, names = good_band_identity(first)
    preprocessor = Preprocessor.fit(spectra, wavelengths, names)
    samples = extract(sources, preprocessor, patch_size)
    x_train = _subsample(samples.x["train"], config.samples, config.seed)
    x_held = _subsample(
        samples.x["val"], max(64, int(config.samples * config.holdout)), config.seed + 1
    )
    if len(x_held) == 0:
        raise InputError(
            None, "the split leaves no held-out pixels", "use a larger validation share"
        )
    import lightning as L

    L.seed_everything(config.seed, workers=True, verbose=False)
    architecture = architecture_for(config.model, patch_size, preprocessor, first)
    classifier = create_model(config.model, preprocessor.out_channels, 2, **architecture)
    pretrainer = build_pretrainer(objective, classifier)
    before = heldout_loss(pretrainer, x_held, config.seed, device)
    recipe = Recipe(**config.model_dump(include=PRETRAIN_RECIPE), progress=progress, device=device)
    fit_pretraining(pretrainer, x_train, x_held, recipe, config.seed)
    after = heldout_loss(pretrainer, x_held, config.seed, device)
    training = {
        "objective": objective,
        "train_patches": int(len(x_train)),
        "heldout_patches": int(len(x_held)),
        "heldout_loss_before": before,
        "heldout_loss_after": after,
        "device": device,
        "data_checksum": checksum,
        "seconds": round(time.perf_counter() - started, 1),
        "config": config.model_dump(),
    }
    meta = PretrainedMeta(
        format=PRETRAINED_FORMAT,
        format_version=1,
        hsikit_version=__version__,
        model=config.model,
        objective=objective,
        config=architecture,
        band_wavelengths=[
            float(w) if np.isfinite(w) else None for w in preprocessor.band_wavelengths
        ],
        patch_size=patch_size,
        training=training,
    )
    _save_encoder(output, classifier, meta)
    return training


def _save_encoder(path: Path, classifier: torch.nn.Module, meta: PretrainedMeta) -> None:
    from safetensors.numpy import save_file

    tensors = {
        f"model.{k}": np.ascontiguousarray(v.detach().cpu().numpy())
        for k, v in classifier.state_dict().items()
        if k.startswith("encoder.")
    }
    with staged_output(path, suffixes=BUNDLE_SUFFIXES, what="a pretrained encoder") as stage:
        save_file(tensors, str(stage / path.name), metadata={HEADER_KEY: meta.model_dump_json()})
