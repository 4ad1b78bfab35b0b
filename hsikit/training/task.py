"""Lightning training of patch classifiers: AdamW, linear warm-up then cosine decay, label
smoothing, optional class-balanced sampling, early stopping and best-on-validation weights,
optionally an exponential moving average of the weights (Lightning's ``WeightAveraging``).

With ``lora_cycles`` (LoRA fine-tuning, LoLA-SpecViT's cyclical schedule) the cosine restarts
``lora_cycles`` times, and the LoRA strength multiplier follows the same cycle inversely: each
cycle starts with a high learning rate and damped adapters and ends with a low learning rate at
full strength. Validation always runs at strength 1 — the strength the merged model has at
inference — so the kept weights are the ones that will be used.
"""

from __future__ import annotations

import copy
import math
import time

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    RichProgressBar,
    Timer,
    WeightAveraging,
)
from lightning.pytorch.loggers import CSVLogger
from pydantic import ConfigDict, model_validator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from hsikit.devices import lightning_device
from hsikit.models.layers import set_lora_strength
from hsikit.training.config import RecipeOptions


class Recipe(RecipeOptions):
    """The recipe as a training pass runs it: the config's :class:`RecipeOptions` (epochs,
    learning rate and batch size resolved) and what the run itself supplies."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    epochs: int = 60
    lr: float = 1e-3
    batch_size: int = 64
    refit: bool = False  # resolved: retrain on training + validation pixels for the epochs chosen
    augment: bool = True  # random flips and transposes of each patch
    dark_point: np.ndarray | None = None  # [C] model input of a zero spectrum: what is scaled about
    progress: bool = True
    device: str = "cpu"  # resolved: "cpu" or "cuda:N" (hsikit.devices)

    @model_validator(mode="after")
    def _dark_point_for_brightness(self) -> Recipe:
        if self.brightness and self.dark_point is None:
            raise ValueError(
                "brightness augmentation needs the dark point it scales about "
                "(Preprocessor.dark_point)"
            )
        return self


def schedule(step: int, recipe: Recipe, steps_per_epoch: int) -> tuple[float, float]:
    """(learning-rate factor, LoRA strength) at optimiser step ``step``."""
    warmup = recipe.warmup_epochs * steps_per_epoch
    total = max(recipe.epochs * steps_per_epoch, warmup + 1)
    low = recipe.lora_min_strength
    if step < warmup:
        return (step + 1) / warmup, (low if recipe.lora_cycles else 1.0)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if recipe.lora_cycles:
        progress = min(progress * recipe.lora_cycles, recipe.lora_cycles - 1e-9) % 1.0
    factor = 0.5 * (1 + math.cos(math.pi * progress))
    return factor, (low + (1 - low) * (1 - factor) if recipe.lora_cycles else 1.0)


def dihedral_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random flips and transposes of each patch (all 8 symmetries of the square), per sample."""
    flags = (torch.rand(3, x.shape[0], generator=generator) < 0.5).to(x.device)
    for flag, transform in zip(
        flags, (lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.transpose(-1, -2))
    ):
        x = torch.where(flag[:, None, None, None], transform(x), x)
    return x


def context_dropout(
    x: torch.Tensor, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Overwrite a random share (uniform in 0–1) of the neighbour pixels of a ``rate`` share of
    the patches with their centre pixel's spectrum.

    Patch models learn the context their training pixels sit in (field edges, strips); on unseen
    fields that context differs (field interiors, other neighbours) and the centre spectrum is
    what transfers. Centre-filled neighbours keep the label true while breaking that reliance.
    """
    b, _, h, w = x.shape
    chosen = torch.rand(b, 1, 1, 1, generator=generator) < rate
    share = torch.rand(b, 1, 1, 1, generator=generator)
    filled = (chosen & (torch.rand(b, 1, h, w, generator=generator) < share)).to(x.device)
    centre = x[:, :, h // 2, w // 2, None, None]
    return torch.where(filled, centre, x)


def brightness_augment(
    x: torch.Tensor,
    spread: float,
    dark_point: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Each patch as if its surface were brighter or darker by a random factor in
    ``1 ± spread``: unseen fields of a class differ in illumination, soil moisture and canopy
    cover, which scale a spectrum more than they change its shape.

    The model sees preprocessed spectra (standardised, maybe PCA), an affine map of the physical
    ones, so scaling a physical spectrum by ``s`` is scaling its model input by ``s`` about
    ``dark_point``, the model input of a zero spectrum (``Preprocessor.dark_point``).
    """
    scale = 1 + spread * (2 * torch.rand(x.shape[0], 1, 1, 1, generator=generator) - 1)
    origin = dark_point.to(x.dtype).view(1, -1, 1, 1)
    return origin + scale.to(x.device) * (x - origin)


def mixup(x: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each patch mixed with a partner from the batch in a share ``λ ~ Beta(alpha, alpha)``:
    ``λ x_i + (1 − λ) x_partner``; returns the mixed patches, the partners' indices and the
    shares, from which ``mixed_targets`` makes the matching targets.

    A pixel that covers two surfaces has, to first order, the area-weighted mean of their
    spectra (the linear mixing model), so a mixed patch is a plausible scene pixel whose class
    shares are its target. The model input is an affine map of the physical spectra
    (standardised, maybe PCA), and affine maps keep weighted means, so mixing model inputs is
    mixing the physical spectra. Draws from torch's global generator, which training seeds
    (Beta sampling takes no other).
    """
    share = torch.distributions.Beta(alpha, alpha).sample((x.shape[0],)).to(x.device, x.dtype)
    partner = torch.randperm(x.shape[0]).to(x.device)
    weight = share.view(-1, 1, 1, 1)
    return weight * x + (1 - weight) * x[partner], partner, share


def mixed_targets(
    y: torch.Tensor, partner: torch.Tensor, share: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """The ``[B, num_classes]`` class probabilities of ``mixup``'s patches."""
    one_hot = nn.functional.one_hot(y, num_classes).to(share.dtype)
    return share[:, None] * one_hot + (1 - share[:, None]) * one_hot[partner]


class PatchClassifierTask(L.LightningModule):
    def __init__(self, model: nn.Module, recipe: Recipe, steps_per_epoch: int) -> None:
        super().__init__()
        self.model = model
        self.recipe = recipe
        self.steps_per_epoch = steps_per_epoch
        self.loss = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        dark_point = torch.as_tensor(recipe.dark_point) if recipe.brightness else None
        self.register_buffer("dark_point", dark_point, persistent=False)  # on the batch's device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_fit_start(self) -> None:
        """Lightning keeps the modes it finds, and a model handed over in eval mode (a caller's,
        or the chosen model before its refit) would train with frozen batch-norm statistics and
        no dropout."""
        self.model.train()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        if self.recipe.augment:
            x = dihedral_augment(x)
        if self.recipe.context_dropout:
            x = context_dropout(x, self.recipe.context_dropout)
        if self.recipe.brightness:
            x = brightness_augment(x, self.recipe.brightness, self.dark_point)
        if self.recipe.mixup:
            x, partner, share = mixup(x, self.recipe.mixup)
        logits = self.model(x)
        if self.recipe.mixup:
            y = mixed_targets(y, partner, share, logits.shape[1])
        loss = self.loss(logits, y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch
        logits = self.model(x)
        self.log("val_loss", self.loss(logits, y), on_epoch=True, prog_bar=True)
        self.log("val_oa", (logits.argmax(1) == y).float().mean(), on_epoch=True, prog_bar=True)

    def configure_optimizers(self):  # noqa: ANN201 (Lightning's own return type)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            trainable, lr=self.recipe.lr, weight_decay=self.recipe.weight_decay
        )
        lr_factor = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: schedule(step, self.recipe, self.steps_per_epoch)[0]
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": lr_factor, "interval": "step"},
        }


class LoRAStrengthCycle(Callback):
    """Sets the LoRA strength for every training step; validation runs at strength 1."""

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, *_: object
    ) -> None:
        strength = schedule(trainer.global_step, module.recipe, module.steps_per_epoch)[1]
        set_lora_strength(module.model, strength)

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        set_lora_strength(module.model, 1.0)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        set_lora_strength(module.model, 1.0)


class KeepBestWeights(Callback):
    """Keeps the weights of the best validation accuracy in memory (no pickled checkpoint)."""

    def __init__(self) -> None:
        self.best = -1.0
        self.state: dict[str, torch.Tensor] | None = None
        self.epoch = -1

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        score = float(trainer.callback_metrics.get("val_oa", -1.0))
        if score > self.best:
            self.best, self.epoch = score, trainer.current_epoch
            self.state = copy.deepcopy(module.model.state_dict())


def ema_decay(decay: float, updates: int) -> float:
    """The decay of the ``updates + 1``-th average update: warmed up as (1 + n) / (10 + n) so
    that on short CPU schedules (~1,500 steps) the random initial weights do not linger."""
    return min(decay, (1 + updates) / (10 + updates))


def weight_average(decay: float) -> WeightAveraging:
    """An exponential moving average of the weights and batch-norm statistics, updated after
    every optimiser step. Lightning swaps it in for validation (so early stopping and the best
    epoch judge the average) and leaves it in the model when training ends."""

    def update(average: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        return average + (current - average) * (1 - ema_decay(decay, int(updates)))

    return WeightAveraging(avg_fn=update)


def _schedule_callbacks(recipe: Recipe) -> list[Callback]:
    """What every training pass of ``recipe`` runs with, the refit included: the cyclical LoRA
    strength and the weight average."""
    callbacks: list[Callback] = [LoRAStrengthCycle()] if recipe.lora_cycles else []
    if recipe.ema:
        callbacks.append(weight_average(recipe.ema))
    return callbacks


def _loader(
    x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, balanced: bool, seed: int
) -> DataLoader:
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    generator = torch.Generator().manual_seed(seed)
    if shuffle and balanced:
        weights = 1.0 / np.bincount(y)[y]
        sampler = WeightedRandomSampler(
            torch.as_tensor(weights, dtype=torch.double), len(y), generator=generator
        )
        return DataLoader(
            data, batch_size=batch_size, sampler=sampler, drop_last=len(y) > batch_size
        )
    # a trailing batch of one sample would break batch normalisation while training
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        drop_last=shuffle and len(y) > batch_size,
    )


def _quiet_lightning() -> None:
    """Keep Lightning's banners (accelerator summary, tips) off the user's terminal."""
    import logging
    import warnings

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # training without validation (a refit, or --val-fraction 0) is intended
    warnings.filterwarnings("ignore", message=".*but have no `val_dataloader`.*")
    # retraining into an existing report folder replaces its log, as it does the report
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists")


def fit_torch(
    model: nn.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    recipe: Recipe,
    seed: int,
    log_dir: str,
) -> dict:
    """Train; returns the best epoch and score. ``model`` ends with the best validation weights,
    or with ``recipe.keep == "last"`` the weights at the end of the schedule (validation is then
    only watched: with a few hundred validation pixels, picking the best epoch mostly picks
    noise). ``recipe.max_minutes`` cuts training short when the time budget is spent; with
    "last" that leaves the schedule unfinished, so budget runs are best paired with "best".
    ``recipe.refit`` then trains once more, see ``_refit``."""
    _quiet_lightning()
    started = time.perf_counter()
    initial = copy.deepcopy(model.state_dict()) if recipe.refit else {}
    L.seed_everything(seed, workers=True, verbose=False)
    train = _loader(x_train, y_train, recipe.batch_size, True, recipe.balanced, seed)
    has_val = len(y_val) > 0
    val = _loader(x_val, y_val, 512, False, False, seed) if has_val else None
    best = KeepBestWeights()
    # KeepBestWeights first: it must copy the averaged weights before they are swapped out
    callbacks: list[Callback] = [best, *_schedule_callbacks(recipe)]
    if has_val and recipe.keep == "best":
        callbacks.append(EarlyStopping("val_oa", mode="max", patience=recipe.patience))
    trainer = _trainer(recipe, callbacks, CSVLogger(log_dir, name="", version=""))
    task = PatchClassifierTask(model, recipe, steps_per_epoch=len(train))
    trainer.fit(task, train, val)
    if best.state is not None and recipe.keep == "best":
        model.load_state_dict(best.state)
    model.eval()
    info = {
        "best_epoch": best.epoch,
        "best_val_oa": best.best,
        "epochs_run": trainer.current_epoch,
        "kept": recipe.keep,
        "stopped_by_time_budget": _out_of_time(trainer),
        "refit_on": "train",
    }
    if recipe.refit and has_val:
        chosen = best.epoch + 1 if recipe.keep == "best" else trainer.current_epoch
        spent = (time.perf_counter() - started) / 60
        info |= _refit(
            model,
            initial,
            np.concatenate([x_train, x_val]),
            np.concatenate([y_train, y_val]),
            recipe,
            seed,
            chosen,
            spent,
        )
    return info


def _refit(
    model: nn.Module,
    initial: dict,
    x: np.ndarray,
    y: np.ndarray,
    recipe: Recipe,
    seed: int,
    epochs: int,
    minutes_spent: float,
) -> dict:
    """Train again from the same initial weights and seed on training + validation pixels, for
    the epochs chosen on validation and along the same learning-rate schedule: the chosen model,
    with the validation pixels learnt too (as the classical models' refit after
    cross-validation). A refit that the time budget would cut short keeps the chosen weights."""
    left = None if recipe.max_minutes is None else recipe.max_minutes - minutes_spent
    if left is not None and left <= 0:
        return {"refit_epochs": 0, "refit_note": "time budget spent: validation-chosen weights"}
    chosen_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(initial)
    epochs_run, completed = train_for_epochs(
        model, x, y, recipe.model_copy(update={"max_minutes": left}), seed, epochs
    )
    if not completed:
        model.load_state_dict(chosen_state)
        return {
            "refit_epochs": epochs_run,
            "refit_note": "cut short by the time budget: validation-chosen weights",
        }
    return {"refit_on": "train+val", "refit_epochs": epochs_run}


def train_for_epochs(
    model: nn.Module, x: np.ndarray, y: np.ndarray, recipe: Recipe, seed: int, epochs: int
) -> tuple[int, bool]:
    """Train from the model's current weights on all of ``x``, without validation, for the
    first ``epochs`` of the schedule (an epoch count chosen on validation beforehand); returns
    the epochs run and whether they all ran within ``recipe.max_minutes``."""
    _quiet_lightning()
    L.seed_everything(seed, workers=True, verbose=False)
    train = _loader(x, y, recipe.batch_size, True, recipe.balanced, seed)
    trainer = _trainer(recipe, _schedule_callbacks(recipe), False, max_epochs=epochs)
    trainer.fit(PatchClassifierTask(model, recipe, steps_per_epoch=len(train)), train)
    model.eval()
    return trainer.current_epoch, not _out_of_time(trainer)


def _out_of_time(trainer: L.Trainer) -> bool:
    """Whether the ``max_minutes`` budget ended training (rather than the schedule or
    early stopping)."""
    timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
    return bool(timers) and timers[0].time_remaining() <= 0


class MaskedPretrainTask(L.LightningModule):
    """Self-supervised training of a pretrainer (``loss(x)``), validation on held-out patches."""

    def __init__(self, pretrainer: nn.Module, recipe: Recipe, steps_per_epoch: int) -> None:
        super().__init__()
        self.model = pretrainer
        self.recipe = recipe
        self.steps_per_epoch = steps_per_epoch

    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        x = dihedral_augment(batch[0]) if self.recipe.augment else batch[0]
        loss = self.model.loss(x)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
        generator = torch.Generator().manual_seed(index)
        self.log("val_loss", self.model.loss(batch[0], generator), on_epoch=True, prog_bar=True)

    configure_optimizers = PatchClassifierTask.configure_optimizers
    on_fit_start = PatchClassifierTask.on_fit_start


def _trainer(
    recipe: Recipe,
    callbacks: list[Callback],
    logger: CSVLogger | bool,
    max_epochs: int | None = None,
) -> L.Trainer:
    """``max_epochs`` stops before the end of the schedule, which stays ``recipe.epochs`` long.
    On a GPU some kernels have no deterministic version: those warn instead of failing."""
    if recipe.progress:
        callbacks = [*callbacks, RichProgressBar(leave=False)]
    accelerator, devices = lightning_device(recipe.device)
    return L.Trainer(
        max_epochs=max_epochs or recipe.epochs,
        max_time=None if recipe.max_minutes is None else {"minutes": recipe.max_minutes},
        accelerator=accelerator,
        devices=devices,
        deterministic=True if accelerator == "cpu" else "warn",
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=recipe.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )


def fit_pretraining(
    pretrainer: nn.Module, x_train: np.ndarray, x_val: np.ndarray, recipe: Recipe, seed: int
) -> None:
    _quiet_lightning()
    L.seed_everything(seed, workers=True, verbose=False)
    dummy = np.zeros(len(x_train), np.int64)
    train = _loader(x_train, dummy, recipe.batch_size, True, False, seed)
    val = _loader(x_val, np.zeros(len(x_val), np.int64), 256, False, False, seed)
    task = MaskedPretrainTask(pretrainer, recipe, steps_per_epoch=len(train))
    _trainer(recipe, [], False).fit(task, train, val)
    pretrainer.eval()
