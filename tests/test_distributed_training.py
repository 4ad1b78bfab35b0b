"""``hsikit train --devices N``: Lightning DDP over CPU processes (gloo), a seeded training
sampler that shares the patches out and reshuffles every epoch, one bundle written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from torch.utils.data import TensorDataset

from hsikit.bundle import read_safetensors
from hsikit.training import distributed
from tests import synthetic
from tests.conftest import assert_one_sentence_error


def test_two_processes_train_one_bundle_and_only_the_first_reports(tmp_path, run_cli):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=8, rows=24, cols=30)
    bundle = tmp_path / "out" / "m.safetensors"
    bundle.parent.mkdir()
    command = [sys.executable, "-m", "hsikit", "train", scene, "--labels", labels]
    command += ["--model", "cnn3d", "--split", "random", "--train-ratio", "0.3"]
    command += ["--epochs", "2", "--batch-size", "16", "--devices", "2", "-o", bundle]
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE")}
    done = subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        env=env,
        cwd=bundle.parent,  # whatever any process writes by itself would show here
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("bundle:") == 1  # the helper process printed nothing
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["m.safetensors", "m_report"]
    report = json.loads((bundle.parent / "m_report" / "metrics.json").read_text())
    assert report["fit"]["processes"] == 2  # the trainer's world size
    meta = read_safetensors(bundle)[0]
    assert meta["training"]["config"]["devices"] == 2
    mapped = run_cli("classify", scene, "-m", bundle, "-o", tmp_path / "map.tif")
    assert mapped.code == 0, mapped.stderr + mapped.stdout
    with rasterio.open(tmp_path / "map.tif") as out:
        assert out.read(1).max() > 0


def _shares(count: int, processes: int, seed: int, epoch: int, monkeypatch) -> list[list[int]]:
    data = TensorDataset(torch.arange(count))
    shares = []
    for rank in range(processes):
        monkeypatch.setattr(distributed, "process_rank", lambda rank=rank: rank)
        sampler = distributed.training_sampler(data, None, processes, seed)
        sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        shares.append(list(sampler))
    return shares


def test_the_training_sampler_shares_the_patches_out_and_reshuffles_each_epoch(monkeypatch):
    first = _shares(101, 2, seed=3, epoch=0, monkeypatch=monkeypatch)
    assert [len(s) for s in first] == [50, 50]
    assert not set(first[0]) & set(first[1])  # no patch is trained twice in an epoch
    assert _shares(101, 2, seed=3, epoch=0, monkeypatch=monkeypatch) == first  # seeded
    assert _shares(101, 2, seed=3, epoch=1, monkeypatch=monkeypatch) != first  # set_epoch
    assert _shares(101, 2, seed=4, epoch=0, monkeypatch=monkeypatch) != first


def test_the_balanced_sampler_is_sharded_alike_in_every_process(monkeypatch):
    data = TensorDataset(torch.arange(40))
    weights = np.r_[np.full(30, 1 / 30), np.full(10, 1 / 10)]
    shares = []
    for rank in range(2):
        monkeypatch.setattr(distributed, "process_rank", lambda rank=rank: rank)
        inner = torch.utils.data.WeightedRandomSampler(
            weights.tolist(), 40, generator=torch.Generator().manual_seed(0)
        )
        shares.append(list(distributed.training_sampler(data, inner, 2, 0)))
    inner = torch.utils.data.WeightedRandomSampler(
        weights.tolist(), 40, generator=torch.Generator().manual_seed(0)
    )
    drawn = list(inner)  # the draw every process makes alike, then shards
    assert sorted(shares[0] + shares[1]) == sorted(drawn)


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--model", "svm_rbf"], ("--devices applies to neural networks",)),
        (["--batch-size", "15"], ("batch of 15 patches", "multiple of 2")),
    ],
)
def test_a_process_count_that_cannot_train_is_refused_before_any_work(
    tmp_path, run_cli, options, fragments
):
    scene, labels, _ = synthetic.class_scene(tmp_path, bands=8, rows=24, cols=30)
    bundle = tmp_path / "m.safetensors"
    result = run_cli("train", scene, "--labels", labels, "--devices", "2", *options, "-o", bundle)
    assert_one_sentence_error(result, *fragments)
    assert not bundle.exists()
    assert not (tmp_path / "m_report").exists()
