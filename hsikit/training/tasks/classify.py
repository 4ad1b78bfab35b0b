"""Patch classification."""

from __future__ import annotations

import torch
from torch import nn

from hsikit.training.augment import (
    brightness_augment,
    context_dropout,
    dihedral_augment,
    mixed_targets,
    mixup,
)
from hsikit.training.tasks.base import BaseTask, Recipe


class PatchClassifierTask(BaseTask):
    """Cross-entropy (label smoothing, mixup targets) on augmented patches; validation loss and
    overall accuracy."""

    dark_point: torch.Tensor | None

    def __init__(self, model: nn.Module, recipe: Recipe, steps_per_epoch: int) -> None:
        super().__init__(model, recipe, steps_per_epoch)
        self.loss = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        dark_point = torch.as_tensor(recipe.dark_point) if recipe.brightness else None
        self.register_buffer("dark_point", dark_point, persistent=False)  # on the batch's device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        if self.recipe.augment:
            x = dihedral_augment(x)
        if self.recipe.context_dropout:
            x = context_dropout(x, self.recipe.context_dropout)
        if self.recipe.brightness:
            assert self.dark_point is not None  # the recipe refuses brightness without it
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
        # every process validates on all the validation patches: the values agree, and
        # sync_dist only spares Lightning's warning about unsynchronised epoch metrics
        self.log("val_loss", self.loss(logits, y), on_epoch=True, prog_bar=True, sync_dist=True)
        accuracy = (logits.argmax(1) == y).float().mean()
        self.log("val_oa", accuracy, on_epoch=True, prog_bar=True, sync_dist=True)
