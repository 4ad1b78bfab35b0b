"""Provenance inside every output: which software made it, when, and from what.

Side files get separated from their map; the GeoTIFF's own tags (``TIFFTAG_SOFTWARE``,
``TIFFTAG_DATETIME`` and ``HSIKIT_*``) travel with it. The time honours ``SOURCE_DATE_EPOCH``
(the reproducible-builds convention), so a job can make byte-identical outputs on a rerun.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

from hsikit import __version__

_CHUNK = 1 << 22
SOFTWARE = f"hsikit {__version__}"


def made_at() -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return datetime.now(UTC).replace(microsecond=0)


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def precision_fact(precision: str) -> str | None:
    """The precision a map records: only a reduced one (fp32 maps carry no tag)."""
    return None if precision == "fp32" else precision


def provenance(**facts: object) -> dict[str, str]:
    """``HSIKIT_*`` facts (source scene, model, bundle checksum …) with the software and time.

    Facts that are None are left out; paths are written as given by the user."""
    return provenance_at(made_at(), **facts)


def provenance_at(when: datetime, **facts: object) -> dict[str, str]:
    """:func:`provenance` made at ``when`` (a resumed batch run: the time it was planned)."""
    tags = {
        "TIFFTAG_SOFTWARE": SOFTWARE,
        "TIFFTAG_DATETIME": when.strftime("%Y:%m:%d %H:%M:%S"),
        "HSIKIT_VERSION": __version__,
        "HSIKIT_CREATED": when.isoformat(),
    }
    tags.update(
        {f"HSIKIT_{key.upper()}": str(value) for key, value in facts.items() if value is not None}
    )
    return tags
