"""The batch-mapping scaling job (``kind: mapping_scaling``): ``hsikit map`` over many synthetic
scenes with 1, 2, … local workers, side by side in one run. Scaling is read against one worker
with one torch thread (one core's worth); one worker with every core as torch threads shows
what the workers add over torch's own threads.

Measured per worker count: throughput (Mpx/s), scaling efficiency against one worker, tiles/s,
mean compute per tile, the scheduler's overhead per tile (wall time of the tile phase × task
slots − the tiles' own compute, per tile, as a share of a tile's compute), effective read MB/s,
peak memory per worker, planning (checksums) and assembly time. The bundle is trained for one
epoch on the job's dataset, as in the mapping-speed job: speed does not depend on what it learnt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hsikit.documents import read_job
from hsikit.jobs.report import machine_sentence, publish, results_header
from hsikit.jobs.runner import in_child


class RunShape(BaseModel):
    """One configuration: local workers, and torch threads per worker (None: the cores shared
    out, as ``hsikit map`` chooses)."""

    model_config = ConfigDict(extra="forbid")
    workers: int = Field(gt=0)
    torch_threads: int | None = Field(None, gt=0)


class MappingScalingJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["mapping_scaling"]
    name: str
    dataset: str = "indian_pines"
    model: str = "cnn3d"
    scenes: int = Field(20, gt=0)
    side: int = Field(1000, gt=0)
    bands: int = Field(200, gt=0)
    runs: list[RunShape] = Field(
        default_factory=lambda: [
            RunShape(workers=1, torch_threads=1),
            RunShape(workers=1),
            RunShape(workers=2),
        ],
        min_length=1,
    )
    window: int = Field(256, gt=0)
    #: map with this bundle instead of ``model`` trained on ``dataset`` (the scenes get its bands)
    bundle: str | None = None
    output: str = "bench_output/mapping_scaling"
    results: str
    report: str


def load_mapping_scaling_job(path: Path) -> MappingScalingJob:
    return read_job(path, MappingScalingJob, "mapping-scaling job")


def _scenes(job: MappingScalingJob, folder: Path, wavelengths: list[float], log: Any) -> list[Path]:
    """The synthetic scenes, with bands at ``wavelengths`` (kept between runs of the job:
    delete them to regenerate)."""
    from hsikit.jobs.memory import synthetic_scene

    bands = len(wavelengths)
    gigabytes = job.side**2 * bands * 4 / 2**30
    paths = []
    for index in range(job.scenes):
        path = folder / "scenes" / f"scene_{index:03d}.tif"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            in_child(synthetic_scene, path, gigabytes, bands, index, wavelengths)
            log(f"wrote {path}")
        paths.append(path)
    return paths


def _map(scenes: list[str], bundle: str, output: str, shape: RunShape, window: int) -> dict:
    """One ``hsikit map`` run: its measurements."""
    import shutil

    from hsikit.jobs.mapping import MapSettings, map_scenes, torch_threads

    shutil.rmtree(output, ignore_errors=True)  # the job's own folder: every run starts afresh
    workers = shape.workers
    settings = MapSettings(
        scenes=scenes,
        bundle=Path(bundle),
        output=Path(output),
        workers=workers,
        torch_threads=shape.torch_threads,
        window=window,
    )
    outcome = map_scenes(settings, log=lambda _: None)
    states = outcome.scenes.values()
    compute = sum(s.seconds for s in states)
    assembly = sum((s.summary or {}).get("assembly_seconds", 0.0) for s in states)
    pixels = sum(p.grid.width * p.grid.height for p in outcome.manifest.planned())
    read_bytes = sum(f.size for p in outcome.manifest.planned() for f in p.files)
    slots = workers  # one thread per worker
    tiles = max(outcome.tiles_run, 1)
    overhead = (outcome.tile_phase_seconds * slots - compute) / tiles
    return {
        "workers": workers,
        "torch_threads": torch_threads(settings),
        "failures": len(outcome.failures),
        "tiles": outcome.tiles_run,
        "pixels": pixels,
        "wall_s": outcome.wall_seconds,
        "plan_s": outcome.plan_seconds,
        "tile_phase_s": outcome.tile_phase_seconds,
        "mpx_per_s": pixels / outcome.tile_phase_seconds / 1e6,
        "tiles_per_s": outcome.tiles_run / outcome.tile_phase_seconds,
        "tile_compute_ms": 1000 * compute / tiles,
        "overhead_per_tile_ms": 1000 * overhead,
        "overhead_share": overhead / (compute / tiles),
        "read_mb_per_s": read_bytes / 2**20 / outcome.tile_phase_seconds,
        "assembly_s": assembly,
        "worker_peak_mb": max(outcome.worker_peak_mb.values(), default=None),
    }


def _bundle(job: MappingScalingJob, folder: Path) -> tuple[Path, list[float]]:
    """The bundle to map with and the band centres (nm) its scenes need: the job's own, or
    ``model`` trained one epoch on ``dataset`` (kept in ``folder`` between runs)."""
    from hsikit.bundle import load_bundle
    from hsikit.jobs.mapping_speed import train_for_speed, training_wavelengths

    if job.bundle is not None:
        meta = load_bundle(job.bundle).meta
        return Path(job.bundle), [float("nan") if w is None else w for w in meta.band_wavelengths]
    bundle = folder / f"{job.model}.safetensors"
    if not bundle.is_file():
        trained = in_child(train_for_speed, job.dataset, job.model, str(bundle), 2)
        if "error" in trained:
            raise RuntimeError(f"training {job.model} failed: {trained['error']}")
    return bundle, training_wavelengths(job.dataset)[: job.bands]


def run_mapping_scaling(job: MappingScalingJob, path: Path, log: Any = print) -> dict:

    folder = Path(job.output)
    folder.mkdir(parents=True, exist_ok=True)
    bundle, wavelengths = _bundle(job, folder)
    scenes = [str(p) for p in _scenes(job, folder, wavelengths, log)]
    runs = []
    for shape in job.runs:
        # in this process: a LocalCluster's workers cannot start inside in_child's daemonic pool
        name = f"run_{shape.workers}w_{shape.torch_threads or 'auto'}t"
        outcome = _map(scenes, str(bundle), str(folder / name), shape, job.window)
        runs.append(outcome)
        log(
            f"{shape.workers} workers × {outcome['torch_threads']} torch threads: "
            f"{outcome['mpx_per_s']:.3f} Mpx/s"
        )
    results = {
        **results_header(job.name, f"hsikit run {path.as_posix()}"),
        "job": job.model_dump(),
        "runs": runs,
    }
    publish(results, job.results, job.report, job.name, mapping_scaling_markdown(results))
    return results


def mapping_scaling_markdown(results: dict) -> str:
    """The table: scaling read against the first run (one worker × one torch thread)."""
    job, runs = results["job"], results["runs"]
    base = runs[0]
    lines = [
        f"Measured {results['date']} on {machine_sentence(results['machine'])} with "
        f"`{results['command']}`: "
        f"{job['scenes']} synthetic {job['side']} × {job['side']} × {job['bands']} float32 "
        f"scenes, `{job['model']}` trained one epoch on {job['dataset']}, tiles of "
        f"{job['window']} px, one dask thread per worker. Scaling is against the first row "
        f"({base['workers']} worker × {base['torch_threads']} torch thread).",
        "",
        "| workers × torch threads | Mpx/s | scaling | tiles/s | compute/tile (ms) "
        "| overhead/tile (ms) | overhead share | read MB/s | peak MB/worker | plan (s) "
        "| assembly (s) | failures |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        peak = "—" if r["worker_peak_mb"] is None else f"{r['worker_peak_mb']:.0f}"
        lines.append(
            f"| {r['workers']} × {r['torch_threads']} | {r['mpx_per_s']:.3f} | "
            f"{r['mpx_per_s'] / base['mpx_per_s']:.2f} × | {r['tiles_per_s']:.2f} | "
            f"{r['tile_compute_ms']:.0f} | {r['overhead_per_tile_ms']:.1f} | "
            f"{r['overhead_share']:.1%} | {r['read_mb_per_s']:.0f} | {peak} | "
            f"{r['plan_s']:.1f} | {r['assembly_s']:.1f} | {r['failures']} |"
        )
    return "\n".join(lines) + "\n"
