"""``train_restorer(config)``: self-supervised training of a restoration head on the scenes
themselves — crops from a training region degraded on the fly, the weights of the best PSNR on
a spatially separate validation region, and metrics on a test region no choice ever saw.

The job follows from the model: super-resolution for a head with a ``scale``, all-in-one
restoration for one conditioned on :data:`~hsikit.models.restoration.mp_hsir.TASKS`,
denoising otherwise. A denoiser learns the degradations the options give (blind Gaussian noise
by default); an all-in-one model learns every task of its list.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from hsikit.data.crops import CropSampler, crop_origins, region_blocks, region_roles, upsampled
from hsikit.data.splits import ROLE_NAMES, TEST, TRAIN, VAL
from hsikit.degrade import (
    BandLoss,
    Blur,
    DeadLines,
    Degradation,
    Downsample,
    Gaussian,
    Impulse,
    NonIID,
    Stripes,
    data_range,
    spec_from_options,
)
from hsikit.devices import DEVICE_HELP, device_name, resolve_device, use_threads
from hsikit.errors import InputError
from hsikit.evaluation.quality import QualityAccumulator
from hsikit.models import create_model, get_entry
from hsikit.training.config import DATA, MODEL, RECIPE, RUN, option

DEGRADE = "Degradations (denoisers)"
Job = Literal["denoise", "superres", "restore"]


class RestoreConfig(BaseModel):
    """Everything a restoration training depends on; saved in the bundle and the report."""

    model_config = ConfigDict(extra="forbid")
    dataset: str | None = option(
        DATA,
        description="a catalog dataset instead of scenes "
        "(default: indian_pines when no scene is given)",
    )
    scenes: list[str] = option(DATA, [], description="scene files")
    block_size: int = option(
        DATA,
        32,
        ge=8,
        description="side of the blocks (px) that go "
        "whole to the training, validation or test region",
    )
    test_share: float = option(
        DATA, 0.2, gt=0, lt=1, description="share of blocks in the test region"
    )
    val_share: float = option(
        DATA, 0.15, gt=0, lt=1, description="share of blocks in the validation region"
    )
    model: str = option(MODEL, "hsdt_s", description="a restoration head (see 'hsikit models')")
    crop: int = option(MODEL, 32, ge=8, description="side of the training crops (px, clean grid)")
    band_window: int | None = option(
        MODEL,
        31,
        gt=1,
        description="contiguous bands per "
        "training crop for band-agnostic models (all bands for "
        "the others)",
    )
    noise: str = option(
        DEGRADE,
        "gaussian:10-70",
        description="the noise a denoiser learns (as 'hsikit degrade --noise')",
    )
    stripes: float | None = option(
        DEGRADE, ge=0, le=1, description="stripes in this share of the bands"
    )
    dead_lines: float | None = option(
        DEGRADE, ge=0, le=1, description="dead columns in this share of the bands"
    )
    impulse: str | None = option(DEGRADE, description="impulse noise amount (or LOW-HIGH)")
    downsample: Literal["area", "bicubic"] = option(
        DEGRADE, "bicubic", description="how a super-resolution head's inputs are made"
    )
    epochs: int | None = option(RECIPE, gt=0, description="epochs (default: the model's)")
    lr: float | None = option(
        RECIPE, gt=0, description="peak learning rate of AdamW (default: the model's)"
    )
    batch_size: int | None = option(
        RECIPE, gt=0, description="crops per step (default: the model's)"
    )
    crops_per_epoch: int = option(RECIPE, 256, gt=0, description="crops drawn per epoch")
    val_crops: int = option(RECIPE, 32, gt=0, description="fixed validation crops")
    warmup_epochs: int = option(RECIPE, 2, ge=0, description="epochs of linear warm-up")
    weight_decay: float = option(RECIPE, 1e-4, ge=0, description="AdamW weight decay")
    patience: int = option(
        RECIPE,
        10,
        gt=0,
        description="epochs without a better validation PSNR before early stopping",
    )
    max_minutes: float | None = option(
        RECIPE, gt=0, description="training-time budget: stop after this many minutes"
    )
    seed: int = option(
        RUN, 0, description="seed of the regions, crops, degradations and initial weights"
    )
    threads: int | None = option(RUN, gt=0, description="CPU threads for torch")
    device: str = option(RUN, "auto", description=f"torch device: {DEVICE_HELP}")

    @model_validator(mode="after")
    def _checked(self) -> RestoreConfig:
        device_name(self.device)
        if self.dataset is not None and self.scenes:
            raise ValueError("give either a catalog dataset or scenes")
        return self


def job_of(model: Any) -> Job:
    if getattr(model, "tasks", None) is not None:
        return "restore"
    return "superres" if getattr(model, "scale", 1) > 1 else "denoise"


def task_degradations(job: Job, config: RestoreConfig, scale: int) -> list[Degradation]:
    """What the head learns: the options' degradation (denoise), downsampling (superres), or
    one degradation per task of an all-in-one model, in its task order."""
    if job == "denoise":
        return [
            spec_from_options(
                noise=config.noise,
                stripes=config.stripes,
                dead_lines=config.dead_lines,
                impulse=config.impulse,
            )
        ]
    if job == "superres":
        down = Downsample.model_validate({"scale": scale, "method": config.downsample})
        return [Degradation(steps=[down])]
    from hsikit.models.restoration.mp_hsir import TASKS

    by_task: dict[str, list[Any]] = {
        "gaussian": [Gaussian(sigma=(10.0, 70.0))],
        "complex": [NonIID(), Stripes(), DeadLines(), Impulse()],
        "blur": [Blur(sigma=1.5)],
        "sr2": [Downsample(scale=2, method="bicubic")],
        "sr4": [Downsample(scale=4, method="bicubic")],
        "bandloss": [BandLoss(share=0.1)],
    }
    return [Degradation(steps=by_task[task]) for task in TASKS]


def _scenes(config: RestoreConfig) -> list[Any]:
    from hsikit.data.datasets import load, resolve_scene

    if config.scenes:
        return [resolve_scene(s) for s in config.scenes]
    return [load(config.dataset or "indian_pines").scene]


def _valid_mask(scene: Any) -> np.ndarray:
    valid = np.zeros((scene.height, scene.width), bool)
    for window in scene.windows(256):
        (r0, r1), (c0, c1) = window.toranges()
        valid[r0:r1, c0:c1] = scene.read(window, bands=[0])[1]
    return valid


def region_roles_of(
    scene: Any, block: int, seed: int, test_share: float, val_share: float
) -> np.ndarray:
    """The training / validation / test region of ``scene``'s valid pixels, by whole blocks:
    what a head is trained and tested on, and what a benchmark scores every method on."""
    return region_roles(_valid_mask(scene), block, seed, test_share, val_share)


def start_head_training(
    model: str,
    bundle_path: Path,
    report_dir: Path,
    inputs: list[str],
    device: str,
    threads: int | None,
    hint: str,
) -> tuple[Any, str]:
    """Before a restoration head trains: its outputs checked, the model a restoration head
    (``hint`` says which to choose), the device resolved and the threads set; returns the
    model's registry entry and the device."""
    from hsikit.writers.atomic import check_output, check_output_folder

    check_output(bundle_path, suffixes=(".safetensors",), what="a bundle", inputs=inputs)
    check_output_folder(report_dir, inputs=inputs)
    entry = get_entry(model)
    if entry.task != "restoration":
        raise InputError(None, f"{model} is a classifier, not a restoration head", hint)
    resolved = resolve_device(device)
    use_threads(threads)
    return entry, resolved


def head_recipe(
    config: Any, entry: Any, device: str, progress: bool, defaults: dict[str, Any], **fixed: Any
) -> Any:
    """The training recipe of a restoration head: the config's choices, else the model's
    registered recipe, else ``defaults`` (epochs, lr, batch_size); ``fixed`` on top."""
    from hsikit.training.tasks.base import Recipe

    chosen = {
        key: getattr(config, key) or entry.recipe.get(key, default)
        for key, default in defaults.items()
    }
    return Recipe(
        **chosen,
        warmup_epochs=config.warmup_epochs,
        weight_decay=config.weight_decay,
        patience=config.patience,
        max_minutes=config.max_minutes,
        progress=progress,
        device=device,
        **fixed,
    )


def train_restorer(
    config: RestoreConfig,
    bundle_path: str | Path,
    report_dir: str | Path,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Train, test and save a restoration head; returns the report. ``command`` (what made
    the bundle, e.g. the pipeline that trains the shipped defaults) is recorded in it."""
    from hsikit.restorer import RestorerMeta, save_restorer
    from hsikit.training.loops import fit_restorer
    from hsikit.training.report import command_line
    from hsikit.writers.atomic import prepare_output_folder

    bundle_path, report_dir = Path(bundle_path), Path(report_dir)
    entry, device = start_head_training(
        config.model,
        bundle_path,
        report_dir,
        config.scenes,
        config.device,
        config.threads,
        "choose hsdt_*, essaformer_* or mp_hsir_* (see 'hsikit models')",
    )
    started = time.perf_counter()
    scenes = _scenes(config)
    first = scenes[0]
    bands = first.count
    if any(s.count != bands for s in scenes):
        raise InputError(
            scenes[1].path, "the scenes have different band counts", "train on scenes of one sensor"
        )
    import lightning as L

    L.seed_everything(config.seed, workers=True, verbose=False)
    model = create_model(config.model, bands)
    job = job_of(model)
    scale = int(getattr(model, "scale", 1))
    degradations = task_degradations(job, config, scale)
    value_range = data_range(first)
    band_window = config.band_window if getattr(model, "band_agnostic", False) else None
    crop = config.crop - config.crop % 4 if job == "restore" else config.crop
    regions = [
        region_roles_of(s, config.block_size, config.seed, config.test_share, config.val_share)
        for s in scenes
    ]
    samplers = []
    for scene, roles in zip(scenes, regions):
        origins = crop_origins(roles == TRAIN, crop)
        if len(origins):
            samplers.append(
                CropSampler(
                    scene,
                    origins,
                    crop,
                    value_range,
                    degradations,
                    band_window,
                    upsample_input=job == "restore",
                    seed=config.seed,
                )
            )
    if not samplers:
        raise InputError(
            first.path,
            f"no {crop} × {crop} crop fits inside the training region",
            "use a smaller --crop or --block-size, or a larger scene",
        )
    validation = _fixed_crops(
        scenes, regions, VAL, crop, value_range, degradations, band_window, job, config
    )
    recipe = head_recipe(
        config, entry, device, progress, {"epochs": 40, "lr": 1e-3, "batch_size": 8}
    )
    prepare_output_folder(report_dir)
    fit_info = fit_restorer(
        model.to(device),
        _Mixed(samplers, config.seed),
        validation,
        recipe,
        config.seed,
        str(report_dir),
        config.crops_per_epoch,
    )
    fit_seconds = time.perf_counter() - started
    metrics = evaluate_regions(
        model,
        scenes,
        regions,
        TEST,
        config.block_size,
        value_range,
        degradations,
        job,
        config.seed,
        device,
    )
    resolved = config.model_copy(
        update={"epochs": recipe.epochs, "lr": recipe.lr, "batch_size": recipe.batch_size}
    )
    report = {
        "model": config.model,
        "job": job,
        "scale": scale,
        "device": device,
        "data_range": list(value_range),
        "train_seconds": round(fit_seconds, 1),
        "fit": fit_info,
        "test": metrics,
        "regions": [
            {ROLE_NAMES[r]: int((roles == r).sum()) for r in (TRAIN, VAL, TEST)}
            for roles in regions
        ],
        "degradations": [d.model_dump(mode="json") for d in degradations],
        "data_checksum": _checksum(scenes, regions),
    }
    meta = RestorerMeta.model_validate(
        {
            "job": job,
            "model": {"name": config.model, "family": "torch"},
            "in_bands": bands,
            "scale": scale,
            "band_wavelengths": [
                None if not np.isfinite(w) else float(w) for w in first.wavelengths
            ],
            "band_names": [str(n) for n in first.band_values("name")],
            "data_range": value_range,
            "degradations": report["degradations"],
            "training": {
                "config": resolved.model_dump(),
                "sources": [s.path for s in scenes],
                "regions": report["regions"],
                "data_checksum": report["data_checksum"],
                "train_seconds": report["train_seconds"],
                "command": command or command_line(),
            },
            "metrics": metrics,
        }
    )
    save_restorer(bundle_path, meta, model.cpu())
    _write_report(report_dir, resolved, report, scenes, regions)
    return report


class _Mixed:
    """Draws from one of several scenes' samplers (chosen by the seed's sequence)."""

    def __init__(self, samplers: list[CropSampler], seed: int) -> None:
        self.samplers, self.rng = samplers, np.random.default_rng([seed, 7])

    def draw(self) -> tuple[np.ndarray, np.ndarray, int]:
        return self.samplers[int(self.rng.integers(len(self.samplers)))].draw()


def _fixed_crops(
    scenes: list[Any],
    regions: list[np.ndarray],
    role: int,
    crop: int,
    value_range: tuple[float, float],
    degradations: list[Degradation],
    band_window: int | None,
    job: Job,
    config: RestoreConfig,
) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """The validation crops: drawn once (seed + 1), the same for every epoch."""
    crops = []
    for index, (scene, roles) in enumerate(zip(scenes, regions)):
        origins = crop_origins(roles == role, crop)
        if not len(origins):
            continue
        sampler = CropSampler(
            scene,
            origins,
            crop,
            value_range,
            degradations,
            band_window,
            upsample_input=job == "restore",
            seed=config.seed + 1 + index,
        )
        crops += [sampler.draw() for _ in range(config.val_crops // len(scenes) or 1)]
    if not crops:
        raise InputError(
            scenes[0].path,
            f"no {crop} × {crop} crop fits inside the validation region",
            "use a smaller --crop, a larger --block-size, or a larger --val-share",
        )
    return crops


def restore_block(
    model: Any, degraded: np.ndarray, job: Job, task: int | None, device: str
) -> np.ndarray:
    """A head's output for one scaled ``[C, h, w]`` input; an all-in-one head takes coarse
    inputs upsampled (bicubic) to the output grid, and detects the task itself when ``task``
    is None."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(degraded))[None].to(device)
    with torch.inference_mode():
        if job != "restore":
            return model(x)[0].cpu().numpy()
        chosen = None if task is None else torch.tensor([task], device=device)
        return model(x, chosen)[0].cpu().numpy()


def evaluate_regions(
    model: Any,
    scenes: list[Any],
    regions: list[np.ndarray],
    role: int,
    block: int,
    value_range: tuple[float, float],
    degradations: list[Degradation],
    job: Job,
    seed: int,
    device: str,
) -> dict[str, Any]:
    """Metrics of the restored ``role`` region (whole blocks, every band), per task, with the
    degraded input (denoising) or its bicubic upsampling (super-resolution) beside them."""
    from hsikit.models.restoration.mp_hsir import TASKS

    names = list(TASKS) if job == "restore" else [job]
    results: dict[str, Any] = {}
    for task, spec in enumerate(degradations):
        restored_acc = QualityAccumulator(scenes[0].count, value_range, spec.scale)
        input_acc = QualityAccumulator(scenes[0].count, value_range, spec.scale)
        for index, (scene, roles) in enumerate(zip(scenes, regions)):
            for degraded, clean in region_blocks(
                scene, roles, role, block, value_range, spec, seed, index
            ):
                baseline = upsampled(degraded, spec.scale) if spec.scale > 1 else degraded
                given = baseline if job == "restore" else degraded
                restored = restore_block(model, given, job, task, device)
                valid = np.ones(clean.shape[1:], bool)
                restored_acc.update(
                    physical(clean, value_range), physical(restored, value_range), valid
                )
                input_acc.update(
                    physical(clean, value_range), physical(baseline, value_range), valid
                )
        if restored_acc.pixels:
            results[names[task]] = {
                "restored": restored_acc.result(),
                "input" if job != "superres" else "bicubic": input_acc.result(),
            }
    return results


def physical(scaled: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Values scaled to the data range, back in the scene's units."""
    low, high = value_range
    return scaled * (high - low) + low


def _checksum(scenes: list[Any], regions: list[np.ndarray]) -> str:
    """sha256 of the regions and of a strided sample of every scene's values: what the bundle
    was trained and tested on."""
    digest = hashlib.sha256()
    for scene, roles in zip(scenes, regions):
        digest.update(roles.tobytes())
        step = max(1, max(scene.height, scene.width) // 64)
        digest.update(np.ascontiguousarray(scene.read(step=step)[0]).tobytes())
    return digest.hexdigest()


def _write_report(
    folder: Path, config: RestoreConfig, report: dict, scenes: list[Any], regions: list[np.ndarray]
) -> None:
    from hsikit.classes import ClassTable
    from hsikit.training.report import curves_png, write_json
    from hsikit.writers.classmap import write_class_map

    write_json(folder / "config.json", config.model_dump())
    write_json(folder / "metrics.json", report)
    curves_png(folder / "metrics.csv", folder / "curves.png")
    table = ClassTable.from_records(
        [
            {"value": TRAIN, "name": "train", "colour": "#1b9e77"},
            {"value": VAL, "name": "val", "colour": "#7570b3"},
            {"value": TEST, "name": "test", "colour": "#d95f02"},
        ]
    )
    for index, (scene, roles) in enumerate(zip(scenes, regions)):
        stem = "regions" if len(scenes) == 1 else f"regions_{index}"
        write_class_map(folder / f"{stem}.tif", roles, scene.grid, table)
