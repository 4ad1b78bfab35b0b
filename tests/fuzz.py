"""Byte-mutation fuzzing of every reader and the bundle loader, seeded and bounded.

A campaign starts from small valid samples (one per format), mutates them — flipped bytes,
overwritten runs, truncations, duplicated runs, numbers in text formats replaced by extreme
ones — and opens each mutant the way the CLI would: ``open_scene`` then ``hsikit info``'s
summary and a full read (or ``load_bundle`` and the model summary). hsikit's own errors
(one sentence) and success are both fine; **any other exception, a hang past the time limit,
an allocation past the memory limit or a crash is a failure**.

Cases run in worker processes with a memory cap and a per-case alarm, so a crash in a C
library or a runaway allocation is recorded instead of ending the campaign.

    python -m tests.fuzz --cases 10000 [--formats geotiff,envi_header …] [--seed 0] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_GRIB = (
    Path(os.environ.get("HSIKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
    / "era5"
    / "era5-levels-members.grib"
)
MEMORY_LIMIT = 4 * 2**30
CASE_SECONDS = 90  # above hsikit's own HDF5 probe limit, which must answer first
HANG_SECONDS = CASE_SECONDS + 30  # no answer by then: a loop the alarm cannot reach (C code)
OPEN_FILE = ".open"  # in a sample folder: the path to open, relative to it
_NUMBER = re.compile(rb"-?\d+(\.\d+)?")
_EXTREMES = [
    b"0",
    b"-1",
    b"1e308",
    b"nan",
    b"-2147483649",
    b"99999999999",
    b"4294967296",
    b"1e-308",
    b"inf",
    b"abc",
    b"",
]


# -- samples ---------------------------------------------------------------------------------


def _geotiff(folder: Path) -> Path:
    from tests import synthetic

    return synthetic.write_geotiff(
        folder / "scene.tif",
        synthetic.cube(4, 20, 24),
        tiled=True,
        band_wavelengths=synthetic.wavelengths(4),
    )


def _envi(folder: Path) -> tuple[Path, Path]:
    from tests import synthetic

    return synthetic.write_envi(
        folder,
        synthetic.cube(4, 12, 10),
        map_info=("UTM, 1, 1, 500000, 4000000, 30, 30, 33, North, WGS-84"),
        extra={
            "wavelength": "{450, 550, 650, 850}",
            "fwhm": "{10, 10, 10, 10}",
            "bbl": "{1, 1, 1, 0}",
            "data ignore value": "-9999",
            "band names": "{a, b, c, d}",
        },
    )


def _mat_v5(folder: Path) -> Path:
    import scipy.io

    path = folder / "scene.mat"
    rng = np.random.default_rng(0)
    scipy.io.savemat(
        path,
        {
            "cube": rng.random((12, 10, 4)).astype("float32"),
            "gt": rng.integers(0, 4, (12, 10)).astype("uint8"),
        },
    )
    return path


def _mat_v73(folder: Path) -> Path:
    import h5py

    path = folder / "scene.mat"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w", userblock_size=512) as h5:
        for name, data, cls in (
            ("cube", rng.random((4, 10, 12)).astype("float32"), "single"),
            ("gt", rng.integers(0, 4, (10, 12)).astype("uint8"), "uint8"),
        ):
            h5.create_dataset(name, data=data, chunks=True, compression="gzip")
            h5[name].attrs["MATLAB_class"] = np.bytes_(cls)
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, created by the hsikit fuzz campaign")
    return path


def _enmap(folder: Path, zip_it: bool) -> Path:
    from tests import synthetic

    path = synthetic.enmap_product(folder, bands=6, rows=12, cols=10, zip_it=zip_it)[0]
    if zip_it:
        shutil.rmtree(path.with_suffix(""))
    return path


def _zarr(folder: Path) -> Path:
    from hsikit import open_scene
    from hsikit.writers.cube import write_cube

    return write_cube(open_scene(_geotiff(folder)), folder / "cube.zarr")


def _vrt(folder: Path) -> Path:
    """A one-tile mosaic as gdalbuildvrt writes it (the tile: the GeoTIFF sample)."""
    tile = _geotiff(folder)
    bands = "".join(
        f'<VRTRasterBand dataType="Int16" band="{b}"><ComplexSource><SourceFilename '
        f'relativeToVRT="1">{tile.name}</SourceFilename><SourceBand>{b}</SourceBand>'
        '<SrcRect xOff="0" yOff="0" xSize="24" ySize="20"/>'
        '<DstRect xOff="0" yOff="0" xSize="24" ySize="20"/></ComplexSource></VRTRasterBand>'
        for b in range(1, 5)
    )
    path = folder / "mosaic.vrt"
    path.write_text(f'<VRTDataset rasterXSize="24" rasterYSize="20">{bands}</VRTDataset>')
    return path


def _netcdf(folder: Path) -> Path:
    import xarray as xr

    path = folder / "grid.nc"
    rng = np.random.default_rng(0)
    xr.Dataset(
        {"t": (("time", "latitude", "longitude"), rng.random((2, 7, 9)).astype("f4"))},
        coords={
            "time": np.array(["2020-01-01", "2020-01-02"], "datetime64[ns]"),
            "latitude": np.linspace(60, 30, 7),
            "longitude": np.linspace(0, 40, 9),
        },
    ).to_netcdf(path, engine="h5netcdf")
    return path


def _grib(folder: Path) -> Path | None:
    if not SHARED_GRIB.is_file():
        return None
    data, offset, kept = SHARED_GRIB.read_bytes(), 0, b""
    for _ in range(4):  # the first four messages: a small, valid GRIB file
        length = int.from_bytes(data[offset + 4 : offset + 7], "big")
        kept += data[offset : offset + length]
        offset = data.index(b"GRIB", offset + length)
    path = folder / "sample.grib"
    path.write_bytes(kept)
    return path


def _bundle(folder: Path, model: str) -> Path:
    from tests import synthetic

    extra = {"epochs": 1, "patch_size": 5, "pca": 0} if model == "mamba_hsi_tiny" else {}
    scene, labels, bundle = synthetic.trained_bundle(
        folder, model, bands=6, rows=16, cols=20, classes=3, **extra
    )
    for leftover in (scene, labels):
        leftover.unlink()
    shutil.rmtree(folder / f"{model}_report")
    return bundle


#: format -> (make sample in folder -> path to open, file to mutate relative to the folder)
SAMPLES: dict[str, tuple[Callable[[Path], Path | None], str]] = {
    "geotiff": (_geotiff, "scene.tif"),
    "envi_header": (lambda f: _envi(f)[0], "scene.hdr"),
    "envi_data": (lambda f: _envi(f)[0], "scene.img"),
    "matlab_v5": (_mat_v5, "scene.mat"),
    "matlab_v73": (_mat_v73, "scene.mat"),
    "enmap_xml": (lambda f: _enmap(f, False), "*/*-METADATA.XML"),
    "enmap_zip": (lambda f: _enmap(f, True), "*.ZIP"),
    "zarr_attributes": (_zarr, "cube.zarr/zarr.json"),
    "zarr_chunk": (_zarr, "cube.zarr/cube/c/0/0/0"),
    "vrt": (_vrt, "mosaic.vrt"),
    "netcdf": (_netcdf, "grid.nc"),
    "grib": (_grib, "sample.grib"),
    "bundle_svm": (lambda f: _bundle(f, "svm_rbf"), "svm_rbf.safetensors"),
    "bundle_mamba": (lambda f: _bundle(f, "mamba_hsi_tiny"), "mamba_hsi_tiny.safetensors"),
}
TEXT_FORMATS = {"envi_header", "enmap_xml", "zarr_attributes", "vrt"}


# -- mutations -------------------------------------------------------------------------------

_LEAVES = [0, -1, 10**12, 1e308, float("nan"), "", "x" * 1000, None, [], {}, True, [1] * 50]


def _random_leaf(document: object, rng: np.random.Generator) -> tuple[object, object]:
    """A random (container, key) inside a JSON document, walking down from the top."""
    parent, key = None, None
    node = document
    while isinstance(node, (dict, list)) and node and rng.random() < 0.8:
        parent = node
        key = (
            list(node)[int(rng.integers(0, len(node)))]
            if isinstance(node, dict)
            else int(rng.integers(0, len(node)))
        )
        node = node[key]
    return parent, key


def mutate_bundle(data: bytes, rng: np.random.Generator) -> bytes:
    """A well-formed safetensors file whose description or tensor table is edited: what a
    hand-edited or hostile bundle looks like after every byte-level check passes."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    if rng.random() < 0.6:
        description = json.loads(header["__metadata__"]["hsikit"])
        for _ in range(int(rng.integers(1, 4))):
            parent, key = _random_leaf(description, rng)
            if parent is not None:
                if rng.random() < 0.2 and isinstance(parent, dict):
                    del parent[key]
                else:
                    parent[key] = _LEAVES[int(rng.integers(0, len(_LEAVES)))]
        header["__metadata__"]["hsikit"] = json.dumps(description)
    else:
        name = [k for k in header if k != "__metadata__"][int(rng.integers(0, len(header) - 1))]
        entry = header[name]
        field = ["shape", "dtype", "data_offsets"][int(rng.integers(0, 3))]
        entry[field] = {
            "shape": [int(rng.integers(0, 4))] * int(rng.integers(0, 4)),
            "dtype": ["F64", "I8", "BOOL", "U64"][int(rng.integers(0, 4))],
            "data_offsets": [0, int(rng.integers(0, 64))],
        }[field]
    body = json.dumps(header).encode()
    body += b" " * (-len(body) % 8)
    return len(body).to_bytes(8, "little") + body + data[8 + size :]


def mutate(data: bytes, rng: np.random.Generator, text: bool) -> bytes:
    """One to three random edits of ``data``; in text formats half of them swap a number for an
    extreme one (structure kept, values hostile)."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = 5 if text and rng.random() < 0.5 else int(rng.integers(0, 5))
        if not out:
            break
        at = int(rng.integers(0, len(out)))
        if kind == 0:  # flip bits of a few bytes
            for index in rng.integers(0, len(out), int(rng.integers(1, 9))):
                out[int(index)] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:  # overwrite a run with an interesting value
            value = bytes([int(rng.choice([0x00, 0xFF, 0x7F, 0x80]))])
            out[at : at + int(rng.integers(1, 17))] = value * int(rng.integers(1, 17))
        elif kind == 2:  # truncate
            del out[at:]
        elif kind == 3:  # duplicate a run
            run = bytes(out[at : at + int(rng.integers(1, 65))])
            out[at:at] = run * int(rng.integers(1, 4))
        elif kind == 4:  # random bytes over a run
            length = int(rng.integers(1, 33))
            out[at : at + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        else:  # a number in the text replaced by an extreme one
            numbers = list(_NUMBER.finditer(bytes(out)))
            if numbers:
                match = numbers[int(rng.integers(0, len(numbers)))]
                out[match.start() : match.end()] = _EXTREMES[int(rng.integers(0, len(_EXTREMES)))]
    return bytes(out)


# -- one case --------------------------------------------------------------------------------


def open_like_the_cli(path: Path) -> tuple[str, str]:
    """What ``hsikit info`` and a full read do: ('accepted', '') or ('refused', the problem)."""
    from hsikit.errors import HsikitError

    try:
        if path.suffix == ".safetensors":
            from hsikit.bundle import load_bundle
            from hsikit.model_info import summarize_model_file

            summarize_model_file(path)
            load_bundle(path)
        else:
            from hsikit.info import summarize
            from hsikit.readers import open_scene

            scene = open_scene(path)
            summarize(scene)
            if scene.count * scene.height * scene.width <= 10**7:
                scene.read()
            if scene.has_ground_truth:
                scene.truth_counts()
    except HsikitError as exc:
        return "refused", re.sub(r"\d+", "N", exc.problem)[:80]
    return "accepted", ""


def _alarm(signum, frame):  # noqa: ARG001
    raise TimeoutError(f"case ran past {CASE_SECONDS} s")


def worker(root: Path, seed: int, cases: int, plan: list[tuple[str, int]]) -> None:
    """For each (format, first case) of ``plan``, run its cases up to ``cases``; one JSON line
    per case on stdout (a 'start' line before it, so a crash is pinned to its case)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGALRM, _alarm)
    import logging

    logging.getLogger().addHandler(logging.NullHandler())  # as the CLI: no library chatter
    for fmt, start in plan:
        _worker_cases(fmt, root / fmt, seed, range(start, cases))


def _worker_cases(fmt: str, sample_dir: Path, seed: int, cases: range) -> None:
    from hsikit.inputs import forget_inputs

    _, relative = SAMPLES[fmt]
    for case in cases:
        rng = np.random.default_rng([seed, case])
        with tempfile.TemporaryDirectory(prefix="case-", dir=sample_dir.parent) as scratch:
            folder = Path(scratch) / "case"
            shutil.copytree(sample_dir, folder, symlinks=True)
            target = next(folder.glob(relative))
            data = target.read_bytes()
            if target.suffix == ".safetensors" and rng.random() < 0.5:
                data = mutate_bundle(data, rng)
            else:
                data = mutate(data, rng, fmt in TEXT_FORMATS)
            target.write_bytes(data)
            opened = folder / (folder / OPEN_FILE).read_text()
            print(json.dumps({"fmt": fmt, "case": case, "state": "start"}), flush=True)
            forget_inputs()
            signal.alarm(CASE_SECONDS)
            try:
                outcome, detail = open_like_the_cli(opened)
            except BaseException as exc:  # noqa: BLE001 — every other exception is a finding
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                outcome = "failure"
                detail = (
                    f"{type(exc).__name__}: {str(exc)[:200]} "
                    f"({Path(frame.filename).name}:{frame.lineno})"
                )
            finally:
                signal.alarm(0)
            print(
                json.dumps({"fmt": fmt, "case": case, "state": outcome, "detail": detail}),
                flush=True,
            )


# -- a campaign ------------------------------------------------------------------------------


def make_samples(root: Path, formats: list[str]) -> dict[str, Path]:
    """One folder per format holding its valid sample; formats without a sample are left out."""
    made = {}
    for fmt in formats:
        folder = root / fmt
        folder.mkdir(parents=True)
        make, _ = SAMPLES[fmt]
        opened = make(folder)
        if opened is not None:  # what the user names: header, product, store or file
            (folder / OPEN_FILE).write_text(str(opened.relative_to(folder)))
            made[fmt] = folder
    return made


def campaign(
    formats: list[str], cases: int, seed: int = 0, log: Callable[[str], None] = print
) -> dict:
    """Run ``cases`` mutants per format; returns counts, failures and crashes per format."""
    with tempfile.TemporaryDirectory(prefix="hsikit-fuzz-samples-") as root:
        samples = make_samples(Path(root), formats)
        results = _run(Path(root), [f for f in formats if f in samples], seed, cases, log)
    for fmt in formats:
        if fmt not in samples:
            results[fmt] = {"skipped": "no sample here (the real GRIB file is absent)"}
    return {fmt: results[fmt] for fmt in formats}


def _lines(process: subprocess.Popen, timeout: float) -> Iterator[str]:
    """The worker's output lines, until it ends or stays silent for ``timeout`` seconds."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            return
        if line is None:
            return
        yield line


def _run(root: Path, formats: list[str], seed: int, cases: int, log: Callable[[str], None]) -> dict:
    """All formats through worker processes; a worker that dies is replaced after its case."""
    counts = {fmt: Counter() for fmt in formats}
    refusals = {fmt: Counter() for fmt in formats}
    findings: dict[str, list[dict]] = {fmt: [] for fmt in formats}
    seconds: Counter[str] = Counter()
    position = dict.fromkeys(formats, 0)

    def summary(fmt: str) -> dict:
        return {
            "cases": cases,
            **dict(counts[fmt]),
            "findings": findings[fmt][:50],
            "top_refusals": dict(refusals[fmt].most_common(4)),
            "seconds": round(seconds[fmt], 1),
        }

    while plan := [f"{fmt}:{position[fmt]}" for fmt in formats if position[fmt] < cases]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fuzz",
                "--worker",
                str(root),
                str(seed),
                str(cases),
                *plan,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        running, clock = None, time.perf_counter()
        for line in _lines(process, HANG_SECONDS):
            record = json.loads(line)
            fmt = record["fmt"]
            if record["state"] == "start":
                running = (fmt, record["case"])
                continue
            now = time.perf_counter()
            seconds[fmt] += now - clock
            clock, running, position[fmt] = now, None, record["case"] + 1
            counts[fmt][record["state"]] += 1
            if record["state"] == "refused":
                refusals[fmt][record["detail"]] += 1
            elif record["state"] == "failure":
                findings[fmt].append({"case": record["case"], "detail": record["detail"]})
            if position[fmt] == cases:
                log(json.dumps({fmt: summary(fmt)}))
        hung = process.poll() is None
        if hung:
            process.kill()
        code = process.wait()
        if running is not None:  # the worker died or hung inside a case
            fmt, case = running
            counts[fmt]["hang" if hung else "crash"] += 1
            findings[fmt].append(
                {
                    "case": case,
                    "detail": f"no answer within {HANG_SECONDS} s"
                    if hung
                    else f"worker died (exit status {code})",
                }
            )
            position[fmt] = case + 1
        elif any(position[fmt] < cases for fmt in formats):
            raise RuntimeError(f"a fuzz worker stopped early (exit status {code})")
    return {fmt: summary(fmt) for fmt in formats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs="+", metavar="ROOT SEED CASES FORMAT:START")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--formats", default=",".join(SAMPLES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.worker:
        root, seed, cases, *plan = args.worker
        worker(
            Path(root),
            int(seed),
            int(cases),
            [(item.split(":")[0], int(item.split(":")[1])) for item in plan],
        )
        return
    results = campaign(args.formats.split(","), args.cases, args.seed)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    failed = sum(r.get("failure", 0) + r.get("crash", 0) for r in results.values())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
