"""Overlap reading, computing and writing: the next window is read while the current one is
classified, and finished windows are written while the next is classified.

Both use one worker thread and a bounded queue, so memory holds at most ``depth`` windows more
than a plain loop (flat in scene size). The GDAL reads and writes and torch's kernels release
the GIL, so the threads overlap for real. An error in a worker surfaces in the caller, as it
would have without the thread (the same exception, hence the same one-sentence message).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


class Stopwatch:
    """Seconds spent per stage, summed into ``totals`` (when given: a profile was asked for).
    Each stage is timed in one thread only, so the sums need no lock."""

    def __init__(self, totals: dict[str, float] | None) -> None:
        self.totals = totals
        self._last: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        if self.totals is not None:
            self.totals[stage] = self.totals.get(stage, 0.0) + seconds

    def last(self, stage: str) -> float:
        """The duration of ``stage``'s latest timing."""
        return self._last.get(stage, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._last[stage] = time.perf_counter() - started
            self.add(stage, self._last[stage])

    def timed(self, stage: str, function: Callable[..., T]) -> Callable[..., T]:
        """``function``, its calls timed as ``stage``."""

        def run(*args: Any, **kwargs: Any) -> T:
            with self(stage):
                return function(*args, **kwargs)

        return run


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """``items``, produced ``depth`` ahead by a worker thread."""
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, raised there
            buffer.put((_DONE, exc))

    worker = threading.Thread(target=produce, name="hsikit-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let a worker blocked on put see the stop
            try:
                buffer.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.1)


class WriteBehind:
    """Calls ``write(*args, **kwargs)`` in a worker thread, ``depth`` calls queued at most;
    ``close`` (or leaving the ``with`` block) waits for the last one. A failed write is raised
    at the next ``submit`` or at ``close``."""

    def __init__(self, write: Callable[..., Any], depth: int = 2) -> None:
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._run, name="hsikit-write", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        while True:
            call = self._queue.get()
            if call is _DONE:
                return
            if self._error is None:
                try:
                    self._write(*call[0], **call[1])
                except BaseException as exc:  # raised in the caller's thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, *args: Any, **kwargs: Any) -> None:
        self._raise()
        self._queue.put((args, kwargs))

    def close(self) -> None:
        if self._worker.is_alive():
            self._queue.put(_DONE)
            self._worker.join()
        self._raise()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
            return
        if self._worker.is_alive():  # already failing: stop without waiting on the writes
            self._error = error
            self._queue.put(_DONE)
            self._worker.join()
