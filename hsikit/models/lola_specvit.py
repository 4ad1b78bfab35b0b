"""LoLA-SpecViT (Zidi et al. 2025), compact: a 3-D convolutional spectral front end with
squeeze-excitation, a strided patch embedding, local window attention blocks with a relative
position bias and SwiGLU feed-forward, and true low-rank LoRA on qkv, the attention projection and
the feed-forward (injected for fine-tuning; see ``layers.lora``).

Departures from the reference code, following the paper's intent (MODELS.md §1): LoRA is plain
low-rank ``B·A`` without the full-rank gate and residual matrices; SwiGLU replaces the MLP rather
than being stacked on it; padded tokens are masked out of attention.

``lola_specvit_proj_*`` departs once more: the front end ends in a learned 1 × 1 projection of
every (feature channel, band) plane instead of the paper's mean over the spectral axis. The mean
is blind to *which* band a feature came from — with principal components as bands, their order
is all that tells them apart — and the projection keeps it, for ``channels² × bands`` weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hsikit.models.layers import SwiGLU, WindowAttention
from hsikit.models.registry import register_model

#: Linear layers that receive LoRA adapters; ``head`` stays fully trainable when fine-tuning.
LORA_TARGETS = ("attn.qkv", "attn.proj", "ffn.gate", "ffn.value", "ffn.out")


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, ...]
        weights = self.fc(x.flatten(2).mean(-1))
        return x * weights.view(*weights.shape, *([1] * (x.dim() - 2)))


class SpectralStem(nn.Module):
    """``[B, bands, P, P]`` → ``[B, c2, P, P]``: 3-D convolutions along the spectrum (kernels 7
    then 5 then 3 bands), squeeze-excitation over feature channels, then the spectral axis is
    folded away: averaged (the paper) or, when ``bands`` is given, projected by a learned 1 × 1
    convolution over all ``c2 × bands`` planes, which keeps where along the spectrum a feature
    was found."""

    def __init__(self, c1: int, c2: int, bands: int | None = None) -> None:
        super().__init__()

        def conv(cin: int, cout: int, depth: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv3d(cin, cout, (depth, 3, 3), padding=(depth // 2, 1, 1), bias=False),
                nn.BatchNorm3d(cout),
                nn.SiLU(),
            )

        self.convs = nn.Sequential(conv(1, c1, 7), conv(c1, c2, 5), conv(c2, c2, 3))
        self.se = SqueezeExcitation(c2)
        self.projection = (
            None
            if bands is None
            else nn.Sequential(
                nn.Conv2d(c2 * bands, c2, 1, bias=False), nn.BatchNorm2d(c2), nn.SiLU()
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.se(self.convs(x.unsqueeze(1)))  # [B, c2, bands, P, P]
        if self.projection is None:
            return features.mean(dim=2)
        return self.projection(features.flatten(1, 2))


class LoLABlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = SwiGLU(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, H, W, D]
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class LoLASpecViT(nn.Module):
    lora_targets = LORA_TARGETS
    head_prefix = "head"

    def __init__(
        self,
        in_bands: int,
        num_classes: int,
        patch_size: int = 11,
        stem: tuple[int, int] = (8, 16),
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        window: int = 7,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
        band_projection: bool = False,
    ) -> None:
        super().__init__()
        self.stem = SpectralStem(*stem, bands=in_bands if band_projection else None)
        self.embed = nn.Sequential(
            nn.Conv2d(stem[1], dim, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(dim),
            nn.SiLU(),
        )
        grid = (patch_size + 1) // 2
        self.pos = nn.Parameter(torch.zeros(1, grid, grid, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(
            LoLABlock(dim, heads, min(window, grid), mlp_ratio, dropout) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.embed(self.stem(patches)).permute(0, 2, 3, 1) + self.pos  # [B, g, g, D]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x.mean(dim=(1, 2))))


_DEFAULTS: dict[str, Any] = {
    "architecture": {"patch_size": 11, "pca": 15},
    "recipe": {"epochs": 100, "lr": 1e-3, "batch_size": 64},
}
_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"stem": (8, 16), "dim": 64, "depth": 2, "heads": 4},
    "small": {"stem": (16, 32), "dim": 96, "depth": 4, "heads": 4},
    "base": {"stem": (32, 64), "dim": 192, "depth": 8, "heads": 8, "mlp_ratio": 4.0},
}


@register_model("lola_specvit_tiny", **_DEFAULTS)
def lola_specvit_tiny(in_bands: int, num_classes: int, patch_size: int = 11) -> LoLASpecViT:
    """LoLA-SpecViT tiny: 3-D conv stem (8, 16), d=64, 2 window-attention blocks."""
    return LoLASpecViT(in_bands, num_classes, patch_size, **_SIZES["tiny"])


@register_model("lola_specvit_small", **_DEFAULTS)
def lola_specvit_small(in_bands: int, num_classes: int, patch_size: int = 11) -> LoLASpecViT:
    """LoLA-SpecViT small: 3-D conv stem (16, 32), d=96, 4 window-attention blocks."""
    return LoLASpecViT(in_bands, num_classes, patch_size, **_SIZES["small"])


@register_model("lola_specvit_base", **_DEFAULTS)
def lola_specvit_base(in_bands: int, num_classes: int, patch_size: int = 11) -> LoLASpecViT:
    """LoLA-SpecViT base (GPU-sized): 3-D conv stem (32, 64), d=192, 8 blocks."""
    return LoLASpecViT(in_bands, num_classes, patch_size, **_SIZES["base"])


@register_model("lola_specvit_proj_tiny", **_DEFAULTS)
def lola_specvit_proj_tiny(in_bands: int, num_classes: int, patch_size: int = 11) -> LoLASpecViT:
    """LoLA-SpecViT tiny with a learned band projection in place of the spectral mean."""
    return LoLASpecViT(in_bands, num_classes, patch_size, **_SIZES["tiny"], band_projection=True)


@register_model("lola_specvit_proj_small", **_DEFAULTS)
def lola_specvit_proj_small(in_bands: int, num_classes: int, patch_size: int = 11) -> LoLASpecViT:
    """LoLA-SpecViT small with a learned band projection in place of the spectral mean."""
    return LoLASpecViT(in_bands, num_classes, patch_size, **_SIZES["small"], band_projection=True)


@register_model("lola_specvit_proj_base", **_DEFAULTS)
def lola_specvit_proj_base(in_bands: int, num_classes: int, patch_size: int = 11) -> LoLASpecViT:
    """LoLA-SpecViT base with a learned band projection in place of the spectral mean."""
    return LoLASpecViT(in_bands, num_classes, patch_size, **_SIZES["base"], band_projection=True)
