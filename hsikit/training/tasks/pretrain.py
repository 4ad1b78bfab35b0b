"""Self-supervised pretraining: a pretrainer's masked-reconstruction ``loss``."""

from __future__ import annotations

import torch

from hsikit.training.augment import dihedral_augment
from hsikit.training.tasks.base import BaseTask


class MaskedPretrainTask(BaseTask):
    """Self-supervised training of a pretrainer (``loss(x)``), validation on held-out patches."""

    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        x = dihedral_augment(batch[0]) if self.recipe.augment else batch[0]
        loss = self.model.loss(x)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
        generator = torch.Generator().manual_seed(index)
        self.log("val_loss", self.model.loss(batch[0], generator), on_epoch=True, prog_bar=True)
