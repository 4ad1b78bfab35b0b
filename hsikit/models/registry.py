"""A timm-style model registry: ``register_model``, ``create_model``, ``list_models``.

Each entry carries its family (``torch`` or ``classical``), its task (``classification``, or
``restoration`` for cube-in / cube-out heads), its architecture defaults (patch size, PCA
components: what the builder and the preprocessing take) and its recipe defaults (epochs,
learning rate, batch size: what training takes), which training merges with the user's choices.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hsikit.errors import InputError

Family = Literal["torch", "classical"]
Task = Literal["classification", "restoration"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., Any]
    family: Family
    description: str
    task: Task = "classification"
    architecture: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    pretrain: str | None = None  # the self-supervised objective, for models that have one
    #: Builder arguments every new bundle records, given its patch size; a bundle without one
    #: was made before it existed and gets the builder's default (what it was built with).
    recorded: Callable[[int], dict[str, Any]] = field(default=lambda patch_size: {})

    @property
    def defaults(self) -> dict[str, Any]:
        """Architecture and recipe defaults together, as ``hsikit models`` lists them."""
        return {**self.architecture, **self.recipe}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    family: Family = "torch",
    task: Task = "classification",
    architecture: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    pretrain: str | None = None,
    recorded: Callable[[int], dict[str, Any]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``builder(in_bands, num_classes, **cfg)`` under ``name``."""

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is registered twice")
        doc = (builder.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelEntry(
            name,
            builder,
            family,
            doc[0] if doc else "",
            task,
            dict(architecture or {}),
            dict(recipe or {}),
            pretrain,
            recorded or (lambda patch_size: {}),
        )
        return builder

    return decorate


def list_models(pattern: str = "*", task: Task | None = None) -> list[str]:
    """Registered names matching ``pattern``, of one ``task`` if given."""
    return sorted(
        n
        for n, entry in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern) and (task is None or entry.task == task)
    )


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise InputError(
            None, f"unknown model '{name}'", f"choose one of: {', '.join(list_models())}"
        )
    return _REGISTRY[name]


def architecture_config(name: str, **candidates: Any) -> dict[str, Any]:
    """The subset of ``candidates`` (patch size, band wavelengths, GSD …) that model ``name``'s
    builder takes: what a bundle stores to rebuild the same architecture."""
    import inspect

    accepted = inspect.signature(get_entry(name).builder).parameters
    return {k: v for k, v in candidates.items() if k in accepted and v is not None}


def create_model(name: str, in_bands: int, num_classes: int | None = None, **cfg: Any) -> Any:
    """Build model ``name`` (classifiers need ``num_classes``; restoration heads map cubes to
    cubes and take none); ``cfg`` keys the builder does not take (recipe options) are
    ignored."""
    import inspect

    entry = get_entry(name)
    accepted = inspect.signature(entry.builder).parameters
    kwargs = {k: v for k, v in {**entry.architecture, **cfg}.items() if k in accepted}
    if entry.task == "classification":
        if num_classes is None:
            raise ValueError(f"{name} is a classifier: give num_classes")
        kwargs["num_classes"] = num_classes
    return entry.builder(in_bands=in_bands, **kwargs)
