"""Commands that train: train, pretrain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hsikit.cli.app import (
    app,
    out,
)
from hsikit.cli.common import config_from_options, print_metrics
from hsikit.cli.config_options import (
    command_with_options,
    given,
    inputs_argument,
    keyword,
    output_option,
    report_option,
)

TRAIN_PARAMETERS = [
    inputs_argument(
        "scenes",
        "Scene files, each with its --labels, or all with one --labels file (or --dataset); "
        "a scene no label falls on is skipped with a note (--strict: refused).",
    ),
    output_option("model.safetensors"),
    report_option(),
    keyword(
        "config",
        None,
        Annotated[
            Path | None,
            typer.Option(
                help="A YAML file of these options (as a benchmark row's); the options given here "
                "override it.",
                show_default=False,
            ),
        ],
    ),
]


def _train(**values: Any) -> None:
    """Train a classifier on labelled scenes and write a bundle and a report. With --smooth
    the bundle smooths every map it makes, and the test metrics are those of the smoothed map."""
    from hsikit.smoothing import chosen_smoothing
    from hsikit.training.config import TrainConfig, train_config
    from hsikit.training.distributed import silence_helper_output
    from hsikit.training.fit import train as run_training

    silence_helper_output()
    options = given(values, TrainConfig) | (
        {"scenes": values["scenes"]} if values["scenes"] else {}
    )
    chosen_smoothing(
        options.get("smooth"), options.get("smooth_eps"), options.get("smooth_guide")
    )  # refuses them without --smooth
    config = train_config(options, values["config"])
    output = values["output"]
    report_dir = values["report"] or output.with_name(output.stem + "_report")
    result = run_training(config, output, report_dir)
    print_metrics(result.report, warnings=False)  # training said them before it fitted
    out.print(f"bundle: {output}\nreport: {report_dir}/")


def _register_train() -> None:
    from hsikit.training.config import TrainConfig

    app.command("train")(
        command_with_options(_train, TRAIN_PARAMETERS, TrainConfig, skip=frozenset({"scenes"}))
    )


def _register_pretrain() -> None:
    from hsikit.training.pretrain import PretrainConfig

    app.command("pretrain")(
        command_with_options(_pretrain, PRETRAIN_PARAMETERS, PretrainConfig, frozenset({"scenes"}))
    )


PRETRAIN_PARAMETERS = [
    inputs_argument("scenes", "Scene files or catalog names."),
    output_option("pretrained.safetensors", "The pretrained encoder to write."),
]


def _pretrain(**values: Any) -> None:
    """Self-supervised pretraining of a seed encoder on unlabelled pixels."""
    from hsikit.training.pretrain import PretrainConfig
    from hsikit.training.pretrain import pretrain as run_pretraining

    options = given(values, PretrainConfig)
    options.pop("scenes", None)
    config = config_from_options(
        PretrainConfig,
        "pretrain",
        values["scenes"],
        options.pop("labels", None),
        options.pop("dataset", None),
        **options,
    )
    output = values["output"]
    result = run_pretraining(config, output)
    out.print(
        f"held-out reconstruction loss {result['heldout_loss_before']:.4f} → "
        f"{result['heldout_loss_after']:.4f} ({result['train_patches']} patches, "
        f"{result['seconds']:.0f} s)\npretrained encoder: {output}"
    )


_register_train()
_register_pretrain()
