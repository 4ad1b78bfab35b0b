"""A benchmark's results as tables: per row and protocol, mean ± std over seeds, written as a
section of a Markdown file that keeps the rest of the file as it is."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from hsikit.evaluation.scoring import summarize_runs
from hsikit.writers.atomic import write_text


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    keys = sorted(
        {(r["protocol"], r["model"]) for r in runs},
        key=lambda k: (
            [r["protocol"] for r in runs].index(k[0]),
            [r["model"] for r in runs].index(k[1]),
        ),
    )
    for protocol, model in keys:
        good = [
            r
            for r in runs
            if r["protocol"] == protocol and r["model"] == model and "error" not in r
        ]
        if not good:
            rows.append({"protocol": protocol, "model": model, "error": "every run failed"})
            continue
        stats = summarize_runs(good)
        rows.append(
            {
                "protocol": protocol,
                "model": model,
                **stats,
                "train_seconds": float(np.mean([r["train_seconds"] for r in good])),
                "pixels_per_second": (
                    float(np.mean([r["pixels_per_second"] for r in good]))
                    if all(r["pixels_per_second"] for r in good)
                    else None
                ),
                "parameters": int(good[0]["parameters"]),
                "trainable_parameters": int(
                    good[0].get("trainable_parameters", good[0]["parameters"])
                ),
                "pretrain_seconds": (
                    float(np.mean([r["pretrain"]["seconds"] for r in good]))
                    if all("pretrain" in r for r in good)
                    else None
                ),
                "peak_rss_mb": float(max(r["peak_rss_mb"] for r in good)),
                "n_test": int(np.mean([r["n_test"] for r in good])),
            }
        )
    return rows


# -- memory: peak RSS must not grow with scene size ------------------------------------------------


MARK_BEGIN = "<!-- benchmark:{name}:begin -->"
MARK_END = "<!-- benchmark:{name}:end -->"


def _pm(stats: dict) -> str:
    """mean ± std over seeds; a single run has no spread to show."""
    if stats.get("n", 2) < 2:
        return f"{100 * stats['mean']:.2f}"
    return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines; a short row (a failure message) is padded with empty cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = row + [""] * (len(header) - len(row))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown_table(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"### {results['benchmark']} ({results['dataset']}), {results['date']}",
        "",
        f"Machine: {m['cores']} CPU cores ({m['cpu']}), {m['memory_gb']} GB RAM, "
        f"{m['gpu']}; Python {m['python']}, torch {m['torch']}. "
        f"Seeds: {', '.join(map(str, results['spec']['seeds']))}. "
        "Reproduce: `make bench` (or `hsikit run pipelines/indian_pines_benchmark.yaml`).",
        "",
    ]

    def seconds(row: dict) -> str:
        pre = row.get("pretrain_seconds")
        return f"{row['train_seconds']:.0f}" + (f" + {pre:.0f} pretrain" if pre else "")

    rows = [
        [r["protocol"], r["model"], "failed"]
        if "error" in r
        else [
            r["protocol"],
            r["model"],
            str(r["oa"]["n"]),
            _pm(r["oa"]),
            _pm(r["aa"]),
            _pm(r["kappa"]),
            str(r["n_test"]),
            seconds(r),
            f"{r['pixels_per_second']:.0f}" if r["pixels_per_second"] else "–",
            f"{r['parameters']:,}",
            f"{r.get('trainable_parameters', r['parameters']):,}",
            f"{r['peak_rss_mb']:.0f}",
        ]
        for r in results["summary"]
    ]
    lines += _table(
        [
            "protocol",
            "model",
            "seeds",
            "OA %",
            "AA %",
            "kappa × 100",
            "test px",
            "train s",
            "inference px/s",
            "parameters",
            "trainable",
            "peak RSS MB",
        ],
        rows,
    )
    memory = results.get("memory_check")
    if memory:
        lines += [
            "",
            f"Streamed `hsikit classify` on synthetic float32 scenes "
            f"({memory['bands']} bands, model `{memory['model']}`):",
            "",
        ]
        rows = [
            [f"{r['size_gb']:g} GB", f"failed: {r['error']}"]
            if "error" in r
            else [
                f"{r['file_bytes'] / 2**30:.2f} GiB",
                f"{r['pixels']:,}",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['seconds']:.0f}",
                f"{r['pixels'] / r['seconds']:.0f}",
            ]
            for r in memory["runs"]
        ]
        lines += _table(["scene size", "pixels", "peak RSS MB", "seconds", "px/s"], rows)
    return "\n".join(lines) + "\n"


def write_markdown(results: dict, path: Path) -> None:
    """Replace this benchmark's section of ``path``, keep the rest."""
    write_section(path, results["benchmark"], markdown_table(results))


def write_section(path: Path, name: str, markdown: str) -> None:
    """Replace job ``name``'s section of ``path`` (between its markers), keep the rest."""
    begin = MARK_BEGIN.format(name=name)
    end = MARK_END.format(name=name)
    section = f"{begin}\n{markdown}{end}\n"
    text = path.read_text() if path.is_file() else "# Benchmarks\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text, suffixes=(".md",), what="a Markdown report")


def results_header(name: str, command: str) -> dict:
    """What every job's results file starts with: the job, the date, the machine, the command
    that reproduces it."""
    from datetime import date

    return {
        "benchmark": name,
        "date": date.today().isoformat(),
        "machine": machine(),
        "command": command,
    }


def machine_sentence(m: dict) -> str:
    """The machine a result was measured on, for a report."""
    return (
        f"{m['cores']} CPU cores ({m['cpu']}), {m['memory_gb']} GB RAM, {m['gpu']}; "
        f"Python {m['python']}, torch {m['torch']}"
    )


def publish(
    results: dict, results_path: str | Path, report_path: str | Path, name: str, markdown: str
) -> None:
    """Write a job's results (JSON) and its section of the report (Markdown)."""
    import json

    text = json.dumps(results, indent=2, default=str) + "\n"
    write_text(Path(results_path), text, suffixes=(".json",), what="a results file")
    write_section(Path(report_path), name, markdown)


def machine() -> dict:
    """The machine a job runs on: CPU, cores, memory, Python, torch, GPU."""
    import os

    import torch

    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(memory_gb, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
