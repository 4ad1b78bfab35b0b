"""Parsing that a damaged file can crash or hang is done in a child process.

Some C parsers loop for ever or crash on damaged input (seen by fuzzing: HDF5's dimension
scales, scipy's MATLAB v5 reader), out of reach of Python's exceptions and timeouts. Such steps
run as a short Python script in a child process with a time limit; the script prints one JSON
object on its last line. A crash, a timeout or an ``error`` in that object becomes the file's
one sentence.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from hsikit.errors import FormatError


def run_isolated(script: str, path: Path, *args: str, seconds: float, what: str) -> dict[str, Any]:
    """The JSON report of ``script`` run on ``path`` (and ``args``) in a child process;
    ``what`` names the step in refusals ("reading the HDF5 structure" …)."""
    try:
        child = subprocess.run(
            [sys.executable, "-c", script, str(path), *args],
            capture_output=True,
            text=True,
            timeout=seconds,
        )
    except subprocess.TimeoutExpired:
        raise FormatError(
            path,
            f"{what} did not finish within {seconds:g} s (damaged data can make its parser "
            "loop for ever)",
            "the file is corrupt; re-export it",
        ) from None
    try:
        report = json.loads(child.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise FormatError(
            path,
            f"{what} crashed its parser (exit status {child.returncode})",
            "the file is corrupt; re-export it",
        ) from None
    if report.get("error"):
        raise FormatError(
            path,
            f"{what} failed ({report['error']})",
            "the file is truncated or corrupt; re-export it",
        )
    return report


#: What a child script prints for an exception: its first line, as the report's ``error``.
ERROR_REPORT = """
def error_report(exc):
    text = str(exc).strip().splitlines()
    return json.dumps({"error": (text[0] if text else type(exc).__name__)[:300]})
"""
