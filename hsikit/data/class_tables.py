"""Class tables a user writes for raster labels, which carry only numbers: a CSV with columns
``value,name[,colour]`` (a header row, colours as ``#rrggbb``) or a JSON list of
``{"value", "name", "colour"}`` records. Classes the table leaves out keep the default name and
palette colour; values the table names but the labels lack are simply absent."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from hsikit.classes import ClassEntry, ClassTable, default_class_name, palette_colour, parse_colour
from hsikit.errors import InputError


def _records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            records = json.loads(text)
        except ValueError as exc:
            raise InputError(path, f"is not valid JSON ({exc})", "write a list of records") from exc
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise InputError(
                path,
                "must be a JSON list of {value, name, colour} records",
                'write e.g. [{"value": 1, "name": "water", "colour": "#1f78b4"}]',
            )
        return records
    return list(csv.DictReader(text.splitlines()))


def read_class_table_file(path: str | Path, present: list[int]) -> ClassTable:
    """The classes ``present`` in raster labels, named and coloured by the table at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such class table", "give a CSV or JSON class table")
    given: dict[int, tuple[str, tuple[int, int, int] | None]] = {}
    for number, record in enumerate(_records(path), start=1):
        try:
            value = int(str(record["value"]).strip())
            name = str(record["name"]).strip()
            colour = record.get("colour") or record.get("color")
            given[value] = (name, parse_colour(str(colour)) if colour else None)
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(
                path,
                f"entry {number} is not a class (value, name, optional #rrggbb colour): {exc}",
                "write one row per class: value,name,colour",
            ) from exc
    entries = []
    for index, value in enumerate(sorted(present)):
        name, colour = given.get(value, (default_class_name(value), None))
        entries.append(ClassEntry(value, name, colour or palette_colour(index)))
    return ClassTable(tuple(entries))
