"""Tile jobs, the unit of work of batch mapping: one window of one scene, predicted exactly as
``hsikit classify`` predicts it (same halo, smoothing margin and batches), written to a file of
its own by one atomic rename.

A tile file's name carries the key of everything the tile depends on (the scene's and the
bundle's checksums, the window, the options), so a rerun recognises finished work and never
trusts a tile made from other inputs. Nothing here imports dask: :mod:`hsikit.jobs.mapping` runs
these functions on a dask.distributed cluster, and any other runner could.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from hsikit.bundle import Bundle
from hsikit.predict.classify import window_scores
from hsikit.scene import Scene
from hsikit.writers.classmap import CLASS_NODATA

#: Bumped when what a tile file holds changes: older tiles then no longer match their key.
TILE_FORMAT = 1


@dataclass(frozen=True)
class TileJob:
    """Scene ``scene`` (its id in the run), core window at (``row``, ``col``) of the run's
    window grid; ``key`` identifies the inputs the tile is made from."""

    scene: str
    row: int
    col: int
    height: int
    width: int
    key: str

    @property
    def window(self) -> Window:
        return Window(self.col, self.row, self.width, self.height)

    def path_in(self, tiles: Path) -> Path:
        return tiles / self.scene / f"r{self.row:06d}_c{self.col:06d}_{self.key[:20]}.npz"


def digest(facts: object) -> str:
    """sha256 of a JSON-able description: the key of a tile or a scene's map."""
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def plan_tiles(
    scene_id: str, height: int, width: int, window: int, depends_on: Mapping[str, object]
) -> list[TileJob]:
    """The tile jobs covering a ``height × width`` scene, row by row, as classify's windows."""
    jobs = []
    for row in range(0, height, window):
        for col in range(0, width, window):
            h, w = min(window, height - row), min(window, width - col)
            key = digest({"format": TILE_FORMAT, "window": [row, col, h, w], **depends_on})
            jobs.append(TileJob(scene_id, row, col, h, w, key))
    return jobs


def predict_tile(
    job: TileJob, scene: Scene, bundle: Bundle, window: int, *, confidence: bool
) -> dict[str, np.ndarray]:
    """The tile's class values (0 at nodata) and, if asked, the mapped class's probability."""
    ((core, scores, valid),) = window_scores(
        scene, bundle, window=window, only={(job.row, job.col)}
    )
    if (core.row_off, core.col_off, core.height, core.width) != (
        job.row,
        job.col,
        job.height,
        job.width,
    ):
        raise ValueError(f"tile {job} does not match the scene's window grid")
    values = np.asarray(bundle.classes.values)
    arrays = {"classes": np.where(valid, values[scores.argmax(axis=0)], CLASS_NODATA)}
    arrays["classes"] = arrays["classes"].astype("uint16")
    if confidence:
        arrays["confidence"] = scores.max(axis=0).astype("float32")
    return arrays


def write_tile(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` whole or not at all (a killed writer leaves no tile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.partial")
    try:
        with open(partial, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub: names as kwargs
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_tile(path: Path, job: TileJob, *, confidence: bool) -> dict[str, np.ndarray] | None:
    """A finished tile's arrays, or None when the file is absent or not a whole tile of ``job``
    (plain arrays only: nothing in a tile file is ever unpickled)."""
    wanted = {"classes", *(["confidence"] if confidence else [])}
    try:
        with np.load(path, allow_pickle=False) as data:
            if not wanted <= set(data.files):
                return None
            arrays = {name: data[name] for name in wanted}
    except (OSError, ValueError, EOFError):
        return None
    shape = (job.height, job.width)
    return arrays if all(a.shape == shape for a in arrays.values()) else None


def finished(job: TileJob, tiles: Path, *, confidence: bool) -> bool:
    return read_tile(job.path_in(tiles), job, confidence=confidence) is not None
