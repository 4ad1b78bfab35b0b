"""The memory check of a benchmark: map synthetic scenes of growing size, each in its own
process, and record peak memory — flat in scene size if mapping streams as it should."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hsikit.jobs.runner import in_child, peak_rss_mb

if TYPE_CHECKING:
    from hsikit.jobs.benchmark import Benchmark


def synthetic_scene(
    path: Path,
    gigabytes: float,
    bands: int,
    seed: int = 0,
    wavelengths: list[float] | None = None,
) -> dict:
    """A float32 GeoTIFF of about ``gigabytes`` with 4 spectrally distinct classes, written in
    windows so generating it needs little memory; ``wavelengths`` (nm) are written as band tags
    (for a model trained on a scene of that sensor)."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    side = round(np.sqrt(gigabytes * 2**30 / (bands * 4)))
    rng = np.random.default_rng(seed)
    means = rng.uniform(500, 3000, size=(4, bands)).astype("float32")
    profile = {
        "driver": "GTiff",
        "width": side,
        "height": side,
        "count": bands,
        "dtype": "float32",
        "crs": "EPSG:32633",
        "nodata": -9999.0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "BIGTIFF": "YES",
        "transform": Affine(10, 0, 500000, 0, -10, 4_000_000),
    }
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, side, 256):
            h = min(256, side - row)
            classes = (np.arange(side)[None, :] * 4 // side).repeat(h, 0)
            block = means[classes].transpose(2, 0, 1)
            block += rng.standard_normal(size=block.shape, dtype="float32") * 50
            dst.write(block, window=Window(0, row, side, h))
        for band, nm in enumerate(wavelengths or [], start=1):
            dst.update_tags(band, wavelength=f"{nm / 1000:.6f}", wavelength_units="Micrometers")
    return {}


def _map_scene(scene_path: str, bundle_path: str, output: str) -> dict:
    from hsikit.bundle import load_bundle
    from hsikit.predict.classify import classify_scene
    from hsikit.readers import open_scene

    started = time.perf_counter()
    summary = classify_scene(open_scene(scene_path), load_bundle(bundle_path), output)
    return {
        "seconds": time.perf_counter() - started,
        "pixels": summary["pixels"],
        "peak_rss_mb": peak_rss_mb(),
    }


def _train_small(scene_path: str, bundle_path: str, model: str) -> dict:
    """Train the memory-check model on a labelled strip along the top of the first scene."""
    import rasterio
    from rasterio.windows import Window

    from hsikit.training.config import TrainConfig
    from hsikit.training.fit import train

    labels_path = Path(bundle_path).with_name("labels.tif")
    with rasterio.open(scene_path) as src:
        side = src.width
        profile = src.profile | {"count": 1, "dtype": "uint8", "nodata": None}
    strip = (np.arange(side)[None, :] * 4 // side + 1).repeat(64, 0).astype("uint8")
    with rasterio.open(labels_path, "w", **profile) as dst:
        dst.write(strip[None], window=Window(0, 0, side, 64))
    train(
        TrainConfig(
            scenes=[scene_path],
            labels=[str(labels_path)],
            model=model,
            split="random",
            train_ratio=0.05,
        ),
        bundle_path,
        Path(bundle_path).with_name("report"),
        progress=False,
    )
    return {}


def run_memory_check(spec: Benchmark, log: Any = print) -> dict:
    check = spec.memory_check
    assert check is not None  # the job asks for it
    folder = Path(spec.output) / "memory"
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    bundle = folder / "model.safetensors"
    for index, size in enumerate(sorted(check.sizes_gb)):
        scene = folder / f"scene_{size:g}gb.tif"
        in_child(synthetic_scene, scene, size, check.bands)  # keeps this process small
        if index == 0:
            in_child(_train_small, str(scene), str(bundle), check.model)
        outcome = in_child(_map_scene, str(scene), str(bundle), str(folder / f"map_{size:g}.tif"))
        outcome.update(size_gb=size, file_bytes=scene.stat().st_size)
        results.append(outcome)
        log(
            f"memory check {size:g} GB: peak RSS {outcome.get('peak_rss_mb', float('nan')):.0f}"
            f" MB, {outcome.get('pixels', 0) / max(outcome.get('seconds', 1), 1e-9):.0f} px/s"
        )
        scene.unlink()
    return {"model": check.model, "bands": check.bands, "runs": results}


# -- report ----------------------------------------------------------------------------------------
