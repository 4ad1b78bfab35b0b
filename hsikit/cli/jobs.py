"""Declarative jobs: run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hsikit.cli.app import (
    app,
    out,
)


@app.command()
def run(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML (pipelines/*.yaml).")],
    models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated rows to rerun; the others' runs are kept from the existing "
            "results file when their configuration is unchanged."
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(help="Comma-separated seeds to run (others kept as with --models)."),
    ] = None,
    protocols: Annotated[
        str | None,
        typer.Option(help="Comma-separated protocols to run (others kept as with --models)."),
    ] = None,
) -> None:
    """Run a declarative job (its kind: a benchmark, …), e.g. the Indian Pines benchmark."""
    from hsikit.jobs import run_job

    results = run_job(pipeline, log=out.print, models=models, seeds=seeds, protocols=protocols)
    out.print(f"results: {results['files']['results']}\nreport: {results['files']['report']}")
    if results["failures"]:
        raise typer.Exit(1)
