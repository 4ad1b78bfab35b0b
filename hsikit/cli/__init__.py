"""The ``hsikit`` command: one module per command group, thin — they parse, call the library
and print with rich; no logic lives here."""

from hsikit.cli import (  # noqa: F401
    batch,
    catalog,
    downscaling,
    jobs,
    mapping,
    restoration,
    scenes,
    training,
)
from hsikit.cli.app import _state, app, err, main, out

__all__ = ["_state", "app", "err", "main", "out"]
