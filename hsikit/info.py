"""What ``hsikit info`` reports about a scene, as a plain dict (the CLI renders it, or prints
JSON)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rasterio.windows import Window

from hsikit.scene import Scene

#: Scenes up to this many pixels get an exact nodata fraction; larger ones are sampled.
EXACT_PIXELS = 1_000_000
SAMPLE_WINDOWS = 8  # per side
SAMPLE_SIZE = 32
#: Side of the windows a class map's pixels are counted in (memory stays one window).
COUNT_WINDOW = 1024


def sample_windows(scene: Scene) -> list[Window]:
    """Windows covering a small scene, or an even grid of small windows over a large one (what
    statistics of a scene of any size are estimated from)."""
    if scene.width * scene.height <= EXACT_PIXELS:
        return list(scene.windows(512))
    high, wide = min(SAMPLE_SIZE, scene.height), min(SAMPLE_SIZE, scene.width)
    rows = np.linspace(0, scene.height - high, SAMPLE_WINDOWS).astype(int)
    cols = np.linspace(0, scene.width - wide, SAMPLE_WINDOWS).astype(int)
    return [Window(int(c), int(r), wide, high) for r in rows for c in cols]


def nodata_fraction(scene: Scene) -> tuple[float, bool]:
    """Fraction of invalid pixels and whether it is exact (False = estimated from a sample)."""
    windows = sample_windows(scene)
    invalid = total = 0
    for window in windows:
        _, valid = scene.read(window)
        invalid += int((~valid).sum())
        total += valid.size
    return invalid / max(total, 1), scene.width * scene.height <= EXACT_PIXELS


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def summarize(scene: Scene) -> dict[str, Any]:
    t = scene.transform
    corners = [t @ (c, r) for c in (0, scene.width) for r in (0, scene.height)]
    xs, ys = zip(*corners)
    wl = scene.wavelengths
    bad = np.flatnonzero(scene.bad_bands)
    fraction, exact = nodata_fraction(scene)
    scale, offset = scene.band_values("scale"), scene.band_values("offset")
    crs = scene.crs
    truth = scene.truth_counts() if scene.has_ground_truth else None
    return {
        "path": scene.path,
        "format": scene.format,
        "bands": scene.count,
        "rows": scene.height,
        "cols": scene.width,
        "dtype": str(scene.dtype),
        "crs": None
        if crs is None
        else (f"EPSG:{crs.to_epsg()}" if crs.to_epsg() else crs.to_wkt()),
        "resolution": [math.hypot(t.a, t.d), math.hypot(t.b, t.e)],
        "rotated": bool(t.b or t.d),
        "transform": list(t)[:6],
        "bounds": {"left": min(xs), "bottom": min(ys), "right": max(xs), "top": max(ys)},
        "nodata": None
        if scene.nodata is None
        else _finite(scene.nodata)
        if scene.nodata is None or np.isfinite(scene.nodata)
        else "nan",
        "nodata_fraction": round(fraction, 6),
        "nodata_fraction_exact": exact,
        "wavelength_range_nm": (
            None if not np.isfinite(wl).any() else [float(np.nanmin(wl)), float(np.nanmax(wl))]
        ),
        "spectral_metadata_source": scene.data.attrs.get("spectral_metadata_source", "none"),
        "bad_bands": [int(b) + 1 for b in bad],
        "scale": sorted({float(v) for v in scale}),
        "offset": sorted({float(v) for v in offset}),
        "band_names": [str(n) for n in scene.band_values("name")],
        "ground_truth": None
        if truth is None
        else {"classes": len(truth), "labelled_pixels": sum(truth.values())},
        "ground_truth_candidates": _offgrid_candidates(scene),
        **class_areas(scene),
        "notes": list(scene.notes),
        "warnings": list(scene.warnings),
    }


def class_areas(scene: Scene) -> dict[str, Any]:
    """Pixels and ground area of each class of a class map (``classes`` None for a raster that
    is not one), tallied window by window as batch mapping tallies its maps; ``class_area_note``
    says why a grid has no areas (no CRS, a rotated geographic grid)."""
    from hsikit.evaluation.area import AreaUnknown, row_pixel_areas
    from hsikit.predict.assemble import ClassTally
    from hsikit.writers.classmap import CLASS_NODATA, read_class_table

    table = read_class_table(scene.path) if scene.format == "GeoTIFF" else None
    if table is None:
        return {"classes": None, "class_area_note": None}
    try:
        areas, note = row_pixel_areas(scene.grid), None
    except AreaUnknown as exc:
        areas, note = None, str(exc)
    tally = ClassTally(np.asarray(table.values), areas, note)
    for window in scene.windows(COUNT_WINDOW):
        block = scene.read_raw(window, bands=[0])[0]
        known = (block >= 0) & (block <= table.max_value)  # other values are no class
        tally.add(int(window.row_off), np.where(known, block, CLASS_NODATA), None)
    classes = tally.summary(table, with_confidence=False)["classes"]
    return {
        "classes": [{k: v for k, v in c.items() if k != "mean_confidence"} for c in classes],
        "class_area_note": note,
    }


def _offgrid_candidates(scene: Scene) -> list[dict[str, Any]]:
    """Ground truth a MATLAB file holds at another resolution than its cube, and what
    ``hsikit train`` does with it: the reader takes only ground truth on the cube's grid."""
    from hsikit.data.offgrid_truth import offgrid_truth

    return [
        {
            "name": truth.name,
            "shape": list(truth.shape),
            "cube": list(truth.grid),
            "description": truth.description(),
            "train": truth.what_train_does(),
        }
        for truth in offgrid_truth(scene)
    ]
