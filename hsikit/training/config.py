"""What a training run depends on: where pixels come from (:class:`DataOptions`, shared with
pretraining) and the whole validated :class:`TrainConfig`, saved in every report and bundle."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from hsikit.data.splits import SplitSpec
from hsikit.devices import DEVICE_HELP, device_name
from hsikit.errors import InputError
from hsikit.models import get_entry
from hsikit.smoothing import DEFAULT_EPS, DEFAULT_GUIDE, Smoothing


class DataOptions(BaseModel):
    """Where pixels come from and how they are split: shared by training and pretraining, so
    both build the same split from the same options."""

    model_config = ConfigDict(extra="forbid")
    dataset: str | None = None
    scenes: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    train_ratio: float = Field(0.1, gt=0, lt=1)
    per_class: int | None = Field(None, gt=0)
    val_fraction: float = Field(0.2, ge=0, lt=1)
    block_size: int = Field(16, gt=0)
    buffer_patch: int | None = Field(None, gt=0, description="spatial: buffer = this // 2 "
                                     "(default: the model's patch size); set it to compare "
                                     "models with different patches on one split")
    seed: int = 0
    threads: int | None = Field(None, gt=0)
    device: Annotated[str, AfterValidator(device_name)] = Field("auto", description=DEVICE_HELP)

    @model_validator(mode="after")
    def _one_source(self) -> DataOptions:
        if (self.dataset is None) == (not self.scenes):
            raise ValueError("give either a catalog dataset or scenes")
        if self.labels and len(self.labels) != len(self.scenes):
            raise ValueError("give one labels file per scene")
        return self


class TrainConfig(DataOptions):
    """Everything a training run depends on; unset recipe fields take the model's defaults."""

    model: str = "cnn3d"
    class_field: str | None = None
    name_field: str | None = None
    split: Literal["random", "spatial", "tiles"] = "spatial"
    train_fraction: float = Field(0.5, gt=0, lt=1)
    patch_size: int | None = Field(None, gt=0)
    pca: int | None = Field(None, ge=0, description="0 = no PCA")
    epochs: int | None = Field(None, gt=0)
    lr: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    label_smoothing: float = Field(0.05, ge=0, lt=1)
    warmup_epochs: int = Field(3, ge=0)
    balanced: bool = False
    patience: int = Field(15, gt=0)
    keep: Literal["best", "last"] = Field("best", description="weights kept: best on "
                                          "validation (early stopping), or the last epoch")
    max_minutes: float | None = Field(None, gt=0, description="training-time budget: stop "
                                      "after this many minutes")
    context_dropout: float = Field(0.0, ge=0, le=1, description="share of training patches "
                                   "whose neighbours are partly overwritten by the centre pixel")
    brightness: float = Field(0.0, ge=0, lt=1, description="each training patch scaled by a "
                              "random factor in 1 ± this (a brighter or darker surface of the "
                              "same class); 0 = off")
    mixup: float = Field(0.0, ge=0, description="training patches mixed in pairs, with their "
                         "labels, in shares drawn from Beta(mixup, mixup); 0 = off")
    refit: bool | None = Field(None, description="train the final model on training + "
                               "validation pixels once the choices are made on validation; "
                               "default: yes for classical models, no for neural ones")
    ema: float = Field(0.0, ge=0, lt=1, description="decay of an exponential moving average of "
                       "the weights, which validation judges and the bundle keeps; 0 = off")
    init_seed: int | None = Field(None, ge=0, description="seed of the model's own randomness "
                                  "(initial weights, training order, augmentation, dropout; a "
                                  "random forest's trees); default: seed. The split and PCA "
                                  "follow seed, so varying this alone measures what "
                                  "initialisation changes on a fixed split")
    members: int = Field(1, ge=1, description="a deep ensemble: this many networks trained on "
                         "the same pixels from different initial weights (member i: init seed "
                         "+ 1000 i), their class probabilities averaged; with a refit the "
                         "first chooses the epochs for all; a time budget is shared")
    init: str | None = Field(None, description="bundle or pretrained encoder to start from")
    lora: bool = Field(False, description="train only LoRA adapters and the head")
    lora_rank: int = Field(8, gt=0)
    lora_alpha: float | None = Field(None, gt=0, description="default: 2 × rank")
    lora_cycles: int = Field(0, ge=0, description="> 0: cyclical LoRA-strength schedule")
    lora_min_strength: float = Field(0.25, ge=0, le=1)
    smooth: int = Field(0, ge=0, description="radius of the edge-preserving smoothing (guided "
                        "filter) of the class probabilities, which the bundle applies to every "
                        "map and the test metrics include; 0 = off")
    smooth_eps: float = Field(DEFAULT_EPS, gt=0, description="the guided filter's ε: guide "
                              "steps above about √ε count as edges")
    smooth_guide: int = Field(DEFAULT_GUIDE, ge=1, description="principal components in the "
                              "guided filter's guide image (3: colour, 1: grey)")

    @property
    def smoothing(self) -> Smoothing | None:
        return (Smoothing(radius=self.smooth, eps=self.smooth_eps, guide=self.smooth_guide)
                if self.smooth else None)

    @model_validator(mode="after")
    def _sources(self) -> TrainConfig:
        if self.lora and self.init is None:
            raise ValueError("LoRA fine-tunes existing weights: give init (a bundle or a "
                             "pretrained encoder)")
        if self.lora_cycles and not self.lora:
            raise ValueError("the cyclical schedule modulates LoRA: it needs lora")
        if self.scenes and len(self.labels) != len(self.scenes):
            raise ValueError("give one labels file per scene")
        if self.split == "tiles" and len(self.scenes) < 2:
            raise ValueError("the 'tiles' split needs at least two scenes")
        return self

    def resolved(self) -> TrainConfig:
        """Fill recipe fields from the model's registered defaults, and the model's own seed
        from the split's."""
        defaults = get_entry(self.model).defaults
        fill = {k: defaults.get(k) for k in ("patch_size", "pca", "epochs", "lr", "batch_size")
                if getattr(self, k) is None}
        fill = {k: v for k, v in fill.items() if v is not None}
        if self.init_seed is None:
            fill["init_seed"] = self.seed
        out = self.model_copy(update=fill)
        if out.patch_size is None:
            out = out.model_copy(update={"patch_size": 1})
        if out.patch_size % 2 == 0:
            raise InputError(None, f"patch size {out.patch_size} is even",
                             "use an odd patch size so patches have a centre pixel")
        return out

    def split_spec(self) -> SplitSpec:
        protocol = "random" if self.split == "random" else "spatial"
        return SplitSpec(protocol=protocol, seed=self.seed, train_ratio=self.train_ratio,
                         per_class=self.per_class, val_fraction=self.val_fraction,
                         train_fraction=self.train_fraction, block_size=self.block_size,
                         patch_size=max(self.buffer_patch or 1, self.patch_size or 1)
                         + 2 * (self.smoothing.margin if self.smoothing else 0))
