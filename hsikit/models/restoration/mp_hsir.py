"""MP-HSIR, tiny: one network for every degradation (after Wu, Chen, Yokoya & He, 2025).

Kept from the paper: a U-Net whose blocks sum three attentions — window self-attention over
space, global (transposed, channel × channel) spectral attention, and attention guided by a
small learned bank of spectral prompts — then a gated feed-forward; and conditioning on the
degradation. The paper conditions on frozen CLIP text embeddings of sentences naming the
degradation, chosen at test time by a separate classifier; CLIP's vectors are constants, so
hsikit uses a learned embedding per degradation instead, and a small classifier trained with
the network picks it when the degradation is not given. Super-resolution inputs are upsampled
(bicubic) to the output grid first, so every task maps a cube to one of the same size.
Built from the paper's description, not its code.
"""

from __future__ import annotations

import torch
from torch import nn

from hsikit.models.layers import WindowAttention
from hsikit.models.registry import register_model

#: The degradations one network learns, in the order of its embedding and classifier.
TASKS = ("gaussian", "complex", "blur", "sr2", "sr4", "bandloss")


class ChannelNorm(nn.Module):
    """LayerNorm over channels of ``[B, C, H, W]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SpectralAttention(nn.Module):
    """Transposed attention: channel × channel, over all pixels (Restormer's MDTA)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.out = nn.Conv2d(dim, dim, 1)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        q, k = nn.functional.normalize(q, dim=-1), nn.functional.normalize(k, dim=-1)
        attention = torch.softmax(q @ k.transpose(-2, -1) * self.temperature, dim=-1)
        return self.out((attention @ v).reshape(b, c, h, w))


class PromptAttention(nn.Module):
    """A learned bank of spectral prompts, mixed by the block's pooled features, modulating
    the channels (the paper's prompt-guided spectral attention, simplified)."""

    def __init__(self, dim: int, prompts: int = 16) -> None:
        super().__init__()
        self.bank = nn.Parameter(torch.randn(prompts, dim) * 0.02)
        self.choose = nn.Linear(dim, prompts)
        self.value = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.choose(x.mean(dim=(2, 3))), dim=-1)  # [B, prompts]
        prompt = weights @ self.bank  # [B, dim]
        return self.value(x) * torch.sigmoid(prompt)[:, :, None, None]


class PromptedBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int = 8) -> None:
        super().__init__()
        self.norm = ChannelNorm(dim)
        self.window = WindowAttention(dim, heads, window)
        self.spectral = SpectralAttention(dim, heads)
        self.prompt = PromptAttention(dim)
        self.norm_ffn = ChannelNorm(dim)
        self.ffn_in = nn.Conv2d(dim, 4 * dim, 1)
        self.ffn_out = nn.Conv2d(2 * dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x)
        spatial = self.window(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = x + spatial + self.spectral(y) + self.prompt(y)
        gate, value = self.ffn_in(self.norm_ffn(x)).chunk(2, dim=1)
        return x + self.ffn_out(nn.functional.gelu(gate) * value)


class DegradationClassifier(nn.Module):
    """Which of :data:`TASKS` degraded a cube: a few strided convolutions and a linear layer."""

    def __init__(self, in_bands: int, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_bands, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
        )
        self.head = nn.Linear(2 * width, len(TASKS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)


class MPHSIR(nn.Module):
    """``[B, C, H, W]`` degraded cube → restored cube of the same size; ``task`` (indices
    into :data:`TASKS`) conditions it, else its classifier chooses."""

    uses_wavelengths = False
    band_agnostic = False
    tasks = TASKS

    def __init__(self, in_bands: int, dim: int = 32, heads: int = 2) -> None:
        super().__init__()
        self.first = nn.Conv2d(in_bands, dim, 3, padding=1)
        self.encode1 = PromptedBlock(dim, heads)
        self.down1 = nn.Conv2d(dim, 2 * dim, 4, stride=2, padding=1)
        self.encode2 = PromptedBlock(2 * dim, heads)
        self.down2 = nn.Conv2d(2 * dim, 4 * dim, 4, stride=2, padding=1)
        self.bottleneck = PromptedBlock(4 * dim, heads)
        self.task_embedding = nn.Embedding(len(TASKS), 4 * dim)
        self.up2 = nn.ConvTranspose2d(4 * dim, 2 * dim, 2, stride=2)
        self.merge2 = nn.Conv2d(4 * dim, 2 * dim, 1)
        self.decode2 = PromptedBlock(2 * dim, heads)
        self.up1 = nn.ConvTranspose2d(2 * dim, dim, 2, stride=2)
        self.merge1 = nn.Conv2d(2 * dim, dim, 1)
        self.decode1 = PromptedBlock(dim, heads)
        self.refine = PromptedBlock(dim, heads)
        self.last = nn.Conv2d(dim, in_bands, 3, padding=1)
        self.classifier = DegradationClassifier(in_bands)

    def forward(self, x: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        if task is None:
            task = self.classifier(x).argmax(dim=1)
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % 4, -w % 4
        padded = (
            nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if (pad_h or pad_w) else x
        )
        e1 = self.encode1(self.first(padded))
        e2 = self.encode2(self.down1(e1))
        bottom = self.down2(e2) + self.task_embedding(task)[:, :, None, None]
        bottom = self.bottleneck(bottom)
        d2 = self.decode2(self.merge2(torch.cat([self.up2(bottom), e2], dim=1)))
        d1 = self.decode1(self.merge1(torch.cat([self.up1(d2), e1], dim=1)))
        out = padded + self.last(self.refine(d1))
        return out[..., :h, :w]


@register_model(
    "mp_hsir_tiny", task="restoration", recipe={"epochs": 40, "lr": 5e-4, "batch_size": 8}
)
def mp_hsir_tiny(in_bands: int, dim: int = 32) -> MPHSIR:
    """Tiny MP-HSIR: one network for every degradation, with a degradation classifier."""
    return MPHSIR(in_bands, dim=dim)
