"""LightGBM adapter: focal loss as a LightGBM objective, metric and classifier.

Native API::

    import lightgbm as lgb
    from gbfocal import FocalLoss
    import gbfocal.lightgbm as gfl

    loss = FocalLoss(alpha=0.25, gamma=2.0)
    booster = gfl.train(loss, params, dtrain, 200, valid_sets=[dvalid])
    margin = booster.predict(X, raw_score=True)        # raw margins, start included
    proba = gfl.predict_posterior(loss, booster, X)    # P(y = 1 | x), shape (n,)
    booster.save_model("focal.txt")
    proba = gfl.predict_posterior(None, lgb.Booster(model_file="focal.txt"), X)  # loss read from the file

``objective(loss)`` and ``metric(loss)`` also plug into ``lgb.train``
directly (``params["objective"] = gfl.objective(loss)``, ``feval=gfl.metric(loss)``);
boosting then starts from a margin of 0.

Self-contained models
---------------------
With a callable objective LightGBM does not boost from an average, and a
Dataset's ``init_score`` is used in training but not saved in the model. The
focal-optimal start (:meth:`FocalLoss.init_score`) therefore has to live in the
trees. :func:`train` adds it to the scores its objective, focal metric and
``feval`` functions receive, so every round and every validation metric sees
the right margins while the caller's Datasets stay untouched (several threads
may train on one Dataset), then adds it to every leaf of the first tree with
``Booster.set_leaf_output``. That is what LightGBM's own ``boost_from_average``
does (``Tree::AddBias`` on the first tree), so ``booster.predict(X, raw_score=True)``,
``save_model``/``Booster(model_file=...)``, pickling, SHAP values
(``pred_contrib``) and continued training (``init_model=booster``) all include
the start, with nothing added by the user. :class:`LGBMFocalClassifier` does
the same through the ``init_score`` of the Datasets it builds itself.

Every callable here receives raw float64 margins (LightGBM applies no link
function with a custom objective) and reads labels and weights from the
Dataset; they are validated and converted once per data set, not every round.
One objective or metric object may serve several trainings at once.

Probabilities
-------------
A model trained with focal loss has no link saved in it, so ``booster.predict``
returns raw margins whatever ``raw_score`` says, also for plain LightGBM
reading the saved file. σ(margin) (:func:`sigmoid`) is not P(y = 1 | x) under
focal loss (pulled towards 1/2, shifted by α); :func:`predict_posterior` and
:class:`LGBMFocalClassifier` (by default) return the posterior recovered by
:meth:`FocalLoss.posterior`, as the XGBoost adapter does. :func:`train` and
the classifier record α, γ and the Hessian policy in the model text, so
``predict_posterior(None, lgb.Booster(model_file=path), X)`` needs no loss.
"""

from __future__ import annotations

import inspect
import numbers
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _ConfigAliases

from gbfocal._loss import DEFAULT_HESSIAN, FocalLoss, PreparedRows, check_loss, focal_loss_of
from gbfocal._validation import as_weights, check_n_threads

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

#: Built-in LightGBM metrics that read the raw score as a probability when the
#: objective is custom (binary_logloss of a model whose true logloss is 0.50
#: reads 3.47), so they are refused rather than reported wrong.
_PROBABILITY_METRICS = frozenset(
    {
        "binary_logloss",
        "binary",
        "binary_error",
        "cross_entropy",
        "xentropy",
        "cross_entropy_lambda",
        "xentlambda",
        "kullback_leibler",
        "kldiv",
    }
)
_FOCAL_PARAMS = ("focal_alpha", "focal_gamma", "focal_hessian", "focal_proba")
#: What ``LGBMFocalClassifier(focal_proba=...)`` returns as probabilities.
PROBA_MODES = ("posterior", "sigmoid")


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


def _refuse_probability_metrics(value: object, where: str) -> None:
    bad = [m for m in _metric_names(value) if m in _PROBABILITY_METRICS or m in ("logloss", "error")]
    if bad:
        raise ValueError(
            f"{where} asks for {bad}, which LightGBM computes on the raw score as if it were a probability "
            "when the objective is custom, so the values would be wrong. Use the focal metric (added "
            "automatically), a rank metric such as 'auc' or 'average_precision', or evaluate "
            "gbfocal.lightgbm.predict_posterior(...) yourself."
        )


#: Built-in metrics that depend only on the order of the scores, so they read the same with or without
#: :func:`train`'s start (which the objective adds to the scores it receives, not LightGBM).
_RANK_METRICS = frozenset(
    {"auc", "average_precision", "map", "mean_average_precision", "ndcg", "none", "null", "na", "custom", ""}
)


def _refuse_shifted_metrics(params: dict) -> None:
    for key in sorted(_aliases("metric")):
        bad = [m for m in _metric_names(params.get(key)) if m not in _RANK_METRICS]
        if bad:
            raise ValueError(
                f"params[{key!r}] asks for {bad}, which LightGBM would compute on scores without gbfocal's start "
                "(the objective and the focal metric add it; LightGBM's own score starts at 0). Use a rank metric "
                "('auc', 'average_precision'), a feval (it receives the margins with the start), or "
                "init_score=0.0."
            )


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


def _check_start(init_score: object) -> float | str:
    if isinstance(init_score, str):
        if init_score != "focal":
            raise ValueError(f"init_score must be 'focal' or a finite number, got {init_score!r}")
        return init_score
    if isinstance(init_score, bool) or not isinstance(init_score, numbers.Real) or not np.isfinite(init_score):
        raise TypeError(f"init_score must be 'focal' or a finite number, got {init_score!r}")
    return float(init_score)


class _RowsCache:
    """One :class:`PreparedRows` per label array, dropped when that array is.

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
        self._entries: dict[int, tuple[weakref.ref, Any, PreparedRows]] = {}
        self._lock = threading.Lock()

    def get(self, label: Any, weight: Any) -> PreparedRows:
        key = id(label)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0]() is label and entry[1] is weight:
                return entry[2]
            rows = PreparedRows(label, weight)
            try:
                ref = weakref.ref(label, _Forget(self._entries, key))
            except TypeError:  # a list or similar: nothing to key on, so prepare every call
                return rows
            self._entries[key] = (ref, weight, rows)
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


def _binary_margins(preds: np.ndarray) -> np.ndarray:
    if getattr(preds, "ndim", 1) != 1:
        raise ValueError(
            f"gbfocal's focal loss is binary, but LightGBM passed predictions of shape {np.shape(preds)} "
            "(num_class > 1); remove num_class / the multiclass objective"
        )
    return preds


# ---------------------------------------------------------------------- objective and metric
def _plus_start(z: np.ndarray, start: float) -> np.ndarray:
    # A new array, never in place: LightGBM's score buffer is what ``preds`` views.
    return z if start == 0.0 else z + start


class FocalObjective:
    """LightGBM custom objective ``(preds, train_data) -> (grad, hess)`` for a :class:`FocalLoss`.

    ``preds``: raw margins of shape ``(n,)`` (float64, the training scores
    including any ``init_score``); labels (0/1) and weights come from
    ``train_data``. Returns the gradient and Hessian (under the loss's Hessian
    policy) with respect to the margin, each of shape ``(n,)``, in buffers
    reused across rounds (LightGBM copies them at once). Computed in float64;
    without sample weights they are returned rounded to float32, which
    LightGBM would otherwise do itself in a copy every round (its trees use
    float32 gradients). ``n_threads``: the kernel's threads, a positive int or
    None (every core). One instance may serve several ``lgb.train`` calls,
    also at once from several threads. Picklable.
    """

    __slots__ = ("_cache", "_start", "loss", "n_threads")

    def __init__(self, loss: FocalLoss, n_threads: int | None = None) -> None:
        self.loss = check_loss(loss, binary_only=True)
        self.n_threads = check_n_threads(n_threads)
        self._cache = _RowsCache()
        self._start = 0.0  # gbfocal.lightgbm.train's start, added to preds (the Dataset holds no init_score)

    def __call__(self, preds: np.ndarray, train_data: lgb.Dataset) -> tuple[np.ndarray, np.ndarray]:
        z = _plus_start(_binary_margins(preds), self._start)
        rows = self._cache.get(*_label_and_weight(train_data))
        # float32 out: LightGBM would round the float64 values to float32 itself, in a copy per round.
        # Not with weights: the kernel applies them to the stored values, which would round twice.
        out_dtype = np.float32 if rows.w.shape[0] == 0 else None
        return rows.gradient_hessian(self.loss, z, self.n_threads, out_dtype=out_dtype)

    def __repr__(self) -> str:
        return f"gbfocal.lightgbm.objective({self.loss!r}, n_threads={self.n_threads!r})"

    def __getstate__(self) -> dict:
        return {"loss": self.loss, "n_threads": self.n_threads, "start": self._start}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["loss"], state["n_threads"])
        self._start = state.get("start", 0.0)


class FocalMetric:
    """LightGBM evaluation function ``(preds, eval_data) -> ("focal", value, False)``.

    ``preds``: raw margins of shape ``(n,)``, as LightGBM passes them with a
    custom objective (with a built-in objective such as ``"binary"`` it
    passes probabilities, which this metric would misread). ``value`` is the
    weighted mean focal loss ``Σ w FL / Σ w`` over the data set; lower is
    better. Thread-safe and picklable, as :class:`FocalObjective`.
    """

    __slots__ = ("_cache", "_start", "loss", "n_threads")
    name = "focal"

    def __init__(self, loss: FocalLoss, n_threads: int | None = None) -> None:
        self.loss = check_loss(loss, binary_only=True)
        self.n_threads = check_n_threads(n_threads)
        self._cache = _RowsCache()
        self._start = 0.0

    def __call__(self, preds: np.ndarray, eval_data: lgb.Dataset) -> tuple[str, float, bool]:
        return self._evaluate(preds, *_label_and_weight(eval_data))

    def _evaluate(self, preds: np.ndarray, label: Any, weight: Any) -> tuple[str, float, bool]:
        z = _plus_start(_binary_margins(preds), self._start)
        return self.name, self._cache.get(label, weight).mean_loss(self.loss, z, self.n_threads), False

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

    def __init__(self, feval: Callable, start: float) -> None:
        self.feval, self.start = feval, start

    def __call__(self, preds: np.ndarray, eval_data: lgb.Dataset) -> Any:
        return self.feval(preds + self.start, eval_data)


class _SklearnFocalMetric(FocalMetric):
    """The focal metric in LightGBM's scikit-learn signature ``(y_true, y_pred, weight)``."""

    __slots__ = ()

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray | None) -> tuple[str, float, bool]:  # type: ignore[override]
        return self._evaluate(y_pred, y_true, weight)


def objective(loss: FocalLoss, *, n_threads: int | None = None) -> FocalObjective:
    """The focal loss as a LightGBM objective: ``params["objective"] = objective(loss)``.

    The returned callable takes ``(preds, train_data)``, ``preds`` being raw
    margins of shape ``(n,)``, and returns ``(grad, hess)`` of shape ``(n,)``.
    ``n_threads``: threads for the gradient kernel, a positive int or None
    (every core this process may use). With plain ``lgb.train`` boosting starts from 0;
    :func:`train` starts from the focal-optimal constant instead.
    """
    return FocalObjective(loss, n_threads)


def metric(loss: FocalLoss, *, n_threads: int | None = None) -> FocalMetric:
    """The focal loss as a LightGBM ``feval``: ``(preds, eval_data) -> ("focal", mean, False)``.

    ``preds`` must be raw margins of shape ``(n,)``, which is what LightGBM
    passes when the objective is custom (:func:`objective`). The value is the
    weighted mean focal loss of the data set.
    """
    return FocalMetric(loss, n_threads)


def sigmoid(raw_margin: np.ndarray) -> np.ndarray:
    """σ(margin), float64, same shape: what a logloss model's margins mean, not a focal one's.

    Under focal loss σ(margin) is under-confident (γ > 0) and shifted by α;
    use :func:`predict_posterior` for P(y = 1 | x).
    """
    from scipy.special import expit  # accurate in both tails, no overflow

    return expit(np.asarray(raw_margin, dtype=np.float64))


#: The line :func:`train` adds to a model's ``parameters:`` section. LightGBM writes that section from its
#: config when saving a trained booster, and keeps it verbatim (unknown lines included) when it loads a
#: model, so the line survives ``save_model``/``Booster(model_file=...)``, ``model_to_string``, pickling
#: and copies, while LightGBM itself ignores it (checked with lightgbm 4.7).
_LOSS_RECORD = "[gbfocal_loss: "


def _loss_record(loss: FocalLoss) -> str:
    return f"{_LOSS_RECORD}alpha={loss.alpha!r} gamma={loss.gamma!r} hessian={loss.hessian}]"


def _record_loss(booster: lgb.Booster, loss: FocalLoss, keep_training_booster: bool = False) -> None:
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


def _recorded_loss(booster: lgb.Booster) -> FocalLoss | None:
    """The :class:`FocalLoss` recorded by :func:`train` / :class:`LGBMFocalClassifier`, or None."""
    # One iteration is enough: the parameters section comes whole, and the text stays small.
    params = booster.model_to_string(num_iteration=1).partition("\nparameters:\n")[2]
    lines = [line for line in params.partition("\nend of parameters")[0].splitlines() if line.startswith(_LOSS_RECORD)]
    record = lines[-1] if lines else getattr(booster, "_gbfocal_loss", None)
    if record is None:
        return None
    try:
        fields = dict(item.split("=", 1) for item in record[len(_LOSS_RECORD) : -1].split())
        return FocalLoss(float(fields["alpha"]), float(fields["gamma"]), hessian=fields["hessian"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"the booster's focal loss record {record!r} is malformed; pass the FocalLoss explicitly"
        ) from exc


def predict_posterior(loss: FocalLoss | None, booster: lgb.Booster, data: Any, **predict_kwargs: Any) -> np.ndarray:
    """P(y = 1 | x) of a booster trained with ``loss``: :meth:`FocalLoss.posterior` of its raw margins.

    ``loss``: the :class:`FocalLoss` the booster was trained with, or None to
    read it from the booster: :func:`train` and :class:`LGBMFocalClassifier`
    record it in the model text, where ``save_model``, ``lgb.Booster(model_file=...)``,
    ``model_to_string`` and pickling keep it (a booster trained by plain
    ``lgb.train`` has none: pass the loss). ``data``: what
    ``Booster.predict`` accepts, ``(n, n_features)``. Returns float64 of
    shape ``(n,)``. ``predict_kwargs`` go to ``Booster.predict``: by default
    the best iteration of early stopping when the booster has one
    (``booster.best_iteration > 0``), all iterations otherwise; an explicit
    ``num_iteration`` or ``start_iteration`` wins, as in LightGBM.

    Plain LightGBM cannot do this: a model trained with a custom objective
    has no link saved in it, so ``lgb.Booster(model_file=...).predict(X)``
    returns raw margins, not probabilities.
    """
    if loss is None:
        loss = _recorded_loss(booster)
        if loss is None:
            raise ValueError(
                "loss=None reads the focal loss from the booster, but this booster records none (it was not "
                "trained by gbfocal.lightgbm.train or LGBMFocalClassifier, or was saved from a booster kept "
                "with keep_training_booster=True); pass the FocalLoss it was trained with"
            )
    loss = check_loss(loss, binary_only=True)
    return loss.posterior(np.ravel(booster.predict(data, raw_score=True, **predict_kwargs)))


def _positive_logit(loss: FocalLoss, mode: object, margin: np.ndarray) -> np.ndarray:
    """logit P(y = 1 | x) under ``focal_proba`` = ``mode``: a logit, so both classes keep full precision."""
    if mode == "posterior":
        return loss.posterior_margin(np.ravel(margin))
    if mode == "sigmoid":
        return np.asarray(np.ravel(margin), dtype=np.float64)
    raise ValueError(f"focal_proba must be one of {list(PROBA_MODES)}, got {mode!r}")


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


def _fold_into_first_tree(booster: lgb.Booster, start: float) -> None:
    """Add ``start`` to every leaf of tree 0, as LightGBM's boost_from_average does."""
    if start == 0.0:
        return
    n_leaves = booster.dump_model(num_iteration=1)["tree_info"][0]["num_leaves"]
    for leaf in range(n_leaves):
        booster.set_leaf_output(0, leaf, booster.get_leaf_output(0, leaf) + start)


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


def train(
    loss: FocalLoss,
    params: dict[str, Any] | None,
    train_set: lgb.Dataset,
    num_boost_round: int = 100,
    *,
    init_score: float | str = "focal",
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
    loss : FocalLoss
    params : dict or None
        LightGBM parameters, without ``objective`` (set here); None is ``{}``.
        ``num_threads`` also sets the gradient kernel's threads. Built-in
        metrics that read the score as a probability (``binary_logloss``,
        ``binary_error``, ``cross_entropy``...) are refused, and so are
        LightGBM's class weighting parameters (``scale_pos_weight``,
        ``is_unbalance``, ``pos_bagging_fraction``, ``neg_bagging_fraction``),
        which LightGBM ignores with a custom objective: weigh classes with
        ``loss.alpha`` or the Dataset's ``weight``.
    train_set, num_boost_round, valid_sets, valid_names, init_model, keep_training_booster, callbacks
        As in ``lgb.train``. The Datasets are not changed (several threads
        may train on one Dataset at once).
    init_score : "focal" or float, default "focal"
        The constant margin boosting starts from. ``"focal"`` is
        :meth:`FocalLoss.init_score` of the training labels and weights; a
        number is used as given; ``0.0`` is plain LightGBM (a Dataset's own
        per-row ``init_score`` is then used as is, not saved in the model).
        A nonzero start is added to the scores the focal objective, the focal
        metric and every ``feval`` receive (LightGBM's own score buffers
        start at 0), so built-in metrics other than rank metrics (``auc``,
        ``average_precision``, ``map``, ``ndcg``) are refused with it; after
        training it is added to every leaf of the first tree, so the booster
        predicts correct margins on its own. Ignored (no start) when
        ``init_model`` is given: that model's predictions are the start. To
        continue a DART booster, pass it as ``init_model`` rather than calling
        ``update()`` on a kept one: DART may rescale the first tree, and the
        start with it.
    feval : callable or list of callables, optional
        Extra evaluation functions; the focal metric (:func:`metric`) is
        always evaluated, before these (LightGBM reports built-in ``metric``
        values first).

    Returns
    -------
    lightgbm.Booster
        ``booster.predict(X, raw_score=True)`` gives raw margins of shape
        ``(n,)``; :func:`predict_posterior` gives P(y = 1 | x). The loss is
        recorded in the model text (see :func:`predict_posterior`), so
        ``predict_posterior(None, booster, X)`` works, also on a copy read
        back with ``lgb.Booster(model_file=...)``; with
        ``keep_training_booster=True`` only on this object and its pickles.
    """
    loss = check_loss(loss, binary_only=True)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of LightGBM parameters (or None), got {type(params).__name__}")
    params = dict(params)
    set_objective = sorted(k for k in _aliases("objective") if params.get(k) is not None)
    if set_objective:
        raise ValueError(f"gbfocal.lightgbm.train sets the objective itself; remove {set_objective} from params")
    for key in _aliases("metric"):
        _refuse_probability_metrics(params.get(key), f"params[{key!r}]")
    _refuse_ignored_class_weights(params)
    _refuse_random_forest(params)
    start = _check_start(init_score)
    threads = _threads_from_params(params)
    objective_, metric_ = objective(loss, n_threads=threads), metric(loss, n_threads=threads)
    params["objective"] = objective_
    fevals = _as_list(feval)

    if not isinstance(train_set, lgb.Dataset):
        raise TypeError(f"train_set must be a lightgbm.Dataset, got {type(train_set).__name__}")
    value = 0.0
    if init_model is not None:
        if start != "focal" and start != 0.0:
            raise ValueError("init_score cannot be set together with init_model: the model's predictions are the start")
    elif start != 0.0:
        _refuse_linear_trees(params)
        _refuse_shifted_metrics(params)
        valid = list(valid_sets) if valid_sets is not None else []
        for name, ds in [("train_set", train_set), *((f"valid_sets[{i}]", ds) for i, ds in enumerate(valid))]:
            if isinstance(ds, lgb.Dataset) and _has_init_score(ds):
                raise ValueError(
                    f"{name} already has an init_score. LightGBM does not save a Dataset's init_score in the "
                    "model, so gbfocal adds the start itself; pass init_score=0.0 to train on your per-row "
                    "init_score as is (predictions then need it added back)."
                )
        value = PreparedRows(*_dataset_labels(train_set, "train_set")).init_score(loss) if start == "focal" else start
        # The start goes to the callbacks, not into the Datasets' init_score: a caller's Dataset stays
        # untouched, so other threads training on it at the same time see no gbfocal state.
        objective_._start = metric_._start = value
        fevals = [_PlusStart(f, value) for f in fevals]

    booster = lgb.train(
        params,
        train_set,
        num_boost_round,
        valid_sets=valid_sets,
        valid_names=valid_names,
        feval=[metric_, *fevals],
        init_model=init_model,
        keep_training_booster=keep_training_booster,
        callbacks=[*_as_list(callbacks), _SkipObjectiveReset()],
    )
    _fold_into_first_tree(booster, value)
    _record_loss(booster, loss, keep_training_booster)
    return booster


# ---------------------------------------------------------------------- scikit-learn
_FIT_HAS_EVAL_XY = "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters


class LGBMFocalClassifier(lgb.LGBMClassifier):
    """LightGBM binary classifier trained with the α-balanced focal loss.

    Parameters
    ----------
    focal_alpha : float in (0, 1), default 0.25
        Weight of the positive class (``classes_[1]``) in the focal loss.
    focal_gamma : float >= 0, default 2.0
        Focusing parameter γ.
    focal_hessian : {"positive", "exact", "abs", "clip"}, default "positive"
        Hessian policy, see :class:`gbfocal.FocalLoss`.
    focal_proba : {"posterior", "sigmoid"}, default "posterior"
        What ``predict_proba`` returns (and ``predict`` thresholds at 1/2):
        the class posterior recovered from the focal margin
        (:meth:`gbfocal.FocalLoss.posterior`), or σ(margin), which focal loss
        leaves under-confident. As ``XGBFocalClassifier``.
    **lightgbm_params
        Any ``lightgbm.LGBMClassifier`` parameter (``n_estimators``,
        ``learning_rate``, ``class_weight``, LightGBM's own ``alpha``...),
        passed through untouched, except ``objective``, which is the focal
        loss. Built-in probability metrics (``binary_logloss``...) are refused
        because LightGBM would compute them on raw scores.

    Boosting starts from the focal-optimal constant margin of the (class-
    and sample-weighted) training labels, saved in the first tree, so
    ``booster_`` predicts correct margins on its own. Saving: pickle the
    estimator (``predict_proba`` comes back exactly), or save ``booster_``:
    its ``predict`` returns raw margins, not probabilities, and
    ``gbfocal.lightgbm.predict_posterior(None, booster, X)`` gives
    ``predict_proba(X)[:, 1]`` from it (the loss is recorded in the model).
    LightGBM's ``scale_pos_weight``, ``is_unbalance``,
    ``pos_bagging_fraction`` and ``neg_bagging_fraction`` are refused: they
    do nothing with a custom objective (use ``focal_alpha``,
    ``class_weight`` or ``sample_weight``).
    ``predict_proba`` returns ``(n, 2)`` probabilities (see ``focal_proba``),
    ``predict`` the original labels, ``decision_function`` their log-odds
    ``(n,)`` and ``predict(X, raw_score=True)`` the raw margins. With
    ``eval_set``, the weighted mean focal loss is reported as ``"focal"``
    (the first metric unless a built-in ``metric`` is set). Binary only:
    multiclass targets raise a ValueError.
    """

    def __init__(
        self,
        *,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        focal_hessian: str = DEFAULT_HESSIAN,
        focal_proba: str = "posterior",
        **lightgbm_params: Any,
    ) -> None:
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.focal_hessian = focal_hessian
        self.focal_proba = focal_proba
        super().__init__(**lightgbm_params)

    def focal_loss(self) -> FocalLoss:
        """The :class:`~gbfocal.FocalLoss` of the current ``focal_*`` parameters."""
        return focal_loss_of(self)

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self) -> Any:  # sklearn.utils.Tags
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        tags = super()._more_tags()
        tags["binary_only"] = True
        return tags

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
        if any(given.get(k) is not None for k in _aliases("metric")):
            _refuse_probability_metrics(params.get("metric"), "metric")
        else:
            params["metric"] = "None"  # LightGBM's default, binary_logloss, would misread raw scores
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
        """Fit on ``X`` (n, n_features) and binary labels ``y`` (n,) of any type.

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
        assert_all_finite(y, input_name="y")
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) != 2:
            kind = "only one class" if len(encoder.classes_) < 2 else f"{len(encoder.classes_)} classes"
            raise ValueError(
                f"Only binary classification is supported. {type(self).__name__} needs exactly two classes "
                f"(multiclass focal loss is not implemented yet); y has {kind}: {encoder.classes_.tolist()[:10]}"
            )
        self._focal_loss = self.focal_loss()
        _positive_logit(self._focal_loss, self.focal_proba, np.zeros(1))  # checks focal_proba before training
        self._focal_metric = _SklearnFocalMetric(self._focal_loss)

        evals = _eval_pairs(eval_set, eval_X, eval_y)
        user_metrics = _as_list(eval_metric)
        _refuse_probability_metrics(user_metrics, "eval_metric")

        start = 0.0
        if init_model is None and init_score is None and eval_init_score is None:
            _refuse_linear_trees(self.get_params())
            y01 = encoder.transform(column_or_1d(y))
            weight = as_weights(sample_weight, y01.shape[0], "sample_weight")  # before LightGBM reads it
            if self.class_weight is not None:  # as LightGBM combines them
                class_weight = compute_sample_weight(self.class_weight, y)
                weight = class_weight if weight is None else weight * class_weight
            if weight is not None and not np.any(weight > 0):
                raise ValueError(
                    "sample_weight (times class_weight) is zero for every row: at least one row of each class "
                    "needs a weight > 0"
                )
            start = PreparedRows(y01, _as_stored_weight(weight)).init_score(self._focal_loss)
            init_score = np.full(y01.shape[0], start)
            eval_init_score = [np.full(np.shape(yv)[0], start) for _, yv in evals]

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
            callbacks=[*_as_list(callbacks), _SkipObjectiveReset()],
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
        """Log-odds of ``predict_proba(X)[:, 1]``, shape ``(n,)``: > 0 where ``predict`` gives ``classes_[1]``.

        With ``focal_proba="sigmoid"`` these are the booster's raw margins;
        with ``"posterior"``, :meth:`FocalLoss.posterior_margin` of them. The
        raw margins themselves: ``predict(X, raw_score=True)``.
        """
        margin = self._lightgbm_predict(
            X,
            raw_score=True,
            start_iteration=start_iteration,
            num_iteration=num_iteration,
            validate_features=validate_features,
            **kwargs,
        )
        return _positive_logit(self._focal_loss, self.focal_proba, margin)

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
        """Class probabilities of shape ``(n, 2)``, columns in the order of ``classes_``, rows summing to 1.

        The posterior recovered from the focal margin, or σ(margin) with
        ``focal_proba="sigmoid"``. ``raw_score`` (raw margins, ``(n,)``),
        ``pred_leaf`` and ``pred_contrib`` return what
        ``lightgbm.LGBMModel.predict`` returns for them.
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
        logit = self.decision_function(
            X,
            start_iteration=start_iteration,
            num_iteration=num_iteration,
            validate_features=validate_features,
            **kwargs,
        )
        return np.column_stack([sigmoid(-logit), sigmoid(logit)])

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
