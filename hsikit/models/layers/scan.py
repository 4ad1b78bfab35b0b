"""The Mamba (S6) selective scan in pure PyTorch.

``h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t u_t`` and ``y_t = C_t · h_t + D u_t`` (zero-order hold for A,
Euler for B). ``selective_scan`` evaluates the linear recurrence ``h_t = a_t h_{t-1} + x_t`` with a
doubling (Hillis–Steele) associative scan: ⌈log2 L⌉ vectorised steps instead of L sequential
ones. Its gradient is the same kind of scan run backwards in time (``λ_t = g_t + a_{t+1} λ_{t+1}``),
so a custom autograd function does both without recording the intermediate steps.
``selective_scan_reference`` is the sequential loop the tests compare it with. On a
CUDA device with the ``mamba_ssm`` package installed its fused kernel is used instead; it is never
required.
"""

from __future__ import annotations

import torch


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
    """``h_t = decay_t ⊙ h_{t-1} + drive_t`` along dim 1 (``h_{-1} = 0``), by recursive doubling:
    after the pass with offset ``k``, ``h_t`` holds the contribution of the last ``2k`` inputs."""
    h, carry = drive.clone(), decay.clone()
    step, length = 1, drive.shape[1]
    while step < length:
        h[:, step:] += carry[:, step:] * h[:, :-step]  # the product is formed before the add
        if 2 * step < length:
            carry[:, step:] = carry[:, step:] * carry[:, :-step]
        step *= 2
    return h


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
