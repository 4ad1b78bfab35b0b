"""The downscaling benchmark (``kind: downscaling``): for each run (a gridded file and a scale),
train a gridded-field head with ``hsikit train-downscaler`` options and score it with the
baselines (nearest, bilinear, bicubic, bicubic regression) on the same held-out times and
members, per layer in the layer's units; a preview PNG per run (coarse / bicubic / model /
truth). Each training runs in a fresh process.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hsikit.documents import read_job
from hsikit.jobs.report import machine_sentence, publish, results_header
from hsikit.jobs.runner import in_child
from hsikit.writers.gridded import COPERNICUS_ATTRIBUTION

#: Layers the issue's target applies to: temperature and geopotential.
TARGET_VARIABLES = ("t", "t2m", "z")
TARGET = 0.20


class DownscalingRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    file: str
    scale: int = 4
    options: dict[str, Any] = Field(default_factory=dict)  # train-downscaler options


class DownscalingJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["downscaling"]
    name: str
    runs: list[DownscalingRun] = Field(min_length=1)
    output: str = "bench_output/downscaling"
    previews: str = "docs/benchmarks"
    results: str
    report: str


def load_downscaling_job(path: Path) -> DownscalingJob:
    return read_job(path, DownscalingJob, "downscaling job")


def _train(run: DownscalingRun, folder: str, command: str) -> dict:
    """One training and its test scores (in a child process)."""
    from hsikit.errors import HsikitError
    from hsikit.gridded.training import DownscaleConfig, train_downscaler

    config = DownscaleConfig.model_validate(
        {**run.options, "files": [run.file], "scale": run.scale}
    )
    bundle = Path(folder) / f"{run.name}.safetensors"
    try:
        return train_downscaler(config, bundle, Path(folder) / f"{run.name}_report", False, command)
    except HsikitError as exc:
        return {"error": exc.sentence()}


def run_downscaling(job: DownscalingJob, path: Path, log: Any = print) -> dict:

    folder = Path(job.output)
    folder.mkdir(parents=True, exist_ok=True)
    command = f"hsikit run {path.as_posix()}"
    runs = []
    for run in job.runs:
        log(f"{run.name}: training")
        outcome = in_child(_train, run, str(folder), command)
        preview = folder / f"{run.name}_report" / "preview.png"
        if "error" not in outcome and preview.is_file():
            target = Path(job.previews) / f"downscaling_{run.name}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(preview, target)
            outcome["preview"] = target.as_posix()
        runs.append({"name": run.name, "file": run.file, "scale": run.scale, **outcome})
        log(f"{run.name}: " + (outcome.get("error") or "done"))
    results = {**results_header(job.name, command), "runs": runs}
    publish(results, job.results, job.report, job.name, downscaling_markdown(results))
    return results


def _variable(layer: str) -> str:
    return layer.split("@", 1)[0]


def downscaling_markdown(results: dict) -> str:
    lines = [
        f"Measured {results['date']} on {machine_sentence(results['machine'])} with "
        f"`{results['command']}`. "
        "RMSE and bias weighted by cell area, in each layer's units, on held-out times (and "
        "members); gradient RMSE: of |∇f| per cell; seam: the RMSE in the two columns at the "
        "grid's wrap-around over the RMSE of all columns, for the model and (in brackets) for "
        "bicubic interpolation, which wraps around exactly: the columns' own difficulty, so a "
        "seam would show as a model ratio well above bicubic's.",
        "",
    ]
    for run in results["runs"]:
        if "error" in run:
            lines += [f"**{run['name']}** failed: {run['error']}", ""]
            continue
        methods = run["test"]["methods"]
        model = run["model"]
        lines += [
            f"**{run['name']}** (`{run['file']}`, ×{run['scale']}, {run['samples']['train']} "
            f"training / {run['samples']['val']} validation / {run['samples']['test']} test "
            f"fields, trained {run['train_seconds']:.0f} s, "
            f"{run['fit']['epochs_run']} epochs):",
            "",
            "| layer | nearest | bilinear | bicubic | bicubic regression | "
            f"`{model}` | RMSE below bicubic | bias | gradient RMSE (bicubic → model) | seam |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for layer in run["layers"]:
            row = {m: methods[m][layer] for m in methods}
            gain = run["test"]["rmse_reduction_vs_bicubic"].get(layer)
            target = (
                (" ✓" if gain >= TARGET else " ✗")
                if run["scale"] == 4 and _variable(layer) in TARGET_VARIABLES and gain is not None
                else ""
            )
            lines.append(
                f"| {layer} | {row['nearest']['rmse']:.4g} | {row['bilinear']['rmse']:.4g} | "
                f"{row['bicubic']['rmse']:.4g} | {row['bicubic_regression']['rmse']:.4g} | "
                f"{row[model]['rmse']:.4g} | {gain:+.1%}{target} | {row[model]['bias']:+.3g} | "
                f"{row['bicubic']['gradient_rmse']:.3g} → {row[model]['gradient_rmse']:.3g} | "
                f"{row[model]['seam_ratio']:.2f} ({row['bicubic']['seam_ratio']:.2f}) |"
            )
        if run.get("preview"):
            lines += ["", f"![{run['name']}]({Path(run['preview']).relative_to('docs')})"]
        lines.append("")
    lines.append(
        "✓ / ✗: the ×4 target for temperature and geopotential (RMSE ≥ 20 % below bicubic). "
        + COPERNICUS_ATTRIBUTION.format(year=results["date"][:4])
    )
    return "\n".join(lines) + "\n"
