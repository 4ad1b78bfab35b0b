"""A Mamba block (Gu & Dao 2023): input projection, causal depthwise convolution, selective
scan with input-dependent Δ, B, C, gated output. Sequences are ``[batch, L, d_model]``."""

from __future__ import annotations

import math

import torch
from torch import nn

from hsikit.models.layers.scan import selective_scan


class MambaBlock(nn.Module):
    def __init__(
        self,
        d_model: int,
        d_state: int = 8,
        expand: int = 2,
        d_conv: int = 4,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
    ) -> None:
        super().__init__()
        inner = expand * d_model
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * inner)
        self.conv = nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        # Δ starts log-uniform in [dt_min, dt_max]: bias = softplus⁻¹(Δ)
        dt = torch.exp(torch.rand(inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.a_log = nn.Parameter(
            torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(inner, 1)
        )
        self.d = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        u, gate = self.in_proj(x).chunk(2, dim=-1)
        u = nn.functional.silu(self.conv(u.transpose(1, 2))[..., :length].transpose(1, 2))
        dt, b, c = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = nn.functional.softplus(self.dt_proj(dt))
        y = selective_scan(u, delta, -torch.exp(self.a_log), b, c, self.d)
        return self.out_proj(y * nn.functional.silu(gate))
