"""Shared seed-model layers, each against a slow, obviously correct reference."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hsikit.models.layers import (
    LoRALinear,
    SwiGLU,
    WindowAttention,
    count_parameters,
    freeze_all_but_lora,
    inject_lora,
    merge_lora,
    selective_scan,
    selective_scan_reference,
    set_lora_strength,
)
from hsikit.models.less_vit import LowRankSpatialSpectralAttention


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Sequential()
        self.attn.qkv = nn.Linear(8, 24)
        self.attn.proj = nn.Linear(24, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.attn.proj(torch.relu(self.attn.qkv(x)))))


def _lora_model(seed: int = 0) -> tuple[TwoLayers, TwoLayers]:
    torch.manual_seed(seed)
    base = TwoLayers()
    tuned = TwoLayers()
    tuned.load_state_dict(base.state_dict())
    inject_lora(tuned, ["attn.qkv", "attn.proj"], rank=2, alpha=4.0)
    return base, tuned


def test_lora_starts_equal_to_the_base_model():
    base, tuned = _lora_model()
    x = torch.randn(5, 8)
    torch.testing.assert_close(tuned(x), base(x), rtol=0, atol=0)


def test_lora_trains_only_adapters_and_head():
    _, tuned = _lora_model()
    freeze_all_but_lora(tuned, also=("head",))
    tuned(torch.randn(5, 8)).sum().backward()
    with_grad = {n for n, p in tuned.named_parameters() if p.grad is not None}
    assert with_grad == {
        "attn.qkv.lora_a",
        "attn.qkv.lora_b",
        "attn.proj.lora_a",
        "attn.proj.lora_b",
        "head.weight",
        "head.bias",
    }
    counts = count_parameters(tuned)
    assert counts["trainable"] == 2 * (8 + 24) + 2 * (24 + 8) + 8 * 3 + 3


def test_lora_update_is_low_rank_scaled_by_strength_and_merges():
    torch.manual_seed(1)
    layer = LoRALinear(nn.Linear(6, 4), rank=2, alpha=4.0)
    nn.init.normal_(layer.lora_b)
    x = torch.randn(7, 6)
    base_out = layer.base(x)
    reference = base_out + x @ (layer.lora_b @ layer.lora_a).T * (4.0 / 2)  # slow: dense ΔW
    torch.testing.assert_close(layer(x), reference)
    assert torch.linalg.matrix_rank(layer.delta_weight()) == 2
    layer.strength = 0.5
    torch.testing.assert_close(layer(x) - base_out, 0.5 * (reference - base_out))
    before = layer(x)
    layer.merge()
    torch.testing.assert_close(layer(x), before, atol=1e-5, rtol=0)
    torch.testing.assert_close(layer.base(x), before, atol=1e-5, rtol=0)
    layer.unmerge()
    torch.testing.assert_close(layer.base(x), base_out, atol=1e-5, rtol=0)


def test_merged_model_is_the_plain_architecture_with_the_same_outputs():
    _, tuned = _lora_model()
    for layer in (tuned.attn.qkv, tuned.attn.proj):
        nn.init.normal_(layer.lora_b, std=0.3)
    set_lora_strength(tuned, 0.7)
    x = torch.randn(5, 8)
    expected = tuned(x)
    merge_lora(tuned)
    assert set(tuned.state_dict()) == set(TwoLayers().state_dict())
    torch.testing.assert_close(tuned(x), expected, atol=1e-5, rtol=0)


def test_swiglu_matches_its_formula():
    torch.manual_seed(0)
    layer = SwiGLU(5, 7)
    x = torch.randn(3, 5)
    w1, w2, w3 = layer.gate, layer.value, layer.out
    silu = lambda t: t / (1 + torch.exp(-t))  # noqa: E731
    expected = (
        silu(x @ w1.weight.T + w1.bias) * (x @ w2.weight.T + w2.bias)
    ) @ w3.weight.T + w3.bias
    torch.testing.assert_close(layer(x), expected)


def _window_attention_reference(layer: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """Token by token: each query attends to the real tokens of its own window, plus the
    bias of their (dy, dx) offset."""
    b, h, w, d = x.shape
    win, heads, hd = layer.window, layer.heads, d // layer.heads
    qkv = layer.qkv(x)
    q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
    out = torch.zeros_like(x)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                keys = [
                    (a, c)
                    for a in range(h)
                    for c in range(w)
                    if a // win == i // win and c // win == j // win
                ]
                for head in range(heads):
                    sl = slice(head * hd, (head + 1) * hd)
                    scores = torch.stack(
                        [
                            (q[n, i, j, sl] @ k[n, a, c, sl]) / math.sqrt(hd)
                            + layer.bias_table[
                                ((i % win) - (a % win) + win - 1) * (2 * win - 1)
                                + (j % win)
                                - (c % win)
                                + win
                                - 1,
                                head,
                            ]
                            for a, c in keys
                        ]
                    )
                    weights = scores.softmax(0)
                    out[n, i, j, sl] = sum(wt * v[n, a, c, sl] for wt, (a, c) in zip(weights, keys))
    return layer.proj(out)


@pytest.mark.parametrize("size", [(4, 4), (5, 7)])  # 5 × 7 needs padding to 3-pixel windows
def test_window_attention_matches_token_by_token_reference(size):
    torch.manual_seed(0)
    layer = WindowAttention(8, 2, window=4 if size == (4, 4) else 3).eval()
    x = torch.randn(2, *size, 8)
    with torch.no_grad():
        torch.testing.assert_close(
            layer(x), _window_attention_reference(layer, x), atol=1e-5, rtol=1e-4
        )


@pytest.mark.parametrize("length", [1, 2, 7, 16, 37])
def test_parallel_scan_equals_sequential_forward_and_backward(length):
    torch.manual_seed(length)
    batch, channels, state = 3, 5, 4
    kw = {"dtype": torch.float64, "requires_grad": True}
    u = torch.randn(batch, length, channels, **kw)
    delta = (torch.rand(batch, length, channels, dtype=torch.float64) * 0.5).requires_grad_()
    a = (-torch.rand(channels, state, dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(batch, length, state, **kw)
    c = torch.randn(batch, length, state, **kw)
    d = torch.randn(channels, **kw)
    inputs = (u, delta, a, b, c, d)
    fast = selective_scan(*inputs)
    slow = selective_scan_reference(*inputs)
    torch.testing.assert_close(fast, slow, atol=1e-10, rtol=1e-10)
    weights = torch.randn_like(fast)
    fast_grads = torch.autograd.grad((fast * weights).sum(), inputs)
    slow_grads = torch.autograd.grad((slow * weights).sum(), inputs)
    for got, expected in zip(fast_grads, slow_grads):
        torch.testing.assert_close(got, expected, atol=1e-9, rtol=1e-9)
    if length <= 7:  # finite differences for the custom backward; slow, so short sequences
        assert torch.autograd.gradcheck(lambda *t: selective_scan(*t), inputs)


def _attention_flops(module: nn.Module, x: torch.Tensor, *args: object) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x, *args)
    return counter.get_total_flops()


class JointAttention(nn.Module):
    """Full attention over every (spectral, spatial) token: the cost LESS avoids."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x.flatten(1, 2)).chunk(3, dim=-1)
        return self.proj((q @ k.transpose(1, 2)).softmax(-1) @ v)


def test_less_attention_cost_grows_with_spatial_squared_plus_spectral_squared():
    dim = 32
    less, joint = LowRankSpatialSpectralAttention(dim, 4, 2, 2), JointAttention(dim)
    small = torch.randn(1, 16, 36, dim)  # 16 spectral groups × 36 positions
    large = torch.randn(1, 32, 72, dim)  # both doubled
    less_ratio = _attention_flops(less, large) / _attention_flops(less, small)
    joint_ratio = _attention_flops(joint, large) / _attention_flops(joint, small)
    assert less_ratio <= 4.2  # (2G)² + (2N)² = 4 (G² + N²); the linear parts grow 4× too
    assert joint_ratio > 10  # (2G · 2N)² = 16 (G·N)²
    assert _attention_flops(less, large) < _attention_flops(joint, large) / 10
