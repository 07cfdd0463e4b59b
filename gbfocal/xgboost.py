"""XGBoost adapter: the focal losses as a custom objective, a metric and a classifier.

Native API::

    import xgboost as xgb
    import gbfocal.xgboost as gfx
    from gbfocal import FocalLoss, MulticlassFocalLoss

    loss = FocalLoss(alpha=0.25, gamma=2.0)          # or MulticlassFocalLoss(alpha=[...], gamma=2.0)
    booster = gfx.train(loss, {"tree_method": "hist"}, dtrain, 200, evals=[(dvalid, "valid")])
    # or, by hand, with xgboost.train:
    booster = xgb.train(gfx.params(loss, dtrain, tree_method="hist"), dtrain, 200,
                        obj=gfx.objective(loss), custom_metric=gfx.metric(loss),
                        evals=[(dvalid, "valid")])

scikit-learn API: :class:`XGBFocalClassifier` (two classes or more, or an
``(n, K)`` 0/1 label matrix: multi-label).

Multi-label (:class:`~gbfocal.MultilabelFocalLoss`): a DMatrix with an
``(n, K)`` 0/1 label matrix, ``objective="binary:logistic"`` per label (K
outputs; either ``multi_strategy``), and ``base_score`` the K probabilities
σ(init_score) (XGBoost >= 3.1 keeps the vector in the model).

Every function takes either loss and asks it how many margins a row has
(``loss.n_outputs``); nothing here branches on the loss's class.

How XGBoost treats a callable objective (checked in its source, 3.1 to 3.2):

* It hands the objective the raw margins of the training rows as a float32
  NumPy array, shape ``(n,)`` with one output, ``(n, K)`` with
  ``objective="multi:softprob"`` and ``num_class=K``, also with
  ``device="cuda"``, and accepts NumPy or CuPy gradients and Hessians of
  that shape back.
* It estimates no starting score. Boosting starts from ``base_score``
  pushed through the link of the *configured* objective. With
  ``binary:logistic`` that is ``logit(base_score)`` and ``predict`` returns
  σ(margin), so :func:`params` and :func:`train` set ``base_score =
  σ(loss.init_score(y))``. With ``multi:softprob`` a vector ``base_score``
  is taken as the K starting margins as they are (XGBoost >= 3.1; 2.1 and
  3.0 accept one number only, a common shift that softmax ignores, which is
  why gbfocal needs 3.1) and ``predict`` returns softmax(margins), so they set
  ``base_score = loss.init_score(y)``, the focal-optimal margin vector.
  Either way the first tree is fitted at the focal-optimal constant, and
  the saved model gives the same margins without gbfocal.
* It ignores ``scale_pos_weight`` (that weighting lives in the built-in
  objective); the focal loss has ``alpha`` for it, so setting both is refused.

Probabilities: σ(margin) or softmax(margins), what ``Booster.predict``
returns, is *not* P(y | x) under the focal loss (it is pulled towards
uniform and shifted by α). :func:`predict_posterior` returns the recovered
posterior (``loss.posterior``); :func:`train` stores the loss in the booster
(attribute ``"gbfocal_loss"``, saved with the model), so
``predict_posterior(None, booster, data)`` needs only the booster, and a plain
XGBoost deployment can apply the posterior formula to
``predict(output_margin=True)`` (README, "Serving a saved focal model").

Metrics (the same rule as :mod:`gbfocal.lightgbm`)
--------------------------------------------------
* The focal metric, ``"focal"`` (the weighted mean focal loss of the raw
  margins, :class:`FocalMetric`), is always reported for every evaluation
  set, by :func:`train` and by :class:`XGBFocalClassifier`, and it is the
  metric early stopping uses: XGBoost's ``EarlyStopping`` watches the last
  metric of the last evaluation set, and gbfocal reports the focal metric
  after every other (a ``custom_metric`` of yours is reported before it).
  It is minimised; ``maximize=True`` is refused. Only an ``EarlyStopping``
  callback of your own with ``metric_name`` set decides otherwise.
* XGBoost's rank metrics are allowed beside it: ``auc``, ``aucpr``,
  ``map``, ``ndcg`` and ``pre`` (also ``@n`` and ``-``). They depend only on
  the order of the scores; for two classes σ(margin) orders the rows as the
  focal posterior does, for K classes they score softmax(margins).
* Every other built-in metric (``logloss``, ``error``, ``mlogloss``,
  ``merror``, ``rmse``...) is refused with a ``ValueError``: with a focal
  objective XGBoost computes it on σ(margin) or softmax(margins), not on the
  posterior that :func:`predict_posterior` and ``predict_proba`` return, so
  its value, and early stopping on it, would mislead. Compute such scores on
  those probabilities after training.

Labels and weights are read from each DMatrix once, on first use, and kept
(with the gradient/Hessian buffers) for as long as that DMatrix lives; build a
new objective or metric if you change a DMatrix's labels or weights in place.
Objectives and metrics may be shared by threads that train at the same time.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import xgboost as xgb
from scipy.special import expit
from xgboost.sklearn import XGBModel

from gbfocal import _validation as V
from gbfocal._estimator import Loss, check_focal_params, estimator_loss
from gbfocal._loss import (
    HESSIAN_POLICIES,
    FocalLoss,
    PreparedRows,
    check_loss,
    loss_from_dict,
)
from gbfocal._multilabel import MultilabelFocalLoss, as_label_matrix, estimator_multilabel_loss

__all__ = [
    "DEVICES",
    "LOSS_ATTR",
    "FocalMetric",
    "FocalObjective",
    "XGBFocalClassifier",
    "base_score",
    "booster_loss",
    "metric",
    "objective",
    "params",
    "predict_posterior",
    "train",
]

#: Where :class:`FocalObjective` computes gradients: ``"cpu"`` on the host,
#: returning NumPy (XGBoost copies them to the GPU if it trains there);
#: ``"cuda"`` on the GPU with :mod:`gbfocal._cuda`, returning CuPy.
DEVICES = ("cpu", "cuda")


# --------------------------------------------------------------------------- rows per DMatrix


def _rows_of_dmatrix(dmatrix: xgb.DMatrix, loss: Loss | None = None, n_classes: int | None = None) -> Any:
    """``loss.prepared`` of the DMatrix's labels and weights (``loss=None``: the binary rows)."""
    labels = dmatrix.get_label()  # (n,), or (n, K) for a label matrix
    if labels.size == 0:
        raise ValueError(
            "the DMatrix has no labels; build it with xgboost.DMatrix(X, label=y) with y in {0, 1} (FocalLoss), "
            "class indices 0..K-1 (MulticlassFocalLoss) or an (n, K) 0/1 matrix (MultilabelFocalLoss)"
        )
    if labels.shape[0] != dmatrix.num_row():
        raise ValueError(
            f"the DMatrix has {labels.shape[0]} label rows for {dmatrix.num_row()} rows; the focal losses need "
            "exactly one label (0/1, or a class index 0..K-1) or one row of K 0/1 labels per row"
        )
    if loss is None:
        return PreparedRows(labels, dmatrix.get_weight())
    return loss.prepared(labels, dmatrix.get_weight(), n_classes)


def _check_dmatrix(data: object, name: str) -> xgb.DMatrix:
    if not isinstance(data, xgb.DMatrix):
        raise TypeError(
            f"{name} must be an xgboost.DMatrix, got {type(data).__name__}; wrap the features and 0/1 labels "
            "in xgb.DMatrix(X, label=y) (weights: weight=w)"
        )
    return data


class _PerDMatrix:
    """One value per live DMatrix, made on first use and dropped with the DMatrix.

    Thread-safe: threads that train on the same DMatrix at once share one
    value, made once. The DMatrix is held by a weak reference only.
    """

    __slots__ = ("_lock", "_values")

    def __init__(self) -> None:
        self._values: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, dmatrix: xgb.DMatrix, make: Callable[[xgb.DMatrix], Any]) -> Any:
        _check_dmatrix(dmatrix, "the data set")  # a NumPy array would fail below as "unhashable type"
        with self._lock:
            value = self._values.get(dmatrix)
            if value is None:
                value = self._values[dmatrix] = make(dmatrix)
        return value


class _PerThreadPerDMatrix:
    """A :class:`_PerDMatrix` for each thread: for values that hold buffers handed back to XGBoost."""

    __slots__ = ("_local",)

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, dmatrix: xgb.DMatrix, make: Callable[[xgb.DMatrix], Any]) -> Any:
        per_dmatrix = getattr(self._local, "values", None)
        if per_dmatrix is None:
            per_dmatrix = self._local.values = _PerDMatrix()
        return per_dmatrix.get(dmatrix, make)


def _one_margin_per_row(predt: np.ndarray) -> np.ndarray:
    if getattr(predt, "ndim", 1) == 2 and predt.shape[1] == 1:
        predt = predt[:, 0]
    if getattr(predt, "ndim", 1) != 1:
        raise ValueError(
            f"expected one raw margin per row, got predictions of shape {predt.shape}; FocalLoss is binary: for "
            "K classes train a gbfocal.MulticlassFocalLoss (num_class=K)"
        )
    return predt


def _margins_of(loss: Loss, predt: Any) -> Any:
    """XGBoost's raw margins in the loss's shape: ``(n,)`` for one output per row, else ``(n, K)``."""
    if loss.n_outputs == 1:
        return _one_margin_per_row(predt)
    shape = tuple(getattr(predt, "shape", ()))
    if len(shape) != 2 or shape[1] < 2:
        if loss.link == "softmax":
            raise ValueError(
                f"expected one raw margin per class, shape (n, K), got predictions of shape {shape}; a multiclass "
                "loss needs objective='multi:softprob' and num_class=K (gbfocal.xgboost.params and train set both)"
            )
        raise ValueError(
            f"expected one raw margin per label, shape (n, K), got predictions of shape {shape}; a multi-label "
            "loss needs a DMatrix with an (n, K) 0/1 label matrix (XGBoost then grows K outputs)"
        )
    return predt


def _n_classes_of(predt: Any) -> int | None:
    """K from XGBoost's margins (classes or labels): their width when 2-D, else None (one margin per row)."""
    shape = tuple(getattr(predt, "shape", ()))
    return shape[1] if len(shape) == 2 and shape[1] >= 2 else None


# --------------------------------------------------------------------------- native API


class FocalObjective:
    """XGBoost custom objective for a :class:`~gbfocal.FocalLoss` or :class:`~gbfocal.MulticlassFocalLoss`.

    Call signature ``(predt, dtrain) -> (grad, hess)``, as ``xgboost.train(obj=...)``
    expects. ``predt`` holds the **raw margins** (not probabilities) of the
    ``n`` training rows, float32 as XGBoost passes them (float64 is
    accepted): shape ``(n,)`` or ``(n, 1)`` for the binary loss, ``(n, K)``
    for a K-class loss (XGBoost 3.1+ with ``objective="multi:softprob"``,
    ``num_class=K``). ``grad`` and ``hess`` are derivatives with respect to
    those margins (for K classes the Hessian diagonal), shape ``(n,)`` or
    ``(n, K)``, same dtype as ``predt``, sample weights of ``dtrain``
    applied: NumPy arrays with ``device="cpu"``, CuPy arrays computed on the
    current GPU with ``device="cuda"``. Either way they are buffers kept for
    that DMatrix and overwritten by the next call (XGBoost copies them at
    once). On the host, float32 margins are computed in float32 arithmetic
    for the binary loss (within ~1e-5 relative of float64, see
    :class:`~gbfocal.FocalLoss`) and in float64, stored as float32, for K
    classes.

    Labels (0/1, or class indices 0..K-1) and weights are read from
    ``dtrain`` and validated on the first call only. Picklable (the
    per-DMatrix state is not pickled). One objective may serve several
    threads training at once, on the same DMatrix or not: each thread gets
    its own gradient/Hessian buffers.

    Examples
    --------
    >>> import numpy as np, xgboost as xgb
    >>> import gbfocal.xgboost as gfx
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> dtrain = xgb.DMatrix(X, label=y)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> obj = gfx.FocalObjective(loss, n_threads=1)
    >>> grad, hess = obj(np.zeros(200, dtype=np.float32), dtrain)  # raw margins of the 200 rows
    >>> grad.shape, grad.dtype, bool((hess > 0).all())
    ((200,), dtype('float32'), True)
    """

    def __init__(self, loss: Loss, *, device: str = "cpu", n_threads: int | None = None) -> None:
        self.loss = check_loss(loss, multilabel=True)
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        if device == "cuda" and isinstance(self.loss, MultilabelFocalLoss):
            raise ValueError(
                "device='cuda' has no multi-label kernels yet; use device='cpu' (XGBoost may still train on the "
                "GPU with params device='cuda': it copies the host gradients over)"
            )
        self.device = device
        self.n_threads = V.check_n_threads(n_threads)
        self._init_state()

    def _init_state(self) -> None:
        self._rows = _PerDMatrix()
        # Device rows keep the gradient buffers they return, so each thread needs its own.
        self._device_rows = _PerThreadPerDMatrix()

    def __getstate__(self) -> dict:
        return {"loss": self.loss, "device": self.device, "n_threads": self.n_threads}

    def __setstate__(self, state: dict) -> None:
        self.loss, self.device, self.n_threads = state["loss"], state["device"], state["n_threads"]
        self._init_state()

    def __repr__(self) -> str:
        return f"FocalObjective({self.loss!r}, device={self.device!r}, n_threads={self.n_threads!r})"

    def prepared(self, dmatrix: xgb.DMatrix, n_classes: int | None = None) -> Any:
        """The validated labels and weights of ``dmatrix`` (``loss.prepared``: read once, then cached).

        ``n_classes`` is K for a multiclass loss (None: ``len(alpha)``, else
        the largest label + 1); the first call for a DMatrix fixes it.
        """
        return self._rows.get(dmatrix, lambda d: _rows_of_dmatrix(d, self.loss, n_classes))

    def __call__(self, predt: np.ndarray, dtrain: xgb.DMatrix) -> tuple[Any, Any]:
        margins = _margins_of(self.loss, predt)
        n_classes = _n_classes_of(margins)
        if self.device == "cuda":
            rows = self._device_rows.get(dtrain, lambda d: self._rows_on_device(d, n_classes))
        else:
            rows = self.prepared(dtrain, n_classes)
        return rows.gradient_hessian(self.loss, margins, self.n_threads)

    def _rows_on_device(self, dmatrix: xgb.DMatrix, n_classes: int | None) -> Any:
        from gbfocal import _cuda  # CUDA stays unimported until a GPU objective runs

        return _cuda.device_rows(self.prepared(dmatrix, n_classes))


class FocalMetric:
    """XGBoost custom metric: the weighted mean focal loss ``Σ w FL / Σ w``.

    Call signature ``(predt, dmatrix) -> (name, value)``, as
    ``xgboost.train(custom_metric=...)`` expects. ``predt`` must hold **raw
    margins**, shape ``(n,)`` or ``(n, 1)`` (binary) or ``(n, K)`` (K
    classes): XGBoost passes margins to the metric when training with a
    custom objective (as with :class:`FocalObjective`); with a built-in
    objective it passes probabilities, and this metric would be wrong.
    Smaller is better, so early stopping minimises it. Labels and weights
    are read from each DMatrix once. Picklable; may be shared by threads.

    Examples
    --------
    >>> import numpy as np, xgboost as xgb
    >>> import gbfocal.xgboost as gfx
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> dtrain = xgb.DMatrix(X, label=y)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> name, value = gfx.FocalMetric(loss, n_threads=1)(np.zeros(200), dtrain)
    >>> name, bool(np.isclose(value, loss.mean_loss(y, np.zeros(200))))
    ('focal', True)
    """

    def __init__(self, loss: Loss, *, name: str = "focal", n_threads: int | None = None) -> None:
        self.loss = check_loss(loss, multilabel=True)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        self.n_threads = V.check_n_threads(n_threads)
        self._rows = _PerDMatrix()

    def __getstate__(self) -> dict:
        return {"loss": self.loss, "name": self.name, "n_threads": self.n_threads}

    def __setstate__(self, state: dict) -> None:
        self.loss, self.name, self.n_threads = state["loss"], state["name"], state["n_threads"]
        self._rows = _PerDMatrix()

    def __repr__(self) -> str:
        return f"FocalMetric({self.loss!r}, name={self.name!r}, n_threads={self.n_threads!r})"

    def __call__(self, predt: np.ndarray, dmatrix: xgb.DMatrix) -> tuple[str, float]:
        margins = _margins_of(self.loss, predt)
        n_classes = _n_classes_of(margins)
        rows = self._rows.get(dmatrix, lambda d: _rows_of_dmatrix(d, self.loss, n_classes))
        return self.name, rows.mean_loss(self.loss, margins, self.n_threads)


#: XGBoost's metrics that depend only on the order of the scores (with ``@n`` or a ``-`` suffix too).
_RANK_METRICS = ("auc", "aucpr", "map", "ndcg", "pre")


def _metric_names(value: object) -> list[str]:
    """The built-in metric names in ``value``: a name or a list of names and callables (callables skipped)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [item for item in value if isinstance(item, str)]
    return []


def _refuse_non_rank_metrics(value: object, where: str) -> list[str]:
    """The built-in metric names in ``value``, refused unless each is a rank metric (``_RANK_METRICS``)."""
    names = _metric_names(value)
    bad = [name for name in names if name.strip().lower().split("@", 1)[0].rstrip("-") not in _RANK_METRICS]
    if bad:
        raise ValueError(
            f"{where} asks for {bad}, which XGBoost computes on sigma(margin) or softmax(margins) with a focal "
            "objective, not on the class posterior that predict_proba and predict_posterior return, so its value "
            "and early stopping on it would mislead. The focal metric ('focal') is always reported and early "
            f"stopping uses it; rank metrics {list(_RANK_METRICS)} are allowed beside it; for log loss, error or "
            "Brier score evaluate predict_proba / gbfocal.xgboost.predict_posterior yourself."
        )
    return names


class _WithFocal:
    """A ``custom_metric`` of the caller's, reported first, then the focal metric, which early stopping uses.

    ``(predt, dmatrix) -> [(name, value), ...]``: XGBoost logs a list in
    order, and its ``EarlyStopping`` watches the last metric logged.
    """

    def __init__(self, given: Callable, focal: FocalMetric) -> None:
        self.given, self.focal = given, focal

    def __call__(self, predt: np.ndarray, dmatrix: xgb.DMatrix) -> list[tuple[str, float]]:
        result = self.given(predt, dmatrix)
        return [*(result if isinstance(result, list) else [result]), self.focal(predt, dmatrix)]


def _with_focal(given: Callable | None, focal: FocalMetric) -> Callable:
    """The custom metric to train with: the focal metric, last (a :class:`FocalMetric` given is used as it)."""
    if given is None:
        return focal
    if isinstance(given, FocalMetric):
        return given
    return _WithFocal(given, focal)


def objective(loss: Loss, *, device: str = "cpu", n_threads: int | None = None) -> FocalObjective:
    """The picklable XGBoost objective ``(predt, dtrain) -> (grad, hess)`` of ``loss``.

    ``predt`` are raw margins, shape ``(n,)`` (:class:`~gbfocal.FocalLoss`)
    or ``(n, K)`` (:class:`~gbfocal.MulticlassFocalLoss`); ``grad``/``hess``
    have that shape and ``predt``'s dtype (float32 from XGBoost).
    ``device="cpu"`` (default) computes on the host with ``n_threads``
    threads (default: every core this process may use) and returns NumPy;
    ``device="cuda"`` computes on the GPU and returns CuPy (needs the
    ``gpu`` extra). See :class:`FocalObjective`.

    Examples
    --------
    >>> import numpy as np, xgboost as xgb
    >>> import gbfocal.xgboost as gfx
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> dtrain = xgb.DMatrix(X, label=y)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> booster = xgb.train(gfx.params(loss, dtrain, max_depth=2, nthread=1), dtrain, 5,
    ...                     obj=gfx.objective(loss, n_threads=1), custom_metric=gfx.metric(loss))
    >>> booster.predict(dtrain, output_margin=True).shape
    (200,)
    """
    return FocalObjective(loss, device=device, n_threads=n_threads)


def metric(loss: Loss, *, name: str = "focal", n_threads: int | None = None) -> FocalMetric:
    """The picklable XGBoost metric ``(predt, dmatrix) -> (name, weighted mean focal loss)``.

    ``predt`` are raw margins, shape ``(n,)`` or ``(n, K)``. See :class:`FocalMetric`.

    Examples
    --------
    >>> import numpy as np, xgboost as xgb
    >>> import gbfocal.xgboost as gfx
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> dtrain = xgb.DMatrix(X, label=y)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> history = {}
    >>> _ = xgb.train(gfx.params(loss, dtrain, max_depth=2, nthread=1, disable_default_eval_metric=1), dtrain, 3,
    ...               obj=gfx.objective(loss), custom_metric=gfx.metric(loss), evals=[(dtrain, "train")],
    ...               evals_result=history, verbose_eval=False)
    >>> list(history["train"]), len(history["train"]["focal"])
    (['focal'], 3)
    """
    return FocalMetric(loss, name=name, n_threads=n_threads)


def _prepared(loss: Loss, data: object, sample_weight: object, n_classes: int | None = None) -> Any:
    if isinstance(data, xgb.DMatrix):
        if sample_weight is not None:
            raise TypeError("a DMatrix carries its own weights: pass sample_weight=None (set DMatrix(weight=...))")
        return _rows_of_dmatrix(data, loss, n_classes)
    return loss.prepared(data, sample_weight, n_classes)


def _start(loss: Loss, init_score: float | np.ndarray) -> float | list[float]:
    """XGBoost's ``base_score`` for a focal-optimal start ``init_score``, by the loss's link.

    ``binary:logistic`` (link ``"logit"``) takes ``base_score`` as a
    probability, or K of them for K outputs (XGBoost 3.1+), and turns each
    into the margin ``logit(base_score)``: σ(z₀). ``multi:softprob``
    (``"softmax"``, XGBoost 3.1+) takes a vector ``base_score`` as the K
    starting margins as they are.
    """
    z = np.asarray(init_score, dtype=np.float64)
    if loss.link == "logit":
        z = expit(z)
    return float(z) if z.ndim == 0 else [float(v) for v in z]


def base_score(
    loss: Loss,
    data: xgb.DMatrix | np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    n_classes: int | None = None,
) -> float | list[float]:
    """XGBoost's ``base_score`` that starts boosting at ``loss.init_score``.

    ``data`` is a labelled DMatrix (its labels and weights are used) or the
    labels, shape ``(n,)`` (0/1, or class indices 0..K-1) or ``(n, K)``
    (0/1 per label), with optional ``sample_weight`` of shape ``(n,)``. For
    :class:`~gbfocal.FocalLoss` returns the probability ``σ(init_score)``
    (``binary:logistic`` turns it back into the margin ``logit(base_score)``,
    in float32); for :class:`~gbfocal.MultilabelFocalLoss` the K
    probabilities ``σ(init_score)`` as a list (``binary:logistic`` per
    label); for :class:`~gbfocal.MulticlassFocalLoss` the K starting margins
    ``init_score`` as a list (``multi:softprob`` uses a vector
    ``base_score`` as margins). Vectors need XGBoost >= 3.1. ``n_classes``:
    K, where neither ``loss.alpha`` nor the labels show it.

    Examples
    --------
    >>> import numpy as np
    >>> import gbfocal.xgboost as gfx
    >>> from gbfocal import FocalLoss, MulticlassFocalLoss
    >>> p = gfx.base_score(FocalLoss(), np.array([0, 0, 0, 1]))  # a probability, σ(init_score)
    >>> 0.0 < p < 1.0
    True
    >>> len(gfx.base_score(MulticlassFocalLoss(), np.array([0, 1, 2, 2])))  # K starting margins
    3
    """
    loss = check_loss(loss, multilabel=True)
    return _start(loss, _prepared(loss, data, sample_weight, n_classes).init_score(loss))


#: XGBoost's objective for each link a loss states (``loss.link``): it turns
#: ``base_score`` into the starting margins and margins into ``predict``'s output.
_OBJECTIVES = {"logit": "binary:logistic", "softmax": "multi:softprob"}


#: The first XGBoost whose ``base_score`` may be a vector: the multiclass start lives in the model.
_VECTOR_START_XGBOOST = (3, 1)


def _check_vector_start(what: str = "MulticlassFocalLoss") -> None:
    """Refuse, with the fix, a K-output focal model on an XGBoost that cannot hold its start vector."""
    version = tuple(int(part) for part in re.findall(r"\d+", xgb.__version__)[:2])
    if version < _VECTOR_START_XGBOOST:
        raise RuntimeError(
            f"{what} needs xgboost >= 3.1, found {xgb.__version__}: earlier releases take one number "
            "as base_score, so the focal starting margins could not be stored in the model; "
            "pip install -U 'xgboost>=3.1'"
        )


def _focal_params(
    params: Mapping[str, Any], start: float | list[float] | None, n_outputs: int = 1, link: str | None = None
) -> dict[str, Any]:
    """``params`` with the loss's link (and ``num_class`` for K classes) and, unless given, the focal start.

    ``link`` is ``loss.link``; None: ``"logit"`` for one output, ``"softmax"`` for more.
    """
    out = dict(params)
    if link is None:
        link = "logit" if n_outputs == 1 else "softmax"
    softmax = link == "softmax"
    link = _OBJECTIVES[link]
    given = out.get("objective")
    if given is not None and given != link:
        what = "base_score holds the K starting margins" if softmax else "base_score is a probability per output"
        raise ValueError(
            f"objective={given!r} conflicts with the focal loss: gbfocal supplies the gradients and needs "
            f"objective={link!r} for the link (predict returns probabilities, {what}); leave objective unset"
        )
    spw = out.get("scale_pos_weight")
    if spw is not None and float(spw) != 1.0:
        raise ValueError(
            f"scale_pos_weight={spw!r} has no effect with a custom objective (XGBoost applies it inside its "
            "built-in objective only); weigh the classes with the focal loss's alpha or with sample weights"
        )
    out["objective"] = link
    if n_outputs != 1:
        _check_vector_start("MulticlassFocalLoss" if softmax else "MultilabelFocalLoss")
    if softmax:
        out["num_class"] = n_outputs
    if start is not None and out.get("base_score") is None:
        out["base_score"] = start
    return out


def _n_outputs(loss: Loss, given: object, labels_k: Callable[[], int]) -> int:
    """Margins per row for ``loss``: 1, or K from ``num_class``, ``len(alpha)`` or the labels (checked to agree).

    ``num_class`` is XGBoost's softmax parameter; a per-output ``"logit"``
    loss takes its K from the ``(n, K)`` label matrix and refuses it.
    """
    if loss.n_outputs == 1:
        if given is not None and given not in (0, 1):
            raise ValueError(
                f"num_class={given!r} with the binary FocalLoss; for K classes train a gbfocal.MulticlassFocalLoss"
            )
        return 1
    if loss.link != "softmax":
        if given is not None and given != 0:
            raise ValueError(
                f"num_class={given!r} is XGBoost's multiclass (softmax) parameter; {type(loss).__name__} takes K "
                "from the (n, K) label matrix: leave num_class unset"
            )
        return labels_k()
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, numbers.Integral) or given < 2:
            raise ValueError(f"num_class must be an int >= 2 for a multiclass loss, got {given!r}")
        if loss.n_outputs is not None and given != loss.n_outputs:
            raise ValueError(f"num_class={given} but the loss's alpha has {loss.n_outputs} class weights")
        return int(given)
    return loss.n_outputs if loss.n_outputs is not None else labels_k()


def params(
    loss: Loss,
    data: xgb.DMatrix | np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    **xgb_params: Any,
) -> dict[str, Any]:
    """XGBoost parameters for training ``loss`` with :func:`objective`.

    Returns ``xgb_params`` plus the link and the focal-optimal start:

    * :class:`~gbfocal.FocalLoss`: ``objective="binary:logistic"``
      (``base_score`` is a probability and ``predict`` returns σ(margin))
      and ``base_score=σ(init_score)``.
    * :class:`~gbfocal.MulticlassFocalLoss`: ``objective="multi:softprob"``,
      ``num_class=K`` (from ``xgb_params``, ``len(alpha)`` or the labels)
      and ``base_score=`` the K margins ``init_score`` (XGBoost >= 3.1 keeps
      the vector in the model, so the saved model starts there without
      gbfocal); ``predict`` returns softmax(margins).
    * :class:`~gbfocal.MultilabelFocalLoss`: ``objective="binary:logistic"``
      with K outputs (XGBoost reads K from the ``(n, K)`` label matrix;
      ``num_class`` is refused; ``multi_strategy`` passes through) and
      ``base_score=`` the K probabilities σ(init_score).

    ``data`` is the labelled training DMatrix, or the training labels of
    shape ``(n,)`` or ``(n, K)``. A ``base_score`` in ``xgb_params`` is kept. Every other
    parameter, XGBoost's ``gamma`` (min split loss) and ``alpha`` (L1)
    included, passes through untouched.

    ``predict``, σ or softmax of the margins, is not P(y | x) under the
    focal loss: use :func:`predict_posterior` (or the NumPy formula in the
    README, "Serving a saved focal model").

    Examples
    --------
    >>> import numpy as np, xgboost as xgb
    >>> import gbfocal.xgboost as gfx
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> dtrain = xgb.DMatrix(X, label=y)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> full = gfx.params(loss, dtrain, max_depth=3)
    >>> full["objective"], full["max_depth"], 0.0 < full["base_score"] < 1.0
    ('binary:logistic', 3, True)
    """
    loss = check_loss(loss, multilabel=True)
    rows = None

    def labels_k() -> int:
        nonlocal rows
        rows = _prepared(loss, data, sample_weight)
        return rows.n_outputs

    k = _n_outputs(loss, xgb_params.get("num_class"), labels_k)
    if rows is None:
        rows = _prepared(loss, data, sample_weight, None if k == 1 else k)
    return _focal_params(xgb_params, _start(loss, rows.init_score(loss)), k, loss.link)


def _n_threads_of(params: Mapping[str, Any]) -> int | None:
    """The objective's threads from XGBoost's ``nthread`` (alias ``n_jobs``): None or <= 0 is every core."""
    for key in ("nthread", "n_jobs"):
        value = params.get(key)
        if value is None:
            continue
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and value <= 0:
            return None
        return V.check_n_threads(value, f"params[{key!r}]")
    return None


def train(
    loss: Loss,
    params: Mapping[str, Any] | None,
    dtrain: xgb.DMatrix,
    num_boost_round: int = 10,
    *,
    evals: Sequence[tuple[xgb.DMatrix, str]] | None = None,
    objective_device: str = "cpu",
    **train_kwargs: Any,
) -> xgb.Booster:
    """``xgboost.train`` with the focal objective, metric and starting score set.

    Trains on ``dtrain`` (labels in {0, 1} for :class:`~gbfocal.FocalLoss`,
    class indices 0..K-1 for :class:`~gbfocal.MulticlassFocalLoss`, an
    ``(n, K)`` 0/1 matrix for :class:`~gbfocal.MultilabelFocalLoss`;
    optional row weights) with :func:`objective`, and :func:`metric`
    reported for every set in ``evals``, last, so that early stopping
    (``early_stopping_rounds``) minimises it (see "Metrics" in the module
    docstring). A ``custom_metric`` of yours is reported before it;
    ``params["eval_metric"]`` may name rank metrics only (``"auc"``,
    ``"aucpr"``, ``"map"``, ``"ndcg"``, ``"pre"``), anything else, such as
    ``"logloss"``, is refused. ``params`` (None: ``{}``) go
    through :func:`params`: the link (``binary:logistic``, also per label,
    or ``multi:softprob`` with ``num_class``) and ``base_score`` from
    ``loss.init_score`` are added; when continuing from ``xgb_model`` the
    loaded model's starting score is kept. The objective and metric use
    ``nthread`` (or ``n_jobs``) threads when set. ``objective_device`` is
    :func:`objective`'s ``device``. Other keyword arguments go to
    ``xgboost.train``.

    Returns the Booster, with ``loss`` stored in its attribute
    ``"gbfocal_loss"`` (JSON, saved with the model; read it back with
    :func:`booster_loss`). ``predict(output_margin=True)`` gives raw margins,
    ``(n,)`` or ``(n, K)``; ``predict`` gives σ or softmax of them, which is
    not P(y | x) under the focal loss: :func:`predict_posterior` is.

    Examples
    --------
    >>> import numpy as np, xgboost as xgb
    >>> import gbfocal.xgboost as gfx
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> dtrain = xgb.DMatrix(X, label=y)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> dvalid = xgb.DMatrix(X[:50], label=y[:50])
    >>> history = {}
    >>> booster = gfx.train(loss, {"max_depth": 2, "nthread": 1, "eval_metric": "auc"}, dtrain, 10,
    ...                     evals=[(dvalid, "valid")], evals_result=history, verbose_eval=False)
    >>> list(history["valid"])  # rank metrics beside the focal metric, which comes last
    ['auc', 'focal']
    >>> gfx.predict_posterior(None, booster, dvalid).shape  # P(y = 1 | x)
    (50,)
    """
    loss = check_loss(loss, multilabel=True)
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of XGBoost parameters or None, got {type(params).__name__}")
    _check_dmatrix(dtrain, "dtrain")
    for pair in evals or ():
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], str)):
            shown = tuple(type(v).__name__ for v in pair) if isinstance(pair, tuple) else type(pair).__name__
            raise TypeError(f"evals must be a list of (xgb.DMatrix, name) pairs, got an entry of type {shown}")
        _check_dmatrix(pair[0], f"the DMatrix of evals entry {pair[1]!r}")
    if "obj" in train_kwargs:
        raise TypeError("gbfocal.xgboost.train supplies obj itself; call xgboost.train to use another objective")
    n_threads = _n_threads_of(params)
    obj = objective(loss, device=objective_device, n_threads=n_threads)
    k = _n_outputs(loss, params.get("num_class"), lambda: obj.prepared(dtrain).n_outputs)
    rows = obj.prepared(dtrain, None if k == 1 else k)
    continuing = train_kwargs.get("xgb_model") is not None
    full = _focal_params(params, None if continuing else _start(loss, rows.init_score(loss)), k, loss.link)
    _refuse_non_rank_metrics(full.get("eval_metric"), "params['eval_metric']")
    if train_kwargs.get("maximize"):
        raise ValueError(
            "maximize=True would make early stopping maximise the focal loss, which it uses (smaller is "
            "better); leave maximize unset"
        )
    train_kwargs["custom_metric"] = _with_focal(train_kwargs.get("custom_metric"), metric(loss, n_threads=n_threads))
    if full.get("eval_metric") is None:  # else XGBoost adds its default (logloss), which reads sigma(margin)
        full["disable_default_eval_metric"] = True
    booster = xgb.train(full, dtrain, num_boost_round, evals=evals, obj=obj, **train_kwargs)
    _store_loss(booster, loss)
    return booster


# --------------------------------------------------------------------------- the loss inside a booster

LOSS_ATTR = "gbfocal_loss"
"""Booster attribute holding the training loss as JSON, the loss's ``to_dict()``:
``{"loss": "focal" | "multiclass_focal", "alpha", "gamma", "hessian"}``."""


def _store_loss(booster: xgb.Booster, loss: Loss) -> None:
    """Record ``loss`` in ``booster`` (attribute :data:`LOSS_ATTR`), so it travels in saved files."""
    booster.set_attr(**{LOSS_ATTR: json.dumps(loss.to_dict())})


def _loss_from_json(text: str, where: str) -> Loss:
    """The loss of a :data:`LOSS_ATTR` record (:func:`gbfocal.loss_from_dict`), every field checked."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where} is not valid JSON ({err}); the model file is damaged") from None
    try:
        return loss_from_dict(record, where)
    except ValueError as err:
        raise ValueError(f"{err}; got {text!r}, which was not written by gbfocal") from None


def booster_loss(booster: xgb.Booster) -> Loss:
    """The loss a booster was trained with, as :func:`train` stored it.

    Read from the booster's attribute ``"gbfocal_loss"``, which
    :func:`train` and :meth:`XGBFocalClassifier.fit` set and XGBoost saves in
    the model file (JSON and UBJSON): a :class:`~gbfocal.FocalLoss` or a
    :class:`~gbfocal.MulticlassFocalLoss`. Raises ``ValueError`` if the
    booster has none (trained with ``xgboost.train`` by hand, or by an older
    gbfocal).

    Examples
    --------
    >>> import numpy as np, xgboost as xgb
    >>> import gbfocal.xgboost as gfx
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> dtrain = xgb.DMatrix(X, label=y)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> booster = gfx.train(loss, {"max_depth": 2, "nthread": 1}, dtrain, 2)
    >>> gfx.booster_loss(booster) == loss
    True
    """
    if not isinstance(booster, xgb.Booster):
        raise TypeError(f"booster must be an xgboost.Booster, got {type(booster).__name__}")
    text = booster.attr(LOSS_ATTR)
    if text is None:
        raise ValueError(
            f"the booster carries no focal loss (attribute {LOSS_ATTR!r}): it was not trained with "
            "gbfocal.xgboost.train or XGBFocalClassifier; pass the loss it was trained with"
        )
    return _loss_from_json(text, f"the booster's {LOSS_ATTR!r} attribute")


def _best_iteration_range(booster: xgb.Booster) -> tuple[int, int] | None:
    """``(0, best_iteration + 1)`` after early stopping, else None (every tree)."""
    best = booster.attr("best_iteration")
    return None if best is None else (0, int(best) + 1)


def _same_model_of_posterior(a: Loss, b: Loss) -> bool:
    """Whether two losses give the same posterior (the Hessian policy does not enter it)."""
    da, db = a.to_dict(), b.to_dict()
    return all(da[key] == db[key] for key in ("loss", "alpha", "gamma"))


def predict_posterior(loss: Loss | None, booster: xgb.Booster, data: xgb.DMatrix, **predict_kwargs: Any) -> np.ndarray:
    """P(y | x) of a focal-trained booster: ``loss.posterior`` of its raw margins.

    ``booster.predict`` returns σ(margin) (binary) or softmax(margins) (K
    classes), which under focal loss is under-confident; this returns the
    recovered class posterior, float64: shape ``(n,)``, P(y = 1 | x), for
    :class:`~gbfocal.FocalLoss`, ``(n, K)`` with rows summing to 1 for
    :class:`~gbfocal.MulticlassFocalLoss`, ``(n, K)`` per-label P(y_k = 1 | x)
    for :class:`~gbfocal.MultilabelFocalLoss`. ``loss=None`` takes the loss
    stored in the booster (:func:`booster_loss`); a given ``loss`` must have
    the stored α and γ, if there is one. After early stopping the best
    iteration's trees are used (as the scikit-learn API does), unless
    ``iteration_range`` is given. ``predict_kwargs`` go to ``Booster.predict``.

    Examples
    --------
    >>> import numpy as np, xgboost as xgb
    >>> import gbfocal.xgboost as gfx
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> dtrain = xgb.DMatrix(X, label=y)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> booster = gfx.train(loss, {"max_depth": 2, "nthread": 1}, dtrain, 5)
    >>> proba = gfx.predict_posterior(None, booster, dtrain)  # the loss is read from the booster
    >>> proba.shape, proba.dtype, bool(((proba > 0) & (proba < 1)).all())
    ((200,), dtype('float64'), True)
    """
    if loss is None:
        loss = booster_loss(booster)
    else:
        loss = check_loss(loss, multilabel=True)
        stored = booster.attr(LOSS_ATTR) if isinstance(booster, xgb.Booster) else None
        if stored is not None:
            trained = _loss_from_json(stored, f"the booster's {LOSS_ATTR!r} attribute")
            if not _same_model_of_posterior(trained, loss):
                raise ValueError(
                    f"loss={loss!r} differs from the loss the booster was trained with, {trained!r}: the posterior "
                    "would be wrong; pass loss=None to use the booster's own"
                )
    if predict_kwargs.get("iteration_range") is None:
        predict_kwargs["iteration_range"] = _best_iteration_range(booster) or (0, 0)
    margin = booster.predict(data, output_margin=True, **predict_kwargs)
    return loss.posterior(_margins_of(loss, margin))


# --------------------------------------------------------------------------- scikit-learn API


class _FitObjective:
    """The focal objective in the scikit-learn wrapper's signature.

    ``XGBClassifier.fit`` only takes a callable objective of the form
    ``(y_true, y_pred[, sample_weight]) -> (grad, hess)`` and re-reads the
    labels for it every round. The labels and weights it passes are the very
    ones :meth:`XGBFocalClassifier.fit` prepared once, so those are used and
    the per-round copies are ignored.
    """

    def __init__(self, loss: Loss, rows: Any, n_threads: int | None) -> None:
        self.loss, self.rows, self.n_threads = loss, rows, n_threads

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray | None = None):
        if np.shape(y_true)[0] != self.rows.n_rows:  # pragma: no cover - XGBoost trains on the rows given to fit
            raise RuntimeError("XGBoost passed a training set other than the one given to fit")
        return self.rows.gradient_hessian(self.loss, _margins_of(self.loss, y_pred), self.n_threads)


@contextlib.contextmanager
def _swapped(obj: object, **attrs: Any) -> Iterator[None]:
    saved = {name: getattr(obj, name) for name in attrs}
    try:
        for name, value in attrs.items():
            setattr(obj, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(obj, name, value)


@contextlib.contextmanager
def _unchanged_on_error(obj: object) -> Iterator[None]:
    """Put back every attribute of ``obj`` (fitted state and hyper-parameters) if the block raises.

    A shallow copy suffices: fitting replaces the booster, the classes and the
    results with new objects and never changes the old ones in place.
    """
    saved = dict(vars(obj))
    try:
        yield
    except BaseException:
        vars(obj).clear()
        vars(obj).update(saved)
        raise


_FOCAL_PARAMS = ("focal_alpha", "focal_gamma", "focal_hessian", "focal_proba")
_MODEL_ATTR = "gbfocal"  # booster attribute that carries classes_ and the trained loss in saved models
# Written since multiclass: the loss as its to_dict() record. The "focal" key: binary files of gbfocal <= 0.2.
_META_KEYS = frozenset({"classes", "classes_dtype", "loss", "focal_proba", "base_score"})
_OLD_META_KEYS = frozenset({"classes", "classes_dtype", "focal", "base_score"})
_CLASS_DTYPE_KINDS = "biufUO"  # what np.unique of fit's labels can be; "O": strings held as objects (pandas)


#: ``focal_proba`` values. ``"posterior"``: the class posterior recovered from
#: the focal margins (``loss.posterior``). ``"sigmoid"`` and ``"softmax"`` are
#: one switch under two names: the engine's own probability, σ(margin) for two
#: classes and softmax(margins) for K (the two agree for K = 2).
PROBA_MODES = ("posterior", "sigmoid", "softmax")


def _check_fitted(estimator: object) -> None:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)


def _check_proba_mode(mode: object) -> str:
    if not isinstance(mode, str) or mode not in PROBA_MODES:
        raise ValueError(
            f"focal_proba must be one of {list(PROBA_MODES)}, got {mode!r}: 'posterior' for P(y | x) recovered "
            "from the focal margins, 'sigmoid' or 'softmax' (the same switch) for the engine's own σ(margin) / "
            "softmax(margins)"
        )
    return mode


def _classes_from_meta(meta: Mapping[str, Any]) -> np.ndarray:
    """``classes_`` from saved metadata: a 1-D array of K >= 2 distinct labels, sorted, of a plain dtype."""
    values, dtype = meta.get("classes"), meta.get("classes_dtype")
    try:
        dtype = np.dtype(dtype) if isinstance(dtype, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _CLASS_DTYPE_KINDS:
        raise ValueError(f"classes_dtype must name a NumPy dtype of kind {list(_CLASS_DTYPE_KINDS)}, got {dtype!r}")
    if (
        not isinstance(values, list)
        or len(values) < 2
        or not all(isinstance(v, (str, int, float)) and v is not None for v in values)
    ):
        raise ValueError(f"classes must be a list of at least two labels (numbers or strings), got {values!r}")
    try:
        classes = np.array(values, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"classes {values!r} do not fit classes_dtype {dtype}: {err}") from None
    if classes.ndim != 1 or not all(classes[i] < classes[i + 1] for i in range(len(classes) - 1)):
        raise ValueError(f"classes must be distinct labels in sorted order, got {values!r}")
    return classes


def _focal_from_old_meta(meta: Mapping[str, Any]) -> tuple[FocalLoss, str]:
    """The binary loss and ``focal_proba`` of metadata written before multiclass (the ``"focal"`` object)."""
    focal = meta.get("focal")
    if not isinstance(focal, dict) or set(focal) != set(_FOCAL_PARAMS):
        shown = sorted(focal) if isinstance(focal, dict) else focal
        raise ValueError(f"focal must be an object with exactly the keys {sorted(_FOCAL_PARAMS)}, got {shown!r}")
    loss = FocalLoss(
        V.check_alpha(focal["focal_alpha"], "focal_alpha"),
        V.check_gamma(focal["focal_gamma"], "focal_gamma"),
        hessian=V.check_hessian(focal["focal_hessian"], HESSIAN_POLICIES, "focal_hessian"),
    )
    return loss, _check_proba_mode(focal["focal_proba"])


def _booster_outputs(booster: xgb.Booster) -> int:
    """Margins per row of a booster: K for ``num_class = K`` or ``num_target = K`` (multi-label), else 1."""
    param = json.loads(booster.save_config())["learner"]["learner_model_param"]
    return max(int(param.get("num_class", 0)), int(param.get("num_target", 1)), 1)


def _check_loss_fits(loss: Loss, n_classes: int, n_outputs: int) -> None:
    """Refuse a loss that does not fit a booster of ``n_classes`` classes and ``n_outputs`` margins per row.

    The loss's link must be the booster's (softmax for K > 2 classes, else
    logit) and its width ``n_outputs`` (None: any K >= 2).
    """
    link = "softmax" if n_classes > 2 else "logit"
    width = loss.n_outputs
    if loss.link != link or (width is None and n_outputs == 1) or width not in (None, n_outputs):
        what = f"{n_classes} classes" if n_classes > 2 else f"{n_outputs} {link} output(s)"
        raise ValueError(f"the loss {loss!r} does not fit the booster's {what}")


def _loss_from_meta(meta: Mapping[str, Any], n_classes: int, n_outputs: int | None = None) -> tuple[Loss, str]:
    """The trained loss and ``focal_proba`` from saved metadata, checked against the booster's classes and outputs."""
    if "focal" in meta:
        loss, proba = _focal_from_old_meta(meta)
    else:
        loss = loss_from_dict(meta.get("loss"), "loss")
        proba = _check_proba_mode(meta.get("focal_proba"))
    outputs = (1 if n_classes == 2 else n_classes) if n_outputs is None else n_outputs
    _check_loss_fits(loss, n_classes, outputs)
    return loss, proba


def _base_score_from_meta(meta: Mapping[str, Any], n_classes: int, n_outputs: int = 1) -> float | list[float] | None:
    """The ``base_score`` hyper-parameter: None, a probability (binary; a number or K of them for K labels),
    or margins (a number or K of them)."""
    value = meta.get("base_score")
    if value is None:
        return None
    if n_classes == 2:
        values = value if isinstance(value, list) and n_outputs > 1 else [value]
        if len(values) not in (1, n_outputs) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 < v < 1.0 for v in values
        ):
            shape = "a probability in (0, 1)" + (f" or {n_outputs} of them" if n_outputs > 1 else "")
            raise ValueError(f"base_score must be null or {shape}, got {value!r}")
        return [float(v) for v in values] if isinstance(value, list) else float(value)
    values = value if isinstance(value, list) else [value]
    if len(values) not in (1, n_classes) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values
    ):
        raise ValueError(f"base_score must be null, a finite margin or {n_classes} of them, got {value!r}")
    return [float(v) for v in values] if isinstance(value, list) else float(value)


def _label_columns(y: object) -> int | None:
    """K for an ``(n, K)`` label matrix with K >= 2 columns (multi-label), else None (one label per row)."""
    shape = np.asarray(y).shape
    return shape[1] if len(shape) == 2 and shape[1] >= 2 else None


def _indicator_dtype(y: object) -> np.dtype:
    """The dtype ``predict`` returns for a multi-label model: that of fit's indicator matrix (numeric)."""
    dtype = np.asarray(y).dtype
    return dtype if dtype.kind in "biuf" else np.dtype(np.int64)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class XGBFocalClassifier(xgb.XGBClassifier):
    """XGBoost classifier trained with the α-balanced focal loss, two classes or more.

    A :class:`xgboost.XGBClassifier` whose training objective is the focal
    loss (Lin et al. 2017, arXiv:1708.02002): :class:`~gbfocal.FocalLoss` for
    two classes, :class:`~gbfocal.MulticlassFocalLoss` (softmax focal loss)
    for three or more, switched by the labels seen in ``fit`` exactly as
    ``XGBClassifier`` switches to ``multi:softprob``, and
    :class:`~gbfocal.MultilabelFocalLoss` for an ``(n, K)`` 0/1 label
    matrix. The focal parameters carry a ``focal_`` prefix because XGBoost
    already owns ``gamma`` (min split loss) and ``alpha`` (L1
    regularisation); those, and every other XGBoost parameter, keep their
    XGBoost meaning and pass through untouched.

    Parameters
    ----------
    focal_alpha : None, float, sequence, mapping or "balanced", default None
        Class weights α. ``None``: 0.25 on ``classes_[1]`` for two classes
        (Lin et al.'s value with γ = 2), 1 for every class for K > 2, 0.25
        for every label (multi-label). A float: two classes, the weight of
        ``classes_[1]`` (``classes_[0]`` gets ``1 - α``); multi-label, every
        label's. A sequence: one weight per class in ``classes_`` order
        (multi-label: one float in (0, 1) per label column). A mapping
        ``{label: weight}`` naming every class. ``"balanced"``:
        ``w_k = W / (K W_k)`` from the (sample-weighted) class totals
        ``W_k`` of the training labels (scikit-learn's
        ``class_weight="balanced"``; multi-label, per label
        ``W₀ₖ / (W₀ₖ + W₁ₖ)``). For two classes per-class weights become
        ``α = w_1 / (w_0 + w_1)``. See :mod:`gbfocal._estimator`.
    focal_gamma : float >= 0, default 2.0
        Focusing parameter γ: ``FL(p_t) = -α_t (1 - p_t)^γ log p_t``; γ = 0
        is α-weighted log loss.
    focal_hessian : str or None, default None
        Hessian policy (see :class:`~gbfocal.FocalLoss`); ``None`` is each
        loss's own default (``"positive"`` binary and multi-label,
        ``"clamp"`` multiclass).
    focal_proba : {"posterior", "sigmoid", "softmax"}, default "posterior"
        What ``predict_proba`` returns: the class posterior recovered from
        the focal margins (``loss.posterior``), or the engine's own σ(margin)
        / softmax(margins) (``"sigmoid"`` and ``"softmax"`` are one switch),
        under-confident for γ > 0. Read at prediction time.
    **kwargs
        Any :class:`xgboost.XGBClassifier` parameter. ``objective`` must stay
        unset or the link (``"binary:logistic"``; ``"multi:softprob"`` for K
        classes); ``scale_pos_weight`` is refused (XGBoost ignores it with a
        custom objective; use ``focal_alpha`` or ``sample_weight``).
        ``eval_metric`` may name XGBoost's rank metrics (``"auc"``,
        ``"aucpr"``, ``"map"``, ``"ndcg"``, ``"pre"``) and one callable
        ``(y_true, y_score[, sample_weight])`` of raw margins; ``"logloss"``,
        ``"error"``, ``"mlogloss"``, ``"merror"`` and the rest are refused
        (module docstring, "Metrics").

    Notes
    -----
    * ``fit(X, y, sample_weight=None, eval_set=None, ...)``: ``X`` of shape
      ``(n, d)``, ``y`` of shape ``(n,)`` holding any class labels (numbers,
      strings, booleans; ``classes_`` is their sorted array) or ``(n, K)``
      0/1. Boosting starts at the focal-optimal constant margin(s),
      ``loss.init_score`` (``base_score`` = σ(init_score) for two classes,
      the K margins for K classes; XGBoost >= 3.1 stores that vector in the
      model), unless ``base_score`` is given or ``xgb_model`` continues a
      model. Every ``eval_set`` reports the weighted mean focal loss as
      ``"focal"``, after any ``eval_metric``, and ``early_stopping_rounds``
      stops on it.
    * ``predict_proba(X)``: shape ``(n, K)`` (K = 2 for binary), columns
      ordered as ``classes_``, rows summing to 1; ``predict(X)`` the most
      probable class. ``focal_proba="posterior"`` (default) returns the class
      posterior recovered from the focal margins (``loss.posterior``);
      ``"sigmoid"`` or ``"softmax"`` (one switch, two names) returns the
      engine's own σ(margin) / softmax(margins), under-confident for γ > 0.
    * Multi-label: ``fit(X, Y)`` with an ``(n, K)`` 0/1 indicator ``Y``
      (K >= 2) trains :class:`~gbfocal.MultilabelFocalLoss`, as
      ``XGBClassifier`` trains multi-label ``binary:logistic``:
      ``classes_ = [0, 1]``, ``predict_proba(X)`` is ``(n, K)``, each
      label's recovered posterior (``"sigmoid"``: σ(margin)), ``predict(X)``
      the indicator matrix ``predict_proba > 0.5`` in ``Y``'s dtype,
      ``decision_function`` its logit. Every label column needs both
      classes; ``eval_set`` labels are ``(n_eval, K)`` too.
    * ``decision_function(X)``: scikit-learn's convention. Two classes:
      shape ``(n,)``, the log-odds of ``predict_proba(X)[:, 1]`` (> 0 exactly
      where ``predict`` picks ``classes_[1]``). K classes: shape ``(n, K)``,
      ``log predict_proba(X)`` (floored at the smallest normal float64) with
      ``"posterior"``, the raw margins with ``"softmax"``; its argmax is
      ``predict``. Raw margins always: ``predict(X, output_margin=True)``.
    * ``save_model``/``load_model`` keep ``classes_``, the trained loss and
      ``focal_proba``, so a loaded estimator's ``predict_proba`` equals the
      saved one's. The file is an ordinary ``binary:logistic`` or
      ``multi:softprob`` XGBoost model that starts from the focal start:
      plain XGBoost loads it and gives the same raw margins; its ``predict``
      returns σ / softmax of them, *not* this estimator's ``predict_proba``
      (the focal posterior) unless ``focal_proba="softmax"``. To serve
      calibrated probabilities without gbfocal, apply the posterior formula
      to ``predict(output_margin=True)`` (README, "Serving a saved focal
      model").

    Predictions use the loss the model was trained with (``_focal_loss``,
    set by ``fit``); changing ``focal_*`` afterwards takes effect at the next
    ``fit``. ``focal_proba`` only selects the output and is read at
    prediction time. A ``fit`` or ``load_model`` that raises leaves the
    estimator as it was.

    scikit-learn's estimator checks pass (``tests/test_xgboost.py`` runs
    them) except the two sample-weight equivalence checks, which demand
    agreement to 1e-7: XGBoost takes float32 gradients, so a row of weight
    3 contributes round32(3 g) where three copies contribute 3 round32(g),
    and the two models agree to float32 round-off (2.6e-7 measured; a test
    checks the equivalence at 1e-5). XGBoost's own objectives also store
    ``w * g`` as float32.

    References
    ----------
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollár, "Focal Loss for Dense
    Object Detection", ICCV 2017, arXiv:1708.02002.

    Examples
    --------
    >>> import numpy as np
    >>> from gbfocal.xgboost import XGBFocalClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4))
    >>> y = np.where(X[:, 0] + rng.normal(size=300) > 1.0, "fraud", "ok")
    >>> clf = XGBFocalClassifier(focal_alpha="balanced", focal_gamma=2.0, n_estimators=20, max_depth=3, n_jobs=1)
    >>> clf = clf.fit(X[:200], y[:200], eval_set=[(X[200:], y[200:])], verbose=False)
    >>> clf.classes_.tolist()
    ['fraud', 'ok']
    >>> clf.predict_proba(X[:3]).shape
    (3, 2)
    >>> list(clf.evals_result()["validation_0"])
    ['focal']
    >>> three = np.digitize(X[:, 0], [-0.5, 0.5])  # K = 3 classes: the softmax focal loss
    >>> XGBFocalClassifier(n_estimators=5, n_jobs=1).fit(X, three).predict_proba(X[:2]).shape
    (2, 3)
    """

    #: The focal metric while ``fit`` runs (see ``_configure_fit``), else None.
    _gbfocal_fit_metric: FocalMetric | None = None

    def __init__(
        self,
        *,
        focal_alpha: float | Sequence[float] | Mapping[Any, float] | str | None = None,
        focal_gamma: float = 2.0,
        focal_hessian: str | None = None,
        focal_proba: str = "posterior",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.focal_hessian = focal_hessian
        self.focal_proba = focal_proba

    # ------------------------------------------------------------------ parameters
    def focal_loss(self, classes: Any = None) -> Loss:
        """The loss of the current ``focal_*`` parameters for ``classes``.

        ``classes`` defaults to ``classes_`` once fitted, else two classes
        ``[0, 1]``. ``focal_alpha="balanced"`` needs the training labels and
        is resolved in ``fit`` only.
        """
        if classes is None:
            classes = self.classes_ if getattr(self, "_gbfocal_classes", None) is not None else np.arange(2)
        return estimator_loss(self, np.asarray(classes))

    def get_xgb_params(self) -> dict[str, Any]:
        """XGBoost's parameters for the booster: everything but the ``focal_*`` ones."""
        params = super().get_xgb_params()
        for name in _FOCAL_PARAMS:
            params.pop(name, None)
        if self._gbfocal_fit_metric is not None and not _metric_names(self.eval_metric):
            # inside fit, no built-in metric named: without this XGBoost adds logloss, which reads sigma(margin)
            params["disable_default_eval_metric"] = True
        if params.get("objective") == "binary:logistic" and getattr(self, "n_classes_", 2) > 2:
            # XGBClassifier's default stands for the link; set_params hands these to the fitted booster.
            params["objective"] = "multi:softprob"
        return params

    def _configure_fit(self, *args: Any, **kwargs: Any) -> Any:
        # XGBoost's hook that turns eval_metric into xgboost.train's custom_metric (the second item it
        # returns): inside fit the focal metric joins it, last, so that early stopping uses it.
        configured = super()._configure_fit(*args, **kwargs)
        if self._gbfocal_fit_metric is None:
            return configured
        return (configured[0], _with_focal(configured[1], self._gbfocal_fit_metric), *configured[2:])

    def _n_threads(self) -> int | None:
        """Threads for the objective: XGBoost's ``n_jobs``, where None or <= 0 means every core."""
        n_jobs = self.n_jobs
        if n_jobs is None or (isinstance(n_jobs, numbers.Real) and not isinstance(n_jobs, bool) and n_jobs <= 0):
            return None
        return V.check_n_threads(n_jobs, "n_jobs")

    def _fitted_loss(self) -> Loss | None:
        """The loss the fitted model was trained with; None for a plain XGBoost model loaded from a file."""
        _check_fitted(self)
        try:
            return self._focal_loss
        except AttributeError:  # unpickled from gbfocal 0.1, which kept no loss: its parameters are the best guess
            return self.focal_loss()

    def _trained_loss(self) -> Loss:
        """The loss the fitted model was trained with, for the posterior."""
        loss = self._fitted_loss()
        if loss is None:
            raise ValueError(
                "this model was loaded from a plain XGBoost file and was not trained with a focal loss, so there "
                "is no focal posterior to recover; use focal_proba='softmax' (or 'sigmoid')"
            )
        return loss

    # ------------------------------------------------------------------ labels
    @property
    def classes_(self) -> np.ndarray:
        """The class labels seen in ``fit``, sorted; for two classes ``classes_[1]`` is the positive class."""
        classes = getattr(self, "_gbfocal_classes", None)
        if classes is None:  # inside XGBClassifier.fit, which expects 0..n_classes-1
            return np.arange(self.n_classes_)
        return classes

    @staticmethod
    def _labels_1d(y: object, name: str) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D with one class label per row, got shape {y.shape}")
        return y

    def _encode(self, y: object, classes: np.ndarray, name: str) -> np.ndarray:
        y = self._labels_1d(y, name)
        codes = np.searchsorted(classes, y)
        codes[codes == classes.shape[0]] = 0
        unseen = classes[codes] != y
        if unseen.any():
            raise ValueError(
                f"{name} contains labels {np.unique(y[unseen])[:5].tolist()} not among the training classes "
                f"{classes.tolist()}"
            )
        return codes.astype(np.float64)

    def _fit_classes(self, y: object) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.utils.multiclass import check_classification_targets, type_of_target

        y = self._labels_1d(y, "y")
        check_classification_targets(y)
        kind = type_of_target(y, input_name="y")
        classes = np.unique(y)
        shown = classes[:5].tolist()
        if classes.shape[0] < 2:
            raise ValueError(
                f"y has 1 class ({shown}); XGBFocalClassifier needs at least two classes "
                "(a classifier has nothing to learn from one)"
            )
        if kind not in ("binary", "multiclass"):  # pragma: no cover - check_classification_targets refuses the rest
            raise ValueError(f"y must hold class labels, got a {kind} target")
        return classes, self._encode(y, classes, "y")

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: Any,
        y: Any,
        *,
        sample_weight: Any = None,
        eval_set: Sequence[tuple[Any, Any]] | None = None,
        sample_weight_eval_set: Sequence[Any] | None = None,
        xgb_model: Any = None,
        **kwargs: Any,
    ) -> XGBFocalClassifier:
        """Fit the booster with the focal loss on ``X`` (shape ``(n, d)``) and labels ``y`` (``(n,)`` or ``(n, K)``).

        Two classes train :class:`~gbfocal.FocalLoss`, more train
        :class:`~gbfocal.MulticlassFocalLoss`, an ``(n, K)`` 0/1 matrix
        :class:`~gbfocal.MultilabelFocalLoss` (see the class docstring for
        ``focal_alpha``). ``sample_weight`` (shape ``(n,)``) weighs rows;
        ``eval_set`` is a list of ``(X_eval, y_eval)`` with labels among
        those of ``y``; other keyword arguments (``verbose``,
        ``base_margin``, ``base_margin_eval_set``, ``feature_weights``) go to
        :meth:`xgboost.XGBClassifier.fit`. If it raises, the estimator keeps
        its previous fitted state.
        """
        with _unchanged_on_error(self):
            return self._fit(X, y, sample_weight, eval_set, sample_weight_eval_set, xgb_model, kwargs)

    def _fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any,
        eval_set: Sequence[tuple[Any, Any]] | None,
        sample_weight_eval_set: Sequence[Any] | None,
        xgb_model: Any,
        kwargs: dict[str, Any],
    ) -> XGBFocalClassifier:
        # Validated up front so a bad value names the parameter, not XGBoost's internals.
        check_focal_params(self)
        _check_proba_mode(self.focal_proba)
        _refuse_non_rank_metrics(self.eval_metric, "eval_metric")
        n_labels = _label_columns(y)
        if n_labels is None:
            classes, codes = self._fit_classes(y)
            rows_w = None if sample_weight is None else V.as_weights(sample_weight, codes.shape[0])
            loss = estimator_loss(self, classes, codes, rows_w)
            k = 1 if classes.shape[0] == 2 else classes.shape[0]
        else:  # an (n, K) indicator matrix: one focal loss per label, as XGBClassifier trains multi-label
            codes = as_label_matrix(y, "y")
            classes = np.array([0, 1], dtype=_indicator_dtype(y))
            rows_w = None if sample_weight is None else V.as_weights(sample_weight, codes.shape[0])
            loss = estimator_multilabel_loss(self, codes, rows_w)
            k = n_labels
        # XGBClassifier's default "binary:logistic" stands for the link; it switches to multi:softprob for K > 2.
        given = None if k != 1 and self.objective == "binary:logistic" else self.objective
        _focal_params({"objective": given, "scale_pos_weight": self.scale_pos_weight}, None, k, loss.link)
        if eval_set is not None:
            eval_set = [(X_eval, self._eval_labels(y_eval, classes, n_labels)) for X_eval, y_eval in eval_set]
        n_threads = self._n_threads()
        rows = loss.prepared(codes, sample_weight, classes.shape[0] if n_labels is None else n_labels)
        if rows.w.shape[0] and not rows.w.any():
            raise ValueError("sample_weight is zero for every row: there is nothing to fit")
        # a label column of one class is refused even where the start is given (nothing to learn there)
        init = rows.init_score(loss) if n_labels is not None else None
        start = self.base_score
        if start is None and xgb_model is None:
            start = _start(loss, rows.init_score(loss) if init is None else init)
        self._gbfocal_classes = None
        # XGBClassifier.fit takes its objective and base_score from these attributes only; they are set
        # for the call and restored afterwards, so get_params() never changes. _configure_fit adds the metric.
        with _swapped(
            self,
            objective=_FitObjective(loss, rows, n_threads),
            base_score=start,
            _gbfocal_fit_metric=FocalMetric(loss, n_threads=n_threads),
        ):
            super().fit(
                X,
                codes,
                sample_weight=sample_weight,
                eval_set=eval_set,
                sample_weight_eval_set=sample_weight_eval_set,
                xgb_model=xgb_model,
                **kwargs,
            )
        self._gbfocal_classes = classes
        self._gbfocal_n_labels = n_labels
        self._focal_loss = loss
        _store_loss(self.get_booster(), loss)
        return self

    def _eval_labels(self, y: object, classes: np.ndarray, n_labels: int | None) -> np.ndarray:
        """An ``eval_set``'s labels as fit encodes them: class codes, or the ``(n, K)`` indicator matrix."""
        if n_labels is None:
            return self._encode(y, classes, "eval_set labels")
        labels = as_label_matrix(y, "eval_set labels")
        if labels.shape[1] != n_labels:
            raise ValueError(f"eval_set labels have {labels.shape[1]} label columns but y has {n_labels}")
        return labels

    def _n_labels(self) -> int | None:
        """K for a model fitted on an ``(n, K)`` label matrix (multi-label), else None."""
        return getattr(self, "_gbfocal_n_labels", None)

    # ------------------------------------------------------------------ predict
    def _raw_margin(self, X: Any, **predict_kwargs: Any) -> np.ndarray:
        """The booster's raw margins, shape ``(n,)`` (two classes) or ``(n, K)``, float32."""
        return XGBModel.predict(self, X, output_margin=True, **predict_kwargs)

    def _proba_from_margin(self, margin: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, K)``, float64, from the raw margins (see ``focal_proba``)."""
        mode = _check_proba_mode(self.focal_proba)
        if self._n_labels() is not None:  # one probability per label, (n, K)
            if mode != "posterior":
                return expit(np.asarray(margin, dtype=np.float64))
            return self._trained_loss().posterior(np.asarray(margin))
        if self.n_classes_ == 2:
            p = self._positive_posterior(margin)
            return np.column_stack([1.0 - p, p])
        if mode != "posterior":
            return _softmax(margin)
        return self._trained_loss().posterior(np.asarray(margin))

    def decision_function(
        self, X: Any, *, validate_features: bool = True, base_margin: Any = None, iteration_range: Any = None
    ) -> np.ndarray:
        """Scores whose argmax (two classes: sign) is ``predict``: scikit-learn's convention.

        Two classes: log-odds of ``predict_proba(X)[:, 1]``, shape ``(n,)``
        (> 0 exactly where ``predict`` gives ``classes_[1]``): the raw margin
        with ``focal_proba="sigmoid"``/``"softmax"``, ``FocalLoss.posterior_margin``
        of it with ``"posterior"``. K classes: shape ``(n, K)``, the raw
        margins with ``"softmax"``/``"sigmoid"``, ``log predict_proba(X)``
        (floored at the smallest normal float64) with ``"posterior"``. The raw
        margins themselves: ``predict(X, output_margin=True)``.
        """
        mode = _check_proba_mode(self.focal_proba)
        margin = self._raw_margin(
            X, validate_features=validate_features, base_margin=base_margin, iteration_range=iteration_range
        )
        if mode != "posterior":
            return margin
        if self._n_labels() is not None:
            return self._trained_loss().posterior_margin(np.asarray(margin))
        if self.n_classes_ == 2:
            return self._trained_loss().posterior_margin(np.ravel(margin))
        proba = self._trained_loss().posterior(np.asarray(margin))
        return np.log(np.maximum(proba, np.finfo(np.float64).tiny))

    def _positive_posterior(self, margin: np.ndarray) -> np.ndarray:
        """P(y = classes_[1] | x) from the raw margins of a binary model, shape ``(n,)``, float64.

        ``focal_proba="posterior"`` (default): :meth:`FocalLoss.posterior`, the
        class posterior that the focal-trained margin estimates (σ(margin)
        is pulled towards 1/2 by the focal loss and shifted by α);
        ``"sigmoid"``/``"softmax"``: σ(margin), what the booster's own
        ``predict`` returns. The loss is the one the model was trained with,
        not the current ``focal_*`` parameters.
        """
        if _check_proba_mode(self.focal_proba) != "posterior":
            return expit(np.asarray(np.ravel(margin), dtype=np.float64))
        return self._trained_loss().posterior(np.ravel(margin))

    def predict_proba(
        self, X: Any, validate_features: bool = True, base_margin: Any = None, iteration_range: Any = None
    ) -> np.ndarray:
        """Class probabilities, shape ``(n, K)`` (K = 2 for binary), float64, columns in the order of ``classes_``."""
        margin = self._raw_margin(
            X, validate_features=validate_features, base_margin=base_margin, iteration_range=iteration_range
        )
        return self._proba_from_margin(margin)

    def predict(
        self,
        X: Any,
        *,
        output_margin: bool = False,
        validate_features: bool = True,
        base_margin: Any = None,
        iteration_range: Any = None,
    ) -> np.ndarray:
        """Predicted class labels (from ``classes_``), shape ``(n,)``; raw margins if ``output_margin``."""
        kwargs = {"validate_features": validate_features, "base_margin": base_margin}
        if output_margin:
            return self._raw_margin(X, iteration_range=iteration_range, **kwargs)
        proba = self.predict_proba(X, iteration_range=iteration_range, **kwargs)
        if self._n_labels() is not None:  # the indicator matrix, in the dtype of fit's labels
            return self.classes_[(proba > 0.5).astype(np.intp)]
        return self.classes_[np.argmax(proba, axis=1)]

    # ------------------------------------------------------------------ persistence
    def save_model(self, fname: Any) -> None:
        """Save as an XGBoost model; ``classes_``, the trained loss and ``focal_proba`` ride along.

        They are stored as JSON in the booster attribute ``"gbfocal"`` of the
        file only (the fitted booster is left as it was), next to the
        ``"gbfocal_loss"`` attribute that :func:`booster_loss` reads.
        Raises ``NotFittedError`` before ``fit``.
        """
        loss = self._fitted_loss()
        if loss is None:  # loaded from a plain XGBClassifier file: saved as the same plain model
            super().save_model(fname)
            return
        classes = self.classes_
        start = self.base_score
        if start is not None and not isinstance(start, numbers.Real):
            start = [float(v) for v in start]
        meta = {
            "classes": classes.tolist(),
            "classes_dtype": classes.dtype.str,
            "loss": loss.to_dict(),
            "focal_proba": _check_proba_mode(self.focal_proba),
            "base_score": start if start is None or isinstance(start, list) else float(start),
        }
        booster = self.get_booster()
        booster.set_attr(**{_MODEL_ATTR: json.dumps(meta)})
        try:
            super().save_model(fname)
        finally:
            booster.set_attr(**{_MODEL_ATTR: None})

    def load_model(self, fname: Any) -> None:
        """Load a model saved by :meth:`save_model`, :func:`train` or a plain ``XGBClassifier``.

        The saved metadata is checked field by field (the loss,
        ``focal_proba``, ``base_score`` and ``classes_``: K distinct sorted
        labels, K the model's classes); anything else in it is refused; files
        of earlier gbfocal versions (binary) are read too. A booster saved
        from :func:`train` gets ``classes_ = [0, ..., K-1]`` and its stored
        loss; a plain ``XGBClassifier`` model gets ``classes_ = [0, ...,
        K-1]`` and ``focal_proba="softmax"`` (its own probabilities). If
        loading fails, the estimator is left as it was.
        """
        with _unchanged_on_error(self):
            # XGBModel.load_model loads into the fitted booster in place; a new one keeps the old intact.
            vars(self).pop("_Booster", None)
            super().load_model(fname)
            booster = self.get_booster()
            meta_str = booster.attr(_MODEL_ATTR)
            booster.set_attr(**{_MODEL_ATTR: None})
            n_classes = self.n_classes_
            n_outputs = _booster_outputs(booster)
            self._gbfocal_n_labels = n_outputs if n_classes == 2 and n_outputs > 1 else None
            if meta_str is None:
                self._load_booster_only(booster, n_classes, n_outputs)
                return
            where = f"the model file's {_MODEL_ATTR!r} attribute"
            try:
                meta = json.loads(meta_str)
                if not isinstance(meta, dict) or not (set(meta) == _META_KEYS or set(meta) == _OLD_META_KEYS):
                    shown = sorted(meta) if isinstance(meta, dict) else type(meta).__name__
                    raise ValueError(f"expected an object with the keys {sorted(_META_KEYS)}, got {shown}")
                classes = _classes_from_meta(meta)
                if len(classes) != n_classes:
                    raise ValueError(f"it names {len(classes)} classes but the booster has {n_classes}")
                loss, proba = _loss_from_meta(meta, n_classes, n_outputs)
                start = _base_score_from_meta(meta, n_classes, n_outputs)
            except (TypeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
                raise ValueError(f"{where} is not valid gbfocal metadata: {err}") from None
            if booster.attr(LOSS_ATTR) is not None and booster_loss(booster) != loss:
                raise ValueError(f"{where} and the booster's {LOSS_ATTR!r} name different losses")
            self._gbfocal_classes = classes
            self._set_trained_loss(booster, loss)
            self.focal_proba = proba
            # XGBModel.load_model copied the fitted base_score into the hyper-parameter; a refit must
            # compute its own starting score again, as the saved estimator would have.
            self.base_score = start

    def _set_trained_loss(self, booster: xgb.Booster, loss: Loss) -> None:
        """Keep ``loss`` for prediction and in the booster, and set the ``focal_*`` parameters that give it."""
        self._focal_loss = loss
        _store_loss(booster, loss)
        record = loss.to_dict()
        self.focal_alpha = record["alpha"]
        self.focal_gamma, self.focal_hessian = loss.gamma, loss.hessian

    def _load_booster_only(self, booster: xgb.Booster, n_classes: int, n_outputs: int) -> None:
        """State for a file without estimator metadata: from :func:`train`, or a plain XGBClassifier."""
        self._gbfocal_classes = np.arange(n_classes)
        if booster.attr(LOSS_ATTR) is None:  # plain XGBClassifier: logloss margins, σ/softmax is its probability
            self._focal_loss = None
            self.focal_proba = "sigmoid" if n_classes == 2 else "softmax"
            return
        loss = booster_loss(booster)
        try:
            _check_loss_fits(loss, n_classes, n_outputs)
        except ValueError:
            raise ValueError(
                f"the booster's {LOSS_ATTR!r} holds {loss!r}, which does not fit its {n_classes} classes"
                + (f" and {n_outputs} outputs" if n_outputs > 1 else "")
            ) from None
        self._set_trained_loss(booster, loss)
        self.focal_proba = "posterior"
        self.base_score = None  # as above: a refit computes its own starting score

    # ------------------------------------------------------------------ tags
    def _more_tags(self) -> dict[str, bool]:
        tags = super()._more_tags()
        tags["multilabel"] = True
        return tags

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.classifier_tags.multi_class = True
        return tags
