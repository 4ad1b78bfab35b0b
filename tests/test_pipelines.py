"""`hsikit run` on a tiny benchmark spec: results JSON and the Markdown section it writes."""

from __future__ import annotations

import json

import yaml

from tests.conftest import assert_one_sentence_error


def test_tiny_benchmark_writes_results_and_markdown(tmp_path, run_cli):
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\nHand-written text that must survive.\n")
    spec = {"name": "tiny", "dataset": "indian_pines", "models": ["svm_rbf"],
            "protocols": [{"name": "random10", "split": "random", "train_ratio": 0.1}],
            "seeds": [0, 1], "threads": 1, "output": str(tmp_path / "out"),
            "results": str(tmp_path / "tiny.json"), "report": str(report)}
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
    assert run_cli("run", pipeline).code == 0  # rerun replaces the section, not appends
    assert report.read_text().count("<!-- benchmark:tiny:begin -->") == 1


def test_invalid_pipeline(tmp_path, run_cli):
    pipeline = tmp_path / "bad.yaml"
    pipeline.write_text("name: x\nmodels: nope\n")
    assert_one_sentence_error(run_cli("run", pipeline), "bad.yaml", "invalid pipeline")
