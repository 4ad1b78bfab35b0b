"""MATLAB ``.mat`` v5 (scipy) and v7.3 (HDF5, h5py): cube and ground truth found without a fixed key.

Benchmark scenes are stored ``(rows, cols, bands)``; the same scene re-saved as v7.3 appears
transposed to HDF5 readers, so v7.3 arrays are reversed back to MATLAB's axis order. The cube is the
3-D numeric array; ground truth is a 2-D integer array whose shape matches the cube's rows and
columns (or, in a ground-truth-only file, the only such array). v7.3 cubes are read window by
window; v5 files are usually zlib-compressed and cannot be windowed, so a v5 cube is decompressed
on first read (never at open).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from hsikit.errors import FormatError
from hsikit.scene import BandInfo, Scene

GT_HINTS = ("gt", "label", "truth", "class", "map", "tr", "te")
_INTEGER_CLASSES = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
                    "logical"}


@dataclass(frozen=True)
class MatVariable:
    name: str
    shape: tuple[int, ...]  # MATLAB axis order
    matlab_class: str

    @property
    def numeric(self) -> bool:
        return self.matlab_class in _INTEGER_CLASSES | {"double", "single"}

    @property
    def integer(self) -> bool:
        return self.matlab_class in _INTEGER_CLASSES


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
        found: list[MatVariable] = []
        with h5py.File(path, "r") as h5:
            def visit(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Dataset) and not name.startswith("#"):
                    cls = obj.attrs.get("MATLAB_class", b"")
                    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
                    found.append(MatVariable(name, tuple(reversed(obj.shape)), cls))
            h5.visititems(visit)
        return found
    try:
        return [MatVariable(name, tuple(shape), cls) for name, shape, cls in scipy.io.whosmat(path)]
    except Exception as exc:  # scipy raises ValueError / MatReadError / TypeError on junk
        raise FormatError(path, f"not a readable MATLAB file ({exc})",
                          "re-save it from MATLAB as v5 or v7.3") from exc


def find_arrays(path: Path) -> tuple[MatVariable | None, MatVariable | None]:
    """The cube and the ground truth, chosen by shape and type rather than by name."""
    variables = [v for v in list_variables(path) if v.numeric]
    cubes = sorted((v for v in variables if len(v.shape) == 3 and min(v.shape) > 1),
                   key=lambda v: -int(np.prod(v.shape)))
    cube = cubes[0] if cubes else None
    planes = [v for v in variables if len(v.shape) == 2 and min(v.shape) > 1]
    if cube is not None:
        planes = [v for v in planes if v.shape == cube.shape[:2]]
    planes.sort(key=lambda v: (not v.integer, not any(h in v.name.lower() for h in GT_HINTS)))
    return cube, (planes[0] if planes else None)


@cache
def _load_v5(path: str, name: str) -> np.ndarray:
    return scipy.io.loadmat(path, variable_names=[name])[name]


def read_variable(path: Path, var: MatVariable) -> np.ndarray:
    """A whole variable in MATLAB axis order (used for ground truth and v5 cubes)."""
    if _v73(path):
        with h5py.File(path, "r") as h5:
            return np.asarray(h5[var.name][()]).T
    return _load_v5(str(path), var.name)


def open_scene(path: Path, **_: object) -> Scene:
    cube, gt = find_arrays(path)
    version = "v7.3" if _v73(path) else "v5"
    if cube is None and gt is None:
        names = ", ".join(f"{v.name} {v.shape}" for v in list_variables(path)) or "none"
        raise FormatError(path, f"no cube-like (3-D) or label-like (2-D) numeric array in the "
                          f"MATLAB file (variables: {names})",
                          "save the cube as rows × cols × bands")
    ground_truth = read_variable(path, gt) if gt is not None else None
    notes = []
    if cube is None:
        notes.append(f"ground truth only ('{gt.name}'): the single band holds the class values")
        labels = ground_truth

        def read_labels(bands: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
            return labels[None, rows, cols][np.zeros(len(bands), int)]

        return Scene.from_reader(
            read_labels, shape=(1, *labels.shape), dtype=labels.dtype,
            bands=BandInfo.build(1, name=[gt.name]), path=str(path), format=f"MATLAB {version}",
            notes=notes, ground_truth=ground_truth,
        )

    rows_n, cols_n, bands_n = cube.shape
    notes.append(f"cube '{cube.name}'" + (f", ground truth '{gt.name}'" if gt else ""))
    if version == "v7.3":
        def read(bands: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
            with h5py.File(path, "r") as h5:  # HDF5 layout is (bands, cols, rows)
                ds = h5[cube.name]
                block = ds[int(bands.min()):int(bands.max()) + 1, cols, rows]
            return np.ascontiguousarray(block[bands - bands.min()].transpose(0, 2, 1))
    else:
        def read(bands: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
            return np.ascontiguousarray(_load_v5(str(path), cube.name)[rows, cols][:, :, bands]
                                        .transpose(2, 0, 1))
    dtype = np.dtype("float64") if cube.matlab_class == "double" else _class_dtype(cube)
    return Scene.from_reader(
        read, shape=(bands_n, rows_n, cols_n), dtype=dtype, bands=BandInfo.build(bands_n),
        path=str(path), format=f"MATLAB {version}", notes=notes, ground_truth=ground_truth,
    )


def _class_dtype(var: MatVariable) -> np.dtype:
    return np.dtype({"single": "float32", "logical": "uint8"}.get(var.matlab_class,
                                                                  var.matlab_class))
