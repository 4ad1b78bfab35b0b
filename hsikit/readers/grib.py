"""GRIB files checked message by message before cfgrib reads them.

cfgrib skips a message it cannot read (a truncated last message, a damaged one) and logs it,
so a cut-off download would open as a silently shorter dataset. Every message declares its
length in section 0 and ends with ``7777``: checking both over the whole file (a seek per
message, no data read) finds truncation and damage up front.
"""

from __future__ import annotations

from pathlib import Path

MARKER = b"GRIB"
END = b"7777"
_SEARCH_CHUNK = 1 << 20
_GRIB1_LARGE = 0x800000  # ECMWF's GRIB 1 coding of messages over 8 MB: length not in section 0


def _next_marker(fh, offset: int) -> int:
    """Offset of the next ``GRIB`` at or after ``offset`` (padding between messages), or -1."""
    while True:
        fh.seek(offset)
        chunk = fh.read(_SEARCH_CHUNK + len(MARKER) - 1)
        if len(chunk) < len(MARKER):
            return -1
        found = chunk.find(MARKER)
        if found >= 0:
            return offset + found
        offset += _SEARCH_CHUNK


def message_problem(path: Path) -> str | None:
    """What is wrong with the file's messages (truncated, damaged, none), or None."""
    size = path.stat().st_size
    count, offset = 0, 0
    with open(path, "rb") as fh:
        while (offset := _next_marker(fh, offset)) >= 0:
            fh.seek(offset)
            head = fh.read(16)
            where = f"message {count + 1} (at byte {offset:,})"
            if len(head) < 16:
                return f"{where} is cut off after {len(head)} bytes"
            edition = head[7]
            if edition == 1:
                length = int.from_bytes(head[4:7], "big")
                if length & _GRIB1_LARGE:  # true length needs section 4: skip the check
                    count, offset = count + 1, offset + len(MARKER)
                    continue
            elif edition == 2:
                length = int.from_bytes(head[8:16], "big")
            else:
                return f"{where} has GRIB edition {edition}, not 1 or 2"
            if length < 16 + len(END):
                return f"{where} declares an impossible length of {length} bytes"
            if offset + length > size:
                return (
                    f"{where} declares {length:,} bytes but the file ends "
                    f"{size - offset:,} bytes after its start: the file is truncated"
                )
            fh.seek(offset + length - len(END))
            if fh.read(len(END)) != END:
                return f"{where} does not end with its 7777 marker: the file is damaged"
            count, offset = count + 1, offset + length
    return None if count else "no GRIB message found"
