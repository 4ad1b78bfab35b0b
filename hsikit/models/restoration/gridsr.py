"""Super-resolution of gridded geophysical fields (ERA5 and similar reanalyses): a residual
network over the bicubic interpolation, its convolutions wrapping around in longitude.

The design is the one the downscaling literature keeps returning to for gridded fields (the
EDSR-style residual networks of DeepSD-like and ERA5-to-CERRA downscaling): features are
computed on the coarse grid, where they are cheap; a pixel-shuffle step brings them to the fine
grid; and the network predicts only the correction to bicubic interpolation, so a
freshly initialised model starts at the baseline it must beat. Inputs and outputs are
standardised per variable (the bundle keeps the means and deviations). No flips or rotations
are used: north, south and the flow's direction mean something for a weather field.
"""

from __future__ import annotations

import torch
from torch import nn

from hsikit.models.layers.periodic import FieldConv, upsample_field
from hsikit.models.registry import register_model


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(FieldConv(width, width), nn.GELU(), FieldConv(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.body(x)


class GridSR(nn.Module):
    """``[B, V, h, w]`` standardised coarse fields → ``[B, V, s·h, s·w]`` fine ones.

    With ``grid`` (the training grid's coarse ``[h, w]``) it also learns what belongs to each
    cell of that grid: static input features (where the network is: mountains, coasts) and a
    fine-scale correction per fine cell (the climatological detail a coarse field cannot carry).
    They apply to inputs on that grid only; on any other grid the network is the same
    location-free model, translation-equivariant in longitude."""

    STATIC_FEATURES = 8

    def __init__(
        self,
        in_bands: int,
        scale: int,
        width: int = 48,
        blocks: int = 6,
        grid: tuple[int, int] | list[int] | None = None,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.grid = None if grid is None else (int(grid[0]), int(grid[1]))
        static = self.STATIC_FEATURES if self.grid is not None else 0
        self.head = FieldConv(in_bands + static, width)
        self.blocks = nn.Sequential(*[_Residual(width) for _ in range(blocks)])
        self.up = nn.Sequential(FieldConv(width, width * scale * scale), nn.PixelShuffle(scale))
        self.tail = FieldConv(width, in_bands)
        nn.init.zeros_(self.tail.weight)  # starts as bicubic interpolation exactly
        assert self.tail.bias is not None
        nn.init.zeros_(self.tail.bias)
        if self.grid is not None:
            h, w = self.grid
            self.static_in = nn.Parameter(torch.zeros(static, h, w))
            self.static_out = nn.Parameter(torch.zeros(in_bands, h * scale, w * scale))
        self.periodic = True

    def set_periodic(self, periodic: bool) -> None:
        """Whether longitude wraps around (a global grid) or its edges repeat."""
        self.periodic = periodic
        for module in self.modules():
            if isinstance(module, FieldConv):
                module.periodic = periodic

    def on_training_grid(self, x: torch.Tensor) -> bool:
        return self.grid is not None and tuple(x.shape[-2:]) == self.grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = upsample_field(x, self.scale, "bicubic", self.periodic)
        placed = self.on_training_grid(x)
        if self.grid is not None:  # off the training grid, the static features are zero
            static = (
                self.static_in if placed else x.new_zeros(self.static_in.shape[0], *x.shape[-2:])
            )
            x = torch.cat([x, static.expand(x.shape[0], -1, -1, -1)], dim=1)
        features = self.head(x)
        features = features + self.blocks(features)
        out = base + self.tail(self.up(features))
        return out + self.static_out if placed else out


RECIPE = {"epochs": 60, "lr": 1e-3, "batch_size": 4}


@register_model("gridsr_x2", task="restoration", recipe=RECIPE)
def gridsr_x2(
    in_bands: int, width: int = 48, blocks: int = 6, grid: list[int] | None = None
) -> GridSR:
    """Residual CNN over bicubic, ×2, for gridded fields (periodic longitude)."""
    return GridSR(in_bands, 2, width, blocks, grid)


@register_model("gridsr_x4", task="restoration", recipe=RECIPE)
def gridsr_x4(
    in_bands: int, width: int = 48, blocks: int = 6, grid: list[int] | None = None
) -> GridSR:
    """Residual CNN over bicubic, ×4, for gridded fields (periodic longitude)."""
    return GridSR(in_bands, 4, width, blocks, grid)
