"""Patches from halo windows equal patches cut from the reflect-padded whole scene."""

from __future__ import annotations

import numpy as np
import pytest

from hsikit.patches import halo_windows, patches_at, read_block
from hsikit.scene import BandInfo, Scene


@pytest.mark.parametrize("size, window", [(1, 16), (5, 16), (9, 7), (11, 64)])
def test_windowed_patches_equal_whole_scene_patches(size, window):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(3, 23, 31)).astype("float32")
    scene = Scene.from_reader(
        lambda b, r, c: data[b][:, r, c],
        shape=data.shape,
        dtype="float32",
        bands=BandInfo.build(3),
        path="m",
        format="t",
    )
    r = size // 2
    padded = np.pad(data, ((0, 0), (r, r), (r, r)), mode="reflect")
    covered = np.zeros(data.shape[1:], int)
    for hw in halo_windows(23, 31, window, r):
        block, valid, _ = read_block(scene, hw, np.arange(3), lambda v: v)
        rows, cols = np.nonzero(valid)
        got = patches_at(block, rows, cols, size)
        for n, (i, j) in enumerate(zip(rows, cols)):
            gi, gj = i + hw.core.row_off, j + hw.core.col_off
            np.testing.assert_array_equal(got[n], padded[:, gi : gi + size, gj : gj + size])
        covered[hw.core.toslices()] += 1
    assert (covered == 1).all()
