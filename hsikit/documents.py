"""YAML documents users write (training configs, job files): read safely (no tags that build
objects), and any problem — missing file, bad YAML, nesting too deep — as one sentence."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from hsikit.errors import InputError

if TYPE_CHECKING:
    from pydantic import BaseModel

JobT = TypeVar("JobT", bound="BaseModel")


def read_yaml(path: str | Path, what: str, hint: str) -> Any:
    """The parsed document at ``path`` (``what`` names it in refusals: "pipeline" …)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"no such {what} file", "check the path")
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        reason = (
            "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        )
        raise InputError(path, f"invalid {what}: {reason}", hint) from exc


def read_mapping(path: str | Path, what: str, hint: str) -> dict[str, Any]:
    """A document that must be a mapping of names to values."""
    document = read_yaml(path, what, hint)
    if not isinstance(document, dict):
        raise InputError(path, f"invalid {what}: the file must hold 'name: value' lines", hint)
    return document


def read_job(path: str | Path, model: type[JobT], what: str) -> JobT:
    """A job file validated against its pydantic ``model``; any problem as one sentence."""
    from pydantic import ValidationError

    from hsikit.errors import validation_sentence

    document = read_yaml(path, "job", "give a YAML file like pipelines/*.yaml")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problem = validation_sentence(exc)
    raise InputError(path, f"the {what} is invalid ({problem})", "fix it and run again")
