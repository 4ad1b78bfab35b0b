"""Model bundles: one ``.safetensors`` file — weights and preprocessing arrays as tensors, and a
JSON description in the header — holding everything ``hsikit classify`` needs.

Loading parses the header with ``json`` and validates it with pydantic, reads arrays with
safetensors (which never executes anything), builds the architecture from the registry, and loads
the weights strictly: a wrong name or shape is refused with one sentence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hsikit import __version__
from hsikit.classes import ClassTable
from hsikit.errors import InputError, validation_sentence
from hsikit.inputs import claim_input
from hsikit.preprocess import Preprocessor
from hsikit.smoothing import Smoothing
from hsikit.writers.atomic import staged_output

#: ``--precision`` → the torch dtype a network's forward pass autocasts to (None: fp32 as is).
PRECISIONS: dict[str, str | None] = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}
FORMAT: Literal["hsikit-bundle"] = "hsikit-bundle"
#: ``hsikit pretrain``'s files: encoder weights, no classifier
PRETRAINED_FORMAT: Literal["hsikit-pretrained"] = "hsikit-pretrained"
#: 2: smoothing records its guide's components; 3: ensemble members; 4: the model's task
FORMAT_VERSION = 4
HEADER_KEY = "hsikit"
BUNDLE_SUFFIXES = (".safetensors",)
MAX_PATCH = 255  # pixels per patch side: far above any model's, far below a memory bomb


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    family: Literal["torch", "classical"]
    config: dict[str, Any] = Field(default_factory=dict)
    members: int = Field(
        1,
        ge=1,
        description="networks of this architecture whose class "
        "probabilities are averaged (a deep ensemble); 1: a single model",
    )

    @model_validator(mode="after")
    def _members_are_networks(self) -> ModelSpec:
        if self.members > 1 and self.family != "torch":
            raise ValueError("only neural models form ensembles")
        return self

    def build(self, in_bands: int, num_classes: int | None = None) -> Any:
        """The untrained architecture: one model, or the ensemble of ``members`` of them."""
        from hsikit.models import create_model
        from hsikit.models.ensemble import MeanEnsemble

        models = [
            create_model(self.name, in_bands, num_classes, **self.config)
            for _ in range(self.members)
        ]
        return models[0] if self.members == 1 else MeanEnsemble(models)


class ClassRecord(BaseModel):
    """One class of the bundle's class table."""

    model_config = ConfigDict(extra="forbid")
    value: int = Field(ge=1, le=65535)
    name: str = Field(min_length=1)
    colour: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")


class BundleMeta(BaseModel):
    """The JSON header. ``extra='forbid'`` so a tampered or foreign header is refused; the
    class table, band lists and sizes are checked against each other before anything is built
    from them."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["hsikit-bundle"]
    format_version: int
    hsikit_version: str
    task: Literal["classification"] = "classification"  # older formats: all classifiers
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

    @model_validator(mode="after")
    def _consistent(self) -> BundleMeta:
        records = [ClassRecord.model_validate(r) for r in self.classes]
        if len({r.value for r in records}) != len(records):
            raise ValueError("class values must be unique")
        if len(records) != self.num_classes:
            raise ValueError(
                f"num_classes is {self.num_classes} but {len(records)} classes are listed"
            )
        if len(self.band_names) != len(self.band_wavelengths):
            raise ValueError("band_names and band_wavelengths differ in length")
        if any(w is not None and not math.isfinite(w) for w in self.band_wavelengths):
            raise ValueError("band_wavelengths must be finite numbers or null")
        if self.patch_size % 2 == 0 or self.patch_size > MAX_PATCH:
            raise ValueError(f"patch_size must be odd and at most {MAX_PATCH}")
        return self

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
    #: The file it was loaded from (None for a bundle made in this process).
    path: Path | None = None
    #: The floating-point precision of a network's forward pass (:data:`PRECISIONS`).
    precision: str = "fp32"

    def sha256(self) -> str | None:
        """Checksum of the bundle file, for provenance (None when not loaded from a file)."""
        from hsikit.writers.provenance import sha256_of

        return None if self.path is None else sha256_of(self.path)

    @property
    def classes(self) -> ClassTable:
        return ClassTable.from_records(self.meta.classes)

    @property
    def parameter_count(self) -> int:
        """Learnt values: a network's parameters (not its buffers), a classical model's arrays."""
        if self.meta.model.family == "classical":
            return self.model.parameter_count()
        return int(sum(p.numel() for p in self.model.parameters()))

    def to(self, device: str, precision: str = "fp32") -> Bundle:
        """This bundle predicting on ``device`` (a resolved torch device; classical models
        always run on the CPU) at ``precision``: fp16 / bf16 run the network's forward pass
        under torch's autocast (weights stay fp32; probabilities come back as fp32). Patches
        move to the device a batch at a time, probabilities come back."""
        if precision not in PRECISIONS:
            raise InputError(
                None,
                f"--precision {precision} is not a precision",
                f"use one of {', '.join(PRECISIONS)}",
            )
        if self.meta.model.family != "torch" and precision != "fp32":
            raise InputError(
                None,
                f"--precision {precision} applies to neural networks, and "
                f"{self.meta.model.name} is a scikit-learn model",
                "drop --precision",
            )
        if self.meta.model.family == "torch":
            self.model.to(device)
        self.precision = precision
        return self

    @contextmanager
    def _forward(self) -> Iterator[Any]:
        """Inference on the network's device at the bundle's precision; yields the device."""
        import torch

        device = next(self.model.parameters()).device
        dtype = PRECISIONS[self.precision]
        with torch.inference_mode():
            if dtype is None:
                yield device
                return
            with torch.autocast(device.type, dtype=getattr(torch, dtype)):
                yield device

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
        return replace(self, preprocessor=preprocessor), indices

    @property
    def maps_densely(self) -> bool:
        """Whether the network maps a whole window at once (shared computation between
        neighbouring patches), with the same probabilities as patch by patch."""
        return self.meta.model.family == "torch" and bool(getattr(self.model, "dense", False))

    @property
    def shares_pixels(self) -> bool:
        """Whether the network computes its per-pixel part once per pixel of a window and
        gathers it into patches (``pixel_features`` / ``patch_logits``)."""
        return (
            self.meta.model.family == "torch"
            and hasattr(self.model, "pixel_features")
            and not self.band_agnostic
        )

    def pixel_features(self, block: np.ndarray) -> np.ndarray:
        """``[F, h, w]`` per-pixel features of a preprocessed ``[C, h, w]`` block."""
        import torch

        with self._forward() as device:
            x = torch.from_numpy(np.ascontiguousarray(block[None])).to(device)
            return self.model.pixel_features(x)[0].float().cpu().numpy()

    def dense_proba(self, block: np.ndarray, shape: tuple[int, int], pixels: int) -> np.ndarray:
        """``[K, h, w]`` class probabilities of every core pixel of a halo-padded ``[C, h + P - 1,
        w + P - 1]`` block (see :meth:`maps_densely`), ``pixels`` output pixels at a time."""
        import torch

        height, width = shape
        reach = self.meta.patch_size - 1
        rows = max(1, pixels // max(width, 1))
        out = np.empty((len(self.meta.classes), height, width), np.float32)
        with self._forward() as device:
            for top in range(0, height, rows):
                bottom = min(height, top + rows)
                strip = np.ascontiguousarray(block[None, :, top : bottom + reach])
                logits = self.model.dense_logits(torch.from_numpy(strip).to(device))
                scores = torch.softmax(logits[0, :, :, :width].float(), 0)
                out[:, top:bottom] = scores.cpu().numpy()
        return out

    def predict_proba(self, patches: np.ndarray, features: bool = False) -> np.ndarray:
        """``[B, C, P, P]`` preprocessed patches → ``[B, K]`` class probabilities; with
        ``features``, patches of :meth:`pixel_features` instead."""
        if self.meta.model.family == "classical":
            return self.model.predict_proba(patches)
        import torch

        with self._forward() as device:
            x = torch.from_numpy(np.ascontiguousarray(patches)).to(device)
            if self.band_agnostic:
                wavelengths = torch.as_tensor(
                    self.preprocessor.band_wavelengths, dtype=torch.float32
                )
                logits = self.model(x, wavelengths)
            elif features:
                logits = self.model.patch_logits(x)
            else:
                logits = self.model(x)
            return torch.softmax(logits.float(), dim=1).cpu().numpy()


def model_arrays(model: Any, family: str) -> dict[str, np.ndarray]:
    if family == "classical":
        return model.state_dict()
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def save_bundle(path: str | Path, meta: BundleMeta, model: Any, preprocessor: Preprocessor) -> Path:
    from safetensors.numpy import save_file

    tensors = {
        f"model.{k}": np.ascontiguousarray(v)
        for k, v in model_arrays(model, meta.model.family).items()
    }
    tensors.update(
        {f"preprocess.{k}": np.ascontiguousarray(v) for k, v in preprocessor.state().items()}
    )
    path = Path(path)
    with staged_output(path, suffixes=BUNDLE_SUFFIXES, what="a bundle") as stage:
        # one metadata key (safetensors orders several at random) and no time stamp: the same
        # training gives the same bytes; the description records the hsikit version
        save_file(tensors, str(stage / path.name), metadata={HEADER_KEY: meta.model_dump_json()})
    return path


def new_meta(**fields: Any) -> BundleMeta:
    return BundleMeta(
        format=FORMAT, format_version=FORMAT_VERSION, hsikit_version=__version__, **fields
    )


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
        raise InputError(
            path,
            f"not a safetensors bundle ({str(exc).splitlines()[0]})",
            "use a bundle written by 'hsikit train'",
        ) from exc
    if header is None:
        raise InputError(
            path,
            "the safetensors file has no hsikit description",
            "use a bundle written by 'hsikit train'",
        )
    try:
        parsed = json.loads(header)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InputError(
            path,
            f"the bundle description is invalid ({reason})",
            "the file is damaged or was edited",
        ) from exc
    if not isinstance(parsed, dict):
        raise InputError(
            path, "the bundle description is not a JSON object", "the file is damaged or was edited"
        )
    return parsed, arrays


def read_description(path: Path) -> tuple[BundleMeta | PretrainedMeta, dict[str, np.ndarray]]:
    """The validated description of a bundle or pretrained-encoder file, and its arrays."""
    header, arrays = read_safetensors(path)
    if header.get("task") == "restoration":
        raise InputError(
            path,
            "this is a restoration bundle (it restores cubes), not a classifier",
            "use it with 'hsikit denoise', 'hsikit superres' or 'hsikit restore'",
        )
    pretrained = header.get("format") == PRETRAINED_FORMAT
    version = header.get("format_version")
    if not pretrained and isinstance(version, int) and version > FORMAT_VERSION:
        raise InputError(
            path,
            f"bundle format {version} is newer than this hsikit reads ({FORMAT_VERSION})",
            "upgrade hsikit",
        )
    try:
        return (PretrainedMeta if pretrained else BundleMeta).model_validate(header), arrays
    except RecursionError as exc:
        raise InputError(
            path, "the bundle description is nested too deeply", "the file is damaged or was edited"
        ) from exc
    except ValidationError as exc:
        kind = "pretrained-encoder" if pretrained else "bundle"
        raise InputError(
            path,
            f"the {kind} description is invalid ({validation_sentence(exc)})",
            "the file is damaged or was edited",
        ) from exc


def load_bundle(path: str | Path) -> Bundle:
    """A bundle ready to predict. Nothing is built from the description until it agrees with
    the arrays: preprocessing shapes and values first, then the architecture's parameter shapes
    (from a build on torch's ``meta`` device, which allocates nothing) against the weights."""
    from hsikit.models import get_entry

    path = Path(path)
    meta, arrays = read_description(path)
    if isinstance(meta, PretrainedMeta):
        raise InputError(
            path,
            "this is a pretrained encoder (from 'hsikit pretrain'), not a trained classifier",
            "fine-tune it on labelled pixels first "
            f"('hsikit train … --init {path.name}') and use the bundle that writes",
        )
    try:
        entry = get_entry(meta.model.name)
    except InputError as exc:
        raise InputError(path, f"the bundle's model is {exc.problem}", exc.hint) from exc
    if entry.family != meta.model.family:
        raise InputError(
            path,
            f"the bundle says {meta.model.name} is a {meta.model.family} "
            f"model, but it is {entry.family}",
            "the file is damaged or was edited",
        )
    prep = {
        k.removeprefix("preprocess."): v for k, v in arrays.items() if k.startswith("preprocess.")
    }
    preprocessor = _checked_preprocessor(path, meta, prep)
    weights = {k.removeprefix("model."): v for k, v in arrays.items() if k.startswith("model.")}
    model = _built_model(path, meta, weights)
    return Bundle(meta, model, preprocessor, path=path)


def _damaged(path: Path, problem: str) -> InputError:
    return InputError(path, problem, "the file is damaged or was edited")


def _checked_preprocessor(
    path: Path, meta: BundleMeta, prep: dict[str, np.ndarray]
) -> Preprocessor:
    bands = len(meta.band_names)
    pca = "components" in prep or "pca_mean" in prep
    expected: dict[str, tuple[int, ...]] = {
        "mean": (bands,),
        "std": (bands,),
        "band_wavelengths": (bands,),
    }
    if pca:
        expected.update(components=(meta.in_bands, bands), pca_mean=(bands,))
    elif meta.in_bands != bands:
        raise _damaged(
            path,
            f"the model takes {meta.in_bands} inputs but the bundle lists {bands} bands and no PCA",
        )
    for key, shape in expected.items():
        if key not in prep:
            raise _damaged(path, f"the bundle lacks preprocessing array '{key}'")
        if prep[key].shape != shape:
            raise _damaged(
                path, f"preprocessing array '{key}' has shape {prep[key].shape}, not {shape}"
            )
        values = prep[key].astype("float64")
        finite = np.isfinite(values) | (key == "band_wavelengths") & np.isnan(values)
        if not finite.all():
            raise _damaged(path, f"preprocessing array '{key}' holds values that are not finite")
    if np.any(prep["std"] <= 0):
        raise _damaged(path, "preprocessing array 'std' holds values that are not positive")
    return Preprocessor.from_state(prep, meta.band_names)


def _built_model(path: Path, meta: BundleMeta, weights: dict[str, np.ndarray]) -> Any:
    """The architecture with the bundle's weights, once their names and shapes agree."""
    spec = meta.model
    if spec.family == "classical":
        model = checked_build(path, spec, meta.in_bands, meta.num_classes)
        problem = model.array_problem(weights)
        if problem is not None:
            raise _damaged(path, f"the {spec.name} arrays do not fit together ({problem})")
        model.load_state_dict(weights)
        return model
    return torch_model(path, spec, weights, meta.in_bands, meta.num_classes)


def torch_model(
    path: Path,
    spec: ModelSpec,
    weights: dict[str, np.ndarray],
    in_bands: int,
    num_classes: int | None = None,
) -> Any:
    """A network of ``spec`` with ``weights``, refused before any allocation when their names
    or shapes differ from the architecture's (built first on torch's ``meta`` device)."""
    import torch

    with torch.device("meta"):
        skeleton = checked_build(path, spec, in_bands, num_classes)
    expected = {k: tuple(v.shape) or (1,) for k, v in skeleton.state_dict().items()}
    found = {k: tuple(v.shape) or (1,) for k, v in weights.items()}  # scalars are saved 1-D
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    wrong = [k for k in expected if k in found and expected[k] != found[k]]
    if missing or unexpected or wrong:
        first = (
            f"missing '{missing[0]}'"
            if missing
            else f"unexpected '{unexpected[0]}'"
            if unexpected
            else f"'{wrong[0]}' is {found[wrong[0]]}, not {expected[wrong[0]]}"
        )
        raise _damaged(path, f"the weights do not fit the '{spec.name}' architecture ({first})")
    model = checked_build(path, spec, in_bands, num_classes)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()}, strict=True)
    return model.eval()


def checked_build(path: Path, spec: ModelSpec, in_bands: int, num_classes: int | None) -> Any:
    """``spec.build``, with a builder's refusal of the description as the file's sentence."""
    try:
        return spec.build(in_bands, num_classes)
    except Exception as exc:  # noqa: BLE001 — whatever a builder raises on a config it refuses
        raise _damaged(
            path,
            f"the '{spec.name}' architecture cannot be built from the bundle's description ({exc})",
        ) from exc
