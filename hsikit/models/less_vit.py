"""LESS ViT (Si et al. 2025), compact: tokens per (spectral group, spatial patch), the LESS
attention block, continuous positional-channel embeddings, a perception-field mask.

* **Tokens.** Bands are averaged in groups of ``group`` consecutive bands, each group's ``p × p``
  patches are embedded by one projector shared by every group ("tied"), giving ``[B, G, N, D]``.
* **Embedding.** 2-D sin-cos of each patch's ground position in metres (grid index × p × GSD) and
  1-D sin-cos of each group's central wavelength in nm, averaged: nothing is tied to a band
  count, so weights trained on one band set run on another with known wavelengths.
* **LESS attention.** The token grid is pooled to a low-dimensional spectral stream ``[B, G, c]``
  and spatial stream ``[B, N, s]``; each gets its own multi-head attention (``rank`` query/key
  copies, shared values), and the outputs are recombined per head as the outer product
  ``y[g, n] = Σ_r vec(y_spectral[g] ⊗ y_spatial[n])`` — a low-rank Kronecker product that costs
  O(G² + N²) instead of O((G·N)²) for joint attention.
* **Perception field.** Spatial attention is limited to patches within ``radius`` pixels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from hsikit.models.layers import Mlp
from hsikit.models.registry import register_model

LORA_TARGETS = ("attn.proj", "mlp.fc1", "mlp.fc2")


def sincos(values: torch.Tensor, dim: int) -> torch.Tensor:
    """``[..., ]`` positions → ``[..., dim]`` sin-cos features with MAE frequencies."""
    omega = 1.0 / 10000 ** (
        torch.arange(dim // 2, dtype=torch.float32, device=values.device) / (dim // 2)
    )
    angles = values.float().unsqueeze(-1) * omega
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def positional_channel(
    centres: torch.Tensor, grid: torch.Tensor, patch: int, gsd: float, dim: int
) -> torch.Tensor:
    """``(spatial + channel) / 2`` embedding ``[G, N, dim]``: 2-D sin-cos of each patch's ground
    position in metres and 1-D sin-cos of each group's central wavelength in nm."""
    metres = grid * patch * gsd
    spatial = torch.cat([sincos(metres[:, 0], dim // 2), sincos(metres[:, 1], dim // 2)], dim=-1)
    return (spatial[None] + sincos(centres, dim)[:, None]) / 2


def band_groups(count: int, group: int) -> list[np.ndarray]:
    """Consecutive, nearly equal groups of band indices, about ``group`` bands each."""
    return np.array_split(np.arange(count), max(1, math.ceil(count / group)))


def group_bands(
    x: torch.Tensor, wavelengths: torch.Tensor, group: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, C, P, P]`` and ``[C]`` nm → group means ``[B, G, P, P]`` and centres ``[G]``."""
    groups = band_groups(x.shape[1], group)
    sizes = [len(g) for g in groups]
    values = torch.stack([chunk.mean(1) for chunk in x.split(sizes, dim=1)], dim=1)
    centres = torch.stack([chunk.mean() for chunk in wavelengths.split(sizes)])
    return values, centres


class LowRankSpatialSpectralAttention(nn.Module):
    """The LESS attention: separate spectral and spatial attention, recombined as a Kronecker
    product (see the module docstring)."""

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        channels_per_head: int = 2,
        rank: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        head_dim = dim // heads
        if dim % heads or head_dim % channels_per_head:
            raise ValueError("dim must split into heads × channels_per_head × spatial_per_head")
        self.heads, self.rank = heads, rank
        self.c_head, self.s_head = channels_per_head, head_dim // channels_per_head
        c_dim, s_dim = heads * self.c_head, heads * self.s_head
        self.to_c, self.to_s = nn.Linear(dim, c_dim), nn.Linear(dim, s_dim)
        self.pool_c, self.pool_s = nn.Linear(c_dim, 1), nn.Linear(s_dim, 1)
        self.qk_c, self.v_c = nn.Linear(c_dim, 2 * rank * c_dim), nn.Linear(c_dim, c_dim)
        self.qk_s, self.v_s = nn.Linear(s_dim, 2 * rank * s_dim), nn.Linear(s_dim, s_dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    @staticmethod
    def _pool(x: torch.Tensor, score: nn.Linear, dim: int) -> torch.Tensor:
        """Attention pooling over ``dim`` with learned scores."""
        weights = score(x).softmax(dim=dim)
        return (weights * x).sum(dim=dim)

    def _branch(
        self, x: torch.Tensor, qk: nn.Linear, v: nn.Linear, head_dim: int, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """``[B, L, h·hd]`` → ``[B, rank, heads, L, hd]``: ``rank`` attention maps, shared
        values."""
        b, length, _ = x.shape
        q, k = qk(x).view(b, length, 2, self.rank, self.heads, head_dim).permute(2, 0, 3, 4, 1, 5)
        values = v(x).view(b, length, 1, self.heads, head_dim).permute(0, 2, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * head_dim**-0.5  # [B, r, h, L, L]
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return self.dropout(scores.softmax(-1)) @ values

    def forward(self, x: torch.Tensor, spatial_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``[B, G, N, D]``; ``spatial_mask``: ``[N, N]`` bool (True = may attend)."""
        b, g, n, d = x.shape
        spectral = self._pool(self.to_c(x), self.pool_c, dim=2)  # [B, G, c_dim]
        spatial = self._pool(self.to_s(x), self.pool_s, dim=1)  # [B, N, s_dim]
        yc = self._branch(spectral, self.qk_c, self.v_c, self.c_head, None)
        ys = self._branch(spatial, self.qk_s, self.v_s, self.s_head, spatial_mask)
        # Σ_r yc[g] ⊗ ys[n] per head, as broadcasting (no G·N × G·N matrix is ever formed)
        outer = yc[:, :, :, :, None, :, None] * ys[:, :, :, None, :, None, :]
        y = outer.sum(1).permute(0, 2, 3, 1, 4, 5).reshape(b, g, n, d)
        return self.proj(y)


class LessBlock(nn.Module):
    def __init__(self, dim: int, heads: int, rank: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = LowRankSpatialSpectralAttention(dim, heads, 2, rank, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class LessEncoder(nn.Module):
    """Tokenise ``[B, C, P, P]`` with per-band wavelengths and run the LESS blocks."""

    grid: torch.Tensor

    def __init__(
        self,
        patch_size: int,
        patch: int,
        group: int,
        dim: int,
        depth: int,
        heads: int,
        rank: int,
        radius: float | None,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if patch_size % patch:
            raise ValueError(
                f"patch size {patch_size} is not a multiple of the token patch {patch}"
            )
        self.patch, self.group, self.dim, self.radius = patch, group, dim, radius
        self.side = patch_size // patch
        self.embed = nn.Sequential(
            nn.Conv2d(1, 2 * dim, patch, stride=patch), nn.ReLU(), nn.Conv2d(2 * dim, dim, 1)
        )
        self.blocks = nn.ModuleList(
            LessBlock(dim, heads, rank, mlp_ratio, dropout) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        rows, cols = np.meshgrid(np.arange(self.side), np.arange(self.side), indexing="ij")
        self.register_buffer(
            "grid",
            torch.as_tensor(np.stack([rows.ravel(), cols.ravel()], 1), dtype=torch.float32),
            persistent=False,
        )

    def tokens(
        self, x: torch.Tensor, wavelengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded tokens without position ``[B, G, N, D]`` and group centres ``[G]`` (nm)."""
        values, centres = group_bands(x, wavelengths, self.group)
        b, g, p, _ = values.shape
        tokens = self.embed(values.reshape(b * g, 1, p, p))  # [B·G, D, s, s]
        return tokens.flatten(2).transpose(1, 2).reshape(b, g, -1, self.dim), centres

    def position(self, centres: torch.Tensor, grid: torch.Tensor, gsd: float) -> torch.Tensor:
        return positional_channel(centres, grid, self.patch, gsd, self.dim)

    def mask(self, grid: torch.Tensor) -> torch.Tensor | None:
        if self.radius is None:
            return None
        distance = torch.cdist(grid, grid) * self.patch
        return distance <= self.radius

    def encode(self, tokens: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        mask = self.mask(grid)
        for block in self.blocks:
            tokens = block(tokens, mask)
        return self.norm(tokens)


class LessViT(nn.Module):
    """Band-count agnostic classifier: ``forward(patches, wavelengths=None)``; without
    wavelengths the ones it was built with are used."""

    lora_targets = LORA_TARGETS
    wavelengths: torch.Tensor
    head_prefix = "head"
    uses_wavelengths = True

    def __init__(
        self,
        in_bands: int,
        num_classes: int,
        wavelengths: list[float] | None = None,
        gsd: float = 1.0,
        patch_size: int = 9,
        patch: int = 3,
        group: int = 10,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        rank: int = 2,
        radius: float | None = 4.5,
    ) -> None:
        super().__init__()
        if (
            wavelengths is None
            or len(wavelengths) != in_bands
            or not np.all(np.isfinite(np.asarray(wavelengths, dtype=float)))
        ):
            raise ValueError("LESS ViT needs the wavelength of every input band")
        self.gsd = float(gsd)
        self.register_buffer("wavelengths", torch.tensor(wavelengths, dtype=torch.float32))
        self.encoder = LessEncoder(patch_size, patch, group, dim, depth, heads, rank, radius)
        self.head = nn.Linear(dim, num_classes)

    def forward(
        self, patches: torch.Tensor, wavelengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        wl = self.wavelengths if wavelengths is None else wavelengths.to(patches.device)
        tokens, centres = self.encoder.tokens(patches, wl)
        grid = self.encoder.grid
        tokens = tokens + self.encoder.position(centres, grid, self.gsd)
        return self.head(self.encoder.encode(tokens, grid).mean(dim=(1, 2)))


_DEFAULTS: dict[str, Any] = {
    "architecture": {"patch_size": 9},
    "recipe": {"epochs": 100, "lr": 1e-3, "batch_size": 64},
    "pretrain": "hyper_mae",
}


@register_model("less_vit_tiny", **_DEFAULTS)
def less_vit_tiny(
    in_bands: int,
    num_classes: int,
    wavelengths: list[float] | None = None,
    gsd: float = 1.0,
    patch_size: int = 9,
) -> LessViT:
    """LESS ViT tiny: 10-band groups × 3×3-pixel tokens, d=64, 2 LESS blocks, rank 2."""
    return LessViT(in_bands, num_classes, wavelengths, gsd, patch_size, dim=64, depth=2, heads=4)


@register_model("less_vit_small", **_DEFAULTS)
def less_vit_small(
    in_bands: int,
    num_classes: int,
    wavelengths: list[float] | None = None,
    gsd: float = 1.0,
    patch_size: int = 9,
) -> LessViT:
    """LESS ViT small: d=96, 4 LESS blocks, rank 2."""
    return LessViT(in_bands, num_classes, wavelengths, gsd, patch_size, dim=96, depth=4, heads=4)


@register_model("less_vit_base", **_DEFAULTS)
def less_vit_base(
    in_bands: int,
    num_classes: int,
    wavelengths: list[float] | None = None,
    gsd: float = 1.0,
    patch_size: int = 9,
) -> LessViT:
    """LESS ViT base (GPU-sized): 5-band groups, d=192, 8 LESS blocks, 8 heads."""
    return LessViT(
        in_bands, num_classes, wavelengths, gsd, patch_size, dim=192, depth=8, heads=8, group=5
    )
