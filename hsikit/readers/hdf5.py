"""HDF5 files (MATLAB v7.3, NetCDF-4) must be self-contained before anything reads them.

HDF5 can point outside the file: external links to other files, datasets whose bytes live in
other files (external storage), and virtual datasets assembled from other files. A scene file
that does so could make hsikit read any file on the machine into an output, so such files are
refused with the object that points out.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from hsikit.errors import FormatError, error_reason


def check_self_contained(path: Path) -> None:
    """Refuse an HDF5 file with external links, external storage or virtual datasets."""
    outside: list[str] = []

    def visit_link(name: str, link: object) -> None:
        if isinstance(link, h5py.ExternalLink):
            outside.append(f"'{name}' links to {link.filename}")

    try:
        with h5py.File(path, "r") as h5:
            h5.visititems_links(visit_link)
            if not outside:
                h5.visititems(lambda name, obj: _dataset_outside(name, obj, outside))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise FormatError(
            path,
            f"the HDF5 structure cannot be read ({error_reason(exc)})",
            "the file is truncated or corrupt; re-export it",
        ) from exc
    if outside:
        raise FormatError(
            path,
            f"the file refers to data outside itself ({outside[0]})",
            "hsikit reads self-contained files only; re-save it without "
            "external links or external storage",
        )


def _dataset_outside(name: str, obj: object, outside: list[str]) -> None:
    if not isinstance(obj, h5py.Dataset) or outside:
        return
    if obj.is_virtual:
        outside.append(f"'{name}' is a virtual dataset")
    elif obj.external:
        outside.append(f"'{name}' keeps its values in {obj.external[0][0]!r}")
