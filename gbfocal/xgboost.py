"""XGBoost adapter: the focal loss as a custom objective, a metric and a classifier.

Native API::

    import xgboost as xgb
    import gbfocal.xgboost as gfx
    from gbfocal import FocalLoss

    loss = FocalLoss(alpha=0.25, gamma=2.0)
    booster = gfx.train(loss, {"tree_method": "hist"}, dtrain, 200, evals=[(dvalid, "valid")])
    # or, by hand, with xgboost.train:
    booster = xgb.train(gfx.params(loss, dtrain, tree_method="hist"), dtrain, 200,
                        obj=gfx.objective(loss), custom_metric=gfx.metric(loss),
                        evals=[(dvalid, "valid")])

scikit-learn API: :class:`XGBFocalClassifier`.

How XGBoost treats a callable objective (checked in its source, 2.1 to 3.2):

* It hands the objective the raw margins of the training rows as a float32
  NumPy array of shape ``(n,)``, also with ``device="cuda"``, and accepts
  NumPy or CuPy gradients and Hessians back.
* It estimates no starting score. Boosting starts from ``base_score`` pushed
  through the link of the *configured* objective: with
  ``objective="binary:logistic"`` that is ``logit(base_score)``, and
  ``predict`` returns σ(margin). So :func:`params` and :func:`train` set
  ``objective="binary:logistic"`` and ``base_score = σ(loss.init_score(y))``:
  the first tree is fitted at the focal-optimal constant margin, and the
  saved model gives the same margins without gbfocal.
* It ignores ``scale_pos_weight`` (that weighting lives in the built-in
  objective); the focal loss has ``alpha`` for it, so setting both is refused.

Probabilities: σ(margin), what ``Booster.predict`` returns, is *not*
P(y = 1 | x) under the focal loss (it is pulled towards 1/2 and shifted by α).
:func:`predict_posterior` returns the recovered posterior
(:meth:`FocalLoss.posterior`); :func:`train` stores the loss in the booster
(attribute ``"gbfocal_loss"``, saved with the model), so
``predict_posterior(None, booster, data)`` needs only the booster, and a plain
XGBoost deployment can apply the posterior formula to
``predict(output_margin=True)`` (README, "Serving a saved focal model").

Labels and weights are read from each DMatrix once, on first use, and kept
(with the gradient/Hessian buffers) for as long as that DMatrix lives; build a
new objective or metric if you change a DMatrix's labels or weights in place.
Objectives and metrics may be shared by threads that train at the same time.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import xgboost as xgb
from scipy.special import expit
from xgboost.sklearn import XGBModel

from gbfocal import _validation as V
from gbfocal._loss import DEFAULT_HESSIAN, HESSIAN_POLICIES, FocalLoss, PreparedRows, check_loss, focal_loss_of

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

_OBJECTIVE = "binary:logistic"


# --------------------------------------------------------------------------- rows per DMatrix


def _rows_of_dmatrix(dmatrix: xgb.DMatrix) -> PreparedRows:
    labels = dmatrix.get_label()
    if labels.size == 0:
        raise ValueError("the DMatrix has no labels; build it with xgboost.DMatrix(X, label=y) with y in {0, 1}")
    if labels.size != dmatrix.num_row():
        raise ValueError(
            f"the DMatrix has {labels.size} labels for {dmatrix.num_row()} rows; the focal loss is binary and "
            "needs exactly one 0/1 label per row"
        )
    return PreparedRows(labels, dmatrix.get_weight())


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
            f"expected one raw margin per row, got predictions of shape {predt.shape}; the focal loss is binary "
            "(multiclass and multi-target models are not supported)"
        )
    return predt


# --------------------------------------------------------------------------- native API


class FocalObjective:
    """XGBoost custom objective for a :class:`~gbfocal.FocalLoss`.

    Call signature ``(predt, dtrain) -> (grad, hess)``, as ``xgboost.train(obj=...)``
    expects. ``predt`` holds the **raw margins** (not probabilities) of the
    ``n`` training rows, shape ``(n,)`` or ``(n, 1)``, float32 as XGBoost
    passes them (float64 is accepted). ``grad`` and ``hess`` are derivatives
    with respect to those margins, shape ``(n,)``, same dtype as ``predt``,
    sample weights of ``dtrain`` applied: NumPy arrays with ``device="cpu"``,
    CuPy arrays computed on the current GPU with ``device="cuda"``. Either way
    they are buffers kept for that DMatrix and overwritten by the next call
    (XGBoost copies them at once). On the host, float32 margins are computed
    in float32 arithmetic (as XGBoost computes its own objectives), 8 rows per
    AVX2 instruction: within ~1e-5 relative of the float64 values (see
    :class:`~gbfocal.FocalLoss`).

    Labels and weights are read from ``dtrain`` and validated on the first
    call only. Picklable (the per-DMatrix state is not pickled). One objective
    may serve several threads training at once, on the same DMatrix or not:
    each thread gets its own gradient/Hessian buffers.
    """

    def __init__(self, loss: FocalLoss, *, device: str = "cpu", n_threads: int | None = None) -> None:
        self.loss = check_loss(loss, binary_only=True)
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        self.device = device
        self.n_threads = V.check_n_threads(n_threads)
        self._init_state()

    def _init_state(self) -> None:
        self._rows = _PerDMatrix()
        # DeviceRows keep the gradient buffers they return, so each thread needs its own.
        self._device_rows = _PerThreadPerDMatrix()

    def __getstate__(self) -> dict:
        return {"loss": self.loss, "device": self.device, "n_threads": self.n_threads}

    def __setstate__(self, state: dict) -> None:
        self.loss, self.device, self.n_threads = state["loss"], state["device"], state["n_threads"]
        self._init_state()

    def __repr__(self) -> str:
        return f"FocalObjective({self.loss!r}, device={self.device!r}, n_threads={self.n_threads!r})"

    def prepared(self, dmatrix: xgb.DMatrix) -> PreparedRows:
        """The validated labels and weights of ``dmatrix`` (read once, then cached)."""
        return self._rows.get(dmatrix, _rows_of_dmatrix)

    def __call__(self, predt: np.ndarray, dtrain: xgb.DMatrix) -> tuple[Any, Any]:
        if self.device == "cuda":
            rows = self._device_rows.get(dtrain, self._rows_on_device)
        else:
            rows = self.prepared(dtrain)
        return rows.gradient_hessian(self.loss, _one_margin_per_row(predt), self.n_threads)

    def _rows_on_device(self, dmatrix: xgb.DMatrix) -> Any:
        from gbfocal import _cuda  # CUDA stays unimported until a GPU objective runs

        return _cuda.DeviceRows(self.prepared(dmatrix))


class FocalMetric:
    """XGBoost custom metric: the weighted mean focal loss ``Σ w FL / Σ w``.

    Call signature ``(predt, dmatrix) -> (name, value)``, as
    ``xgboost.train(custom_metric=...)`` expects. ``predt`` must hold **raw
    margins**, shape ``(n,)`` or ``(n, 1)``: XGBoost passes margins to the
    metric when training with a custom objective (as with
    :class:`FocalObjective`); with a built-in objective it passes
    probabilities, and this metric would be wrong. Smaller is better, so
    early stopping minimises it. Labels and weights are read from each
    DMatrix once. Picklable; may be shared by threads.
    """

    def __init__(self, loss: FocalLoss, *, name: str = "focal", n_threads: int | None = None) -> None:
        self.loss = check_loss(loss, binary_only=True)
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
        rows = self._rows.get(dmatrix, _rows_of_dmatrix)
        return self.name, rows.mean_loss(self.loss, _one_margin_per_row(predt), self.n_threads)


def objective(loss: FocalLoss, *, device: str = "cpu", n_threads: int | None = None) -> FocalObjective:
    """The picklable XGBoost objective ``(predt, dtrain) -> (grad, hess)`` of ``loss``.

    ``predt`` are raw margins, shape ``(n,)``; ``grad``/``hess`` have shape
    ``(n,)`` and ``predt``'s dtype (float32 from XGBoost). ``device="cpu"``
    (default) computes on the host with ``n_threads`` threads (default: every
    core this process may use) and returns NumPy; ``device="cuda"`` computes
    on the GPU and returns CuPy (needs the ``gpu`` extra). See
    :class:`FocalObjective`.
    """
    return FocalObjective(loss, device=device, n_threads=n_threads)


def metric(loss: FocalLoss, *, name: str = "focal", n_threads: int | None = None) -> FocalMetric:
    """The picklable XGBoost metric ``(predt, dmatrix) -> (name, weighted mean focal loss)``.

    ``predt`` are raw margins, shape ``(n,)``. See :class:`FocalMetric`.
    """
    return FocalMetric(loss, name=name, n_threads=n_threads)


def _prepared(data: object, sample_weight: object) -> PreparedRows:
    if isinstance(data, xgb.DMatrix):
        if sample_weight is not None:
            raise TypeError("a DMatrix carries its own weights: pass sample_weight=None (set DMatrix(weight=...))")
        return _rows_of_dmatrix(data)
    return PreparedRows(data, sample_weight)


def base_score(loss: FocalLoss, data: xgb.DMatrix | np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """XGBoost's ``base_score`` (a probability) that starts boosting at ``loss.init_score``.

    ``data`` is a labelled DMatrix (its labels and weights are used) or the
    0/1 labels, shape ``(n,)``, with optional ``sample_weight`` of shape
    ``(n,)``. Returns ``σ(init_score)``; XGBoost with
    ``objective="binary:logistic"`` turns it back into the margin
    ``logit(base_score)`` (in float32).
    """
    return float(expit(_prepared(data, sample_weight).init_score(loss)))


def _focal_params(params: Mapping[str, Any], start: float | None) -> dict[str, Any]:
    """``params`` with the logistic link and, unless given, the focal starting score."""
    out = dict(params)
    given = out.get("objective")
    if given is not None and given != _OBJECTIVE:
        raise ValueError(
            f"objective={given!r} conflicts with the focal loss: gbfocal supplies the gradients and needs "
            f"objective={_OBJECTIVE!r} for the link (predict returns probabilities, base_score is a probability); "
            "leave objective unset"
        )
    spw = out.get("scale_pos_weight")
    if spw is not None and float(spw) != 1.0:
        raise ValueError(
            f"scale_pos_weight={spw!r} has no effect with a custom objective (XGBoost applies it inside its "
            "built-in objective only); weigh the classes with the focal loss's alpha or with sample weights"
        )
    out["objective"] = _OBJECTIVE
    if start is not None and out.get("base_score") is None:
        out["base_score"] = start
    return out


def params(
    loss: FocalLoss,
    data: xgb.DMatrix | np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    **xgb_params: Any,
) -> dict[str, Any]:
    """XGBoost parameters for training ``loss`` with :func:`objective`.

    Returns ``xgb_params`` plus ``objective="binary:logistic"`` (the link:
    ``base_score`` is a probability and ``predict`` returns σ(margin)) and
    ``base_score=`` :func:`base_score` ``(loss, data, sample_weight)``, so
    the first tree starts at the focal-optimal constant margin. ``data`` is
    the labelled training DMatrix, or the training labels of shape ``(n,)``.
    A ``base_score`` in ``xgb_params`` is kept (it is a probability). Every
    other parameter, XGBoost's ``gamma`` (min split loss) and ``alpha`` (L1)
    included, passes through untouched.

    The trained model's margins need no gbfocal, but its ``predict``,
    σ(margin), is not P(y = 1 | x) under the focal loss: use
    :func:`predict_posterior` (or the NumPy formula in the README, "Serving
    a saved focal model").
    """
    return _focal_params(xgb_params, base_score(loss, data, sample_weight))


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
    loss: FocalLoss,
    params: Mapping[str, Any] | None,
    dtrain: xgb.DMatrix,
    num_boost_round: int = 10,
    *,
    evals: Sequence[tuple[xgb.DMatrix, str]] | None = None,
    objective_device: str = "cpu",
    **train_kwargs: Any,
) -> xgb.Booster:
    """``xgboost.train`` with the focal objective, metric and starting score set.

    Trains on ``dtrain`` (labels in {0, 1}, optional weights) with
    :func:`objective` and, unless ``custom_metric`` is given, :func:`metric`
    reported for every set in ``evals`` (early stopping minimises it;
    XGBoost's default metric is then switched off unless ``params`` name an
    ``eval_metric``). ``params`` (None: ``{}``) go through :func:`params`: the
    logistic link and ``base_score`` from ``loss.init_score`` are added; when
    continuing from ``xgb_model`` the loaded model's starting score is kept.
    The objective and metric use ``nthread`` (or ``n_jobs``) threads when set.
    ``objective_device`` is :func:`objective`'s ``device``. Other keyword
    arguments go to ``xgboost.train``.

    Returns the Booster, with ``loss`` stored in its attribute
    ``"gbfocal_loss"`` (JSON, saved with the model; read it back with
    :func:`booster_loss`). ``predict(output_margin=True)`` gives raw margins;
    ``predict`` gives σ(margin), which is not P(y = 1 | x) under the focal
    loss: :func:`predict_posterior` is.
    """
    loss = check_loss(loss, binary_only=True)
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
    continuing = train_kwargs.get("xgb_model") is not None
    start = None if continuing else float(expit(obj.prepared(dtrain).init_score(loss)))
    full = _focal_params(params, start)
    if train_kwargs.get("custom_metric") is None:
        train_kwargs["custom_metric"] = metric(loss, n_threads=n_threads)
        if full.get("eval_metric") is None:  # report the focal loss alone, so early stopping uses it
            full["disable_default_eval_metric"] = True
    booster = xgb.train(full, dtrain, num_boost_round, evals=evals, obj=obj, **train_kwargs)
    _store_loss(booster, loss)
    return booster


# --------------------------------------------------------------------------- the loss inside a booster

LOSS_ATTR = "gbfocal_loss"
"""Booster attribute holding the training loss as JSON ``{"loss": "focal", "alpha", "gamma", "hessian"}``."""


def _store_loss(booster: xgb.Booster, loss: FocalLoss) -> None:
    """Record ``loss`` in ``booster`` (attribute :data:`LOSS_ATTR`), so it travels in saved files."""
    record = {"loss": "focal", "alpha": loss.alpha, "gamma": loss.gamma, "hessian": loss.hessian}
    booster.set_attr(**{LOSS_ATTR: json.dumps(record)})


def _loss_from_json(text: str, where: str) -> FocalLoss:
    """The :class:`FocalLoss` of a :data:`LOSS_ATTR` record, every field checked."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where} is not valid JSON ({err}); the model file is damaged") from None
    keys = {"loss", "alpha", "gamma", "hessian"}
    if not isinstance(record, dict) or set(record) != keys or record["loss"] != "focal":
        raise ValueError(
            f"{where} must be a JSON object with exactly the keys {sorted(keys)} and loss 'focal', got {text!r}; "
            "it was not written by gbfocal"
        )
    try:
        return FocalLoss(V.check_alpha(record["alpha"]), V.check_gamma(record["gamma"]), hessian=record["hessian"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} holds an invalid focal loss: {err}") from None


def booster_loss(booster: xgb.Booster) -> FocalLoss:
    """The :class:`FocalLoss` a booster was trained with, as :func:`train` stored it.

    Read from the booster's attribute ``"gbfocal_loss"``, which
    :func:`train` and :meth:`XGBFocalClassifier.fit` set and XGBoost saves in
    the model file (JSON and UBJSON). Raises ``ValueError`` if the booster has
    none (trained with ``xgboost.train`` by hand, or by an older gbfocal).
    """
    if not isinstance(booster, xgb.Booster):
        raise TypeError(f"booster must be an xgboost.Booster, got {type(booster).__name__}")
    text = booster.attr(LOSS_ATTR)
    if text is None:
        raise ValueError(
            f"the booster carries no focal loss (attribute {LOSS_ATTR!r}): it was not trained with "
            "gbfocal.xgboost.train or XGBFocalClassifier; pass the FocalLoss it was trained with"
        )
    return _loss_from_json(text, f"the booster's {LOSS_ATTR!r} attribute")


def _best_iteration_range(booster: xgb.Booster) -> tuple[int, int] | None:
    """``(0, best_iteration + 1)`` after early stopping, else None (every tree)."""
    best = booster.attr("best_iteration")
    return None if best is None else (0, int(best) + 1)


def predict_posterior(
    loss: FocalLoss | None, booster: xgb.Booster, data: xgb.DMatrix, **predict_kwargs: Any
) -> np.ndarray:
    """P(y = 1 | x) of a focal-trained booster: :meth:`FocalLoss.posterior` of its raw margins.

    ``booster.predict`` returns σ(margin), which under focal loss is
    under-confident; this returns the recovered class posterior, float64,
    shape ``(n,)``. ``loss=None`` takes the loss stored in the booster
    (:func:`booster_loss`); a given ``loss`` must have the stored α and γ, if
    there is one. After early stopping the best iteration's trees are used
    (as the scikit-learn API does), unless ``iteration_range`` is given.
    ``predict_kwargs`` go to ``Booster.predict``.
    """
    if loss is None:
        loss = booster_loss(booster)
    else:
        loss = check_loss(loss, binary_only=True)
        stored = booster.attr(LOSS_ATTR) if isinstance(booster, xgb.Booster) else None
        if stored is not None:
            trained = _loss_from_json(stored, f"the booster's {LOSS_ATTR!r} attribute")
            if (trained.alpha, trained.gamma) != (loss.alpha, loss.gamma):
                raise ValueError(
                    f"loss={loss!r} differs from the loss the booster was trained with, {trained!r}: the posterior "
                    "would be wrong; pass loss=None to use the booster's own"
                )
    if predict_kwargs.get("iteration_range") is None:
        predict_kwargs["iteration_range"] = _best_iteration_range(booster) or (0, 0)
    margin = booster.predict(data, output_margin=True, **predict_kwargs)
    return loss.posterior(np.ravel(margin))


# --------------------------------------------------------------------------- scikit-learn API


class _FitObjective:
    """The focal objective in the scikit-learn wrapper's signature.

    ``XGBClassifier.fit`` only takes a callable objective of the form
    ``(y_true, y_pred[, sample_weight]) -> (grad, hess)`` and re-reads the
    labels for it every round. The labels and weights it passes are the very
    ones :meth:`XGBFocalClassifier.fit` prepared once, so those are used and
    the per-round copies are ignored.
    """

    def __init__(self, loss: FocalLoss, rows: PreparedRows, n_threads: int | None) -> None:
        self.loss, self.rows, self.n_threads = loss, rows, n_threads

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray | None = None):
        if np.shape(y_true)[0] != self.rows.n_rows:  # pragma: no cover - XGBoost trains on the rows given to fit
            raise RuntimeError("XGBoost passed a training set other than the one given to fit")
        return self.rows.gradient_hessian(self.loss, _one_margin_per_row(y_pred), self.n_threads)


class _FitMetric:
    """The focal metric in the wrapper's signature ``(y_true, y_score[, sample_weight]) -> value``."""

    def __init__(self, loss: FocalLoss, n_threads: int | None) -> None:
        self.loss, self.n_threads = loss, n_threads
        self.__name__ = "focal"  # the wrapper names the metric after its function

    def __call__(self, y_true: np.ndarray, y_score: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        return self.loss.mean_loss(y_true, _one_margin_per_row(y_score), sample_weight, self.n_threads)


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
_MODEL_ATTR = "gbfocal"  # booster attribute that carries classes_ and the focal parameters in saved models
_META_KEYS = frozenset({"classes", "classes_dtype", "focal", "base_score"})
_CLASS_DTYPE_KINDS = "biufUO"  # what np.unique of fit's labels can be; "O": strings held as objects (pandas)


PROBA_MODES = ("posterior", "sigmoid")


def _check_fitted(estimator: object) -> None:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)


def _check_proba_mode(mode: object) -> str:
    if not isinstance(mode, str) or mode not in PROBA_MODES:
        raise ValueError(
            f"focal_proba must be one of {list(PROBA_MODES)}, got {mode!r}: 'posterior' for P(y | x) recovered "
            "from the focal margin, 'sigmoid' for σ(margin)"
        )
    return mode


def _classes_from_meta(meta: Mapping[str, Any]) -> np.ndarray:
    """``classes_`` from saved metadata: a 1-D array of two distinct labels, sorted, of a plain dtype."""
    values, dtype = meta.get("classes"), meta.get("classes_dtype")
    try:
        dtype = np.dtype(dtype) if isinstance(dtype, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _CLASS_DTYPE_KINDS:
        raise ValueError(f"classes_dtype must name a NumPy dtype of kind {list(_CLASS_DTYPE_KINDS)}, got {dtype!r}")
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not all(isinstance(v, (str, int, float)) and v is not None for v in values)
    ):
        raise ValueError(f"classes must be a list of two labels (numbers or strings), got {values!r}")
    try:
        classes = np.array(values, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"classes {values!r} do not fit classes_dtype {dtype}: {err}") from None
    if classes.ndim != 1 or not classes[0] < classes[1]:
        raise ValueError(f"classes must be two distinct labels in sorted order, got {values!r}")
    return classes


def _focal_from_meta(meta: Mapping[str, Any]) -> tuple[FocalLoss, str]:
    """The trained loss and ``focal_proba`` from saved metadata, each value checked."""
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


def _base_score_from_meta(meta: Mapping[str, Any]) -> float | None:
    value = meta.get("base_score")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"base_score must be null or a probability in (0, 1), got {value!r}")
    return float(value)


class XGBFocalClassifier(xgb.XGBClassifier):
    """XGBoost classifier trained with the α-balanced focal loss (binary).

    A :class:`xgboost.XGBClassifier` whose training objective is
    :class:`~gbfocal.FocalLoss` ``(focal_alpha, focal_gamma,
    hessian=focal_hessian)``. The focal parameters carry a ``focal_`` prefix
    because XGBoost already owns ``gamma`` (min split loss) and ``alpha``
    (L1 regularisation); those, and every other XGBoost parameter, keep their
    XGBoost meaning and pass through untouched.

    * ``fit(X, y, sample_weight=None, eval_set=None, ...)``: ``y`` holds any
      two class labels (numbers, strings, booleans); ``classes_`` is their
      sorted array and ``classes_[1]`` is the positive class (weight
      ``focal_alpha``). Boosting starts at the focal-optimal constant margin
      (``base_score`` ``= σ(init_score)``) unless ``base_score`` is given or
      ``xgb_model`` continues a model. With ``eval_metric=None`` every
      ``eval_set`` reports the weighted mean focal loss as ``"focal"``, and
      ``early_stopping_rounds`` stops on it; set ``eval_metric`` to use
      XGBoost's metrics instead. More than two classes raise ``ValueError``.
    * ``decision_function(X)``: log-odds of ``predict_proba``, shape ``(n,)``
      (> 0 exactly where ``predict`` picks ``classes_[1]``); raw margins are
      ``predict(X, output_margin=True)``.
    * ``predict_proba(X)``: shape ``(n, 2)``, columns ordered as ``classes_``,
      rows summing to 1; ``predict(X)`` the more probable of ``classes_``.
      ``focal_proba="posterior"`` (default) returns the class posterior
      recovered from the focal margin (:meth:`gbfocal.FocalLoss.posterior`);
      ``"sigmoid"`` returns σ(margin) (under-confident for γ > 0).
    * ``save_model``/``load_model`` keep ``classes_``, the trained loss and
      ``focal_proba``, so a loaded estimator's ``predict_proba`` equals the
      saved one's. The file is an ordinary ``binary:logistic`` XGBoost
      model: plain XGBoost loads it, and its ``predict`` returns σ(margin) of
      ``classes_[1]``, *not* this estimator's ``predict_proba`` (the focal
      posterior) unless ``focal_proba="sigmoid"``. To serve calibrated
      probabilities without gbfocal, apply the posterior formula to
      ``predict(output_margin=True)`` (README, "Serving a saved focal model").

    Predictions use the loss the model was trained with (``_focal_loss``,
    set by ``fit``); changing ``focal_alpha``/``focal_gamma`` afterwards
    takes effect at the next ``fit``. ``focal_proba`` only selects the
    output and is read at prediction time. A ``fit`` or ``load_model`` that
    raises leaves the estimator as it was.

    ``objective`` must stay ``"binary:logistic"`` (the link; the loss is
    the focal one) and ``scale_pos_weight`` unset (XGBoost ignores it with a
    custom objective; use ``focal_alpha`` or ``sample_weight``).

    scikit-learn's estimator checks pass (``tests/test_xgboost.py`` runs
    them) except the two sample-weight equivalence checks, which demand
    agreement to 1e-7: XGBoost takes float32 gradients, so a row of weight
    3 contributes round32(3 g) where three copies contribute 3 round32(g),
    and the two models agree to float32 round-off (2.6e-7 measured; a test
    checks the equivalence at 1e-5). XGBoost's own objectives also store
    ``w * g`` as float32.
    """

    def __init__(
        self,
        *,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        focal_hessian: str = DEFAULT_HESSIAN,
        focal_proba: str = "posterior",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.focal_hessian = focal_hessian
        self.focal_proba = focal_proba

    # ------------------------------------------------------------------ parameters
    def focal_loss(self) -> FocalLoss:
        """The :class:`~gbfocal.FocalLoss` of the current ``focal_*`` parameters."""
        return focal_loss_of(self)

    def get_xgb_params(self) -> dict[str, Any]:
        """XGBoost's parameters for the booster: everything but the ``focal_*`` ones."""
        params = super().get_xgb_params()
        for name in _FOCAL_PARAMS:
            params.pop(name, None)
        if isinstance(self.eval_metric, _FitMetric):  # inside fit: report the focal loss alone
            params["disable_default_eval_metric"] = True
        return params

    def _n_threads(self) -> int | None:
        """Threads for the objective: XGBoost's ``n_jobs``, where None or <= 0 means every core."""
        n_jobs = self.n_jobs
        if n_jobs is None or (isinstance(n_jobs, numbers.Real) and not isinstance(n_jobs, bool) and n_jobs <= 0):
            return None
        return V.check_n_threads(n_jobs, "n_jobs")

    def _fitted_loss(self) -> FocalLoss | None:
        """The loss the fitted model was trained with; None for a plain XGBoost model loaded from a file."""
        _check_fitted(self)
        try:
            return self._focal_loss
        except AttributeError:  # unpickled from gbfocal 0.1, which kept no loss: its parameters are the best guess
            return self.focal_loss()

    def _trained_loss(self) -> FocalLoss:
        """The loss the fitted model was trained with, for the posterior."""
        loss = self._fitted_loss()
        if loss is None:
            raise ValueError(
                "this model was loaded from a plain XGBoost file and was not trained with a focal loss, so there "
                "is no focal posterior to recover; use focal_proba='sigmoid'"
            )
        return loss

    # ------------------------------------------------------------------ labels
    @property
    def classes_(self) -> np.ndarray:
        """The two class labels seen in ``fit``, sorted; ``classes_[1]`` is the positive class."""
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
            raise ValueError(f"y has 1 class ({shown}); XGBFocalClassifier needs exactly two classes")
        if kind != "binary" or classes.shape[0] != 2:
            raise ValueError(
                f"Only binary classification is supported. XGBFocalClassifier needs exactly two classes in y, "
                f"got {classes.shape[0]} ({kind} target, first {shown}); multiclass focal loss is not available yet"
            )
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
        """Fit the booster with the focal loss on ``X`` (shape ``(n, d)``) and labels ``y`` (shape ``(n,)``).

        ``sample_weight`` (shape ``(n,)``) weighs rows; ``eval_set`` is a list
        of ``(X_eval, y_eval)`` with labels among those of ``y``; other keyword
        arguments (``verbose``, ``base_margin``, ``base_margin_eval_set``,
        ``feature_weights``) go to :meth:`xgboost.XGBClassifier.fit`. If it
        raises, the estimator keeps its previous fitted state.
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
        loss = self.focal_loss()
        # Validated up front so a bad value names the parameter, not XGBoost's internals.
        _check_proba_mode(self.focal_proba)
        _focal_params({"objective": self.objective, "scale_pos_weight": self.scale_pos_weight}, None)
        classes, y01 = self._fit_classes(y)
        if eval_set is not None:
            eval_set = [(X_eval, self._encode(y_eval, classes, "eval_set labels")) for X_eval, y_eval in eval_set]
        n_threads = self._n_threads()
        rows = PreparedRows(y01, sample_weight)
        if rows.w.shape[0] and not rows.w.any():
            raise ValueError("sample_weight is zero for every row: there is nothing to fit")
        start = self.base_score
        if start is None and xgb_model is None:
            start = float(expit(rows.init_score(loss)))
        eval_metric = _FitMetric(loss, n_threads) if self.eval_metric is None else self.eval_metric
        self._gbfocal_classes = None
        # XGBClassifier.fit takes its objective, metric and base_score from these attributes only;
        # they are set for the call and restored afterwards, so get_params() never changes.
        with _swapped(
            self,
            objective=_FitObjective(loss, rows, n_threads),
            eval_metric=eval_metric,
            base_score=start,
        ):
            super().fit(
                X,
                y01,
                sample_weight=sample_weight,
                eval_set=eval_set,
                sample_weight_eval_set=sample_weight_eval_set,
                xgb_model=xgb_model,
                **kwargs,
            )
        self._gbfocal_classes = classes
        self._focal_loss = loss
        _store_loss(self.get_booster(), loss)
        return self

    # ------------------------------------------------------------------ predict
    def _raw_margin(self, X: Any, **predict_kwargs: Any) -> np.ndarray:
        """The booster's raw margins, shape ``(n,)``, float32."""
        return XGBModel.predict(self, X, output_margin=True, **predict_kwargs)

    def decision_function(
        self, X: Any, *, validate_features: bool = True, base_margin: Any = None, iteration_range: Any = None
    ) -> np.ndarray:
        """Log-odds of ``predict_proba(X)[:, 1]``, shape ``(n,)``: > 0 exactly where ``predict`` gives ``classes_[1]``.

        With ``focal_proba="sigmoid"`` these are the booster's raw margins;
        with ``"posterior"`` (default), :meth:`FocalLoss.posterior_margin` of
        them. The raw margins themselves: ``predict(X, output_margin=True)``.
        """
        mode = _check_proba_mode(self.focal_proba)
        margin = self._raw_margin(
            X, validate_features=validate_features, base_margin=base_margin, iteration_range=iteration_range
        )
        if mode == "sigmoid":
            return margin
        return self._trained_loss().posterior_margin(np.ravel(margin))

    def _positive_posterior(self, margin: np.ndarray) -> np.ndarray:
        """P(y = classes_[1] | x) from the raw margins, shape ``(n,)``, float64.

        ``focal_proba="posterior"`` (default): :meth:`FocalLoss.posterior`, the
        class posterior that the focal-trained margin estimates (σ(margin)
        is pulled towards 1/2 by the focal loss and shifted by α);
        ``"sigmoid"``: σ(margin), what the booster's own ``predict`` returns.
        ``predict`` thresholds the same probability at 1/2. The loss is the
        one the model was trained with, not the current ``focal_*`` parameters.
        """
        if _check_proba_mode(self.focal_proba) == "sigmoid":
            return expit(np.asarray(np.ravel(margin), dtype=np.float64))
        return self._trained_loss().posterior(np.ravel(margin))

    def predict_proba(
        self, X: Any, validate_features: bool = True, base_margin: Any = None, iteration_range: Any = None
    ) -> np.ndarray:
        """Class probabilities, shape ``(n, 2)``, float64, columns in the order of ``classes_``."""
        margin = self._raw_margin(
            X, validate_features=validate_features, base_margin=base_margin, iteration_range=iteration_range
        )
        p = self._positive_posterior(margin)
        return np.column_stack([1.0 - p, p])

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
        meta = {
            "classes": classes.tolist(),
            "classes_dtype": classes.dtype.str,
            "focal": {
                "focal_alpha": loss.alpha,
                "focal_gamma": loss.gamma,
                "focal_hessian": loss.hessian,
                "focal_proba": _check_proba_mode(self.focal_proba),
            },
            "base_score": None if self.base_score is None else float(self.base_score),
        }
        booster = self.get_booster()
        booster.set_attr(**{_MODEL_ATTR: json.dumps(meta)})
        try:
            super().save_model(fname)
        finally:
            booster.set_attr(**{_MODEL_ATTR: None})

    def load_model(self, fname: Any) -> None:
        """Load a model saved by :meth:`save_model`, :func:`train` or a binary ``XGBClassifier``.

        The saved metadata is checked field by field (the focal parameters,
        ``focal_proba``, ``base_score`` and ``classes_``: two distinct sorted
        labels); anything else in it is refused. A booster saved from
        :func:`train` gets ``classes_ = [0, 1]`` and its stored loss; a plain
        ``XGBClassifier`` model gets ``classes_ = [0, 1]`` and
        ``focal_proba="sigmoid"``. If loading fails, the estimator is left as
        it was.
        """
        with _unchanged_on_error(self):
            # XGBModel.load_model loads into the fitted booster in place; a new one keeps the old intact.
            vars(self).pop("_Booster", None)
            super().load_model(fname)
            booster = self.get_booster()
            meta_str = booster.attr(_MODEL_ATTR)
            booster.set_attr(**{_MODEL_ATTR: None})
            if self.n_classes_ != 2:
                raise ValueError(f"the model has {self.n_classes_} classes; XGBFocalClassifier is binary")
            if meta_str is None:
                self._load_booster_only(booster)
                return
            where = f"the model file's {_MODEL_ATTR!r} attribute"
            try:
                meta = json.loads(meta_str)
                if not isinstance(meta, dict) or not set(meta) <= _META_KEYS or "focal" not in meta:
                    shown = sorted(meta) if isinstance(meta, dict) else type(meta).__name__
                    raise ValueError(f"expected an object with the keys {sorted(_META_KEYS)}, got {shown}")
                classes = _classes_from_meta(meta)
                loss, proba = _focal_from_meta(meta)
                start = _base_score_from_meta(meta)
            except (TypeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
                raise ValueError(f"{where} is not valid gbfocal metadata: {err}") from None
            if booster.attr(LOSS_ATTR) is not None and booster_loss(booster) != loss:
                raise ValueError(f"{where} and the booster's {LOSS_ATTR!r} name different losses")
            self._gbfocal_classes = classes
            self._focal_loss = loss
            _store_loss(booster, loss)
            self.focal_alpha, self.focal_gamma, self.focal_hessian = loss.alpha, loss.gamma, loss.hessian
            self.focal_proba = proba
            # XGBModel.load_model copied the fitted base_score into the hyper-parameter; a refit must
            # compute its own starting score again, as the saved estimator would have.
            self.base_score = start

    def _load_booster_only(self, booster: xgb.Booster) -> None:
        """State for a file without estimator metadata: from :func:`train`, or a plain XGBClassifier."""
        self._gbfocal_classes = np.arange(2)
        if booster.attr(LOSS_ATTR) is None:  # plain XGBClassifier: logloss margins, σ is its probability
            self._focal_loss = None
            self.focal_proba = "sigmoid"
            return
        loss = booster_loss(booster)
        self._focal_loss = loss
        self.focal_alpha, self.focal_gamma, self.focal_hessian = loss.alpha, loss.gamma, loss.hessian
        self.focal_proba = "posterior"
        self.base_score = None  # as above: a refit computes its own starting score

    # ------------------------------------------------------------------ tags
    def _more_tags(self) -> dict[str, bool]:
        tags = super()._more_tags()
        tags["multilabel"] = False
        tags["binary_only"] = True
        return tags

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        tags.classifier_tags.multi_class = False
        return tags
