"""Classical baselines on spectra: RBF SVM and random forest (scikit-learn to fit).

Fitted models are exported to plain arrays and predicted with numpy, so a bundle stores them in
safetensors like any network and loading never unpickles anything (skops would add a dependency
and still rebuild Python objects from the file). Tests check these predictions equal
scikit-learn's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

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

    ``fit`` chooses hyper-parameters on the validation pixels when they are given (never on
    test), then refits the chosen setting on training + validation pixels — the whole training
    region, as is usual for models without early stopping.
    """

    family = "classical"

    @abstractmethod
    def _candidates(self, x: np.ndarray) -> list[dict]:
        """Hyper-parameter settings to try on the validation pixels."""

    @abstractmethod
    def _fit_one(self, x: np.ndarray, y: np.ndarray, seed: int, **params: float) -> None:
        """Fit one setting and export it to ``self.arrays``."""

    @abstractmethod
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``[B, K]`` class scores from the arrays alone."""

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> ClassicalClassifier:
        x = _centre(x)
        candidates = self._candidates(x) if x_val is not None and len(x_val) else [{}]
        best_score, best = -1.0, {}
        for params in candidates:
            self._fit_one(x, y, seed, **params)
            if len(candidates) == 1:
                best = params
                break
            score = float((self.predict_proba(x_val).argmax(1) == y_val).mean())
            if score > best_score:
                best_score, best = score, params
        if len(candidates) > 1:  # refit the chosen setting on the whole training region
            self._fit_one(np.concatenate([x, _centre(x_val)]), np.concatenate([y, y_val]),
                          seed, **best)
        self.chosen = {"params": {k: float(v) if not isinstance(v, str) else v
                                  for k, v in best.items()},
                       "val_accuracy": best_score if len(candidates) > 1 else None,
                       "refit_on": "train+val" if len(candidates) > 1 else "train"}
        return self

    def __init__(self, in_bands: int, num_classes: int) -> None:
        self.in_bands, self.num_classes = in_bands, num_classes
        self.arrays: dict[str, np.ndarray] = {}
        self.chosen: dict = {}

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.arrays)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        missing = set(self.expected_keys) - set(state)
        if missing:
            raise ValueError(f"missing arrays: {', '.join(sorted(missing))}")
        self.arrays = {k: np.asarray(state[k]) for k in self.expected_keys}

    expected_keys: tuple[str, ...] = ()

    def parameter_count(self) -> int:
        return int(sum(a.size for a in self.arrays.values()))


class SVMClassifier(ClassicalClassifier):
    """RBF support vector machine (one-vs-one, as libsvm)."""

    expected_keys = ("support_vectors", "dual_coef", "intercept", "n_support", "gamma")

    def __init__(self, in_bands: int, num_classes: int, c: float = 100.0) -> None:
        super().__init__(in_bands, num_classes)
        self.c = c

    def _candidates(self, x: np.ndarray) -> list[dict]:
        scale = 1.0 / (x.shape[1] * x.var())
        return [{"c": c, "gamma": scale * g} for c in (10.0, 100.0, 1000.0)
                for g in (0.5, 1.0, 2.0, 4.0, 8.0)]

    def _fit_one(self, x: np.ndarray, y: np.ndarray, seed: int, c: float | None = None,
                 gamma: float | str = "scale") -> None:
        from sklearn.svm import SVC

        model = SVC(C=c or self.c, kernel="rbf", gamma=gamma, random_state=seed).fit(x, y)
        if len(model.classes_) != self.num_classes:
            raise ValueError("every class needs training pixels")
        self.arrays = {
            "support_vectors": model.support_vectors_.astype("float64"),
            "dual_coef": model.dual_coef_.astype("float64"),
            "intercept": model.intercept_.astype("float64"),
            "n_support": model.n_support_.astype("int64"),
            "gamma": np.asarray([model._gamma], dtype="float64"),
        }

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
                dec = kernel[:, si] @ dual[j - 1, si] + kernel[:, sj] @ dual[i, sj] + intercept[pair]
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

    def __init__(self, in_bands: int, num_classes: int, n_estimators: int = 200,
                 max_features: str = "sqrt") -> None:
        super().__init__(in_bands, num_classes)
        self.n_estimators, self.max_features = n_estimators, max_features

    def _candidates(self, x: np.ndarray) -> list[dict]:
        return [{"max_features": m} for m in ("sqrt", 0.1, 0.3)]

    def _fit_one(self, x: np.ndarray, y: np.ndarray, seed: int,
                 max_features: str | float | None = None) -> None:
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=self.n_estimators,
                                       max_features=max_features or self.max_features,
                                       random_state=seed, n_jobs=-1).fit(x, y)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("left", "right", "feature",
                                                               "threshold", "value")}
        roots, offset, depth = [], 0, 0
        for tree in (e.tree_ for e in model.estimators_):
            roots.append(offset)
            shift = lambda child: np.where(child >= 0, child + offset, -1)  # noqa: E731
            parts["left"].append(shift(tree.children_left))
            parts["right"].append(shift(tree.children_right))
            parts["feature"].append(np.maximum(tree.feature, 0))
            parts["threshold"].append(tree.threshold)
            value = tree.value[:, 0, :]
            parts["value"].append(value / value.sum(axis=1, keepdims=True))
            offset += tree.node_count
            depth = max(depth, tree.max_depth)
        self.arrays = {k: np.concatenate(v) for k, v in parts.items()}
        self.arrays.update(roots=np.asarray(roots, "int64"), depth=np.asarray([depth], "int64"))

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


@register_model("svm_rbf", family="classical", patch_size=1, pca=None)
def svm_rbf(in_bands: int, num_classes: int, c: float = 100.0) -> SVMClassifier:
    """RBF SVM on standardised spectra (centre pixel only)."""
    return SVMClassifier(in_bands, num_classes, c=c)


@register_model("random_forest", family="classical", patch_size=1, pca=None)
def random_forest(in_bands: int, num_classes: int, n_estimators: int = 200) -> ForestClassifier:
    """Random forest on standardised spectra (centre pixel only)."""
    return ForestClassifier(in_bands, num_classes, n_estimators=n_estimators)
