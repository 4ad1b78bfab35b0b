"""Which torch device a command runs on. ``auto`` takes the first GPU when torch sees one.

Resolved once, before any work, so that asking for a GPU the machine lacks is one clear
sentence rather than a CUDA error halfway through training.
"""

from __future__ import annotations

import re

from hsikit.errors import InputError

DEVICE_NAME = re.compile(r"auto|cpu|cuda(?::(\d+))?")
DEVICE_HELP = "auto (the GPU when torch sees one), cpu, cuda or cuda:N"


def use_threads(count: int | None) -> None:
    """Let torch use ``count`` CPU threads (None: torch's own choice, one per core)."""
    if count:
        import torch

        torch.set_num_threads(count)


def device_name(value: str) -> str:
    """``value`` if it names a device, else ValueError (validated configs use this)."""
    if DEVICE_NAME.fullmatch(value) is None:
        raise ValueError(f"'{value}' is not a device: use {DEVICE_HELP}")
    return value


def resolve_device(requested: str = "auto") -> str:
    """``"cpu"`` or ``"cuda:N"`` for ``requested``; refuses a GPU that torch does not see."""
    import torch

    try:
        match = DEVICE_NAME.fullmatch(device_name(requested))
    except ValueError as exc:
        raise InputError(None, f"--device {exc}") from exc
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "auto":
        return "cuda:0" if found else "cpu"
    if requested == "cpu":
        return "cpu"
    assert match is not None  # device_name() accepted it
    index = int(match.group(1) or 0)
    if index >= found:
        seen = (
            f"{found} CUDA device{'s' if found > 1 else ''} (numbered from 0)"
            if found
            else "no CUDA device"
        )
        build = "" if torch.version.cuda else f" (torch {torch.__version__} is a CPU-only build)"
        raise InputError(
            None,
            f"--device {requested}: torch sees {seen}{build}",
            "use --device cpu, or a machine with an NVIDIA GPU and a CUDA build of torch",
        )
    return f"cuda:{index}"


def lightning_device(device: str, processes: int = 1) -> tuple[str, int | list[int]]:
    """Lightning's (accelerator, devices) for a resolved device; ``processes`` > 1 trains on
    that many CPU processes, or on GPUs 0…processes-1."""
    if device == "cpu":
        return "cpu", processes
    if processes > 1:
        return "cuda", processes
    return "cuda", [int(device.split(":")[1])]
