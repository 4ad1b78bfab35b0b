"""The benchmark job (``kind: benchmark``): a classification benchmark trains every model ×
protocol × seed on a catalog dataset, measures accuracy, training time, inference speed,
parameters and peak memory, and writes a JSON result file plus a Markdown table
(``jobs/report.py``). Each run happens in a fresh (spawned) process (``jobs/runner.py``)."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hsikit.documents import read_yaml
from hsikit.errors import InputError, location_text, validation_problem, validation_sentence
from hsikit.jobs.memory import run_memory_check
from hsikit.jobs.report import machine, summarize, write_markdown
from hsikit.jobs.runner import in_child, peak_rss_mb
from hsikit.writers.atomic import write_text


class Protocol(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    split: str
    train_ratio: float | None = None
    buffer_patch: int | None = None
    block_size: int | None = None


class MemoryCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = "random_forest"
    sizes_gb: list[float] = Field(default_factory=lambda: [1.0, 4.0])
    bands: int = 200


class Variant(BaseModel):
    """One row of the table: a model with its training options, optionally pretrained on the
    run's own training region first, or started from another variant's bundle of the same
    protocol and seed (e.g. LoRA fine-tuning of a fully trained base). ``per_protocol`` adds
    or replaces options for one protocol only (a recipe tuned where the other protocol's runs
    must stay as they are); ``protocols`` limits the row to some protocols (an experiment that
    only means something on one of them)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    model: str
    options: dict[str, Any] = Field(default_factory=dict)
    per_protocol: dict[str, dict[str, Any]] = Field(default_factory=dict)
    pretrain: dict[str, Any] | None = None  # PretrainConfig fields (epochs, samples …)
    init_from: str | None = None
    protocols: list[str] | None = Field(None, min_length=1)  # None: every protocol

    def runs_on(self, protocol: str) -> bool:
        return self.protocols is None or protocol in self.protocols


class Benchmark(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["benchmark"] = "benchmark"
    name: str
    dataset: str
    models: list[str | Variant]
    protocols: list[Protocol]
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    threads: int = 2
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    output: str = "bench_output"
    map_scene: bool = Field(
        True,
        description="map the whole scene after training (measures "
        "inference speed); false reports accuracy only",
    )
    results: str
    report: str
    memory_check: MemoryCheck | None = None

    def variants(self) -> list[Variant]:
        """Every row as a Variant; a plain model name takes its ``overrides``."""
        out = [
            Variant(name=m, model=m, options=self.overrides.get(m, {})) if isinstance(m, str) else m
            for m in self.models
        ]
        protocols = [p.name for p in self.protocols]
        for index, variant in enumerate(out):
            earlier = {v.name: v for v in out[:index]}
            if variant.init_from is not None and variant.init_from not in earlier:
                raise ValueError(
                    f"{variant.name} starts from '{variant.init_from}', which must "
                    "be listed before it"
                )
            unknown = (set(variant.per_protocol) | set(variant.protocols or [])) - set(protocols)
            if unknown:
                raise ValueError(
                    f"{variant.name} names unknown protocol(s) {', '.join(sorted(unknown))}"
                )
            idle = [p for p in variant.per_protocol if not variant.runs_on(p)]
            if idle:
                raise ValueError(
                    f"{variant.name} has options for protocol(s) it does not run: "
                    f"{', '.join(sorted(idle))}"
                )
            base = earlier.get(variant.init_from) if variant.init_from else None
            orphaned = [
                p
                for p in protocols
                if base is not None and variant.runs_on(p) and not base.runs_on(p)
            ]
            if base is not None and orphaned:
                raise ValueError(
                    f"{variant.name} starts from '{base.name}', which does not run "
                    f"on {', '.join(orphaned)}"
                )
        return out

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants()]


def selection(
    spec: Benchmark, path: Path, models: str | None, seeds: str | None, protocols: str | None
) -> dict[str, list | None]:
    """``--models`` / ``--seeds`` / ``--protocols`` (comma-separated) as the rows, seeds and
    protocols to run; None runs all. Names the job does not have are refused."""

    def items(text: str | None) -> list[str] | None:
        return None if text is None else [t.strip() for t in text.split(",") if t.strip()]

    chosen: dict[str, list | None] = {
        "only": items(models),
        "protocols": items(protocols),
        "seeds": None,
    }
    for option, key, known in (
        ("--models", "only", spec.names),
        ("--protocols", "protocols", [p.name for p in spec.protocols]),
    ):
        unknown = sorted(set(chosen[key] or []) - set(known))
        if unknown:
            raise InputError(
                path,
                f"{option} names {', '.join(unknown)}, which the pipeline does not run",
                f"choose from {', '.join(known)}",
            )
    if seeds is not None:
        try:
            chosen["seeds"] = [int(s) for s in items(seeds) or []]
        except ValueError as exc:
            raise InputError(
                None, f"--seeds '{seeds}' is not a list of integers", "write e.g. --seeds 0,1"
            ) from exc
    return chosen


def load_pipeline(path: str | Path) -> Benchmark:
    """The benchmark in ``path``, every row's training (and pretraining) options validated
    for every protocol it runs on, so a misspelt option is refused here, not in a run."""
    path = Path(path)
    hint = "see pipelines/indian_pines_benchmark.yaml for the format"
    document = read_yaml(path, "pipeline", hint)
    try:
        spec = Benchmark.model_validate(document)
        spec.variants()
    except ValidationError as exc:
        raise InputError(
            path, f"invalid pipeline: {_pipeline_problem(exc, document)}", hint
        ) from exc
    except ValueError as exc:
        raise InputError(path, f"invalid pipeline: {str(exc).splitlines()[0]}", hint) from exc
    _check_rows(spec, path, hint)
    return spec


def _check_rows(spec: Benchmark, path: Path, hint: str) -> None:
    from hsikit.training.config import TrainConfig
    from hsikit.training.pretrain import PretrainConfig

    for protocol in spec.protocols:
        for variant in spec.variants():
            if not variant.runs_on(protocol.name):
                continue
            job = _run_job(spec, protocol, variant, spec.seeds[0] if spec.seeds else 0)
            checks: list[tuple[type[BaseModel], dict, str]] = [
                (TrainConfig, job["train"], "options")
            ]
            if variant.pretrain is not None:
                checks.append(
                    (
                        PretrainConfig,
                        {"dataset": spec.dataset, "model": variant.model, **variant.pretrain},
                        "pretrain",
                    )
                )
            for config, values, part in checks:
                try:
                    config.model_validate(values)
                except ValidationError as exc:
                    raise InputError(
                        path,
                        f"invalid pipeline: models: row '{variant.name}' "
                        f"({protocol.name}) {part}: {validation_sentence(exc)}",
                        hint,
                    ) from exc


def _pipeline_problem(exc: ValidationError, document: Any) -> str:
    """pydantic's complaint, with a row of ``models`` named as the user wrote it.

    pydantic locates it as ``models[4].Variant.protocols`` (index and union member); the row's
    name is what the user can find in the file.
    """
    location, message = validation_problem(exc)
    if len(location) < 2 or location[0] != "models" or not isinstance(location[1], int):
        return validation_sentence(exc)
    row = document["models"][location[1]]
    name = row.get("name") if isinstance(row, dict) else row
    where = f"row '{name}'" if isinstance(name, str) else f"row {location[1] + 1}"
    field = location_text(location[3:])
    return f"models: {where}: {field + ': ' if field else ''}{message}"


def _train_and_map(job: dict, folder: str, threads: int) -> dict:
    """One benchmark run (in its own process): [pretrain,] train, then map the whole scene."""
    from hsikit.bundle import load_bundle
    from hsikit.data.datasets import load
    from hsikit.devices import use_threads
    from hsikit.predict.classify import classify_scene
    from hsikit.training.config import TrainConfig
    from hsikit.training.fit import train

    use_threads(threads)
    folder_path = Path(folder)
    folder_path.mkdir(parents=True, exist_ok=True)
    config = dict(job["train"])
    extra: dict[str, Any] = {}
    if job.get("pretrain") is not None:
        from hsikit.training.config import DataOptions
        from hsikit.training.pretrain import PretrainConfig, pretrain

        keys = {"model", "split", *DataOptions.model_fields}  # the training run's own split
        pretrained = folder_path / "pretrained.safetensors"
        outcome = pretrain(
            PretrainConfig(**{k: v for k, v in config.items() if k in keys}, **job["pretrain"]),
            pretrained,
            progress=False,
        )
        config["init"] = str(pretrained)
        extra["pretrain"] = {
            k: outcome[k]
            for k in ("seconds", "train_patches", "heldout_loss_before", "heldout_loss_after")
        }
    result = train(
        TrainConfig(**config),
        folder_path / "model.safetensors",
        folder_path / "report",
        progress=False,
    )
    if job.get("map_scene", True):
        scene = load(config["dataset"]).scene
        bundle = load_bundle(folder_path / "model.safetensors").to(result.report["device"])
        started = time.perf_counter()
        summary = classify_scene(scene, bundle, folder_path / "map.tif")
        extra["pixels_per_second"] = summary["classified"] / (time.perf_counter() - started)
    report = result.report
    kept = (
        "oa",
        "aa",
        "kappa",
        "n_test",
        "train_seconds",
        "parameters",
        "trainable_parameters",
        "samples",
        "fit",
        "per_class",
        "unsmoothed",
        "device",
    )
    return {k: report[k] for k in kept if k in report} | {
        "pixels_per_second": None,
        "peak_rss_mb": peak_rss_mb(),
        **extra,
    }


def _run_job(spec: Benchmark, protocol: Protocol, variant: Variant, seed: int) -> dict:
    """Everything one run depends on: what decides whether an old run still holds."""
    train = {
        "dataset": spec.dataset,
        "model": variant.model,
        "split": protocol.split,
        "seed": seed,
        "threads": spec.threads,
        **{
            k: v
            for k, v in protocol.model_dump().items()
            if k not in ("name", "split") and v is not None
        },
        **variant.options,
        **variant.per_protocol.get(protocol.name, {}),
    }
    if variant.init_from is not None:
        train["init"] = str(
            Path(spec.output)
            / protocol.name
            / variant.init_from
            / f"seed{seed}"
            / "model.safetensors"
        )
    return {"train": train, "pretrain": variant.pretrain, "map_scene": spec.map_scene}


def _previous_runs(spec: Benchmark) -> dict[tuple[str, str, int], tuple[dict, dict]]:
    """Runs in the existing results file, keyed by (protocol, row name, seed), with their job."""
    path = Path(spec.results)
    try:
        old = json.loads(path.read_text())
        old_spec = Benchmark.model_validate(old["spec"])
        variants = {v.name: v for v in old_spec.variants()}
    except (OSError, ValueError, KeyError, ValidationError):
        return {}
    protocols = {p.name: p for p in old_spec.protocols}
    out = {}
    for run in old.get("runs", []):
        if (
            "error" in run
            or run.get("protocol") not in protocols
            or run.get("model") not in variants
        ):
            continue
        job = _run_job(old_spec, protocols[run["protocol"]], variants[run["model"]], run["seed"])
        out[(run["protocol"], run["model"], run["seed"])] = ({"date": old.get("date")} | run, job)
    return out


def run_benchmark(
    spec: Benchmark,
    log: Any = print,
    only: list[str] | None = None,
    seeds: list[int] | None = None,
    protocols: list[str] | None = None,
) -> dict:
    """Run every row × protocol × seed, or with ``only`` (rows), ``seeds`` or ``protocols``
    just those. Runs not asked for are kept from the existing results file while their
    configuration is unchanged; nothing is ever run unasked. The results file and report are
    rewritten after every run, so an interrupted job keeps what it finished."""
    partial = only is not None or seeds is not None or protocols is not None
    previous = _previous_runs(spec) if partial else {}
    memory = None
    if spec.memory_check and Path(spec.results).is_file() and partial:
        memory = json.loads(Path(spec.results).read_text()).get("memory_check")
    planned: list[tuple[int, Protocol, Variant, int, dict]] = []
    runs: list[dict | None] = []  # None: planned, not run yet (kept in table order)
    for protocol in spec.protocols:
        for variant in spec.variants():
            if not variant.runs_on(protocol.name):
                continue
            for seed in spec.seeds:
                job = _run_job(spec, protocol, variant, seed)
                asked = (
                    variant.name in (only or spec.names)
                    and seed in (seeds or spec.seeds)
                    and protocol.name in (protocols or [protocol.name])
                )
                kept = previous.get((protocol.name, variant.name, seed))
                if asked:
                    planned.append((len(runs), protocol, variant, seed, job))
                    runs.append(None)
                elif kept and kept[1] == job:
                    runs.append(kept[0])
                elif kept:
                    log(
                        f"dropped {protocol.name} {variant.name} seed {seed}: its configuration "
                        "changed; rerun it with --models"
                    )
    _check_starting_bundles(planned)
    for index, protocol, variant, seed, job in planned:
        folder = Path(spec.output) / protocol.name / variant.name / f"seed{seed}"
        started = time.perf_counter()
        outcome = in_child(_train_and_map, job, str(folder), spec.threads)
        outcome.update(
            model=variant.name,
            protocol=protocol.name,
            seed=seed,
            date=date.today().isoformat(),
            wall_seconds=round(time.perf_counter() - started, 1),
        )
        runs[index] = outcome
        shown = "error: " + outcome["error"] if "error" in outcome else f"OA {outcome['oa']:.2%}"
        log(
            f"{protocol.name:>10} {variant.name:>14} seed {seed}: {shown} "
            f"({outcome['wall_seconds']} s)"
        )
        _write_results(spec, runs, memory)
    if spec.memory_check and (not partial or spec.memory_check.model in (only or [])):
        memory = run_memory_check(spec, log)
    return _write_results(spec, runs, memory)


def _check_starting_bundles(planned: list[tuple[int, Protocol, Variant, int, dict]]) -> None:
    """Refuse before any training when a row starts from a bundle that neither exists nor is
    trained earlier in this job: otherwise the error would surface hours later, in one run."""
    trained = set()
    for _, protocol, variant, seed, job in planned:
        start = job["train"].get("init") if variant.init_from is not None else None
        if (
            start
            and (protocol.name, variant.init_from, seed) not in trained
            and not Path(start).is_file()
        ):
            raise InputError(
                start,
                f"{variant.name} ({protocol.name}, seed {seed}) starts from "
                f"this {variant.init_from} bundle, which does not exist",
                f"add {variant.init_from} to --models to train it first",
            )
        trained.add((protocol.name, variant.name, seed))


def _write_results(spec: Benchmark, planned: list[dict | None], memory: dict | None) -> dict:
    runs = [r for r in planned if r is not None]
    results = {
        "benchmark": spec.name,
        "dataset": spec.dataset,
        "date": date.today().isoformat(),
        "machine": machine(),
        "runs": runs,
        "summary": summarize(runs),
        "memory_check": memory,
        "spec": spec.model_dump(),
    }
    Path(spec.results).parent.mkdir(parents=True, exist_ok=True)
    write_text(
        spec.results,
        json.dumps(results, indent=2) + "\n",
        suffixes=(".json",),
        what="a results file",
    )
    write_markdown(results, Path(spec.report))
    return results
