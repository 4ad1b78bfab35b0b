"""Declarative jobs, ``hsikit run FILE.yaml``: the file's ``kind:`` picks the job (a file
without one is a benchmark). Kinds: ``benchmark`` (train × protocols × seeds on a catalog
dataset, :mod:`hsikit.jobs.benchmark`) and ``restoration`` (train restoration heads, score them
and classical baselines on a test region, :mod:`hsikit.jobs.restoration`) and ``mapping_speed``
(px/s of every model, patch by patch and shared, :mod:`hsikit.jobs.mapping_speed`) and ``mapping``
(``hsikit map`` over many scenes on dask.distributed, :mod:`hsikit.jobs.mapping`) and
``mapping_scaling`` (that run with 1, 2, … workers, :mod:`hsikit.jobs.mapping_scaling`) and
``downscaling`` (gridded-field heads against interpolation, :mod:`hsikit.jobs.downscaling`). Each
kind has a loader that validates the whole file before anything runs, and a runner; runs happen
in child processes (:mod:`hsikit.jobs.runner`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hsikit.documents import read_yaml
from hsikit.errors import InputError

KINDS = (
    "benchmark",
    "restoration",
    "mapping_speed",
    "mapping",
    "mapping_scaling",
    "downscaling",
)


def run_job(path: str | Path, log: Callable[[str], Any] = print, **choices: str | None) -> dict:
    """Load and run the job in ``path``; ``choices`` narrow what runs (``models``, ``seeds``,
    ``protocols`` for a benchmark). Returns the job's results."""
    path = Path(path)
    document = read_yaml(path, "job", "give a YAML file like pipelines/*.yaml")
    kind = document.get("kind", "benchmark") if isinstance(document, dict) else None
    if kind not in KINDS:
        raise InputError(path, f"unknown job kind {kind!r}", f"use one of: {', '.join(KINDS)}")
    if kind != "benchmark":
        given = [f"--{name}" for name, value in choices.items() if value is not None]
        if given:
            raise InputError(
                path,
                f"{', '.join(given)} select parts of a benchmark, not of a {kind} job",
                "run the whole job, or edit its settings",
            )
    if kind == "mapping":
        from hsikit.jobs.mapping import load_mapping_job, map_scenes

        mapping_job = load_mapping_job(path)
        outcome = map_scenes(mapping_job.settings(), log=log)
        for scene_id, sentence in outcome.failures.items():
            log(f"failed: {scene_id}: {sentence}")
        report = outcome.folder / "report.json"
        return {
            "files": {"results": report, "report": outcome.folder / "report.html"},
            "failures": len(outcome.failures),
        }
    if kind == "mapping_scaling":
        from hsikit.jobs.mapping_scaling import load_mapping_scaling_job, run_mapping_scaling

        scaling_job = load_mapping_scaling_job(path)
        scaling = run_mapping_scaling(scaling_job, path, log=log)
        files = {"results": scaling_job.results, "report": scaling_job.report}
        failures = sum("error" in r or r.get("failures", 0) > 0 for r in scaling["runs"])
        return {**scaling, "files": files, "failures": failures}
    if kind == "downscaling":
        from hsikit.jobs.downscaling import load_downscaling_job, run_downscaling

        downscaling_job = load_downscaling_job(path)
        downscaled = run_downscaling(downscaling_job, path, log=log)
        files = {"results": downscaling_job.results, "report": downscaling_job.report}
        failures = sum("error" in r for r in downscaled["runs"])
        return {**downscaled, "files": files, "failures": failures}
    if kind == "mapping_speed":
        from hsikit.jobs.mapping_speed import load_mapping_speed_job, run_mapping_speed

        speed_job = load_mapping_speed_job(path)
        results = run_mapping_speed(speed_job, path, log=log)
        files = {"results": speed_job.results, "report": speed_job.report}
        return {**results, "files": files, "failures": sum("error" in r for r in results["runs"])}
    if kind == "restoration":
        from hsikit.jobs.restoration import load_restoration_job, run_restoration

        job = load_restoration_job(path)
        results = run_restoration(job, path, log=log)
        failures = sum(
            "error" in r for r in [*results["trained"].values(), *results["scores"].values()]
        )
        files = {"results": job.results, "report": job.report}
        return {
            **results,
            "files": files,
            "failures": failures + ("error" in (results["downstream"] or {})),
        }
    from hsikit.jobs.benchmark import load_pipeline, run_benchmark, selection

    spec = load_pipeline(path)
    results = run_benchmark(spec, log=log, **selection(spec, path, **choices))
    files = {"results": spec.results, "report": spec.report}
    return {**results, "files": files, "failures": sum("error" in r for r in results["runs"])}
