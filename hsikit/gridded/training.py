"""``train_downscaler(config)``: a super-resolution head for gridded fields, trained on pairs
made from the file itself — each real field is the fine truth, its area mean ×s the coarse
input, as a coarser model would see it.

Validation and test are held-out **times** (contiguous blocks at the end of the record, so
neighbouring hours do not straddle the split more than once) and, where the file has ensemble
members, held-out **members** too: validation and test fields are neither times nor members
that training saw. Never a random split of cells within one field. Every layer is standardised
by the training fields' mean and standard deviation, kept in the bundle. The training loop is
the restoration heads' (Lightning, best validation weights, ``--max-minutes``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hsikit.devices import DEVICE_HELP
from hsikit.errors import InputError
from hsikit.gridded.fields import Fields, check_values, describe, open_fields
from hsikit.gridded.grids import coarsen, training_block
from hsikit.training.config import DATA, MODEL, RECIPE, RUN, option

Role = Literal["train", "val", "test"]


class DownscaleConfig(BaseModel):
    """Everything a downscaling training depends on; saved in the bundle and the report."""

    model_config = ConfigDict(extra="forbid")
    files: list[str] = Field(min_length=1)
    variables: list[str] | None = option(
        DATA, description="layers to learn, e.g. t2m or t@850hPa (default: all)"
    )
    scale: int = option(MODEL, 4, description="2 or 4: cells this many times smaller")
    model: str | None = option(MODEL, description="the head (default: gridsr_x<scale>)")
    test_share: float = option(
        DATA, 0.25, gt=0, lt=1, description="share of the times held out for the test"
    )
    val_share: float = option(
        DATA, 0.1, gt=0, lt=1, description="share of the times held out for validation"
    )
    member_share: float = option(
        DATA,
        0.2,
        gt=0,
        lt=1,
        description="share of the ensemble members held out for validation and test",
    )
    static: bool = option(
        MODEL,
        True,
        description="also learn what belongs to each cell of the training grid (mountains, "
        "coasts): used for inputs on that grid",
    )
    epochs: int | None = option(RECIPE, gt=0, description="epochs (default: the model's)")
    lr: float | None = option(RECIPE, gt=0, description="peak learning rate of AdamW")
    batch_size: int | None = option(RECIPE, gt=0, description="fields per step")
    fields_per_epoch: int = option(RECIPE, 64, gt=0, description="training pairs drawn an epoch")
    warmup_epochs: int = option(RECIPE, 2, ge=0, description="epochs of linear warm-up")
    weight_decay: float = option(RECIPE, 1e-4, ge=0, description="AdamW weight decay")
    patience: int = option(
        RECIPE, 15, gt=0, description="epochs without a better validation error before stopping"
    )
    max_minutes: float | None = option(
        RECIPE, gt=0, description="training-time budget: stop after this many minutes"
    )
    seed: int = option(RUN, 0, description="seed of the pairs and the initial weights")
    threads: int | None = option(RUN, gt=0, description="CPU threads for torch")
    device: str = option(RUN, "auto", description=f"torch device: {DEVICE_HELP}")

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: int) -> int:
        if value not in (2, 4):
            raise ValueError("the scale must be 2 or 4")
        return value

    @property
    def model_name(self) -> str:
        return self.model or f"gridsr_x{self.scale}"


def _held_out(count: int, share: float) -> int:
    return max(1, round(count * share))


def split_samples(fields: Fields, config: DownscaleConfig) -> dict[Role, list[tuple[int, int]]]:
    """(time, member) samples of each role: the last times test, the ones before validate;
    with several members, validation and test take only the held-out last members and
    training only the others."""
    times = len(fields.times) if fields.times is not None else 1
    test = _held_out(times, config.test_share)
    val = _held_out(times, config.val_share)
    if times - test - val < 1:
        raise InputError(
            fields.path,
            f"has {times} time{'s' * (times != 1)}: too few to hold out validation and test "
            "times and still train",
            "give a file with at least 3 times, or several files",
        )
    members = len(fields.members) if fields.members is not None else 1
    held = _held_out(members, config.member_share) if members > 1 else 0
    train_members = range(members - held) if held else range(members)
    eval_members = range(members - held, members) if held else range(members)
    role_of = {t: "train" for t in range(times - test - val)}
    role_of |= {t: "val" for t in range(times - test - val, times - test)}
    role_of |= {t: "test" for t in range(times - test, times)}
    split: dict[Role, list[tuple[int, int]]] = {"train": [], "val": [], "test": []}
    for t, role in role_of.items():
        for m in train_members if role == "train" else eval_members:
            split[role].append((t, m))  # type: ignore[index]
    return split


class Pairs:
    """Fine fields of one role (standardised, in memory) and their coarse versions; ``draw``
    makes a training pair. Unless the pairs are ``placed`` (a model that learns each cell of
    the grid sees every field where it lies), a pair has a random longitude shift on global
    grids (a whole coarse cell, so coarse and fine stay aligned) and a random row offset."""

    def __init__(
        self,
        fine: np.ndarray,
        lat: np.ndarray,
        scale: int,
        periodic: bool,
        seed: int,
        placed: bool = False,
    ) -> None:
        self.fine, self.lat, self.scale, self.periodic = fine, lat, scale, periodic
        self.placed = placed
        self.rng = np.random.default_rng(seed)
        self.rows = fine.shape[-2] - fine.shape[-2] % scale

    def pair(self, index: int, top: int = 0, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
        fine = self.fine[index, :, top : top + self.rows]
        if shift:
            fine = np.roll(fine, shift * self.scale, axis=-1)
        return coarsen(fine, self.lat[top : top + self.rows], self.scale), fine

    def centred(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The pair of the centred rows, unshifted: the fixed validation and test pairs."""
        return self.pair(index, (self.fine.shape[-2] - self.rows) // 2)

    def draw(self) -> tuple[np.ndarray, np.ndarray, int]:
        index = int(self.rng.integers(len(self.fine)))
        if self.placed:
            coarse, fine = self.centred(index)
            return coarse, np.ascontiguousarray(fine), 0
        top = int(self.rng.integers(self.fine.shape[-2] - self.rows + 1))
        shift = int(self.rng.integers(self.fine.shape[-1] // self.scale)) if self.periodic else 0
        coarse, fine = self.pair(index, top, shift)
        return coarse, np.ascontiguousarray(fine), 0


def read_role(
    sources: list[Fields], split: list[dict[Role, list[tuple[int, int]]]], role: Role, scale: int
) -> np.ndarray:
    """``[N, V, Y, X]`` fine fields of ``role`` from every file, cropped to whole coarse
    cells in longitude (the rows are cropped per pair)."""
    planes = []
    for fields, samples in zip(sources, split):
        cols = training_block(len(fields.lon), scale)
        for t, m in samples[role]:
            values = fields.read(t, m)[..., cols]
            check_values(fields, values, f"time {t}, member {m}")
            planes.append(values)
    return np.stack(planes)


def checksum(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


def open_sources(config: DownscaleConfig) -> list[Fields]:
    """The files' fields; every file must hold the same layers on the same grid."""
    sources = [open_fields(f, config.variables) for f in config.files]
    first = sources[0]
    for other in sources[1:]:
        if other.names != first.names or other.shape != first.shape:
            raise InputError(
                other.path,
                f"holds other layers or another grid than {first.path}",
                "train on files of one product",
            )
    return sources


def train_downscaler(
    config: DownscaleConfig,
    bundle_path: str | Path,
    report_dir: str | Path,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train, test against the baselines, and write the bundle and the report folder."""
    import lightning as L

    from hsikit.gridded.evaluate import evaluate_methods, preview_png
    from hsikit.models import create_model
    from hsikit.restorer import FieldStandardisation, RestorerMeta, save_restorer
    from hsikit.training.loops import fit_restorer
    from hsikit.training.report import command_line, write_json
    from hsikit.training.restore import head_recipe, start_head_training
    from hsikit.writers.atomic import prepare_output_folder

    bundle_path, report_dir = Path(bundle_path), Path(report_dir)
    entry, device = start_head_training(
        config.model_name,
        bundle_path,
        report_dir,
        config.files,
        config.device,
        config.threads,
        f"use gridsr_x{config.scale} (see 'hsikit models')",
    )
    started = time.perf_counter()
    sources = open_sources(config)
    first = sources[0]
    periodic = first.periodic and len(first.lon) % config.scale == 0
    splits = [split_samples(fields, config) for fields in sources]
    fine = {role: read_role(sources, splits, role, config.scale) for role in ("train", "val")}
    mean = fine["train"].mean(axis=(0, 2, 3))
    std = fine["train"].std(axis=(0, 2, 3))
    std = np.where(std > 0, std, 1.0)
    train, val = (
        Pairs(
            ((fine[role] - mean[:, None, None]) / std[:, None, None]).astype(np.float32),
            first.lat,
            config.scale,
            periodic,
            config.seed,
            placed=config.static,
        )
        for role in ("train", "val")
    )
    validation = [(*val.centred(i), 0) for i in range(len(val.fine))]
    coarse_grid = list(validation[0][0].shape[-2:])
    architecture: dict[str, Any] = {"grid": coarse_grid} if config.static else {}
    L.seed_everything(config.seed, workers=True, verbose=False)
    model = create_model(config.model_name, len(first.layers), **architecture)
    if hasattr(model, "set_periodic"):
        model.set_periodic(periodic)
    recipe = head_recipe(
        config,
        entry,
        device,
        progress,
        {"epochs": 60, "lr": 1e-3, "batch_size": 4},
        augment=False,  # no flips: orientation means something for weather
    )
    prepare_output_folder(report_dir)
    fit_info = fit_restorer(
        model.to(device),
        train,
        validation,
        recipe,
        config.seed,
        str(report_dir),
        config.fields_per_epoch,
    )
    train_seconds = time.perf_counter() - started
    stats = FieldStandardisation(
        layers=first.names,
        units=[first.units(layer) for layer in first.layers],
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
    )
    resolved = config.model_copy(
        update={
            "model": config.model_name,
            "epochs": recipe.epochs,
            "lr": recipe.lr,
            "batch_size": recipe.batch_size,
        }
    )
    meta = RestorerMeta.model_validate(
        {
            "job": "superres",
            "model": {"name": config.model_name, "family": "torch", "config": architecture},
            "in_bands": len(first.layers),
            "scale": config.scale,
            "band_wavelengths": [None] * len(first.layers),
            "band_names": first.names,
            "data_range": (float(fine["train"].min()), float(fine["train"].max())),
            "fields": stats,
            "training": {
                "config": resolved.model_dump(),
                "sources": [describe(f) for f in sources],
                "split": [{r: [list(s) for s in v] for r, v in sp.items()} for sp in splits],
                "data_checksum": checksum(fine["train"]),
                "train_seconds": round(train_seconds, 1),
                "command": command or command_line(),
            },
        }
    )
    from hsikit.restorer import Restorer

    restorer = Restorer(meta, model.eval())
    test = read_role(sources, splits, "test", config.scale)
    scores, preview = evaluate_methods(restorer, fine["train"], test, first, periodic)
    meta.metrics = {"test": scores}
    save_restorer(bundle_path, meta, model)
    report = {
        "model": config.model_name,
        "scale": config.scale,
        "device": device,
        "periodic": periodic,
        "layers": first.names,
        "samples": {r: sum(len(sp[r]) for sp in splits) for r in ("train", "val", "test")},
        "train_seconds": round(train_seconds, 1),
        "fit": fit_info,
        "test": scores,
        "data_checksum": meta.training["data_checksum"],
        "sources": meta.training["sources"],
    }
    write_json(report_dir / "metrics.json", report)
    preview_png(preview, first.names, report_dir / "preview.png")
    return report
