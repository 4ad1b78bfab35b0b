"""Local window self-attention with a learned relative position bias (Swin-style).

Tokens on an ``H × W`` grid are split into non-overlapping ``w × w`` windows (the grid is padded
to a multiple of ``w``, and padded tokens are masked out of the keys — the reference leaves them
unmasked); each head adds a bias that depends only on the (dy, dx) offset between query and key.
"""

from __future__ import annotations

import torch
from torch import nn


def relative_position_index(window: int) -> torch.Tensor:
    """``[w², w²]`` index into a ``(2w-1)²`` bias table for every (query, key) pair."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ).flatten(1)  # [2, w²]
    offsets = coords[:, :, None] - coords[:, None, :] + window - 1  # [2, w², w²] in 0…2w-2
    return offsets[0] * (2 * window - 1) + offsets[1]


class WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads, self.window = heads, window
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.bias_index: torch.Tensor
        self.register_buffer("bias_index", relative_position_index(window), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, H, W, D]`` → ``[B, H, W, D]``."""
        b, h, w, d = x.shape
        win = self.window
        ph, pw = -h % win, -w % win
        valid = torch.ones(h, w, dtype=torch.bool, device=x.device)
        if ph or pw:
            x = nn.functional.pad(x, (0, 0, 0, pw, 0, ph))
            valid = nn.functional.pad(valid, (0, pw, 0, ph))
        hh, ww = h + ph, w + pw
        windows = (
            x.view(b, hh // win, win, ww // win, win, d)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(-1, win * win, d)
        )  # [B·nW, w², D]
        keys_valid = (
            valid.view(hh // win, win, ww // win, win).permute(0, 2, 1, 3).reshape(-1, win * win)
        )  # [nW, w²]
        n = windows.shape[0]
        qkv = self.qkv(windows).view(n, win * win, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [N, heads, w², hd]
        scores = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.bias_table[self.bias_index].permute(2, 0, 1)  # [heads, w², w²]
        scores = scores + bias
        mask = keys_valid.repeat(b, 1)[:, None, None, :]
        scores = scores.masked_fill(~mask, float("-inf"))
        out = self.dropout(scores.softmax(-1)) @ v  # [N, heads, w², hd]
        out = self.proj(out.transpose(1, 2).reshape(n, win * win, d))
        out = (
            out.view(b, hh // win, ww // win, win, win, d)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(b, hh, ww, d)
        )
        return out[:, :h, :w]
