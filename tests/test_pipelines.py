"""`hsikit run` on a tiny benchmark spec: results JSON and the Markdown section it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from hsikit.jobs.benchmark import Benchmark
from hsikit.jobs.memory import run_memory_check
from hsikit.jobs.report import markdown_table
from hsikit.jobs.runner import in_child, peak_rss_mb
from tests.conftest import assert_one_sentence_error


def test_tiny_benchmark_writes_results_and_markdown(tmp_path, run_cli):
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\nHand-written text that must survive.\n")
    spec = {
        "name": "tiny",
        "dataset": "indian_pines",
        "models": ["svm_rbf"],
        "protocols": [{"name": "random10", "split": "random", "train_ratio": 0.1}],
        "seeds": [0, 1],
        "threads": 1,
        "output": str(tmp_path / "out"),
        "results": str(tmp_path / "tiny.json"),
        "report": str(report),
    }
    pipeline = tmp_path / "tiny.yaml"
    pipeline.write_text(yaml.safe_dump(spec))
    result = run_cli("run", pipeline)
    assert result.code == 0, result.stdout + result.stderr
    results = json.loads((tmp_path / "tiny.json").read_text())
    assert [r["seed"] for r in results["runs"]] == [0, 1]
    row = results["summary"][0]
    assert row["model"] == "svm_rbf" and row["oa"]["n"] == 2 and 0.7 < row["oa"]["mean"] < 0.9
    assert row["pixels_per_second"] > 0 and row["peak_rss_mb"] > 0
    text = report.read_text()
    assert "Hand-written text that must survive." in text
    assert "| random10 | svm_rbf |" in text and text.count("<!-- benchmark:tiny:begin -->") == 1
    assert run_cli("run", pipeline, "--seeds", "0").code == 0  # replaces the section, not appends
    assert report.read_text().count("<!-- benchmark:tiny:begin -->") == 1


def test_rerun_of_some_models_keeps_the_others(tmp_path, run_cli):
    """`--models` reruns only those; other runs are kept while their configuration holds."""
    spec = {
        "name": "two",
        "dataset": "indian_pines",
        "models": ["svm_rbf", "random_forest"],
        "protocols": [{"name": "random10", "split": "random", "train_ratio": 0.05}],
        "seeds": [0],
        "threads": 1,
        "output": str(tmp_path / "out"),
        "results": str(tmp_path / "two.json"),
        "report": str(tmp_path / "two.md"),
    }
    old = {
        "benchmark": "two",
        "dataset": "indian_pines",
        "date": "2026-01-01",
        "spec": spec,
        "runs": [
            {
                "protocol": "random10",
                "model": m,
                "seed": 0,
                "oa": 0.5,
                "aa": 0.5,
                "kappa": 0.5,
                "n_test": 10,
                "train_seconds": 1.0,
                "parameters": 1,
                "pixels_per_second": 1.0,
                "peak_rss_mb": 1.0,
                "per_class": {},
            }
            for m in ("svm_rbf", "random_forest")
        ],
    }
    (tmp_path / "two.json").write_text(json.dumps(old))
    pipeline = tmp_path / "two.yaml"
    pipeline.write_text(yaml.safe_dump(spec))
    assert_one_sentence_error(
        run_cli("run", pipeline, "--models", "cnn3d"), "two.yaml", "does not run"
    )
    result = run_cli("run", pipeline, "--models", "random_forest")
    assert result.code == 0, result.stdout + result.stderr
    runs = {r["model"]: r for r in json.loads((tmp_path / "two.json").read_text())["runs"]}
    assert runs["svm_rbf"]["oa"] == 0.5 and runs["svm_rbf"]["date"] == "2026-01-01"  # kept
    assert runs["random_forest"]["oa"] > 0.5  # rerun
    spec["threads"] = 2  # a changed configuration invalidates kept runs: dropped, never rerun
    pipeline.write_text(yaml.safe_dump(spec))  # unasked
    result = run_cli("run", pipeline, "--models", "random_forest")
    assert result.code == 0 and "dropped random10 svm_rbf seed 0" in result.stdout
    runs = {r["model"]: r for r in json.loads((tmp_path / "two.json").read_text())["runs"]}
    assert set(runs) == {"random_forest"}


def test_invalid_pipeline_names_the_field(tmp_path, run_cli):
    pipeline = tmp_path / "bad.yaml"
    pipeline.write_text("name: x\nmodels: nope\n")
    assert_one_sentence_error(
        run_cli("run", pipeline), "bad.yaml", "invalid pipeline: dataset: Field required"
    )
    spec = _indian_pines_job(tmp_path, "bad", [5], ["random_forest"])
    spec["protocols"][0]["train_ration"] = 0.1
    pipeline.write_text(yaml.safe_dump(spec))
    assert_one_sentence_error(
        run_cli("run", pipeline),
        "bad.yaml",
        "protocols[0].train_ration: Extra inputs are not permitted",
    )


def _child_peak() -> dict:
    return {"peak_mb": peak_rss_mb()}


def test_child_peak_memory_is_its_own():
    """A spawned run reports its own peak, not its parent's resident size at fork time."""
    ballast = np.ones(60_000_000)  # ~460 MB resident here
    peak = in_child(_child_peak)["peak_mb"]
    assert 0 < peak < ballast.nbytes / 2**20


def _refuses() -> dict:
    from hsikit.errors import InputError

    raise InputError("scene.tif", "the scene lacks 3 of the model's 5 bands", "use another")


def test_a_run_failing_with_an_hsikit_error_is_recorded_not_waited_for():
    """hsikit's errors cannot be rebuilt from their message alone; sent back as they are, the
    job waited forever for the run's result."""
    outcome = in_child(_refuses)
    assert outcome == {
        "error": "InputError: scene.tif: the scene lacks 3 of the model's 5 bands; use another."
    }


def _children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
    reason="needs Linux's /proc child lists",
)
def test_a_terminated_job_stops_the_run_in_its_child_process():
    """`kill` on a running job must not leave its run training on, orphaned."""
    job = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nfrom hsikit.jobs.runner import in_child\nin_child(time.sleep, 120)",
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while not (children := _children(job.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert children, "the job started no child process"
        time.sleep(2)  # the pool's worker is running the sleep
        children = _children(job.pid)
        job.terminate()
        assert job.wait(30) == 128 + 15
        deadline = time.monotonic() + 30
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(c) for c in children)
    finally:
        job.kill()


def test_memory_check_maps_each_size_in_its_own_process(tmp_path):
    spec = Benchmark(
        name="m",
        dataset="indian_pines",
        models=["svm_rbf"],
        protocols=[],
        seeds=[0],
        output=str(tmp_path),
        results=str(tmp_path / "m.json"),
        report=str(tmp_path / "m.md"),
        memory_check={"model": "svm_rbf", "sizes_gb": [0.004, 0.002], "bands": 16},
    )
    memory = run_memory_check(spec, log=lambda _: None)
    runs = memory["runs"]
    assert [r["size_gb"] for r in runs] == [0.002, 0.004]
    assert all("error" not in r and r["peak_rss_mb"] > 0 for r in runs), runs
    assert runs[0]["pixels"] < runs[1]["pixels"]
    assert (tmp_path / "memory" / "map_0.004.tif").is_file()
    assert not list((tmp_path / "memory").glob("scene_*.tif"))  # the big inputs are removed
    table = markdown_table(
        {
            "benchmark": "m",
            "dataset": "indian_pines",
            "date": "today",
            "machine": {
                "cores": 2,
                "cpu": "x",
                "memory_gb": 1,
                "gpu": "none",
                "python": "3",
                "torch": "2",
            },
            "spec": {"seeds": [0]},
            "summary": [],
            "memory_check": memory,
        }
    )
    assert "Streamed `hsikit classify`" in table and "peak RSS MB" in table


def _indian_pines_job(tmp_path, stem: str, percents: list[int], models: list) -> dict:
    """A one-seed Indian Pines job with random-split protocols ``random<percent>``, not mapped."""
    return {
        "name": stem,
        "dataset": "indian_pines",
        "seeds": [0],
        "threads": 2,
        "protocols": [
            {"name": f"random{p}", "split": "random", "train_ratio": p / 100} for p in percents
        ],
        "models": models,
        "output": str(tmp_path / "out"),
        "results": str(tmp_path / f"{stem}.json"),
        "report": str(tmp_path / f"{stem}.md"),
        "map_scene": False,
    }


def test_variants_pretrain_and_start_from_each_other(tmp_path, run_cli):
    """A pretrained row and a LoRA row that starts from it, as the seed-model benchmark does."""
    spec = _indian_pines_job(
        tmp_path,
        "v",
        [5],
        [
            {
                "name": "sg_pre",
                "model": "spectralgpt_tiny",
                "options": {"epochs": 1},
                "per_protocol": {"random5": {"val_fraction": 0.5}},
                "pretrain": {"epochs": 1, "samples": 100_000},
            },
            {
                "name": "sg_lora",
                "model": "spectralgpt_tiny",
                "init_from": "sg_pre",
                "options": {"epochs": 1, "lora": True, "lora_rank": 2, "lora_cycles": 1},
            },
        ],
    )
    pipeline = tmp_path / "v.yaml"
    pipeline.write_text(yaml.safe_dump(spec))
    result = run_cli("run", pipeline)
    assert result.code == 0, result.stdout + result.stderr
    runs = {r["model"]: r for r in json.loads((tmp_path / "v.json").read_text())["runs"]}
    assert runs["sg_pre"]["fit"]["init_kind"] == "pretrained encoder"
    samples = runs["sg_pre"]["samples"]
    assert abs(samples["val"] - samples["train"]) <= 16  # the protocol's own validation share
    assert runs["sg_pre"]["pretrain"]["train_patches"] == samples["train"]  # the same split
    assert runs["sg_lora"]["fit"]["init_kind"] == "bundle"
    assert runs["sg_lora"]["trainable_parameters"] < 0.2 * runs["sg_lora"]["parameters"]
    text = (tmp_path / "v.md").read_text()
    assert "| random5 | sg_pre | 1 |" in text and "pretrain" in text
    assert runs["sg_pre"]["pixels_per_second"] is None  # not mapped: no speed claimed
    spec["models"].reverse()  # a row cannot start from one that runs after it
    pipeline.write_text(yaml.safe_dump(spec))
    assert_one_sentence_error(run_cli("run", pipeline), "v.yaml", "must be listed before it")
    spec["models"] = [{"name": "x", "model": "cnn3d", "per_protocol": {"random10": {}}}]
    pipeline.write_text(yaml.safe_dump(spec))
    assert_one_sentence_error(run_cli("run", pipeline), "v.yaml", "unknown protocol(s) random10")


def test_row_whose_starting_bundle_is_missing_is_refused_before_training(tmp_path, run_cli):
    """`--models` on a LoRA row alone, with its base never trained here: one sentence, exit 2."""
    spec = {
        "name": "lora",
        "dataset": "indian_pines",
        "seeds": [0],
        "threads": 1,
        "protocols": [{"name": "random5", "split": "random", "train_ratio": 0.05}],
        "models": [
            "lola_specvit_tiny",
            {
                "name": "lola+lora",
                "model": "lola_specvit_tiny",
                "init_from": "lola_specvit_tiny",
                "options": {"lora": True},
            },
        ],
        "output": str(tmp_path / "out"),
        "results": str(tmp_path / "l.json"),
        "report": str(tmp_path / "l.md"),
    }
    pipeline = tmp_path / "l.yaml"
    pipeline.write_text(yaml.safe_dump(spec))
    result = run_cli("run", pipeline, "--models", "lola+lora")
    assert_one_sentence_error(
        result,
        "lola_specvit_tiny/seed0/model.safetensors",
        "add lola_specvit_tiny to --models to train it first",
    )
    assert not (tmp_path / "l.json").exists() and not (tmp_path / "out").exists()


def test_a_row_can_be_limited_to_some_protocols(tmp_path, run_cli):
    spec = _indian_pines_job(
        tmp_path,
        "l",
        [5, 6],
        ["random_forest", {"name": "rf_only5", "model": "random_forest", "protocols": ["random5"]}],
    )
    pipeline = tmp_path / "l.yaml"
    pipeline.write_text(yaml.safe_dump(spec))
    result = run_cli("run", pipeline)
    assert result.code == 0, result.stdout + result.stderr
    runs = json.loads((tmp_path / "l.json").read_text())["runs"]
    assert sorted((r["protocol"], r["model"]) for r in runs) == [
        ("random5", "random_forest"),
        ("random5", "rf_only5"),
        ("random6", "random_forest"),
    ]
    text = (tmp_path / "l.md").read_text()
    assert "| random5 | rf_only5 |" in text and "| random6 | rf_only5 |" not in text
    refused = {  # a row's protocols must agree with the job, its options and its base row
        "unknown protocol(s) spatial": {"protocols": ["spatial"]},
        "options for protocol(s) it does not run: random6": {
            "per_protocol": {"random6": {"n_estimators": 10}}
        },
        "models: row 'rf_only5': protocols: List should have at least 1 item": {"protocols": []},
    }
    for sentence, change in refused.items():
        pipeline.write_text(
            yaml.safe_dump(
                {
                    **spec,
                    "models": [
                        "random_forest",
                        {
                            "name": "rf_only5",
                            "model": "random_forest",
                            "protocols": ["random5"],
                            **change,
                        },
                    ],
                }
            )
        )
        assert_one_sentence_error(run_cli("run", pipeline), "l.yaml", sentence)
    pipeline.write_text(
        yaml.safe_dump(
            {
                **spec,
                "models": [
                    {"name": "rf_only5", "model": "random_forest", "protocols": ["random5"]},
                    {"name": "rf_next", "model": "random_forest", "init_from": "rf_only5"},
                ],
            }
        )
    )
    assert_one_sentence_error(
        run_cli("run", pipeline), "l.yaml", "starts from 'rf_only5', which does not run on random6"
    )


@pytest.mark.parametrize(
    "row, fragment",
    [
        (
            {"name": "typo", "model": "cnn3d", "options": {"mixpu": 0.4}},
            "row 'typo' (random5) options: mixpu: Extra inputs are not permitted",
        ),
        (
            {"name": "late", "model": "cnn3d", "per_protocol": {"random5": {"ema": 2}}},
            "row 'late' (random5) options: recipe.ema: Input should be less than 1",
        ),
        (
            {"name": "pre", "model": "less_vit_tiny", "pretrain": {"sampels": 10}},
            "row 'pre' (random5) pretrain: sampels: Extra inputs are not permitted",
        ),
    ],
    ids=["option", "per-protocol", "pretrain"],
)
def test_rows_are_validated_when_the_job_loads(tmp_path, run_cli, row, fragment):
    """A misspelt option is refused before any row runs, naming the row."""
    pipeline = tmp_path / "typo.yaml"
    pipeline.write_text(yaml.safe_dump(_indian_pines_job(tmp_path, "typo", [5], ["svm_rbf", row])))
    assert_one_sentence_error(run_cli("run", pipeline), "typo.yaml", fragment)
    assert not (tmp_path / "out").exists() and not (tmp_path / "typo.json").exists()
