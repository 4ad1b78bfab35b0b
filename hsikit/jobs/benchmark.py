"""Declarative jobs: ``hsikit run pipelines/<job>.yaml``.

A classification benchmark trains every model × protocol × seed on a catalog dataset, measures
accuracy, training time, inference speed, parameters and peak memory, and writes a JSON result
file plus a Markdown table. Each run happens in a fresh (spawned) process, so its peak resident
memory is its own, and a crash in one run is recorded instead of ending the job.
"""

from __future__ import annotations

import json
import multiprocessing
import platform
import resource
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hsikit.documents import read_yaml
from hsikit.errors import InputError, location_text, validation_problem, validation_sentence
from hsikit.evaluation.scoring import summarize_runs


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
    name: str
    dataset: str
    models: list[str | Variant]
    protocols: list[Protocol]
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    threads: int = 2
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    output: str = "bench_output"
    map_scene: bool = Field(True, description="map the whole scene after training (measures "
                            "inference speed); false reports accuracy only")
    results: str
    report: str
    memory_check: MemoryCheck | None = None

    def variants(self) -> list[Variant]:
        """Every row as a Variant; a plain model name takes its ``overrides``."""
        out = [Variant(name=m, model=m, options=self.overrides.get(m, {}))
               if isinstance(m, str) else m for m in self.models]
        protocols = [p.name for p in self.protocols]
        for index, variant in enumerate(out):
            earlier = {v.name: v for v in out[:index]}
            if variant.init_from is not None and variant.init_from not in earlier:
                raise ValueError(f"{variant.name} starts from '{variant.init_from}', which must "
                                 "be listed before it")
            unknown = (set(variant.per_protocol) | set(variant.protocols or [])) - set(protocols)
            if unknown:
                raise ValueError(f"{variant.name} names unknown protocol(s) "
                                 f"{', '.join(sorted(unknown))}")
            idle = [p for p in variant.per_protocol if not variant.runs_on(p)]
            if idle:
                raise ValueError(f"{variant.name} has options for protocol(s) it does not run: "
                                 f"{', '.join(sorted(idle))}")
            base = earlier.get(variant.init_from)
            orphaned = [p for p in protocols
                        if base is not None and variant.runs_on(p) and not base.runs_on(p)]
            if orphaned:
                raise ValueError(f"{variant.name} starts from '{base.name}', which does not run "
                                 f"on {', '.join(orphaned)}")
        return out

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants()]


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
        raise InputError(path, f"invalid pipeline: {_pipeline_problem(exc, document)}",
                         hint) from exc
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
            checks = [(TrainConfig, job["train"], "options")]
            if variant.pretrain is not None:
                checks.append((PretrainConfig, {"dataset": spec.dataset, "model": variant.model,
                                                **variant.pretrain}, "pretrain"))
            for config, values, part in checks:
                try:
                    config.model_validate(values)
                except ValidationError as exc:
                    raise InputError(path, f"invalid pipeline: models: row '{variant.name}' "
                                     f"({protocol.name}) {part}: {validation_sentence(exc)}",
                                     hint) from exc


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


def _peak_rss_mb() -> float:
    """This process's own peak resident memory (MB).

    Linux's ``VmHWM``, not ``ru_maxrss``: a spawned child's ``ru_maxrss`` starts from its parent's
    resident size at fork time, which made the parent's memory look like the child's.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _train_and_map(job: dict, folder: str, threads: int) -> dict:
    """One benchmark run (in its own process): [pretrain,] train, then map the whole scene."""
    import torch

    from hsikit.bundle import load_bundle
    from hsikit.data.datasets import load
    from hsikit.predict.classify import classify_scene
    from hsikit.training.config import TrainConfig
    from hsikit.training.fit import train

    torch.set_num_threads(threads)
    folder_path = Path(folder)
    folder_path.mkdir(parents=True, exist_ok=True)
    config = dict(job["train"])
    extra: dict[str, Any] = {}
    if job.get("pretrain") is not None:
        from hsikit.training.config import DataOptions
        from hsikit.training.pretrain import PretrainConfig, pretrain

        keys = {"model", "split", *DataOptions.model_fields}  # the training run's own split
        pretrained = folder_path / "pretrained.safetensors"
        outcome = pretrain(PretrainConfig(**{k: v for k, v in config.items() if k in keys},
                                          **job["pretrain"]), pretrained, progress=False)
        config["init"] = str(pretrained)
        extra["pretrain"] = {k: outcome[k] for k in ("seconds", "train_patches",
                                                     "heldout_loss_before", "heldout_loss_after")}
    result = train(TrainConfig(**config), folder_path / "model.safetensors",
                   folder_path / "report", progress=False)
    if job.get("map_scene", True):
        scene = load(config["dataset"]).scene
        bundle = load_bundle(folder_path / "model.safetensors").to(result.report["device"])
        started = time.perf_counter()
        summary = classify_scene(scene, bundle, folder_path / "map.tif")
        extra["pixels_per_second"] = summary["classified"] / (time.perf_counter() - started)
    report = result.report
    kept = ("oa", "aa", "kappa", "n_test", "train_seconds", "parameters",
            "trainable_parameters", "samples", "fit", "per_class", "unsmoothed", "device")
    return {k: report[k] for k in kept if k in report} | {
        "pixels_per_second": None, "peak_rss_mb": _peak_rss_mb(), **extra}


def _quiet() -> None:
    import warnings

    import rasterio.errors

    warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)


@contextmanager
def _terminate_exits_cleanly() -> Iterator[None]:
    """Turn SIGTERM (``kill``, a batch scheduler) into a normal exit while a run is in its
    child process: Python's default handler ends the job at once and leaves the child training
    on, orphaned, on the cores the next job needs; an exit lets the pool stop it first."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _in_child(target: Any, *args: Any) -> dict:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, initializer=_quiet) as pool, _terminate_exits_cleanly():
        try:
            return pool.apply(target, args)
        except Exception as exc:  # recorded in the results, the job goes on
            return {"error": f"{type(exc).__name__}: {exc}"}


def _run_job(spec: Benchmark, protocol: Protocol, variant: Variant, seed: int) -> dict:
    """Everything one run depends on: what decides whether an old run still holds."""
    train = {"dataset": spec.dataset, "model": variant.model, "split": protocol.split,
             "seed": seed, "threads": spec.threads,
             **{k: v for k, v in protocol.model_dump().items()
                if k not in ("name", "split") and v is not None},
             **variant.options, **variant.per_protocol.get(protocol.name, {})}
    if variant.init_from is not None:
        train["init"] = str(Path(spec.output) / protocol.name / variant.init_from / f"seed{seed}"
                            / "model.safetensors")
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
        if "error" in run or run.get("protocol") not in protocols or \
                run.get("model") not in variants:
            continue
        job = _run_job(old_spec, protocols[run["protocol"]], variants[run["model"]], run["seed"])
        out[(run["protocol"], run["model"], run["seed"])] = ({"date": old.get("date")} | run, job)
    return out


def run_benchmark(spec: Benchmark, log: Any = print, only: list[str] | None = None,
                  seeds: list[int] | None = None, protocols: list[str] | None = None) -> dict:
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
                asked = (variant.name in (only or spec.names) and seed in (seeds or spec.seeds)
                         and protocol.name in (protocols or [protocol.name]))
                kept = previous.get((protocol.name, variant.name, seed))
                if asked:
                    planned.append((len(runs), protocol, variant, seed, job))
                    runs.append(None)
                elif kept and kept[1] == job:
                    runs.append(kept[0])
                elif kept:
                    log(f"dropped {protocol.name} {variant.name} seed {seed}: its configuration "
                        "changed; rerun it with --models")
    _check_starting_bundles(planned)
    for index, protocol, variant, seed, job in planned:
        folder = Path(spec.output) / protocol.name / variant.name / f"seed{seed}"
        started = time.perf_counter()
        outcome = _in_child(_train_and_map, job, str(folder), spec.threads)
        outcome.update(model=variant.name, protocol=protocol.name, seed=seed,
                       date=date.today().isoformat(),
                       wall_seconds=round(time.perf_counter() - started, 1))
        runs[index] = outcome
        shown = "error: " + outcome["error"] if "error" in outcome else f"OA {outcome['oa']:.2%}"
        log(f"{protocol.name:>10} {variant.name:>14} seed {seed}: {shown} "
            f"({outcome['wall_seconds']} s)")
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
        if start and (protocol.name, variant.init_from, seed) not in trained and \
                not Path(start).is_file():
            raise InputError(start, f"{variant.name} ({protocol.name}, seed {seed}) starts from "
                             f"this {variant.init_from} bundle, which does not exist",
                             f"add {variant.init_from} to --models to train it first")
        trained.add((protocol.name, variant.name, seed))


def _write_results(spec: Benchmark, runs: list[dict | None], memory: dict | None) -> dict:
    runs = [r for r in runs if r is not None]
    results = {"benchmark": spec.name, "dataset": spec.dataset, "date": date.today().isoformat(),
               "machine": machine(), "runs": runs, "summary": summarize(runs),
               "memory_check": memory, "spec": spec.model_dump()}
    Path(spec.results).parent.mkdir(parents=True, exist_ok=True)
    Path(spec.results).write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, Path(spec.report))
    return results


def machine() -> dict:
    import os

    import torch

    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "memory_gb": round(memory_gb, 1), "python": platform.python_version(),
            "torch": torch.__version__, "gpu": "none (CPU only)"}


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    keys = sorted({(r["protocol"], r["model"]) for r in runs},
                  key=lambda k: ([r["protocol"] for r in runs].index(k[0]),
                                 [r["model"] for r in runs].index(k[1])))
    for protocol, model in keys:
        good = [r for r in runs if r["protocol"] == protocol and r["model"] == model
                and "error" not in r]
        if not good:
            rows.append({"protocol": protocol, "model": model, "error": "every run failed"})
            continue
        stats = summarize_runs(good)
        rows.append({"protocol": protocol, "model": model, **stats,
                     "train_seconds": float(np.mean([r["train_seconds"] for r in good])),
                     "pixels_per_second": (float(np.mean([r["pixels_per_second"] for r in good]))
                                           if all(r["pixels_per_second"] for r in good) else None),
                     "parameters": int(good[0]["parameters"]),
                     "trainable_parameters": int(good[0].get("trainable_parameters",
                                                             good[0]["parameters"])),
                     "pretrain_seconds": (float(np.mean([r["pretrain"]["seconds"] for r in good]))
                                          if all("pretrain" in r for r in good) else None),
                     "peak_rss_mb": float(max(r["peak_rss_mb"] for r in good)),
                     "n_test": int(np.mean([r["n_test"] for r in good]))})
    return rows


# -- memory: peak RSS must not grow with scene size ------------------------------------------------


def _synthetic_scene(path: Path, gigabytes: float, bands: int, seed: int = 0) -> dict:
    """A float32 GeoTIFF of about ``gigabytes`` with 4 spectrally distinct classes, written in
    windows so generating it needs little memory."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    side = int(np.sqrt(gigabytes * 2**30 / (bands * 4)))
    rng = np.random.default_rng(seed)
    means = rng.uniform(500, 3000, size=(4, bands)).astype("float32")
    profile = {"driver": "GTiff", "width": side, "height": side, "count": bands,
               "dtype": "float32", "crs": "EPSG:32633", "nodata": -9999.0, "tiled": True,
               "blockxsize": 256, "blockysize": 256, "BIGTIFF": "YES",
               "transform": Affine(10, 0, 500000, 0, -10, 4_000_000)}
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, side, 256):
            h = min(256, side - row)
            classes = (np.arange(side)[None, :] * 4 // side).repeat(h, 0)
            block = means[classes].transpose(2, 0, 1)
            block += rng.standard_normal(size=block.shape, dtype="float32") * 50
            dst.write(block, window=Window(0, row, side, h))
    return {}


def _map_scene(scene_path: str, bundle_path: str, output: str) -> dict:
    from hsikit.bundle import load_bundle
    from hsikit.predict.classify import classify_scene
    from hsikit.readers import open_scene

    started = time.perf_counter()
    summary = classify_scene(open_scene(scene_path), load_bundle(bundle_path), output)
    return {"seconds": time.perf_counter() - started, "pixels": summary["pixels"],
            "peak_rss_mb": _peak_rss_mb()}


def _train_small(scene_path: str, bundle_path: str, model: str) -> dict:
    """Train the memory-check model on a labelled strip along the top of the first scene."""
    import rasterio
    from rasterio.windows import Window

    from hsikit.training.config import TrainConfig
    from hsikit.training.fit import train

    labels_path = Path(bundle_path).with_name("labels.tif")
    with rasterio.open(scene_path) as src:
        side = src.width
        profile = src.profile | {"count": 1, "dtype": "uint8", "nodata": None}
    strip = (np.arange(side)[None, :] * 4 // side + 1).repeat(64, 0).astype("uint8")
    with rasterio.open(labels_path, "w", **profile) as dst:
        dst.write(strip[None], window=Window(0, 0, side, 64))
    train(TrainConfig(scenes=[scene_path], labels=[str(labels_path)], model=model,
                      split="random", train_ratio=0.05), bundle_path,
          Path(bundle_path).with_name("report"), progress=False)
    return {}


def run_memory_check(spec: Benchmark, log: Any = print) -> dict:
    check = spec.memory_check
    folder = Path(spec.output) / "memory"
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    bundle = folder / "model.safetensors"
    for index, size in enumerate(sorted(check.sizes_gb)):
        scene = folder / f"scene_{size:g}gb.tif"
        _in_child(_synthetic_scene, scene, size, check.bands)  # keeps this process small
        if index == 0:
            _in_child(_train_small, str(scene), str(bundle), check.model)
        outcome = _in_child(_map_scene, str(scene), str(bundle), str(folder / f"map_{size:g}.tif"))
        outcome.update(size_gb=size, file_bytes=scene.stat().st_size)
        results.append(outcome)
        log(f"memory check {size:g} GB: peak RSS {outcome.get('peak_rss_mb', float('nan')):.0f}"
            f" MB, {outcome.get('pixels', 0) / max(outcome.get('seconds', 1), 1e-9):.0f} px/s")
        scene.unlink()
    return {"model": check.model, "bands": check.bands, "runs": results}


# -- report ----------------------------------------------------------------------------------------

MARK_BEGIN = "<!-- benchmark:{name}:begin -->"
MARK_END = "<!-- benchmark:{name}:end -->"


def _pm(stats: dict) -> str:
    """mean ± std over seeds; a single run has no spread to show."""
    if stats.get("n", 2) < 2:
        return f"{100 * stats['mean']:.2f}"
    return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines; a short row (a failure message) is padded with empty cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = row + [""] * (len(header) - len(row))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown_table(results: dict) -> str:
    m = results["machine"]
    lines = [f"### {results['benchmark']} ({results['dataset']}), {results['date']}", "",
             f"Machine: {m['cores']} CPU cores ({m['cpu']}), {m['memory_gb']} GB RAM, "
             f"{m['gpu']}; Python {m['python']}, torch {m['torch']}. "
             f"Seeds: {', '.join(map(str, results['spec']['seeds']))}. "
             "Reproduce: `make bench` (or `hsikit run pipelines/indian_pines_benchmark.yaml`).",
             ""]
    def seconds(row: dict) -> str:
        pre = row.get("pretrain_seconds")
        return f"{row['train_seconds']:.0f}" + (f" + {pre:.0f} pretrain" if pre else "")

    rows = [[r["protocol"], r["model"], "failed"] if "error" in r else
            [r["protocol"], r["model"], str(r["oa"]["n"]), _pm(r["oa"]), _pm(r["aa"]),
             _pm(r["kappa"]), str(r["n_test"]), seconds(r),
             f"{r['pixels_per_second']:.0f}" if r["pixels_per_second"] else "–",
             f"{r['parameters']:,}", f"{r.get('trainable_parameters', r['parameters']):,}",
             f"{r['peak_rss_mb']:.0f}"] for r in results["summary"]]
    lines += _table(["protocol", "model", "seeds", "OA %", "AA %", "kappa × 100", "test px",
                     "train s", "inference px/s", "parameters", "trainable", "peak RSS MB"],
                    rows)
    memory = results.get("memory_check")
    if memory:
        lines += ["", f"Streamed `hsikit classify` on synthetic float32 scenes "
                  f"({memory['bands']} bands, model `{memory['model']}`):", ""]
        rows = [[f"{r['size_gb']:g} GB", f"failed: {r['error']}"] if "error" in r else
                [f"{r['file_bytes'] / 2**30:.2f} GiB", f"{r['pixels']:,}",
                 f"{r['peak_rss_mb']:.0f}", f"{r['seconds']:.0f}",
                 f"{r['pixels'] / r['seconds']:.0f}"] for r in memory["runs"]]
        lines += _table(["scene size", "pixels", "peak RSS MB", "seconds", "px/s"], rows)
    return "\n".join(lines) + "\n"


def write_markdown(results: dict, path: Path) -> None:
    """Replace this benchmark's section of ``path`` (between its markers), keep the rest."""
    begin = MARK_BEGIN.format(name=results["benchmark"])
    end = MARK_END.format(name=results["benchmark"])
    section = f"{begin}\n{markdown_table(results)}{end}\n"
    text = path.read_text() if path.is_file() else "# Benchmarks\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
