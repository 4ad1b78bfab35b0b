"""The Mamba (S6) selective scan in pure PyTorch.

``h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t u_t`` and ``y_t = C_t · h_t + D u_t`` (zero-order hold for A,
Euler for B). ``selective_scan`` evaluates the linear recurrence ``h_t = a_t h_{t-1} + x_t`` in
chunks of √L steps (see ``linear_scan``). Its gradient is the same kind of scan run backwards in
time (``λ_t = g_t + a_{t+1} λ_{t+1}``), so a custom autograd function does both without
recording the intermediate steps. ``selective_scan_reference`` is the sequential loop the tests
compare it with. On a CUDA device with the ``mamba_ssm`` package installed its fused kernel is
used instead; it is never required.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _discretise(
    u: torch.Tensor, delta: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step decay ``exp(ΔA)`` and input ``ΔBu``, each ``[batch, L, D, N]``."""
    decay = torch.exp(delta.unsqueeze(-1) * a)
    drive = (delta * u).unsqueeze(-1) * b.unsqueeze(2)
    return decay, drive


def _readout(
    h: torch.Tensor, u: torch.Tensor, c: torch.Tensor, d: torch.Tensor | None
) -> torch.Tensor:
    y = (h * c.unsqueeze(2)).sum(-1)
    return y if d is None else y + u * d


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    d: torch.Tensor | None = None,
) -> torch.Tensor:
    """``u, delta``: ``[batch, L, D]``; ``a``: ``[D, N]`` (negative); ``b, c``: ``[batch, L, N]``;
    ``d``: ``[D]``. Returns ``y``: ``[batch, L, D]``."""
    if u.is_cuda:
        fused = _mamba_ssm_scan()
        if fused is not None:
            y = fused(
                u.transpose(1, 2).contiguous(),
                delta.transpose(1, 2).contiguous(),
                a.contiguous(),
                b.transpose(1, 2).contiguous(),
                c.transpose(1, 2).contiguous(),
                d,
            )
            return y.transpose(1, 2)
    decay, drive = _discretise(u, delta, a, b)
    return _readout(LinearRecurrence.apply(decay, drive), u, c, d)


def linear_scan(decay: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
    """``h_t = decay_t ⊙ h_{t-1} + drive_t`` along dim 1 (``h_{-1} = 0``), in chunks of about
    √L steps: every chunk is scanned at once (a loop over the ~√L positions inside a chunk),
    then each chunk's start state is carried in with the chunk's running decay product (a loop
    over the ~√L chunks). 2·√L vectorised steps over contiguous slices instead of L, or of the
    doubling scan's log L passes over the whole sequence that make it memory-bound on CPUs."""
    batch, length = drive.shape[:2]
    size = math.isqrt(length - 1) + 1 if length > 1 else 1  # ⌈√L⌉
    chunks = -(-length // size)
    pad = chunks * size - length
    if pad:
        tail = (0, 0) * (drive.dim() - 2) + (0, pad)
        decay = nn.functional.pad(decay, tail, value=1.0)
        drive = nn.functional.pad(drive, tail)
    shape = (batch, chunks, size, *drive.shape[2:])
    within = decay.reshape(shape)
    h = drive.reshape(shape).clone()
    for i in range(1, size):
        h[:, :, i].addcmul_(within[:, :, i], h[:, :, i - 1])
    running = torch.cumprod(within, dim=2)
    for j in range(1, chunks):
        h[:, j].addcmul_(running[:, j], h[:, j - 1, -1:])
    return h.reshape(batch, chunks * size, *drive.shape[2:])[:, :length]


class LinearRecurrence(torch.autograd.Function):
    """Differentiable ``linear_scan``: the adjoint is a reverse-time scan with decays shifted by
    one step, so backward costs one more scan instead of a recorded graph of every pass."""

    @staticmethod
    def forward(ctx, decay: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        h = linear_scan(decay, drive)
        ctx.save_for_backward(decay, h)
        return h

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
        decay, h = ctx.saved_tensors
        shifted = torch.zeros_like(decay)
        shifted[:, :-1] = decay[:, 1:]
        adjoint = linear_scan(shifted.flip(1), grad.flip(1)).flip(1)
        previous = torch.zeros_like(h)
        previous[:, 1:] = h[:, :-1]
        return adjoint * previous, adjoint


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    d: torch.Tensor | None = None,
) -> torch.Tensor:
    """The recurrence one step at a time: slow, obviously correct."""
    decay, drive = _discretise(u, delta, a, b)
    h = torch.zeros_like(drive[:, 0])
    states = []
    for t in range(u.shape[1]):
        h = decay[:, t] * h + drive[:, t]
        states.append(h)
    return _readout(torch.stack(states, dim=1), u, c, d)


def _mamba_ssm_scan():  # noqa: ANN202 (optional third-party function)
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:
        return None
    return selective_scan_fn
