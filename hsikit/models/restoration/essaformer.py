"""ESSAformer, compact: single-image hyperspectral super-resolution (after Zhang et al.,
ICCV 2023).

Kept from the paper: ESSA attention — linear attention whose kernel is a spectral correlation
coefficient (queries and keys centred over channels, squared, normalised; ``O(N·C²)``, no
softmax), and the iterative back-projection of PixelShuffle up- and PixelUnshuffle
down-sampling modules whose weights are shared across iterations. hsikit adds a global residual
over the bicubic upsampling of the input, so the network learns the missing detail.
Built from the paper's description, not its code.
"""

from __future__ import annotations

import torch
from torch import nn

from hsikit.models.registry import register_model


class ESSA(nn.Module):
    """Efficient spectral-correlation attention over the pixels of ``[B, N, C]`` tokens."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = (q - q.mean(dim=-1, keepdim=True)) ** 2
        k = (k - k.mean(dim=-1, keepdim=True)) ** 2
        q = q / (q.sum(dim=-1, keepdim=True) + 1e-6)
        k = k / (k.sum(dim=-1, keepdim=True) + 1e-6)
        q = nn.functional.normalize(q, dim=-1)
        k = nn.functional.normalize(k, dim=-2)
        context = k.transpose(-2, -1) @ v  # [B, C, C]
        return self.out(v + q @ context / x.shape[1] ** 0.5)


class ESSABlock(nn.Module):
    """LN → ESSA → dropout, concatenated with the input, 1×1 / 3×3 / 1×1 convolutions, residual."""

    def __init__(self, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = ESSA(dim)
        self.dropout = nn.Dropout2d(dropout)
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * dim, dim, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(dim, dim, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(dim, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # [B, N, C]
        attended = self.attention(self.norm(tokens)).transpose(1, 2).reshape(b, c, h, w)
        return x + self.fuse(torch.cat([self.dropout(attended), x], dim=1))


class ESSAformer(nn.Module):
    """``[B, C, h, w]`` low-resolution cube → ``[B, C, s·h, s·w]``."""

    uses_wavelengths = False
    band_agnostic = False

    def __init__(self, in_bands: int, scale: int = 4, dim: int = 64) -> None:
        super().__init__()
        self.scale = scale
        self.first = nn.Conv2d(in_bands, dim, 3, padding=1)
        self.up = nn.Sequential(
            nn.Conv2d(dim, dim * scale**2, 3, padding=1), nn.PixelShuffle(scale)
        )
        self.down = nn.Sequential(nn.PixelUnshuffle(scale), nn.Conv2d(dim * scale**2, dim, 1))
        self.high = ESSABlock(dim)  # shared by every high-resolution step
        self.low = ESSABlock(dim)  # shared by every low-resolution step
        self.last = nn.Conv2d(dim, in_bands, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.first(x)
        x1 = self.high(self.up(x0))
        x2 = self.low(self.down(x1) + x0)
        x3 = self.high(self.up(x2) + x1)
        x4 = self.low(self.down(x3) + x2)
        x5 = self.high(self.up(x4) + x3)
        upsampled = nn.functional.interpolate(
            x, scale_factor=self.scale, mode="bicubic", align_corners=False
        )
        return upsampled + self.last(x5)


@register_model(
    "essaformer_x2", task="restoration", recipe={"epochs": 40, "lr": 5e-4, "batch_size": 8}
)
def essaformer_x2(in_bands: int, dim: int = 64) -> ESSAformer:
    """Compact ESSAformer, ×2 super-resolution."""
    return ESSAformer(in_bands, scale=2, dim=dim)


@register_model(
    "essaformer_x4", task="restoration", recipe={"epochs": 40, "lr": 5e-4, "batch_size": 8}
)
def essaformer_x4(in_bands: int, dim: int = 64) -> ESSAformer:
    """Compact ESSAformer, ×4 super-resolution."""
    return ESSAformer(in_bands, scale=4, dim=dim)
