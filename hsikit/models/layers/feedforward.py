"""SwiGLU feed-forward (Shazeer 2020): ``W3 · (SiLU(W1 x) ⊙ W2 x)``."""

from __future__ import annotations

import torch
from torch import nn


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, hidden)
        self.value = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(nn.functional.silu(self.gate(x)) * self.value(x)))
