"""The restoration job (``kind: restoration``): train restoration heads on a scene's training
region, then score every head and classical baseline on its test region, for each setting
(a degradation), and check what restoration does for a classifier downstream.

Every head and baseline shares one set of regions (the job's block size, shares and seed), and
every method sees the same degraded test blocks. Training and each method's scoring run in
fresh processes (``jobs/runner.py``): peak memory is the method's own. The job that trains the
bundles shipped with hsikit (``pipelines/restoration_benchmark.yaml``) records its command in
each bundle.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hsikit.documents import read_yaml
from hsikit.errors import InputError, validation_sentence
from hsikit.jobs.baselines import baseline, tuned_parameter
from hsikit.jobs.report import machine_sentence, publish, results_header
from hsikit.jobs.runner import in_child, peak_rss_mb

#: Options of a head that the job fixes for all of them (one set of regions).
SHARED = ("dataset", "scenes", "block_size", "test_share", "val_share", "seed", "threads")


class Head(BaseModel):
    """A restoration head to train: ``options`` are ``hsikit train-restorer`` options."""

    model_config = ConfigDict(extra="forbid")
    name: str
    bundle: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_shared(self) -> Head:
        fixed = sorted(set(self.options) & set(SHARED))
        if fixed:
            raise ValueError(f"head {self.name}: {', '.join(fixed)} are set once for the job")
        return self


class Setting(BaseModel):
    """One row group: a degradation (as ``hsikit degrade`` options) and who restores it."""

    model_config = ConfigDict(extra="forbid")
    name: str
    noise: str | None = None
    stripes: float | None = None
    dead_lines: float | None = None
    impulse: str | None = None
    downsample: str | None = None  # SCALE[:area|bicubic]
    heads: list[str] = Field(default_factory=list)
    baselines: list[Literal["input", "tv", "wavelet", "pca", "bm4d", "bicubic"]] = Field(
        default_factory=list
    )

    def degradation(self) -> Any:
        from hsikit.degrade import spec_from_options

        return spec_from_options(
            noise=self.noise,
            stripes=self.stripes,
            dead_lines=self.dead_lines,
            impulse=self.impulse,
            downsample=self.downsample,
        )


class Downstream(BaseModel):
    """A classifier trained on the clean scene maps the degraded and the restored scene."""

    model_config = ConfigDict(extra="forbid")
    model: str = "svm_rbf"
    settings: list[str]
    head: str


class RestorationJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["restoration"]
    name: str
    dataset: str | None = None  # a catalog dataset (Indian Pines when neither is given) …
    scene: str | None = None  # … or one scene file
    block_size: int = 32
    test_share: float = 0.2
    val_share: float = 0.15
    seed: int = 0
    threads: int = 2
    heads: list[Head] = Field(default_factory=list)
    settings: list[Setting]
    downstream: Downstream | None = None
    output: str = "bench_output/restoration"
    results: str
    report: str

    @model_validator(mode="after")
    def _known_heads(self) -> RestorationJob:
        if self.dataset is not None and self.scene is not None:
            raise ValueError("give either a catalog dataset or a scene")
        if self.scene is None and self.dataset is None:
            self.dataset = "indian_pines"
        if self.downstream is not None and self.dataset is None:
            raise ValueError("the downstream check needs a catalog dataset (its labels)")
        names = {h.name for h in self.heads}
        wanted = {n for s in self.settings for n in s.heads}
        if self.downstream is not None:
            wanted.add(self.downstream.head)
            unknown_settings = set(self.downstream.settings) - {s.name for s in self.settings}
            if unknown_settings:
                raise ValueError(f"downstream names unknown settings {sorted(unknown_settings)}")
        if wanted - names:
            raise ValueError(
                f"settings name heads the job does not train: {sorted(wanted - names)}"
            )
        for setting in self.settings:  # a bad degradation is refused before anything runs
            try:
                setting.degradation()
            except InputError as exc:
                raise ValueError(f"setting {setting.name}: {exc.problem}") from exc
        return self

    def head_config(self, head: Head) -> dict[str, Any]:
        shared = {
            "dataset": self.dataset,
            "scenes": [self.scene] if self.scene is not None else [],
            "block_size": self.block_size,
            "test_share": self.test_share,
            "val_share": self.val_share,
            "seed": self.seed,
            "threads": self.threads,
        }
        return {**head.options, **shared}


def load_restoration_job(path: Path) -> RestorationJob:
    document = read_yaml(path, "job", "give a YAML file like pipelines/*.yaml")
    try:
        job = RestorationJob.model_validate(document)
        from hsikit.training.restore import RestoreConfig

        for head in job.heads:
            RestoreConfig.model_validate(job.head_config(head))
    except ValidationError as exc:
        problem = validation_sentence(exc)
    else:
        return job
    raise InputError(path, f"the restoration job is invalid ({problem})", "fix it and run again")


# -- runs (each in a child process) ----------------------------------------------------------


def _train_head(config: dict, bundle: str, report_dir: str, command: str) -> dict:
    from hsikit.training.restore import RestoreConfig, train_restorer

    report = train_restorer(
        RestoreConfig.model_validate(config), bundle, report_dir, progress=False, command=command
    )
    return {"train_seconds": report["train_seconds"], "peak_rss_mb": peak_rss_mb()}


def _regions(job: dict) -> tuple[Any, np.ndarray, tuple[float, float]]:
    from hsikit.data.datasets import load, resolve_scene
    from hsikit.degrade import data_range
    from hsikit.training.restore import region_roles_of

    scene = resolve_scene(job["scene"]) if job["scene"] else load(job["dataset"]).scene
    roles = region_roles_of(
        scene, job["block_size"], job["seed"], job["test_share"], job["val_share"]
    )
    return scene, roles, data_range(scene)


def _score_method(job: dict, method: str, bundle: str | None, settings: list[dict]) -> dict:
    """Scores of one method (a head's bundle, or a baseline) on the test region of every
    setting it takes part in, with its speed and this process's peak memory."""
    import torch

    from hsikit.data.crops import region_blocks
    from hsikit.data.splits import TEST, VAL
    from hsikit.evaluation.quality import QualityAccumulator, quality
    from hsikit.training.restore import physical

    torch.set_num_threads(job["threads"])
    scene, roles, value_range = _regions(job)
    block, seed = job["block_size"], job["seed"]
    restorer = None
    if bundle is not None:
        from hsikit.restorer import load_restorer

        restorer = load_restorer(bundle)
        restorer.model.eval()
    results: dict[str, Any] = {}
    for setting in settings:
        spec = Setting.model_validate(setting).degradation()
        parameter = None
        if restorer is None:
            validation = list(region_blocks(scene, roles, VAL, block, value_range, spec, seed + 1))
            parameter = tuned_parameter(
                method,
                validation[:4],
                lambda clean, out: quality(clean, out, np.ones(clean.shape[1:], bool), (0, 1))[
                    "mpsnr"
                ],
            )
        restore = _restoring(method, restorer, spec.scale, parameter)
        accumulator = QualityAccumulator(scene.count, value_range, spec.scale)
        seconds = 0.0
        for degraded, clean in region_blocks(scene, roles, TEST, block, value_range, spec, seed):
            started = time.perf_counter()
            restored = restore(degraded)
            seconds += time.perf_counter() - started
            accumulator.update(
                physical(clean, value_range),
                physical(restored, value_range),
                np.ones(clean.shape[1:], bool),
            )
        results[setting["name"]] = {
            **accumulator.result(),
            "parameter": parameter,
            "seconds": round(seconds, 2),
            "mpx_band_per_s": accumulator.pixels * scene.count / max(seconds, 1e-9) / 1e6,
        }
    return {"settings": results, "peak_rss_mb": peak_rss_mb()}


def _restoring(
    method: str, restorer: Any, scale: int, parameter: float | None
) -> Callable[[np.ndarray], np.ndarray]:
    """Scaled degraded block in → scaled restored block out, for a head or a baseline. An
    all-in-one head takes coarse inputs upsampled and detects the degradation itself."""
    if restorer is None:
        return baseline(method, scale if method == "bicubic" else parameter)
    from hsikit.data.crops import upsampled
    from hsikit.training.restore import restore_block

    job = restorer.meta.job

    def restore(cube: np.ndarray) -> np.ndarray:
        given = upsampled(cube, scale) if job == "restore" and scale > 1 else cube
        return restore_block(restorer.model, given, job, None, "cpu")

    return restore


def _downstream(job: dict, bundle: str, settings: list[dict], output: str) -> dict:
    """OA of a classifier trained on the clean scene, on its test pixels inside the
    restoration test region, for the clean, degraded and restored scene."""
    from hsikit.data.splits import TEST
    from hsikit.degrade import degraded_scene
    from hsikit.evaluation.evaluate import own_test_pixels
    from hsikit.predict.classify import map_scores
    from hsikit.predict.restore import restored_scene
    from hsikit.restorer import load_restorer
    from hsikit.training.config import TrainConfig
    from hsikit.training.fit import train

    scene, roles, _ = _regions(job)
    model = job["downstream"]["model"]
    config = TrainConfig.model_validate(
        {"dataset": job["dataset"], "model": model, "seed": job["seed"], "threads": job["threads"]}
    )
    classifier = train(
        config,
        Path(output) / f"{model}.safetensors",
        Path(output) / f"{model}_report",
        progress=False,
    ).bundle
    pixels, _ = own_test_pixels(classifier)
    inside = roles[pixels.where[:, 1], pixels.where[:, 2]] == TEST
    where, truth = pixels.where[inside], pixels.y[inside]
    restorer = load_restorer(bundle)

    def accuracy(variant: Any) -> float:
        scores = map_scores(classifier, where, [variant])
        return float(100 * np.mean(scores.argmax(axis=1) == truth))

    rows = {"clean": {"oa": accuracy(scene)}}
    for setting in settings:
        degraded, _ = degraded_scene(scene, Setting.model_validate(setting).degradation())
        rows[setting["name"]] = {
            "degraded_oa": accuracy(degraded),
            "restored_oa": accuracy(restored_scene(degraded, restorer)),
        }
    return {"model": model, "test_pixels": int(inside.sum()), "rows": rows}


# -- the job ---------------------------------------------------------------------------------


def run_restoration(job: RestorationJob, path: Path, log: Any = print) -> dict:

    command = f"hsikit run {path.as_posix()}"
    output = Path(job.output)
    output.mkdir(parents=True, exist_ok=True)
    plain = job.model_dump()
    trained: dict[str, Any] = {}
    for head in job.heads:
        log(f"training {head.name} ({head.options.get('model', 'hsdt_s')}) → {head.bundle}")
        trained[head.name] = in_child(
            _train_head, job.head_config(head), head.bundle, str(output / head.name), command
        )
        log(f"  {json.dumps(trained[head.name])}")
    bundles = {h.name: h.bundle for h in job.heads}
    methods: dict[str, tuple[str | None, list[dict]]] = {}
    for setting in job.settings:
        for name in [*setting.baselines, *setting.heads]:
            methods.setdefault(name, (bundles.get(name), []))[1].append(setting.model_dump())
    scores: dict[str, Any] = {}
    for name, (bundle, settings) in methods.items():
        log(f"scoring {name} on {len(settings)} settings")
        scores[name] = in_child(_score_method, plain, name, bundle, settings)
        if "error" in scores[name]:
            log(f"  {scores[name]['error']}")
    downstream = None
    if job.downstream is not None:
        log(f"downstream check ({job.downstream.model})")
        wanted = [s.model_dump() for s in job.settings if s.name in job.downstream.settings]
        downstream = in_child(_downstream, plain, bundles[job.downstream.head], wanted, str(output))
    results = {
        **results_header(job.name, command),
        "job": plain,
        "trained": trained,
        "scores": scores,
        "downstream": downstream,
    }
    publish(results, job.results, job.report, job.name, restoration_markdown(results, job))
    return results


def restoration_markdown(results: dict, job: RestorationJob) -> str:
    """The report section: per setting, one row per method; then the downstream check."""
    lines = [
        f"### {job.name} ({job.dataset or Path(job.scene or '').name}, test region), "
        f"{results['date']}",
        "",
        f"Machine: {machine_sentence(results['machine'])}. "
        f"Reproduce: `{results['command']}`. Regions: {job.block_size}-px blocks, "
        f"test {job.test_share:.0%}, validation {job.val_share:.0%}, seed {job.seed}.",
        "",
        "| setting | method | MPSNR dB | MSSIM | SAM ° | ERGAS | train s | Mpx·band/s "
        "| peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in job.settings:
        for name in [*setting.baselines, *setting.heads]:
            score = results["scores"].get(name, {})
            if "error" in score:
                lines.append(f"| {setting.name} | {name} | failed: {score['error']} ||||||| ")
                continue
            row = score["settings"][setting.name]
            train = results["trained"].get(name, {}).get("train_seconds")
            label = name if row.get("parameter") is None else f"{name} ({row['parameter']:g})"
            trained = "" if train is None else f"{train:.0f}"
            lines.append(
                f"| {setting.name} | {label} | {row['mpsnr']:.2f} | {row['mssim']:.4f} | "
                f"{row['sam_deg']:.2f} | {row['ergas']:.2f} | {trained} | "
                f"{'' if name == 'input' else format(row['mpx_band_per_s'], '.2f')} | "
                f"{score['peak_rss_mb']:.0f} |"
            )
    downstream = results.get("downstream")
    if downstream and "error" not in downstream:
        lines += [
            "",
            f"Downstream: {downstream['model']} trained on the clean scene, OA % on its "
            f"{downstream['test_pixels']} test pixels inside the restoration test region "
            f"(clean scene: {downstream['rows']['clean']['oa']:.2f}).",
            "",
            "| setting | degraded OA % | restored OA % |",
            "|---|---|---|",
        ]
        for name, row in downstream["rows"].items():
            if name != "clean":
                lines.append(f"| {name} | {row['degraded_oa']:.2f} | {row['restored_oa']:.2f} |")
    return "\n".join(lines) + "\n"
