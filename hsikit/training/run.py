"""``train(config)``: scenes + labels → split → preprocessing → model → bundle + report.

The config is a validated pydantic model; the resolved version (model defaults filled in) is
saved in the report and the bundle, and is enough for ``hsikit evaluate`` to rebuild the exact
test set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from hsikit.bundle import BUNDLE_SUFFIXES, Bundle, ModelSpec, new_meta, save_bundle
from hsikit.classes import ClassEntry, ClassTable
from hsikit.devices import DEVICE_HELP, device_name, resolve_device
from hsikit.errors import InputError, error_reason
from hsikit.metrics import classification_report
from hsikit.models import architecture_config, get_entry
from hsikit.models.layers import merge_lora
from hsikit.preprocess import Preprocessor, good_bands, match_bands
from hsikit.scene import Scene
from hsikit.smoothing import DEFAULT_EPS, DEFAULT_GUIDE, Smoothing
from hsikit.splits import TEST, TRAIN, Split, SplitSpec, make_split
from hsikit.training.samples import Samples, Source, extract, read_spectra



class DataOptions(BaseModel):
    """Where pixels come from and how they are split: shared by training and pretraining, so
    both build the same split from the same options."""

    model_config = ConfigDict(extra="forbid")
    dataset: str | None = None
    scenes: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    train_ratio: float = Field(0.1, gt=0, lt=1)
    per_class: int | None = Field(None, gt=0)
    val_fraction: float = Field(0.2, ge=0, lt=1)
    block_size: int = Field(16, gt=0)
    buffer_patch: int | None = Field(None, gt=0, description="spatial: buffer = this // 2 "
                                     "(default: the model's patch size); set it to compare "
                                     "models with different patches on one split")
    seed: int = 0
    threads: int | None = Field(None, gt=0)
    device: Annotated[str, AfterValidator(device_name)] = Field("auto", description=DEVICE_HELP)

    @model_validator(mode="after")
    def _one_source(self) -> DataOptions:
        if (self.dataset is None) == (not self.scenes):
            raise ValueError("give either a catalog dataset or scenes")
        if self.labels and len(self.labels) != len(self.scenes):
            raise ValueError("give one labels file per scene")
        return self


class TrainConfig(DataOptions):
    """Everything a training run depends on; unset recipe fields take the model's defaults."""

    model: str = "cnn3d"
    class_field: str | None = None
    name_field: str | None = None
    split: Literal["random", "spatial", "tiles"] = "spatial"
    train_fraction: float = Field(0.5, gt=0, lt=1)
    patch_size: int | None = Field(None, gt=0)
    pca: int | None = Field(None, ge=0, description="0 = no PCA")
    epochs: int | None = Field(None, gt=0)
    lr: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    label_smoothing: float = Field(0.05, ge=0, lt=1)
    warmup_epochs: int = Field(3, ge=0)
    balanced: bool = False
    patience: int = Field(15, gt=0)
    keep: Literal["best", "last"] = Field("best", description="weights kept: best on "
                                          "validation (early stopping), or the last epoch")
    max_minutes: float | None = Field(None, gt=0, description="training-time budget: stop "
                                      "after this many minutes")
    context_dropout: float = Field(0.0, ge=0, le=1, description="share of training patches "
                                   "whose neighbours are partly overwritten by the centre pixel")
    brightness: float = Field(0.0, ge=0, lt=1, description="each training patch scaled by a "
                              "random factor in 1 ± this (a brighter or darker surface of the "
                              "same class); 0 = off")
    mixup: float = Field(0.0, ge=0, description="training patches mixed in pairs, with their "
                         "labels, in shares drawn from Beta(mixup, mixup); 0 = off")
    refit: bool | None = Field(None, description="train the final model on training + "
                               "validation pixels once the choices are made on validation; "
                               "default: yes for classical models, no for neural ones")
    ema: float = Field(0.0, ge=0, lt=1, description="decay of an exponential moving average of "
                       "the weights, which validation judges and the bundle keeps; 0 = off")
    init_seed: int | None = Field(None, ge=0, description="seed of the model's own randomness "
                                  "(initial weights, training order, augmentation, dropout; a "
                                  "random forest's trees); default: seed. The split and PCA "
                                  "follow seed, so varying this alone measures what "
                                  "initialisation changes on a fixed split")
    members: int = Field(1, ge=1, description="a deep ensemble: this many networks trained on "
                         "the same pixels from different initial weights (member i: init seed "
                         "+ 1000 i), their class probabilities averaged; with a refit the "
                         "first chooses the epochs for all; a time budget is shared")
    init: str | None = Field(None, description="bundle or pretrained encoder to start from")
    lora: bool = Field(False, description="train only LoRA adapters and the head")
    lora_rank: int = Field(8, gt=0)
    lora_alpha: float | None = Field(None, gt=0, description="default: 2 × rank")
    lora_cycles: int = Field(0, ge=0, description="> 0: cyclical LoRA-strength schedule")
    lora_min_strength: float = Field(0.25, ge=0, le=1)
    smooth: int = Field(0, ge=0, description="radius of the edge-preserving smoothing (guided "
                        "filter) of the class probabilities, which the bundle applies to every "
                        "map and the test metrics include; 0 = off")
    smooth_eps: float = Field(DEFAULT_EPS, gt=0, description="the guided filter's ε: guide "
                              "steps above about √ε count as edges")
    smooth_guide: int = Field(DEFAULT_GUIDE, ge=1, description="principal components in the "
                              "guided filter's guide image (3: colour, 1: grey)")

    @property
    def smoothing(self) -> Smoothing | None:
        return (Smoothing(radius=self.smooth, eps=self.smooth_eps, guide=self.smooth_guide)
                if self.smooth else None)

    @model_validator(mode="after")
    def _sources(self) -> TrainConfig:
        if self.lora and self.init is None:
            raise ValueError("LoRA fine-tunes existing weights: give init (a bundle or a "
                             "pretrained encoder)")
        if self.lora_cycles and not self.lora:
            raise ValueError("the cyclical schedule modulates LoRA: it needs lora")
        if self.scenes and len(self.labels) != len(self.scenes):
            raise ValueError("give one labels file per scene")
        if self.split == "tiles" and len(self.scenes) < 2:
            raise ValueError("the 'tiles' split needs at least two scenes")
        return self

    def resolved(self) -> TrainConfig:
        """Fill recipe fields from the model's registered defaults, and the model's own seed
        from the split's."""
        defaults = get_entry(self.model).defaults
        fill = {k: defaults.get(k) for k in ("patch_size", "pca", "epochs", "lr", "batch_size")
                if getattr(self, k) is None}
        fill = {k: v for k, v in fill.items() if v is not None}
        if self.init_seed is None:
            fill["init_seed"] = self.seed
        out = self.model_copy(update=fill)
        if out.patch_size is None:
            out = out.model_copy(update={"patch_size": 1})
        if out.patch_size % 2 == 0:
            raise InputError(None, f"patch size {out.patch_size} is even",
                             "use an odd patch size so patches have a centre pixel")
        return out

    def split_spec(self) -> SplitSpec:
        protocol = "random" if self.split == "random" else "spatial"
        return SplitSpec(protocol=protocol, seed=self.seed, train_ratio=self.train_ratio,
                         per_class=self.per_class, val_fraction=self.val_fraction,
                         train_fraction=self.train_fraction, block_size=self.block_size,
                         patch_size=max(self.buffer_patch or 1, self.patch_size or 1)
                         + 2 * (self.smoothing.margin if self.smoothing else 0))


@dataclass
class TrainResult:
    bundle_path: Path
    report: dict
    bundle: Bundle


# -- sources -------------------------------------------------------------------------------------


def load_sources(config: TrainConfig) -> tuple[list[Source], ClassTable]:
    """Scenes with labels in one shared class table, their splits, and matched bands."""
    from hsikit.datasets import load
    from hsikit.labels import load_labels
    from hsikit.readers import open_scene

    if config.dataset is not None:
        dataset = load(config.dataset)
        raw = [(dataset.scene, dataset.labels.values, dataset.labels.classes, config.dataset)]
    else:
        raw = []
        for scene_path, label_path in zip(config.scenes, config.labels):
            scene = open_scene(scene_path)
            labels = load_labels(label_path, scene, config.class_field, config.name_field)
            raw.append((scene, labels.values, labels.classes, scene_path))
    table, remapped = merge_tables([(values, classes) for _, values, classes, _ in raw])
    first = raw[0][0]
    chosen = good_bands(first)
    wavelengths = first.wavelengths[chosen]
    names = [str(n) for n in first.band_values("name")[chosen]]
    splits = _splits(config, remapped)
    sources = [Source(scene, labels, split, match_bands(wavelengths, names, scene), name)
               for (scene, _, _, name), labels, split in zip(raw, remapped, splits)]
    return sources, table


def merge_tables(items: list[tuple[np.ndarray, ClassTable]]
                 ) -> tuple[ClassTable, list[np.ndarray]]:
    """One class table for all sources, matched by class name; values renumbered if needed."""
    if len(items) == 1:
        return items[0][1], [items[0][0]]
    first = items[0][1]
    entries = {e.name: e for e in first.entries}
    for _, table in items[1:]:
        for entry in table.entries:
            if entry.name not in entries:
                value = max(e.value for e in entries.values()) + 1
                entries[entry.name] = ClassEntry(value, entry.name, entry.colour)
    merged = ClassTable(tuple(sorted(entries.values(), key=lambda e: e.value)))
    out = []
    for values, table in items:
        lookup = np.zeros(max(table.max_value, int(values.max())) + 1, np.int64)
        for entry in table.entries:
            lookup[entry.value] = entries[entry.name].value
        out.append(lookup[values].astype(values.dtype if merged.max_value < 256 else "uint16"))
    return merged, out


def _splits(config: TrainConfig, labels: list[np.ndarray]) -> list[Split]:
    spec = config.split_spec()
    if config.split != "tiles":
        return [make_split(values, spec) for values in labels]
    order = np.random.default_rng(config.seed).permutation(len(labels))
    n_test = min(len(labels) - 1, max(1, int(len(labels) * (1 - config.train_fraction))))
    test_tiles = set(order[:n_test].tolist())
    inner = SplitSpec(protocol="random", seed=config.seed, train_ratio=0.999,
                      val_fraction=config.val_fraction, patch_size=spec.patch_size)
    out = []
    for index, values in enumerate(labels):
        if index in test_tiles:
            roles = np.where(values > 0, TEST, 0).astype(np.uint8)
            out.append(Split(spec, roles, [f"tile {index}: test"]))
        else:
            split = make_split(values, inner)
            split.roles[split.roles == TEST] = TRAIN  # the whole tile trains, minus validation
            out.append(Split(spec, split.roles, [f"tile {index}: train"]))
    return out


# -- training ------------------------------------------------------------------------------------


def _named(paths: list[str], dataset: str | None) -> str:
    """The labels or scenes of a run, for a refusal that names them."""
    return ", ".join(paths) if paths else f"dataset {dataset}"


def _class_indices(samples: Samples, table: ClassTable, labels: str
                   ) -> tuple[ClassTable, dict[str, np.ndarray]]:
    """Model classes = classes with training pixels; labels → indices 0…K-1; others dropped."""
    present = sorted(set(samples.y["train"].tolist()))
    if len(present) < 2:
        found = ", ".join(table.name_of(v) for v in present) or "none"
        raise InputError(labels, f"fewer than two classes have valid training pixels "
                         f"(found: {found})", "a classifier needs at least two classes: label "
                         "more, or use a larger training share")
    model_table = ClassTable(tuple(e for e in table.entries if e.value in present))
    lookup = np.full(table.max_value + 1, -1, np.int64)
    lookup[present] = np.arange(len(present))
    return model_table, {role: lookup[y] for role, y in samples.y.items()}


def train(config: TrainConfig, bundle_path: str | Path, report_dir: str | Path,
          progress: bool = True) -> TrainResult:
    import torch

    from hsikit.evaluation import ReferencePixels, accuracy_report
    from hsikit.training.report import write_report
    from hsikit.writers.atomic import check_output, check_output_folder, prepare_output_folder

    config = config.resolved()
    bundle_path, report_dir = Path(bundle_path), Path(report_dir)
    inputs = [*config.scenes, *config.labels, *([config.init] if config.init else [])]
    check_output(bundle_path, suffixes=BUNDLE_SUFFIXES, what="a bundle", inputs=inputs)
    check_output_folder(report_dir, inputs=inputs)
    entry = get_entry(config.model)
    if entry.family == "classical" and config.init:
        raise InputError(config.init, f"{config.model} is fitted from scratch and cannot start "
                         "from earlier weights", "drop --init, or choose a neural model")
    if entry.family == "classical" and (config.ema or config.context_dropout
                                        or config.brightness or config.mixup
                                        or config.members > 1):
        raise InputError(None, f"{config.model} is not trained by gradient steps, so --ema, "
                         "--context-dropout, --brightness, --mixup and --members do not apply "
                         "to it",
                         "drop them, or choose a neural model")
    device = resolve_device(config.device)  # a missing GPU is refused whatever the model
    if entry.family == "classical":
        device = "cpu"  # scikit-learn models run on the CPU
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    sources, table = load_sources(config)
    spectra, checksum = read_spectra(sources)
    if spectra.shape[0] == 0:
        raise InputError(_named(config.scenes, config.dataset), "no labelled training pixel has "
                         "valid values (all are nodata or not finite)",
                         "check the scene's nodata value, the labels and the split")
    first = sources[0].scene
    preprocessor = _preprocessor(config, spectra, first)
    samples = extract(sources, preprocessor, config.patch_size)
    model_table, indices = _class_indices(samples, table, _named(config.labels, config.dataset))
    keep = {role: indices[role] >= 0 for role in indices}
    x = {role: samples.x[role][keep[role]] for role in ("train", "val")}
    y = {role: indices[role][keep[role]] for role in indices}
    test_pixels = ReferencePixels.of(samples, indices["test"], [s.scene for s in sources])
    model_config = (architecture_for(config.model, config.patch_size, preprocessor, first)
                    if entry.family == "torch" else {})
    spec = ModelSpec(name=config.model, family=entry.family, config=model_config,
                     members=config.members)
    if entry.family == "torch":
        check_architecture(spec, preprocessor, config.patch_size, len(model_table))
    prepare_output_folder(report_dir)
    fit_started = time.perf_counter()
    if entry.family == "classical":
        model = spec.build(preprocessor.out_channels, len(model_table))
        x_val, y_val = (x["val"], y["val"]) if config.refit is not False else (None, None)
        model.fit(x["train"], y["train"], seed=config.init_seed, x_val=x_val, y_val=y_val)
        fit_info: dict = dict(model.chosen)
    else:
        model, fit_info = _fit_networks(config, spec, preprocessor, len(model_table), x, y,
                                        device, progress, report_dir)
    fit_seconds = time.perf_counter() - fit_started
    meta = new_meta(
        model=spec,
        in_bands=preprocessor.out_channels, num_classes=len(model_table),
        patch_size=config.patch_size,
        band_wavelengths=[None if not np.isfinite(w) else float(w)
                          for w in preprocessor.band_wavelengths],
        band_names=preprocessor.band_names, pca=config.pca or None,
        classes=model_table.to_records(), smoothing=config.smoothing,
    )
    bundle = Bundle(meta, model, preprocessor).to(device)
    report = accuracy_report(bundle, test_pixels)
    dropped = sorted({e.name for e in table.entries} - {e.name for e in model_table.entries})
    parameters = bundle.parameter_count
    report.update(
        model=config.model, protocol=config.split, seed=config.seed, init_seed=config.init_seed,
        members=config.members,
        device=device, data_checksum=checksum,
        train_seconds=round(fit_seconds, 2), total_seconds=round(time.perf_counter() - started, 2),
        parameters=parameters,
        trainable_parameters=int(fit_info.get("trainable_parameters", parameters)),
        samples={r: int(len(v)) for r, v in y.items()},
        classes_without_training_pixels=dropped, fit=fit_info,
        split=[s.split.describe(s.labels) for s in sources],
    )
    meta.training = {"config": config.model_dump(), "device": device,
                     "data_checksum": checksum, "split_protocol": config.split,
                     "sources": [s.name for s in sources]}
    meta.metrics = {k: report[k] for k in ("oa", "aa", "kappa", "n_test", "per_class",
                                           "unsmoothed") if k in report}
    save_bundle(bundle_path, meta, model, preprocessor)
    write_report(report_dir, config, report, sources, model_table)
    return TrainResult(bundle_path, report, bundle)


def _preprocessor(config: TrainConfig, spectra: np.ndarray, scene: Scene) -> Preprocessor:
    """Fitted on the training spectra, or when fine-tuning a bundle, the bundle's own."""
    from hsikit.training.finetune import bundle_preprocessor

    chosen = good_bands(scene)
    wavelengths = scene.wavelengths[chosen]
    names = [str(n) for n in scene.band_values("name")[chosen]]
    kept = (bundle_preprocessor(config.init, config.pca, config.patch_size, wavelengths, names)
            if config.init else None)
    return kept or Preprocessor.fit(spectra, wavelengths, names, pca=config.pca or None,
                                    seed=config.seed)


def architecture_for(model: str, patch_size: int, preprocessor: Preprocessor, scene: Scene
                     ) -> dict:
    """Builder arguments stored in the bundle: patch size, and for wavelength-aware models the
    band centres (nm) and ground sampling distance (m) they embed."""
    wavelengths = None
    if preprocessor.components is None and np.isfinite(preprocessor.band_wavelengths).all():
        wavelengths = [float(w) for w in preprocessor.band_wavelengths]
    gsd = float(abs(scene.transform.a)) if scene.georeferenced else 1.0
    config_out = architecture_config(model, patch_size=patch_size, wavelengths=wavelengths,
                                     gsd=gsd)
    if "wavelengths" in architecture_config(model, wavelengths=[0.0]) \
            and "wavelengths" not in config_out:
        raise InputError(scene.path, f"{model} embeds band wavelengths, and this scene's "
                         "bands have none (or PCA is on)",
                         "use a scene with wavelength metadata and --pca 0")
    return config_out


def check_architecture(spec: ModelSpec, preprocessor: Preprocessor, patch_size: int,
                       num_classes: int) -> None:
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
        raise InputError(None, f"{spec.name} cannot run on {patch_size} × {patch_size} patches "
                         f"of {bands} bands ({error_reason(exc)})",
                         "use the model's default patch size (see 'hsikit models') or a "
                         "larger --patch-size") from exc


def _fit_networks(config: TrainConfig, spec: ModelSpec, preprocessor: Preprocessor,
                  num_classes: int, x: dict[str, np.ndarray], y: dict[str, np.ndarray],
                  device: str, progress: bool, report_dir: Path) -> tuple[Any, dict]:
    """The trained network, or the ensemble of ``config.members`` networks (each from its own
    seed, logging into its own ``member_i`` folder), and what the fit reports. With a refit the
    first network's validation curve chooses the epochs once and the others train only on
    training + validation pixels for that many: validation would choose alike for networks that
    differ only in their initial weights, and each skips a selection run."""
    import lightning as L

    from hsikit.models.ensemble import MeanEnsemble, member_seeds
    from hsikit.training.task import Recipe, fit_torch

    deadline = time.perf_counter() + config.max_minutes * 60 if config.max_minutes else None
    recipe = Recipe(epochs=config.epochs, lr=config.lr, weight_decay=config.weight_decay,
                    batch_size=config.batch_size, warmup_epochs=config.warmup_epochs,
                    label_smoothing=config.label_smoothing, balanced=config.balanced,
                    patience=config.patience, keep=config.keep,
                    progress=progress, device=device, context_dropout=config.context_dropout,
                    brightness=config.brightness, dark_point=preprocessor.dark_point(),
                    mixup=config.mixup,
                    refit=bool(config.refit), ema=config.ema, lora_cycles=config.lora_cycles,
                    lora_min_strength=config.lora_min_strength)
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
            info = fit_torch(network, x["train"], y["train"], x["val"], y["val"], recipe, seed,
                             str(log_dir)) | start_info
            if info["refit_on"] == "train+val":
                chooser = index
        else:
            info = start_info | _train_chosen_epochs(network, x, y, recipe, seed,
                                                     infos[chooser]["refit_epochs"], chooser)
        if config.lora:
            merge_lora(network)  # the bundle holds the plain architecture, adapters folded in
        networks.append(network)
        infos.append(info | {"init_seed": seed})
    if config.members == 1:
        return networks[0], infos[0]
    trainable = sum(int(info["trainable_parameters"]) for info in infos)
    return MeanEnsemble(networks), {"members": infos, "trainable_parameters": trainable}


def _train_chosen_epochs(network: Any, x: dict[str, np.ndarray], y: dict[str, np.ndarray],
                         recipe: Any, seed: int, epochs: int, chooser: int) -> dict:
    """A later ensemble member trained for the epochs member ``chooser``'s validation chose."""
    from hsikit.training.task import train_for_epochs

    epochs_run, completed = train_for_epochs(network, np.concatenate([x["train"], x["val"]]),
                                             np.concatenate([y["train"], y["val"]]), recipe,
                                             seed, epochs)
    info = {"refit_on": "train+val", "refit_epochs": epochs_run,
            "epochs_chosen_by": f"member_{chooser}"}
    if not completed:
        info["refit_note"] = f"cut short by the time budget after {epochs_run} of {epochs} epochs"
    return info


def member_minutes(deadline: float | None, trainings: int, trainings_left: int
                   ) -> float | None:
    """A network's share of what is left of the training budget (``deadline`` on the
    ``time.perf_counter`` clock): ``trainings`` of the ``trainings_left`` still to run, so time
    an earlier ensemble member did not use goes to the later ones; a spent budget still leaves
    each a second."""
    if deadline is None:
        return None
    return max(deadline - time.perf_counter(), 1.0) * trainings / trainings_left / 60


def _start_from(model: Any, config: TrainConfig) -> dict:
    """Initial weights from ``config.init`` and LoRA adapters, before training."""
    from hsikit.models.layers import count_parameters
    from hsikit.training.finetune import load_initial_weights, prepare_lora

    info: dict = {}
    if config.init:
        info |= load_initial_weights(model, config.model, config.init)
    if config.lora:
        info |= prepare_lora(model, config.lora_rank, config.lora_alpha)
        info["lora_cycles"] = config.lora_cycles
    else:
        info["trainable_parameters"] = count_parameters(model)["trainable"]
    return info
