"""Where a batch-mapping run keeps each kind of file inside its output folder."""

from __future__ import annotations

from pathlib import Path

TILES, MAPS, SCENES, STAC = "tiles", "maps", "scenes", "stac"


def map_path(folder: Path, scene_id: str) -> Path:
    return folder / MAPS / f"{scene_id}.tif"
