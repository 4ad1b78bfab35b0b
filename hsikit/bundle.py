"""Model bundles: one ``.safetensors`` file — weights and preprocessing arrays as tensors, and a
JSON description in the header — holding everything ``hsikit classify`` needs.

Loading parses the header with ``json`` and validates it with pydantic, reads arrays with
safetensors (which never executes anything), builds the architecture from the registry, and loads
the weights strictly: a wrong name or shape is refused with one sentence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hsikit import __version__
from hsikit.classes import ClassTable
from hsikit.errors import InputError, validation_sentence
from hsikit.preprocess import Preprocessor
from hsikit.smoothing import Smoothing
from hsikit.writers.atomic import claim_input, staged_output

FORMAT = "hsikit-bundle"
PRETRAINED_FORMAT = "hsikit-pretrained"  # `hsikit pretrain`: encoder weights, no classifier
FORMAT_VERSION = 3  # 2: smoothing records its guide's components; 3: ensemble members
HEADER_KEY = "hsikit"


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    family: Literal["torch", "classical"]
    config: dict[str, Any] = Field(default_factory=dict)
    members: int = Field(1, ge=1, description="networks of this architecture whose class "
                         "probabilities are averaged (a deep ensemble); 1: a single model")

    @model_validator(mode="after")
    def _members_are_networks(self) -> ModelSpec:
        if self.members > 1 and self.family != "torch":
            raise ValueError("only neural models form ensembles")
        return self

    def build(self, in_bands: int, num_classes: int) -> Any:
        """The untrained architecture: one model, or the ensemble of ``members`` of them."""
        from hsikit.models import create_model
        from hsikit.models.ensemble import MeanEnsemble

        models = [create_model(self.name, in_bands, num_classes, **self.config)
                  for _ in range(self.members)]
        return models[0] if self.members == 1 else MeanEnsemble(models)


class BundleMeta(BaseModel):
    """The JSON header. ``extra='forbid'`` so a tampered or foreign header is refused."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["hsikit-bundle"]
    format_version: int
    hsikit_version: str
    model: ModelSpec
    in_bands: int = Field(gt=0)
    num_classes: int = Field(gt=1)
    patch_size: int = Field(gt=0)
    band_wavelengths: list[float | None]
    band_names: list[str]
    pca: int | None = None
    classes: list[dict[str, Any]]
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    smoothing: Smoothing | None = None  # applied to the probabilities of every map

    @model_validator(mode="before")
    @classmethod
    def _from_format_1(cls, data: Any) -> Any:
        """Format 1 smoothed under the first principal component alone: keep its maps as
        they were when it is read today (the guide's default is now the first three)."""
        if isinstance(data, dict) and data.get("format_version") == 1 and data.get("smoothing"):
            data = {**data, "smoothing": {"guide": 1, **data["smoothing"]}}
        return data


class PretrainedMeta(BaseModel):
    """JSON header of a pretrained-encoder file written by ``hsikit pretrain``."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["hsikit-pretrained"]
    format_version: int
    hsikit_version: str
    model: str
    objective: str
    config: dict
    band_wavelengths: list[float | None]
    patch_size: int
    training: dict


@dataclass
class Bundle:
    meta: BundleMeta
    model: Any
    preprocessor: Preprocessor

    @property
    def classes(self) -> ClassTable:
        return ClassTable.from_records(self.meta.classes)

    @property
    def parameter_count(self) -> int:
        """Learnt values: a network's parameters (not its buffers), a classical model's arrays."""
        if self.meta.model.family == "classical":
            return self.model.parameter_count()
        return int(sum(p.numel() for p in self.model.parameters()))

    def to(self, device: str) -> Bundle:
        """This bundle predicting on ``device`` (a resolved torch device; classical models
        always run on the CPU). Patches move there a batch at a time, probabilities come back."""
        if self.meta.model.family == "torch":
            self.model.to(device)
        return self

    def with_smoothing(self, smoothing: Smoothing | None) -> Bundle:
        """This bundle applying other smoothing (None: none) to its maps."""
        return replace(self, meta=self.meta.model_copy(update={"smoothing": smoothing}))

    @property
    def band_agnostic(self) -> bool:
        """Models that embed band wavelengths run on any subset of their bands."""
        return bool(getattr(self.model, "uses_wavelengths", False))

    def for_scene(self, scene: Any) -> tuple[Bundle, np.ndarray]:
        """This bundle adapted to ``scene``'s bands, and the scene band indices to read.

        Other models need every training band (refused with the missing ones listed);
        band-agnostic ones run on the training bands the scene has, with their wavelengths.
        """
        if not self.band_agnostic:
            return self, self.preprocessor.match_bands(scene)
        preprocessor, indices = self.preprocessor.subset(scene)
        if len(indices) == len(self.preprocessor.band_names):
            return self, indices
        return Bundle(self.meta, self.model, preprocessor), indices

    def predict_proba(self, patches: np.ndarray) -> np.ndarray:
        """``[B, C, P, P]`` preprocessed patches → ``[B, K]`` class probabilities."""
        if self.meta.model.family == "classical":
            return self.model.predict_proba(patches)
        import torch

        device = next(self.model.parameters()).device
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(patches)).to(device)
            if self.band_agnostic:
                wavelengths = torch.as_tensor(self.preprocessor.band_wavelengths,
                                              dtype=torch.float32)
                logits = self.model(x, wavelengths)
            else:
                logits = self.model(x)
            return torch.softmax(logits, dim=1).cpu().numpy()


def model_arrays(model: Any, family: str) -> dict[str, np.ndarray]:
    if family == "classical":
        return model.state_dict()
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def save_bundle(path: str | Path, meta: BundleMeta, model: Any, preprocessor: Preprocessor
                ) -> Path:
    from safetensors.numpy import save_file

    tensors = {f"model.{k}": np.ascontiguousarray(v)
               for k, v in model_arrays(model, meta.model.family).items()}
    tensors.update({f"preprocess.{k}": np.ascontiguousarray(v)
                    for k, v in preprocessor.state().items()})
    path = Path(path)
    with staged_output(path) as stage:
        save_file(tensors, str(stage / path.name),
                  metadata={HEADER_KEY: meta.model_dump_json()})
    return path


def new_meta(**fields: Any) -> BundleMeta:
    return BundleMeta(format=FORMAT, format_version=FORMAT_VERSION, hsikit_version=__version__,
                      **fields)


def read_safetensors(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The parsed JSON description and the arrays of an hsikit safetensors file (bundle or
    pretrained encoder); safetensors and json never execute anything from the file."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise InputError(path, "no such model file", "check the path")
    claim_input(path, "model file")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            header = (handle.metadata() or {}).get(HEADER_KEY)
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(path, f"not a safetensors bundle ({str(exc).splitlines()[0]})",
                         "use a bundle written by 'hsikit train'") from exc
    if header is None:
        raise InputError(path, "the safetensors file has no hsikit description",
                         "use a bundle written by 'hsikit train'")
    try:
        parsed = json.loads(header)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"the bundle description is invalid ({exc})",
                         "the file is damaged or was edited") from exc
    if not isinstance(parsed, dict):
        raise InputError(path, "the bundle description is not a JSON object",
                         "the file is damaged or was edited")
    return parsed, arrays


def read_description(path: Path) -> tuple[BundleMeta | PretrainedMeta, dict[str, np.ndarray]]:
    """The validated description of a bundle or pretrained-encoder file, and its arrays."""
    header, arrays = read_safetensors(path)
    pretrained = header.get("format") == PRETRAINED_FORMAT
    version = header.get("format_version")
    if not pretrained and isinstance(version, int) and version > FORMAT_VERSION:
        raise InputError(path, f"bundle format {version} is newer than this hsikit reads "
                         f"({FORMAT_VERSION})", "upgrade hsikit")
    try:
        return (PretrainedMeta if pretrained else BundleMeta).model_validate(header), arrays
    except ValidationError as exc:
        kind = "pretrained-encoder" if pretrained else "bundle"
        raise InputError(path, f"the {kind} description is invalid ({validation_sentence(exc)})",
                         "the file is damaged or was edited") from exc


def load_bundle(path: str | Path) -> Bundle:
    from hsikit.models import get_entry

    path = Path(path)
    meta, arrays = read_description(path)
    if isinstance(meta, PretrainedMeta):
        raise InputError(path, "this is a pretrained encoder (from 'hsikit pretrain'), not a "
                         "trained classifier", "fine-tune it on labelled pixels first "
                         f"('hsikit train … --init {path.name}') and use the bundle that writes")
    entry = get_entry(meta.model.name)
    model = meta.model.build(meta.in_bands, meta.num_classes)
    weights = {k.removeprefix("model."): v for k, v in arrays.items() if k.startswith("model.")}
    _load_weights(path, model, meta.model.name, entry.family, weights)
    prep = {k.removeprefix("preprocess."): v for k, v in arrays.items()
            if k.startswith("preprocess.")}
    try:
        preprocessor = Preprocessor.from_state(prep, meta.band_names)
    except KeyError as exc:
        raise InputError(path, f"the bundle lacks preprocessing array {exc}",
                         "the file is damaged") from exc
    if preprocessor.out_channels != meta.in_bands or preprocessor.mean.size != len(meta.band_names):
        raise InputError(path, "the preprocessing arrays do not match the model's input bands",
                         "the file is damaged or was edited")
    return Bundle(meta, model, preprocessor)


def _load_weights(path: Path, model: Any, name: str, family: str,
                  weights: dict[str, np.ndarray]) -> None:
    try:
        if family == "classical":
            model.load_state_dict(weights)
            return
        import torch

        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()},
                              strict=True)
        model.eval()
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()
        reason = first[1].strip() if len(first) > 1 else first[0]
        raise InputError(path, f"the weights do not fit the '{name}' architecture "
                         f"({reason})", "the file is damaged or was edited") from exc
