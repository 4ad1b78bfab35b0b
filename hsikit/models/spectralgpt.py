"""SpectralGPT-style classifier (Hong et al. 2024), compact: 3-D tubelet tokens (``b``
consecutive bands × ``p × p`` pixels) with separate learned spatial and spectral position
embeddings, a ViT encoder over all tokens jointly, mean-pooled into a linear head.

``SpectralMAE`` (``hsikit.models.pretraining``) pretrains the same encoder with a 90 % random
3-D mask and the two-term loss (masked-token reconstruction plus the band-summed spatial signal).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from hsikit.models.layers import TransformerBlock
from hsikit.models.registry import register_model

LORA_TARGETS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


class SpectralEncoder(nn.Module):
    def __init__(
        self,
        in_bands: int,
        patch_size: int,
        bands_per_token: int,
        patch: int,
        dim: int,
        depth: int,
        heads: int,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if patch_size % patch:
            raise ValueError(
                f"patch size {patch_size} is not a multiple of the token patch {patch}"
            )
        self.bands_per_token, self.patch, self.dim = bands_per_token, patch, dim
        self.groups = math.ceil(in_bands / bands_per_token)
        self.pad = self.groups * bands_per_token - in_bands
        self.positions = (patch_size // patch) ** 2
        self.tubelet = nn.Conv3d(
            1, dim, (bands_per_token, patch, patch), stride=(bands_per_token, patch, patch)
        )
        self.spatial_pos = nn.Parameter(torch.zeros(1, 1, self.positions, dim))
        self.spectral_pos = nn.Parameter(torch.zeros(1, self.groups, 1, dim))
        nn.init.trunc_normal_(self.spatial_pos, std=0.02)
        nn.init.trunc_normal_(self.spectral_pos, std=0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, 4.0, dropout) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def tokens(self, patches: torch.Tensor) -> torch.Tensor:
        """``[B, C, P, P]`` → position-embedded tokens ``[B, T·N, D]`` (spectral-major)."""
        x = nn.functional.pad(patches, (0, 0, 0, 0, 0, self.pad)).unsqueeze(1)
        x = self.tubelet(x).flatten(3).permute(0, 2, 3, 1)  # [B, T, N, D]
        return (x + self.spatial_pos + self.spectral_pos).flatten(1, 2)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)


class SpectralGPT(nn.Module):
    lora_targets = LORA_TARGETS
    head_prefix = "head"

    def __init__(
        self,
        in_bands: int,
        num_classes: int,
        patch_size: int = 9,
        bands_per_token: int = 10,
        patch: int = 3,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
    ) -> None:
        super().__init__()
        self.encoder = SpectralEncoder(
            in_bands, patch_size, bands_per_token, patch, dim, depth, heads
        )
        self.head = nn.Linear(dim, num_classes)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.encode(self.encoder.tokens(patches)).mean(dim=1))


_DEFAULTS: dict[str, Any] = {
    "architecture": {"patch_size": 9},
    "recipe": {"epochs": 100, "lr": 1e-3, "batch_size": 64},
    "pretrain": "mae_3d",
}


@register_model("spectralgpt_tiny", **_DEFAULTS)
def spectralgpt_tiny(in_bands: int, num_classes: int, patch_size: int = 9) -> SpectralGPT:
    """SpectralGPT tiny: 10-band × 3×3-pixel tubelets, d=64, 2 ViT blocks."""
    return SpectralGPT(in_bands, num_classes, patch_size, dim=64, depth=2, heads=4)


@register_model("spectralgpt_small", **_DEFAULTS)
def spectralgpt_small(in_bands: int, num_classes: int, patch_size: int = 9) -> SpectralGPT:
    """SpectralGPT small: 8-band tubelets, d=96, 4 ViT blocks."""
    return SpectralGPT(
        in_bands, num_classes, patch_size, bands_per_token=8, dim=96, depth=4, heads=4
    )


@register_model("spectralgpt_base", **_DEFAULTS)
def spectralgpt_base(in_bands: int, num_classes: int, patch_size: int = 9) -> SpectralGPT:
    """SpectralGPT base (GPU-sized): 4-band tubelets, d=192, 8 ViT blocks."""
    return SpectralGPT(
        in_bands, num_classes, patch_size, bands_per_token=4, dim=192, depth=8, heads=8
    )
