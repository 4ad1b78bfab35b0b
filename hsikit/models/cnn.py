"""Compact spectral-spatial CNN baselines: a Hamida-style 3-D CNN and HybridSN (3-D + 2-D).

Both take patches ``(B, C, P, P)`` and return logits ``(B, K)``; the spectral axis is the depth
axis of the 3-D convolutions. Without padding inside the patch both are translation-equivariant,
so ``dense_logits`` maps every pixel of a window at once: the convolutional trunk runs once over
the window and its halo, and the dense head becomes a convolution whose kernel covers what the
head saw of one patch. Its logits equal the per-patch ones (up to float summation order).
The first bundles' ``cnn3d`` zero-padded its first convolution at the patch border; such bundles
(``padding="same"``) keep the per-patch path.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from hsikit.models.registry import register_model


def _conv3d(
    cin: int, cout: int, kernel: tuple[int, int, int], stride=(1, 1, 1), padding=(0, 0, 0)
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


def _dense_linear(linear: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``linear`` applied to every ``k × k`` neighbourhood of ``x`` ``[B, C, H, W]`` (flattened
    C-major, as ``nn.Flatten`` orders a ``[C, k, k]`` map), as one valid convolution."""
    assert isinstance(linear, nn.Linear)
    side = int(round((linear.in_features / x.shape[1]) ** 0.5))
    weight = linear.weight.reshape(linear.out_features, x.shape[1], side, side)
    return nn.functional.conv2d(x, weight, linear.bias)


def _flat_size(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Output size for one sample, probed in eval mode so batch-norm statistics stay untouched."""
    module.eval()
    with torch.no_grad():
        size = int(module(torch.zeros(1, *shape)).numel())
    module.train()
    return size


class CNN3D(nn.Module):
    """Hamida et al. (2018)-style 3-D CNN: 3-D convolutions with strided spectral 'pooling'."""

    def __init__(
        self,
        in_bands: int,
        num_classes: int,
        patch_size: int = 7,
        width: int = 16,
        dropout: float = 0.3,
        padding: Literal["same", "valid"] = "same",
    ) -> None:
        super().__init__()
        self.dense = padding == "valid"
        self.features = nn.Sequential(
            _conv3d(1, width, (3, 3, 3), padding=(1, int(not self.dense), int(not self.dense))),
            _conv3d(width, width, (3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0)),
            _conv3d(width, 2 * width, (3, 3, 3), padding=(1, 0, 0)),
            _conv3d(2 * width, 2 * width, (3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0)),
            _conv3d(2 * width, 2 * width, (3, 3, 3), padding=(1, 0, 0)),
            _conv3d(2 * width, 2 * width, (2, 1, 1), stride=(2, 1, 1)),
        )
        flat = _flat_size(self.features, (1, in_bands, patch_size, patch_size))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, num_classes))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(patches.unsqueeze(1)))

    def dense_logits(self, block: torch.Tensor) -> torch.Tensor:
        """``[B, C, H + P - 1, W + P - 1]`` → ``[B, K, H, W]``: the logits of every patch."""
        features = self.features(block.unsqueeze(1))
        return _dense_linear(self.head[-1], features.flatten(1, 2))


class HybridSN(nn.Module):
    """Roy et al. (2020) HybridSN, compact: three 3-D convolutions, one 2-D, two dense layers."""

    def __init__(
        self, in_bands: int, num_classes: int, patch_size: int = 11, dropout: float = 0.4
    ) -> None:
        super().__init__()
        if in_bands < 13 or patch_size < 9:
            raise ValueError("hybridsn needs at least 13 input bands and patches of 9 or more")
        self.dense = True
        self.spectral = nn.Sequential(
            _conv3d(1, 8, (7, 3, 3)), _conv3d(8, 16, (5, 3, 3)), _conv3d(16, 32, (3, 3, 3))
        )
        depth = in_bands - 12
        self.spatial = nn.Sequential(
            nn.Conv2d(32 * depth, 64, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        flat = 64 * (patch_size - 8) ** 2
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(256, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(128, num_classes),
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.spectral(patches.unsqueeze(1))  # (B, 32, C-12, P-6, P-6)
        x = x.flatten(1, 2)
        return self.head(self.spatial(x))

    def dense_logits(self, block: torch.Tensor) -> torch.Tensor:
        """``[B, C, H + P - 1, W + P - 1]`` → ``[B, K, H, W]``: the logits of every patch."""
        x = self.spatial(self.spectral(block.unsqueeze(1)).flatten(1, 2))
        _, first, relu, _, second, _, _, last = self.head
        x = relu(_dense_linear(first, x))
        return _dense_linear(last, relu(_dense_linear(second, x)))


def _cnn3d_padding(patch_size: int) -> dict[str, str]:
    """New bundles map whole windows where the patch is large enough for three unpadded 3 × 3
    convolutions (7 px or more); smaller patches keep the padded first convolution."""
    return {"padding": "valid" if patch_size >= 7 else "same"}


@register_model(
    "cnn3d",
    architecture={"patch_size": 9, "pca": 30},
    recipe={"epochs": 100, "lr": 2e-3, "batch_size": 64},
    recorded=_cnn3d_padding,
)
def cnn3d(
    in_bands: int,
    num_classes: int,
    patch_size: int = 9,
    width: int = 16,
    padding: Literal["same", "valid"] = "same",
) -> CNN3D:
    """Compact Hamida-style 3-D CNN."""
    return CNN3D(in_bands, num_classes, patch_size=patch_size, width=width, padding=padding)


@register_model(
    "hybridsn",
    architecture={"patch_size": 11, "pca": 30},
    recipe={"epochs": 100, "lr": 1e-3, "batch_size": 64},
)
def hybridsn(in_bands: int, num_classes: int, patch_size: int = 11) -> HybridSN:
    """Compact HybridSN: 3-D spectral-spatial then 2-D spatial convolutions."""
    return HybridSN(in_bands, num_classes, patch_size=patch_size)
