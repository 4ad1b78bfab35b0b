"""The manifest of a batch-mapping run: every scene, its checksums, grid and tile jobs, in
``OUTDIR/manifest.json``.

Planning opens each scene's header (not its pixels), checks that the bundle can map it, and
lists its tile jobs. A scene that cannot be mapped is planned as a failure with its sentence.
The checksums make a rerun safe: a file whose size and modification time are unchanged keeps its
recorded sha256, and any change gives new tile keys, so stale tiles are never reused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from affine import Affine
from pydantic import BaseModel, ConfigDict, ValidationError
from rasterio.crs import CRS

from hsikit.bundle import Bundle
from hsikit.data.scene_lists import SceneRef
from hsikit.errors import HsikitError, InputError, validation_sentence
from hsikit.predict.tiles import TileJob, digest, plan_tiles
from hsikit.readers import vrt
from hsikit.scene import Grid, Scene
from hsikit.spectral_resampling import BandMode, adaptation, for_bundle
from hsikit.writers.atomic import write_text
from hsikit.writers.provenance import made_at, sha256_of

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileStamp(Record):
    path: str
    size: int
    mtime_ns: int
    sha256: str


class GridRecord(Record):
    width: int
    height: int
    transform: tuple[float, float, float, float, float, float]
    crs: str | None  # WKT

    @classmethod
    def of(cls, grid: Grid) -> GridRecord:
        t = grid.transform
        crs = grid.crs.to_wkt() if grid.crs is not None else None
        return cls(width=grid.width, height=grid.height, transform=t[:6], crs=crs)

    @property
    def grid(self) -> Grid:
        crs = CRS.from_wkt(self.crs) if self.crs is not None else None
        return Grid(self.width, self.height, Affine(*self.transform), crs)


class PlannedScene(Record):
    id: str
    source: str
    item: str | None = None
    files: list[FileStamp] = []
    grid: GridRecord | None = None
    tiles: list[tuple[int, int, int, int, str]] = []
    error: str | None = None
    bands: str | None = None  # what was done to the scene's bands, for the map's provenance

    def tile_jobs(self) -> list[TileJob]:
        return [TileJob(self.id, *tile) for tile in self.tiles]

    @property
    def key(self) -> str:
        """What the scene's map depends on: all its tiles."""
        return digest([tile[4] for tile in self.tiles])


class MappingOptions(Record):
    window: int
    confidence: bool
    precision: str = "fp32"
    bands: BandMode = "own"


class BundleRecord(Record):
    path: str
    sha256: str


class Manifest(Record):
    format: int = MANIFEST_FORMAT
    created: str  # ISO time: the maps' provenance time, kept by every resumed run
    bundle: BundleRecord
    options: MappingOptions
    scenes: list[PlannedScene]

    def planned(self) -> list[PlannedScene]:
        return [s for s in self.scenes if s.error is None]


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of an earlier run in ``folder`` (None if there is none)."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.model_validate_json(path.read_text())
    except (ValidationError, ValueError) as exc:
        reason = validation_sentence(exc) if isinstance(exc, ValidationError) else str(exc)
        raise InputError(
            path,
            f"the run's manifest is damaged ({reason})",
            "delete the output folder's manifest.json to plan the run anew",
        ) from exc


def write_manifest(folder: Path, manifest: Manifest) -> None:
    write_text(folder / MANIFEST, manifest.model_dump_json(indent=1), what="a run manifest")


def source_files(path: Path) -> list[Path]:
    """The files a scene is read from: the file and its siblings of the same name with another
    ending (ENVI ``.hdr``/``.img``, ``.aux.xml``), every file of a folder (Zarr, SAFE), and
    the tiles of a VRT mosaic (a changed tile changes the map)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    if not path.is_file():
        return []
    stem = path.name.split(".")[0]
    siblings = [p for p in path.parent.glob(f"{glob_escape(stem)}.*") if p.is_file()]
    tiles = [s.file for band in vrt.band_sources(path) for s in band] if vrt.sniff(path) else []
    return sorted({path, *siblings, *tiles})


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def stamp_files(paths: list[Path], known: dict[str, FileStamp]) -> list[FileStamp]:
    """Size, modification time and sha256 of each file; a file unchanged since ``known`` was
    stamped keeps its checksum instead of being read again."""
    stamps = []
    for path in paths:
        status = path.stat()
        earlier = known.get(str(path))
        if earlier is not None and (earlier.size, earlier.mtime_ns) == (
            status.st_size,
            status.st_mtime_ns,
        ):
            stamps.append(earlier)
            continue
        stamps.append(
            FileStamp(
                path=str(path),
                size=status.st_size,
                mtime_ns=status.st_mtime_ns,
                sha256=sha256_of(path),
            )
        )
    return stamps


def scene_ids(sources: list[str]) -> list[str]:
    """Short, unique, file-name-safe ids from the scenes' names, in order."""
    ids: list[str] = []
    for source in sources:
        name = Path(source.rstrip("/")).name.split(".")[0] or "scene"
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "scene"
        candidate, n = base, 2
        while candidate in ids:
            candidate, n = f"{base}-{n}", n + 1
        ids.append(candidate)
    return ids


def plan_run(
    refs: list[SceneRef],
    bundle: Bundle,
    options: MappingOptions,
    *,
    open_scene: Callable[[str], Scene],
    previous: Manifest | None = None,
    log: Callable[[str], object] = lambda _: None,
) -> Manifest:
    """Plan every scene; a compatible ``previous`` manifest lends its checksums and its time."""
    assert bundle.path is not None, "batch mapping maps a bundle loaded from a file"
    bundle_record = BundleRecord(path=str(bundle.path), sha256=bundle.sha256() or "")
    known = {f.path: f for s in (previous.scenes if previous else []) for f in s.files}
    scenes = []
    for ref, scene_id in zip(refs, scene_ids([r.source for r in refs])):
        if ref.error is not None:
            scenes.append(
                PlannedScene(id=scene_id, source=ref.source, item=ref.item, error=ref.error)
            )
            continue
        try:
            scenes.append(
                _plan_scene(ref, scene_id, bundle, bundle_record, options, open_scene, known)
            )
        except HsikitError as exc:
            scenes.append(
                PlannedScene(id=scene_id, source=ref.source, item=ref.item, error=exc.sentence())
            )
        log(f"planned {scene_id}")
    created = previous.created if previous is not None else made_at().isoformat()
    return Manifest(created=created, bundle=bundle_record, options=options, scenes=scenes)


def _plan_scene(
    ref: SceneRef,
    scene_id: str,
    bundle: Bundle,
    bundle_record: BundleRecord,
    options: MappingOptions,
    open_scene: Callable[[str], Scene],
    known: dict[str, FileStamp],
) -> PlannedScene:
    # refuses a scene without the bundle's bands (unless adapted as asked), with its sentence
    scene = for_bundle(open_scene(ref.source), bundle, options.bands)
    files = stamp_files(source_files(Path(scene.path)), known)
    depends_on = {
        "scene": [f.sha256 for f in files] or [scene.path],
        "bundle": bundle_record.sha256,
        "options": options.model_dump(),
    }
    tiles = plan_tiles(scene_id, scene.height, scene.width, options.window, depends_on)
    return PlannedScene(
        id=scene_id,
        source=ref.source,
        item=ref.item,
        files=files,
        grid=GridRecord.of(scene.grid),
        tiles=[(t.row, t.col, t.height, t.width, t.key) for t in tiles],
        bands=adaptation(scene),
    )


def compatible(previous: Manifest, bundle_sha: str, options: MappingOptions) -> bool:
    """Whether an earlier run in the same folder mapped with this bundle and these options."""
    return previous.bundle.sha256 == bundle_sha and previous.options == options


def describe_mismatch(previous: Manifest, folder: Path) -> str:
    return (
        f"{os.fspath(folder)} holds a run with another bundle or other options "
        f"(bundle {previous.bundle.path}, window {previous.options.window}, "
        f"confidence {previous.options.confidence}, precision {previous.options.precision})"
    )
