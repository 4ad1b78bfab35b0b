"""Safe outputs, one mechanism for every command: nothing a user has is ever replaced by accident.

Rules, checked before any work (:func:`check_output`) and again at the moment of replacement:

- an output never replaces one of the command's inputs — scene files and their sidecars,
  bundles, labels — compared by resolved path and by inode, so symlinks and hard links count;
- an output never replaces a folder hsikit did not write (only a store or report folder that
  carries hsikit's marker), nor a device, pipe or socket;
- the output's suffix must be one its writer writes.

Outputs are built in a hidden staging folder beside the final path (same filesystem, so the
final ``os.replace`` is atomic per file) and moved into place only when complete. A staging
folder records its process; a later write to the same path removes those of dead processes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hsikit.errors import OutputError
from hsikit.inputs import claimed_inputs

#: Written into every folder hsikit creates as an output (report folders, Zarr stores).
MARKER = ".hsikit-output"
_STAGE_OWNER = "owner"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _clash(target: Path, inputs: dict[str, str]) -> str | None:
    """What input ``target`` would replace or contain, if any."""
    resolved = os.path.realpath(target)
    for path, role in inputs.items():
        if resolved == path or _same_file(resolved, path):
            return f"the {role} {path}"
        if path.startswith(resolved.rstrip(os.sep) + os.sep):
            return f"the folder holding the {role} {path}"
        if resolved.startswith(path.rstrip(os.sep) + os.sep) and os.path.isdir(path):
            return f"the inside of the {role} {path}"
    return None


def written_by_hsikit(folder: Path) -> bool:
    """Whether an existing folder is one hsikit wrote: its marker, or an older output's shape
    (an hsikit Zarr cube; a report folder with its config.json and metrics.json)."""
    from hsikit.readers import zarr_cube

    return (
        (folder / MARKER).is_file()
        or zarr_cube.sniff(folder)
        or ((folder / "config.json").is_file() and (folder / "metrics.json").is_file())
    )


def _refuse_target(target: Path, final: Path, inputs: dict[str, str]) -> None:
    clash = _clash(target, inputs)
    if clash is not None:
        raise OutputError(
            final,
            f"writing here would replace {clash}",
            "choose an output path that is not one of the command's inputs",
        )
    if target.is_symlink() and not target.exists():
        return  # a dangling link: replacing it loses nothing
    if not os.path.lexists(target):
        return
    mode = os.stat(target).st_mode
    which = "this path" if target == final else f"{target.name} (written beside it)"
    if stat.S_ISDIR(mode):
        if target.is_symlink() or not written_by_hsikit(target):
            raise OutputError(
                final,
                f"{which} is an existing folder that hsikit did not write",
                "choose a new path; hsikit never replaces a folder it did not create",
            )
    elif not stat.S_ISREG(mode):
        raise OutputError(
            final,
            f"{which} is a device, pipe or socket, not a regular file",
            "write to a file path",
        )


def _check_suffix(final: Path, suffixes: Sequence[str] | None, what: str) -> None:
    if suffixes and final.suffix.lower() not in suffixes:
        raise OutputError(
            final,
            f"cannot write {what} as '{final.suffix or final.name}'",
            f"use {' or '.join(suffixes)}",
        )


def check_writable_folder(path: Path) -> None:
    """Refuse early — before any work — when the output folder does not exist or is read-only."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(path, f"the output folder {folder} does not exist", "create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            path, f"the output folder {folder} is not writable", "choose a folder you can write to"
        )


def check_output(
    path: str | os.PathLike[str],
    *,
    entries: Iterable[str] = (),
    suffixes: Sequence[str] | None = None,
    what: str = "this output",
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Refuse ``path`` (and the sidecar names in ``entries`` beside it) before any work.

    ``inputs``: more paths to protect beyond those claimed so far (files not opened yet).
    """
    final = Path(path)
    _check_suffix(final, suffixes, what)
    check_writable_folder(final)
    protected = claimed_inputs()
    for extra in inputs:
        protected.setdefault(os.path.realpath(extra), "input")
    for name in {final.name, *entries}:
        _refuse_target(final.parent / name, final, protected)
    return final


def check_output_folder(
    folder: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """Refuse, before any work, a folder for several outputs (a training report) unless it is
    new, empty or hsikit's own, and holds none of the inputs."""
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputError(
            folder, "a file exists where the output folder should be", "choose a folder path"
        )
    if not folder.is_dir() or folder.is_symlink():
        return check_output(folder, inputs=inputs)
    protected = claimed_inputs()
    for extra in inputs:
        protected.setdefault(os.path.realpath(extra), "input")
    clash = _clash(folder, protected)
    if clash is not None:
        raise OutputError(folder, f"writing here would replace {clash}", "choose another folder")
    if any(folder.iterdir()) and not written_by_hsikit(folder):
        raise OutputError(
            folder,
            "the folder exists and holds files hsikit did not write",
            "choose a new or empty folder",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(folder, "the folder is not writable", "choose a folder you can write to")
    return folder


def prepare_output_folder(folder: str | os.PathLike[str]) -> Path:
    """:func:`check_output_folder`, then the folder made (if new) and marked as hsikit's."""
    folder = check_output_folder(folder)
    folder.mkdir(exist_ok=True)
    (folder / MARKER).touch()
    return folder


def _in_use(stage: Path) -> bool:
    """Whether the process that made ``stage`` may still run: its recorded ``pid@host`` is alive
    (another host's: assumed so); a stage without the record (older hsikit) for a day."""
    try:
        pid, _, host = (stage / _STAGE_OWNER).read_text().strip().partition("@")
    except OSError:
        return time.time() - stage.stat().st_mtime < 86400
    if host != socket.gethostname():
        return True
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_stages(final: Path) -> list[Path]:
    """Staging folders beside ``final`` left by crashed runs (their process is gone)."""
    removed = []
    for stage in final.parent.glob(f".{glob.escape(final.name)}.*.partial"):
        if stage.is_dir() and not stage.is_symlink() and not _in_use(stage):
            shutil.rmtree(stage, ignore_errors=True)
            removed.append(stage)
    return removed


_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _move_into_place(entry: Path, target: Path, stage: Path) -> None:
    """``entry`` to ``target``: files by one atomic rename; a folder that replaces an older
    output of hsikit is swapped atomically where the system allows, then the old one removed."""
    if target.is_dir() and not target.is_symlink():
        if not _exchange(entry, target):
            trash = stage / f".old-{entry.name}"
            os.replace(target, trash)
            os.replace(entry, target)
            entry = trash
        shutil.rmtree(entry)
        return
    os.replace(entry, target)


@contextmanager
def staged_output(
    final: str | os.PathLike[str],
    *,
    suffixes: Sequence[str] | None = None,
    what: str = "this output",
) -> Iterator[Path]:
    """Yield a staging folder; every entry written into it is moved beside ``final`` on success.

    The entry named ``final.name`` becomes ``final``; sidecars (``map.qml``, ``map.tif.aux.xml``,
    ENVI ``.hdr``) keep their names. Each target is checked again just before it is replaced.
    On any exception the staging folder is removed and nothing appears at ``final``.
    """
    final = check_output(final, suffixes=suffixes, what=what)
    remove_stale_stages(final)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    (stage / _STAGE_OWNER).write_text(f"{os.getpid()}@{socket.gethostname()}\n")
    try:
        yield stage
        entries = sorted(
            (e for e in stage.iterdir() if e.name != _STAGE_OWNER),
            key=lambda p: p.name == final.name,
        )
        protected = claimed_inputs()
        for entry in entries:
            _refuse_target(final.parent / entry.name, final, protected)
        for entry in entries:  # the main file moves last: sidecars are there when it is
            _move_into_place(entry, final.parent / entry.name, stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    suffixes: Sequence[str] | None = None,
    what: str = "this output",
) -> Path:
    """``text`` at ``path`` through the same staged, checked write as every other output
    (results files, reports, Markdown tables)."""
    final = Path(path)
    with staged_output(final, suffixes=suffixes, what=what) as stage:
        (stage / final.name).write_text(text)
    return final
