"""Training loops on Lightning: fit with early stopping and best-on-validation weights (kept in
memory, never a pickled checkpoint), the refit on training + validation pixels, training for a
chosen number of epochs, and pretraining; class-balanced sampling; time budgets."""

from __future__ import annotations

import copy
import time
from datetime import timedelta
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, RichProgressBar, Timer
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from hsikit.devices import lightning_device
from hsikit.training.distributed import per_process_batch, strategy, training_sampler
from hsikit.training.schedule import LoRAStrengthCycle, weight_average
from hsikit.training.tasks.base import Recipe
from hsikit.training.tasks.classify import PatchClassifierTask
from hsikit.training.tasks.pretrain import MaskedPretrainTask


class KeepBestWeights(Callback):
    """Keeps the weights of the best validation score (``monitor``, higher is better) in
    memory (no pickled checkpoint)."""

    def __init__(self, monitor: str = "val_oa") -> None:
        self.monitor = monitor
        self.best = -1.0  # below any accuracy or PSNR (dB) a fit reaches
        self.state: dict[str, torch.Tensor] | None = None
        self.epoch = -1

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        score = float(trainer.callback_metrics.get(self.monitor, -1.0))
        if score > self.best:
            self.best, self.epoch = score, trainer.current_epoch
            model: nn.Module = module.model  # type: ignore[assignment]
            self.state = copy.deepcopy(model.state_dict())


class EpochProgressBar(RichProgressBar):
    """Lightning's bar, counting epochs as people do: "Epoch 30/30" at the end of 30."""

    def _get_train_description(self, current_epoch: int) -> str:
        total = self.trainer.max_epochs
        text = f"Epoch {current_epoch + 1}" + (f"/{total}" if total is not None else "")
        return f"{text:{len(self.validation_description)}}"


def _schedule_callbacks(recipe: Recipe) -> list[Callback]:
    """What every training pass of ``recipe`` runs with, the refit included: the cyclical LoRA
    strength and the weight average."""
    callbacks: list[Callback] = [LoRAStrengthCycle()] if recipe.lora_cycles else []
    if recipe.ema:
        callbacks.append(weight_average(recipe.ema))
    return callbacks


def _loader(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool,
    balanced: bool,
    seed: int,
    processes: int = 1,
) -> DataLoader:
    """Batches of patches; a training loader (``shuffle``) on several processes gives each its
    share of the patches and of the batch."""
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    generator = torch.Generator().manual_seed(seed)
    weighted = None
    if shuffle and balanced:
        weights = 1.0 / np.bincount(y)[y]
        weighted = WeightedRandomSampler(weights.tolist(), len(y), generator=generator)
    if shuffle and processes > 1:
        batch_size = per_process_batch(batch_size, processes)
        sampler = training_sampler(data, weighted, processes, seed)
        share = len(y) // processes
        return DataLoader(
            data, batch_size=batch_size, sampler=sampler, drop_last=share > batch_size
        )
    if weighted is not None:
        return DataLoader(
            data, batch_size=batch_size, sampler=weighted, drop_last=len(y) > batch_size
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
    train = _loader(
        x_train, y_train, recipe.batch_size, True, recipe.balanced, seed, recipe.devices
    )
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
        "processes": trainer.world_size,
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
    train = _loader(x, y, recipe.batch_size, True, recipe.balanced, seed, recipe.devices)
    trainer = _trainer(recipe, _schedule_callbacks(recipe), False, max_epochs=epochs)
    trainer.fit(PatchClassifierTask(model, recipe, steps_per_epoch=len(train)), train)
    model.eval()
    return trainer.current_epoch, not _out_of_time(trainer)


def _out_of_time(trainer: L.Trainer) -> bool:
    """Whether the ``max_minutes`` budget ended training (rather than the schedule or
    early stopping)."""
    timers = [c for c in trainer.callbacks if isinstance(c, Timer)]  # type: ignore[attr-defined]
    left = timers[0].time_remaining() if timers else None
    return left is not None and left <= 0


def _trainer(
    recipe: Recipe,
    callbacks: list[Callback],
    logger: CSVLogger | bool,
    max_epochs: int | None = None,
) -> L.Trainer:
    """``max_epochs`` stops before the end of the schedule, which stays ``recipe.epochs`` long.
    On a GPU some kernels have no deterministic version: those warn instead of failing."""
    if recipe.progress:
        callbacks = [*callbacks, EpochProgressBar(leave=False)]
    accelerator, devices = lightning_device(recipe.device, recipe.devices)
    return L.Trainer(
        max_epochs=max_epochs or recipe.epochs,
        max_time=None if recipe.max_minutes is None else timedelta(minutes=recipe.max_minutes),
        accelerator=accelerator,
        devices=devices,
        strategy=strategy(accelerator, recipe.devices),
        use_distributed_sampler=False,  # the training loader shares itself out (_loader)
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


class _Crops(torch.utils.data.Dataset):
    """``count`` crops an epoch, each a fresh draw from ``sampler`` (one process, in order, so
    a seed gives the same sequence)."""

    def __init__(self, sampler: Any, count: int) -> None:
        self.sampler, self.count = sampler, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, _: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        degraded, clean, task = self.sampler.draw()
        return torch.from_numpy(degraded), torch.from_numpy(clean), task


def fit_restorer(
    model: nn.Module,
    sampler: Any,
    validation: list[tuple[np.ndarray, np.ndarray, int]],
    recipe: Recipe,
    seed: int,
    log_dir: str,
    crops_per_epoch: int,
) -> dict:
    """Train a restoration head on crops drawn from ``sampler`` and keep the weights of the
    best validation PSNR (the validation crops are fixed: the same for every epoch)."""
    from hsikit.training.tasks.restore import RestoreTask

    _quiet_lightning()
    L.seed_everything(seed, workers=True, verbose=False)
    train = DataLoader(_Crops(sampler, crops_per_epoch), batch_size=recipe.batch_size)
    fixed: Any = [(torch.from_numpy(d), torch.from_numpy(c), t) for d, c, t in validation]
    val = DataLoader(fixed, batch_size=recipe.batch_size)
    best = KeepBestWeights("val_psnr")
    callbacks: list[Callback] = [best]
    if recipe.keep == "best":
        callbacks.append(EarlyStopping("val_psnr", mode="max", patience=recipe.patience))
    trainer = _trainer(recipe, callbacks, CSVLogger(log_dir, name="", version=""))
    trainer.fit(RestoreTask(model, recipe, steps_per_epoch=len(train)), train, val)
    if best.state is not None and recipe.keep == "best":
        model.load_state_dict(best.state)
    model.eval()
    return {
        "best_epoch": best.epoch,
        "best_val_psnr": best.best,
        "epochs_run": trainer.current_epoch,
        "kept": recipe.keep,
        "stopped_by_time_budget": _out_of_time(trainer),
    }
