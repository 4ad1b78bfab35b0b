"""Padding and interpolation for fields on a latitude/longitude grid: longitude wraps around
when the grid circles the globe (a model sees the neighbours across the dateline, so no seam),
latitude edges repeat their edge values."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def pad_field(x: torch.Tensor, rows: int, cols: int, periodic: bool) -> torch.Tensor:
    """``[B, C, H, W]`` padded by ``rows`` at the top and bottom (edge values repeated) and by
    ``cols`` at the sides: the columns from the other side of the globe when ``periodic``."""
    if cols:
        if periodic:
            x = torch.cat([x[..., -cols:], x, x[..., :cols]], dim=-1)
        else:
            x = F.pad(x, (cols, cols, 0, 0), mode="replicate")
    if rows:
        x = F.pad(x, (0, 0, rows, rows), mode="replicate")
    return x


#: Coarse cells of context each interpolation needs on every side.
REACH = {"nearest": 0, "bilinear": 1, "bicubic": 2}


def upsample_field(x: torch.Tensor, scale: int, mode: str, periodic: bool) -> torch.Tensor:
    """``[B, C, H, W]`` cells → ``[B, C, sH, sW]`` cells of the same extent, interpolated
    between cell centres (``align_corners=False``), with longitude wrapping when ``periodic``:
    padding by whole cells and cropping ``scale`` times as many keeps the fine cells exactly
    where they would be without it."""
    reach = REACH[mode]
    padded = pad_field(x, reach, reach, periodic)
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    fine = F.interpolate(padded, scale_factor=scale, mode=mode, **kwargs)
    cut = reach * scale
    return fine[..., cut : fine.shape[-2] - cut, cut : fine.shape[-1] - cut]


class FieldConv(nn.Conv2d):
    """A 3 × 3 (or k × k) convolution that pads as :func:`pad_field` does."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int = 3) -> None:
        super().__init__(channels_in, channels_out, kernel, padding=0)
        self.periodic = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.kernel_size[0] // 2
        return super().forward(pad_field(x, half, half, self.periodic))
