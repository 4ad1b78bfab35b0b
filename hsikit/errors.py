"""One exception hierarchy, so the CLI can turn any expected failure into one sentence.

Every error names the file, the problem and what to do; the CLI prints ``str(error)`` and exits 2.
Anything that is *not* an :class:`HsikitError` is a bug and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike


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
