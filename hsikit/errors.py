"""One exception hierarchy, so the CLI can turn any expected failure into one sentence.

Every error names the file, the problem and what to do; the CLI prints ``str(error)`` and exits 2.
Anything that is *not* an :class:`HsikitError` is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module at start-up; pydantic is imported where used
    from pydantic import ValidationError


class HsikitError(Exception):
    """An expected failure caused by the user's input, files or environment."""

    def __init__(self, path: str | PathLike[str] | None, problem: str, hint: str = "") -> None:
        self.path = None if path is None else str(path)
        self.problem = problem.rstrip(".")
        self.hint = hint.rstrip(".")
        super().__init__(self.sentence())

    def sentence(self) -> str:
        text = f"{self.path}: {self.problem}" if self.path else self.problem
        return f"{text}; {self.hint}." if self.hint else f"{text}."


class InputError(HsikitError):
    """A scene, label or model file is missing, unreadable or inconsistent."""


class FormatError(InputError):
    """The file exists but is not in a format hsikit reads, or it is corrupt."""


class LabelError(InputError):
    """Labels cannot be placed on the scene grid (field missing, no overlap, wrong grid)."""


class OutputError(HsikitError):
    """The output cannot be written where asked."""


class CatalogError(HsikitError):
    """A data catalog card is broken or names an unknown dataset."""


class DownloadError(HsikitError):
    """A download failed or its checksum did not match."""


def error_reason(exc: BaseException) -> str:
    """The first line of a library's error message, for a sentence (its type when empty)."""
    text = str(exc).strip()
    first = text.splitlines()[0].strip().rstrip(".") if text else ""
    return first[:300] or type(exc).__name__


def validation_problem(exc: ValidationError) -> tuple[tuple[str | int, ...], str]:
    """pydantic's most specific complaint as (location, message).

    For a union such as ``str | Variant`` pydantic reports a mismatch against every member; the
    complaint with the deepest location comes from the member the input was meant to be.
    """
    problem = max(exc.errors(), key=lambda error: len(error["loc"]))
    return tuple(problem["loc"]), problem["msg"].removeprefix("Value error, ")


def location_text(location: Sequence[str | int]) -> str:
    """``('protocols', 0, 'train_ratio')`` as ``protocols[0].train_ratio``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def validation_sentence(exc: ValidationError) -> str:
    """'where: what' for the most specific complaint, for a one-sentence error."""
    location, message = validation_problem(exc)
    where = location_text(location)
    return f"{where}: {message}" if where else message
