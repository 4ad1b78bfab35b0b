"""The mapping-speed job (``kind: mapping_speed``): how fast each model maps a scene, through
the patch-by-patch path ("before") and the shared path ("after"), side by side in one run.

Speed does not depend on what the weights learnt, so every model is trained for one epoch on
the job's dataset (the bundle is real: its preprocessing, classes and band matching are the
trained ones). Each (model, scene, path) maps in a fresh process, with read / preprocess /
forward / write seconds, peak memory, the forward FLOPs per pixel of the path that ran (counted
by ``torch.utils.flop_counter``) and the GFLOP/s achieved as a share of this machine's measured
fp32 matrix-multiply peak.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hsikit.documents import read_job
from hsikit.jobs.report import machine_sentence, publish, results_header
from hsikit.jobs.runner import in_child, peak_rss_mb

MapPath = Literal["patch", "shared"]
PATHS: tuple[MapPath, ...] = ("patch", "shared")


class SpeedScene(BaseModel):
    """A scene to map: a catalog dataset, or a synthetic GeoTIFF of ``side`` × ``side``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    dataset: str | None = None
    side: int | None = Field(None, gt=0)
    bands: int = Field(200, gt=0)
    models: list[str] | None = None  # default: the job's
    paths: list[MapPath] = Field(default_factory=lambda: list(PATHS))
    windows: int | None = Field(
        None, gt=0, description="map only the first N windows (no file written)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> SpeedScene:
        if (self.dataset is None) == (self.side is None):
            raise ValueError(f"scene {self.name}: give a dataset or a synthetic side")
        return self


class MappingSpeedJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["mapping_speed"]
    name: str
    dataset: str = "indian_pines"  # what each model's bundle is trained on
    models: list[str] = Field(default_factory=list)  # default: every registered classifier
    scenes: list[SpeedScene]
    threads: int = Field(2, gt=0)
    output: str = "bench_output/mapping_speed"
    results: str
    report: str

    @model_validator(mode="after")
    def _known_models(self) -> MappingSpeedJob:
        from hsikit.models import list_models

        known = list_models(task="classification")
        if not self.models:
            self.models = known
        wanted = {m for s in self.scenes for m in (s.models or [])} | set(self.models)
        unknown = sorted(wanted - set(known))
        if unknown:
            raise ValueError(f"unknown models {unknown}; see 'hsikit models'")
        return self


def load_mapping_speed_job(path: Path) -> MappingSpeedJob:
    return read_job(path, MappingSpeedJob, "mapping-speed job")


# -- runs (each in a child process) ----------------------------------------------------------


def matmul_peak(threads: int, seconds: float = 1.0) -> float:
    """This machine's fp32 GFLOP/s on a large matrix product (the share's denominator)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b  # warm-up
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    return 2 * 1024**3 * runs / (time.perf_counter() - started) / 1e9


def train_for_speed(dataset: str, model: str, bundle: str, threads: int) -> dict:
    from hsikit.models import get_entry
    from hsikit.training.config import TrainConfig
    from hsikit.training.fit import train

    config: dict[str, Any] = {
        "dataset": dataset,
        "model": model,
        "split": "random",
        "threads": threads,
    }
    if get_entry(model).family == "torch":
        config["epochs"] = 1
    train(TrainConfig.model_validate(config), bundle, Path(bundle).with_suffix(""), progress=False)
    return {}


def _flops_per_pixel(bundle: Any, shared: bool) -> float | None:
    """Forward FLOPs per output pixel of the path that runs (None for classical models)."""
    if bundle.meta.model.family != "torch":
        return None
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hsikit.patches import patches_at

    bands, patch = bundle.preprocessor.out_channels, bundle.meta.patch_size
    side = 32
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        if shared and bundle.maps_densely:
            block = np.zeros((bands, side + patch - 1, side + patch - 1), np.float32)
            bundle.dense_proba(block, (side, side), side * side)
            pixels = side * side
        elif shared and bundle.shares_pixels:  # per-pixel part once per pixel, then patches
            block = np.zeros((bands, side + patch - 1, side + patch - 1), np.float32)
            features = bundle.pixel_features(block)
            rows, cols = np.nonzero(np.ones((side, side), bool))
            bundle.predict_proba(patches_at(features, rows, cols, patch), features=True)
            pixels = side * side
        else:
            bundle.predict_proba(np.zeros((64, bands, patch, patch), np.float32))
            pixels = 64
    return counter.get_total_flops() / pixels


def _map(scene_path: str, bundle_path: str, output: str, path: str, windows: int | None) -> dict:
    import numpy as np
    import torch

    from hsikit.bundle import load_bundle
    from hsikit.data.datasets import resolve_scene
    from hsikit.patches import STREAM_WINDOW
    from hsikit.predict.classify import classify_scene, window_scores

    bundle = load_bundle(bundle_path)
    scene = resolve_scene(scene_path)
    shared = path == "shared"
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with torch.inference_mode():
        if windows is None:
            summary = classify_scene(scene, bundle, output, shared=shared, timings=timings)
            pixels = summary["pixels"]
        else:
            offsets = [
                (row, col)
                for row in range(0, scene.height, STREAM_WINDOW)
                for col in range(0, scene.width, STREAM_WINDOW)
            ][:windows]
            pixels = 0
            for _, scores, _ in window_scores(
                scene, bundle, only=set(offsets), shared=shared, timings=timings
            ):
                pixels += int(np.prod(scores.shape[1:]))
    seconds = time.perf_counter() - started
    return {
        "pixels": pixels,
        "seconds": seconds,
        "px_per_s": pixels / seconds,
        "timings": timings,
        "flops_per_pixel": _flops_per_pixel(bundle, shared),
        "dense": shared and bundle.maps_densely,
        "peak_rss_mb": peak_rss_mb(),
    }


# -- the job ---------------------------------------------------------------------------------


def training_wavelengths(dataset: str) -> list[float]:
    """The band centres (nm) of the scene the bundles are trained on: a synthetic scene with
    them maps through the bundles' own band matching."""
    from hsikit.data.datasets import load

    return [float(w) for w in load(dataset).scene.wavelengths]


def run_mapping_speed(job: MappingSpeedJob, path: Path, log: Any = print) -> dict:
    from hsikit.jobs.memory import synthetic_scene

    folder = Path(job.output)
    folder.mkdir(parents=True, exist_ok=True)
    peak = in_child(matmul_peak, job.threads)
    log(f"matmul peak: {peak if isinstance(peak, dict) else f'{peak:.1f} GFLOP/s'}")
    bundles: dict[str, Any] = {}
    for model in sorted({m for s in job.scenes for m in (s.models or job.models)}):
        bundle = folder / f"{model}.safetensors"
        if bundle.is_file():  # a rerun reuses the bundles it trained (delete them to retrain)
            bundles[model] = {"bundle": str(bundle)}
            log(f"reusing {bundle}")
            continue
        outcome = in_child(train_for_speed, job.dataset, model, str(bundle), job.threads)
        bundles[model] = {"bundle": str(bundle), **outcome}
        log(f"trained {model}" + (f": {outcome['error']}" if "error" in outcome else ""))
    runs = []
    for scene in job.scenes:
        source = scene.dataset
        if scene.side is not None:
            synthetic = folder / f"{scene.name.replace(' ', '_')}.tif"
            gigabytes = scene.side**2 * scene.bands * 4 / 2**30
            wavelengths = training_wavelengths(job.dataset)[: scene.bands]
            in_child(synthetic_scene, synthetic, gigabytes, scene.bands, 0, wavelengths)
            source = str(synthetic)
        for model in scene.models or job.models:
            if "error" in bundles[model]:
                continue
            for variant in scene.paths:
                output = folder / f"map_{model}_{variant}.tif"
                outcome = in_child(
                    _map, source, bundles[model]["bundle"], str(output), variant, scene.windows
                )
                output.unlink(missing_ok=True)
                runs.append({"scene": scene.name, "model": model, "path": variant, **outcome})
                log(
                    f"{scene.name} {model} {variant}: "
                    + (outcome.get("error") or f"{outcome['px_per_s']:.0f} px/s")
                )
        if scene.side is not None:
            Path(str(source)).unlink(missing_ok=True)
    results = {
        **results_header(job.name, f"hsikit run {path.as_posix()}"),
        "matmul_gflops": peak,
        "job": job.model_dump(),
        "runs": runs,
    }
    publish(results, job.results, job.report, job.name, mapping_speed_markdown(results))
    return results


def mapping_speed_markdown(results: dict) -> str:
    """One row per (scene, model): px/s before → after, the ratio, the path's FLOPs, the share
    of the matmul peak, peak memory and where the time went."""
    m, peak = results["machine"], results["matmul_gflops"]
    lines = [
        f"### {results['benchmark']}, {results['date']}",
        "",
        f"Machine: {machine_sentence(m)}; fp32 matmul peak {peak:.1f} GFLOP/s. "
        f"Reproduce: `{results['command']}`. Before: patch by patch; after: the shared path "
        "(whole windows for the networks that have one) with read-ahead and write-behind.",
        "",
        "| scene | model | before px/s | after px/s | × | MFLOP/px before → after | "
        "% of peak after | peak RSS MB before → after | after: read / preprocess / forward / "
        "write s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for run in results["runs"]:
        rows.setdefault((run["scene"], run["model"]), {})[run["path"]] = run

    def mflops(run: dict | None) -> str:
        flops = None if run is None else run.get("flops_per_pixel")
        return "—" if flops is None else f"{flops / 1e6:.2f}"

    for (scene, model), paths in rows.items():
        before, after = paths.get("patch"), paths.get("shared")
        if any(r is not None and "error" in r for r in (before, after)):
            error = next(r["error"] for r in (before, after) if r is not None and "error" in r)
            lines.append(f"| {scene} | {model} | failed: {error} ||||||| ")
            continue
        speed = [f"{r['px_per_s']:.0f}" if r else "—" for r in (before, after)]
        ratio = f"{after['px_per_s'] / before['px_per_s']:.1f}" if before and after else "—"
        share = "—"
        if after and after.get("flops_per_pixel"):
            forward_rate = after["pixels"] / max(after["timings"].get("forward", 0.0), 1e-9)
            share = f"{100 * after['flops_per_pixel'] * forward_rate / 1e9 / peak:.1f}"
        memory = " → ".join(f"{r['peak_rss_mb']:.0f}" if r else "—" for r in (before, after))
        profile = "—"
        if after:
            t = after["timings"]
            profile = " / ".join(
                f"{t.get(k, 0.0):.1f}" for k in ("read", "preprocess", "forward", "write")
            )
        lines.append(
            f"| {scene} | {model} | {speed[0]} | {speed[1]} | {ratio} | "
            f"{mflops(before)} → {mflops(after)} | {share} | {memory} | {profile} |"
        )
    return "\n".join(lines) + "\n"
