"""The on-disk integer type of MATLAB v5 ``double`` / ``single`` variables, read from their
element headers without loading (or fully decompressing) any data.

MATLAB itself stores a class-``double`` array whose values are all small integers as, say,
miINT16, and scipy's ``loadmat`` hands back that stored type. The class alone would declare
float64 (four times the size) for what is read as int16, so the stored type is found here:
a seek per variable, and for a compressed one the first few hundred inflated bytes.

Layout (MathWorks, "MAT-File Format"): a 128-byte header ending with the version and the
endian indicator (``IM``: little-endian), then data elements, each an 8-byte tag (type,
byte count) or a 4-byte small-element tag (count in the upper 16 bits, data in the next
4 bytes), data padded to 8 bytes. A variable is an miMATRIX element (inside an miCOMPRESSED
zlib stream when compressed): array flags, dimensions, name, then the real part, whose tag
type is the stored type.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

HEADER_BYTES = 128
MI_INT8, MI_MATRIX, MI_COMPRESSED = 1, 14, 15
#: miINT8 … miUINT64: the integer data types a double/single variable can be stored as.
INTEGER_TYPES = {
    1: "int8",
    2: "uint8",
    3: "int16",
    4: "uint16",
    5: "int32",
    6: "uint32",
    12: "int64",
    13: "uint64",
}
#: mxDOUBLE_CLASS and mxSINGLE_CLASS: the classes whose values scipy returns as stored.
FLOAT_CLASSES = (6, 7)
COMPLEX_FLAG = 0x0800
#: Inflated bytes enough for the tag, flags, dimensions, name and the real part's tag.
HEAD_BYTES = 1024
_CHUNK = 4096


class _Unparsed(Exception):
    """The element headers are not as a variable's are (damage, or an unusually long name)."""


def _tag(buf: bytes, at: int, order: str) -> tuple[int, int, int]:
    """``(type, nbytes, data offset)`` of the element whose tag starts at ``at``."""
    if at + 8 > len(buf):
        raise _Unparsed
    first, second = struct.unpack_from(order + "II", buf, at)
    if first >> 16:  # small element: type and count share the first word, data the second
        return first & 0xFFFF, first >> 16, at + 4
    return first, second, at + 8


def _next(at: int, nbytes: int, data_at: int) -> int:
    """Where the element after one starting at ``at`` begins (data padded to 8 bytes)."""
    return at + 8 if data_at == at + 4 else data_at + (nbytes + 7) // 8 * 8


def _matrix_storage(buf: bytes, order: str) -> tuple[str, str | None]:
    """The name of the miMATRIX element at the start of ``buf`` and the stored integer type of
    its real part, or None when it is no real double/single array stored as integers."""
    kind, _, at = _tag(buf, 0, order)
    if kind != MI_MATRIX:
        raise _Unparsed
    _, _, data_at = _tag(buf, at, order)
    if data_at + 4 > len(buf):
        raise _Unparsed
    (flags,) = struct.unpack_from(order + "I", buf, data_at)
    at = _next(at, 8, data_at)  # array flags: 8 bytes of miUINT32
    _, nbytes, data_at = _tag(buf, at, order)  # dimensions
    at = _next(at, nbytes, data_at)
    kind, nbytes, data_at = _tag(buf, at, order)  # name
    if kind != MI_INT8 or data_at + nbytes > len(buf):
        raise _Unparsed
    name = buf[data_at : data_at + nbytes].decode("latin-1")
    at = _next(at, nbytes, data_at)
    stored, _, _ = _tag(buf, at, order)
    if flags & 0xFF not in FLOAT_CLASSES or flags & COMPLEX_FLAG:
        return name, None
    return name, INTEGER_TYPES.get(stored)


def _inflated_head(fh: BinaryIO, nbytes: int) -> bytes:
    """The first :data:`HEAD_BYTES` of a compressed element, inflating no more than that."""
    inflater, out, left = zlib.decompressobj(), b"", nbytes
    while len(out) < HEAD_BYTES and left > 0 and not inflater.eof:
        chunk = fh.read(min(_CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
        out += inflater.decompress(chunk, HEAD_BYTES - len(out))
    return out


def _elements(fh: BinaryIO, order: str, size: int) -> list[tuple[str, str | None]]:
    """Each top-level variable's name and stored integer type, seeking past its data."""
    found = []
    at = HEADER_BYTES
    while at + 8 <= size:
        fh.seek(at)
        head = fh.read(8)
        kind, nbytes, data_at = _tag(head, 0, order)
        if kind == MI_COMPRESSED:  # the zlib stream is one whole miMATRIX element
            found.append(_matrix_storage(_inflated_head(fh, nbytes), order))
            at += 8 + nbytes  # compressed elements are not padded
            continue
        if kind != MI_MATRIX:  # not a variable: damage (zeros would take 8 bytes a step)
            raise _Unparsed
        found.append(_matrix_storage(head + fh.read(min(nbytes, HEAD_BYTES)), order))
        at += _next(0, nbytes, data_at)
    return found


def stored_integer_types(path: Path) -> dict[str, str]:
    """``{variable: "int16", …}`` for the double/single variables of a v5 file stored as
    integers; empty when the headers cannot be parsed (damage, a layout not covered), so that
    the classes decide."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(HEADER_BYTES)
            if len(header) < HEADER_BYTES or header[126:128] not in (b"IM", b"MI"):
                return {}
            order = "<" if header[126:128] == b"IM" else ">"
            found = _elements(fh, order, path.stat().st_size)
    except (_Unparsed, OSError, struct.error, zlib.error):
        return {}
    return {name: stored for name, stored in found if stored is not None}
