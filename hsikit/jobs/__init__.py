"""Declarative jobs, ``hsikit run FILE.yaml``: the file's ``kind:`` picks the job (a file
without one is a benchmark). Kinds: ``benchmark`` (train × protocols × seeds on a catalog
dataset, :mod:`hsikit.jobs.benchmark`). Each kind has a loader that validates the whole file
before anything runs, and a runner; runs happen in child processes (:mod:`hsikit.jobs.runner`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hsikit.documents import read_yaml
from hsikit.errors import InputError

KINDS = ("benchmark",)


def run_job(path: str | Path, log: Callable[[str], Any] = print, **choices: str | None) -> dict:
    """Load and run the job in ``path``; ``choices`` narrow what runs (``models``, ``seeds``,
    ``protocols`` for a benchmark). Returns the job's results."""
    from hsikit.jobs.benchmark import load_pipeline, run_benchmark, selection

    path = Path(path)
    document = read_yaml(path, "job", "give a YAML file like pipelines/*.yaml")
    kind = document.get("kind", "benchmark") if isinstance(document, dict) else None
    if kind not in KINDS:
        raise InputError(path, f"unknown job kind {kind!r}", f"use one of: {', '.join(KINDS)}")
    spec = load_pipeline(path)
    results = run_benchmark(spec, log=log, **selection(spec, path, **choices))
    return {**results, "files": {"results": spec.results, "report": spec.report}}
