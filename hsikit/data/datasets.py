"""``load(name)``: a catalog scene as (scene, labels, class table), ready to use.

Indian Pines comes from the ``tensorly`` package (offline); other scenes from the cache folder,
filled by ``hsikit data fetch`` / ``hsikit data import``. The catalog card supplies the class table
and, where known, the band centres (the benchmark ``.mat`` files carry none).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.data.catalog import DatasetCard, dataset_folder, get_card
from hsikit.data.fetch import cached_file
from hsikit.data.labels import Labels
from hsikit.errors import CatalogError, InputError
from hsikit.readers import open_scene
from hsikit.scene import BandInfo, Scene


@dataclass
class Dataset:
    card: DatasetCard
    scene: Scene
    labels: Labels

    @property
    def name(self) -> str:
        return self.card.name


def load(name: str) -> Dataset:
    card = get_card(name)
    if card.kind != "scene":
        raise CatalogError(
            None,
            f"'{name}' is a {card.kind} card, not a scene",
            "open product files directly, e.g. 'hsikit info PRODUCT'",
        )
    if card.offline_source == "tensorly":
        scene, truth = _from_tensorly(card)
    else:
        scene, truth = _from_cache(card)
    scene = scene.with_band_info(_card_bands(card, scene))
    scene.ground_truth = truth
    return Dataset(card, scene, Labels(truth, card.class_table, f"catalog:{name}"))


def _card_bands(card: DatasetCard, scene: Scene) -> BandInfo:
    spectral = card.spectral
    kept = spectral.kept_centres() if spectral else None
    if spectral is None or kept is None or kept[0].size != scene.count:
        return scene.band_info()
    return BandInfo.build(
        scene.count,
        wavelength=kept[0],
        fwhm=kept[1],
        name=[f"{w:.1f} nm" for w in kept[0]],
        source=f"catalog card ({spectral.source})",
    )


def _from_tensorly(card: DatasetCard) -> tuple[Scene, np.ndarray]:
    spec = importlib.util.find_spec("tensorly")
    if spec is None or spec.origin is None:
        raise CatalogError(
            None,
            f"'{card.name}' is read from the tensorly package, which is not installed",
            "install it with: pip install 'hsikit[datasets]'",
        )
    folder = Path(spec.origin).parent / "datasets" / "data"
    cube_file, gt_file = folder / "Indian_pines_corrected.npy", folder / "Indian_pines_gt.npy"
    if not (cube_file.is_file() and gt_file.is_file()):
        raise CatalogError(
            folder,
            "tensorly does not ship the Indian Pines files here",
            "install tensorly 0.8 or newer",
        )
    cube = np.load(cube_file, mmap_mode="r", allow_pickle=False)  # (rows, cols, bands)
    truth = np.load(gt_file, allow_pickle=False)

    def read(bands: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        return np.ascontiguousarray(cube[rows, cols][:, :, bands].transpose(2, 0, 1))

    rows, cols, count = cube.shape
    scene = Scene.from_reader(
        read,
        shape=(count, rows, cols),
        dtype=cube.dtype,
        bands=BandInfo.build(count),
        path=f"catalog:{card.name}",
        format="tensorly (Indian Pines)",
        notes=["pixel grid: the benchmark scene carries no georeferencing"],
    )
    return scene, truth


def _from_cache(card: DatasetCard) -> tuple[Scene, np.ndarray]:
    cube_file, gt_file = cached_file(card, "cube"), cached_file(card, "ground_truth")
    if cube_file is None or gt_file is None:
        raise CatalogError(
            dataset_folder(card.name),
            f"'{card.name}' is not in the cache",
            f"run 'hsikit data fetch {card.name}' (or 'hsikit data import')",
        )
    scene = open_scene(cube_file)
    truth = open_scene(gt_file).ground_truth
    if truth is None:
        raise InputError(gt_file, "no ground-truth array found", "re-import the file")
    if truth.shape != (scene.height, scene.width):
        raise InputError(
            gt_file,
            f"ground truth is {truth.shape} but the cube is {scene.height}×{scene.width}",
            "re-import matching files",
        )
    return scene, truth


def resolve_scene(argument: str, **options: Any) -> Scene:
    """A path, or else a catalog dataset name — what every ``SCENE`` argument of the CLI accepts."""
    path = Path(argument)
    if path.exists() or "/" in argument or path.suffix:
        return open_scene(path, **options)
    try:
        return load(argument).scene
    except CatalogError as exc:
        if "unknown dataset" in exc.problem:
            raise InputError(
                path,
                "no such file or folder (nor a catalog dataset name)",
                "check the path, or see 'hsikit data list'",
            ) from exc
        raise
