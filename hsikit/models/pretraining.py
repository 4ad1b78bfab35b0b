"""Masked-autoencoder pretraining heads for the seed encoders (unlabelled patches → loss).

* ``HyperMAE`` (LESS ViT, Si et al. 2025): decoupled masks — a random 50 % of the spectral groups
  and a random 75 % of the spatial positions are hidden (one mask per batch, as the reference
  shares it); the encoder sees only the visible groups × visible positions; a light LESS decoder
  fills channel-masked rows and position-masked columns with their own mask tokens, re-adds the
  positional-channel embedding and predicts each token's pixels. Loss: per-token normalised MSE
  averaged over masked positions plus over masked channels.
* ``SpectralMAE`` (SpectralGPT, Hong et al. 2024): a random 90 % of all 3-D tokens hidden per
  sample; a one-block ViT decoder predicts every token's ``b × p × p`` values. Loss: MSE on the
  masked tokens plus MSE of the band-aggregated spatial signal (prediction and target averaged
  over all bands — the band sum divided by the band count, which keeps both terms on one scale)
  at every position.

Only ``encoder.*`` weights are kept afterwards; they load into the classifier of the same name.
"""

from __future__ import annotations

import torch
from torch import nn

from hsikit.models.layers import TransformerBlock
from hsikit.models.less_vit import LessBlock, LessEncoder, LessViT, group_bands, positional_channel
from hsikit.models.spectralgpt import SpectralGPT


def _patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """``[B, K, P, P]`` → ``[B, K, N, p·p]`` non-overlapping ``p × p`` tiles, raster order."""
    b, k, size, _ = x.shape
    s = size // p
    return x.view(b, k, s, p, s, p).permute(0, 1, 2, 4, 3, 5).reshape(b, k, s * s, p * p)


def _normalise(target: torch.Tensor) -> torch.Tensor:
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    return (target - mean) / (var + 1e-6).sqrt()


def _random_subset(
    count: int, keep: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    return torch.randperm(count, generator=generator).to(device)[:keep].sort().values


class HyperMAE(nn.Module):
    wavelengths: torch.Tensor
    encoder: LessEncoder

    def __init__(
        self,
        classifier: LessViT,
        channel_ratio: float = 0.5,
        spatial_ratio: float = 0.75,
        decoder_dim: int = 48,
    ) -> None:
        super().__init__()
        self.encoder = classifier.encoder
        self.register_buffer("wavelengths", classifier.wavelengths.clone())
        self.gsd = classifier.gsd
        self.channel_ratio, self.spatial_ratio = channel_ratio, spatial_ratio
        dim = self.encoder.dim
        self.decoder_dim = decoder_dim
        self.to_decoder = nn.Linear(dim, decoder_dim)
        self.mask_channel = nn.Parameter(torch.zeros(decoder_dim))
        self.mask_position = nn.Parameter(torch.zeros(decoder_dim))
        nn.init.normal_(self.mask_channel, std=0.02)
        nn.init.normal_(self.mask_position, std=0.02)
        self.decoder = LessBlock(decoder_dim, 4, 1, 2.0, 0.0)
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.predict = nn.Linear(decoder_dim, self.encoder.patch**2)

    def loss(self, patches: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        enc = self.encoder
        tokens, centres = enc.tokens(patches, self.wavelengths)
        b, g, n, _ = tokens.shape
        keep_g = _random_subset(
            g, max(2, round(g * (1 - self.channel_ratio))), generator, tokens.device
        )
        keep_n = _random_subset(
            n, max(1, round(n * (1 - self.spatial_ratio))), generator, tokens.device
        )
        grid = enc.grid
        visible = tokens[:, keep_g][:, :, keep_n]
        visible = visible + enc.position(centres[keep_g], grid[keep_n], self.gsd)
        encoded = self.to_decoder(enc.encode(visible, grid[keep_n]))
        shown_g = torch.zeros(g, dtype=torch.bool, device=tokens.device)
        shown_g[keep_g] = True
        shown_n = torch.zeros(n, dtype=torch.bool, device=tokens.device)
        shown_n[keep_n] = True
        full = (
            (
                self.mask_channel * (~shown_g)[:, None, None]
                + self.mask_position * (~shown_n)[None, :, None]
            )
            .expand(b, g, n, -1)
            .clone()
        )
        full[:, keep_g[:, None], keep_n[None, :]] = encoded
        full = full + positional_channel(centres, grid, enc.patch, self.gsd, self.decoder_dim)
        prediction = self.predict(self.decoder_norm(self.decoder(full, enc.mask(grid))))
        values, _ = group_bands(patches, self.wavelengths, enc.group)
        error = ((prediction - _normalise(_patchify(values, enc.patch))) ** 2).mean(-1)
        return error[:, :, ~shown_n].mean() + error[:, ~shown_g].mean()


class SpectralMAE(nn.Module):
    def __init__(
        self, classifier: SpectralGPT, mask_ratio: float = 0.9, decoder_dim: int = 48
    ) -> None:
        super().__init__()
        self.encoder = classifier.encoder
        self.mask_ratio = mask_ratio
        enc = self.encoder
        self.to_decoder = nn.Linear(enc.dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(decoder_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.decoder_pos = nn.Parameter(torch.zeros(1, enc.groups * enc.positions, decoder_dim))
        nn.init.trunc_normal_(self.decoder_pos, std=0.02)
        self.decoder = TransformerBlock(decoder_dim, 4, 2.0)
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.predict = nn.Linear(decoder_dim, enc.bands_per_token * enc.patch**2)

    def loss(self, patches: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        enc = self.encoder
        tokens = enc.tokens(patches)  # [B, L, D], L = T·N
        b, length, d = tokens.shape
        keep = max(1, round(length * (1 - self.mask_ratio)))
        noise = torch.rand(b, length, generator=generator).to(tokens.device)
        order = noise.argsort(dim=1)
        kept = order[:, :keep]
        encoded = enc.encode(torch.gather(tokens, 1, kept[..., None].expand(-1, -1, d)))
        full = self.mask_token.expand(b, length, -1).clone()
        full.scatter_(1, kept[..., None].expand(-1, -1, full.shape[-1]), self.to_decoder(encoded))
        prediction = self.predict(self.decoder_norm(self.decoder(full + self.decoder_pos)))
        target = self._targets(patches)  # [B, L, b·p·p]
        masked = torch.ones(b, length, dtype=torch.bool, device=tokens.device)
        masked.scatter_(1, kept, False)
        token_loss = ((prediction - target) ** 2).mean(-1)[masked].mean()
        shape = (b, enc.groups, enc.positions, enc.bands_per_token, enc.patch**2)
        aggregate = lambda t: t.view(shape).mean(dim=(1, 3))  # noqa: E731  [B, N, p·p]
        return token_loss + ((aggregate(prediction) - aggregate(target)) ** 2).mean()

    def _targets(self, patches: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        x = nn.functional.pad(patches, (0, 0, 0, 0, 0, enc.pad))  # [B, T·b, P, P]
        tiles = _patchify(x, enc.patch)  # [B, T·b, N, p·p]
        b = x.shape[0]
        tiles = tiles.view(b, enc.groups, enc.bands_per_token, enc.positions, -1)
        return tiles.permute(0, 1, 3, 2, 4).reshape(b, enc.groups * enc.positions, -1)


PRETRAINERS = {"hyper_mae": HyperMAE, "mae_3d": SpectralMAE}


def build_pretrainer(kind: str, classifier: nn.Module) -> nn.Module:
    return PRETRAINERS[kind](classifier)
