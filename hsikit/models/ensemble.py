"""Deep ensembles: networks of one architecture, trained on the same pixels from different
initial weights, predicting together (Lakshminarayanan et al., 2017).

On Indian Pines at 10 % the initial weights alone move a single network's OA by up to half a
point; averaging the members' class probabilities cancels part of that noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

MEMBER_SEED_STEP = 1000  # member i starts from init seed + i × this (see member_seeds)


def member_seeds(init_seed: int, members: int) -> list[int]:
    """Each member's own seed. Steps of 1000 keep one run's members apart from the seeds that
    neighbouring runs (seed 0, 1, 2 …) give their networks, so no two runs share a network."""
    return [init_seed + i * MEMBER_SEED_STEP for i in range(members)]


class MeanEnsemble(nn.Module):
    """Members' class probabilities averaged. ``forward`` returns the log of that mean, so a
    softmax over it (as everywhere a model's logits are used) gives the mean itself."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(members)

    @property
    def uses_wavelengths(self) -> bool:
        return bool(getattr(self.members[0], "uses_wavelengths", False))

    @property
    def dense(self) -> bool:
        return all(getattr(member, "dense", False) for member in self.members)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self._mean([member(*inputs) for member in self.members])

    def dense_logits(self, block: torch.Tensor) -> torch.Tensor:
        return self._mean([cast(Any, member).dense_logits(block) for member in self.members])

    def _mean(self, logits: list[torch.Tensor]) -> torch.Tensor:
        log_probabilities = torch.stack([member.log_softmax(dim=1) for member in logits])
        return torch.logsumexp(log_probabilities, dim=0) - math.log(len(self.members))
