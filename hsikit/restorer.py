"""Restoration bundles: one ``.safetensors`` file — the network's weights, and a JSON header
with everything ``hsikit denoise`` / ``superres`` / ``restore`` need: the architecture, the
task's output scale, the bands (wavelengths, names) and the data range the network works in,
the degradations it was trained on, the regions and the test metrics.

Loading never unpickles; the header is validated, then the weights are checked against the
architecture built on torch's ``meta`` device before anything is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hsikit import __version__
from hsikit.bundle import (
    BUNDLE_SUFFIXES,
    FORMAT,
    FORMAT_VERSION,
    HEADER_KEY,
    ModelSpec,
    read_safetensors,
    torch_model,
)
from hsikit.errors import InputError, validation_sentence
from hsikit.writers.atomic import staged_output


class FieldStandardisation(BaseModel):
    """A gridded-field head's layers (``t2m``, ``t@850hPa``) with their units, and the mean
    and standard deviation each is standardised by before the network sees it."""

    model_config = ConfigDict(extra="forbid")
    layers: list[str] = Field(min_length=1)
    units: list[str]
    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _one_per_layer(self) -> FieldStandardisation:
        if not len(self.layers) == len(self.units) == len(self.mean) == len(self.std):
            raise ValueError("fields: layers, units, mean and std differ in length")
        if not all(s > 0 for s in self.std):
            raise ValueError("fields: every standard deviation must be positive")
        return self


class RestorerMeta(BaseModel):
    """The header of a restoration bundle."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["hsikit-bundle"] = FORMAT
    format_version: int = FORMAT_VERSION
    hsikit_version: str = __version__
    task: Literal["restoration"] = "restoration"
    job: Literal["denoise", "superres", "restore"]
    model: ModelSpec
    in_bands: int = Field(gt=0)
    scale: Literal[1, 2, 4] = 1
    band_wavelengths: list[float | None]
    band_names: list[str]
    data_range: tuple[float, float]
    degradations: list[dict[str, Any]] = Field(default_factory=list)
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    #: gridded-field heads (``hsikit train-downscaler``); None for spectral cubes
    fields: FieldStandardisation | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RestorerMeta:
        if len(self.band_names) != len(self.band_wavelengths):
            raise ValueError("band_names and band_wavelengths differ in length")
        if not self.data_range[1] > self.data_range[0]:
            raise ValueError("data_range must be (low, high) with high > low")
        if self.model.family != "torch" or self.model.members != 1:
            raise ValueError("a restoration model is one neural network")
        if self.fields is not None and len(self.fields.layers) != self.in_bands:
            raise ValueError("fields: one layer per input band")
        return self


@dataclass
class Restorer:
    meta: RestorerMeta
    model: Any
    path: Path | None = None

    @property
    def band_agnostic(self) -> bool:
        return bool(getattr(self.model, "band_agnostic", False))

    def to(self, device: str) -> Restorer:
        self.model.to(device)
        return self

    def restore(self, cube: np.ndarray, task: int | None = None) -> np.ndarray:
        """``[C, h, w]`` physical values → restored ``[C, s·h, s·w]`` (float32)."""
        import torch

        low, high = self.meta.data_range
        device = next(self.model.parameters()).device
        x = torch.as_tensor((cube - low) / (high - low), dtype=torch.float32, device=device)
        with torch.inference_mode():
            if task is not None:
                y = self.model(x[None], torch.tensor([task], device=device))
            else:
                y = self.model(x[None])
        return (y[0].cpu().numpy() * (high - low) + low).astype(np.float32)


def save_restorer(path: str | Path, meta: RestorerMeta, model: Any) -> Path:
    from safetensors.numpy import save_file

    tensors = {
        f"model.{k}": np.ascontiguousarray(v.detach().cpu().numpy())
        for k, v in model.state_dict().items()
    }
    path = Path(path)
    with staged_output(path, suffixes=BUNDLE_SUFFIXES, what="a bundle") as stage:
        save_file(tensors, str(stage / path.name), metadata={HEADER_KEY: meta.model_dump_json()})
    return path


def read_restorer_meta(path: Path) -> tuple[RestorerMeta, dict[str, np.ndarray]]:
    header, arrays = read_safetensors(path)
    if header.get("task") != "restoration":
        raise InputError(
            path,
            "this is a classifier bundle, not a restoration bundle",
            "use it with 'hsikit classify'; for restoration train one with "
            "'hsikit train-restorer' or use the default (no -m)",
        )
    try:
        return RestorerMeta.model_validate(header), arrays
    except RecursionError as exc:
        raise InputError(
            path, "the bundle description is nested too deeply", "the file is damaged or was edited"
        ) from exc
    except ValidationError as exc:
        raise InputError(
            path,
            f"the restoration bundle description is invalid ({validation_sentence(exc)})",
            "the file is damaged or was edited",
        ) from exc


def load_restorer(path: str | Path) -> Restorer:
    path = Path(path)
    meta, arrays = read_restorer_meta(path)
    weights = {k.removeprefix("model."): v for k, v in arrays.items() if k.startswith("model.")}
    model = torch_model(path, meta.model, weights, meta.in_bands)
    return Restorer(meta, model, path)


#: Where the default bundles shipped with hsikit live (trained by
#: pipelines/restoration_benchmark.yaml, which records its command in each).
WEIGHTS = Path(__file__).parent / "weights"


def default_bundle(job: str, scale: int = 1) -> Path:
    """The bundle shipped for ``job`` (denoise, restore; superres per ``scale``)."""
    name = f"{job}_x{scale}" if job == "superres" else job
    path = WEIGHTS / f"{name}.safetensors"
    if not path.is_file():
        what = f"×{scale} {job}" if job == "superres" else job
        raise InputError(
            None,
            f"no default {what} bundle is shipped with this hsikit",
            "train one with 'hsikit train-restorer' and give it with -m",
        )
    return path
