"""Shared fixtures: the CLI as a user runs it, the real files in ../shared/data, a private cache."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HSIKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run ``hsikit ARGS…`` in-process through the real entry point; returns code and output."""
    from hsikit import cli

    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["hsikit", *map(str, args)])
        cli._state["debug"] = False
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def narrow_terminal(monkeypatch) -> int:
    """The CLI's console at 80 columns, the width of a default terminal window."""
    from hsikit import cli

    monkeypatch.setattr(cli.out, "width", 80)
    return 80


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> Path:
    """Each test gets its own data cache, so no test sees another's downloads."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("HSIKIT_DATA", str(folder))
    return folder


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample files not present at {SHARED_DATA}")
    return SHARED_DATA


def assert_one_sentence_error(result: CliResult, *fragments: str) -> None:
    """What a user must see for bad input: exit 2, one sentence on stderr, no traceback."""
    assert result.code == 2, (result.code, result.stdout, result.stderr)
    message = result.stderr.strip()
    assert "Traceback" not in message and "Traceback" not in result.stdout
    assert message.startswith("error: ") and message.endswith(".")
    assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
