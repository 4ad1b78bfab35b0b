"""Every registered model: shapes, gradients, seeded determinism, bundle round trip, overfit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsikit.bundle import ModelSpec, load_bundle, new_meta, save_bundle
from hsikit.classes import ClassTable
from hsikit.models import architecture_config, create_model, get_entry, list_models
from hsikit.models.ensemble import MeanEnsemble
from hsikit.preprocess import Preprocessor

BANDS, CLASSES, BATCH = 16, 3, 12
WAVELENGTHS = [float(w) for w in np.linspace(400, 900, BANDS)]
#: Larger variants get the shape, size and round-trip checks; training checks use the tiny ones.
CLASSIFIERS = list_models(task="classification")
TRAINABLE_HERE = [n for n in CLASSIFIERS if not n.endswith(("_small", "_base"))]


def _patch_size(name: str) -> int:
    return get_entry(name).architecture.get("patch_size", 1)


def _batch(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(BATCH) % CLASSES
    p = _patch_size(name)
    x = (rng.normal(size=(BATCH, BANDS, p, p)) + y[:, None, None, None] * 2.0).astype("float32")
    return x, y


def _build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    config = architecture_config(
        name, patch_size=_patch_size(name), wavelengths=WAVELENGTHS, gsd=20.0
    )
    return create_model(name, BANDS, CLASSES, **config), config


def _scores(model, family: str, x: np.ndarray) -> np.ndarray:
    if family == "classical":
        return model.predict_proba(x)
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_backward_shapes(name):
    model, _ = _build(name)
    x, y = _batch(name)
    if get_entry(name).family == "classical":
        model.fit(x, y)
        assert model.predict_proba(x).shape == (BATCH, CLASSES)
        assert model.parameter_count() > 0
        return
    logits = model(torch.from_numpy(x))
    assert logits.shape == (BATCH, CLASSES)
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", TRAINABLE_HERE)
def test_same_seed_same_model(name):
    x, y = _batch(name)
    family = get_entry(name).family
    a, b = _build(name, seed=3)[0], _build(name, seed=3)[0]
    if family == "classical":
        a.fit(x, y, seed=3)
        b.fit(x, y, seed=3)
    np.testing.assert_array_equal(_scores(a, family, x), _scores(b, family, x))


def _saved_and_loaded(tmp_path, spec: ModelSpec, model):
    """``model`` written as a bundle (identity preprocessing, three classes) and read back."""
    prep = Preprocessor(
        np.linspace(400, 900, BANDS),
        [f"b{i}" for i in range(BANDS)],
        np.zeros(BANDS),
        np.ones(BANDS),
    )
    meta = new_meta(
        model=spec,
        in_bands=BANDS,
        num_classes=CLASSES,
        patch_size=_patch_size(spec.name),
        band_wavelengths=list(prep.band_wavelengths),
        band_names=prep.band_names,
        classes=ClassTable.from_names(["a", "b", "c"]).to_records(),
    )
    return load_bundle(save_bundle(tmp_path / f"{spec.name}.safetensors", meta, model, prep))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_bundle_round_trip_gives_identical_scores(tmp_path, name):
    model, config = _build(name)
    x, y = _batch(name)
    family = get_entry(name).family
    if family == "classical":
        model.fit(x, y)
    loaded = _saved_and_loaded(tmp_path, ModelSpec(name=name, family=family, config=config), model)
    expected = _scores(model, family, x)
    got = _scores(loaded.model, family, x)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["cnn3d", "less_vit_tiny"])
def test_ensemble_predicts_its_members_mean_probabilities_and_round_trips(tmp_path, name):
    """softmax(ensemble logits) is the members' mean probability, wavelengths passed through;
    a bundle of ``members: 2`` rebuilds the same ensemble."""
    members = [_build(name, seed=s)[0].eval() for s in (0, 1)]
    ensemble = MeanEnsemble(members).eval()
    x = torch.from_numpy(_batch(name)[0])
    extra = [torch.tensor(WAVELENGTHS)] if ensemble.uses_wavelengths else []
    with torch.no_grad():
        expected = torch.stack([m(x, *extra).softmax(1) for m in members]).mean(0)
        torch.testing.assert_close(ensemble(x, *extra).softmax(1), expected)
    spec = ModelSpec(name=name, family="torch", config=_build(name)[1], members=2)
    loaded = _saved_and_loaded(tmp_path, spec, ensemble)
    np.testing.assert_allclose(loaded.predict_proba(x.numpy()), expected.numpy(), atol=1e-6)
    assert loaded.parameter_count == sum(p.numel() for p in ensemble.parameters())


@pytest.mark.parametrize("name", TRAINABLE_HERE)
def test_overfits_one_batch(name):
    model, _ = _build(name)
    x, y = _batch(name)
    family = get_entry(name).family
    if family == "classical":
        model.fit(x, y)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        model.train()
        for _ in range(60):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xt), yt).backward()
            optimizer.step()
    assert (_scores(model, family, x).argmax(1) == y).all()


@pytest.mark.parametrize(
    "family", ["lola_specvit", "lola_specvit_proj", "less_vit", "spectralgpt", "mamba_hsi"]
)
def test_variants_grow_tiny_to_base(family):
    names = [n for n in list_models(f"{family}_*") if n.rsplit("_", 1)[0] == family]
    sizes = [sum(p.numel() for p in _build(name)[0].parameters()) for name in names]
    order = sorted(
        range(len(names)), key=lambda i: ["tiny", "small", "base"].index(names[i].rsplit("_", 1)[1])
    )
    counts = [sizes[i] for i in order]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert counts[0] < 200_000  # tiny trains on a CPU in minutes


@pytest.mark.parametrize("keep", ["best", "last"])
def test_training_keeps_best_validation_or_last_epoch_weights(tmp_path, keep):
    from hsikit.training.loops import fit_torch
    from hsikit.training.tasks.base import Recipe

    x, y = _batch("cnn3d")
    y_val = np.random.default_rng(1).permutation(y)  # validation that does not follow training
    model, _ = _build("cnn3d")
    recipe = Recipe(
        epochs=20, batch_size=4, lr=3e-3, warmup_epochs=0, patience=2, keep=keep, progress=False
    )
    info = fit_torch(model, x, y, x, y_val, recipe, 0, str(tmp_path))
    predicted = _scores(model, "torch", x).argmax(1)
    if keep == "best":
        assert (predicted == y_val).mean() == pytest.approx(info["best_val_oa"])
    else:
        assert info["epochs_run"] == 20  # no early stopping: the whole schedule ran
        assert (predicted == y).all()  # and the model is the trained end state
    assert not info["stopped_by_time_budget"]


def test_ema_keeps_the_moving_average_of_every_step(tmp_path, monkeypatch):
    from hsikit.training.loops import fit_torch
    from hsikit.training.schedule import ema_decay
    from hsikit.training.tasks.base import Recipe
    from hsikit.training.tasks.classify import PatchClassifierTask

    x, y = _batch("cnn3d")
    x_val, y_val = _batch("cnn3d", seed=1)
    recipe = Recipe(epochs=4, batch_size=4, lr=3e-3, warmup_epochs=0, keep="last", progress=False)
    steps: list[dict[str, torch.Tensor]] = []  # the weights after every optimiser step
    monkeypatch.setattr(
        PatchClassifierTask,
        "on_train_batch_end",
        lambda self, *_: steps.append({k: v.clone() for k, v in self.model.state_dict().items()}),
    )
    plain, _ = _build("cnn3d")
    fit_torch(plain, x, y, x_val, y_val, recipe, 0, str(tmp_path / "a"))
    monkeypatch.undo()
    reference = steps[0]  # the slow reference: the average written out update by update
    for updates, state in enumerate(steps[1:], start=1):
        decay = ema_decay(0.9, updates)
        for k, v in reference.items():
            v.copy_(v + (state[k] - v) * (1 - decay))
    averaged, _ = _build("cnn3d")  # the same initial weights and seed, so the same steps
    fit_torch(
        averaged,
        x,
        y,
        x_val,
        y_val,
        Recipe(**{**vars(recipe), "ema": 0.9}),
        0,
        str(tmp_path / "b"),
    )
    for k, v in averaged.state_dict().items():
        torch.testing.assert_close(v, reference[k], rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(v, steps[-1][k]) for k, v in averaged.state_dict().items())
    assert ema_decay(0.99, 0) == pytest.approx(0.1)  # warm-up: early weights fade fast


def test_ema_weights_are_the_ones_validation_judges_and_training_keeps(tmp_path):
    import csv

    from hsikit.training.loops import fit_torch
    from hsikit.training.tasks.base import Recipe

    x, y = _batch("cnn3d")
    y_val = np.random.default_rng(1).permutation(y)
    model, _ = _build("cnn3d")
    recipe = Recipe(
        epochs=12,
        batch_size=4,
        lr=3e-3,
        warmup_epochs=0,
        patience=3,
        ema=0.8,
        label_smoothing=0.0,
        progress=False,
    )
    info = fit_torch(model, x, y, x, y_val, recipe, 0, str(tmp_path))
    with open(tmp_path / "metrics.csv") as log:
        logged = [float(row["val_loss"]) for row in csv.DictReader(log) if row["val_loss"]]
    kept_loss = torch.nn.functional.cross_entropy(
        torch.from_numpy(_scores(model, "torch", x)), torch.from_numpy(y_val)
    )
    assert float(kept_loss) == pytest.approx(logged[info["best_epoch"]], rel=1e-5)


def test_refit_trains_the_chosen_schedule_again_on_training_and_validation_pixels(tmp_path):
    from hsikit.training.loops import fit_torch
    from hsikit.training.tasks.base import Recipe

    x, y = _batch("cnn3d")
    x_val, y_val = _batch("cnn3d", seed=1)
    recipe = Recipe(epochs=6, batch_size=4, lr=3e-3, warmup_epochs=0, keep="last", progress=False)
    refitted, _ = _build("cnn3d")
    info = fit_torch(
        refitted,
        x,
        y,
        x_val,
        y_val,
        Recipe(**{**vars(recipe), "refit": True}),
        0,
        str(tmp_path / "a"),
    )
    assert info["refit_on"] == "train+val" and info["refit_epochs"] == 6
    pooled, _ = _build("cnn3d")  # the same initial weights, trained on both sets, no validation
    fit_torch(
        pooled,
        np.concatenate([x, x_val]),
        np.concatenate([y, y_val]),
        x[:0],
        y[:0],
        recipe,
        0,
        str(tmp_path / "b"),
    )
    for a, b in zip(refitted.state_dict().values(), pooled.state_dict().values()):
        assert torch.equal(a, b)


def test_refit_runs_the_epochs_chosen_on_validation_and_respects_the_time_budget(tmp_path):
    from hsikit.training.loops import fit_torch
    from hsikit.training.tasks.base import Recipe

    x, y = _batch("cnn3d")
    recipe = Recipe(
        epochs=20, batch_size=4, lr=3e-3, warmup_epochs=0, patience=2, refit=True, progress=False
    )
    model, _ = _build("cnn3d")
    info = fit_torch(
        model, x, y, x, np.random.default_rng(1).permutation(y), recipe, 0, str(tmp_path / "a")
    )
    assert info["epochs_run"] > info["best_epoch"] + 1  # early stopping ran past the best
    assert info["refit_epochs"] == info["best_epoch"] + 1
    budget = Recipe(**{**vars(recipe), "max_minutes": 1e-7})
    info = fit_torch(model, x, y, x, y, budget, 0, str(tmp_path / "b"))
    assert info["refit_on"] == "train" and "time budget" in info["refit_note"]


def test_training_runs_in_train_mode_whatever_mode_the_model_comes_in(tmp_path):
    """Lightning keeps the modes it finds: a model left in eval mode (after an earlier fit, or
    by a caller) would otherwise train with frozen batch-norm statistics and no dropout."""
    from hsikit.training.loops import fit_torch
    from hsikit.training.tasks.base import Recipe

    x, y = _batch("cnn3d")
    model, _ = _build("cnn3d")
    modes: set[bool] = set()
    model.register_forward_hook(
        lambda module, *_: modes.add(module.training) if torch.is_grad_enabled() else None
    )
    recipe = Recipe(
        epochs=2, batch_size=4, warmup_epochs=0, refit=True, keep="last", progress=False
    )
    fit_torch(model.eval(), x, y, x, y, recipe, 0, str(tmp_path))
    assert modes == {True}
    assert not model.training  # handed back ready for inference


def test_pretraining_runs_in_train_mode_after_the_held_out_loss_left_it_in_eval_mode():
    from hsikit.models.pretraining import build_pretrainer
    from hsikit.training.loops import fit_pretraining
    from hsikit.training.tasks.base import Recipe

    model, _ = _build("less_vit_tiny")
    pretrainer = build_pretrainer("hyper_mae", model).eval()
    modes: set[bool] = set()
    pretrainer.decoder.register_forward_hook(
        lambda module, *_: modes.add(module.training) if torch.is_grad_enabled() else None
    )
    x, _ = _batch("less_vit_tiny")
    fit_pretraining(
        pretrainer, x, x[:4], Recipe(epochs=1, batch_size=4, warmup_epochs=0, progress=False), 0
    )
    assert modes == {True}
    assert not pretrainer.training


def test_models_lists_whole_names_in_a_narrow_terminal(run_cli, narrow_terminal):
    """The name is what the user types next, so it is never cut to ``lola_specvit_proj_…``."""
    listing = run_cli("models")
    assert listing.code == 0
    assert max(map(len, listing.stdout.splitlines())) <= narrow_terminal
    for name in CLASSIFIERS:
        assert f" {name} " in listing.stdout, name
    only = run_cli("models", "lola_specvit_proj_*").stdout
    assert "lola_specvit_proj_small" in only and "cnn3d" not in only


def test_weights_of_another_architecture_are_refused_by_name(tmp_path):
    """A bundle whose tensors do not fit its declared model is named, never half-loaded."""
    from hsikit.errors import InputError

    model, config = _build("cnn3d")
    model.leftover = torch.nn.Linear(2, 2)  # as from an older or edited architecture
    prep = Preprocessor(
        np.linspace(400, 900, BANDS),
        [f"b{i}" for i in range(BANDS)],
        np.zeros(BANDS),
        np.ones(BANDS),
    )
    meta = new_meta(
        model=ModelSpec(name="cnn3d", family="torch", config=config),
        in_bands=BANDS,
        num_classes=CLASSES,
        patch_size=_patch_size("cnn3d"),
        band_wavelengths=list(prep.band_wavelengths),
        band_names=prep.band_names,
        classes=ClassTable.from_names(["a", "b", "c"]).to_records(),
    )
    path = save_bundle(tmp_path / "old.safetensors", meta, model, prep)
    with pytest.raises(
        InputError,
        match=r"do not fit the 'cnn3d' architecture \(unexpected "
        r"'leftover.bias'\)",
    ):
        load_bundle(path)


@pytest.mark.parametrize("name", ["svm_rbf", "random_forest"])
def test_classical_fits_report_their_progress(name):
    """Each cross-validation fit and the refit are told, in order, ending at the total: what
    the training progress bar and its time left are drawn from."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.3, size=(30, 4, 1, 1)) for c in range(3)])
    y = np.repeat(np.arange(3), 30)
    told: list[tuple[int, int]] = []
    model = create_model(name, in_bands=4, num_classes=3)
    model.fit(x, y, on_fit=lambda done, total: told.append((done, total)))
    total = told[-1][1]
    assert [done for done, _ in told] == list(range(1, total + 1))  # each fold, then the refit
    assert {t for _, t in told} == {total} and (total - 1) % model.chosen["folds"] == 0
