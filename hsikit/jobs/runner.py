"""Each run of a job in a fresh (spawned) process: its peak memory is its own, a crash in it is
recorded instead of ending the job, and a terminated job stops its run first."""

from __future__ import annotations

import multiprocessing
import resource
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def peak_rss_mb() -> float:
    """This process's own peak resident memory (MB).

    Linux's ``VmHWM``, not ``ru_maxrss``: a spawned child's ``ru_maxrss`` starts from its parent's
    resident size at fork time, which made the parent's memory look like the child's.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _quiet() -> None:
    import warnings

    import rasterio.errors

    warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)


@contextmanager
def _terminate_exits_cleanly() -> Iterator[None]:
    """Turn SIGTERM (``kill``, a batch scheduler) into a normal exit while a run is in its
    child process: Python's default handler ends the job at once and leaves the child training
    on, orphaned, on the cores the next job needs; an exit lets the pool stop it first."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _guarded(target: Any, *args: Any) -> Any:
    """``target(*args)`` in the child, a failure turned into its message there: an exception
    sent back as it is must be rebuilt in the parent, and one whose constructor takes other
    arguments than its message (hsikit's own errors) cannot be, which left the job waiting for
    a result that never came."""
    try:
        return target(*args)
    except Exception as exc:  # recorded in the results, the job goes on
        return {"error": f"{type(exc).__name__}: {exc}"}


def in_child(target: Any, *args: Any) -> Any:
    """``target(*args)`` in a fresh process: its result, or ``{"error": message}``."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, initializer=_quiet) as pool, _terminate_exits_cleanly():
        try:
            return pool.apply(_guarded, (target, *args))
        except Exception as exc:  # the child itself died (memory, a signal)
            return {"error": f"{type(exc).__name__}: {exc}"}
