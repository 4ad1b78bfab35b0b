"""Classical baselines on spectra: RBF SVM and random forest (scikit-learn to fit).

Fitted models are exported to plain arrays and predicted with numpy, so a bundle stores them in
safetensors like any network and loading never unpickles anything (skops would add a dependency
and still rebuild Python objects from the file). Tests check these predictions equal
scikit-learn's.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from hsikit.models.registry import register_model


def _centre(patches: np.ndarray) -> np.ndarray:
    """``[B, C, P, P]`` patches (or ``[B, C]`` spectra) → ``[B, C]`` centre spectra."""
    if patches.ndim == 2:
        return patches
    p = patches.shape[-1] // 2
    return patches[:, :, p, p]


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class ClassicalClassifier(ABC):
    """Common surface with the torch models: ``fit``, ``predict_proba``, array state.

    ``fit`` pools the training and validation pixels it is given (the whole training region —
    never test), picks hyper-parameters by stratified k-fold cross-validation over it, and refits
    the best setting on all of it (``--no-refit`` passes no validation pixels: training only).
    Cross-validation uses every training pixel for selection, which a single small validation
    subset cannot (on Indian Pines at 10 % it is worth about half a point).
    """

    family = "classical"
    arrays: dict[str, np.ndarray]
    chosen: dict[str, Any]  # the fit's choices: hyper-parameters, cross-validation score …
    folds = 5

    @abstractmethod
    def _grid(self, x: np.ndarray) -> dict[str, list]:
        """scikit-learn parameter grid searched by cross-validation."""

    @abstractmethod
    def _estimator(self, seed: int) -> Any:
        """The unfitted scikit-learn estimator with this model's fixed settings."""

    @abstractmethod
    def _export(self, model: Any) -> None:
        """Copy a fitted estimator into ``self.arrays``."""

    @abstractmethod
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``[B, K]`` class scores from the arrays alone."""

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        seed: int = 0,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        on_fit: Callable[[int, int], None] | None = None,
    ) -> ClassicalClassifier:
        """``on_fit(done, total)`` is told of each cross-validation fit and the final refit, so a
        long search shows its progress."""
        from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold

        x, y = _centre(x), np.asarray(y)
        pooled = x_val is not None and len(x_val) > 0
        if x_val is not None and y_val is not None and len(x_val) > 0:
            x, y = np.concatenate([x, _centre(x_val)]), np.concatenate([y, y_val])
        if len(np.unique(y)) != self.num_classes:
            raise ValueError("every class needs training pixels")
        folds = min(self.folds, int(np.bincount(y).max()))
        self.chosen = {
            "params": {},
            "cv_accuracy": None,
            "folds": 0,
            "refit_on": "train+val" if pooled else "train",
        }
        tell = on_fit or (lambda done, total: None)
        if folds < 2:
            self._export(self._estimator(seed).fit(x, y))
            tell(1, 1)
            return self
        grid = self._grid(x)
        total, done = len(ParameterGrid(grid)) * folds + 1, 0

        def scored(estimator: Any, x_fold: np.ndarray, y_fold: np.ndarray) -> float:
            """Accuracy, as GridSearchCV scores by default; called once per fold fitted."""
            nonlocal done
            done += 1
            tell(done, total)
            return float(estimator.score(x_fold, y_fold))

        search = GridSearchCV(
            self._estimator(seed),
            grid,
            scoring=scored,
            refit=True,
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        )
        with warnings.catch_warnings():  # rare classes with fewer pixels than folds are fine
            warnings.filterwarnings("ignore", message="The least populated class")
            search.fit(x, y)
        tell(total, total)
        self._export(search.best_estimator_)
        self.chosen.update(
            params={
                k: v if isinstance(v, str) else float(v) for k, v in search.best_params_.items()
            },
            cv_accuracy=float(search.best_score_),
            folds=folds,
        )
        return self

    def __init__(self, in_bands: int, num_classes: int) -> None:
        self.in_bands, self.num_classes = in_bands, num_classes
        self.arrays = {}
        self.chosen = {}

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.arrays)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        problem = self.array_problem(state)
        if problem is not None:
            raise ValueError(problem)
        self.arrays = {k: np.asarray(state[k]) for k in self.expected_keys}

    expected_keys: tuple[str, ...] = ()

    def array_problem(self, state: dict[str, np.ndarray]) -> str | None:
        """What keeps ``state`` from predicting with this model's sizes, or None: checked at
        load, so a damaged file is refused instead of failing inside a matrix product."""
        missing = sorted(set(self.expected_keys) - set(state))
        if missing:
            return f"missing arrays: {', '.join(missing)}"
        unexpected = sorted(set(state) - set(self.expected_keys))
        if unexpected:
            return f"unexpected arrays: {', '.join(unexpected)}"
        for key in self.expected_keys:
            if not np.issubdtype(state[key].dtype, np.number):
                return f"'{key}' is not numeric"
            if np.issubdtype(state[key].dtype, np.floating) and not np.isfinite(state[key]).all():
                return f"'{key}' holds values that are not finite"
        return self._layout_problem({k: np.asarray(state[k]) for k in self.expected_keys})

    @abstractmethod
    def _layout_problem(self, a: dict[str, np.ndarray]) -> str | None:
        """Shape and index consistency of this model's arrays."""

    def parameter_count(self) -> int:
        return int(sum(a.size for a in self.arrays.values()))


class SVMClassifier(ClassicalClassifier):
    """RBF support vector machine (one-vs-one, as libsvm)."""

    expected_keys = ("support_vectors", "dual_coef", "intercept", "n_support", "gamma")

    def __init__(self, in_bands: int, num_classes: int, c: float = 100.0) -> None:
        super().__init__(in_bands, num_classes)
        self.c = c

    def _grid(self, x: np.ndarray) -> dict[str, list]:
        scale = 1.0 / (x.shape[1] * x.var())  # scikit-learn's gamma="scale"
        return {
            "C": [self.c / 10, self.c, self.c * 10, self.c * 100],
            "gamma": [scale * g for g in (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)],
        }

    def _estimator(self, seed: int) -> Any:
        from sklearn.svm import SVC

        return SVC(C=self.c, kernel="rbf", gamma="scale", random_state=seed)

    def _export(self, model: Any) -> None:
        self.arrays = {
            "support_vectors": model.support_vectors_.astype("float64"),
            "dual_coef": model.dual_coef_.astype("float64"),
            "intercept": model.intercept_.astype("float64"),
            "n_support": model.n_support_.astype("int64"),
            "gamma": np.asarray([model._gamma], dtype="float64"),
        }

    def _layout_problem(self, a: dict[str, np.ndarray]) -> str | None:
        k = self.num_classes
        sv = a["support_vectors"]
        if sv.ndim != 2 or sv.shape[1] != self.in_bands:
            return f"support_vectors must be (vectors, {self.in_bands})"
        if (
            a["n_support"].shape != (k,)
            or a["n_support"].min() < 0
            or int(a["n_support"].sum()) != sv.shape[0]
        ):
            return f"n_support must count the support vectors of each of the {k} classes"
        if a["dual_coef"].shape != (k - 1, sv.shape[0]):
            return f"dual_coef must be ({k - 1}, {sv.shape[0]})"
        if a["intercept"].shape != (k * (k - 1) // 2,):
            return f"intercept must hold {k * (k - 1) // 2} values"
        if a["gamma"].shape != (1,):
            return "gamma must be one value"
        return None

    def decision(self, x: np.ndarray) -> np.ndarray:
        """One-vs-one votes plus bounded confidences (ties broken as scikit-learn does)."""
        a = self.arrays
        sv, dual, intercept = a["support_vectors"], a["dual_coef"], a["intercept"]
        x = _centre(x).astype("float64")
        sq = (x**2).sum(1)[:, None] + (sv**2).sum(1)[None, :] - 2 * x @ sv.T
        kernel = np.exp(-a["gamma"][0] * np.maximum(sq, 0.0))
        starts = np.concatenate([[0], np.cumsum(a["n_support"])])
        k = self.num_classes
        votes = np.zeros((x.shape[0], k))
        confidence = np.zeros((x.shape[0], k))
        pair = 0
        for i in range(k):
            si = slice(starts[i], starts[i + 1])
            for j in range(i + 1, k):
                sj = slice(starts[j], starts[j + 1])
                dec = (
                    kernel[:, si] @ dual[j - 1, si] + kernel[:, sj] @ dual[i, sj] + intercept[pair]
                )
                votes[:, i] += dec > 0
                votes[:, j] += dec <= 0
                confidence[:, i] += dec
                confidence[:, j] -= dec
                pair += 1
        return votes + confidence / (3 * (np.abs(confidence) + 1))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Softmax of the vote scores: a ranking with a confidence, not a calibrated probability."""
        return _softmax(self.decision(x))


class ForestClassifier(ClassicalClassifier):
    """Random forest; trees flattened into concatenated node arrays."""

    expected_keys = ("left", "right", "feature", "threshold", "value", "roots", "depth")

    def __init__(
        self, in_bands: int, num_classes: int, n_estimators: int = 200, max_features: str = "sqrt"
    ) -> None:
        super().__init__(in_bands, num_classes)
        self.n_estimators, self.max_features = n_estimators, max_features

    def _grid(self, x: np.ndarray) -> dict[str, list]:
        return {"max_features": ["sqrt", 0.1, 0.3]}

    def _estimator(self, seed: int) -> Any:
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            random_state=seed,
            n_jobs=-1,
        )

    def _export(self, model: Any) -> None:
        parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("left", "right", "feature", "threshold", "value")
        }
        roots, offset, depth = [], 0, 0
        for tree in (e.tree_ for e in model.estimators_):
            roots.append(offset)
            for side, children in (("left", tree.children_left), ("right", tree.children_right)):
                parts[side].append(np.where(children >= 0, children + offset, -1))
            parts["feature"].append(np.maximum(tree.feature, 0))
            parts["threshold"].append(tree.threshold)
            value = tree.value[:, 0, :]
            parts["value"].append(value / value.sum(axis=1, keepdims=True))
            offset += tree.node_count
            depth = max(depth, tree.max_depth)
        self.arrays = {k: np.concatenate(v) for k, v in parts.items()}
        self.arrays.update(roots=np.asarray(roots, "int64"), depth=np.asarray([depth], "int64"))

    def _layout_problem(self, a: dict[str, np.ndarray]) -> str | None:
        nodes = a["left"].shape[0] if a["left"].ndim == 1 else -1
        if nodes <= 0 or any(a[key].shape != (nodes,) for key in ("right", "feature", "threshold")):
            return "left, right, feature and threshold must be one value per node"
        if a["value"].shape != (nodes, self.num_classes):
            return f"value must be (nodes, {self.num_classes})"
        if a["roots"].ndim != 1 or a["roots"].size == 0 or a["depth"].shape != (1,):
            return "roots must list the trees and depth be one value"
        indices = [
            ("left", -1, nodes),
            ("right", -1, nodes),
            ("roots", 0, nodes),
            ("feature", 0, self.in_bands),
        ]
        for key, low, high in indices:
            values = a[key]
            if (
                not np.issubdtype(values.dtype, np.integer)
                or values.min() < low
                or values.max() >= high
            ):
                return f"{key} must be integers from {low} to {high - 1}"
        if not 0 <= int(a["depth"][0]) <= nodes:
            return f"depth must lie between 0 and {nodes}"
        return None

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        a = self.arrays
        x = _centre(x).astype("float32")
        node = np.repeat(a["roots"][:, None], x.shape[0], axis=1)  # [trees, N]
        columns = np.arange(x.shape[0])[None, :]
        for _ in range(int(a["depth"][0])):
            left = a["left"][node]
            go_left = x[columns, a["feature"][node]] <= a["threshold"][node]
            node = np.where(left < 0, node, np.where(go_left, left, a["right"][node]))
        return a["value"][node].mean(axis=0)


@register_model("svm_rbf", family="classical", architecture={"patch_size": 1, "pca": None})
def svm_rbf(in_bands: int, num_classes: int, c: float = 100.0) -> SVMClassifier:
    """RBF SVM on standardised spectra (centre pixel only)."""
    return SVMClassifier(in_bands, num_classes, c=c)


@register_model("random_forest", family="classical", architecture={"patch_size": 1, "pca": None})
def random_forest(in_bands: int, num_classes: int, n_estimators: int = 200) -> ForestClassifier:
    """Random forest on standardised spectra (centre pixel only)."""
    return ForestClassifier(in_bands, num_classes, n_estimators=n_estimators)
