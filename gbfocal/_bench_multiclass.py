"""Multiclass methods, fits and metrics of ``gbfocal bench`` (K >= 3 classes).

The binary protocol of :mod:`gbfocal.bench` carries over; only the losses,
the class weights and the metrics change. The method names stay those of the
binary bench, so that ``--methods`` and the paired comparisons read the same:

* ``focal``: :class:`gbfocal.MulticlassFocalLoss` with its defaults (every
  class weighted 1, γ = 2).
* ``focal_tuned``: α from the class-balanced weights raised to a power
  ``s`` (``s = 0``: no weights, ``s = 1``: ``"balanced"``, as the estimators'
  ``focal_alpha="balanced"``) × γ from a grid; the same number of candidates
  as ``weighted_logloss_tuned``.
* ``weighted_logloss``: class-balanced softmax cross-entropy, every row
  weighted ``w_y`` with ``w_k = n / (K n_k)`` of the fitting part
  (scikit-learn's ``class_weight="balanced"``).
* ``weighted_logloss_tuned``: row weights ``w_y^t``, ``t`` from an equally
  large grid between 0 (plain cross-entropy) and 1.
* ``logloss``: plain softmax cross-entropy (``multi:softprob`` /
  ``multiclass``).

Every model returns margins ``z`` of shape ``(n, K)``. Its **corrected**
margins ``c`` (``softmax(c)`` the method's probability estimate) are: for the
focal loss ``log`` of the recovered posterior
(:meth:`gbfocal.MulticlassFocalLoss.posterior`); for cross-entropy with class
weights ``w_k`` the prior correction ``c = z - log w``: a weighted
cross-entropy minimiser is ``softmax(z)_k ∝ w_k η_k(x)`` (the weights scale
the class priors), so dividing by ``w_k`` and renormalising recovers ``η``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "METRICS",
    "METRIC_LABELS",
    "METRIC_SCALES",
    "MulticlassCandidate",
    "balanced_weights",
    "candidates",
    "fit_lightgbm",
    "fit_xgboost",
    "macro_average_precision",
    "score",
    "softmax",
]

#: Test-set metrics of a multiclass dataset, the primary one first.
METRICS = (
    "macro_average_precision",
    "macro_f1",
    "balanced_accuracy",
    "brier",
    "log_loss",
    "brier_calibrated",
    "log_loss_calibrated",
)
METRIC_LABELS = {
    "macro_average_precision": "macro AP",
    "macro_f1": "macro F1",
    "balanced_accuracy": "bal. acc.",
    "brier": "Brier softmax(margin)",
    "log_loss": "log loss softmax(margin)",
    "brier_calibrated": "Brier corrected",
    "log_loss_calibrated": "log loss corrected",
}
#: Multiclass Brier score ``Σ_k (p_k - [y = k])²`` lies in [0, 2].
METRIC_SCALES = {
    "macro_average_precision": "logit",
    "macro_f1": "logit",
    "balanced_accuracy": "logit",
    "brier": "logit2",
    "log_loss": "log",
    "brier_calibrated": "logit2",
    "log_loss_calibrated": "log",
}
DIGITS = {m: 3 if i < 3 else 4 for i, m in enumerate(METRICS)}
FOCAL_GAMMA = 2.0


@dataclass(frozen=True)
class MulticlassCandidate:
    """One multiclass training loss: focal ``(α = w^s, γ)`` or cross-entropy with row weights ``w_y^t``.

    ``w`` (shape ``(K,)``) are the class-balanced weights ``n / (K n_k)`` of
    the fitting part; ``weight_exponent`` is ``s`` (focal) or ``t``
    (cross-entropy): 0 means unweighted, 1 balanced.
    """

    loss: str  # "focal" or "logloss"
    gamma: float = 0.0
    weight_exponent: float = 0.0

    def class_weights(self, balanced: np.ndarray) -> np.ndarray:
        """``w^exponent``, shape ``(K,)``."""
        return np.asarray(balanced, dtype=np.float64) ** self.weight_exponent

    def focal_loss(self, balanced: np.ndarray) -> Any:
        from gbfocal import MulticlassFocalLoss

        alpha = None if self.weight_exponent == 0 else tuple(self.class_weights(balanced).tolist())
        return MulticlassFocalLoss(alpha, self.gamma)

    def describe(self, balanced: np.ndarray) -> dict[str, Any]:
        weights = [round(float(v), 6) for v in self.class_weights(balanced)]
        if self.loss == "focal":
            return {"loss": "focal", "alpha_exponent": self.weight_exponent, "alpha": weights, "gamma": self.gamma}
        return {"loss": "logloss", "weight_exponent": self.weight_exponent, "class_weights": weights}

    def label(self) -> str:
        if self.loss == "focal":
            alpha = {0.0: "none", 1.0: "balanced"}.get(self.weight_exponent, f"balanced^{self.weight_exponent:g}")
            return f"α={alpha} γ={self.gamma:g}"
        return f"t={self.weight_exponent:.2g}"

    def corrected_margins(self, margin: np.ndarray, balanced: np.ndarray) -> np.ndarray:
        """Margins ``c``, shape ``(n, K)``, whose softmax is this method's probability estimate (module docstring)."""
        z = np.asarray(margin, dtype=np.float64)
        if self.loss == "focal":
            with np.errstate(divide="ignore"):
                return np.log(self.focal_loss(balanced).posterior(z))
        return z - np.log(self.class_weights(balanced))[None, :]


def candidates(method: str, grid_size: int) -> list[MulticlassCandidate]:
    """The candidates of ``method`` in grid order (untuned methods: one).

    ``grid_size`` 4: ``s ∈ {0, 1} × γ ∈ {1, 2}`` and ``t ∈ {0, 1/3, 2/3, 1}``;
    9: ``s ∈ {0, 0.5, 1} × γ ∈ {0.5, 1, 2}`` and nine ``t`` from 0 to 1.
    """
    if method == "focal":
        return [MulticlassCandidate("focal", FOCAL_GAMMA, 0.0)]
    if method == "weighted_logloss":
        return [MulticlassCandidate("logloss", weight_exponent=1.0)]
    if method == "logloss":
        return [MulticlassCandidate("logloss", weight_exponent=0.0)]
    if method == "focal_tuned":
        exponents, gammas = ((0.0, 1.0), (1.0, 2.0)) if grid_size == 4 else ((0.0, 0.5, 1.0), (0.5, 1.0, 2.0))
        return [MulticlassCandidate("focal", g, s) for s in exponents for g in gammas]
    if method == "weighted_logloss_tuned":
        return [MulticlassCandidate("logloss", weight_exponent=float(t)) for t in np.linspace(0.0, 1.0, grid_size)]
    raise ValueError(f"unknown method {method!r}")


def balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``w_k = n / (K n_k)``, shape ``(K,)``: scikit-learn's ``class_weight="balanced"``."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(np.float64)
    return y.size / (n_classes * counts)


# ---------------------------------------------------------------------------- metrics


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of margins ``(n, K)``, shifted by the row maximum (no overflow)."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    top = z.max(axis=1, keepdims=True)
    return z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))


def macro_average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Mean over the classes present in ``y`` of the one-vs-rest average precision of ``scores[:, k]``."""
    from sklearn.metrics import average_precision_score

    present = np.unique(y)
    return float(np.mean([average_precision_score(y == k, scores[:, k]) for k in present]))


def score(y_true: np.ndarray, margin: np.ndarray, corrected: np.ndarray | None = None) -> dict[str, float]:
    """Test metrics of margins ``(n, K)`` against class codes ``(n,)``.

    ``macro_average_precision``: one-vs-rest AP of ``softmax(margin)[:, k]``
    averaged over classes. ``macro_f1`` (``2 TP / (2 TP + FP + FN)`` per
    class, averaged over all K) and ``balanced_accuracy`` (mean per-class
    recall) at the most probable class, ``argmax margin``. ``brier``:
    ``mean Σ_k (p_k - [y = k])²`` with ``p = softmax(margin)``;
    ``log_loss``: ``mean(-log p_y)`` from the log-softmax (exact for any
    margin). ``corrected`` adds ``brier_calibrated`` and
    ``log_loss_calibrated`` of ``softmax(corrected)``.
    """
    y = np.asarray(y_true).astype(np.int64)
    z = np.asarray(margin, dtype=np.float64)
    k = z.shape[1]
    predicted = z.argmax(axis=1)
    f1, recall = [], []
    for c in range(k):
        tp = int(np.sum((predicted == c) & (y == c)))
        fp = int(np.sum((predicted == c) & (y != c)))
        fn = int(np.sum((predicted != c) & (y == c)))
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        if tp + fn:
            recall.append(tp / (tp + fn))
    out = {
        "macro_average_precision": macro_average_precision(y, softmax(z)),
        "macro_f1": float(np.mean(f1)),
        "balanced_accuracy": float(np.mean(recall)),
        **_probability_scores(y, z, ""),
    }
    if corrected is not None:
        out.update(_probability_scores(y, np.asarray(corrected, dtype=np.float64), "_calibrated"))
    return out


def _probability_scores(y: np.ndarray, z: np.ndarray, suffix: str) -> dict[str, float]:
    log_p = _log_softmax(z)
    onehot = np.zeros_like(log_p)
    onehot[np.arange(y.size), y] = 1.0
    return {
        f"brier{suffix}": float(np.mean(np.sum((np.exp(log_p) - onehot) ** 2, axis=1))),
        f"log_loss{suffix}": float(-np.mean(log_p[np.arange(y.size), y])),
    }


# ---------------------------------------------------------------------------- fits


def fit_xgboost(
    cand: MulticlassCandidate, fold: Any, params: dict[str, Any], rounds: int, stop: int | None, threads: int
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """``(margin_valid, margin_test, n_trees, seconds)`` of one XGBoost fit; margins ``(n, K)``.

    Early stopping watches the validation part on the training objective:
    the focal loss, or the cross-entropy with the same row weights.
    """
    import xgboost as xgb

    from gbfocal import xgboost as gfx

    k = fold.balanced.size
    start = time.perf_counter()
    if cand.loss == "focal":
        dfit = xgb.DMatrix(fold.X_fit, label=fold.y_fit, nthread=threads, enable_categorical=True)
        dvalid = xgb.DMatrix(fold.X_valid, label=fold.y_valid, nthread=threads, enable_categorical=True)
        evals = [(dvalid, "valid")] if stop else None
        booster = gfx.train(
            cand.focal_loss(fold.balanced),
            {**params, "num_class": k},
            dfit,
            rounds,
            evals=evals,
            early_stopping_rounds=stop,
            verbose_eval=False,
        )
    else:
        w = cand.class_weights(fold.balanced)
        dfit = xgb.DMatrix(fold.X_fit, label=fold.y_fit, weight=w[fold.y_fit], nthread=threads, enable_categorical=True)
        dvalid = xgb.DMatrix(
            fold.X_valid, label=fold.y_valid, weight=w[fold.y_valid], nthread=threads, enable_categorical=True
        )
        evals = [(dvalid, "valid")] if stop else None
        full = {**params, "objective": "multi:softprob", "num_class": k, "eval_metric": "mlogloss"}
        booster = xgb.train(full, dfit, rounds, evals=evals, early_stopping_rounds=stop, verbose_eval=False)
    seconds = time.perf_counter() - start
    n_trees = booster.best_iteration + 1 if stop else booster.num_boosted_rounds()
    margins = [
        np.asarray(booster.predict(d, output_margin=True, iteration_range=(0, n_trees))).reshape(-1, k)
        for d in (dvalid, xgb.DMatrix(fold.X_test, nthread=threads, enable_categorical=True))
    ]
    return margins[0], margins[1], n_trees, seconds


def fit_lightgbm(
    cand: MulticlassCandidate, fold: Any, params: dict[str, Any], rounds: int, stop: int | None, threads: int
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """As :func:`fit_xgboost`, with LightGBM (``n_trees`` counts boosting rounds, K trees each)."""
    import lightgbm as lgb

    from gbfocal import lightgbm as gfl

    k = fold.balanced.size
    callbacks = [lgb.early_stopping(stop, first_metric_only=True, verbose=False)] if stop else []
    start = time.perf_counter()
    if cand.loss == "focal":
        dfit = lgb.Dataset(fold.X_fit, fold.y_fit, params={"verbose": -1})
        dvalid = lgb.Dataset(fold.X_valid, fold.y_valid, reference=dfit)
        booster = gfl.train(
            cand.focal_loss(fold.balanced),
            {**params, "metric": "None", "num_class": k},
            dfit,
            rounds,
            valid_sets=[dvalid] if stop else None,
            callbacks=callbacks,
        )
    else:
        w = cand.class_weights(fold.balanced)
        dfit = lgb.Dataset(fold.X_fit, fold.y_fit, weight=w[fold.y_fit], params={"verbose": -1})
        dvalid = lgb.Dataset(fold.X_valid, fold.y_valid, weight=w[fold.y_valid], reference=dfit)
        full = {**params, "objective": "multiclass", "num_class": k, "metric": "multi_logloss"}
        booster = lgb.train(full, dfit, rounds, valid_sets=[dvalid] if stop else None, callbacks=callbacks)
    seconds = time.perf_counter() - start
    n_trees = booster.best_iteration if stop and booster.best_iteration > 0 else booster.current_iteration()
    margins = [
        np.asarray(booster.predict(X, raw_score=True, num_iteration=n_trees)).reshape(-1, k)
        for X in (fold.X_valid, fold.X_test)
    ]
    return margins[0], margins[1], n_trees, seconds


def warm_up_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """80 rows × 3 features with 3 classes: enough for a tiny fit that compiles the multiclass kernels."""
    X = rng.standard_normal((80, 3)).astype(np.float32)
    return X, (np.arange(80) % 3).astype(np.int8)
