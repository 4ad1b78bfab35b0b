"""Commands that train: train, pretrain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hsikit.cli.app import (
    DeviceOpt,
    OutputOpt,
    SmoothEpsOpt,
    SmoothGuideOpt,
    SmoothOpt,
    app,
    out,
)
from hsikit.cli.common import config_from_options, print_metrics, train_config


@app.command()
def train(
    scenes: Annotated[list[str] | None, typer.Argument(help="Scene files (one per labels).")
                      ] = None,
    labels: Annotated[list[str] | None, typer.Option("--labels", help="Labels per scene "
                                                     "(raster or vector; repeat).")] = None,
    dataset: Annotated[str | None, typer.Option(help="A catalog dataset instead of scenes.")
                       ] = None,
    model: Annotated[str | None, typer.Option(
        help="Model name (hsikit models); default: the --init file's model, else cnn3d.")
    ] = None,
    output: OutputOpt = Path("model.safetensors"),
    report: Annotated[Path | None, typer.Option(help="Report folder (default: beside the "
                                                     "bundle).")] = None,
    class_field: Annotated[str | None, typer.Option(help="Class field of vector labels.")] = None,
    name_field: Annotated[str | None, typer.Option(help="Class-name field.")] = None,
    split: Annotated[str, typer.Option(help="random, spatial or tiles.")] = "spatial",
    train_ratio: Annotated[float | None, typer.Option(help="random: share per class.")] = None,
    per_class: Annotated[int | None, typer.Option(help="random: pixels per class.")] = None,
    block_size: Annotated[int | None, typer.Option(help="spatial: block side (px).")] = None,
    buffer_patch: Annotated[int | None, typer.Option(help="spatial: buffer as for this patch "
                                                          "size (compare models on one split).")
                            ] = None,
    patch_size: Annotated[int | None, typer.Option(help="Patch side (odd).")] = None,
    pca: Annotated[int | None, typer.Option(help="PCA components (0 = none).")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay (default "
                                                            "0.01).")] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    balanced: Annotated[bool, typer.Option(help="Class-balanced sampling.")] = False,
    val_fraction: Annotated[float | None, typer.Option(help="Share of the training pixels "
                                                            "kept for validation.")] = None,
    label_smoothing: Annotated[float | None, typer.Option()] = None,
    keep: Annotated[str | None, typer.Option(help="Weights kept: 'best' on validation "
                                                  "(early stopping) or 'last' (the whole "
                                                  "schedule).")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Training-time budget: stop after "
                                                           "this many minutes.")] = None,
    context_dropout: Annotated[float | None, typer.Option(
        help="Share of training patches whose neighbour pixels are partly overwritten by the "
             "centre pixel (spatial generalisation).")] = None,
    brightness: Annotated[float | None, typer.Option(
        help="Scale each training patch by a random factor in 1 ± this (a brighter or darker "
             "surface of the same class; e.g. 0.2); 0 = off.")] = None,
    mixup: Annotated[float | None, typer.Option(
        help="Mix training patches in pairs, labels alike, in shares drawn from Beta(this, "
             "this) (mixed pixels; e.g. 0.4); 0 = off.")] = None,
    refit: Annotated[bool | None, typer.Option(
        "--refit/--no-refit", help="Train the final model on training + validation pixels "
        "once the choices are made on validation (default: classical models yes, neural no).")
    ] = None,
    ema: Annotated[float | None, typer.Option(
        help="Decay of an exponential moving average of the weights (e.g. 0.99), which "
             "validation judges and the bundle keeps; 0 = off.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split, PCA and (unless --init-seed) "
                                           "the model.")] = 0,
    init_seed: Annotated[int | None, typer.Option(
        help="Seed of the model's own randomness (initial weights, batch order, dropout): "
             "vary it on a fixed split to see what initialisation alone changes.")] = None,
    members: Annotated[int | None, typer.Option(
        help="A deep ensemble: train this many networks from different initial weights and "
             "average their class probabilities (a --max-minutes budget is shared).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    device: DeviceOpt = "auto",
    init: Annotated[Path | None, typer.Option(help="Start from this bundle or pretrained "
                                                   "encoder (hsikit pretrain).")] = None,
    lora: Annotated[bool, typer.Option(help="LoRA fine-tuning: train only low-rank adapters "
                                            "and the head (needs --init).")] = False,
    lora_rank: Annotated[int | None, typer.Option(help="LoRA rank.")] = None,
    lora_cycles: Annotated[int | None, typer.Option(help="Cyclical LoRA-strength schedule "
                                                         "with this many cosine restarts.")
                           ] = None,
    smooth: SmoothOpt = None,
    smooth_eps: SmoothEpsOpt = None,
    smooth_guide: SmoothGuideOpt = None,
) -> None:
    """Train a classifier on labelled scenes and write a bundle and a report. With --smooth
    the bundle smooths every map it makes, and the test metrics are those of the smoothed map."""
    from hsikit.smoothing import chosen_smoothing
    from hsikit.training.finetune import initial_model_name
    from hsikit.training.fit import train as run_training

    if model is None and init is not None:
        model = initial_model_name(init)
    chosen_smoothing(smooth, smooth_eps, smooth_guide)  # refuses them without --smooth
    config = train_config(scenes, labels, dataset, model=model, class_field=class_field,
                           name_field=name_field, split=split, train_ratio=train_ratio,
                           per_class=per_class, block_size=block_size,
                           buffer_patch=buffer_patch, patch_size=patch_size,
                           pca=pca, epochs=epochs, lr=lr, weight_decay=weight_decay,
                           batch_size=batch_size,
                           balanced=balanced, val_fraction=val_fraction,
                           label_smoothing=label_smoothing, keep=keep,
                           max_minutes=max_minutes, context_dropout=context_dropout,
                           brightness=brightness, mixup=mixup,
                           refit=refit, ema=ema, seed=seed, init_seed=init_seed,
                           members=members, threads=threads, device=device,
                           init=str(init) if init else None, lora=lora,
                           lora_rank=lora_rank, lora_cycles=lora_cycles, smooth=smooth,
                           smooth_eps=smooth_eps, smooth_guide=smooth_guide)
    report_dir = report or output.with_name(output.stem + "_report")
    result = run_training(config, output, report_dir)
    print_metrics(result.report)
    out.print(f"bundle: {output}\nreport: {report_dir}/")


@app.command()
def pretrain(
    scenes: Annotated[list[str] | None, typer.Argument(help="Scene files or catalog names.")
                      ] = None,
    model: Annotated[str, typer.Option(help="less_vit_* (Hyper-MAE) or spectralgpt_* "
                                            "(3-D MAE).")] = "less_vit_tiny",
    output: OutputOpt = Path("pretrained.safetensors"),
    dataset: Annotated[str | None, typer.Option(help="A catalog dataset instead of scenes.")
                       ] = None,
    labels: Annotated[list[str] | None, typer.Option("--labels", help="Labels per scene, to "
                                                     "pretrain inside a split's training "
                                                     "region only.")] = None,
    split: Annotated[str, typer.Option(help="none, random or spatial: with a split only its "
                                            "training pixels are used.")] = "none",
    samples: Annotated[int | None, typer.Option(help="Patches to pretrain on.")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Self-supervised pretraining of a seed encoder on unlabelled pixels."""
    from hsikit.training.pretrain import PretrainConfig
    from hsikit.training.pretrain import pretrain as run_pretraining

    config = config_from_options(PretrainConfig, "pretrain", scenes, labels, dataset, model=model,
                      split=split, seed=seed, samples=samples, epochs=epochs, threads=threads,
                      device=device)
    result = run_pretraining(config, output)
    out.print(f"held-out reconstruction loss {result['heldout_loss_before']:.4f} → "
              f"{result['heldout_loss_after']:.4f} ({result['train_patches']} patches, "
              f"{result['seconds']:.0f} s)\npretrained encoder: {output}")
