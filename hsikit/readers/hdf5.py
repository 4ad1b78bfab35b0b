"""HDF5 files (MATLAB v7.3, NetCDF-4) are checked in a child process before anything reads them.

Two dangers, both from a damaged or hostile file:

- HDF5 can point outside the file: external links to other files, datasets whose bytes live in
  other files (external storage), and virtual datasets assembled from other files. A scene file
  that does so could make hsikit read any file on the machine into an output, so such files
  are refused with the object that points out.
- HDF5's C library can loop for ever on damaged metadata (seen: dimension scales whose count
  never ends), out of reach of any Python timeout. The structure is therefore walked in a
  child process — every link, dataset and (for NetCDF) dimension scale, as the readers will —
  with a time limit; a child that does not finish means the file is refused.
"""

from __future__ import annotations

from pathlib import Path

from hsikit.errors import FormatError
from hsikit.readers.isolated import ERROR_REPORT, run_isolated

#: A real file's structure is walked in well under a second; a damaged one may never finish.
PROBE_SECONDS = 60

_PROBE = (
    ERROR_REPORT
    + r"""
import json, sys
import h5py

path, netcdf = sys.argv[1], sys.argv[2] == "netcdf"
found = []

def visit_link(name, link):
    if isinstance(link, h5py.ExternalLink):
        found.append(f"'{name}' links to {link.filename}")

def visit(name, obj):
    if not isinstance(obj, h5py.Dataset) or found:
        return
    if obj.is_virtual:
        found.append(f"'{name}' is a virtual dataset")
    elif obj.external:
        found.append(f"'{name}' keeps its values in {obj.external[0][0]!r}")
    elif netcdf:
        for scale in obj.dims:
            len(scale)

try:
    with h5py.File(path, "r") as h5:
        h5.visititems_links(visit_link)
        if not found:
            h5.visititems(visit)
except Exception as exc:
    print(error_report(exc))
    sys.exit(0)
print(json.dumps({"outside": found[0] if found else None}))
"""
)


def check_self_contained(path: Path, netcdf: bool = False) -> None:
    """Refuse an HDF5 file that refers to data outside itself, whose structure cannot be read,
    or whose structure does not finish reading within :data:`PROBE_SECONDS`."""
    report = run_isolated(
        _PROBE,
        path,
        "netcdf" if netcdf else "hdf5",
        seconds=PROBE_SECONDS,
        what="reading the HDF5 structure",
    )
    if report.get("outside"):
        raise FormatError(
            path,
            f"the file refers to data outside itself ({report['outside']})",
            "hsikit reads self-contained files only; re-save it without external links or "
            "external storage",
        )
