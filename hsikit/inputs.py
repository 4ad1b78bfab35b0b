"""The inputs of the running command: every file a reader, the labels loader or the bundle
loader opens is claimed here, and no output may replace one of them (``writers/atomic.py``).

A process-wide record, reset by the CLI once per command; library users who run several
commands in one process call :func:`forget_inputs` between them.
"""

from __future__ import annotations

import os

_claimed: dict[str, str] = {}  # resolved input path -> what it is (for the refusal)


def claim_input(path: str | os.PathLike[str], role: str = "input") -> None:
    """Record ``path`` as an input of the running command: no output may replace it."""
    resolved = os.path.realpath(path)
    _claimed.setdefault(resolved, role)


def claimed_inputs() -> dict[str, str]:
    return dict(_claimed)


def forget_inputs() -> None:
    """Start a new command (the CLI calls this once per invocation)."""
    _claimed.clear()
