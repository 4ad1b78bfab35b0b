"""Augmentations of training patches: symmetries of the square, centre-filled context,
brightness about the dark point, mixup of patches and labels."""

from __future__ import annotations

import torch
from torch import nn


def dihedral_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random flips and transposes of each patch (all 8 symmetries of the square), per sample."""
    flags = (torch.rand(3, x.shape[0], generator=generator) < 0.5).to(x.device)
    for flag, transform in zip(
        flags, (lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.transpose(-1, -2))
    ):
        x = torch.where(flag[:, None, None, None], transform(x), x)
    return x


def context_dropout(
    x: torch.Tensor, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Overwrite a random share (uniform in 0–1) of the neighbour pixels of a ``rate`` share of
    the patches with their centre pixel's spectrum.

    Patch models learn the context their training pixels sit in (field edges, strips); on unseen
    fields that context differs (field interiors, other neighbours) and the centre spectrum is
    what transfers. Centre-filled neighbours keep the label true while breaking that reliance.
    """
    b, _, h, w = x.shape
    chosen = torch.rand(b, 1, 1, 1, generator=generator) < rate
    share = torch.rand(b, 1, 1, 1, generator=generator)
    filled = (chosen & (torch.rand(b, 1, h, w, generator=generator) < share)).to(x.device)
    centre = x[:, :, h // 2, w // 2, None, None]
    return torch.where(filled, centre, x)


def brightness_augment(
    x: torch.Tensor,
    spread: float,
    dark_point: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Each patch as if its surface were brighter or darker by a random factor in
    ``1 ± spread``: unseen fields of a class differ in illumination, soil moisture and canopy
    cover, which scale a spectrum more than they change its shape.

    The model sees preprocessed spectra (standardised, maybe PCA), an affine map of the physical
    ones, so scaling a physical spectrum by ``s`` is scaling its model input by ``s`` about
    ``dark_point``, the model input of a zero spectrum (``Preprocessor.dark_point``).
    """
    scale = 1 + spread * (2 * torch.rand(x.shape[0], 1, 1, 1, generator=generator) - 1)
    origin = dark_point.to(x.dtype).view(1, -1, 1, 1)
    return origin + scale.to(x.device) * (x - origin)


def mixup(x: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each patch mixed with a partner from the batch in a share ``λ ~ Beta(alpha, alpha)``:
    ``λ x_i + (1 − λ) x_partner``; returns the mixed patches, the partners' indices and the
    shares, from which ``mixed_targets`` makes the matching targets.

    A pixel that covers two surfaces has, to first order, the area-weighted mean of their
    spectra (the linear mixing model), so a mixed patch is a plausible scene pixel whose class
    shares are its target. The model input is an affine map of the physical spectra
    (standardised, maybe PCA), and affine maps keep weighted means, so mixing model inputs is
    mixing the physical spectra. Draws from torch's global generator, which training seeds
    (Beta sampling takes no other).
    """
    share = torch.distributions.Beta(alpha, alpha).sample((x.shape[0],)).to(x.device, x.dtype)
    partner = torch.randperm(x.shape[0]).to(x.device)
    weight = share.view(-1, 1, 1, 1)
    return weight * x + (1 - weight) * x[partner], partner, share


def mixed_targets(
    y: torch.Tensor, partner: torch.Tensor, share: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """The ``[B, num_classes]`` class probabilities of ``mixup``'s patches."""
    one_hot = nn.functional.one_hot(y, num_classes).to(share.dtype)
    return share[:, None] * one_hot + (1 - share[:, None]) * one_hot[partner]
