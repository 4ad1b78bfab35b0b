"""Restoration: L1 between the restored and the clean crop (the losses HSDT and MP-HSIR train
with), plus, for all-in-one models, the cross-entropy of their degradation classifier;
validation logs the loss and the mean PSNR of the restored crops (values are scaled to the
data range, so the peak is 1)."""

from __future__ import annotations

import torch
from torch import nn

from hsikit.training.augment import dihedral_augment
from hsikit.training.tasks.base import BaseTask

#: Weight of the degradation classifier's loss beside L1 (all-in-one models).
CLASSIFIER_WEIGHT = 0.1


def _restored(model: nn.Module, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
    tasks = getattr(model, "tasks", None)
    return model(x, task) if tasks is not None else model(x)


class RestoreTask(BaseTask):
    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        degraded, clean, task = batch
        if self.recipe.augment and degraded.shape[-1] == clean.shape[-1]:
            both = dihedral_augment(torch.cat([degraded, clean], dim=1))
            degraded, clean = both.split([degraded.shape[1], clean.shape[1]], dim=1)
        loss = (_restored(self.model, degraded, task) - clean).abs().mean()
        classifier = getattr(self.model, "classifier", None)
        if classifier is not None:
            loss = loss + CLASSIFIER_WEIGHT * nn.functional.cross_entropy(
                classifier(degraded), task
            )
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], _: int) -> None:
        degraded, clean, task = batch
        restored = _restored(self.model, degraded, task)
        self.log("val_loss", (restored - clean).abs().mean(), on_epoch=True, prog_bar=True)
        mse = ((restored.clamp(-0.5, 1.5) - clean) ** 2).mean(dim=(2, 3)).clamp_min(1e-10)
        self.log("val_psnr", (10 * torch.log10(1 / mse)).mean(), on_epoch=True, prog_bar=True)
