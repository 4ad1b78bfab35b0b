"""Training on several processes with Lightning DDP (gloo between CPU processes, NCCL between
GPUs), for ``hsikit train --devices N``.

Lightning starts processes 1…N-1 by running the same command again, so every process reads the
same data and builds the same split; they train together (gradients averaged each step) and
process 0 alone writes the bundle and the report. The training patches are shared out by a
seeded distributed sampler whose order changes every epoch (Lightning calls ``set_epoch``);
validation runs whole in every process, so every process takes the same early-stopping and
best-epoch decisions and none waits for another that stopped.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from torch.utils.data import Dataset, DistributedSampler, Sampler

from hsikit.errors import InputError


def process_rank() -> int:
    """This process's rank: 0 in the process the user started, k in the k-th one Lightning
    launched (known from the environment Lightning gives it, before the process group exists)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0))


def is_helper_process() -> bool:
    """Whether this process was launched by Lightning to train alongside the user's process."""
    return process_rank() > 0


def silence_helper_output() -> None:
    """A helper process prints nothing: the user's process reports for all of them."""
    if is_helper_process():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process


def finish_helper_process() -> None:
    """End a helper process once training is done: its weights are process 0's, and only
    process 0 writes."""
    if is_helper_process():
        raise SystemExit(0)


def per_process_batch(batch_size: int, processes: int) -> int:
    """Each process's share of the batch: ``--batch-size`` stays the batch of one optimiser
    step, so the recipe (steps per epoch, learning-rate schedule) is the same on any count."""
    if batch_size % processes or batch_size < processes:
        raise InputError(
            None,
            f"a batch of {batch_size} patches cannot be shared evenly among {processes} "
            "training processes",
            f"use a --batch-size that is a multiple of {processes}",
        )
    return batch_size // processes


def training_sampler(data: Dataset, inner: Sampler | None, processes: int, seed: int) -> Sampler:
    """This process's share of the training patches, reshuffled every epoch from ``seed``;
    ``inner`` (a class-balanced sampler, seeded alike in every process) is sharded instead
    of the plain index order."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    rank = process_rank()
    if inner is not None:
        return DistributedSamplerWrapper(
            inner, num_replicas=processes, rank=rank, shuffle=False, drop_last=True
        )
    return DistributedSampler(
        data, num_replicas=processes, rank=rank, shuffle=True, seed=seed, drop_last=True
    )


def strategy(accelerator: str, processes: int) -> Any:
    """Lightning's strategy for ``processes`` processes ("auto" for one)."""
    if processes == 1:
        return "auto"
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(process_group_backend="nccl" if accelerator == "cuda" else "gloo")


def check_processes(processes: int, device: str, family: str, batch_size: int | None) -> None:
    """Refuse, before any work, a process count the model, the batch or the machine cannot
    train with."""
    if processes == 1:
        return
    if family != "torch":
        raise InputError(
            None,
            "--devices applies to neural networks, and this model is fitted by scikit-learn",
            "drop --devices, or choose a neural model",
        )
    if device.startswith("cuda"):
        import torch

        found = torch.cuda.device_count()
        if device != "cuda:0" or found < processes:
            raise InputError(
                None,
                f"--devices {processes} on GPUs trains on GPUs 0…{processes - 1}, "
                f"and torch sees {found} (asked for {device})",
                f"use --device cuda with at most {found} devices, or --device cpu",
            )
    per_process_batch(batch_size or processes, processes)
