"""What the safety tests check after a refused command: inputs unchanged, nothing new written."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones too) with a digest of its bytes."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        out[key] = (
            hashlib.sha256(path.read_bytes()).hexdigest()
            if path.is_file() and not path.is_symlink()
            else "folder-or-link"
        )
    return out


#: TIFF's PhotometricInterpretation tag, and its value for plain (not RGB) data.
PHOTOMETRIC = 262
MINISBLACK = 1


def first_ifd_tag(path: Path, tag: int) -> int | None:
    """A one-value SHORT or LONG tag of a TIFF's first image (classic TIFF or BigTIFF), read
    from the bytes: what every TIFF reader (QGIS, libtiff) sees, not GDAL's view of the file."""
    data = path.read_bytes()
    order = {b"II": "<", b"MM": ">"}[data[:2]]
    big = struct.unpack_from(order + "H", data, 2)[0] == 43
    # BigTIFF has 8-byte offsets and counts (20-byte entries), classic TIFF 4 and 2 (12-byte)
    offset_format, count_format, entry_size = ("Q", "Q", 20) if big else ("I", "H", 12)
    ifd = struct.unpack_from(order + offset_format, data, 8 if big else 4)[0]
    entries = struct.unpack_from(order + count_format, data, ifd)[0]
    first = ifd + struct.calcsize(order + count_format)
    for entry in range(first, first + entries * entry_size, entry_size):
        number, kind = struct.unpack_from(order + "HH", data, entry)
        if number == tag:  # the value follows the tag, its type and its count
            value_at = entry + 4 + struct.calcsize(order + offset_format)
            return struct.unpack_from(order + ("H" if kind == 3 else "I"), data, value_at)[0]
    return None
