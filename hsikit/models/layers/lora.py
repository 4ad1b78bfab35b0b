"""LoRA: a frozen base linear layer plus a trainable low-rank update ``(alpha / r) · B · A``.

Only ``A`` and ``B`` (r × d_in and d_out × r) train, so a fine-tune costs a small fraction of the
parameters. ``B`` starts at zero, so an injected model computes exactly what the base model did.
``strength`` scales the update at run time (the cyclical schedule modulates it); ``merge()``
folds the scaled update into the base weight for inference at no extra cost, ``unmerge()``
takes it back out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


class LoRALinear(nn.Module):
    def __init__(
        self, base: nn.Linear, rank: int = 4, alpha: float | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError("LoRA rank must be at least 1")
        self.base = base
        self.base.weight.requires_grad_(False)
        if self.base.bias is not None:
            self.base.bias.requires_grad_(False)
        self.rank = rank
        self.scaling = (alpha if alpha is not None else 2.0 * rank) / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)
        self.strength = 1.0
        self.merged_strength: float | None = None

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self, strength: float | None = None) -> torch.Tensor:
        """The dense update ``strength · (alpha / r) · B · A`` (d_out × d_in)."""
        s = self.strength if strength is None else strength
        return (self.lora_b @ self.lora_a) * (self.scaling * s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged_strength is not None:
            return out
        low = nn.functional.linear(nn.functional.linear(self.dropout(x), self.lora_a), self.lora_b)
        return out + low * (self.scaling * self.strength)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the current update into the base weight (idempotent)."""
        if self.merged_strength is None:
            self.base.weight += self.delta_weight()
            self.merged_strength = self.strength

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged_strength is not None:
            self.base.weight -= self.delta_weight(self.merged_strength)
            self.merged_strength = None


def inject_lora(
    model: nn.Module,
    targets: Iterable[str],
    rank: int = 4,
    alpha: float | None = None,
    dropout: float = 0.0,
) -> list[str]:
    """Replace every ``nn.Linear`` whose qualified name ends with one of ``targets`` by a
    ``LoRALinear`` around it; returns the replaced names."""
    suffixes = tuple(targets)
    replaced = []
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.endswith(suffixes):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, LoRALinear(module, rank, alpha, dropout))
            replaced.append(name)
    if not replaced:
        raise ValueError(f"no linear layer matches {', '.join(suffixes)}")
    return replaced


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def freeze_all_but_lora(model: nn.Module, also: Iterable[str] = ()) -> None:
    """Only LoRA factors (and parameters whose names start with one of ``also``, e.g. the
    classification head) keep ``requires_grad``."""
    keep = tuple(also)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(
            name.rsplit(".", 1)[-1] in ("lora_a", "lora_b") or name.startswith(keep)
        )


def set_lora_strength(model: nn.Module, strength: float) -> None:
    for layer in lora_layers(model):
        if layer.merged_strength is not None:
            raise RuntimeError("unmerge LoRA layers before changing their strength")
        layer.strength = float(strength)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base layer and put the plain ``nn.Linear`` back, so the
    result has the original architecture (and state-dict keys) with fine-tuned weights."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.base)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": int(total), "trainable": int(trainable)}
