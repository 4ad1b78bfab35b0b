"""CLI options made from a pydantic config's fields, so each option is declared once: its name,
type, help, default and help panel all come from the field (``Field(description=…)`` and the
``group`` the config gives it). Options the user does not give stay unset and the config's own
defaults apply; giving them goes through the config's validation like any other source."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


def config_fields(model: type[BaseModel]) -> Iterator[tuple[str, FieldInfo]]:
    """Every field of ``model``, with those of its sub-model sections (the recipe) in place."""
    for name, info in model.model_fields.items():
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            yield from config_fields(section)
        else:
            yield name, info


def _plain(annotation: Any) -> tuple[Any, list[str]]:
    """The type click parses (``X | None`` → X, ``Literal`` → str) and the literal's choices."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _plain(args[0])
    if typing.get_origin(annotation) is Literal:
        return str, [str(a) for a in typing.get_args(annotation)]
    return annotation, []


def _help(info: FieldInfo, choices: list[str]) -> str:
    text = (info.description or "").rstrip(".")
    if choices and not all(c in text for c in choices):
        text += f" ({', '.join(choices)})"
    if "_" not in text.split(" ", 1)[0]:  # a name (less_vit_*) keeps its case
        text = text[:1].upper() + text[1:]
    default = info.default
    if default not in (None, PydanticUndefined, [], False) and "default" not in text:
        text += f"; default {default}"
    return text + "."


def option_parameter(name: str, info: FieldInfo) -> inspect.Parameter:
    """A keyword parameter for typer: ``--field-name`` (``--x/--no-x`` for booleans), unset
    by default."""
    annotation, choices = _plain(info.annotation)
    flag = "--" + name.replace("_", "-")
    declarations = [f"{flag}/--no-{flag[2:]}"] if annotation is bool else [flag]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    option = typer.Option(
        *declarations,
        help=_help(info, choices),
        rich_help_panel=str(extra.get("group", "Options")),
        show_default=False,
    )
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[annotation | None, option],
    )


def config_parameters(
    model: type[BaseModel], skip: frozenset[str] = frozenset()
) -> list[inspect.Parameter]:
    """One option per config field (sections flattened), except those in ``skip``."""
    return [option_parameter(name, info) for name, info in config_fields(model) if name not in skip]


def given(values: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """The config options among ``values`` that the user gave (unset ones are None)."""
    names = {name for name, _ in config_fields(model)}
    return {k: v for k, v in values.items() if k in names and v is not None}


def command_with_options(
    function: Any, leading: list[inspect.Parameter], model: type[BaseModel], skip: frozenset[str]
) -> Any:
    """``function(**values)`` with a signature typer reads: ``leading`` parameters, then one
    option per config field."""
    parameters = [*leading, *config_parameters(model, skip)]
    function.__signature__ = inspect.Signature(parameters)
    function.__annotations__ = {p.name: p.annotation for p in parameters}
    return function


def validated(model: type[BaseModel], options: dict[str, Any], command: str) -> Any:
    """``options`` as a ``model`` config; the first problem is one sentence."""
    from pydantic import ValidationError

    from hsikit.errors import InputError, validation_sentence

    try:
        return model.model_validate(options)
    except ValidationError as exc:
        raise InputError(
            None,
            f"invalid training options: {validation_sentence(exc)}",
            f"see 'hsikit {command} --help'",
        ) from exc


def keyword(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    """A keyword-only parameter of a generated command."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def inputs_argument(name: str, help: str, required: bool = False) -> inspect.Parameter:
    """The command's input files, as positional arguments (optional unless ``required``)."""
    annotation = list[str] if required else list[str] | None
    return inspect.Parameter(
        name,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        default=inspect.Parameter.empty if required else None,
        annotation=Annotated[annotation, typer.Argument(help=help, show_default=False)],
    )


def output_option(default: str, help: str = "The bundle to write.") -> inspect.Parameter:
    return keyword(
        "output", Path(default), Annotated[Path, typer.Option("--output", "-o", help=help)]
    )


def report_option() -> inspect.Parameter:
    """``--report``: the report folder, beside the bundle unless given."""
    return keyword(
        "report",
        None,
        Annotated[
            Path | None,
            typer.Option(help="Report folder (default: beside the bundle).", show_default=False),
        ],
    )
