"""Applying a gridded-field head: physical coarse fields in, physical fine fields out (the
bundle's per-layer standardisation on the way in and out), longitude wrapping around on global
grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hsikit.errors import InputError
from hsikit.gridded.fields import Fields
from hsikit.restorer import Restorer

#: Fields per forward pass.
BATCH = 4


def check_layers(restorer: Restorer, fields: Fields) -> None:
    """Refuse a file whose layers are not the bundle's (same names, same order)."""
    stats = restorer.meta.fields
    assert stats is not None  # the caller routes only gridded bundles here
    if fields.names != stats.layers:
        raise InputError(
            fields.path,
            f"has layers {', '.join(fields.names)}, and the bundle was trained on "
            f"{', '.join(stats.layers)}",
            "give --variables " + " ".join(stats.layers) + " or a bundle trained on these layers",
        )


def downscale(restorer: Restorer, coarse: np.ndarray, periodic: bool) -> np.ndarray:
    """``[N, V, h, w]`` physical fields → ``[N, V, s·h, s·w]`` (float32)."""
    import torch

    stats = restorer.meta.fields
    assert stats is not None
    mean = np.asarray(stats.mean, np.float32)[:, None, None]
    std = np.asarray(stats.std, np.float32)[:, None, None]
    model = restorer.model
    if hasattr(model, "set_periodic"):
        model.set_periodic(periodic)
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(coarse), BATCH):
            x = torch.from_numpy(((coarse[start : start + BATCH] - mean) / std).astype(np.float32))
            out.append(model(x.to(device)).cpu().numpy())
    return np.concatenate(out) * std + mean


def gridded_bundle(restorer: Restorer, path: Path | str | None) -> None:
    """Refuse a spectral-cube bundle for a gridded file (its data range and bands mean nothing
    for weather fields)."""
    if restorer.meta.fields is None:
        raise InputError(
            path,
            "this bundle super-resolves spectral cubes, not gridded fields",
            "train one for the file's fields with 'hsikit train-downscaler' and give it with -m",
        )
