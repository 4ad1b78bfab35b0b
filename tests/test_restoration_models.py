"""Every registered restoration head: shapes (cube in, cube out, ×scale for super-resolution),
determinism, save → load → equal output, a one-batch overfit, and other band counts for the
band-agnostic ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsikit.bundle import ModelSpec
from hsikit.models import create_model, get_entry, list_models
from hsikit.restorer import RestorerMeta, load_restorer, save_restorer

RESTORERS = list_models(task="restoration")
BANDS, SIZE = 12, 16


def _build(name: str, bands: int = BANDS, seed: int = 0):
    torch.manual_seed(seed)
    return create_model(name, bands).eval()


def _scale(model) -> int:
    return int(getattr(model, "scale", 1))


def _batch(bands: int = BANDS, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(2, bands, size, size, generator=generator)


def test_the_restoration_heads_are_registered():
    assert {"hsdt_s", "hsdt_m", "essaformer_x2", "essaformer_x4", "mp_hsir_tiny"} <= set(RESTORERS)
    assert all(get_entry(n).task == "restoration" for n in RESTORERS)


@pytest.mark.parametrize("name", RESTORERS)
def test_shapes_and_determinism(name):
    model = _build(name)
    x = _batch()
    y = model(x)
    s = _scale(model)
    assert y.shape == (2, BANDS, SIZE * s, SIZE * s) and torch.isfinite(y).all()
    torch.testing.assert_close(_build(name)(x), y)  # same seed, same weights, same output
    odd = model(torch.rand(1, BANDS, 13, 11))  # sizes that are no multiple of the U-Net's
    assert odd.shape == (1, BANDS, 13 * s, 11 * s)


@pytest.mark.parametrize("name", RESTORERS)
def test_save_load_gives_the_same_output(tmp_path, name):
    model = _build(name)
    meta = RestorerMeta(
        job="superres" if _scale(model) > 1 else "denoise",
        model=ModelSpec(name=name, family="torch"),
        in_bands=BANDS,
        scale=_scale(model),
        band_wavelengths=[float(w) for w in np.linspace(400, 900, BANDS)],
        band_names=[f"b{i}" for i in range(BANDS)],
        data_range=(0.0, 1.0),
    )
    loaded = load_restorer(save_restorer(tmp_path / f"{name}.safetensors", meta, model))
    x = _batch()
    torch.testing.assert_close(loaded.model(x), model(x))


@pytest.mark.parametrize("name", RESTORERS)
def test_one_batch_overfits(name):
    model = _build(name).train()
    clean = _batch(seed=1)
    s = _scale(model)
    if s > 1:
        target, source = clean, torch.nn.functional.avg_pool2d(clean, s)
        target = target[..., : source.shape[-2] * s, : source.shape[-1] * s]
    else:
        target, source = clean, clean + 0.1 * torch.randn_like(clean)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        loss = (model(source) - target).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses[::10]


@pytest.mark.parametrize(
    "name", [n for n in RESTORERS if getattr(_build(n), "band_agnostic", False)]
)
def test_band_agnostic_heads_run_on_another_band_count(name):
    model = _build(name)
    assert model(torch.rand(1, 7, SIZE, SIZE)).shape == (1, 7, SIZE, SIZE)
