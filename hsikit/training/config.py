"""What a training run depends on, declared once: where pixels come from (:class:`DataOptions`,
shared with pretraining), the model, the recipe (:class:`RecipeOptions`, a section of the
config that training takes whole) — the validated :class:`TrainConfig`, saved in every report
and bundle. The CLI's options, their help, defaults and panels are made from these fields, and
benchmark rows and ``hsikit train --config`` files are validated by them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from hsikit.data.splits import SplitSpec
from hsikit.devices import DEVICE_HELP, device_name
from hsikit.errors import InputError, validation_sentence
from hsikit.models import get_entry
from hsikit.smoothing import DEFAULT_EPS, DEFAULT_GUIDE, Smoothing


def option(group: str, default: Any = None, **kwargs: Any) -> Any:
    """A config field with its CLI help panel (``group``)."""
    return Field(default, json_schema_extra={"group": group}, **kwargs)


DATA, MODEL, RECIPE, TUNE, SMOOTH, RUN = (
    "Data and split",
    "Model",
    "Recipe",
    "Fine-tuning",
    "Smoothing",
    "Run",
)


LABELS_RULE = "give one labels file per scene, or one for all scenes"


def labels_per_scene(scenes: list[str], labels: list[str]) -> list[str] | None:
    """The labels file of each scene: one given per scene, or one given once for them all (a
    vector file covering several tiles need not be repeated); None when the counts fit
    neither."""
    if len(labels) == len(scenes):
        return list(labels)
    return list(labels) * len(scenes) if len(labels) == 1 and scenes else None


class DataOptions(BaseModel):
    """Where pixels come from and how they are split: shared by training and pretraining, so
    both build the same split from the same options."""

    model_config = ConfigDict(extra="forbid")
    dataset: str | None = option(DATA, description="a catalog dataset instead of scenes")
    scenes: list[str] = option(DATA, [], description="scene files")
    labels: list[str] = option(
        DATA,
        [],
        description="labels (raster or vector): one file per scene, in order, or one for all",
    )
    train_ratio: float = option(
        DATA,
        0.1,
        gt=0,
        lt=1,
        description="random split: share of each class's pixels used for training",
    )
    per_class: int | None = option(
        DATA, gt=0, description="random split: pixels per class instead of a share"
    )
    val_fraction: float = option(
        DATA, 0.2, ge=0, lt=1, description="share of the training pixels kept for validation"
    )
    block_size: int = option(DATA, 16, gt=0, description="spatial split: block side (px)")
    buffer_patch: int | None = option(
        DATA,
        gt=0,
        description="spatial split: buffer as for "
        "this patch size (default: the model's), to compare "
        "models with different patches on one split",
    )
    seed: int = option(
        RUN, 0, description="seed of the split, PCA and (unless --init-seed) the model"
    )
    threads: int | None = option(RUN, gt=0, description="CPU threads for torch (default: torch's)")
    device: Annotated[str, AfterValidator(device_name)] = option(
        RUN, "auto", description=f"torch device: {DEVICE_HELP}"
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataOptions:
        if (self.dataset is None) == (not self.scenes):
            raise ValueError("give either a catalog dataset or scenes")
        if self.labels:
            paired = labels_per_scene(self.scenes, self.labels)
            if paired is None:
                raise ValueError(LABELS_RULE)
            self.labels = paired
        return self


class RecipeOptions(BaseModel):
    """How a network is trained. ``None`` for epochs, learning rate and batch size: the
    model's registered recipe."""

    model_config = ConfigDict(extra="forbid")
    epochs: int | None = option(
        RECIPE, gt=0, description="epochs of the schedule (default: the model's)"
    )
    lr: float | None = option(
        RECIPE, gt=0, description="peak learning rate of AdamW (default: the model's)"
    )
    batch_size: int | None = option(
        RECIPE, gt=0, description="patches per training step (default: the model's)"
    )
    weight_decay: float = option(RECIPE, 1e-2, ge=0, description="AdamW weight decay")
    label_smoothing: float = option(
        RECIPE, 0.05, ge=0, lt=1, description="label smoothing of the cross-entropy"
    )
    warmup_epochs: int = option(
        RECIPE,
        3,
        ge=0,
        description="epochs of linear learning-rate warm-up before the cosine decay",
    )
    balanced: bool = option(
        RECIPE, False, description="class-balanced sampling of training patches"
    )
    patience: int = option(
        RECIPE,
        15,
        gt=0,
        description="epochs without a better validation accuracy before early stopping",
    )
    keep: Literal["best", "last"] = option(
        RECIPE,
        "best",
        description="weights kept: 'best' "
        "on validation (early stopping) or 'last' (the "
        "whole schedule)",
    )
    max_minutes: float | None = option(
        RECIPE, gt=0, description="training-time budget: stop after this many minutes"
    )
    context_dropout: float = option(
        RECIPE,
        0.0,
        ge=0,
        le=1,
        description="share of training "
        "patches whose neighbour pixels are partly overwritten by "
        "the centre pixel; 0 = off",
    )
    brightness: float = option(
        RECIPE,
        0.0,
        ge=0,
        lt=1,
        description="scale each training patch "
        "by a random factor in 1 ± this (a brighter or darker surface of "
        "the same class); 0 = off",
    )
    mixup: float = option(
        RECIPE,
        0.0,
        ge=0,
        description="mix training patches in pairs, "
        "labels alike, in shares drawn from Beta(this, this); 0 = off",
    )
    refit: bool | None = option(
        RECIPE,
        description="train the final model on training + "
        "validation pixels once the choices are made on validation "
        "(default: classical models yes, neural no)",
    )
    ema: float = option(
        RECIPE,
        0.0,
        ge=0,
        lt=1,
        description="decay of an exponential moving "
        "average of the weights, which validation judges and the bundle keeps; "
        "0 = off",
    )
    lora_cycles: int = option(
        TUNE,
        0,
        ge=0,
        description="cosine restarts of a cyclical LoRA-strength schedule (needs --lora); 0 = off",
    )
    lora_min_strength: float = option(
        TUNE, 0.25, ge=0, le=1, description="LoRA strength at the start of each cycle"
    )


RECIPE_FIELDS = frozenset(RecipeOptions.model_fields)
DEFAULT_MODEL = "cnn3d"


class TrainConfig(DataOptions):
    """Everything a training run depends on; unset fields take the model's defaults.

    Recipe options may be given at the top level (as the CLI, benchmark rows and older bundles
    give them) or in ``recipe``; they are kept in ``recipe``."""

    model: str | None = option(
        MODEL,
        description="model name (see 'hsikit models'); default: "
        "the --init file's model, else cnn3d",
    )
    class_field: str | None = option(DATA, description="class field of vector labels")
    layer: str | None = option(
        DATA, description="the labels layer of a vector file that holds several"
    )
    class_table: str | None = option(
        DATA,
        description="CSV (value,name,colour) or JSON naming the classes of raster labels",
    )
    name_field: str | None = option(DATA, description="class-name field for numeric classes")
    strict: bool = option(
        DATA,
        False,
        description="refuse a scene on which no labelled pixel falls, instead of skipping it "
        "with a note",
    )
    split: Literal["random", "spatial", "tiles"] = option(
        DATA, "spatial", description="random (optimistic), spatial (blocks) or tiles (whole scenes)"
    )
    train_fraction: float = option(
        DATA,
        0.5,
        gt=0,
        lt=1,
        description="spatial and tiles splits: share of blocks or scenes that train",
    )
    patch_size: int | None = option(
        MODEL, gt=0, description="patch side, odd (default: the model's)"
    )
    pca: int | None = option(
        MODEL, ge=0, description="PCA components; 0 = none (default: the model's)"
    )
    init_seed: int | None = option(
        MODEL,
        ge=0,
        description="seed of the model's own "
        "randomness (initial weights, batch order, dropout; default: "
        "--seed): vary it on a fixed split to see what "
        "initialisation alone changes",
    )
    members: int = option(
        MODEL,
        1,
        ge=1,
        description="a deep ensemble: train this many "
        "networks from different initial weights and average their class "
        "probabilities (a --max-minutes budget is shared)",
    )
    devices: int = option(
        RUN,
        1,
        ge=1,
        description="processes that train together (Lightning DDP: CPU processes, or GPUs "
        "0…N-1 with --device cuda), sharing each batch",
    )
    recipe: RecipeOptions = Field(default_factory=RecipeOptions)
    init: str | None = option(
        TUNE, description="start from this bundle or pretrained encoder (hsikit pretrain)"
    )
    lora: bool = option(
        TUNE,
        False,
        description="LoRA fine-tuning: train only low-rank adapters and the head (needs --init)",
    )
    lora_rank: int = option(TUNE, 8, gt=0, description="LoRA rank")
    lora_alpha: float | None = option(TUNE, gt=0, description="LoRA scale (default: 2 × rank)")
    smooth: int = option(
        SMOOTH,
        0,
        ge=0,
        description="radius of the edge-preserving smoothing "
        "(guided filter) of the class probabilities, applied to every map of "
        "the bundle and to its test metrics; 0 = off",
    )
    smooth_eps: float = option(
        SMOOTH,
        DEFAULT_EPS,
        gt=0,
        description="the guided filter's ε: guide steps above about √ε count as field edges",
    )
    smooth_guide: int = option(
        SMOOTH,
        DEFAULT_GUIDE,
        ge=1,
        description="principal components "
        "in the guided filter's guide image: 3 a colour guide, 1 grey",
    )

    @model_validator(mode="before")
    @classmethod
    def _recipe_section(cls, data: Any) -> Any:
        """Top-level recipe options go into ``recipe`` (the section wins nothing: giving the
        same option in both places is refused)."""
        if not isinstance(data, dict):
            return data
        flat = {k: v for k, v in data.items() if k in RECIPE_FIELDS}
        if not flat:
            return data
        section = dict(data.get("recipe") or {})
        both = sorted(set(flat) & set(section))
        if both:
            raise ValueError(f"{', '.join(both)} given both at the top level and in recipe")
        rest = {k: v for k, v in data.items() if k not in RECIPE_FIELDS}
        return {**rest, "recipe": {**section, **flat}}

    @property
    def smoothing(self) -> Smoothing | None:
        return (
            Smoothing(radius=self.smooth, eps=self.smooth_eps, guide=self.smooth_guide)
            if self.smooth
            else None
        )

    @model_validator(mode="after")
    def _sources(self) -> TrainConfig:
        if self.lora and self.init is None:
            raise ValueError(
                "LoRA fine-tunes existing weights: give init (a bundle or a pretrained encoder)"
            )
        if self.recipe.lora_cycles and not self.lora:
            raise ValueError("the cyclical schedule modulates LoRA: it needs lora")
        if self.scenes and not self.labels:
            raise ValueError(LABELS_RULE)
        if self.split == "tiles" and len(self.scenes) < 2:
            raise ValueError("the 'tiles' split needs at least two scenes")
        return self

    def resolved(self) -> ResolvedTrainConfig:
        """Fill the model (the --init file's, else cnn3d), architecture and recipe fields from
        the model's registered defaults, and the model's own seed from the split's."""
        from hsikit.training.finetune import initial_model_name

        model = self.model or (initial_model_name(self.init) if self.init else DEFAULT_MODEL)
        entry = get_entry(model)
        fill: dict[str, Any] = {"model": model}
        fill |= {
            k: v
            for k, v in entry.architecture.items()
            if k in ("patch_size", "pca") and getattr(self, k) is None and v is not None
        }
        recipe = {
            k: v
            for k, v in entry.recipe.items()
            if getattr(self.recipe, k) is None and v is not None
        }
        if recipe:
            fill["recipe"] = self.recipe.model_copy(update=recipe)
        if self.init_seed is None:
            fill["init_seed"] = self.seed
        out = self.model_copy(update=fill)
        patch_size = out.patch_size or 1
        if patch_size % 2 == 0:
            raise InputError(
                None,
                f"patch size {patch_size} is even",
                "use an odd patch size so patches have a centre pixel",
            )
        return ResolvedTrainConfig.model_validate({**out.model_dump(), "patch_size": patch_size})

    def split_spec(self) -> SplitSpec:
        protocol: Literal["random", "spatial"] = "random" if self.split == "random" else "spatial"
        return SplitSpec(
            protocol=protocol,
            seed=self.seed,
            train_ratio=self.train_ratio,
            per_class=self.per_class,
            val_fraction=self.val_fraction,
            train_fraction=self.train_fraction,
            block_size=self.block_size,
            patch_size=max(self.buffer_patch or 1, self.patch_size or 1)
            + 2 * (self.smoothing.margin if self.smoothing else 0),
        )


class ResolvedTrainConfig(TrainConfig):
    """A config with the model's defaults filled in (:meth:`TrainConfig.resolved`): what
    training runs on and what bundles record."""

    model: str
    patch_size: int
    init_seed: int

    @model_validator(mode="before")
    @classmethod
    def _own_seed(cls, data: Any) -> Any:
        """Bundles from before ``init_seed`` existed trained from the split's seed."""
        if isinstance(data, dict) and data.get("init_seed") is None:
            return {**data, "init_seed": data.get("seed", 0)}
        return data


def train_config(given: dict[str, Any], file: str | Path | None = None) -> TrainConfig:
    """The config of a training run: ``file`` (YAML, the fields of :class:`TrainConfig`, as in a
    benchmark row's options) with the options ``given`` on top; the first problem is one
    sentence naming the file, or the options."""
    from pydantic import ValidationError

    from hsikit.documents import read_mapping

    hint = "see 'hsikit train --help' for the options and their names"
    document = read_mapping(file, "training config", hint) if file is not None else {}
    section = document.get("recipe") or {}
    if not isinstance(section, dict):
        raise InputError(
            file, "invalid training options: 'recipe' must hold 'name: value' lines", hint
        )
    recipe = {**section, **{k: v for k, v in {**document, **given}.items() if k in RECIPE_FIELDS}}
    rest = {
        k: v for k, v in {**document, **given}.items() if k != "recipe" and k not in RECIPE_FIELDS
    }
    try:
        return TrainConfig.model_validate({**rest, "recipe": recipe})
    except ValidationError as exc:
        raise InputError(
            file, f"invalid training options: {validation_sentence(exc)}", hint
        ) from exc
