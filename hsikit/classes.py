"""Class tables: value → name → RGB colour, fixed per table so maps look the same on every run."""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: A fixed qualitative palette for class tables that bring no colours (vector labels).
PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
]
UNLABELLED = 0


def palette_colour(index: int) -> tuple[int, int, int]:
    """Colour number ``index`` (0-based): the fixed palette, then golden-ratio hues beyond it."""
    if index < len(PALETTE):
        return PALETTE[index]
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.9)
    return round(r * 255), round(g * 255), round(b * 255)


def value_lookup(
    keys: Sequence[int], targets: Sequence[int], size: int = 0, fill: int = -1
) -> np.ndarray:
    """An array ``lookup`` with ``lookup[key] = target`` (``fill`` elsewhere), long enough for
    every key and ``size``: class values to indices or to other values in one gather."""
    lookup = np.full(max([size - 1, *keys], default=0) + 1, fill, np.int64)
    lookup[np.asarray(keys, np.int64)] = np.asarray(targets, np.int64)
    return lookup


def default_class_name(value: int) -> str:
    """The name of a class that comes without one: one rule for labels, maps and tables."""
    return f"class {value}"


def hex_colour(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def parse_colour(text: str) -> tuple[int, int, int]:
    value = text.strip().lstrip("#")
    if len(value) != 6:
        raise ValueError(f"colour '{text}' is not #rrggbb")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


@dataclass(frozen=True)
class ClassEntry:
    value: int
    name: str
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class ClassTable:
    """Classes ordered by value; value 0 is reserved for unlabelled / nodata."""

    entries: tuple[ClassEntry, ...]

    def __post_init__(self) -> None:
        values = [e.value for e in self.entries]
        if len(set(values)) != len(values):
            raise ValueError("class values must be unique")
        if any(v <= UNLABELLED for v in values):
            raise ValueError("class values must be positive (0 means unlabelled)")

    @classmethod
    def from_names(cls, names: Iterable[str]) -> ClassTable:
        """Values 1…K in the given order, colours from the fixed palette."""
        return cls(tuple(ClassEntry(i + 1, str(n), palette_colour(i)) for i, n in enumerate(names)))

    @classmethod
    def from_values(cls, values: Iterable[int], names: dict[int, str] | None = None) -> ClassTable:
        """Classes for the given values, named from ``names`` or by the default rule, colours
        from the fixed palette in value order."""
        names = names or {}
        return cls(
            tuple(
                ClassEntry(v, names.get(v, default_class_name(v)), palette_colour(i))
                for i, v in enumerate(sorted(set(values)))
            )
        )

    @classmethod
    def from_records(cls, records: Iterable[dict]) -> ClassTable:
        return cls(
            tuple(
                ClassEntry(int(r["value"]), str(r["name"]), parse_colour(r["colour"]))
                for r in sorted(records, key=lambda r: int(r["value"]))
            )
        )

    def to_records(self) -> list[dict]:
        return [
            {"value": e.value, "name": e.name, "colour": hex_colour(e.colour)} for e in self.entries
        ]

    @property
    def values(self) -> list[int]:
        return [e.value for e in self.entries]

    @property
    def max_value(self) -> int:
        return max(self.values, default=0)

    def name_of(self, value: int) -> str:
        return next((e.name for e in self.entries if e.value == value), default_class_name(value))

    def __len__(self) -> int:
        return len(self.entries)
