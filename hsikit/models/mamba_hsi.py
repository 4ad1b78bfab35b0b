"""Spectral-spatial Mamba classifier (after MambaHSI, Li et al. 2024), patch-based, pure PyTorch.

Each pixel of the ``P × P`` patch is embedded (1×1 projection); every block then runs
* a **spectral scan** per pixel: the pixel's feature is split into ``spectral_tokens`` groups that
  a Mamba block scans in order (MambaHSI's SpeMamba), and
* a **bidirectional spatial scan** over the patch's pixels in raster order, forward and reversed
  (two Mamba blocks, summed),
fused with softmax-normalised learned weights plus a residual. The head sees the centre pixel's
feature and the patch mean. The embedding and the first block's spectral scan depend on one
pixel alone: mapping computes them once per pixel (``pixel_features``) and gathers them into
patches (``patch_logits``), instead of once per patch that holds the pixel. Real selective scans
(input-dependent Δ, B, C), not the fixed linear recurrence of MorpMamba.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from hsikit.models.layers import MambaBlock
from hsikit.models.registry import register_model


class SpectralSpatialMamba(nn.Module):
    def __init__(self, dim: int, spectral_tokens: int, d_state: int, expand: int) -> None:
        super().__init__()
        if dim % spectral_tokens:
            raise ValueError(f"dim {dim} does not split into {spectral_tokens} spectral tokens")
        self.spectral_tokens = spectral_tokens
        self.spectral = MambaBlock(dim // spectral_tokens, d_state, expand)
        self.forward_scan = MambaBlock(dim, d_state, expand)
        self.backward_scan = MambaBlock(dim, d_state, expand)
        self.norm_spectral = nn.GroupNorm(4, dim)
        self.norm_spatial = nn.GroupNorm(4, dim)
        self.fusion = nn.Parameter(torch.zeros(2))

    def spectral_scan(self, x: torch.Tensor) -> torch.Tensor:
        """The spectral scan of each token on its own, ``[B, N, D]`` → ``[B, N, D]``."""
        b, n, d = x.shape
        groups = x.reshape(b * n, self.spectral_tokens, d // self.spectral_tokens)
        return self.spectral(groups).reshape(b, n, d)

    @staticmethod
    def _norm(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
        """GroupNorm over the feature axis of ``[B, L, D]``, then SiLU."""
        return nn.functional.silu(norm(x.transpose(1, 2)).transpose(1, 2))

    def forward(self, x: torch.Tensor, scanned: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``[B, N, D]``; ``scanned``: this block's spectral scan of ``x`` when it was
        computed already (per pixel, shared between the patches that hold the pixel)."""
        scanned = self.spectral_scan(x) if scanned is None else scanned
        spectral = self._norm(self.norm_spectral, scanned) + x  # statistics over the patch
        spatial = self.forward_scan(x) + self.backward_scan(x.flip(1)).flip(1)
        spatial = self._norm(self.norm_spatial, spatial) + x
        weights = self.fusion.softmax(0)
        return weights[0] * spectral + weights[1] * spatial + x


class MambaHSI(nn.Module):
    head_prefix = "head"
    lora_targets = ("in_proj", "out_proj")

    def __init__(
        self,
        in_bands: int,
        num_classes: int,
        patch_size: int = 9,
        dim: int = 32,
        depth: int = 2,
        spectral_tokens: int = 4,
        d_state: int = 4,
        expand: int = 1,
    ) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(in_bands, dim), nn.LayerNorm(dim), nn.SiLU())
        self.blocks = nn.ModuleList(
            SpectralSpatialMamba(dim, spectral_tokens, d_state, expand) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(2 * dim)
        self.centre = (patch_size * patch_size) // 2
        self.head = nn.Linear(2 * dim, num_classes)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.embed(patches.flatten(2).transpose(1, 2))  # [B, P², D], raster order
        return self._blocks(x, self._first.spectral_scan(x))

    @property
    def _first(self) -> SpectralSpatialMamba:
        return cast(SpectralSpatialMamba, self.blocks[0])

    def pixel_features(self, block: torch.Tensor) -> torch.Tensor:
        """What depends on one pixel alone, computed once per pixel of ``[B, C, H, W]``: the
        embedding and the first block's spectral scan, ``[B, 2D, H, W]``."""
        b, _, h, w = block.shape
        x = self.embed(block.flatten(2).transpose(1, 2))  # [B, HW, D]
        both = torch.cat([x, self._first.spectral_scan(x)], dim=-1)
        return both.transpose(1, 2).reshape(b, -1, h, w)

    def patch_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of patches of :meth:`pixel_features` ``[B, 2D, P, P]``: the spatial scans
        and what follows them, which depend on the whole patch."""
        x, scanned = features.flatten(2).transpose(1, 2).chunk(2, dim=-1)
        return self._blocks(x.contiguous(), scanned.contiguous())

    def _blocks(self, x: torch.Tensor, scanned: torch.Tensor) -> torch.Tensor:
        for index, block in enumerate(self.blocks):
            x = block(x, scanned if index == 0 else None)
        return self.head(self.norm(torch.cat([x[:, self.centre], x.mean(1)], dim=-1)))


_DEFAULTS: dict[str, Any] = {
    "architecture": {"patch_size": 9, "pca": 30},
    "recipe": {"epochs": 100, "lr": 1e-3, "batch_size": 64},
}


@register_model("mamba_hsi_tiny", **_DEFAULTS)
def mamba_hsi_tiny(in_bands: int, num_classes: int, patch_size: int = 9) -> MambaHSI:
    """Spectral-spatial Mamba tiny: d=32, 2 blocks, 4 spectral tokens, state 4, expand 1."""
    return MambaHSI(in_bands, num_classes, patch_size, dim=32, depth=2)


@register_model("mamba_hsi_small", **_DEFAULTS)
def mamba_hsi_small(in_bands: int, num_classes: int, patch_size: int = 9) -> MambaHSI:
    """Spectral-spatial Mamba small: d=64, 3 blocks, 4 spectral tokens, state 8, expand 2."""
    return MambaHSI(in_bands, num_classes, patch_size, dim=64, depth=3, d_state=8, expand=2)
