"""The learning-rate and LoRA-strength schedule, and the weight average.

AdamW with linear warm-up then cosine decay. With ``lora_cycles`` (LoRA fine-tuning,
LoLA-SpecViT's cyclical schedule) the cosine restarts ``lora_cycles`` times, and the LoRA
strength multiplier follows the same cycle inversely: each cycle starts with a high learning
rate and damped adapters and ends with a low learning rate at full strength. Validation always
runs at strength 1 — the strength the merged model has at inference — so the kept weights are
the ones that will be used. The weight average is Lightning's ``WeightAveraging``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, WeightAveraging

from hsikit.models.layers import set_lora_strength

if TYPE_CHECKING:
    from hsikit.training.tasks.base import Recipe


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


class LoRAStrengthCycle(Callback):
    """Sets the LoRA strength for every training step; validation runs at strength 1."""

    def on_train_batch_start(self, trainer: L.Trainer, module: Any, *_: object) -> None:
        strength = schedule(trainer.global_step, module.recipe, module.steps_per_epoch)[1]
        set_lora_strength(module.model, strength)

    def on_validation_start(self, trainer: L.Trainer, module: Any) -> None:
        set_lora_strength(module.model, 1.0)

    def on_train_end(self, trainer: L.Trainer, module: Any) -> None:
        set_lora_strength(module.model, 1.0)


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
