"""The scenes a batch command is given: paths, globs, text files listing paths, STAC Items.

Each argument becomes one or more :class:`SceneRef`; one that cannot (a glob matching nothing,
a broken Item) becomes a reference carrying its one-sentence error, so a bad entry among good
ones is reported while the others are mapped.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from hsikit.errors import HsikitError, InputError

LIST_SUFFIXES = (".txt", ".lst", ".list")
GLOB_CHARACTERS = set("*?[")
#: Media types of raster assets, in the order an Item's asset is picked when none is named.
RASTER_MEDIA = ("image/tiff", "application/x-hdf", "application/x-netcdf", "application/x-zarr")


@dataclass(frozen=True)
class SceneRef:
    """``source`` opens the scene (a path or a catalog name); ``item`` is the STAC Item it came
    from; ``error`` the sentence saying why it cannot be used."""

    source: str
    item: str | None = None
    error: str | None = None


def expand_scenes(arguments: list[str], *, asset: str | None = None) -> list[SceneRef]:
    """Every scene the arguments name, in the order given, each file once."""
    refs: list[SceneRef] = []
    for argument in arguments:
        try:
            refs.extend(_expand(argument, asset))
        except HsikitError as exc:
            refs.append(SceneRef(argument, error=exc.sentence()))
    seen: set[str] = set()
    unique = []
    for ref in refs:
        same = os.path.realpath(ref.source) if os.path.exists(ref.source) else ref.source
        if same not in seen or ref.error is not None:
            seen.add(same)
            unique.append(ref)
    return unique


def _expand(argument: str, asset: str | None) -> list[SceneRef]:
    path = Path(argument).expanduser()
    if GLOB_CHARACTERS & set(argument) and not path.exists():
        matches = sorted(glob.glob(str(path), recursive=True))
        if not matches:
            raise InputError(argument, "the pattern matches no file", "check the pattern")
        return [ref for match in matches for ref in _expand(match, asset)]
    if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
        return [SceneRef(line) for line in _listed(path)]
    if path.suffix.lower() == ".json" and path.is_file():
        return [stac_item_scene(path, asset)]
    return [SceneRef(argument)]


def _listed(path: Path) -> list[str]:
    """Paths in a text file, one a line (``#`` comments, blank lines skipped), relative ones
    taken from the list's folder."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"the scene list cannot be read ({exc})", "check the file") from exc
    entries = [line.split("#", 1)[0].strip() for line in lines]
    return [str(path.parent / entry) for entry in entries if entry]


def stac_item_scene(path: Path, asset: str | None) -> SceneRef:
    """The scene a STAC Item's raster asset (``asset``, else its first data raster) points to."""
    import pystac

    try:
        item = pystac.Item.from_file(str(path))
    except Exception as exc:  # pystac raises many kinds for a file that is not an Item
        raise InputError(
            path, f"this is not a readable STAC Item ({type(exc).__name__}: {exc})", "check it"
        ) from exc
    if asset is not None:
        if asset not in item.assets:
            raise InputError(
                path,
                f"the STAC Item has no asset {asset!r} (it has: {', '.join(item.assets)})",
                "choose one with --asset",
            )
        chosen = item.assets[asset]
    else:
        rasters = [
            a
            for a in item.assets.values()
            if (a.media_type or "").split(";")[0] in RASTER_MEDIA
            and "data" in (a.roles or ["data"])
        ]
        if not rasters:
            raise InputError(
                path, "the STAC Item has no raster data asset", "name the asset with --asset"
            )
        chosen = rasters[0]
    href = chosen.get_absolute_href() or chosen.href
    if "://" in href and not href.startswith("file://"):
        raise InputError(
            path,
            f"the asset is remote ({href}); hsikit maps local files",
            "download the asset and point the Item (or the command) at the local file",
        )
    return SceneRef(href.removeprefix("file://"), item=str(path))
