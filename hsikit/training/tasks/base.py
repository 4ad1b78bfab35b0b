"""What every Lightning task shares: the model, the recipe, AdamW under the schedule, and the
model put in training mode when a fit starts."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from pydantic import ConfigDict, model_validator
from torch import nn

from hsikit.training.config import RecipeOptions
from hsikit.training.schedule import schedule


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
    devices: int = 1  # processes training together (hsikit.training.distributed)

    @model_validator(mode="after")
    def _dark_point_for_brightness(self) -> Recipe:
        if self.brightness and self.dark_point is None:
            raise ValueError(
                "brightness augmentation needs the dark point it scales about "
                "(Preprocessor.dark_point)"
            )
        return self


class BaseTask(L.LightningModule):
    """A model trained under ``recipe`` for ``steps_per_epoch`` optimiser steps an epoch."""

    model: Any  # an nn.Module; tasks call what their kind of model has (``loss`` …)

    def __init__(self, model: nn.Module, recipe: Recipe, steps_per_epoch: int) -> None:
        super().__init__()
        self.model = model
        self.recipe = recipe
        self.steps_per_epoch = steps_per_epoch

    def on_fit_start(self) -> None:
        """Lightning keeps the modes it finds, and a model handed over in eval mode (a caller's,
        or the chosen model before its refit) would train with frozen batch-norm statistics and
        no dropout."""
        self.model.train()

    def configure_optimizers(self) -> Any:
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
