"""Write-then-rename, so a crash or a refused input never leaves a half-written file at the output.

Outputs are built in a hidden temporary folder beside the final path (same filesystem, so the
final ``os.replace`` is atomic per file) and moved into place only when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hsikit.errors import OutputError


def check_writable_folder(path: Path) -> None:
    """Refuse early — before any work — when the output folder does not exist or is read-only."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(path, f"the output folder {folder} does not exist", "create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(path, f"the output folder {folder} is not writable",
                          "choose a folder you can write to")


@contextmanager
def staged_output(final: Path) -> Iterator[Path]:
    """Yield a staging folder; every entry written into it is moved beside ``final`` on success.

    The entry named ``final.name`` becomes ``final``; sidecars (``map.qml``, ``map.tif.aux.xml``,
    ENVI ``.hdr``) keep their names. On any exception the staging folder is removed.
    """
    final = Path(final)
    check_writable_folder(final)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield stage
        for entry in sorted(stage.iterdir(), key=lambda p: p.name == final.name):
            target = final.parent / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)  # the main file moves last: sidecars are there when it is
    finally:
        shutil.rmtree(stage, ignore_errors=True)
