"""MATLAB ``.mat`` v5 (scipy) and v7.3 (HDF5, h5py): cube and ground truth found without a fixed
key.

Benchmark scenes are stored ``(rows, cols, bands)``; the same scene re-saved as v7.3 appears
transposed to HDF5 readers, so v7.3 arrays are reversed back to MATLAB's axis order. The cube is the
3-D numeric array; ground truth is a 2-D integer array whose shape matches the cube's rows and
columns (or, in a ground-truth-only file, the only such array). v7.3 cubes and ground truth are
read window by window, and only when used; v5 files are usually zlib-compressed and cannot be
windowed, so a v5 variable is decompressed whole on first read (never at open) — and refused
first if its declared size exceeds the memory this machine has free (a small file can declare
a huge array). A v5 ``double`` that MATLAB stored as integers (miINT16 …) is declared and read
as that integer type, as scipy returns it (:mod:`hsikit.readers.mat5_storage`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import h5py
import numpy as np

from hsikit.errors import FormatError, error_reason
from hsikit.readers.hdf5 import check_self_contained
from hsikit.readers.isolated import ERROR_REPORT, run_isolated
from hsikit.readers.mat5_storage import stored_integer_types
from hsikit.scene import BandInfo, Scene

GT_HINTS = ("gt", "label", "truth", "class", "map", "tr", "te")
_INTEGER_CLASSES = {
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "logical",
}


_ITEM_BYTES = {
    "double": 8,
    "single": 4,
    "int64": 8,
    "uint64": 8,
    "int32": 4,
    "uint32": 4,
    "int16": 2,
    "uint16": 2,
    "int8": 1,
    "uint8": 1,
    "logical": 1,
}


@dataclass(frozen=True)
class MatVariable:
    name: str
    shape: tuple[int, ...]  # MATLAB axis order
    matlab_class: str
    #: The integer type a v5 double/single variable is stored as (what scipy reads), or None.
    stored: str | None = None

    @property
    def nbytes(self) -> int:
        item = (
            np.dtype(self.stored).itemsize if self.stored else _ITEM_BYTES.get(self.matlab_class, 8)
        )
        return int(np.prod(self.shape, dtype=np.float64)) * item

    @property
    def numeric(self) -> bool:
        return self.matlab_class in _INTEGER_CLASSES | {"double", "single"}

    @property
    def integer(self) -> bool:
        return self.matlab_class in _INTEGER_CLASSES or self.stored is not None


def sniff(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        head = fh.read(10)
    return head == b"MATLAB 5.0" or _v73(path)


def _v73(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(20)
    return head.startswith(b"MATLAB 7.3") and h5py.is_hdf5(path)


def list_variables(path: Path) -> list[MatVariable]:
    """Names, MATLAB shapes and classes, without reading array data."""
    if _v73(path):
        check_self_contained(path)
        found: list[MatVariable] = []
        try:
            with h5py.File(path, "r") as h5:

                def visit(name: str, obj: object) -> None:
                    if isinstance(obj, h5py.Dataset) and not name.startswith("#"):
                        cls = obj.attrs.get("MATLAB_class", b"")
                        cls = cls.decode(errors="replace") if isinstance(cls, bytes) else str(cls)
                        found.append(MatVariable(name, tuple(reversed(obj.shape)), cls))

                h5.visititems(visit)
        except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError … on damage
            raise FormatError(
                path,
                f"not a readable MATLAB v7.3 file ({error_reason(exc)})",
                "the file is truncated or corrupt; re-save it from MATLAB",
            ) from exc
        return found
    report = run_isolated(
        _V5_CHILD, path, "list", seconds=V5_SECONDS, what="reading the MATLAB file's variables"
    )
    stored = stored_integer_types(path)
    return [
        MatVariable(name, tuple(shape), cls, stored.get(name))
        for name, shape, cls in report["variables"]
    ]


def find_arrays(path: Path) -> tuple[MatVariable | None, MatVariable | None]:
    """The cube and the ground truth, chosen by shape and type rather than by name: the cube
    is the 3-D array with the longest shortest axis (the most bands: a 144-band cube over a
    larger 3-band RGB image), then the most elements; never the file's order."""
    variables = [v for v in list_variables(path) if v.numeric]
    cubes = sorted(
        (v for v in variables if len(v.shape) == 3 and min(v.shape) > 1),
        key=lambda v: (-min(v.shape), -int(np.prod(v.shape)), v.name),
    )
    cube = cubes[0] if cubes else None
    planes = [v for v in variables if len(v.shape) == 2 and min(v.shape) > 1]
    if cube is not None:
        planes = [v for v in planes if v.shape == cube.shape[:2]]
    planes.sort(key=lambda v: (not v.integer, not any(h in v.name.lower() for h in GT_HINTS)))
    return cube, (planes[0] if planes else None)


def available_memory() -> int:
    """Bytes of memory free for new data (Linux ``MemAvailable``; else all of it)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


#: Reading a v5 file's variable list takes well under a second; loading one, a few seconds.
V5_SECONDS = 60
#: scipy's v5 reader crashes (segfault) or hangs on some damaged files: it runs in a child.
_V5_CHILD = (
    ERROR_REPORT
    + r"""
import json, sys
import numpy as np
import scipy.io

path, action = sys.argv[1], sys.argv[2]
try:
    if action == "list":
        found = [[n, [int(d) for d in s], c] for n, s, c in scipy.io.whosmat(path)]
        print(json.dumps({"variables": found}))
    else:
        name, target = sys.argv[3], sys.argv[4]
        value = scipy.io.loadmat(path, variable_names=[name])[name]
        np.save(target, np.ascontiguousarray(value), allow_pickle=False)
        print(json.dumps({"saved": target}))
except Exception as exc:  # scipy raises ValueError / MatReadError / TypeError … on junk
    print(error_report(exc))
"""
)


@cache
def _load_v5(path: str, var: MatVariable) -> np.ndarray:
    if var.nbytes > available_memory() // 2:
        raise FormatError(
            path,
            f"the MATLAB v5 variable '{var.name}' is {var.nbytes / 2**30:.1f}"
            f" GB uncompressed, more than half the memory free here "
            f"({available_memory() / 2**30:.1f} GB)",
            "re-save it as MATLAB v7.3 (HDF5), which hsikit reads window by window",
        )
    with tempfile.TemporaryDirectory(prefix="hsikit-mat-") as folder:
        saved = Path(folder) / "variable.npy"
        run_isolated(
            _V5_CHILD,
            Path(path),
            "load",
            var.name,
            str(saved),
            seconds=V5_SECONDS * 5,
            what=f"decompressing the MATLAB variable '{var.name}'",
        )
        values = np.load(saved, allow_pickle=False)
    if values.shape != var.shape:
        raise FormatError(
            path,
            f"the variable '{var.name}' holds {values.shape}, not the "
            f"{var.shape} its header declares",
            "the file is corrupt",
        )
    # scipy returns the stored type; when the headers could not tell it, the class is declared
    return values.astype(_class_dtype(var), copy=False)


def _v73_plane(path: Path, var: MatVariable) -> Callable[[slice, slice], np.ndarray]:
    """``(rows, cols) -> array`` of a 2-D v7.3 variable (stored transposed)."""

    def read(rows: slice, cols: slice) -> np.ndarray:
        with h5py.File(path, "r") as h5:
            return np.asarray(h5[var.name][cols, rows]).T

    return read


def _plane_reader(path: Path, var: MatVariable) -> Callable[[slice, slice], np.ndarray]:
    if _v73(path):
        return _v73_plane(path, var)
    return lambda rows, cols: _load_v5(str(path), var)[rows, cols]


def open_scene(path: Path, **_: object) -> Scene:
    cube, gt = find_arrays(path)
    version = "v7.3" if _v73(path) else "v5"
    if cube is None and gt is None:
        names = ", ".join(f"{v.name} {v.shape}" for v in list_variables(path)) or "none"
        raise FormatError(
            path,
            f"no cube-like (3-D) or label-like (2-D) numeric array in the "
            f"MATLAB file (variables: {names})",
            "save the cube as rows × cols × bands",
        )
    truth = _plane_reader(path, gt) if gt is not None else None
    notes = []
    if cube is None:
        assert gt is not None and truth is not None  # refused above when both are missing
        plane = truth
        notes.append(f"ground truth only ('{gt.name}'): the single band holds the class values")

        def read_labels(bands: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
            return plane(rows, cols)[None][np.zeros(len(bands), int)]

        return Scene.from_reader(
            read_labels,
            shape=(1, gt.shape[0], gt.shape[1]),
            dtype=_class_dtype(gt),
            bands=BandInfo.build(1, name=[gt.name]),
            path=str(path),
            format=f"MATLAB {version}",
            notes=notes,
            ground_truth=truth,
        )

    rows_n, cols_n, bands_n = cube.shape
    notes.append(f"cube '{cube.name}'" + (f", ground truth '{gt.name}'" if gt else ""))
    if version == "v7.3":

        def read(bands: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
            with h5py.File(path, "r") as h5:  # HDF5 layout is (bands, cols, rows)
                ds = h5[cube.name]
                block = ds[int(bands.min()) : int(bands.max()) + 1, cols, rows]
            return np.ascontiguousarray(block[bands - bands.min()].transpose(0, 2, 1))
    else:

        def read(bands: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
            return np.ascontiguousarray(
                _load_v5(str(path), cube)[rows, cols][:, :, bands].transpose(2, 0, 1)
            )

    return Scene.from_reader(
        read,
        shape=(bands_n, rows_n, cols_n),
        dtype=_class_dtype(cube),
        bands=BandInfo.build(bands_n),
        path=str(path),
        format=f"MATLAB {version}",
        notes=notes,
        ground_truth=truth,
    )


def _class_dtype(var: MatVariable) -> np.dtype:
    """What the scene declares: the stored integer type where a v5 file has one (exact values
    at a fraction of the size), else the type of the MATLAB class."""
    if var.stored is not None:
        return np.dtype(var.stored)
    return np.dtype(
        {"double": "float64", "single": "float32", "logical": "uint8"}.get(
            var.matlab_class, var.matlab_class
        )
    )
