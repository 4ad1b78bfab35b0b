"""The data catalog: one validated YAML card per benchmark scene, sensor or product.

Cards ship inside the package (``hsikit.data_catalog``), so a non-editable install finds them.
File names in cards are plain names — never paths — because they become names in the cache folder.
"""

from __future__ import annotations

import os
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from platformdirs import user_cache_dir
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from hsikit.classes import ClassTable
from hsikit.errors import CatalogError, validation_sentence

_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSpec(_Strict):
    name: str = Field(description="file name in the cache folder (no path)")
    role: Literal["cube", "ground_truth", "metadata", "archive"]
    url: HttpUrl | None = Field(None, description="direct download; None = manual download")
    bytes: int | None = Field(None, gt=0)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    array_keys: list[str] = Field(
        default_factory=list, description="known array names in .mat copies (hints only)"
    )

    @model_validator(mode="after")
    def _plain_name(self) -> FileSpec:
        if not _PLAIN_NAME.match(self.name) or ".." in self.name:
            raise ValueError(f"file name '{self.name}' must be a plain name, not a path")
        return self


class ClassSpec(_Strict):
    value: int = Field(gt=0)
    name: str
    colour: str = Field(pattern=r"^#[0-9a-f]{6}$")


class SpectralSpec(_Strict):
    band_count: int = Field(gt=0, description="bands in the distributed cube")
    range_nm: tuple[float, float]
    centres_nm: list[float] | None = Field(None, description="all sensor bands, before removal")
    fwhm_nm: list[float] | None = None
    removed_bands: list[int] = Field(
        default_factory=list, description="1-based sensor bands absent from the cube"
    )
    source: str

    @model_validator(mode="after")
    def _consistent(self) -> SpectralSpec:
        if self.centres_nm is not None:
            if len(self.centres_nm) - len(self.removed_bands) != self.band_count:
                raise ValueError(
                    f"{len(self.centres_nm)} centres minus "
                    f"{len(self.removed_bands)} removed ≠ {self.band_count} bands"
                )
            if self.fwhm_nm is not None and len(self.fwhm_nm) != len(self.centres_nm):
                raise ValueError("fwhm_nm and centres_nm differ in length")
            if any(not 1 <= b <= len(self.centres_nm) for b in self.removed_bands):
                raise ValueError("removed_bands must be 1-based sensor band numbers")
        return self

    def kept_centres(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Centre wavelengths and FWHM of the bands in the cube, in nm."""
        if self.centres_nm is None:
            return None
        keep = np.ones(len(self.centres_nm), bool)
        keep[np.asarray(self.removed_bands, int) - 1] = False
        fwhm = np.asarray(self.fwhm_nm if self.fwhm_nm else [np.nan] * keep.size)
        return np.asarray(self.centres_nm)[keep], fwhm[keep]


class Shape(_Strict):
    rows: int = Field(gt=0)
    cols: int = Field(gt=0)
    bands: int = Field(gt=0)


class DatasetCard(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str
    kind: Literal["scene", "sensor", "product"]
    sensor: str
    description: str
    gsd_m: float | None = Field(None, gt=0)
    shape: Shape | None = None
    files: list[FileSpec] = Field(default_factory=list)
    download_page: HttpUrl | None = None
    offline_source: Literal["tensorly"] | None = None
    classes: list[ClassSpec] = Field(default_factory=list)
    class_counts: list[int] | None = None
    spectral: SpectralSpec | None = None
    licence: str
    citation: str

    @model_validator(mode="after")
    def _consistent(self) -> DatasetCard:
        values = [c.value for c in self.classes]
        if len(set(values)) != len(values):
            raise ValueError("class values repeat")
        if len({c.colour for c in self.classes}) != len(self.classes):
            raise ValueError("two classes share a colour")
        if self.class_counts is not None and len(self.class_counts) != len(self.classes):
            raise ValueError("class_counts must have one entry per class")
        if self.shape and self.spectral and self.shape.bands != self.spectral.band_count:
            raise ValueError("shape.bands differs from spectral.band_count")
        return self

    @property
    def class_table(self) -> ClassTable:
        return ClassTable.from_records(c.model_dump() for c in self.classes)

    def file(self, role: str) -> FileSpec | None:
        return next((f for f in self.files if f.role == role), None)


def catalog_folder() -> Path:
    return Path(str(resources.files("hsikit.data_catalog")))


def load_card(path: Path) -> DatasetCard:
    try:
        document = yaml.safe_load(path.read_text())
        card = DatasetCard.model_validate(document)
    except yaml.YAMLError as exc:
        raise CatalogError(path, f"the card is not valid YAML ({exc})", "fix the card") from exc
    except ValidationError as exc:
        raise CatalogError(
            path, f"invalid card: {validation_sentence(exc)}", "fix the card"
        ) from exc
    if card.name != path.stem:
        raise CatalogError(
            path, f"the card's name '{card.name}' differs from its file name", "rename one of them"
        )
    return card


@cache
def catalog() -> dict[str, DatasetCard]:
    """Every card, by name."""
    return {p.stem: load_card(p) for p in sorted(catalog_folder().glob("*.yaml"))}


def get_card(name: str) -> DatasetCard:
    cards = catalog()
    if name not in cards:
        raise CatalogError(None, f"unknown dataset '{name}'", f"known datasets: {', '.join(cards)}")
    return cards[name]


def cache_folder() -> Path:
    """Where fetched data live: ``$HSIKIT_DATA``, else the platform cache folder."""
    return Path(os.environ.get("HSIKIT_DATA") or user_cache_dir("hsikit")) / "data"


def dataset_folder(name: str) -> Path:
    return cache_folder() / name
