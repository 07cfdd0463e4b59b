"""LightGBM adapter: focal loss as a LightGBM objective, metric and classifier.

Native API::

    import lightgbm as lgb
    from gbfocal import FocalLoss, MulticlassFocalLoss
    import gbfocal.lightgbm as gfl

    loss = FocalLoss(alpha=0.25, gamma=2.0)
    booster = gfl.train(loss, params, dtrain, 200, valid_sets=[dvalid])
    margin = booster.predict(X, raw_score=True)        # raw margins, start included
    proba = gfl.predict_posterior(loss, booster, X)    # P(y = 1 | x), shape (n,)
    booster.save_model("focal.txt")
    proba = gfl.predict_posterior(None, lgb.Booster(model_file="focal.txt"), X)  # loss read from the file

    # K classes (labels 0..K-1): K trees per round, margins and posterior (n, K)
    loss = MulticlassFocalLoss(alpha=[1.0, 1.0, 4.0], gamma=2.0)   # num_class = 3 is set from the loss
    booster = gfl.train(loss, params, dtrain, 200, valid_sets=[dvalid])
    proba = gfl.predict_posterior(None, booster, X)    # P(y = k | x), rows summing to 1

``objective(loss)`` and ``metric(loss)`` also plug into ``lgb.train``
directly (``params["objective"] = gfl.objective(loss)``, ``feval=gfl.metric(loss)``,
plus ``params["num_class"] = K`` for K classes); boosting then starts from a
margin of 0. LightGBM 4 hands a K-class objective its scores as ``(n, K)``
and takes gradients back in that shape; so do these.

Self-contained models
---------------------
With a callable objective LightGBM does not boost from an average, and a
Dataset's ``init_score`` is used in training but not saved in the model. The
focal-optimal start (:meth:`FocalLoss.init_score`) therefore has to live in the
trees. :func:`train` adds it to the scores its objective, focal metric and
``feval`` functions receive, so every round and every validation metric sees
the right margins while the caller's Datasets stay untouched (several threads
may train on one Dataset), then adds it to every leaf of the first tree with
``Booster.set_leaf_output`` (K classes: ``start[k]`` to the first tree of
class k, tree ``k``). That is what LightGBM's own ``boost_from_average``
does (``Tree::AddBias`` on the first tree), so ``booster.predict(X, raw_score=True)``,
``save_model``/``Booster(model_file=...)``, pickling, SHAP values
(``pred_contrib``) and continued training (``init_model=booster``) all include
the start, with nothing added by the user. :class:`LGBMFocalClassifier` does
the same through the ``init_score`` of the Datasets it builds itself.

Every callable here receives raw float64 margins (LightGBM applies no link
function with a custom objective) and reads labels and weights from the
Dataset; they are validated and converted once per data set, not every round.
One objective or metric object may serve several trainings at once.

Metrics (the same rule as :mod:`gbfocal.xgboost`)
--------------------------------------------------
* The focal metric, ``"focal"`` (the weighted mean focal loss of the
  margins, :class:`FocalMetric`), is always reported for every validation
  set, by :func:`train` and by :class:`LGBMFocalClassifier`, and it is the
  metric early stopping uses: gbfocal moves it to the front of each round's
  results and sets ``first_metric_only=True``, both for
  ``early_stopping_round`` in the parameters and for ``lgb.early_stopping``
  callbacks (a copy with ``first_metric_only=True`` replaces yours; yours is
  not changed). ``feval`` / callable ``eval_metric`` values are reported
  after it.
* LightGBM's rank metrics are allowed beside it: ``auc``,
  ``average_precision``, ``map``, ``ndcg`` (and their aliases) and, for K
  classes, ``auc_mu``. They depend only on the order of the scores, so the
  raw margins and :func:`train`'s start do not change them; for two classes
  the margins order the rows as the focal posterior does.
* Every other built-in metric (``binary_logloss``, ``binary_error``,
  ``multi_logloss``, ``multi_error``, ``l2``...) is refused with a
  ``ValueError``: with a custom objective LightGBM applies no link and reads
  the raw margins as probabilities (``binary_logloss`` of a model whose true
  log loss is 0.50 reads 3.47), so its value, and early stopping on it,
  would be wrong. Compute such scores on :func:`predict_posterior` /
  ``predict_proba`` after training.

Probabilities
-------------
A model trained with focal loss has no link saved in it, so ``booster.predict``
returns raw margins whatever ``raw_score`` says, also for plain LightGBM
reading the saved file. σ(margin) (:func:`sigmoid`), or the softmax of K
margins, is not the class posterior under focal loss (pulled towards
uniform, shifted by α); :func:`predict_posterior` and
:class:`LGBMFocalClassifier` (by default) return the posterior recovered by
the loss's ``posterior``, as the XGBoost adapter does. :func:`train` and
the classifier record the loss (``loss.to_dict()``) in the model text, so
``predict_posterior(None, lgb.Booster(model_file=path), X)`` needs no loss.
"""

from __future__ import annotations

import copy
import inspect
import json
import numbers
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _ConfigAliases

from gbfocal._estimator import check_focal_params, estimator_loss
from gbfocal._loss import FocalLoss, ThreadBuffers, check_loss, loss_from_dict
from gbfocal._multiclass import MulticlassFocalLoss
from gbfocal._validation import as_weights, check_n_threads

#: The losses this adapter takes (it asks them for ``n_outputs``, never for their class).
Loss = FocalLoss | MulticlassFocalLoss
#: A start: one margin (binary, or the same for every class) or one per class, shape (K,).
Start = float | np.ndarray

__all__ = [
    "PROBA_MODES",
    "FocalMetric",
    "FocalObjective",
    "LGBMFocalClassifier",
    "metric",
    "objective",
    "predict_posterior",
    "sigmoid",
    "train",
]

_FOCAL_PARAMS = ("focal_alpha", "focal_gamma", "focal_hessian", "focal_proba")
#: What ``LGBMFocalClassifier(focal_proba=...)`` returns as probabilities: the recovered posterior, or the
#: engine's usual link of the margins (``"sigmoid"`` binary only; ``"softmax"`` any K, for K = 2 the sigmoid).
PROBA_MODES = ("posterior", "sigmoid", "softmax")


# ---------------------------------------------------------------------- helpers
def _aliases(name: str) -> set[str]:
    # LightGBM's own alias table, read from the C library (LGBM_DumpParamAliases).
    return _ConfigAliases.get(name)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _lightgbm_threads(n_threads: object, name: str) -> int | None:
    """A thread count in LightGBM's convention (0 or less: every core) as ``check_n_threads`` takes it."""
    if isinstance(n_threads, numbers.Integral) and not isinstance(n_threads, bool) and n_threads <= 0:
        return None
    return check_n_threads(n_threads, name)


def _param(params: dict, name: str) -> Any:
    """A parameter's value under its main name or any alias (the main name wins, as in LightGBM)."""
    for key in [name, *sorted(_aliases(name) - {name})]:
        if params.get(key) is not None:
            return params[key]
    return None


def _threads_from_params(params: dict) -> int | None:
    """The gradient kernel's threads from LightGBM's ``num_threads`` (or an alias); None: every core."""
    return _lightgbm_threads(_param(params, "num_threads"), "params['num_threads']")


def _refuse_random_forest(params: dict) -> None:
    if str(_param(params, "boosting")).strip().lower() in ("rf", "random_forest"):
        raise ValueError("LightGBM's random forest mode (boosting='rf') does not support custom objectives")


def _is_true(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "+")


def _uses_linear_trees(params: dict) -> bool:
    return _is_true(_param(params, "linear_tree"))


def _metric_names(value: object) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    names: list[str] = []
    for item in items:
        if isinstance(item, str):
            names.extend(part.strip().lower() for part in item.split(","))
    return names


#: LightGBM's metrics (and their aliases) that depend only on the order of the scores: they read the same on
#: raw margins as on probabilities, with or without :func:`train`'s start (a constant per class, which the
#: objective adds to the scores it receives, not LightGBM). Then the names that ask for no metric.
_RANK_METRICS = frozenset(
    {
        "auc",
        "auc_mu",
        "average_precision",
        "map",
        "mean_average_precision",
        "ndcg",
        "lambdarank",
        "rank_xendcg",
        "xendcg",
        "xe_ndcg",
        "xe_ndcg_mart",
        "xendcg_mart",
    }
)
_NO_METRIC = frozenset({"none", "null", "na", "custom", ""})


def _refuse_non_rank_metrics(value: object, where: str) -> None:
    """Refuse every built-in metric in ``value`` (a name, comma-separated names or a list) but rank metrics.

    With a custom objective LightGBM applies no link: ``binary_logloss``,
    ``multi_logloss``, ``binary_error``, ``l2``... read the raw margins as
    probabilities or targets (``binary_logloss`` of a model whose true log
    loss is 0.50 reads 3.47), and ``multi_error`` ranks the margins, which
    under per-class α need not rank as the posterior ``predict`` uses.
    """
    bad = [m for m in _metric_names(value) if m not in _RANK_METRICS | _NO_METRIC]
    if bad:
        raise ValueError(
            f"{where} asks for {bad}, which LightGBM computes on the raw margins as if they were probabilities "
            "when the objective is custom (there is no link), so its value and early stopping on it would be "
            "wrong. The focal metric ('focal') is always reported and early stopping uses it; rank metrics "
            "('auc', 'average_precision', 'map', 'ndcg', 'auc_mu') are allowed beside it; for log loss, error or "
            "Brier score evaluate predict_proba / "
            "gbfocal.lightgbm.predict_posterior yourself."
        )


_refuse_probability_metrics = _refuse_non_rank_metrics  # the name gbfocal.dask calls it by


def _refuse_metric_params(params: dict, where: str = "params['{key}']") -> None:
    """:func:`_refuse_non_rank_metrics` for ``params``' metric under every alias (``where`` names it)."""
    for key in sorted(_aliases("metric")):
        _refuse_non_rank_metrics(params.get(key), where.format(key=key))


class _FocalFirst:
    """Callback: move the focal metric to the front of each round's results, so it is LightGBM's first metric.

    LightGBM lists built-in metrics before ``feval`` ones; its early stopping
    with ``first_metric_only=True`` (which gbfocal sets) watches the first
    metric only. Runs after every round before any other callback; the
    results are the list every callback of the round shares.
    """

    before_iteration = False
    order = -1_000_000  # before any user callback, record_evaluation and early_stopping

    def __call__(self, env: Any) -> None:
        if env.evaluation_result_list:
            env.evaluation_result_list.sort(key=lambda result: result[1] != FocalMetric.name)


def _focal_decides(callbacks: Sequence[Callable] | None) -> list[Callable]:
    """``callbacks`` plus :class:`_FocalFirst`, each ``lgb.early_stopping`` replaced by a copy that watches
    the first metric only (the focal metric); the caller's callbacks are not changed."""
    out: list[Callable] = []
    for cb in _as_list(callbacks):
        if isinstance(cb, lgb.callback._EarlyStoppingCallback) and not cb.first_metric_only:
            cb = copy.copy(cb)
            cb.first_metric_only = True
        out.append(cb)
    return [*out, _FocalFirst(), _SkipObjectiveReset()]


def _first_metric_only(params: dict) -> dict:
    """``params`` with ``first_metric_only=True`` (every alias replaced): ``early_stopping_round`` watches focal."""
    for key in _aliases("first_metric_only"):
        params.pop(key, None)
    params["first_metric_only"] = True
    return params


#: LightGBM's class weighting parameters and their neutral values. They act inside LightGBM's built-in
#: ``binary`` objective (balanced bagging too), so with a custom objective they change nothing.
_IGNORED_CLASS_WEIGHTS = {
    "scale_pos_weight": 1.0,
    "is_unbalance": False,
    "pos_bagging_fraction": 1.0,
    "neg_bagging_fraction": 1.0,
}


def _is_neutral(value: object, neutral: object) -> bool:
    if isinstance(neutral, bool):
        return not _is_true(value)
    try:
        return float(value) == neutral  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _refuse_ignored_class_weights(params: dict, where: str = "params") -> None:
    """Refuse LightGBM's class weighting parameters (any alias, any non-neutral value) with a focal objective.

    ``scale_pos_weight``, ``is_unbalance``, ``pos_bagging_fraction`` and
    ``neg_bagging_fraction`` only act in LightGBM's built-in binary
    objective: with a custom one the trees come out identical (measured), so
    accepting them would silently drop the user's class weighting. The
    focal loss weighs the positive class with ``alpha`` (``focal_alpha``);
    per-row weights go in ``sample_weight`` / ``Dataset(weight=...)``.
    """
    given = sorted(
        key
        for name, neutral in _IGNORED_CLASS_WEIGHTS.items()
        for key in _aliases(name)
        if params.get(key) is not None and not _is_neutral(params[key], neutral)
    )
    if given:
        raise ValueError(
            f"{where} sets {given}, which LightGBM ignores with a custom objective such as the focal loss (the "
            "model would be the same without them). Weigh the positive class with the focal alpha "
            "(FocalLoss(alpha=...), focal_alpha=... in the estimators) or give per-row weights "
            "(sample_weight=..., lgb.Dataset(weight=...), class_weight=... in the estimators)."
        )


def _check_start(init_score: object) -> Start | str:
    """``"focal"``, a finite number, or (K classes) a 1-D sequence of finite numbers, one per class."""
    what = "init_score must be 'focal', a finite number or (K classes) a sequence of K finite numbers"
    if isinstance(init_score, str):
        if init_score != "focal":
            raise ValueError(f"{what}, got {init_score!r}")
        return init_score
    if isinstance(init_score, (Sequence, np.ndarray)):
        values = np.asarray(init_score)
        if values.ndim != 1 or values.dtype.kind not in "iuf" or not np.isfinite(values).all():
            raise ValueError(f"{what}, got {init_score!r}")
        return values.astype(np.float64)
    if isinstance(init_score, bool) or not isinstance(init_score, numbers.Real) or not np.isfinite(init_score):
        raise TypeError(f"{what}, got {init_score!r}")
    return float(init_score)


class _RowsCache:
    """One prepared-rows object (``loss.prepared(label, weight)``) per label array, dropped when that array is.

    LightGBM hands a callback the same label (and weight) array object every
    round, so object identity is the key: labels and weights are validated and
    converted on the first round only. ``Dataset.set_label``/``set_weight``
    create new arrays, which are picked up. Safe to share between threads
    (one objective used by several ``lgb.train`` calls at once): look-up and
    insertion happen under a lock, and a :class:`PreparedRows` keeps its
    gradient buffers per thread. Not pickled.
    """

    __slots__ = ("_entries", "_lock")

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref, Any, int | None, Any]] = {}
        self._lock = threading.Lock()

    def get(self, loss: Loss, label: Any, weight: Any, n_classes: int | None) -> Any:
        """``loss.prepared(label, weight, n_classes)``, made on the first call for this label array.

        ``n_classes``: the K of ``(n, K)`` margins, None for one margin per row.
        """
        key = id(label)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0]() is label and entry[1] is weight and entry[2] == n_classes:
                return entry[3]
            rows = loss.prepared(label, weight, n_classes)
            try:
                ref = weakref.ref(label, _Forget(self._entries, key))
            except TypeError:  # a list or similar: nothing to key on, so prepare every call
                return rows
            self._entries[key] = (ref, weight, n_classes, rows)
            return rows


class _Forget:
    """Weakref callback: drop a cache entry when its label array dies (only that entry, not a newer one)."""

    __slots__ = ("entries", "key")

    def __init__(self, entries: dict, key: int) -> None:
        self.entries, self.key = entries, key

    def __call__(self, ref: weakref.ref) -> None:
        # No lock: the callback may run inside get() (garbage collection) on the thread holding it.
        entry = self.entries.get(self.key)
        if entry is not None and entry[0] is ref:
            self.entries.pop(self.key, None)


def _constructed(ds: lgb.Dataset) -> bool:
    # A construction that failed in C++ leaves a NULL ctypes handle behind, not None.
    handle = getattr(ds, "_handle", None)
    return handle is not None and getattr(handle, "value", handle) is not None


def _label_and_weight(ds: lgb.Dataset) -> tuple[Any, Any]:
    """The Dataset's label and weight objects; the same objects every round once it is constructed."""
    if _constructed(ds):
        return ds.get_label(), ds.get_weight()
    return ds.label, ds.weight  # as given; LightGBM has not read them yet


def _check_width(loss: Loss, n_margins: int, where: str) -> None:
    """Refuse ``n_margins`` margins per row (LightGBM's ``num_class``, 1 for binary) that ``loss`` cannot take."""
    width = loss.n_outputs  # 1 (binary), K, or None (a K-class loss that takes K from the data)
    if width == 1 and n_margins != 1:
        raise ValueError(
            f"{where} has {n_margins} margins per row (num_class = {n_margins}), but {loss!r} is binary, one margin "
            "per row: remove num_class, or use gbfocal.MulticlassFocalLoss"
        )
    if width != 1 and n_margins == 1:
        raise ValueError(
            f"{where} has one margin per row (num_class = 1), but {loss!r} is a K-class loss: set "
            "params['num_class'] = K (gbfocal.lightgbm.train sets it from the loss or the labels)"
        )
    if width not in (None, 1) and n_margins != width:
        raise ValueError(f"{where} has {n_margins} margins per row (num_class), but {loss!r} has {width} class weights")


def _no_start(start: Start) -> bool:
    return np.ndim(start) == 0 and start == 0.0


# ---------------------------------------------------------------------- objective and metric
def _margins(loss: Loss, preds: np.ndarray, start: Start, buffers: ThreadBuffers) -> tuple[np.ndarray, int | None]:
    """The margins the loss should see: ``preds`` plus :func:`train`'s start, and K (None for ``(n,)``).

    LightGBM hands a K-class objective ``(n, K)`` scores as a Fortran-ordered
    view of its class-major buffer; the kernels read rows, so they (and the
    start) go into a C-ordered copy, the one copy either way. Never in
    place: ``preds`` views LightGBM's score buffer. The copy lands in a
    buffer of the calling thread, reused every round (no fresh pages).
    """
    preds = np.asarray(preds)
    n_classes = preds.shape[1] if preds.ndim == 2 else None
    _check_width(loss, 1 if n_classes is None else n_classes, "LightGBM's score")
    if _no_start(start) and (n_classes is None or preds.flags.c_contiguous):
        return preds, n_classes
    z = buffers.get(preds.shape, preds.shape, np.dtype(np.float64))[0]
    if _no_start(start):
        np.copyto(z, preds)
    else:
        np.add(preds, start, out=z)
    return z, n_classes


def _objective_margins(
    loss: Loss, preds: np.ndarray, start: Start, buffers: ThreadBuffers
) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """The objective's margins as ``(scores, shift, K)``: the kernel adds ``shift`` as it reads the scores.

    K-class scores stay as LightGBM hands them (Fortran-ordered ``(n, K)``,
    read class by class with no copy) and :func:`train`'s start travels as
    the ``(K,)`` shift (None without one); one margin per row gets its start
    added here, by :func:`_margins`.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2:
        z, n_classes = _margins(loss, preds, start, buffers)
        return z, None, n_classes
    _check_width(loss, preds.shape[1], "LightGBM's score")
    return preds, None if _no_start(start) else np.asarray(start, dtype=np.float64), preds.shape[1]


class FocalObjective:
    """LightGBM custom objective ``(preds, train_data) -> (grad, hess)`` for a gbfocal loss.

    ``loss``: a :class:`FocalLoss` (``num_class`` 1) or a
    :class:`MulticlassFocalLoss` (``params["num_class"] = K``). ``preds``: raw
    float64 margins (the training scores including any ``init_score``), of
    shape ``(n,)``, or ``(n, K)`` for K classes as LightGBM 4 passes them;
    labels (0/1, or class indices 0..K-1) and weights come from
    ``train_data``. Returns the gradient and Hessian (under the loss's
    Hessian policy; for K classes its diagonal) with respect to each margin,
    in ``preds``' shape, in buffers reused across rounds (LightGBM copies
    them at once). Computed in float64; they are returned rounded to
    float32, which LightGBM would otherwise do itself in a copy every round
    (its trees use float32 gradients), except binary with sample weights,
    where the binary kernel weighs the stored values (rounding twice).
    ``n_threads``: the kernel's threads, a positive int or None (every core).
    One instance may serve several ``lgb.train`` calls, also at once from
    several threads. Picklable.

    Examples
    --------
    >>> import numpy as np, lightgbm as lgb
    >>> import gbfocal.lightgbm as gfl
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> small = {"num_leaves": 4, "min_data_in_leaf": 5, "num_threads": 1, "verbose": -1}
    >>> grad, hess = gfl.FocalObjective(loss, n_threads=1)(np.zeros(200), lgb.Dataset(X, y).construct())
    >>> grad.shape, bool((hess > 0).all())
    ((200,), True)
    """

    __slots__ = ("_cache", "_margin_buffers", "_start", "loss", "n_threads")

    def __init__(self, loss: Loss, n_threads: int | None = None) -> None:
        self.loss = check_loss(loss)
        self.n_threads = check_n_threads(n_threads)
        self._cache = _RowsCache()
        self._margin_buffers = ThreadBuffers()  # per calling thread: the C-ordered copy of the margins
        # gbfocal.lightgbm.train's start (float, or (K,)), added to preds (the Dataset holds no init_score)
        self._start: Start = 0.0

    def __call__(self, preds: np.ndarray, train_data: lgb.Dataset) -> tuple[np.ndarray, np.ndarray]:
        z, shift, n_classes = _objective_margins(self.loss, preds, self._start, self._margin_buffers)
        rows = self._cache.get(self.loss, *_label_and_weight(train_data), n_classes)
        # float32 out: LightGBM would round the float64 values to float32 itself, in a copy per round.
        # Not binary with weights: that kernel applies them to the stored values, which would round twice.
        out_dtype = np.float32 if (n_classes is not None or rows.w.shape[0] == 0) else None
        if n_classes is None:
            return rows.gradient_hessian(self.loss, z, self.n_threads, out_dtype=out_dtype)
        # K classes: scores and gradients stay class-major (Fortran-ordered (n, K)), which LightGBM's
        # ravel(order="F") then takes as they are
        return rows.gradient_hessian(self.loss, z, self.n_threads, out_dtype=out_dtype, shift=shift)

    def __repr__(self) -> str:
        return f"gbfocal.lightgbm.objective({self.loss!r}, n_threads={self.n_threads!r})"

    def __getstate__(self) -> dict:
        return {"loss": self.loss, "n_threads": self.n_threads, "start": self._start}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["loss"], state["n_threads"])
        self._start = state.get("start", 0.0)


class FocalMetric:
    """LightGBM evaluation function ``(preds, eval_data) -> ("focal", value, False)``.

    ``preds``: raw margins of shape ``(n,)``, or ``(n, K)`` for a
    :class:`MulticlassFocalLoss`, as LightGBM passes them with a custom
    objective (with a built-in objective such as ``"binary"`` or
    ``"multiclass"`` it passes probabilities, which this metric would
    misread). ``value`` is the
    weighted mean focal loss ``Σ w FL / Σ w`` over the data set; lower is
    better. Thread-safe and picklable, as :class:`FocalObjective`.

    Examples
    --------
    >>> import numpy as np, lightgbm as lgb
    >>> import gbfocal.lightgbm as gfl
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> small = {"num_leaves": 4, "min_data_in_leaf": 5, "num_threads": 1, "verbose": -1}
    >>> name, value, higher_is_better = gfl.FocalMetric(loss)(np.zeros(200), lgb.Dataset(X, y).construct())
    >>> name, higher_is_better, bool(np.isclose(value, loss.mean_loss(y, np.zeros(200))))
    ('focal', False, True)
    """

    __slots__ = ("_cache", "_margin_buffers", "_start", "loss", "n_threads")
    name = "focal"

    def __init__(self, loss: Loss, n_threads: int | None = None) -> None:
        self.loss = check_loss(loss)
        self.n_threads = check_n_threads(n_threads)
        self._cache = _RowsCache()
        self._margin_buffers = ThreadBuffers()  # per calling thread: the C-ordered copy of the margins
        self._start: Start = 0.0

    def __call__(self, preds: np.ndarray, eval_data: lgb.Dataset) -> tuple[str, float, bool]:
        return self._evaluate(preds, *_label_and_weight(eval_data))

    def _evaluate(self, preds: np.ndarray, label: Any, weight: Any) -> tuple[str, float, bool]:
        z, n_classes = _margins(self.loss, preds, self._start, self._margin_buffers)
        rows = self._cache.get(self.loss, label, weight, n_classes)
        return self.name, rows.mean_loss(self.loss, z, self.n_threads), False

    def __repr__(self) -> str:
        return f"gbfocal.lightgbm.metric({self.loss!r}, n_threads={self.n_threads!r})"

    def __getstate__(self) -> dict:
        return {"loss": self.loss, "n_threads": self.n_threads, "start": self._start}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["loss"], state["n_threads"])
        self._start = state.get("start", 0.0)


class _PlusStart:
    """A user ``feval`` seen through :func:`train`'s start: it gets the margins the model will predict."""

    __slots__ = ("feval", "start")

    def __init__(self, feval: Callable, start: Start) -> None:
        self.feval, self.start = feval, start

    def __call__(self, preds: np.ndarray, eval_data: lgb.Dataset) -> Any:
        return self.feval(preds + self.start, eval_data)


class _SklearnFocalMetric(FocalMetric):
    """The focal metric in LightGBM's scikit-learn signature ``(y_true, y_pred, weight)``."""

    __slots__ = ()

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray | None) -> tuple[str, float, bool]:  # type: ignore[override]
        return self._evaluate(y_pred, y_true, weight)


def objective(loss: Loss, *, n_threads: int | None = None) -> FocalObjective:
    """The focal loss as a LightGBM objective: ``params["objective"] = objective(loss)``.

    The returned callable takes ``(preds, train_data)``, ``preds`` being raw
    margins of shape ``(n,)`` (``(n, K)`` for a :class:`MulticlassFocalLoss`,
    with ``params["num_class"] = K``), and returns ``(grad, hess)`` of the
    same shape.
    ``n_threads``: threads for the gradient kernel, a positive int or None
    (every core this process may use). With plain ``lgb.train`` boosting starts from 0;
    :func:`train` starts from the focal-optimal constant instead.

    Examples
    --------
    >>> import numpy as np, lightgbm as lgb
    >>> import gbfocal.lightgbm as gfl
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> small = {"num_leaves": 4, "min_data_in_leaf": 5, "num_threads": 1, "verbose": -1}
    >>> booster = lgb.train({**small, "objective": gfl.objective(loss)}, lgb.Dataset(X, y), 5)  # starts from 0
    >>> booster.predict(X, raw_score=True).shape
    (200,)
    """
    return FocalObjective(loss, n_threads)


def metric(loss: Loss, *, n_threads: int | None = None) -> FocalMetric:
    """The focal loss as a LightGBM ``feval``: ``(preds, eval_data) -> ("focal", mean, False)``.

    ``preds`` must be raw margins of shape ``(n,)`` (``(n, K)`` for K classes), which is what LightGBM
    passes when the objective is custom (:func:`objective`). The value is the
    weighted mean focal loss of the data set.

    Examples
    --------
    >>> import numpy as np, lightgbm as lgb
    >>> import gbfocal.lightgbm as gfl
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> small = {"num_leaves": 4, "min_data_in_leaf": 5, "num_threads": 1, "verbose": -1}
    >>> history = {}
    >>> data = lgb.Dataset(X, y)
    >>> _ = lgb.train({**small, "objective": gfl.objective(loss), "metric": "None"}, data, 3, valid_sets=[data],
    ...               feval=gfl.metric(loss), callbacks=[lgb.record_evaluation(history)])
    >>> list(history["training"]), len(history["training"]["focal"])
    (['focal'], 3)
    """
    return FocalMetric(loss, n_threads)


def sigmoid(raw_margin: np.ndarray) -> np.ndarray:
    """σ(margin), float64, same shape: what a logloss model's margins mean, not a focal one's.

    Under focal loss σ(margin) is under-confident (γ > 0) and shifted by α;
    use :func:`predict_posterior` for P(y = 1 | x).

    Examples
    --------
    >>> import numpy as np
    >>> import gbfocal.lightgbm as gfl
    >>> gfl.sigmoid(np.array([-800.0, 0.0, 800.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    from scipy.special import expit  # accurate in both tails, no overflow

    return expit(np.asarray(raw_margin, dtype=np.float64))


#: The line :func:`train` adds to a model's ``parameters:`` section. LightGBM writes that section from its
#: config when saving a trained booster, and keeps it verbatim (unknown lines included) when it loads a
#: model, so the line survives ``save_model``/``Booster(model_file=...)``, ``model_to_string``, pickling
#: and copies, while LightGBM itself ignores it (checked with lightgbm 4.7). It holds ``loss.to_dict()`` as
#: one line of JSON; the ``alpha=... gamma=... hessian=...`` form of earlier binary records is still read.
_LOSS_RECORD = "[gbfocal_loss: "


def _loss_record(loss: Loss) -> str:
    return f"{_LOSS_RECORD}{json.dumps(loss.to_dict(), separators=(',', ':'))}]"


def _record_loss(booster: lgb.Booster, loss: Loss, keep_training_booster: bool = False) -> None:
    """Write ``loss`` into ``booster``'s model text, so :func:`predict_posterior` can read it back.

    The booster is reloaded from its own text with the line added, which is
    what ``lgb.train(keep_training_booster=False)`` has just done anyway.
    A booster kept for training cannot be reloaded: it gets the record as
    a Python attribute instead (kept by pickling, not by ``save_model``).
    """
    record = _loss_record(loss)
    if keep_training_booster:
        booster._gbfocal_loss = record  # type: ignore[attr-defined]
        return
    text = booster.model_to_string(num_iteration=-1)
    head, sep, tail = text.partition("\nparameters:\n")
    if not sep:  # pragma: no cover - LightGBM always writes the section for a trained booster
        booster._gbfocal_loss = record  # type: ignore[attr-defined]
        return
    tail = "".join(line for line in tail.splitlines(keepends=True) if not line.startswith(_LOSS_RECORD))
    booster.model_from_string(f"{head}{sep}{record}\n{tail}")


def _recorded_loss(booster: lgb.Booster) -> Loss | None:
    """The loss recorded by :func:`train` / :class:`LGBMFocalClassifier`, or None."""
    # One iteration is enough: the parameters section comes whole, and the text stays small.
    params = booster.model_to_string(num_iteration=1).partition("\nparameters:\n")[2]
    lines = [line for line in params.partition("\nend of parameters")[0].splitlines() if line.startswith(_LOSS_RECORD)]
    record = lines[-1] if lines else getattr(booster, "_gbfocal_loss", None)
    if record is None:
        return None
    body = record[len(_LOSS_RECORD) : -1]
    where = f"the booster's focal loss record {record!r}"
    try:
        if body.startswith("{"):
            return loss_from_dict(json.loads(body), where)
        fields = dict(item.split("=", 1) for item in body.split())  # the binary record of earlier versions
        return FocalLoss(float(fields["alpha"]), float(fields["gamma"]), hessian=fields["hessian"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where} is malformed; pass the loss explicitly") from exc


def predict_posterior(loss: Loss | None, booster: lgb.Booster, data: Any, **predict_kwargs: Any) -> np.ndarray:
    """The class posterior of a booster trained with ``loss``: ``loss.posterior`` of its raw margins.

    ``loss``: the :class:`FocalLoss` or :class:`MulticlassFocalLoss` the
    booster was trained with, or None to read it from the booster:
    :func:`train` and :class:`LGBMFocalClassifier` record it in the model
    text, where ``save_model``, ``lgb.Booster(model_file=...)``,
    ``model_to_string`` and pickling keep it (a booster trained by plain
    ``lgb.train`` has none: pass the loss). ``data``: what
    ``Booster.predict`` accepts, ``(n, n_features)``. Returns float64
    P(y = 1 | x) of shape ``(n,)`` for a binary loss, P(y = k | x) of shape
    ``(n, K)`` (rows summing to 1) for K classes. ``predict_kwargs`` go to
    ``Booster.predict``: by default the best iteration of early stopping
    when the booster has one (``booster.best_iteration > 0``), all
    iterations otherwise; an explicit ``num_iteration`` or
    ``start_iteration`` wins, as in LightGBM.

    Plain LightGBM cannot do this: a model trained with a custom objective
    has no link saved in it, so ``lgb.Booster(model_file=...).predict(X)``
    returns raw margins, not probabilities.

    Examples
    --------
    >>> import numpy as np, lightgbm as lgb
    >>> import gbfocal.lightgbm as gfl
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> small = {"num_leaves": 4, "min_data_in_leaf": 5, "num_threads": 1, "verbose": -1}
    >>> booster = gfl.train(loss, small, lgb.Dataset(X, y), 5)
    >>> proba = gfl.predict_posterior(None, booster, X)  # the loss is read from the model text
    >>> proba.shape, bool(((proba > 0) & (proba < 1)).all())
    ((200,), True)
    """
    if loss is None:
        loss = _recorded_loss(booster)
        if loss is None:
            raise ValueError(
                "loss=None reads the focal loss from the booster, but this booster records none (it was not "
                "trained by gbfocal.lightgbm.train or LGBMFocalClassifier, or was saved from a booster kept "
                "with keep_training_booster=True); pass the FocalLoss or MulticlassFocalLoss it was trained with"
            )
    loss = check_loss(loss)
    n_margins = booster.num_model_per_iteration()
    _check_width(loss, n_margins, "the booster")
    margins = booster.predict(data, raw_score=True, **predict_kwargs)
    return loss.posterior(np.ravel(margins) if n_margins == 1 else margins)


def _check_proba_mode(mode: object, n_classes: int | None) -> None:
    """Refuse an unknown ``focal_proba``, or ``"sigmoid"`` for K > 2 classes (``n_classes``: None if not known yet)."""
    if mode not in PROBA_MODES:
        raise ValueError(f"focal_proba must be one of {list(PROBA_MODES)}, got {mode!r}")
    if mode == "sigmoid" and n_classes is not None and n_classes > 2:
        raise ValueError(
            f"focal_proba='sigmoid' is for two classes; these data have {n_classes}: use 'softmax' for the "
            "softmax of the margins, or 'posterior' (default)"
        )


def _scores(loss: Loss, mode: object, margin: np.ndarray) -> np.ndarray:
    """The classifier's decision scores under ``focal_proba`` = ``mode``: logit (n,) or log-probabilities (n, K).

    Binary: the logit of P(y = 1 | x), so both classes keep full precision.
    K classes: scores whose softmax is the probability (the margins
    themselves for ``"softmax"``, ``log η`` for ``"posterior"``).
    """
    margin = np.asarray(margin, dtype=np.float64)
    n_classes = None if margin.ndim == 1 else margin.shape[1]
    _check_proba_mode(mode, n_classes)
    if n_classes is None:
        return loss.posterior_margin(margin) if mode == "posterior" else margin  # type: ignore[union-attr]
    if mode == "softmax":
        return margin
    with np.errstate(divide="ignore"):  # a posterior that underflows to 0 has log -inf, as it should
        return np.log(loss.posterior(margin))


def _softmax(score: np.ndarray) -> np.ndarray:
    from scipy.special import softmax

    return softmax(score, axis=1)


def _constant_rows(start: Start, n_rows: int) -> np.ndarray:
    """A per-row ``init_score``: ``(n,)`` for one margin, ``(n, K)`` for a start vector of K."""
    return np.array(np.broadcast_to(start, (n_rows, *np.shape(start))))


# ---------------------------------------------------------------------- training with a self-contained start
def _dataset_labels(ds: lgb.Dataset, name: str) -> tuple[Any, Any]:
    label, weight = _label_and_weight(ds)
    if label is None:
        raise ValueError(
            f"{name} has no labels yet (a Dataset read from a file gets them only when it is constructed); "
            "call .construct() on it first or build it from arrays"
        )
    return label, _as_stored_weight(weight)


def _as_stored_weight(weight: Any) -> np.ndarray | None:
    # LightGBM keeps weights as float32: the start must come from the weights training sees.
    return None if weight is None else np.asarray(weight, dtype=np.float32)


def _has_init_score(ds: lgb.Dataset) -> bool:
    if ds.init_score is not None:
        return True
    return _constructed(ds) and ds.get_field("init_score") is not None


def _fold_into_first_tree(booster: lgb.Booster, start: Start) -> None:
    """Add ``start`` to every leaf of the first iteration's trees, as LightGBM's boost_from_average does.

    ``start``: one margin (binary: tree 0) or one per class, shape ``(K,)``:
    ``start[k]`` goes to tree ``k``, the first iteration's tree of class k
    (LightGBM stores the trees iteration by iteration, K per iteration).
    """
    if _no_start(start):
        return
    trees = booster.dump_model(num_iteration=1)["tree_info"]
    for tree, value in enumerate(np.atleast_1d(start).tolist()):
        if value != 0.0:
            for leaf in range(trees[tree]["num_leaves"]):
                booster.set_leaf_output(tree, leaf, booster.get_leaf_output(tree, leaf) + value)


class _SkipObjectiveReset:
    """Callback: tell the booster its objective is already ``"none"`` before the first round.

    ``lgb.train`` creates the booster with ``objective="none"`` when the objective
    is callable, yet ``Booster.update`` resets it to ``"none"`` again on the
    first round; that reset fails with "Check failed: num_features > 0" when no
    feature can be split (a few dozen rows; lightgbm-org/LightGBM#5667), where
    the built-in objectives give a constant model. Skipping the redundant reset
    gives the constant focal start instead.
    """

    before_iteration = True
    order = -1_000_000  # before any user callback

    def __call__(self, env: Any) -> None:
        if env.iteration == env.begin_iteration:
            env.model._Booster__set_objective_to_none = True


def _refuse_linear_trees(params: dict) -> None:
    if _uses_linear_trees(params):
        raise ValueError(
            "linear_tree=True cannot be combined with a focal start: LightGBM's Booster.set_leaf_output does not "
            "move the constant of a linear leaf, so the start could not be saved in the model. Pass "
            "init_score=0.0 to start from 0 instead."
        )


def _num_class(loss: Loss, params: dict, train_set: lgb.Dataset) -> int:
    """LightGBM's ``num_class`` for ``loss``: 1 (binary), else ``params``' own, the loss's K, or the labels' K."""
    given = _param(params, "num_class")
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, numbers.Integral) or given < 1:
            raise ValueError(f"params['num_class'] must be a positive int, got {given!r}")
        _check_width(loss, int(given), "params['num_class']")
        return int(given)
    if loss.n_outputs is not None:
        return loss.n_outputs
    label, _ = _dataset_labels(train_set, "train_set")
    return loss.prepared(label).n_classes  # K = the largest class index + 1, as MulticlassFocalLoss takes it


def _start_vector(start: float | np.ndarray, n_class: int) -> Start:
    """A start given by the caller, as one value per class (``(K,)``) for K classes."""
    if n_class == 1:
        if np.ndim(start) != 0:
            raise ValueError(f"init_score for a binary loss is one number, got {len(start)} values")  # type: ignore[arg-type]
        return start
    if np.ndim(start) == 0:
        return np.full(n_class, float(start))  # the same margin for every class
    if len(start) != n_class:  # type: ignore[arg-type]
        raise ValueError(f"init_score must have one value per class, K = {n_class}, got {len(start)}")  # type: ignore[arg-type]
    return start


def train(
    loss: Loss,
    params: dict[str, Any] | None,
    train_set: lgb.Dataset,
    num_boost_round: int = 100,
    *,
    init_score: float | Sequence[float] | np.ndarray | str = "focal",
    valid_sets: Sequence[lgb.Dataset] | None = None,
    valid_names: Sequence[str] | None = None,
    feval: Callable | Sequence[Callable] | None = None,
    init_model: str | lgb.Booster | None = None,
    keep_training_booster: bool = False,
    callbacks: Sequence[Callable] | None = None,
) -> lgb.Booster:
    """``lgb.train`` with the focal objective, the focal metric and a start saved in the model.

    Parameters
    ----------
    loss : FocalLoss or MulticlassFocalLoss
        A K-class loss trains K trees per round (``num_class`` = K, set
        here: from ``params["num_class"]`` if given, else the length of
        ``loss.alpha``, else the largest training label + 1); labels are then
        class indices 0..K-1.
    params : dict or None
        LightGBM parameters, without ``objective`` (set here); None is ``{}``.
        ``num_threads`` also sets the gradient kernel's threads. ``metric``
        may name rank metrics only (``auc``, ``average_precision``, ``map``,
        ``ndcg``, ``auc_mu``); the others (``binary_logloss``,
        ``binary_error``, ``multi_logloss``, ``multi_error``...) are refused
        (see "Metrics" in the module docstring); ``first_metric_only`` is set
        to True, so that ``early_stopping_round`` watches the focal metric.
        Refused too are LightGBM's class weighting parameters (``scale_pos_weight``,
        ``is_unbalance``, ``pos_bagging_fraction``, ``neg_bagging_fraction``),
        which LightGBM ignores with a custom objective: weigh classes with
        ``loss.alpha`` or the Dataset's ``weight``.
    train_set, num_boost_round, valid_sets, valid_names, init_model, keep_training_booster, callbacks
        As in ``lgb.train``. The Datasets are not changed (several threads
        may train on one Dataset at once).
    init_score : "focal", float or sequence of K floats, default "focal"
        The constant margin (K classes: margin vector) boosting starts from.
        ``"focal"`` is ``loss.init_score`` of the training labels and
        weights; numbers are used as given (one number: the same for every
        class); ``0.0`` is plain LightGBM (a Dataset's own
        per-row ``init_score`` is then used as is, not saved in the model).
        A nonzero start is added to the scores the focal objective, the focal
        metric and every ``feval`` receive (LightGBM's own score buffers
        start at 0; the rank metrics allowed do not depend on it); after
        training it is added to every leaf of the first tree (K classes: the
        first K trees, one per class), so the booster predicts correct
        margins on its own. Ignored (no start) when
        ``init_model`` is given: that model's predictions are the start. To
        continue a DART booster, pass it as ``init_model`` rather than calling
        ``update()`` on a kept one: DART may rescale the first tree, and the
        start with it.
    feval : callable or list of callables, optional
        Extra evaluation functions, reported after the focal metric
        (:func:`metric`), which is always evaluated, comes first in each
        round's results and decides early stopping.

    Returns
    -------
    lightgbm.Booster
        ``booster.predict(X, raw_score=True)`` gives raw margins of shape
        ``(n,)`` (K classes: ``(n, K)``); :func:`predict_posterior` gives
        the posterior, P(y = 1 | x) or P(y = k | x). The loss is
        recorded in the model text (see :func:`predict_posterior`), so
        ``predict_posterior(None, booster, X)`` works, also on a copy read
        back with ``lgb.Booster(model_file=...)``; with
        ``keep_training_booster=True`` only on this object and its pickles.

    Examples
    --------
    >>> import numpy as np, lightgbm as lgb
    >>> import gbfocal.lightgbm as gfl
    >>> from gbfocal import FocalLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + rng.normal(size=200) > 1.0).astype(float)
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> small = {"num_leaves": 4, "min_data_in_leaf": 5, "num_threads": 1, "verbose": -1}
    >>> history = {}
    >>> booster = gfl.train(loss, {**small, "metric": "auc"}, lgb.Dataset(X, y), 10,
    ...                     valid_sets=[lgb.Dataset(X[:50], y[:50])], callbacks=[lgb.record_evaluation(history)])
    >>> sorted(history["valid_0"])  # the focal metric, reported first, beside the rank metric
    ['auc', 'focal']
    >>> booster.predict(X[:4], raw_score=True).shape  # raw margins, the focal start included
    (4,)
    """
    loss = check_loss(loss)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of LightGBM parameters (or None), got {type(params).__name__}")
    params = dict(params)
    set_objective = sorted(k for k in _aliases("objective") if params.get(k) is not None)
    if set_objective:
        raise ValueError(f"gbfocal.lightgbm.train sets the objective itself; remove {set_objective} from params")
    _refuse_metric_params(params)
    _refuse_ignored_class_weights(params)
    _refuse_random_forest(params)
    start = _check_start(init_score)
    threads = _threads_from_params(params)
    if not isinstance(train_set, lgb.Dataset):
        raise TypeError(f"train_set must be a lightgbm.Dataset, got {type(train_set).__name__}")
    n_class = _num_class(loss, params, train_set)
    if n_class > 1:
        for key in _aliases("num_class"):
            params.pop(key, None)
        params["num_class"] = n_class
    objective_, metric_ = objective(loss, n_threads=threads), metric(loss, n_threads=threads)
    params["objective"] = objective_
    fevals = _as_list(feval)

    value: Start = 0.0
    focal_start = isinstance(start, str)
    if init_model is not None:
        if not (focal_start or _no_start(start)):  # type: ignore[arg-type]
            raise ValueError("init_score cannot be set together with init_model: the model's predictions are the start")
    elif focal_start or not _no_start(start):  # type: ignore[arg-type]
        _refuse_linear_trees(params)
        valid = list(valid_sets) if valid_sets is not None else []
        for name, ds in [("train_set", train_set), *((f"valid_sets[{i}]", ds) for i, ds in enumerate(valid))]:
            if isinstance(ds, lgb.Dataset) and _has_init_score(ds):
                raise ValueError(
                    f"{name} already has an init_score. LightGBM does not save a Dataset's init_score in the "
                    "model, so gbfocal adds the start itself; pass init_score=0.0 to train on your per-row "
                    "init_score as is (predictions then need it added back)."
                )
        if focal_start:
            label, weight = _dataset_labels(train_set, "train_set")
            value = loss.prepared(label, weight, None if n_class == 1 else n_class).init_score(loss)
        else:
            value = _start_vector(start, n_class)  # type: ignore[arg-type]
        # The start goes to the callbacks, not into the Datasets' init_score: a caller's Dataset stays
        # untouched, so other threads training on it at the same time see no gbfocal state.
        objective_._start = metric_._start = value
        fevals = [_PlusStart(f, value) for f in fevals]

    booster = lgb.train(
        _first_metric_only(params),
        train_set,
        num_boost_round,
        valid_sets=valid_sets,
        valid_names=valid_names,
        feval=[metric_, *fevals],
        init_model=init_model,
        keep_training_booster=keep_training_booster,
        callbacks=_focal_decides(callbacks),
    )
    _fold_into_first_tree(booster, value)
    _record_loss(booster, loss, keep_training_booster)
    return booster


# ---------------------------------------------------------------------- scikit-learn
_FIT_HAS_EVAL_XY = "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters


class LGBMFocalClassifier(lgb.LGBMClassifier):
    """LightGBM classifier trained with the α-balanced focal loss, binary or multiclass.

    Two classes train a binary :class:`gbfocal.FocalLoss` (one margin per
    row), three or more a :class:`gbfocal.MulticlassFocalLoss` (K margins
    per row, K trees per round), exactly as ``lightgbm.LGBMClassifier``
    switches to its softmax objective. Labels may be of any hashable type;
    ``classes_`` is sorted.

    Parameters
    ----------
    focal_alpha : None, float, sequence, mapping or "balanced", default None
        Class weights α: ``None`` is 0.25 on ``classes_[1]`` (binary) or 1
        for every class (multiclass); a float (binary only) the weight of
        ``classes_[1]``; a sequence one weight per class in ``classes_``
        order; a mapping ``{label: weight}`` every class's; ``"balanced"``
        the inverse class frequency ``w_k = W / (K W_k)`` of the training
        labels weighted by ``sample_weight`` (``class_weight``, if given,
        multiplies the rows' weights on top). See :mod:`gbfocal._estimator`.
    focal_gamma : float >= 0, default 2.0
        Focusing parameter γ.
    focal_hessian : str or None, default None
        Hessian policy, see :class:`gbfocal.FocalLoss` and
        :class:`gbfocal.MulticlassFocalLoss`; None is each loss's default
        (``"positive"`` binary, ``"clamp"`` multiclass).
    focal_proba : {"posterior", "softmax", "sigmoid"}, default "posterior"
        What ``predict_proba`` returns (and ``predict`` takes the most
        probable class of): the class posterior recovered from the focal
        margins (``loss.posterior``), or the usual link of the margins,
        which focal loss leaves under-confident: ``"softmax"`` (any K; for
        two classes the same as ``"sigmoid"``) or ``"sigmoid"`` (binary
        only). As ``XGBFocalClassifier``.
    **lightgbm_params
        Any ``lightgbm.LGBMClassifier`` parameter (``n_estimators``,
        ``learning_rate``, ``class_weight``, LightGBM's own ``alpha``...),
        passed through untouched, except ``objective``, which is the focal
        loss, and ``first_metric_only``, which is True. ``metric`` (and
        ``fit``'s ``eval_metric``) may name rank metrics only (``auc``,
        ``average_precision``, ``map``, ``ndcg``, ``auc_mu``): LightGBM would
        compute the others (``binary_logloss``, ``multi_logloss``,
        ``multi_error``...) on raw margins, so they are refused.

    Boosting starts from the focal-optimal constant margin (K classes: margin
    vector) of the (class- and sample-weighted) training labels, saved in the
    first tree (K classes: the first K trees), so ``booster_`` predicts
    correct margins on its own. Saving: pickle the estimator
    (``predict_proba`` comes back exactly), or save ``booster_``: its
    ``predict`` returns raw margins, not probabilities, and
    ``gbfocal.lightgbm.predict_posterior(None, booster, X)`` gives
    ``predict_proba(X)[:, 1]`` (K classes: ``predict_proba(X)``) from it
    (the loss is recorded in the model).
    LightGBM's ``scale_pos_weight``, ``is_unbalance``,
    ``pos_bagging_fraction`` and ``neg_bagging_fraction`` are refused: they
    do nothing with a custom objective (use ``focal_alpha``,
    ``class_weight`` or ``sample_weight``).
    ``predict_proba`` returns ``(n, K)`` probabilities (see ``focal_proba``),
    ``predict`` the original labels, ``decision_function`` scikit-learn's
    scores (binary: log-odds of ``classes_[1]``, ``(n,)``; K classes:
    log-probabilities ``(n, K)``) and ``predict(X, raw_score=True)`` the raw
    margins (``(n,)`` or ``(n, K)``). With ``eval_set``, the weighted mean
    focal loss is reported as ``"focal"``, first, and early stopping
    (``lgb.early_stopping`` in ``callbacks``) uses it alone; rank metrics are
    reported beside it (module docstring, "Metrics").

    References
    ----------
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollár, "Focal Loss for Dense
    Object Detection", ICCV 2017, arXiv:1708.02002.

    Examples
    --------
    >>> import numpy as np
    >>> from gbfocal.lightgbm import LGBMFocalClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4))
    >>> y = np.where(X[:, 0] + rng.normal(size=300) > 1.0, "fraud", "ok")
    >>> clf = LGBMFocalClassifier(focal_alpha="balanced", n_estimators=20, num_leaves=4, n_jobs=1, verbose=-1)
    >>> clf = clf.fit(X[:200], y[:200], eval_set=[(X[200:], y[200:])], eval_metric="auc")
    >>> clf.classes_.tolist(), clf.predict_proba(X[:3]).shape
    (['fraud', 'ok'], (3, 2))
    >>> list(clf.evals_result_["valid_0"])  # the focal metric first: early stopping would use it
    ['focal', 'auc']
    >>> three = np.digitize(X[:, 0], [-0.5, 0.5])  # K = 3 classes: the softmax focal loss
    >>> LGBMFocalClassifier(n_estimators=5, n_jobs=1, verbose=-1).fit(X, three).predict_proba(X[:2]).shape
    (2, 3)
    """

    def __init__(
        self,
        *,
        focal_alpha: Any = None,
        focal_gamma: float = 2.0,
        focal_hessian: str | None = None,
        focal_proba: str = "posterior",
        **lightgbm_params: Any,
    ) -> None:
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.focal_hessian = focal_hessian
        self.focal_proba = focal_proba
        super().__init__(**lightgbm_params)

    def focal_loss(self) -> Loss:
        """The loss the fitted model was trained with; before ``fit``, the binary loss of the ``focal_*`` parameters.

        (``focal_alpha="balanced"`` needs the training labels, so only the
        fitted model has its loss.)
        """
        loss = getattr(self, "_focal_loss", None)
        return estimator_loss(self, np.array([0, 1])) if loss is None else loss

    # ------------------------------------------------------------------ fitting
    def _process_params(self, stage: str) -> dict[str, Any]:
        # LightGBM's own hook for turning the estimator's parameters into lgb.train's.
        if stage != "fit":
            return _without_focal_params(super()._process_params(stage))
        given = self.get_params()
        set_objective = sorted(k for k in _aliases("objective") if given.get(k) is not None)
        if set_objective:
            raise ValueError(
                f"LGBMFocalClassifier's objective is the focal loss; remove {set_objective} "
                "(use focal_alpha, focal_gamma and focal_hessian to configure it)"
            )
        _refuse_random_forest(given)
        _refuse_ignored_class_weights(given, type(self).__name__)
        params = _without_focal_params(super()._process_params(stage))
        if all(given.get(k) is None for k in _aliases("metric")):  # fit has checked the metrics given
            params["metric"] = "None"  # LightGBM's default, binary_logloss, would misread raw scores
        _first_metric_only(params)  # early stopping watches the first metric, which _FocalFirst makes focal
        self._objective = FocalObjective(self._focal_loss, _threads_from_params(params))
        self._focal_metric.n_threads = self._objective.n_threads
        params["objective"] = self._objective
        return params

    def fit(  # type: ignore[override]
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        init_score: Any = None,
        eval_set: list[tuple[Any, Any]] | tuple[Any, Any] | None = None,
        eval_names: list[str] | None = None,
        eval_sample_weight: list[Any] | None = None,
        eval_class_weight: list[Any] | None = None,
        eval_init_score: list[Any] | None = None,
        eval_metric: Any = None,
        feature_name: Any = "auto",
        categorical_feature: Any = "auto",
        callbacks: list[Callable] | None = None,
        init_model: Any = None,
        *,
        eval_X: Any = None,
        eval_y: Any = None,
    ) -> LGBMFocalClassifier:
        """Fit on ``X`` (n, n_features) and labels ``y`` (n,) of any type, two classes or more.

        As ``lightgbm.LGBMClassifier.fit``; ``eval_set`` (a list of ``(X, y)``)
        or ``eval_X``/``eval_y`` both work. ``init_score``/``eval_init_score``,
        if given, replace the focal start (and, as in LightGBM, are not part
        of the model).
        """
        from sklearn.preprocessing import LabelEncoder
        from sklearn.utils import assert_all_finite
        from sklearn.utils.class_weight import compute_sample_weight
        from sklearn.utils.multiclass import check_classification_targets
        from sklearn.utils.validation import column_or_1d

        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        check_focal_params(self)
        _check_proba_mode(self.focal_proba, None)
        assert_all_finite(y, input_name="y")
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        classes = encoder.classes_
        n_classes = len(classes)
        if n_classes < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least two classes; y has only one class: {classes.tolist()[:10]}"
            )
        _check_proba_mode(self.focal_proba, n_classes)
        y_codes = encoder.transform(column_or_1d(y))
        row_weight = as_weights(sample_weight, y_codes.shape[0], "sample_weight")  # before LightGBM reads it
        weight = row_weight
        if self.class_weight is not None:  # as LightGBM combines them
            class_weight = compute_sample_weight(self.class_weight, y)
            weight = class_weight if weight is None else weight * class_weight
        if weight is not None and not np.any(weight > 0):
            raise ValueError(
                "sample_weight (times class_weight) is zero for every row: at least one row of each class "
                "needs a weight > 0"
            )
        weight = _as_stored_weight(weight)  # what training sees: LightGBM keeps weights as float32
        # "balanced" from the sample weights alone: class_weight is the user's own class weighting, on top
        loss = estimator_loss(self, classes, y_codes, _as_stored_weight(row_weight))
        focal_metric = _SklearnFocalMetric(loss)

        evals = _eval_pairs(eval_set, eval_X, eval_y)
        user_metrics = _as_list(eval_metric)
        _refuse_non_rank_metrics(user_metrics, "eval_metric")
        _refuse_metric_params(self.get_params(), "{key}")

        start: Start = 0.0
        if init_model is None and init_score is None and eval_init_score is None:
            _refuse_linear_trees(self.get_params())
            start = loss.prepared(y_codes, weight, n_classes).init_score(loss)
            init_score = _constant_rows(start, y_codes.shape[0])
            eval_init_score = [_constant_rows(start, np.shape(yv)[0]) for _, yv in evals]
        # set after the checks above, so that input refused there leaves a fitted model as it was
        self._focal_loss, self._focal_metric = loss, focal_metric

        kwargs: dict[str, Any] = {}
        if evals and _FIT_HAS_EVAL_XY:
            # LightGBM >= 4.7 deprecates eval_set and passes eval_y on without encoding it, so encode
            # here. The training data then becomes a separate validation set; keep LightGBM's names.
            kwargs["eval_X"] = tuple(_as_lightgbm_matrix(xv) for xv, _ in evals)
            kwargs["eval_y"] = tuple(encoder.transform(column_or_1d(yv)) for _, yv in evals)
            if eval_names is None:
                eval_names = ["training" if xv is X and yv is y else f"valid_{i}" for i, (xv, yv) in enumerate(evals)]
        elif evals:
            kwargs["eval_set"] = [(_as_lightgbm_matrix(xv), yv) for xv, yv in evals]
        super().fit(
            _as_lightgbm_matrix(X),
            y,
            sample_weight=sample_weight,
            init_score=init_score,
            eval_names=eval_names,
            eval_sample_weight=eval_sample_weight,
            eval_class_weight=eval_class_weight,
            eval_init_score=eval_init_score,
            eval_metric=[self._focal_metric, *user_metrics],
            feature_name=feature_name,
            categorical_feature=categorical_feature,
            callbacks=_focal_decides(callbacks),
            init_model=init_model,
            **kwargs,
        )
        _fold_into_first_tree(self._Booster, start)
        _record_loss(self._Booster, self._focal_loss)  # LGBMModel.fit does not keep the training booster
        return self

    # ------------------------------------------------------------------ prediction
    def decision_function(  # type: ignore[override]
        self,
        X: Any,
        *,
        start_iteration: int = 0,
        num_iteration: int | None = None,
        validate_features: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        """Scores in scikit-learn's convention, from which ``predict`` takes its class.

        Binary: log-odds of ``predict_proba(X)[:, 1]``, shape ``(n,)``, > 0
        where ``predict`` gives ``classes_[1]``: with ``focal_proba`` =
        ``"sigmoid"``/``"softmax"`` the booster's raw margins, with
        ``"posterior"`` :meth:`FocalLoss.posterior_margin` of them. K
        classes: shape ``(n, K)``, whose softmax is ``predict_proba(X)``:
        the raw margins (``"softmax"``) or the log posterior
        (``"posterior"``). The raw margins themselves: ``predict(X, raw_score=True)``.
        """
        margin = self._lightgbm_predict(
            X,
            raw_score=True,
            start_iteration=start_iteration,
            num_iteration=num_iteration,
            validate_features=validate_features,
            **kwargs,
        )
        return _scores(self._focal_loss, self.focal_proba, margin)

    def predict_proba(  # type: ignore[override]
        self,
        X: Any,
        raw_score: bool = False,
        start_iteration: int = 0,
        num_iteration: int | None = None,
        pred_leaf: bool = False,
        pred_contrib: bool = False,
        validate_features: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        """Class probabilities of shape ``(n, K)``, columns in the order of ``classes_``, rows summing to 1.

        The posterior recovered from the focal margins, or their sigmoid /
        softmax with ``focal_proba="sigmoid"``/``"softmax"``. ``raw_score``
        (raw margins, ``(n,)`` or ``(n, K)``), ``pred_leaf`` and
        ``pred_contrib`` return what ``lightgbm.LGBMModel.predict`` returns
        for them.
        """
        if raw_score or pred_leaf or pred_contrib:
            return self._lightgbm_predict(
                X,
                raw_score=raw_score,
                start_iteration=start_iteration,
                num_iteration=num_iteration,
                pred_leaf=pred_leaf,
                pred_contrib=pred_contrib,
                validate_features=validate_features,
                **kwargs,
            )
        score = self.decision_function(
            X,
            start_iteration=start_iteration,
            num_iteration=num_iteration,
            validate_features=validate_features,
            **kwargs,
        )
        if score.ndim == 1:  # binary log-odds: both columns from the logit, so neither loses precision
            return np.column_stack([sigmoid(-score), sigmoid(score)])
        return _softmax(score)

    def _lightgbm_predict(self, X: Any, **kwargs: Any) -> Any:
        return lgb.LGBMModel.predict(self, _as_lightgbm_matrix(X), **kwargs)

    def predict(  # type: ignore[override]
        self,
        X: Any,
        raw_score: bool = False,
        start_iteration: int = 0,
        num_iteration: int | None = None,
        pred_leaf: bool = False,
        pred_contrib: bool = False,
        validate_features: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        """Predicted labels of shape ``(n,)``: the more probable of ``classes_`` (raw margins if ``raw_score``)."""
        proba = self.predict_proba(
            X,
            raw_score=raw_score,
            start_iteration=start_iteration,
            num_iteration=num_iteration,
            pred_leaf=pred_leaf,
            pred_contrib=pred_contrib,
            validate_features=validate_features,
            **kwargs,
        )
        if raw_score or pred_leaf or pred_contrib:
            return proba
        return self.classes_[np.argmax(proba, axis=1)]


def _without_focal_params(params: dict[str, Any]) -> dict[str, Any]:
    for key in _FOCAL_PARAMS:  # ours, not LightGBM's: keep them out of its parameters
        params.pop(key, None)
    return params


def _as_lightgbm_matrix(X: Any) -> Any:
    """SciPy sparse input as a CSR matrix: LightGBM reads csr/csc *matrices* only, not sparse arrays."""
    import scipy.sparse

    if scipy.sparse.issparse(X) and not isinstance(X, (scipy.sparse.csr_matrix, scipy.sparse.csc_matrix)):
        return scipy.sparse.csr_matrix(X)
    return X


def _eval_pairs(eval_set: Any, eval_X: Any, eval_y: Any) -> list[tuple[Any, Any]]:
    if eval_set is not None and (eval_X is not None or eval_y is not None):
        raise ValueError("pass either eval_set or eval_X and eval_y, not both")
    if eval_set is not None:
        return [eval_set] if isinstance(eval_set, tuple) else list(eval_set)
    if (eval_X is None) != (eval_y is None):
        raise ValueError("eval_X and eval_y must be given together")
    if eval_X is None:
        return []
    if isinstance(eval_X, tuple) != isinstance(eval_y, tuple) or (
        isinstance(eval_X, tuple) and len(eval_X) != len(eval_y)
    ):
        raise ValueError("eval_X and eval_y must both be tuples of the same length, or both single data sets")
    return list(zip(eval_X, eval_y, strict=True)) if isinstance(eval_X, tuple) else [(eval_X, eval_y)]
