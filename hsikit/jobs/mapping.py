"""Batch land-cover mapping on dask.distributed (``hsikit map``, ``kind: mapping``).

The client plans a manifest of tile jobs (:mod:`hsikit.predict.manifest`), submits the tiles
that are not finished yet to a ``LocalCluster`` (or an existing scheduler), assembles each
scene's map on a worker once its tiles are done, and writes the STAC catalogue, the VRT mosaics
and the run report. Workers load the bundle once each (and check its checksum), open each scene
once per thread, and write every tile by an atomic rename, so a run killed at any point — the
client or a worker — resumes where it stopped and ends with the same files. OUTDIR must be on a
file system every worker sees.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hsikit.errors import HsikitError, InputError, OutputError
from hsikit.jobs.run_layout import MAPS, SCENES, TILES, map_path
from hsikit.spectral_resampling import BandMode

#: Memory a worker is given at least (a window of a 200-band scene, the model, the writer).
MEMORY_PER_WORKER = 2 << 30


@dataclass(frozen=True)
class MapSettings:
    """What ``hsikit map`` is asked to do."""

    scenes: list[str]
    bundle: Path
    output: Path
    asset: str | None = None
    window: int = 256
    confidence: bool = False
    workers: int | None = None
    threads_per_worker: int = 1
    torch_threads: int | None = None  # per task; None: see torch_threads()
    scheduler: str | None = None
    device: str = "cpu"
    precision: str = "fp32"
    retries: int = 2
    bands: BandMode = "own"  # how a scene's bands become the bundle's (spectral_resampling)


@dataclass(frozen=True)
class TileContext:
    """What a worker needs besides the tile: shipped with every task (small, plain values)."""

    source: str
    bundle: str
    bundle_sha256: str
    tiles: str
    window: int
    confidence: bool
    device: str
    precision: str
    torch_threads: int
    bands: BandMode


@dataclass
class SceneProgress:
    pending: int
    seconds: float = 0.0
    error: str | None = None
    summary: dict | None = None


# ---- on the workers -------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _worker_bundle(path: str, sha256: str, device: str, precision: str, torch_threads: int):
    """The bundle, loaded once per worker process; a file changed since planning is refused."""
    from hsikit.bundle import load_bundle
    from hsikit.devices import use_threads
    from hsikit.writers.provenance import sha256_of

    use_threads(torch_threads)
    if sha256_of(path) != sha256:
        raise InputError(
            path,
            "the bundle changed after the run was planned (its checksum differs)",
            "rerun the command to plan with the new bundle, in a new output folder",
        )
    return load_bundle(path).to(device, precision)


_scenes = threading.local()


def _worker_scene(source: str):
    """The scene, opened once per worker thread (readers keep file handles that one thread
    at a time may use); the few last ones are kept."""
    from hsikit.data.datasets import resolve_scene

    opened: dict[str, Any] = _scenes.__dict__.setdefault("opened", {})
    if source not in opened:
        if len(opened) >= 4:
            opened.pop(next(iter(opened)))
        opened[source] = resolve_scene(source)
    return opened[source]


def _reported(run: Callable[[], dict]) -> dict:
    """``run()``; an hsikit error becomes ``{"error": sentence}`` (the scene's input is at
    fault: retrying cannot help), any other failure a plain RuntimeError dask can send back and
    retry (hsikit's errors take other constructor arguments than their message)."""
    try:
        return run()
    except HsikitError as exc:
        return {"error": exc.sentence()}
    except Exception as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None


def run_tile(job, context: TileContext) -> dict:
    """Predict one tile and write it (a task); a tile already on disk is not redone."""
    from hsikit.predict.tiles import finished, predict_tile, write_tile
    from hsikit.spectral_resampling import for_bundle

    def run() -> dict:
        tiles = Path(context.tiles)
        if finished(job, tiles, confidence=context.confidence):
            return {"seconds": 0.0}
        start = time.perf_counter()
        bundle = _worker_bundle(
            context.bundle,
            context.bundle_sha256,
            context.device,
            context.precision,
            context.torch_threads,
        )
        scene = for_bundle(_worker_scene(context.source), bundle, context.bands)
        arrays = predict_tile(job, scene, bundle, context.window, confidence=context.confidence)
        write_tile(job.path_in(tiles), arrays)
        return {"seconds": time.perf_counter() - start}

    return _reported(run)


def assemble(planned, output: str, manifest_facts: dict) -> dict:
    """Assemble a scene's map from its tiles (a task), record it, then drop the tiles."""
    from hsikit.classes import ClassTable
    from hsikit.predict.assemble import assemble_scene
    from hsikit.writers.atomic import write_text
    from hsikit.writers.provenance import precision_fact, provenance_at

    def run() -> dict:
        start = time.perf_counter()
        folder = Path(output)
        tags = provenance_at(
            datetime.fromisoformat(manifest_facts["created"]),
            source=planned.source,
            model=manifest_facts["model"],
            bundle=manifest_facts["bundle"],
            bundle_sha256=manifest_facts["bundle_sha256"],
            precision=precision_fact(manifest_facts["precision"]),
            bands=planned.bands,
        )
        summary = assemble_scene(
            planned,
            folder / TILES,
            map_path(folder, planned.id),
            ClassTable.from_records(manifest_facts["classes"]),
            confidence=manifest_facts["confidence"],
            tags=tags,
        )
        summary["assembly_seconds"] = time.perf_counter() - start
        record = {"key": planned.key, "summary": summary}
        write_text(folder / SCENES / f"{planned.id}.json", json.dumps(record, indent=1))
        shutil.rmtree(folder / TILES / planned.id, ignore_errors=True)
        return summary

    return _reported(run)


# ---- on the client ---------------------------------------------------------------------------


def finished_scene(folder: Path, planned) -> dict | None:
    """The recorded summary of a scene whose map an earlier run completed from these inputs."""
    record_path = folder / SCENES / f"{planned.id}.json"
    if not record_path.is_file() or not map_path(folder, planned.id).is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    return record["summary"] if record.get("key") == planned.key else None


def default_workers(threads_per_worker: int) -> int:
    """As many workers as the cores hold at ``threads_per_worker`` each, and memory allows."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, min((cores or 1) // threads_per_worker, memory // MEMORY_PER_WORKER))


@contextmanager
def connected(settings: MapSettings, log: Callable[[str], Any]) -> Iterator[Any]:
    """A dask client: of the scheduler named, else of a new LocalCluster."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise InputError(
            None,
            "batch mapping needs dask.distributed, which is not installed",
            "pip install 'hsikit[batch]'",
        ) from exc
    logging.getLogger("distributed").setLevel(logging.ERROR)
    if settings.scheduler is not None:
        try:
            client = Client(settings.scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(
                None,
                f"no dask scheduler answers at {settings.scheduler} ({exc})",
                "start one with 'dask scheduler' or leave out --scheduler",
            ) from exc
        with client:
            log(f"scheduler {settings.scheduler}, dashboard {client.dashboard_link}")
            yield client
        return
    workers = settings.workers or default_workers(settings.threads_per_worker)
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=settings.threads_per_worker,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        log(
            f"{workers} local workers × {settings.threads_per_worker} threads, "
            f"dashboard {client.dashboard_link}"
        )
        yield client


def torch_threads(settings: MapSettings) -> int:
    """Torch threads per dask thread: as asked, else the cores shared out, never more than one
    per core."""
    if settings.torch_threads is not None:
        return settings.torch_threads
    if settings.scheduler is not None:
        return 1  # an existing cluster's cores are its own; one thread per task is safe
    workers = settings.workers or default_workers(settings.threads_per_worker)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // (workers * settings.threads_per_worker))


@dataclass
class RunOutcome:
    folder: Path
    manifest: Any
    scenes: dict[str, SceneProgress] = field(default_factory=dict)
    tiles_run: int = 0
    wall_seconds: float = 0.0
    plan_seconds: float = 0.0
    tile_phase_seconds: float = 0.0  # first tile submitted to last tile done
    worker_peak_mb: dict[str, float] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> dict[str, str]:
        return {k: v.error for k, v in self.scenes.items() if v.error is not None}


def map_scenes(
    settings: MapSettings,
    *,
    log: Callable[[str], Any] = print,
    progress: Callable[[int, int], Any] | None = None,
) -> RunOutcome:
    """Plan, run and report a batch-mapping run (resuming an earlier one in the same folder)."""
    from hsikit.bundle import load_bundle
    from hsikit.data.datasets import resolve_scene
    from hsikit.data.scene_lists import expand_scenes
    from hsikit.predict.manifest import (
        MappingOptions,
        compatible,
        describe_mismatch,
        plan_run,
        read_manifest,
        write_manifest,
    )
    from hsikit.writers.atomic import check_output_folder, prepare_output_folder

    started = time.perf_counter()
    refs = expand_scenes(settings.scenes, asset=settings.asset)
    check_output_folder(
        settings.output, inputs=[settings.bundle, *(r.source for r in refs if r.error is None)]
    )
    # refuses restoration bundles, encoders and a precision the model cannot run at
    bundle = load_bundle(settings.bundle).to("cpu", settings.precision)
    options = MappingOptions(
        window=settings.window,
        confidence=settings.confidence,
        precision=settings.precision,
        bands=settings.bands,
    )
    previous = read_manifest(Path(settings.output))
    if previous is not None and not compatible(previous, bundle.sha256() or "", options):
        raise OutputError(
            None,
            describe_mismatch(previous, Path(settings.output)),
            "choose a new output folder, or delete this one to start over",
        )
    folder = prepare_output_folder(settings.output)
    for part in (MAPS, SCENES):
        (folder / part).mkdir(exist_ok=True)
    manifest = plan_run(refs, bundle, options, open_scene=resolve_scene, previous=previous)
    write_manifest(folder, manifest)
    outcome = RunOutcome(folder, manifest, plan_seconds=time.perf_counter() - started)
    for planned in manifest.scenes:
        outcome.scenes[planned.id] = SceneProgress(pending=len(planned.tiles), error=planned.error)
    facts = {
        "created": manifest.created,
        "model": bundle.meta.model.name,
        "bundle": str(settings.bundle),
        "bundle_sha256": manifest.bundle.sha256,
        "classes": bundle.meta.classes,
        "confidence": settings.confidence,
        "precision": settings.precision,
    }
    todo = []
    for planned in manifest.planned():
        done = finished_scene(folder, planned)
        if done is not None:
            outcome.scenes[planned.id] = SceneProgress(pending=0, summary=done)
        else:
            todo.append(planned)
    if todo:
        with connected(settings, log) as client:
            _run(client, todo, folder, settings, manifest, facts, outcome, progress)
    outcome.wall_seconds = time.perf_counter() - started
    from hsikit.jobs.mapping_report import write_run_outputs

    outcome.files = write_run_outputs(outcome, bundle, settings)
    return outcome


def _run(client, todo, folder, settings, manifest, facts, outcome, progress) -> None:
    """Submit the unfinished tiles, then each scene's assembly as soon as its tiles are done."""
    from distributed import as_completed

    from hsikit.predict.tiles import finished

    threads = torch_threads(settings)
    tiles_dir = folder / TILES
    futures = as_completed()
    owner: dict[str, tuple[str, str]] = {}  # future key -> (what, scene id)
    by_id = {p.id: p for p in todo}
    total = 0
    run = uuid.uuid4().hex[:8]  # a rerun's keys never meet a dead client's leftovers

    def submit(what: str, scene_id: str, task: Callable[..., dict], *args: Any, key: str) -> None:
        future = client.submit(
            task, *args, key=f"{key}-{run}", retries=settings.retries, pure=False
        )
        owner[future.key] = (what, scene_id)
        futures.add(future)

    def submit_assembly(planned) -> None:
        submit(
            "assembly",
            planned.id,
            assemble,
            planned,
            str(folder),
            facts,
            key=f"assemble-{planned.id}",
        )

    for planned in todo:
        context = TileContext(
            source=planned.source,
            bundle=manifest.bundle.path,
            bundle_sha256=manifest.bundle.sha256,
            tiles=str(tiles_dir),
            window=settings.window,
            confidence=settings.confidence,
            device=settings.device,
            precision=settings.precision,
            torch_threads=threads,
            bands=settings.bands,
        )
        pending = [
            j
            for j in planned.tile_jobs()
            if not finished(j, tiles_dir, confidence=settings.confidence)
        ]
        outcome.scenes[planned.id].pending = len(pending)
        total += len(pending)
        if not pending:
            submit_assembly(planned)
        for job in pending:
            submit(
                "tile",
                planned.id,
                run_tile,
                job,
                context,
                key=f"tile-{planned.id}-{job.row}-{job.col}",
            )
    done = 0
    if progress is not None:
        progress(0, total)
    tiles_started = time.perf_counter()
    for future in futures:
        what, scene_id = owner[future.key]
        state = outcome.scenes[scene_id]
        result = _result(future)
        if what == "assembly":
            if "error" in result:
                state.error = state.error or result["error"]
            else:
                state.summary = result
            continue
        done += 1
        outcome.tiles_run += 1
        outcome.tile_phase_seconds = time.perf_counter() - tiles_started
        if progress is not None:
            progress(done, total)
        if "error" in result:
            if state.error is None:
                state.error = result["error"]
            continue
        state.seconds += result["seconds"]
        state.pending -= 1
        if state.pending == 0 and state.error is None:
            submit_assembly(by_id[scene_id])
    from hsikit.jobs.runner import peak_rss_mb

    outcome.worker_peak_mb = client.run(peak_rss_mb)
    for state in outcome.scenes.values():
        if state.error is None and state.summary is None:
            state.error = "the scene's map was not assembled (a task result went missing)"


def _result(future) -> dict:
    """A task's result, or its failure (after its retries) as ``{"error": …}``."""
    try:
        return future.result()
    except Exception as exc:  # a task that kept failing, or a worker that kept dying
        return {"error": f"a task failed after its retries ({type(exc).__name__}: {exc})"}


def load_mapping_job(path: Path) -> MappingJob:
    from hsikit.documents import read_job

    return read_job(path, MappingJob, "mapping job")


class MappingJob(BaseModel):
    """``kind: mapping`` — ``hsikit map`` as a declarative job."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["mapping"]
    name: str
    scenes: list[str] = Field(min_length=1)
    bundle: str
    output: str
    asset: str | None = None
    window: int = Field(256, gt=0)
    confidence: bool = True
    workers: int | None = Field(None, gt=0)
    threads_per_worker: int = Field(1, gt=0)
    torch_threads: int | None = Field(None, gt=0)
    scheduler: str | None = None
    device: str = "cpu"
    precision: str = "fp32"
    retries: int = Field(2, ge=0)
    bands: BandMode = "own"

    def settings(self) -> MapSettings:
        return MapSettings(
            scenes=self.scenes,
            bundle=Path(self.bundle),
            output=Path(self.output),
            asset=self.asset,
            window=self.window,
            confidence=self.confidence,
            workers=self.workers,
            threads_per_worker=self.threads_per_worker,
            torch_threads=self.torch_threads,
            scheduler=self.scheduler,
            device=self.device,
            precision=self.precision,
            retries=self.retries,
            bands=self.bands,
        )
