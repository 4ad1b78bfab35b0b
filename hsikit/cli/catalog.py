"""The model registry and the data catalog: models, data list/info/fetch/import/labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Column, Table

from hsikit.cli.app import (
    OutputOpt,
    app,
    data_app,
    err,
    out,
)
from hsikit.cli.common import check_map_outputs, with_sidecars


def _whole_names_column(names: list[str]) -> Column:
    """A "name" column rich never cuts: a narrow terminal would show ``lola_specvit_proj_…``,
    and the name is what the user types next."""
    return Column("name", no_wrap=True, min_width=max(map(len, names), default=4))


@app.command("models")
def models_list(pattern: Annotated[str, typer.Argument()] = "*") -> None:
    """List registered models."""
    from hsikit.models import get_entry, list_models

    names = list_models(pattern)
    table = Table(_whole_names_column(names), "task", "family", "defaults", "description")
    for name in names:
        entry = get_entry(name)
        defaults = ", ".join(f"{k}={v}" for k, v in entry.defaults.items())
        table.add_row(name, entry.task, entry.family, defaults, entry.description)
    out.print(table)


@data_app.command("list")
def data_list() -> None:
    """List catalog datasets and whether they are available here."""
    from hsikit.data.catalog import catalog
    from hsikit.data.fetch import cached_file

    cards = catalog()
    table = Table(
        _whole_names_column(list(cards)), "kind", "sensor", "size", "classes", "available"
    )
    for name, card in cards.items():
        size = f"{card.shape.rows}×{card.shape.cols}×{card.shape.bands}" if card.shape else ""
        if card.offline_source:
            here = f"yes ({card.offline_source})"
        elif card.files:
            here = "yes" if all(cached_file(card, f.role) for f in card.files) else "no"
        else:
            here = "—"
        table.add_row(name, card.kind, card.sensor, size, str(len(card.classes) or ""), here)
    out.print(table)


@data_app.command("info")
def data_info(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a catalog card."""
    from hsikit.data.catalog import get_card

    card = get_card(name)
    if as_json:
        out.print_json(card.model_dump_json())
        return
    out.print(f"[bold]{card.title}[/bold] ({card.name}, {card.kind})\n{card.description}\n")
    if card.shape:
        out.print(
            f"size: {card.shape.rows}×{card.shape.cols}, {card.shape.bands} bands; "
            f"GSD {card.gsd_m} m"
        )
    if card.spectral:
        out.print(
            f"spectral: {card.spectral.range_nm[0]:g}–{card.spectral.range_nm[1]:g} nm, "
            f"{card.spectral.band_count} bands ({card.spectral.source})"
        )
    for spec in card.files:
        out.print(
            f"file: {spec.name} ({spec.role}, {spec.bytes or '?'} bytes, "
            f"sha256 {spec.sha256 or 'not published'})"
        )
    if card.classes:
        table = Table("value", "class", "colour", "pixels")
        counts: list[int | None] = (
            list(card.class_counts) if card.class_counts else [None] * len(card.classes)
        )
        for cls, count in zip(card.classes, counts):
            table.add_row(
                str(cls.value),
                cls.name,
                f"[{cls.colour}]██[/] {cls.colour}",
                "" if count is None else str(count),
            )
        out.print(table)
    out.print(f"licence: {card.licence}\ncitation: {card.citation}")


@data_app.command("fetch")
def data_fetch(
    name: str,
    mirror: Annotated[
        str | None, typer.Option(help="Base URL of a mirror holding the files.")
    ] = None,
    allow_unverified: Annotated[
        bool, typer.Option(help="Accept files with no published sha256.")
    ] = False,
) -> None:
    """Download a dataset into the cache (resumable, sha256-checked)."""
    from hsikit.data.fetch import fetch

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        paths = fetch(name, mirror=mirror, allow_unverified=allow_unverified, progress=progress)
    for path in paths:
        out.print(f"verified {path}")


@data_app.command("import")
def data_import(name: str, files: Annotated[list[Path], typer.Argument()]) -> None:
    """Verify files you already have and register them in the cache."""
    from hsikit.data.fetch import import_files

    for path in import_files(name, files):
        out.print(f"verified {path}")


@data_app.command("labels")
def data_labels(
    name: str,
    output: OutputOpt,
    png: Annotated[Path | None, typer.Option(help="Also write a PNG legend.")] = None,
) -> None:
    """Write a catalog dataset's ground truth as a class-map COG."""
    from hsikit.data.datasets import load
    from hsikit.writers.classmap import write_class_map
    from hsikit.writers.provenance import provenance
    from hsikit.writers.quicklook import class_map_quicklook

    check_map_outputs(output, png)
    dataset = load(name)
    write_class_map(
        output,
        dataset.labels.values,
        dataset.scene.grid,
        dataset.labels.classes,
        tags=provenance(source=f"catalog:{name}"),
    )
    if png is not None:
        class_map_quicklook(
            dataset.labels.values,
            dataset.labels.classes,
            png,
            title=dataset.card.title,
            source=f"catalog:{name}",
        )
    out.print(f"wrote {with_sidecars(output)}")
