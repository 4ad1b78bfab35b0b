"""Train / validation / test splits of labelled pixels, as a split raster plus a JSON description.

- ``random``: stratified random pixels (a ratio or N per class). Literature-comparable and
  optimistic: test pixels sit inside training patches.
- ``spatial``: the scene is cut into square blocks; whole blocks go to the training region or to
  test, per class so every class with at least two blocks appears in both; validation blocks are
  carved from the training region; then every val/test pixel within ``P // 2`` (Chebyshev) of a
  training pixel is dropped, so no training patch covers a val or test pixel.

Both are deterministic for a seed. Split raster values: 0 unused, 1 train, 2 val, 3 test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from scipy.ndimage import maximum_filter

UNUSED, TRAIN, VAL, TEST = 0, 1, 2, 3
ROLE_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}


@dataclass(frozen=True)
class SplitSpec:
    protocol: Literal["random", "spatial"] = "spatial"
    seed: int = 0
    train_ratio: float = 0.1  # random: share of each class's pixels used for train + val
    per_class: int | None = None  # random: N pixels per class instead of a ratio
    val_fraction: float = 0.2  # share of the training pixels / blocks kept for validation
    train_fraction: float = 0.5  # spatial: share of each class's pixels in the training region
    block_size: int = 16  # spatial: block side in pixels
    patch_size: int = 9  # sets the buffer: P // 2

    def describe(self) -> dict:
        return asdict(self)


@dataclass
class Split:
    spec: SplitSpec
    roles: np.ndarray  # uint8 [H, W]: 0 unused, 1 train, 2 val, 3 test
    notes: list[str] = field(default_factory=list)

    def mask(self, role: int) -> np.ndarray:
        return self.roles == role

    def counts(self, labels: np.ndarray) -> dict[str, dict[int, int]]:
        out = {}
        for role, name in ROLE_NAMES.items():
            values, counts = np.unique(labels[self.roles == role], return_counts=True)
            out[name] = {int(v): int(c) for v, c in zip(values, counts) if v > 0}
        return out

    def describe(self, labels: np.ndarray) -> dict:
        honest = (
            "spatially disjoint blocks with a buffer of patch_size // 2 pixels"
            if self.spec.protocol == "spatial"
            else "random pixels: optimistic, test pixels lie inside training patches"
        )
        return {
            "spec": self.spec.describe(),
            "protocol_note": honest,
            "counts": self.counts(labels),
            "notes": self.notes,
        }


def make_split(labels: np.ndarray, spec: SplitSpec) -> Split:
    if spec.protocol == "random":
        return _random_split(labels, spec)
    return _spatial_split(labels, spec)


def _random_split(labels: np.ndarray, spec: SplitSpec) -> Split:
    rng = np.random.default_rng(spec.seed)
    roles = np.zeros(labels.shape, np.uint8)
    flat = labels.ravel()
    out = roles.ravel()
    for value in np.unique(flat[flat > 0]):
        pixels = rng.permutation(np.flatnonzero(flat == value))
        n_train = (
            min(spec.per_class, pixels.size - 1)
            if spec.per_class is not None
            else int(round(spec.train_ratio * pixels.size))
        )
        n_train = max(1, min(n_train, pixels.size - 1)) if pixels.size > 1 else pixels.size
        n_val = int(round(spec.val_fraction * n_train)) if n_train > 1 else 0
        out[pixels[:n_val]] = VAL
        out[pixels[n_val:n_train]] = TRAIN
        out[pixels[n_train:]] = TEST
    return Split(spec, roles)


def block_ids(shape: tuple[int, int], size: int) -> np.ndarray:
    rows = np.arange(shape[0]) // size
    cols = np.arange(shape[1]) // size
    return rows[:, None] * (cols.max() + 1) + cols[None, :]


def _assign(
    blocks: list[int],
    counts: np.ndarray,
    classes: np.ndarray,
    share: float,
    rng: np.random.Generator,
    first: int,
    second: int,
    roles: dict[int, int],
    min_blocks_for_second: int = 2,
) -> None:
    """Give each class's unassigned blocks to ``first`` until it holds ``share`` of the class,
    the rest to ``second``; with ``min_blocks_for_second`` blocks or more, each role gets one."""
    for k in classes:  # rarest class first
        candidates = [b for b in blocks if counts[b, k] > 0 and b not in roles]
        if not candidates:
            continue
        holding = [b for b in blocks if counts[b, k] > 0]
        total = counts[holding, k].sum()
        if len(holding) < min_blocks_for_second:
            roles.update({int(b): first for b in candidates})
            continue
        got = {first: 0, second: 0}
        for b in blocks:
            if b in roles and counts[b, k] > 0 and roles[b] in got:
                got[roles[b]] += counts[b, k]
        for b in rng.permutation(candidates):
            if got[first] == 0:
                role = first
            elif got[second] == 0:
                role = second
            else:
                role = first if got[first] < share * total else second
            roles[int(b)] = role
            got[role] += counts[b, k]


def _spatial_split(labels: np.ndarray, spec: SplitSpec) -> Split:
    rng = np.random.default_rng(spec.seed)
    ids = block_ids(labels.shape, spec.block_size)
    n_classes = int(labels.max()) + 1
    counts = np.zeros((int(ids.max()) + 1, n_classes), np.int64)
    np.add.at(counts, (ids.ravel(), labels.ravel()), 1)
    counts[:, 0] = 0
    labelled_blocks = [int(b) for b in np.flatnonzero(counts.sum(axis=1))]
    rarest_first = np.argsort(counts.sum(axis=0), kind="stable")
    rarest_first = rarest_first[counts.sum(axis=0)[rarest_first] > 0]

    region: dict[int, int] = {}  # block → TRAIN (training region) or TEST
    _assign(labelled_blocks, counts, rarest_first, spec.train_fraction, rng, TRAIN, TEST, region)
    training_blocks = [b for b in labelled_blocks if region[b] == TRAIN]
    inner: dict[int, int] = {}  # within the training region: TRAIN or VAL
    _assign(
        training_blocks,
        counts,
        rarest_first,
        1.0 - spec.val_fraction,
        rng,
        TRAIN,
        VAL,
        inner,
        min_blocks_for_second=3,
    )  # rare classes keep all their training blocks
    block_role = np.zeros(counts.shape[0], np.uint8)
    for b, role in region.items():
        block_role[b] = inner.get(b, role) if role == TRAIN else TEST

    roles = np.where(labels > 0, block_role[ids], UNUSED).astype(np.uint8)
    radius = spec.patch_size // 2
    if radius:
        near_train = maximum_filter((roles == TRAIN).astype(np.uint8), size=2 * radius + 1) > 0
        dropped = near_train & ((roles == VAL) | (roles == TEST))
        roles[dropped] = UNUSED
    split = Split(spec, roles)
    missing = [
        int(k)
        for k in rarest_first
        if not (labels[roles == TRAIN] == k).any() or not (labels[roles == TEST] == k).any()
    ]
    if missing:
        split.notes.append(
            "classes without both train and test pixels (too few blocks): "
            + ", ".join(map(str, missing))
        )
    return split
