"""A downscaling head against its baselines on the same held-out fields: nearest, bilinear and
bicubic interpolation and the bicubic-feature regression (fitted on the training fields), each
scored per layer in the layer's units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hsikit.gridded.baselines import BicubicRegression
from hsikit.gridded.downscale import downscale
from hsikit.gridded.fields import Fields
from hsikit.gridded.grids import INTERPOLATIONS, coarsen, interpolate, training_block
from hsikit.gridded.scores import FieldScores
from hsikit.restorer import Restorer

#: Test fields scored at a time (memory: a few fine fields per method).
CHUNK = 8


def evaluate_methods(
    restorer: Restorer,
    train_fine: np.ndarray,
    test_fine: np.ndarray,
    fields: Fields,
    periodic: bool,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Scores per method and layer on ``test_fine`` (``[N, V, Y, X]`` physical; the
    regression is fitted on ``train_fine``), and the first test field as each method made it
    (for :func:`preview_png`)."""
    scale = restorer.meta.scale
    rows = training_block(len(fields.lat), scale)  # whole coarse cells, centred
    lat = fields.lat[rows]
    train_fine = train_fine[:, :, rows]
    regression = BicubicRegression(scale, periodic).fit(coarsen(train_fine, lat, scale), train_fine)
    methods = [*INTERPOLATIONS, "bicubic_regression", restorer.meta.model.name]
    scores = {m: FieldScores(lat, test_fine.shape[1], periodic) for m in methods}
    preview: dict[str, np.ndarray] = {}
    for start in range(0, len(test_fine), CHUNK):
        truth = test_fine[start : start + CHUNK, :, rows]
        coarse = coarsen(truth, lat, scale)
        made = {m: interpolate(coarse, scale, m, periodic) for m in INTERPOLATIONS}
        made["bicubic_regression"] = regression.predict(coarse)
        made[restorer.meta.model.name] = downscale(restorer, coarse, periodic)
        for method, values in made.items():
            scores[method].add(values, truth)
        if not preview:
            preview = {"coarse": coarse[0], **{m: v[0] for m, v in made.items()}, "truth": truth[0]}
    results = {m: s.result(fields.names) for m, s in scores.items()}
    model = restorer.meta.model.name
    gain = {
        name: 1 - results[model][name]["rmse"] / results["bicubic"][name]["rmse"]
        for name in fields.names
        if results["bicubic"][name]["rmse"] > 0
    }
    return {"methods": results, "rmse_reduction_vs_bicubic": gain}, preview


def preview_png(preview: dict[str, np.ndarray], names: list[str], path: Path) -> None:
    """Coarse input, bicubic, the model and the truth of one field, the first layer of each
    row being one layer of the file (at most four)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hsikit.writers.atomic import staged_output

    model = next(k for k in preview if k not in (*INTERPOLATIONS, "bicubic_regression", "coarse"))
    columns = ["coarse", "bicubic", model, "truth"]
    layers = names[:4]
    fig, axes = plt.subplots(
        len(layers), 4, figsize=(13, 2.2 * len(layers) + 0.4), squeeze=False, dpi=80
    )
    for row, name in enumerate(layers):
        low = float(np.nanmin(preview["truth"][row]))
        high = float(np.nanmax(preview["truth"][row]))
        for col, key in enumerate(columns):
            ax = axes[row][col]
            ax.imshow(preview[key][row], vmin=low, vmax=high, cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}: {key}" if row == 0 or col == 0 else key, fontsize=8)
    fig.tight_layout()
    with staged_output(path, suffixes=(".png",), what="a preview") as stage:
        fig.savefig(stage / path.name)
    plt.close(fig)
