"""A timm-style model registry: ``register_model``, ``create_model``, ``list_models``.

Each entry carries its family (``torch`` or ``classical``) and its default recipe (patch size,
PCA components, epochs, learning rate …), which training merges with the user's overrides.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hsikit.errors import InputError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., Any]
    family: Literal["torch", "classical"]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, family: Literal["torch", "classical"] = "torch",
                   **defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``builder(in_bands, num_classes, **cfg)`` under ``name``."""

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is registered twice")
        doc = (builder.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelEntry(name, builder, family, doc[0] if doc else "", defaults)
        return builder

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise InputError(None, f"unknown model '{name}'",
                         f"choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def architecture_config(name: str, **candidates: Any) -> dict[str, Any]:
    """The subset of ``candidates`` (patch size, band wavelengths, GSD …) that model ``name``'s
    builder takes: what a bundle stores to rebuild the same architecture."""
    import inspect

    accepted = inspect.signature(get_entry(name).builder).parameters
    return {k: v for k, v in candidates.items() if k in accepted and v is not None}


def create_model(name: str, in_bands: int, num_classes: int, **cfg: Any) -> Any:
    """Build model ``name``; ``cfg`` keys the builder does not take (training recipe) are ignored."""
    import inspect

    entry = get_entry(name)
    accepted = inspect.signature(entry.builder).parameters
    kwargs = {k: v for k, v in {**entry.defaults, **cfg}.items() if k in accepted}
    return entry.builder(in_bands=in_bands, num_classes=num_classes, **kwargs)
