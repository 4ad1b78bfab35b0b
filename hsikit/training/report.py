"""The report folder of a training run: metrics, confusion matrix (CSV + PNG), learning curves,
the exact config, and the split as rasters + JSON."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hsikit.classes import ClassTable  # noqa: E402
from hsikit.data.splits import ROLE_NAMES  # noqa: E402
from hsikit.writers.atomic import prepare_output_folder, staged_output, write_text  # noqa: E402
from hsikit.writers.classmap import write_class_map  # noqa: E402

SPLIT_TABLE = ClassTable.from_records(
    [
        {"value": 1, "name": "train", "colour": "#1b9e77"},
        {"value": 2, "name": "val", "colour": "#7570b3"},
        {"value": 3, "name": "test", "colour": "#d95f02"},
    ]
)


def command_line() -> str:
    """The command that is running, as a bundle records how it was made."""
    import shlex
    import sys

    return shlex.join(["hsikit", *sys.argv[1:]])


def write_json(path: Path, document: Any) -> None:
    """Strict JSON: a score that could not be measured (no test pixels) is ``null``, not the
    ``NaN`` that JSON parsers other than Python's refuse."""
    text = json.dumps(_finite(document), indent=2, default=str, allow_nan=False)
    write_text(path, text + "\n", suffixes=(".json",))


def _finite(value: Any) -> Any:
    if isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def confusion_png(path: Path, matrix: np.ndarray, names: list[str], title: str) -> None:
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    size = 3 + 0.45 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=110)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title, fontsize=9)
    for i in range(len(names)):
        for j in range(len(names)):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of reference pixels")
    with staged_output(path) as stage:
        fig.savefig(stage / path.name, bbox_inches="tight")
    plt.close(fig)


def curves_png(metrics_csv: Path, path: Path) -> bool:
    """Loss and accuracy per epoch from Lightning's CSV log; False when there is no log."""
    if not metrics_csv.is_file():
        return False
    with open(metrics_csv) as fh:
        rows = list(csv.DictReader(fh))
    series: dict[str, dict[int, float]] = {}
    for row in rows:
        for key in ("train_loss", "val_loss", "val_oa"):
            if row.get(key):
                series.setdefault(key, {})[int(row["epoch"])] = float(row[key])
    if not series:
        return False
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=110)
    for key in ("train_loss", "val_loss"):
        if key in series:
            loss_ax.plot(list(series[key]), list(series[key].values()), label=key)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.legend()
    if "val_oa" in series:
        acc_ax.plot(list(series["val_oa"]), list(series["val_oa"].values()), color="tab:green")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("validation overall accuracy")
    with staged_output(path) as stage:
        fig.savefig(stage / path.name, bbox_inches="tight")
    plt.close(fig)
    return True


def seed_text(report: dict) -> str:
    """ "seed S", and the model's own seed when ``--init-seed`` set it apart from the split's,
    or an ensemble's member seeds."""
    members = report.get("members", 1)
    if members > 1:
        from hsikit.models.ensemble import member_seeds

        seeds = ", ".join(map(str, member_seeds(report["init_seed"], members)))
        return f"seed {report['seed']}, {members} members, initial weights seeds {seeds}"
    if report["init_seed"] == report["seed"]:
        return f"seed {report['seed']}"
    return f"seed {report['seed']}, initial weights seed {report['init_seed']}"


def oa_text(figures: dict) -> str:
    """Overall accuracy for a title, or that nothing was scored (OA is then NaN)."""
    return f"OA {figures['oa']:.2%}" if figures["n_test"] else "no test pixels"


def scores_text(figures: dict, pixels: str = "test pixels") -> str:
    """OA, AA and kappa on the ``pixels`` scored, or that there were none: NaN figures mean
    nothing to a user."""
    if not figures["n_test"]:
        return f"no {pixels}"
    return (
        f"OA {figures['oa']:.2%}  AA {figures['aa']:.2%}  kappa {figures['kappa']:.4f}  "
        f"on {figures['n_test']} {pixels}"
    )


def write_report(folder: Path, config: Any, report: dict, sources: list, table: ClassTable) -> None:
    prepare_output_folder(folder)
    write_json(folder / "config.json", config.model_dump())
    write_json(folder / "metrics.json", report)
    names = report["class_names"]
    matrix = np.asarray(report["confusion"], int)
    with staged_output(folder / "confusion.csv") as stage:
        with open(stage / "confusion.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["reference \\ predicted", *names])
            for name, row in zip(names, matrix.tolist()):
                writer.writerow([name, *row])
    confusion_png(
        folder / "confusion.png",
        matrix,
        names,
        f"{report['model']} — {report['protocol']} split, {seed_text(report)}: {oa_text(report)}",
    )
    for log in [folder / "metrics.csv", *sorted(folder.glob("member_*/metrics.csv"))]:
        curves_png(log, log.with_name("curves.png"))  # an ensemble: one folder per member
    for index, source in enumerate(sources):
        stem = "split" if len(sources) == 1 else f"split_{index}"
        write_class_map(folder / f"{stem}.tif", source.split.roles, source.scene.grid, SPLIT_TABLE)
        write_json(
            folder / f"{stem}.json",
            {
                "source": source.name,
                "roles": {str(k): v for k, v in ROLE_NAMES.items()},
                **source.split.describe(source.labels),
            },
        )
