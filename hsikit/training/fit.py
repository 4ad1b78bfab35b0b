"""``train(config)``: scenes + labels → split → preprocessing → model → bundle + report.

The config is a validated pydantic model; the resolved version (model defaults filled in) is
saved in the report and the bundle, and is enough for ``hsikit evaluate`` to rebuild the exact
test set.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.bundle import BUNDLE_SUFFIXES, Bundle, ModelSpec, new_meta, save_bundle
from hsikit.classes import ClassTable, value_lookup
from hsikit.data.samples import Samples, extract, read_spectra
from hsikit.data.sources import load_sources
from hsikit.devices import resolve_device, use_threads
from hsikit.errors import InputError, error_reason
from hsikit.models import architecture_config, get_entry
from hsikit.models.layers import merge_lora
from hsikit.preprocess import Preprocessor, good_band_identity
from hsikit.progress import progress_bar, say_warning
from hsikit.scene import Scene
from hsikit.training.config import ResolvedTrainConfig, TrainConfig
from hsikit.training.distributed import (
    check_processes,
    finish_helper_process,
    is_helper_process,
)


@dataclass
class TrainResult:
    bundle_path: Path
    report: dict
    bundle: Bundle
    report_dir: Path


# -- training ------------------------------------------------------------------------------------


def _named(paths: list[str], dataset: str | None) -> str:
    """The labels or scenes of a run, for a refusal that names them (a labels file given for
    every scene, once)."""
    return ", ".join(dict.fromkeys(paths)) if paths else f"dataset {dataset}"


def _class_indices(
    samples: Samples, table: ClassTable, labels: str
) -> tuple[ClassTable, dict[str, np.ndarray]]:
    """Model classes = classes with training pixels; labels → indices 0…K-1; others dropped."""
    present = sorted(set(samples.y["train"].tolist()))
    if len(present) < 2:
        found = ", ".join(table.name_of(v) for v in present) or "none"
        raise InputError(
            labels,
            f"fewer than two classes have valid training pixels (found: {found})",
            "a classifier needs at least two classes: label more, or use a larger training share",
        )
    model_table = ClassTable(tuple(e for e in table.entries if e.value in present))
    lookup = value_lookup(present, range(len(present)), table.max_value + 1)
    return model_table, {role: lookup[y] for role, y in samples.y.items()}


#: Training pixels below which a class is said to train on a handful.
FEW_TRAINING_PIXELS = 5

#: What gives classes more test pixels under each split: only the options that split reads.
MORE_TEST = {
    "random": "label more pixels",
    "spatial": "label more pixels, or give a smaller --block-size or a smaller --train-fraction",
    "tiles": "label them on more scenes, or choose other test tiles (another --seed, or a "
    "smaller --train-fraction)",
}


def _more_training_hint(config: ResolvedTrainConfig) -> str:
    """What gives classes more training pixels under the split ``config`` uses: the random
    split's share or count, the spatial split's blocks, the tiles split's choice of scenes."""
    if config.split == "random":
        if config.per_class is not None:
            return "label more pixels, or give a larger --per-class"
        return "label more pixels, or give --per-class N or a larger --train-ratio"
    if config.split == "spatial":
        return "label more pixels, or give a smaller --block-size or a larger --train-fraction"
    return (
        "label them on more scenes, or choose other training tiles (another --seed, or a "
        "larger --train-fraction)"
    )


def split_warnings(
    config: ResolvedTrainConfig,
    table: ClassTable,
    indices: dict[str, np.ndarray],
    model_table: ClassTable,
) -> list[str]:
    """What a user must hear about the split before trusting the bundle and its scores, with
    what to change for the split used: labelled classes it leaves without training pixels (the
    model cannot predict them), classes it trains on a handful of pixels, and classes (or a
    whole split) without test pixels, which the accuracy then does not measure."""
    y_train, y_test = (indices[role][indices[role] >= 0] for role in ("train", "test"))
    return _training_warnings(config, table, y_train, model_table) + _test_warnings(
        config, y_test, model_table
    )


def _training_warnings(
    config: ResolvedTrainConfig, table: ClassTable, y_train: np.ndarray, model_table: ClassTable
) -> list[str]:
    """Classes the bundle lacks or trains on a handful of pixels: its maps are unreliable."""
    hint = _more_training_hint(config)
    warnings = []
    kept = {e.name for e in model_table.entries}
    missing = [e.name for e in table.entries if e.name not in kept]
    if missing:
        warnings.append(
            f"{len(missing)} of {len(table.entries)} labelled classes have no training pixels "
            f"({', '.join(missing)}), so the bundle cannot predict them: {hint}"
        )
    counts = np.bincount(y_train, minlength=len(model_table.entries))
    few = [
        f"{e.name} ({n})" for e, n in zip(model_table.entries, counts) if n < FEW_TRAINING_PIXELS
    ]
    if few:
        warnings.append(
            f"classes train on fewer than {FEW_TRAINING_PIXELS} pixels each: {', '.join(few)}; "
            f"{hint}"
        )
    return warnings


def _test_warnings(
    config: ResolvedTrainConfig, y_test: np.ndarray, model_table: ClassTable
) -> list[str]:
    """Classes (or the whole split) without test pixels: the accuracy says nothing of them."""
    hint = MORE_TEST[config.split]
    if not len(y_test):
        return [
            f"the split leaves no test pixels, so the bundle's accuracy is not measured: {hint}"
        ]
    counts = np.bincount(y_test, minlength=len(model_table.entries))
    untested = [e.name for e, n in zip(model_table.entries, counts) if not n]
    if not untested:
        return []
    return [
        f"{len(untested)} of {len(model_table.entries)} classes of the bundle have no test "
        f"pixels ({', '.join(untested)}), so the accuracy does not score them: {hint}"
    ]


def _data_warnings(
    config: ResolvedTrainConfig,
    on_nodata: dict[str, tuple[int, int]],
    preprocessor: Preprocessor,
    spectra: np.ndarray,
) -> list[str]:
    """Labelled pixels the scene has as nodata, and a PCA cut by the training spectra."""
    warnings = [
        f"{name}: {lost} of {used} labelled pixels are nodata in the scene and were left out"
        for name, (used, lost) in on_nodata.items()
        if lost
    ]
    if (
        config.pca
        and preprocessor.components is not None
        and preprocessor.out_channels < config.pca
    ):
        warnings.append(
            f"PCA keeps {preprocessor.out_channels} components, not {config.pca}: it cannot "
            f"fit more than its {spectra.shape[0]} training spectra of {spectra.shape[1]} "
            "bands; label more pixels, or give --pca with fewer components"
        )
    return warnings


def train(
    config: TrainConfig, bundle_path: str | Path, report_dir: str | Path, progress: bool = True
) -> TrainResult:

    from hsikit.evaluation.accuracy import ReferencePixels, accuracy_report
    from hsikit.training.report import write_report
    from hsikit.writers.atomic import check_output, check_output_folder, prepare_output_folder

    config = config.resolved()
    bundle_path, report_dir = Path(bundle_path), Path(report_dir)
    inputs = [*config.scenes, *config.labels, *([config.init] if config.init else [])]
    check_output(bundle_path, suffixes=BUNDLE_SUFFIXES, what="a bundle", inputs=inputs)
    check_output_folder(report_dir, inputs=inputs)
    entry = get_entry(config.model)
    if entry.family == "classical" and config.init:
        raise InputError(
            config.init,
            f"{config.model} is fitted from scratch and cannot start from earlier weights",
            "drop --init, or choose a neural model",
        )
    recipe = config.recipe
    if entry.family == "classical" and (
        recipe.ema
        or recipe.context_dropout
        or recipe.brightness
        or recipe.mixup
        or config.members > 1
    ):
        raise InputError(
            None,
            f"{config.model} is not trained by gradient steps, so --ema, "
            "--context-dropout, --brightness, --mixup and --members do not apply "
            "to it",
            "drop them, or choose a neural model",
        )
    device = resolve_device(config.device)  # a missing GPU is refused whatever the model
    if entry.family == "classical":
        device = "cpu"  # scikit-learn models run on the CPU
    check_processes(config.devices, device, entry.family, recipe.batch_size)
    use_threads(config.threads)
    started = time.perf_counter()
    sources, table, skipped = load_sources(config)
    shown = progress and not is_helper_process()
    with progress_bar("reading the training pixels", shown) as tell:
        spectra, checksum, on_nodata = read_spectra(sources, tell)
    if spectra.shape[0] == 0:
        raise InputError(
            _named(config.scenes, config.dataset),
            "no labelled training pixel has valid values (all are nodata or not finite)",
            "check the scene's nodata value, the labels and the split",
        )
    first = sources[0].scene
    preprocessor = _preprocessor(config, spectra, first)
    with progress_bar("cutting patches", shown) as tell:
        samples = extract(sources, preprocessor, config.patch_size, tell)
    model_table, indices = _class_indices(samples, table, _named(config.labels, config.dataset))
    keep = {role: indices[role] >= 0 for role in indices}
    x = {role: samples.x[role][keep[role]] for role in ("train", "val")}
    y = {role: indices[role][keep[role]] for role in indices}
    test_pixels = ReferencePixels.of(samples, indices["test"], [s.scene for s in sources])
    model_config = (
        architecture_for(config.model, config.patch_size, preprocessor, first)
        if entry.family == "torch"
        else {}
    )
    spec = ModelSpec(
        name=config.model, family=entry.family, config=model_config, members=config.members
    )
    if entry.family == "torch":
        check_architecture(spec, preprocessor, config.patch_size, len(model_table))
    warnings = skipped + split_warnings(config, table, indices, model_table)
    warnings += _data_warnings(config, on_nodata, preprocessor, spectra)
    for warning in warnings if shown else []:
        say_warning(warning)  # before the fit: a run that should not go on can be stopped
    if not is_helper_process():
        prepare_output_folder(report_dir)
    fit_started = time.perf_counter()
    if entry.family == "classical":
        model = spec.build(preprocessor.out_channels, len(model_table))
        x_val, y_val = (x["val"], y["val"]) if config.recipe.refit is not False else (None, None)
        with progress_bar(f"fitting {config.model}", shown) as tell:
            model.fit(
                x["train"], y["train"], seed=config.init_seed, x_val=x_val, y_val=y_val, on_fit=tell
            )
        fit_info: dict = dict(model.chosen)
    else:
        model, fit_info = _fit_networks(
            config, spec, preprocessor, len(model_table), x, y, device, progress, report_dir
        )
    fit_seconds = time.perf_counter() - fit_started
    finish_helper_process()
    meta = new_meta(
        model=spec,
        in_bands=preprocessor.out_channels,
        num_classes=len(model_table),
        patch_size=config.patch_size,
        band_wavelengths=[
            None if not np.isfinite(w) else float(w) for w in preprocessor.band_wavelengths
        ],
        band_names=preprocessor.band_names,
        # the components PCA could fit: no more than the training spectra it saw
        pca=preprocessor.out_channels if preprocessor.components is not None else None,
        classes=model_table.to_records(),
        smoothing=config.smoothing,
    )
    bundle = Bundle(meta, model, preprocessor).to(device)
    report = accuracy_report(bundle, test_pixels)
    dropped = sorted({e.name for e in table.entries} - {e.name for e in model_table.entries})
    parameters = bundle.parameter_count
    report.update(
        model=config.model,
        protocol=config.split,
        seed=config.seed,
        init_seed=config.init_seed,
        members=config.members,
        device=device,
        data_checksum=checksum,
        train_seconds=round(fit_seconds, 2),
        total_seconds=round(time.perf_counter() - started, 2),
        parameters=parameters,
        trainable_parameters=int(fit_info.get("trainable_parameters", parameters)),
        samples={r: int(len(v)) for r, v in y.items()},
        classes_without_training_pixels=dropped,
        warnings=warnings,
        fit=fit_info,
        split=[s.split.describe(s.labels) for s in sources],
        scenes={"used": [s.name for s in sources], "skipped": skipped},
    )
    meta.training = {
        "config": config.model_dump(),
        "device": device,
        "data_checksum": checksum,
        "split_protocol": config.split,
        "split": config.split_spec().describe(),
        "sources": [s.name for s in sources],
        "skipped": skipped,
    }
    meta.metrics = {
        k: report[k]
        for k in ("oa", "aa", "kappa", "n_test", "per_class", "unsmoothed")
        if k in report
    }
    save_bundle(bundle_path, meta, model, preprocessor)
    write_report(report_dir, config, report, sources, model_table)
    return TrainResult(bundle_path, report, bundle, report_dir)


def train_beside(
    map_path: Path, options: dict[str, Any], inputs: Sequence[str] = ()
) -> TrainResult:
    """Train with ``options`` for a map at ``map_path`` (``hsikit classify --labels``): the
    bundle and report go beside the map (``map.safetensors``, ``map_report/``), both checked,
    with the map, before training starts."""
    from hsikit.training.config import train_config
    from hsikit.writers.atomic import check_output, check_output_folder

    bundle = check_output(
        map_path.with_suffix(".safetensors"),
        suffixes=BUNDLE_SUFFIXES,
        what="a bundle",
        inputs=inputs,
    )
    report_dir = check_output_folder(map_path.with_name(map_path.stem + "_report"), inputs=inputs)
    return train(train_config(options), bundle, report_dir)


def _preprocessor(config: ResolvedTrainConfig, spectra: np.ndarray, scene: Scene) -> Preprocessor:
    """Fitted on the training spectra, or when fine-tuning a bundle, the bundle's own."""
    from hsikit.training.finetune import bundle_preprocessor

    _, wavelengths, names = good_band_identity(scene)
    kept = (
        bundle_preprocessor(config.init, config.pca, config.patch_size, wavelengths, names)
        if config.init
        else None
    )
    return kept or Preprocessor.fit(
        spectra, wavelengths, names, pca=config.pca or None, seed=config.seed
    )


def architecture_for(model: str, patch_size: int, preprocessor: Preprocessor, scene: Scene) -> dict:
    """Builder arguments stored in the bundle: patch size, and for wavelength-aware models the
    band centres (nm) and ground sampling distance (m) they embed."""
    wavelengths = None
    if preprocessor.components is None and np.isfinite(preprocessor.band_wavelengths).all():
        wavelengths = [float(w) for w in preprocessor.band_wavelengths]
    gsd = float(abs(scene.transform.a)) if scene.georeferenced else 1.0
    config_out = {
        **get_entry(model).recorded(patch_size),
        **architecture_config(model, patch_size=patch_size, wavelengths=wavelengths, gsd=gsd),
    }
    if (
        "wavelengths" in architecture_config(model, wavelengths=[0.0])
        and "wavelengths" not in config_out
    ):
        raise InputError(
            scene.path,
            f"{model} embeds band wavelengths, and this scene's bands have none (or PCA is on)",
            "use a scene with wavelength metadata and --pca 0",
        )
    return config_out


def check_architecture(
    spec: ModelSpec, preprocessor: Preprocessor, patch_size: int, num_classes: int
) -> None:
    """Refuse, before training, a patch size or band count the architecture cannot run on: one
    forward pass on torch's ``meta`` device (shapes only, nothing computed or allocated)."""
    import torch

    bands = preprocessor.out_channels
    single = spec.model_copy(update={"members": 1})
    try:
        with torch.device("meta"):
            network = single.build(bands, num_classes)
            x = torch.zeros(2, bands, patch_size, patch_size)
            if getattr(network, "uses_wavelengths", False):
                network(x, torch.as_tensor(preprocessor.band_wavelengths, dtype=torch.float32))
            else:
                network(x)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise InputError(
            None,
            f"{spec.name} cannot run on {patch_size} × {patch_size} patches "
            f"of {bands} bands ({error_reason(exc)})",
            "use the model's default patch size (see 'hsikit models'), a "
            "larger --patch-size, or more bands (--pca)",
        ) from exc


def _fit_networks(
    config: ResolvedTrainConfig,
    spec: ModelSpec,
    preprocessor: Preprocessor,
    num_classes: int,
    x: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    device: str,
    progress: bool,
    report_dir: Path,
) -> tuple[Any, dict]:
    """The trained network, or the ensemble of ``config.members`` networks (each from its own
    seed, logging into its own ``member_i`` folder), and what the fit reports. With a refit the
    first network's validation curve chooses the epochs once and the others train only on
    training + validation pixels for that many: validation would choose alike for networks that
    differ only in their initial weights, and each skips a selection run."""
    import lightning as L

    from hsikit.models.ensemble import MeanEnsemble, member_seeds
    from hsikit.training.loops import fit_torch
    from hsikit.training.tasks.base import Recipe

    budget = config.recipe.max_minutes
    deadline = time.perf_counter() + budget * 60 if budget else None
    options = config.recipe.model_dump()
    recipe = Recipe(
        **{**options, "refit": bool(options["refit"])},
        progress=progress,
        device=device,
        devices=config.devices,
        dark_point=preprocessor.dark_point(),
    )
    single = spec.model_copy(update={"members": 1})
    networks, infos = [], []
    chooser = None  # the member whose refit ran on training + validation pixels
    for index, seed in enumerate(member_seeds(config.init_seed, config.members)):
        L.seed_everything(seed, workers=True, verbose=False)  # the initial weights
        network = single.build(preprocessor.out_channels, num_classes)
        start_info = _start_from(network, config)
        log_dir = report_dir if config.members == 1 else report_dir / f"member_{index}"
        # the network that chooses the epochs trains twice (selection, refit), the others once
        trainings = 2 if recipe.refit and chooser is None else 1
        trainings_left = config.members - index + trainings - 1
        recipe.max_minutes = member_minutes(deadline, trainings, trainings_left)
        if chooser is None:
            info = (
                fit_torch(
                    network, x["train"], y["train"], x["val"], y["val"], recipe, seed, str(log_dir)
                )
                | start_info
            )
            if info["refit_on"] == "train+val":
                chooser = index
        else:
            info = start_info | _train_chosen_epochs(
                network, x, y, recipe, seed, infos[chooser]["refit_epochs"], chooser
            )
        if config.lora:
            merge_lora(network)  # the bundle holds the plain architecture, adapters folded in
        networks.append(network)
        infos.append(info | {"init_seed": seed})
    if config.members == 1:
        return networks[0], infos[0]
    trainable = sum(int(info["trainable_parameters"]) for info in infos)
    return MeanEnsemble(networks), {"members": infos, "trainable_parameters": trainable}


def _train_chosen_epochs(
    network: Any,
    x: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    recipe: Any,
    seed: int,
    epochs: int,
    chooser: int,
) -> dict:
    """A later ensemble member trained for the epochs member ``chooser``'s validation chose."""
    from hsikit.training.loops import train_for_epochs

    epochs_run, completed = train_for_epochs(
        network,
        np.concatenate([x["train"], x["val"]]),
        np.concatenate([y["train"], y["val"]]),
        recipe,
        seed,
        epochs,
    )
    info = {
        "refit_on": "train+val",
        "refit_epochs": epochs_run,
        "epochs_chosen_by": f"member_{chooser}",
    }
    if not completed:
        info["refit_note"] = f"cut short by the time budget after {epochs_run} of {epochs} epochs"
    return info


def member_minutes(deadline: float | None, trainings: int, trainings_left: int) -> float | None:
    """A network's share of what is left of the training budget (``deadline`` on the
    ``time.perf_counter`` clock): ``trainings`` of the ``trainings_left`` still to run, so time
    an earlier ensemble member did not use goes to the later ones; a spent budget still leaves
    each a second."""
    if deadline is None:
        return None
    return max(deadline - time.perf_counter(), 1.0) * trainings / trainings_left / 60


def _start_from(model: Any, config: ResolvedTrainConfig) -> dict:
    """Initial weights from ``config.init`` and LoRA adapters, before training."""
    from hsikit.models.layers import count_parameters
    from hsikit.training.finetune import load_initial_weights, prepare_lora

    info: dict = {}
    if config.init:
        info |= load_initial_weights(model, config.model, config.init)
    if config.lora:
        info |= prepare_lora(model, config.lora_rank, config.lora_alpha)
        info["lora_cycles"] = config.recipe.lora_cycles
    else:
        info["trainable_parameters"] = count_parameters(model)["trainable"]
    return info
