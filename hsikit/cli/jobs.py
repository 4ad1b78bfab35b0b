"""Declarative jobs: run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hsikit.cli.app import (
    app,
    out,
)
from hsikit.errors import InputError


@app.command()
def run(pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML (pipelines/*.yaml).")],
        models: Annotated[str | None, typer.Option(
            help="Comma-separated rows to rerun; the others' runs are kept from the existing "
                 "results file when their configuration is unchanged.")] = None,
        seeds: Annotated[str | None, typer.Option(
            help="Comma-separated seeds to run (others kept as with --models).")] = None,
        protocols: Annotated[str | None, typer.Option(
            help="Comma-separated protocols to run (others kept as with --models).")] = None
        ) -> None:
    """Run a declarative job, e.g. the Indian Pines benchmark."""
    from hsikit.jobs.benchmark import load_pipeline, run_benchmark

    spec = load_pipeline(pipeline)
    only = None
    if models is not None:
        only = [m.strip() for m in models.split(",") if m.strip()]
        unknown = sorted(set(only) - set(spec.names))
        if unknown:
            raise InputError(pipeline, f"--models names {', '.join(unknown)}, which the pipeline "
                             "does not run", f"choose from {', '.join(spec.names)}")
    chosen_seeds = None
    if seeds is not None:
        try:
            chosen_seeds = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError as exc:
            raise InputError(None, f"--seeds '{seeds}' is not a list of integers",
                             "write e.g. --seeds 0,1") from exc
    chosen_protocols = None
    if protocols is not None:
        chosen_protocols = [p.strip() for p in protocols.split(",") if p.strip()]
        unknown = sorted(set(chosen_protocols) - {p.name for p in spec.protocols})
        if unknown:
            raise InputError(pipeline, f"--protocols names {', '.join(unknown)}, which the "
                             "pipeline does not run", "see its 'protocols' list")
    results = run_benchmark(spec, log=out.print, only=only, seeds=chosen_seeds,
                            protocols=chosen_protocols)
    out.print(f"results: {spec.results}\nreport: {spec.report}")
    if any("error" in r for r in results["runs"]):
        raise typer.Exit(1)
