"""How many patches (or output pixels) one forward pass takes, chosen by memory.

A fixed batch is too small for a light model (per-call overhead dominates) and too large for a
heavy one (its activations outgrow the memory). The activation memory a model's forward pass
holds at its peak is measured once, on a few patches, by watching every tensor its operations
create until it is freed; the batch is then what fits a budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Activation memory one forward pass may hold at its peak (bytes): mapping's peak memory stays
#: modest and flat while the per-call overhead is amortised.
ACTIVATION_BUDGET = 2**30
#: Patches per pass: larger batches than this were no faster on the CPU (classical models,
#: whose memory is their input, always take the largest).
BOUNDS = (16, 1024)
#: On a GPU: the most patches per pass, and the share of its free memory activations may take.
GPU_BATCH, GPU_MEMORY_SHARE = 16384, 0.25


def _budget(bundle: Any, budget: int) -> tuple[int, int]:
    """(activation bytes, most patches) for one pass on the bundle's device: a GPU takes large
    batches, sized by its free memory."""
    import torch

    device = next(bundle.model.parameters()).device
    if device.type != "cuda":
        return budget, BOUNDS[1]
    free, _ = torch.cuda.mem_get_info(device)
    return int(free * GPU_MEMORY_SHARE), GPU_BATCH


def _peak_bytes(run: Any) -> int:
    """The most bytes that tensors created by the operations of ``run()`` hold at one time
    (each counted from its creation until it is freed)."""
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    state = {"live": 0, "peak": 0}

    def freed(size: int) -> None:
        state["live"] -= size

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            out = func(*args, **(kwargs or {}))
            for leaf in tree_leaves(out):
                if isinstance(leaf, torch.Tensor) and leaf.untyped_storage().nbytes():
                    size = leaf.numel() * leaf.element_size()
                    state["live"] += size
                    weakref.finalize(leaf, freed, size)
            state["peak"] = max(state["peak"], state["live"])
            return out

    with torch.inference_mode(), Watch():
        run()
    return state["peak"]


def patch_batch(bundle: Any, budget: int = ACTIVATION_BUDGET) -> int:
    """Patches per forward pass for ``bundle``'s patch-by-patch path."""
    if bundle.meta.model.family != "torch":
        return BOUNDS[1]  # per pixel: the batch is its input
    probe = 8
    bands, patch = bundle.preprocessor.out_channels, bundle.meta.patch_size
    x = np.zeros((probe, bands, patch, patch), np.float32)
    per_patch = _peak_bytes(lambda: bundle.predict_proba(x)) / probe
    budget, most = _budget(bundle, budget)
    return int(np.clip(budget // max(per_patch, 1), BOUNDS[0], most))


def dense_pixels(bundle: Any, budget: int = ACTIVATION_BUDGET) -> int:
    """Output pixels per forward pass for a network that maps whole windows."""
    side = 16
    reach = bundle.meta.patch_size - 1
    block = np.zeros((bundle.preprocessor.out_channels, side + reach, side + reach), np.float32)
    per_pixel = _peak_bytes(lambda: bundle.dense_proba(block, (side, side), side * side))
    budget, _ = _budget(bundle, budget)
    return int(np.clip(budget // max(per_pixel / side**2, 1), BOUNDS[0], 2**20))
