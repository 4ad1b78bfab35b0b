"""Splits: spatial ones never let a training patch cover a val/test pixel; both are seeded."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import maximum_filter

from hsikit.data.splits import TEST, TRAIN, VAL, SplitSpec, make_split


def _fields(seed: int, shape=(96, 80), classes=6) -> np.ndarray:
    """Rectangular 'fields' of classes, like a benchmark ground truth, with unlabelled gaps."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    for _ in range(40):
        r, c = rng.integers(0, shape[0] - 8), rng.integers(0, shape[1] - 8)
        h, w = rng.integers(4, 20), rng.integers(4, 20)
        labels[r : r + h, c : c + w] = rng.integers(1, classes + 1)
    return labels


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    patch=st.sampled_from([1, 3, 5, 7, 9, 11]),
    block=st.sampled_from([8, 12, 16, 24]),
)
def test_no_training_patch_covers_a_test_or_val_pixel(seed, patch, block):
    labels = _fields(seed)
    split = make_split(labels, SplitSpec("spatial", seed=seed, patch_size=patch, block_size=block))
    footprint = maximum_filter((split.roles == TRAIN).astype(np.uint8), size=patch) > 0
    assert not (footprint & ((split.roles == TEST) | (split.roles == VAL))).any()
    assert not (split.roles[labels == 0]).any()


def test_every_class_with_enough_blocks_is_in_train_and_test():
    labels = np.zeros((64, 64), np.uint8)
    for k in range(1, 5):  # each class spread over four blocks far apart
        for r, c in ((0, 0), (0, 32), (32, 0), (32, 32)):
            labels[r + 2 * k : r + 2 * k + 2, c + 4 : c + 12] = k
    split = make_split(labels, SplitSpec("spatial", seed=3, patch_size=3, block_size=16))
    for k in range(1, 5):
        assert (labels[split.roles == TRAIN] == k).any(), k
        assert (labels[split.roles == TEST] == k).any(), k
    assert split.notes == []


@pytest.mark.parametrize("protocol", ["random", "spatial"])
def test_splits_are_deterministic_for_a_seed(protocol):
    labels = _fields(1)
    a = make_split(labels, SplitSpec(protocol, seed=7))
    b = make_split(labels, SplitSpec(protocol, seed=7))
    c = make_split(labels, SplitSpec(protocol, seed=8))
    np.testing.assert_array_equal(a.roles, b.roles)
    assert not np.array_equal(a.roles, c.roles)


def test_random_split_ratio_and_per_class():
    labels = _fields(2)
    split = make_split(labels, SplitSpec("random", seed=0, train_ratio=0.1, val_fraction=0.2))
    for k in np.unique(labels[labels > 0]):
        n = int((labels == k).sum())
        in_training_region = int(((labels == k) & np.isin(split.roles, [TRAIN, VAL])).sum())
        assert in_training_region == max(1, round(0.1 * n))
    fixed = make_split(labels, SplitSpec("random", seed=0, per_class=5, val_fraction=0.0))
    for k in np.unique(labels[labels > 0]):
        assert int(((labels == k) & (fixed.roles == TRAIN)).sum()) == 5
