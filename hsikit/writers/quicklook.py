"""PNG quicklooks: true colour (or chosen bands) for cubes, class maps with a legend.

Reads are decimated to at most ``max_size`` pixels on the long side, so a quicklook of a huge
scene costs three strided band reads, never the whole cube.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from hsikit.classes import ClassTable  # noqa: E402
from hsikit.errors import InputError  # noqa: E402
from hsikit.scene import Scene  # noqa: E402
from hsikit.writers.atomic import check_output, staged_output  # noqa: E402
from hsikit.writers.provenance import provenance  # noqa: E402

TRUE_COLOUR_NM = (640.0, 550.0, 460.0)
SUFFIXES = (".png",)
WHAT = "a PNG"


def check_png_output(path: str | Path, inputs: Sequence[str | Path] = ()) -> Path:
    """Refuse, before any work, a PNG path that could not be written safely."""
    return check_output(path, suffixes=SUFFIXES, what=WHAT, inputs=inputs)


def _save_png(path: Path, save: Callable[[Path, dict[str, str]], None], **facts: object) -> Path:
    """``save(target, metadata)`` into a staged PNG, with provenance in its text chunks."""
    tags = provenance(**facts)
    metadata = {"Software": tags["TIFFTAG_SOFTWARE"], "Creation Time": tags["HSIKIT_CREATED"]}
    if "HSIKIT_SOURCE" in tags:
        metadata["Source"] = tags["HSIKIT_SOURCE"]
    with staged_output(path, suffixes=SUFFIXES, what=WHAT) as stage:
        save(stage / path.name, metadata)
    return path


def parse_bands(text: str) -> list[int]:
    """``"30,20,10"`` (1-based, as the user counts) → zero-based band indices: three or one."""
    try:
        bands = [int(item) - 1 for item in text.split(",")]
    except ValueError:
        raise InputError(
            None,
            f"--bands '{text}' is not a list of band numbers",
            "write three 1-based bands, e.g. --bands 30,20,10 (or one)",
        ) from None
    if len(bands) not in (1, 3):
        raise InputError(
            None,
            f"--bands names {len(bands)} bands; a quicklook shows three "
            "(red, green, blue) or one (grey)",
            "write e.g. --bands 30,20,10",
        )
    return bands


def decimation(height: int, width: int, max_size: int) -> int:
    """Read step that keeps the longest side at most ``max_size`` pixels."""
    return max(1, math.ceil(max(height, width) / max_size))


def display_bands(scene: Scene, bands: Sequence[int] | None = None) -> list[int]:
    """Zero-based bands to show: given, else nearest 640/550/460 nm, else the first 3 (or 1)."""
    if bands is not None:
        bad = [b for b in bands if not 0 <= b < scene.count]
        if bad:
            raise InputError(
                scene.path,
                f"band(s) {', '.join(str(b + 1) for b in bad)} do not "
                f"exist (the scene has {scene.count})",
                f"choose bands from 1 to {scene.count}",
            )
        return list(bands)
    wl = scene.wavelengths
    if np.isfinite(wl).any() and np.nanmin(wl) <= 500 and np.nanmax(wl) >= 600:
        return scene.nearest_bands(TRUE_COLOUR_NM)
    return [0, 1, 2] if scene.count >= 3 else [0]


def bands_shown(scene: Scene, bands: Sequence[int] | None, chosen: Sequence[int]) -> str:
    """What the quicklook shows, said to the user: chosen bands, true colour, or the first
    bands of a scene whose wavelengths cannot make true colour."""
    names = ", ".join(str(scene.band_values("name")[b]) for b in chosen)
    if bands is not None:
        return f"bands {', '.join(str(b + 1) for b in chosen)} ({names})"
    wl = scene.wavelengths
    if np.isfinite(wl[list(chosen)]).all() and len(chosen) == 3:
        return "true colour: " + ", ".join(f"{wl[b]:.0f} nm" for b in chosen)
    return (
        f"bands {', '.join(str(b + 1) for b in chosen)} ({names}): the scene has no visible "
        "wavelengths for true colour (choose others with --bands)"
    )


def stretch(
    values: np.ndarray, valid: np.ndarray, low: float = 2.0, high: float = 98.0
) -> np.ndarray:
    """Per-band percentile stretch to 0–1 over valid pixels."""
    out = np.zeros_like(values, dtype="float32")
    for i, band in enumerate(values):
        finite = band[valid & np.isfinite(band)]
        if finite.size == 0:
            continue
        lo, hi = np.percentile(finite, [low, high])
        out[i] = np.clip((band - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    return np.nan_to_num(out)


def scene_quicklook(
    scene: Scene, path: str | Path, bands: Sequence[int] | None = None, max_size: int = 1024
) -> Path:
    """True-colour (or chosen-band) PNG; nodata is transparent."""
    chosen = display_bands(scene, bands)
    step = decimation(scene.height, scene.width, max_size)
    values, valid = scene.read(bands=chosen, step=step)
    image = stretch(values, valid)
    rgb = np.repeat(image, 3, axis=0) if len(chosen) == 1 else image
    rgba = np.concatenate([rgb, valid[None].astype("float32")]).transpose(1, 2, 0)
    return _save_png(
        Path(path),
        lambda target, metadata: plt.imsave(target, rgba, format="png", metadata=metadata),
        source=scene.path,
        bands=",".join(str(b + 1) for b in chosen),
    )


def class_map_quicklook(
    classes: np.ndarray,
    table: ClassTable,
    path: str | Path,
    title: str = "",
    max_size: int = 1024,
    source: str | None = None,
) -> Path:
    """A class map with a legend of class names and colours; value 0 is left blank."""
    step = decimation(classes.shape[0], classes.shape[1], max_size)
    shown = classes[::step, ::step]
    colours = np.ones((table.max_value + 1, 4))
    colours[0] = (1, 1, 1, 0)
    for entry in table.entries:
        colours[entry.value, :3] = np.asarray(entry.colour) / 255.0
    height, width = shown.shape
    fig_w = 4 + 6 * min(1.0, width / max(height, 1))
    fig, ax = plt.subplots(figsize=(fig_w + 3, 6), dpi=110)
    ax.imshow(
        shown, cmap=ListedColormap(colours), vmin=0, vmax=table.max_value, interpolation="nearest"
    )
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    present = set(np.unique(shown).tolist())
    handles = [
        Patch(
            facecolor=(e.colour[0] / 255.0, e.colour[1] / 255.0, e.colour[2] / 255.0),
            edgecolor="black",
            linewidth=0.4,
            label=f"{e.value} {e.name}",
        )
        for e in table.entries
        if e.value in present
    ]
    ax.legend(
        handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False
    )
    try:
        return _save_png(
            Path(path),
            lambda target, metadata: fig.savefig(
                target, bbox_inches="tight", format="png", metadata=metadata
            ),
            source=source,
        )
    finally:
        plt.close(fig)


def class_map_png(class_map: Path, png: Path) -> Path:
    """The legend PNG of a class map hsikit wrote, from a decimated read of it."""
    from hsikit.readers import open_scene
    from hsikit.writers.classmap import read_class_table

    written = open_scene(class_map)
    step = decimation(written.height, written.width, 1024)
    table = read_class_table(class_map)
    assert table is not None  # a class map hsikit wrote
    return class_map_quicklook(
        written.read_raw(bands=[0], step=step)[0],
        table,
        png,
        title=class_map.name,
        source=str(class_map),
    )
