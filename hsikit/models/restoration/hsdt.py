"""HSDT, compact: a hybrid spectral denoising transformer (after Lai, Yan & Fu, ICCV 2023).

A 3-D U-Net over ``[B, 1, bands, H, W]`` with two spatial downsamplings and a global residual.
Each level is an S3Conv — two spatial ``1 × k × k`` convolutions plus a spectral ``k × 1 × 1``
one, summed — with batch normalisation, then a transformer block of guided spectral
self-attention (GSSA) and a self-modulated feed-forward (SM-FFN). GSSA attends band to band
from each band's spatially pooled features; hsikit keeps only the paper's self-similarity path
(``P·Pᵀ``), so the model runs on any band count (the learned-query path is tied to 31 bands).
Built from the paper's description, not its code.
"""

from __future__ import annotations

import torch
from torch import nn

from hsikit.models.registry import register_model


class S3Conv(nn.Module):
    """Separable 3-D convolution: spatial (two ``1 × k × k``) plus spectral (``k × 1 × 1``)."""

    def __init__(self, cin: int, cout: int, k: int = 3, down: bool = False) -> None:
        super().__init__()
        stride = (1, 2, 2) if down else (1, 1, 1)
        self.spatial = nn.Sequential(
            nn.Conv3d(cin, cout, (1, k, k), stride=stride, padding=(0, k // 2, k // 2)),
            nn.LeakyReLU(0.2),
            nn.Conv3d(cout, cout, (1, k, k), padding=(0, k // 2, k // 2)),
            nn.LeakyReLU(0.2),
        )
        self.spectral = nn.Conv3d(cin, cout, (k, 1, 1), stride=stride, padding=(k // 2, 0, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(x) + self.spectral(x)


class GuidedSpectralAttention(nn.Module):
    """Band × band attention from the self-similarity of the bands' pooled features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.value = nn.Conv3d(channels, channels, 1)
        self.out = nn.Conv3d(channels, channels, 1)
        self.scale = channels**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(3, 4)).transpose(1, 2)  # [B, D, C]
        attention = torch.softmax(pooled @ pooled.transpose(1, 2) * self.scale, dim=-1)
        mixed = torch.einsum("bde,bcehw->bcdhw", attention, self.value(x))
        return self.out(mixed)


class SelfModulatedFFN(nn.Module):
    """``W2·GELU(W1 x) + a ⊙ sigmoid(b)`` with ``[a, b] = W3 x``, per voxel."""

    def __init__(self, channels: int, expansion: int = 2) -> None:
        super().__init__()
        hidden = channels * expansion
        self.inner = nn.Conv3d(channels, hidden, 1)
        self.outer = nn.Conv3d(hidden, channels, 1)
        self.gates = nn.Conv3d(channels, 2 * channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.gates(x).chunk(2, dim=1)
        return self.outer(nn.functional.gelu(self.inner(x))) + a * torch.sigmoid(b)


class HSDTBlock(nn.Module):
    """S3Conv + BN, then GSSA and SM-FFN, each with a residual."""

    def __init__(self, cin: int, cout: int, down: bool = False) -> None:
        super().__init__()
        self.conv = S3Conv(cin, cout, down=down)
        self.norm = nn.BatchNorm3d(cout)
        self.attention = GuidedSpectralAttention(cout)
        self.ffn = SelfModulatedFFN(cout)
        self.norm_attention = nn.GroupNorm(1, cout)
        self.norm_ffn = nn.GroupNorm(1, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        x = x + self.attention(self.norm_attention(x))
        return x + self.ffn(self.norm_ffn(x))


class HSDT(nn.Module):
    """Denoiser: ``[B, C, H, W]`` → ``[B, C, H, W]`` for any band count ``C``."""

    uses_wavelengths = False
    band_agnostic = True

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        c = channels
        self.encoder = nn.ModuleList(
            [
                HSDTBlock(1, c),
                HSDTBlock(c, 2 * c, down=True),
                HSDTBlock(2 * c, 2 * c),
                HSDTBlock(2 * c, 4 * c, down=True),
                HSDTBlock(4 * c, 4 * c),
            ]
        )
        self.decoder = nn.ModuleList(
            [
                HSDTBlock(4 * c, 4 * c),
                HSDTBlock(4 * c, 2 * c),
                HSDTBlock(2 * c, 2 * c),
                HSDTBlock(2 * c, c),
                HSDTBlock(c, c),
            ]
        )
        self.head = nn.Conv3d(c, 1, (3, 3, 3), padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            x = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        cube = x[:, None]
        skips = []
        y = cube
        for block in self.encoder:
            y = block(y)
            skips.append(y)
        skips.pop()  # the deepest output is the decoder's input
        for index, block in enumerate(self.decoder):
            y = block(y)
            if index in (1, 3):  # back up a level: upsample, then add the encoder's skip
                y = nn.functional.interpolate(
                    y, scale_factor=(1, 2, 2), mode="trilinear", align_corners=False
                )
            if skips:
                y = y + skips.pop()
        out = cube + self.head(y)
        return out[:, 0, :, :h, :w]


@register_model("hsdt_s", task="restoration", recipe={"epochs": 40, "lr": 1e-3, "batch_size": 8})
def hsdt_s(in_bands: int) -> HSDT:
    """Compact HSDT denoiser (8 channels), any band count."""
    return HSDT(channels=8)


@register_model("hsdt_m", task="restoration", recipe={"epochs": 40, "lr": 1e-3, "batch_size": 8})
def hsdt_m(in_bands: int) -> HSDT:
    """Compact HSDT denoiser (16 channels), any band count."""
    return HSDT(channels=16)
