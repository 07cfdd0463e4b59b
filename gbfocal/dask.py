"""Dask: train XGBoost and LightGBM with the focal loss on a cluster.

Native XGBoost API::

    import xgboost as xgb
    from distributed import Client
    import gbfocal.dask as gfd
    from gbfocal import FocalLoss

    client = Client("tcp://scheduler:8786")          # or Client(LocalCluster(...))
    dtrain = xgb.dask.DaskDMatrix(client, X, y)      # X, y: dask arrays/dataframes, partitioned by rows
    out = gfd.xgboost_train(client, FocalLoss(0.25, 2.0), {"tree_method": "hist"}, dtrain, 200)
    margins = xgb.dask.predict(client, out["booster"], dtrain, output_margin=True)

K classes work the same way: pass a :class:`~gbfocal.MulticlassFocalLoss` and labels
0..K-1 (``multi:softprob`` and ``num_class`` are set; margins are ``(n, K)``).

scikit-learn API: :class:`DaskXGBFocalClassifier` and :class:`DaskLGBMFocalClassifier`
(``fit`` on dask collections, two classes or more, switching to the multiclass loss
for K > 2 as the single-machine estimators do; ``predict_proba``/``predict`` return
dask arrays).

How the pieces travel
---------------------
* **Objectives and metrics** are the single-machine ones (``gbfocal.xgboost.objective``,
  ``gbfocal.lightgbm.FocalObjective``). Both engines pickle them to every worker;
  each worker unpickles its own copy, whose per-DMatrix / per-label-array cache
  starts empty (only the loss and the thread count are pickled) and fills on the
  worker's first round from the worker's local rows. Nothing is global: two
  objectives with different losses may train at once in one worker process.
* **The starting score** needs the class weight totals of the *whole* training
  set. :func:`init_score` maps the loss's ``class_weight_totals`` over the
  partitions on the workers and adds the per-partition totals on the client
  (``math.fsum``): 2 floats (binary) or K floats per partition cross the
  network, never the labels; a partition that lacks a class, or is empty,
  contributes zeros. The start is then the loss's ``init_score_from_totals``,
  the very function the single-machine path calls, so both start from the
  same constant or K-vector (bit for bit whenever the totals are exact, e.g.
  unit or integer weights). The estimators' ``focal_alpha="balanced"`` comes
  from the same totals.
* **The XGBoost metric**: XGBoost averages a custom metric's per-worker values,
  which is not the weighted mean over all rows when workers hold different row
  counts. :class:`XGBoostFocalMetric` all-reduces ``(Σ w·FL, Σ w)`` over the
  workers itself (either loss), so the reported focal loss is exactly the
  global one (and equals the single-machine metric on one worker).
* **Numba on workers**: the kernels compile on each worker on first use and are
  cached on disk (``NUMBA_CACHE_DIR``, else beside the package); Numba writes
  cache files atomically, so several worker processes compiling at once into
  one cache directory is safe (tested).
* **Threads**: ``threads_per_worker > 1`` runs several tasks, hence several
  kernel calls, at once in one process. The kernels are plain ``nogil`` Numba
  functions split over rows by a Python thread pool (:mod:`gbfocal._cpu`), not
  ``prange`` loops, so no Numba threading layer (``workqueue``, ``omp``,
  ``tbb``) is ever initialised: nothing to pick per platform, nothing that
  aborts on concurrent parallel launches (tested on the workers). Each
  training task unpickles its own objective and metric (both engines run one
  training task per worker); the one object a worker's threads share is the
  model scattered for prediction, whose predict methods write no state.
  :class:`XGBoostFocalMetric` may be shared anyway: its only state is a
  per-DMatrix cache of read-only labels and weights (tested).

Data layout: features as a dask array chunked by rows only (``chunks=(rows, -1)``)
or a dask dataframe; labels (and weights) as 1-D dask arrays or series with the
same row partitions as the features (same chunk sizes, or same number of
partitions for dataframes), as ``xgboost.dask`` and ``lightgbm.dask`` require.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import distributed
import numpy as np

from gbfocal._estimator import Loss, check_focal_params, estimator_loss
from gbfocal._loss import FocalLoss, check_loss
from gbfocal._multiclass import MulticlassFocalLoss, _check_n_classes

# The estimators subclass the engines' Dask classes, so each engine is imported
# here; a missing engine leaves the other one's half of this module usable.
try:
    import xgboost as _xgb
    import xgboost.dask as _xgb_dask

    import gbfocal.xgboost as _gfx
except ImportError:  # pragma: no cover - xgboost not installed
    _xgb = _xgb_dask = _gfx = None
try:
    import lightgbm.dask as _lgb_dask

    import gbfocal.lightgbm as _gfl
except ImportError:  # pragma: no cover - lightgbm not installed
    _lgb_dask = _gfl = None

__all__ = [
    "DaskLGBMFocalClassifier",
    "DaskXGBFocalClassifier",
    "XGBoostFocalMetric",
    "class_weight_totals",
    "init_score",
    "xgboost_base_score",
    "xgboost_train",
]

#: the single-machine estimators' own parameters, kept out of the engines' parameters
_FOCAL_PARAMS = ("focal_alpha", "focal_gamma", "focal_hessian", "focal_proba")
#: xgboost.dask's estimator parameters that are not the booster's (a Client there cannot travel to workers)
_DASK_PARAMS = ("client", "coll_cfg")


# --------------------------------------------------------------------------- partitions


def _client(client: distributed.Client | None) -> distributed.Client:
    return client if client is not None else distributed.default_client()


def _clone_sharing_client(estimator: Any, clone_parameters: Any) -> Any:
    """``sklearn.base.clone`` of a Dask estimator whose clone shares its client.

    scikit-learn deep-copies every parameter, and a ``distributed.Client``
    cannot be copied ("cannot pickle '_asyncio.Task' object"); so the
    parameters are cloned with the client set aside, and the clone gets the
    same client back.
    """
    client = estimator.client
    estimator.client = None
    try:
        twin = clone_parameters()
    finally:
        estimator.client = client
    twin.client = client
    return twin


def _vector_parts(coll: Any, name: str) -> list:
    """One delayed object per row partition of a 1-D dask array, a dask Series or a one-column frame."""
    if isinstance(coll, da.Array):
        if coll.ndim == 2 and coll.shape[1] == 1:
            coll = coll[:, 0]
        if coll.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one value per row), got a dask array of shape {coll.shape}")
        return coll.to_delayed().ravel().tolist()
    if isinstance(coll, dd.DataFrame):
        if len(coll.columns) != 1:
            raise ValueError(f"{name} must have one column, got a dask DataFrame with {len(coll.columns)}")
        return list(coll.to_delayed())
    if isinstance(coll, dd.Series):
        return list(coll.to_delayed())
    raise TypeError(
        f"{name} must be a dask array, Series or one-column DataFrame partitioned by rows, got "
        f"{type(coll).__name__}; for data in memory use gbfocal.FocalLoss directly"
    )


def _aligned_weights(y: Any, sample_weight: Any) -> Any:
    # Same-length chunks can be had for free for arrays; dataframes must already agree.
    if isinstance(y, da.Array) and isinstance(sample_weight, da.Array) and sample_weight.ndim == 1:
        if y.chunks[0] != sample_weight.chunks[0] and not any(math.isnan(c) for c in y.chunks[0]):
            return sample_weight.rechunk(y.chunks[0])
    return sample_weight


def _block_vector(block: Any) -> np.ndarray:
    arr = np.asarray(block)
    return arr.reshape(-1) if arr.ndim == 2 and arr.shape[1] == 1 else arr


def _counter(n_classes: int) -> Loss:
    """A loss whose ``class_weight_totals`` counts ``n_classes`` class codes (NumPy for two, a kernel for K)."""
    return FocalLoss() if n_classes == 2 else MulticlassFocalLoss()


def _class_order_totals(loss: Loss, y: np.ndarray, w: np.ndarray | None, n_classes: int | None) -> np.ndarray:
    """``W_k = Σ w over y = k`` in class order, shape ``(K,)``, by ``loss.class_weight_totals``.

    The binary loss counts ``(Σ w [y = 1], Σ w [y = 0])`` of 0/1 labels; it
    comes back as ``(W_0, W_1)``. A K-class loss counts class indices
    0..K-1, K being ``n_classes``, ``len(alpha)`` or ``max(y) + 1``.
    """
    if loss.n_outputs == 1:
        w_pos, w_neg = loss.class_weight_totals(y, w)
        return np.array([w_neg, w_pos])
    return loss.class_weight_totals(y, w, n_classes)


def _start_from_totals(loss: Loss, totals: np.ndarray) -> float | np.ndarray:
    """``loss.init_score_from_totals`` of class-ordered totals ``(W_0, ..., W_{K-1})``: a margin or ``(K,)`` margins."""
    if loss.n_outputs == 1:
        return loss.init_score_from_totals(float(totals[1]), float(totals[0]))
    return loss.init_score_from_totals(totals)


def _partition_totals(y: Any, w: Any, weight_dtype: str | None, loss: Loss, n_classes: int | None) -> np.ndarray:
    """Class weight totals ``(K,)`` of one partition (:func:`_class_order_totals`); runs on a worker.

    An empty partition gives zeros, or an empty array where K is not known
    yet (a K-class loss without ``alpha`` or ``n_classes``): the client pads
    every partition's totals to the longest.
    """
    y = _block_vector(y)
    if w is not None:
        w = _block_vector(w)
        if w.shape[0] != y.shape[0]:
            raise ValueError(
                f"a partition has {y.shape[0]} labels but {w.shape[0]} weights: labels and sample_weight must "
                "be partitioned alike (same chunks / same partitions)"
            )
        if weight_dtype is not None:
            w = np.asarray(w, dtype=weight_dtype)
    if y.shape[0] == 0:
        k = 2 if loss.n_outputs == 1 else (n_classes or loss.n_outputs or 0)
        return np.zeros(k)
    return _class_order_totals(loss, y, w, n_classes)


def _sum_totals(parts: Sequence[np.ndarray]) -> np.ndarray:
    """The partitions' class totals added exactly (``math.fsum``, independent of their order), padded to the longest."""
    k = max((p.shape[0] for p in parts), default=0)
    return np.array([math.fsum(float(p[j]) for p in parts if j < p.shape[0]) for j in range(k)])


def _vector_pairs(y: Any, sample_weight: Any) -> list[tuple[Any, Any]]:
    """(labels, weights) delayed pairs, one per row partition of ``y``; weights None when not given."""
    y_parts = _vector_parts(y, "y")
    if sample_weight is None:
        return [(part, None) for part in y_parts]
    w_parts = _vector_parts(_aligned_weights(y, sample_weight), "sample_weight")
    if len(w_parts) != len(y_parts):
        raise ValueError(
            f"y has {len(y_parts)} partitions but sample_weight has {len(w_parts)}: they must be partitioned "
            "alike (rechunk/repartition one to match the other)"
        )
    return list(zip(y_parts, w_parts, strict=True))


def _cluster_totals(
    client: distributed.Client,
    loss: Loss,
    y: Any,
    sample_weight: Any,
    n_classes: int | None,
    weight_dtype: str | None,
) -> np.ndarray:
    """Class weight totals ``(K,)`` of dask labels: K floats per partition come back, never the labels."""
    task = dask.delayed(_partition_totals, pure=True)
    tasks = [task(y_part, w_part, weight_dtype, loss, n_classes) for y_part, w_part in _vector_pairs(y, sample_weight)]
    return _sum_totals(client.gather(client.compute(tasks)))


def _counting_classes(loss: Loss, n_classes: int | None) -> int | None:
    """K for counting ``loss``'s labels: 2 for the binary loss (refusing another ``n_classes``), else as given."""
    if loss.n_outputs == 1:
        if n_classes not in (None, 2):
            raise ValueError(
                f"n_classes={n_classes!r} with the binary FocalLoss (2 classes); use gbfocal.MulticlassFocalLoss"
            )
        return 2
    return n_classes


def class_weight_totals(
    y: Any,
    sample_weight: Any = None,
    *,
    n_classes: int | None = None,
    client: distributed.Client | None = None,
    weight_dtype: str | None = None,
) -> tuple[float, float] | np.ndarray:
    """Class weight totals of dask labels, computed where the rows live.

    ``n_classes=None``: ``(Σ w over y = 1, Σ w over y = 0)`` of 0/1 labels,
    as :meth:`FocalLoss.class_weight_totals`. ``n_classes=K``: ``W_k = Σ w
    over y = k`` of class indices 0..K-1, shape ``(K,)``, as
    :meth:`MulticlassFocalLoss.class_weight_totals`. ``y``: a 1-D dask
    array, dask Series or one-column dask DataFrame; ``sample_weight``: None
    or weights partitioned like ``y``. Each partition is reduced on its
    worker (labels validated there: the error of a bad partition is raised
    here); only the per-partition totals come back (2 or K floats each) and
    are added exactly (``math.fsum``). ``weight_dtype="float32"`` rounds the
    weights first, as the engines store them.
    """
    client = _client(client)
    if n_classes is None:
        totals = _cluster_totals(client, FocalLoss(), y, sample_weight, 2, weight_dtype)
        return float(totals[1]), float(totals[0])
    k = _check_n_classes(n_classes)  # before any work on the cluster
    return _cluster_totals(client, MulticlassFocalLoss(), y, sample_weight, k, weight_dtype)


def init_score(
    loss: Loss,
    y: Any,
    sample_weight: Any = None,
    *,
    n_classes: int | None = None,
    client: distributed.Client | None = None,
    weight_dtype: str | None = None,
) -> float | np.ndarray:
    """The focal-optimal constant margin(s) of distributed labels: ``loss.init_score`` without gathering ``y``.

    ``loss``: a :class:`~gbfocal.FocalLoss` (0/1 labels; returns a float) or
    a :class:`~gbfocal.MulticlassFocalLoss` (class indices 0..K-1; returns
    the ``(K,)`` margin vector, K from ``n_classes``, ``len(alpha)`` or the
    largest label over all partitions + 1). Other arguments as
    :func:`class_weight_totals`. The class totals of each partition (2 or K
    floats) are added on the client and passed to
    ``loss.init_score_from_totals``, the function the single-machine path
    calls, so the result equals ``loss.init_score(y.compute(),
    sample_weight.compute())``, bit for bit when the totals are exact sums
    (unit or integer weights).
    """
    loss = check_loss(loss)
    k = _counting_classes(loss, n_classes)
    totals = _cluster_totals(_client(client), loss, y, sample_weight, k, weight_dtype)
    return _start_from_totals(loss, totals)


# --------------------------------------------------------------------------- XGBoost native


def _require_xgboost() -> None:
    if _xgb_dask is None:
        raise ImportError("gbfocal.dask's XGBoost part needs xgboost: pip install 'gbfocal[xgboost,dask]'")


def _require_lightgbm() -> None:
    if _lgb_dask is None:
        raise ImportError("gbfocal.dask's LightGBM part needs lightgbm: pip install 'gbfocal[lightgbm,dask]'")


def _dmatrix_part_totals(part: Mapping[str, Any], loss: Loss, n_classes: int | None) -> np.ndarray:
    """Class weight totals of one ``DaskDMatrix`` partition (a dict of its pieces); runs on a worker."""
    if part.get("label") is None:
        raise ValueError(
            "the DaskDMatrix has no labels; build it with DaskDMatrix(client, X, y) with y in {0, 1} (FocalLoss) "
            "or class indices 0..K-1 (MulticlassFocalLoss)"
        )
    # float32: the weights the DMatrix stores, so the start equals gbfocal.xgboost.train's
    return _partition_totals(part["label"], part.get("weight"), "float32", loss, n_classes)


def _dmatrix_totals(client: distributed.Client, loss: Loss, dtrain: Any, n_classes: int | None) -> np.ndarray:
    """Class weight totals ``(K,)`` of a labelled DaskDMatrix, each partition counted on the worker holding it."""
    parts = [future for futures in dtrain.worker_map.values() for future in futures]
    if not parts:
        raise ValueError("the DaskDMatrix holds no partitions")
    k = _counting_classes(loss, n_classes)
    return _sum_totals(client.gather([client.submit(_dmatrix_part_totals, p, loss, k, pure=False) for p in parts]))


def _check_dask_dmatrix(dmatrix: Any, name: str) -> None:
    if not isinstance(dmatrix, _xgb_dask.DaskDMatrix):
        hint = "; for data in memory use gbfocal.xgboost.train" if isinstance(dmatrix, _xgb.DMatrix) else ""
        raise TypeError(
            f"{name} must be an xgboost.dask.DaskDMatrix (or DaskQuantileDMatrix), got {type(dmatrix).__name__}: "
            f"build it from dask collections with xgboost.dask.DaskDMatrix(client, X, y){hint}"
        )


def xgboost_base_score(
    loss: Loss, dtrain: Any, *, n_classes: int | None = None, client: distributed.Client | None = None
) -> float | list[float]:
    """XGBoost's ``base_score`` for a labelled ``xgboost.dask.DaskDMatrix``: the focal start of all its rows.

    The class weight totals of every partition of ``dtrain`` are computed on
    the worker that holds it (``DaskDMatrix.worker_map``) and added on the
    client. :class:`~gbfocal.FocalLoss`: the probability
    ``σ(loss.init_score_from_totals(...))``; :class:`~gbfocal.MulticlassFocalLoss`:
    the K starting margins as a list (K from ``n_classes``, ``len(alpha)``
    or the largest label + 1). Equal to
    ``gbfocal.xgboost.base_score(loss, DMatrix(X, y, weight=w))`` on the
    gathered data (weights rounded to float32 as XGBoost stores them).
    """
    _require_xgboost()
    loss = check_loss(loss)
    _check_dask_dmatrix(dtrain, "dtrain")
    return _gfx._start(loss, _start_from_totals(loss, _dmatrix_totals(_client(client), loss, dtrain, n_classes)))


class XGBoostFocalMetric(_gfx.FocalMetric if _gfx is not None else object):  # type: ignore[misc]
    """``gbfocal.xgboost.FocalMetric`` that reports the global weighted mean under ``xgboost.dask``.

    Signature ``(predt, dmatrix) -> (name, value)``; ``predt`` holds the raw
    margins of the worker's local rows, shape ``(n,)`` (binary) or ``(n, K)``
    (:class:`~gbfocal.MulticlassFocalLoss`). In one process it is
    ``FocalMetric``. Inside distributed training (XGBoost's collective world
    size > 1) every worker all-reduces its ``(Σ w·FL, Σ w)`` and returns
    ``Σ w·FL / Σ w`` over all workers' rows; XGBoost then averages the
    workers' values, which are equal, so nothing changes. Plain
    ``FocalMetric`` would report the unweighted mean of the workers' means.
    Picklable.
    """

    def __call__(self, predt: np.ndarray, dmatrix: Any) -> tuple[str, float]:
        from xgboost import collective

        if collective.get_world_size() <= 1:
            return super().__call__(predt, dmatrix)
        sums = np.zeros(2)
        n_rows = dmatrix.num_row()
        if n_rows:
            margins = _gfx._margins_of(self.loss, predt)
            n_classes = _gfx._n_classes_of(margins)  # the model's K, which a worker's own labels may not show
            rows = self._rows.get(dmatrix, lambda d: _gfx._rows_of_dmatrix(d, self.loss, n_classes))
            wsum = float(np.sum(rows.w, dtype=np.float64)) if rows.w.shape[0] else float(n_rows)
            if wsum > 0.0:
                sums[:] = rows.mean_loss(self.loss, margins, self.n_threads) * wsum, wsum
        sums = collective.allreduce(sums, collective.Op.SUM)
        if not sums[1] > 0.0:
            raise ValueError("sample_weight sums to 0 over all workers: the weighted mean focal loss is undefined")
        return self.name, float(sums[0] / sums[1])

    def __repr__(self) -> str:
        return f"XGBoostFocalMetric({self.loss!r}, name={self.name!r}, n_threads={self.n_threads!r})"


def _train_xgboost(
    client: distributed.Client,
    loss: Loss,
    params: Mapping[str, Any] | None,
    dtrain: Any,
    num_boost_round: int,
    evals: Sequence[tuple[Any, str]] | None,
    focal_metric: bool,
    train_kwargs: dict[str, Any],
) -> dict[str, Any]:
    if params is None:  # as xgboost.train takes it: no parameters
        params = {}
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of XGBoost parameters (or None), got {type(params).__name__}")
    _check_dask_dmatrix(dtrain, "dtrain")
    for i, pair in enumerate(evals or ()):
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], str)):
            raise TypeError(f"evals[{i}] must be a (DaskDMatrix, name) pair, got {pair!r:.80}")
        _check_dask_dmatrix(pair[0], f"evals[{i}][0]")
    if "obj" in train_kwargs:
        raise TypeError("gbfocal.dask.xgboost_train supplies obj itself; call xgboost.dask.train for another objective")
    n_threads = _gfx._n_threads_of(params)
    if n_threads is None:
        # XGBoost trains each worker with that worker's threads; the objective does likewise. Every core of
        # the process instead would oversubscribe a machine that runs several workers (measured: a 1M-row
        # objective call took 4x longer with 2 threads than with 1 on a loaded 2-core machine).
        n_threads = min(client.nthreads().values(), default=None)
    totals = None

    def labels_k() -> int:  # K of a K-class loss that neither num_class nor alpha gives: the labels' own
        nonlocal totals
        totals = _dmatrix_totals(client, loss, dtrain, None)
        return totals.shape[0]

    k = _gfx._n_outputs(loss, params.get("num_class"), labels_k)
    start = None
    if train_kwargs.get("xgb_model") is None and params.get("base_score") is None:
        if totals is None:
            totals = _dmatrix_totals(client, loss, dtrain, None if k == 1 else k)
        start = _gfx._start(loss, _start_from_totals(loss, totals))
    full = _gfx._focal_params(params, start, k)
    # the metric rule of gbfocal.xgboost.train: focal always reported, last, so early stopping uses it;
    # rank metrics beside it; metrics XGBoost would compute on sigma/softmax of the margins refused
    _gfx._refuse_non_rank_metrics(full.get("eval_metric"), "params['eval_metric']")
    if train_kwargs.get("maximize"):
        raise ValueError("maximize=True would maximise the focal loss, which early stopping uses; leave it False")
    if focal_metric:
        focal = XGBoostFocalMetric(loss, n_threads=n_threads)
        train_kwargs["custom_metric"] = _gfx._with_focal(train_kwargs.get("custom_metric"), focal)
        if full.get("eval_metric") is None:  # report the focal loss alone
            full["disable_default_eval_metric"] = True
    obj = _gfx.objective(loss, n_threads=n_threads)
    out = _xgb_dask.train(client, full, dtrain, num_boost_round, evals=evals, obj=obj, **train_kwargs)
    _gfx._store_loss(out["booster"], loss)  # as gbfocal.xgboost.train: predict_posterior(None, ...) reads it
    return out


def xgboost_train(
    client: distributed.Client | None,
    loss: Loss,
    params: Mapping[str, Any] | None,
    dtrain: Any,
    num_boost_round: int = 10,
    *,
    evals: Sequence[tuple[Any, str]] | None = None,
    **train_kwargs: Any,
) -> dict[str, Any]:
    """``xgboost.dask.train`` with the focal objective, metric and distributed starting score.

    ``dtrain`` is a labelled ``xgboost.dask.DaskDMatrix`` (or
    ``DaskQuantileDMatrix``), as is every set in ``evals``; a plain
    ``xgboost.DMatrix`` is refused (that is :func:`gbfocal.xgboost.train`'s).
    ``client`` None means the default client. ``params`` (None: none) get
    the loss's link, as :func:`gbfocal.xgboost.train` sets it:
    ``objective="binary:logistic"`` for :class:`~gbfocal.FocalLoss`,
    ``objective="multi:softprob"`` and ``num_class=K`` (from ``params``,
    ``len(alpha)`` or the labels) for :class:`~gbfocal.MulticlassFocalLoss`;
    and, unless given or continuing from ``xgb_model``, ``base_score =``
    :func:`xgboost_base_score` (σ of the start, or the K starting margins),
    computed from per-partition class totals and equal to the value
    ``gbfocal.xgboost.train`` computes on one machine. ``obj`` is
    ``gbfocal.xgboost.objective(loss)``, pickled to every worker, where it
    sees the worker's local rows; ``custom_metric`` defaults to
    :class:`XGBoostFocalMetric` (XGBoost's default metric is then switched off
    unless ``params`` name an ``eval_metric``). The objective and metric use
    ``nthread`` threads if ``params`` set it, else as many as the smallest
    worker has (``threads_per_worker``), as XGBoost itself does on each
    worker. Other keyword arguments go to
    ``xgboost.dask.train``. Returns its ``{"booster": Booster, "history": dict}``;
    ``booster.predict`` gives σ / softmax of the margins (not the focal
    posterior: :func:`gbfocal.xgboost.predict_posterior` reads the loss
    stored in the booster), ``output_margin=True`` the margins, ``(n,)`` or
    ``(n, K)``.
    """
    _require_xgboost()
    loss = check_loss(loss)
    return _train_xgboost(_client(client), loss, params, dtrain, num_boost_round, evals, True, train_kwargs)


# --------------------------------------------------------------------------- labels on the cluster


def _partition_classes(part: Any) -> np.ndarray:
    return np.unique(_block_vector(part))


def _unique_labels(client: distributed.Client, y: Any) -> np.ndarray:
    """The sorted distinct labels: unique per partition on the workers, merged on the client."""
    tasks = [dask.delayed(_partition_classes, pure=True)(part) for part in _vector_parts(y, "y")]
    return np.unique(np.concatenate(client.gather(client.compute(tasks))))


def _fit_classes(client: distributed.Client, y: Any, owner: str) -> np.ndarray:
    """``classes_``: the sorted distinct labels of ``y``, at least two, found on the cluster."""
    from sklearn.utils.multiclass import check_classification_targets

    classes = _unique_labels(client, y)
    if classes.shape[0] < 2:
        raise ValueError(
            f"y has {classes.shape[0]} class ({classes[:5].tolist()}); {owner} needs at least two classes "
            "(a classifier has nothing to learn from one)"
        )
    check_classification_targets(classes)  # e.g. continuous floats: refused as the local estimators refuse them
    return classes


def _is_balanced(focal_alpha: object) -> bool:
    return isinstance(focal_alpha, str) and focal_alpha == "balanced"


def _fit_loss(
    est: Any, client: distributed.Client, classes: np.ndarray, codes: Any, sample_weight: Any, weight_dtype: Any
) -> tuple[Loss, np.ndarray]:
    """The estimator's loss for ``classes`` and the class weight totals ``W_k`` (K,) of its training rows.

    The totals (K floats per partition, added on the client) resolve
    ``focal_alpha="balanced"`` and give the focal start; ``codes`` are the
    class codes 0..K-1 of :func:`_encoded`.
    """
    n_classes = classes.shape[0]
    totals = _cluster_totals(client, _counter(n_classes), codes, sample_weight, n_classes, weight_dtype)
    return estimator_loss(est, classes, totals=totals), totals


def _encode_block(block: Any, classes: np.ndarray) -> np.ndarray:
    y = _block_vector(block)
    codes = np.searchsorted(classes, y)
    codes[codes == classes.shape[0]] = 0
    unseen = classes[codes] != y
    if unseen.any():
        raise ValueError(f"labels {np.unique(y[unseen])[:5].tolist()} are not among the training classes {classes}")
    return codes.astype(np.float64)


def _encode_partition(part: Any, classes: np.ndarray) -> Any:
    import pandas as pd

    if isinstance(part, pd.DataFrame):
        part = part[part.columns[0]]
    return pd.Series(_encode_block(part.to_numpy(), classes), index=part.index, name="label")


def _encoded(y: Any, classes: np.ndarray) -> Any:
    """Float class codes 0..K-1 of ``y`` (``classes[k]`` is k), partitioned as ``y``; lazy."""
    if isinstance(y, da.Array):
        if y.ndim == 2:
            y = y[:, 0]
        return y.map_blocks(_encode_block, classes, dtype=np.float64)
    return y.map_partitions(_encode_partition, classes, meta=("label", "f8"))


def _constant_block(block: Any, value: float | np.ndarray) -> np.ndarray:
    return np.array(np.broadcast_to(value, (np.shape(block)[0], *np.shape(value))))


def _constant_partition(part: Any, value: float | np.ndarray) -> Any:
    import pandas as pd

    if np.ndim(value) == 0:
        return pd.Series(np.full(len(part), value), index=part.index, name="init_score")
    return pd.DataFrame(_constant_block(part, value), index=part.index)


def _constant_like(y: Any, value: float | np.ndarray) -> Any:
    """A per-row start partitioned as the (encoded) labels ``y``: ``(n,)`` for one margin, ``(n, K)`` for K; lazy."""
    make = functools.partial(_constant_block, value=value)
    if isinstance(y, da.Array):
        if np.ndim(value) == 0:
            return y.map_blocks(make, dtype=np.float64)
        return y.map_blocks(make, new_axis=1, chunks=(y.chunks[0], (len(value),)), dtype=np.float64)
    meta: Any = ("init_score", "f8")
    if np.ndim(value) != 0:
        import pandas as pd

        meta = pd.DataFrame({k: pd.Series(dtype="f8") for k in range(len(value))})
    return y.map_partitions(functools.partial(_constant_partition, value=value), meta=meta)


def _check_fit_data(
    owner: str,
    local: str,
    X: Any,
    y: Any,
    sample_weight: Any,
    eval_set: Sequence[tuple[Any, Any]] | None,
    eval_weights: tuple[str, Sequence[Any] | None],
) -> None:
    """Refuse in-memory data before any work on the cluster, naming the argument and the local estimator."""
    given = [("X", X, True), ("y", y, False), ("sample_weight", sample_weight, False)]
    for i, pair in enumerate(eval_set or ()):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise TypeError(f"eval_set[{i}] must be an (X, y) pair of dask collections, got {type(pair).__name__}")
        given += [(f"eval_set[{i}][0]", pair[0], True), (f"eval_set[{i}][1]", pair[1], False)]
    given += [(f"{eval_weights[0]}[{i}]", w, False) for i, w in enumerate(eval_weights[1] or ())]
    for name, value, matrix in given:
        kinds = (da.Array, dd.DataFrame) if matrix else (da.Array, dd.Series, dd.DataFrame)
        if value is not None and not isinstance(value, kinds):
            what = "a dask array or dask DataFrame" if matrix else "a dask array or Series"
            raise TypeError(
                f"{owner}.fit takes dask collections partitioned by rows: {name} must be {what}, got "
                f"{type(value).__name__}; wrap it with dask.array.from_array (chunks by rows), or for data in "
                f"memory use {local}"
            )


def _map_rows(X: Any, fn: Any, model: Any, *, width: int | None, dtype: Any) -> Any:
    """``fn(block, model)`` over the row partitions of ``X``: a dask array ``(n,)`` (``width`` None) or ``(n, width)``.

    ``model`` is a future of the scattered local estimator, so it travels to
    each worker once, not once per partition. Dataframe partitions reach
    ``fn`` as pandas frames (feature names and dtypes intact).
    """
    if isinstance(X, dd.DataFrame):
        lengths = X.map_partitions(len).compute().tolist()
        blocks = []
        for part, n_rows in zip(X.to_delayed(), lengths, strict=True):
            shape = (n_rows,) if width is None else (n_rows, width)
            blocks.append(da.from_delayed(dask.delayed(fn, pure=True)(part, model), shape=shape, dtype=dtype))
        return da.concatenate(blocks)
    if not isinstance(X, da.Array) or X.ndim != 2:
        raise TypeError(f"X must be a 2-D dask array or a dask DataFrame, got {type(X).__name__}")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    if width is None:
        return X.map_blocks(fn, model, drop_axis=1, dtype=dtype)
    return X.map_blocks(fn, model, chunks=(X.chunks[0], (width,)), dtype=dtype)


def _score_width(n_classes: int) -> int | None:
    """Columns of ``decision_function``: none for two classes (shape ``(n,)``), K for K classes."""
    return None if n_classes == 2 else n_classes


def _block_predict_proba(block: np.ndarray, model: Any) -> np.ndarray:
    if block.shape[0] == 0:
        return np.empty((0, model.classes_.shape[0]))
    return model.predict_proba(block)


def _block_predict(block: np.ndarray, model: Any) -> np.ndarray:
    if block.shape[0] == 0:
        return np.empty(0, dtype=model.classes_.dtype)
    return model.predict(block)


def _block_decision(block: np.ndarray, model: Any) -> np.ndarray:
    if block.shape[0] == 0:
        width = _score_width(model.classes_.shape[0])
        return np.empty((0,) if width is None else (0, width))
    return np.asarray(model.decision_function(block), dtype=np.float64)


# --------------------------------------------------------------------------- XGBoost estimator

_XGBBase: type = _xgb_dask.DaskXGBClassifier if _xgb_dask is not None else object


class DaskXGBFocalClassifier(_XGBBase):  # type: ignore[misc, valid-type]
    """``xgboost.dask.DaskXGBClassifier`` trained with the α-balanced focal loss, two classes or more.

    The Dask twin of :class:`gbfocal.xgboost.XGBFocalClassifier`, with the
    same parameters (``focal_alpha``, ``focal_gamma``, ``focal_hessian``,
    ``focal_proba``; every other one keeps its XGBoost meaning) and the same
    contract, on dask collections partitioned by rows:

    * ``fit(X, y, *, sample_weight=None, eval_set=None, ...)``: ``y`` holds
      any class labels; ``classes_`` is their sorted array, found on the
      workers (unique labels per partition). Two classes train a
      :class:`~gbfocal.FocalLoss` (``classes_[1]`` positive), three or more a
      :class:`~gbfocal.MulticlassFocalLoss` (``multi:softprob``,
      ``num_class=K``), as ``XGBFocalClassifier`` does. Labels are encoded on
      the workers, which send back K class weight totals per partition (never
      the labels): they resolve ``focal_alpha="balanced"`` and give the
      starting score (σ(init_score), or the K margins), equal to the
      single-machine ones. Training is :func:`xgboost_train`. With
      ``eval_metric=None`` each ``eval_set`` reports the global weighted mean
      focal loss as ``"focal"``.
    * ``predict_proba(X)``: dask array ``(n, K)`` (K = 2 for binary), columns
      as ``classes_``, rows summing to 1 (the recovered posterior by
      default; ``focal_proba`` selects); ``predict(X)``: dask array of labels
      from ``classes_``; ``decision_function(X)``: scikit-learn's scores,
      ``(n,)`` for two classes, ``(n, K)`` for K. Each partition is predicted
      by :meth:`to_local`'s ``XGBFocalClassifier`` (scattered to the workers
      once), so the numbers are the single-machine ones by construction.

    ``client``: the ``distributed.Client`` to fit and predict with (None:
    the default client at each call), a parameter as in
    ``DaskLGBMFocalClassifier``. It never reaches XGBoost's parameters: a
    client inside them is what makes ``xgboost.dask.DaskXGBClassifier(client=c)``
    fail with "Could not serialize object of type LLGExpr" (XGBoost files
    the keyword among the booster's parameters and ships them to every
    worker).

    Synchronous clients only (``fit`` blocks until training ends). Not
    supported: a callable ``eval_metric`` (XGBoost would average it over
    workers), ``base_margin``, ``feature_weights``.
    """

    def __init__(
        self,
        *,
        focal_alpha: float | Sequence[float] | Mapping[Any, float] | str | None = None,
        focal_gamma: float = 2.0,
        focal_hessian: str | None = None,
        focal_proba: str = "posterior",
        client: distributed.Client | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.focal_hessian = focal_hessian
        self.focal_proba = focal_proba
        self.client = client

    # XGBoost's property answers the default client when none was set, so get_params() (hence repr and clone)
    # would fail without a running cluster and would report a client nobody gave; this one answers what was set.
    @property
    def client(self) -> distributed.Client | None:
        """The client given (None: the default client at each call)."""
        return self._client

    @client.setter
    def client(self, client: distributed.Client | None) -> None:
        self._asynchronous = client.asynchronous if client is not None else False
        self._client = client

    def focal_loss(self, classes: Any = None) -> Loss:
        """The loss of the current ``focal_*`` parameters for ``classes``, as ``XGBFocalClassifier.focal_loss``.

        ``classes`` defaults to ``classes_`` once fitted, else two classes
        ``[0, 1]``; ``focal_alpha="balanced"`` is resolved in ``fit`` only.
        """
        if classes is None:
            classes = getattr(self, "classes_", None)
        return estimator_loss(self, np.arange(2) if classes is None else np.asarray(classes))

    def __sklearn_clone__(self) -> DaskXGBFocalClassifier:
        return _clone_sharing_client(self, super().__sklearn_clone__)

    def get_xgb_params(self) -> dict[str, Any]:
        """XGBoost's parameters for the booster: all but the ``focal_*`` ones, ``client`` and ``coll_cfg``."""
        params = super().get_xgb_params()
        for name in (*_FOCAL_PARAMS, *_DASK_PARAMS):
            params.pop(name, None)
        return params

    def fit(  # type: ignore[override]
        self,
        X: Any,
        y: Any,
        *,
        sample_weight: Any = None,
        eval_set: Sequence[tuple[Any, Any]] | None = None,
        sample_weight_eval_set: Sequence[Any] | None = None,
        verbose: bool | int = False,
        xgb_model: Any = None,
    ) -> DaskXGBFocalClassifier:
        """Fit on dask ``X`` (n, d) and labels ``y`` (n,), both partitioned by rows alike."""
        _require_xgboost()
        _check_fit_data(
            type(self).__name__,
            "gbfocal.xgboost.XGBFocalClassifier",
            X,
            y,
            sample_weight,
            eval_set,
            ("sample_weight_eval_set", sample_weight_eval_set),
        )
        # what needs no data is checked before any work on the cluster
        check_focal_params(self)
        _gfx._check_proba_mode(self.focal_proba)
        _gfx._focal_params({"scale_pos_weight": self.scale_pos_weight}, None)
        if callable(self.eval_metric):
            raise ValueError(
                "DaskXGBFocalClassifier takes eval_metric=None (the focal loss over all workers) or XGBoost metric "
                "names; XGBoost would average a callable metric over the workers"
            )
        _gfx._refuse_non_rank_metrics(self.eval_metric, "eval_metric")
        client = _client(self.client)
        classes = _fit_classes(client, y, type(self).__name__)
        n_classes = classes.shape[0]
        k = 1 if n_classes == 2 else n_classes
        # XGBClassifier's default "binary:logistic" stands for the link; it switches to multi:softprob for K > 2
        given = None if k != 1 and self.objective == "binary:logistic" else self.objective
        _gfx._focal_params({"objective": given}, None, k)
        codes = _encoded(y, classes)
        params = self.get_xgb_params()
        params.pop("objective", None)  # checked above; xgboost_train sets the link
        if k != 1:
            params["num_class"] = k
        need_start = self.base_score is None and xgb_model is None
        if need_start or _is_balanced(self.focal_alpha):
            # from the labels' partitions (float64 weights), as XGBFocalClassifier does from y and sample_weight
            loss, totals = _fit_loss(self, client, classes, codes, sample_weight, None)
        else:
            loss, totals = estimator_loss(self, classes), None
        if need_start:
            params["base_score"] = _gfx._start(loss, _start_from_totals(loss, totals))
        quantile = params.get("tree_method") in (None, "hist", "approx")
        make = _xgb_dask.DaskQuantileDMatrix if quantile else _xgb_dask.DaskDMatrix
        common: dict[str, Any] = {"missing": self.missing, "enable_categorical": self.enable_categorical}
        if quantile:
            common["max_bin"] = self.max_bin
        dtrain = make(client, X, codes, weight=sample_weight, **common)
        evals = []
        for i, (X_eval, y_eval) in enumerate(eval_set or ()):
            w_eval = None if sample_weight_eval_set is None else sample_weight_eval_set[i]
            if X_eval is X and y_eval is y and w_eval is sample_weight:
                evals.append((dtrain, f"validation_{i}"))
                continue
            ref = {"ref": dtrain} if quantile else {}
            evals.append(
                (make(client, X_eval, _encoded(y_eval, classes), weight=w_eval, **common, **ref), f"validation_{i}")
            )
        if hasattr(xgb_model, "get_booster"):
            xgb_model = xgb_model.get_booster()
        train_kwargs = {
            "early_stopping_rounds": self.early_stopping_rounds,
            "verbose_eval": verbose,
            "xgb_model": xgb_model,
            "callbacks": self.callbacks,
            "coll_cfg": self.coll_cfg,
        }
        result = _train_xgboost(
            client,
            loss,
            params,
            dtrain,
            self.get_num_boosting_rounds(),
            evals or None,
            True,  # the focal metric always, last: early stopping uses it (rank eval_metric names beside it)
            train_kwargs,
        )
        self._Booster = result["booster"]
        self.evals_result_ = result["history"]
        self.classes_ = classes
        self.n_classes_ = n_classes
        self._focal_loss = loss  # what XGBFocalClassifier.fit leaves for prediction; to_local copies it
        return self

    def to_local(self) -> Any:
        """The fitted single-machine :class:`gbfocal.xgboost.XGBFocalClassifier` with this booster."""
        from gbfocal.xgboost import XGBFocalClassifier

        params = self.get_params()
        for name in ("coll_cfg", "client"):
            params.pop(name, None)
        local = XGBFocalClassifier(**params)
        local._Booster = self.get_booster()
        local.n_classes_ = self.n_classes_
        local._gbfocal_classes = self.classes_
        local._focal_loss = self._focal_loss
        return local

    def _map(self, X: Any, fn: Any, *, width: int | None, dtype: Any) -> Any:
        model = _client(self.client).scatter(self.to_local(), hash=False)
        return _map_rows(X, fn, model, width=width, dtype=dtype)

    def decision_function(self, X: Any) -> Any:
        """``XGBFocalClassifier.decision_function`` per partition: a dask array, float64.

        Two classes: shape ``(n,)``, the log-odds of the ``predict_proba``
        probability (the raw margin with ``focal_proba="sigmoid"``). K
        classes: shape ``(n, K)``, ``log predict_proba`` (the raw margins with
        ``"softmax"``). Raw margins:
        ``xgboost.dask.predict(client, model.get_booster(), X, output_margin=True)``.
        """
        return self._map(X, _block_decision, width=_score_width(self.n_classes_), dtype=np.float64)

    def predict_proba(self, X: Any) -> Any:  # type: ignore[override]
        """Class probabilities: dask array ``(n, K)``, float64, columns as ``classes_``, rows summing to 1."""
        return self._map(X, _block_predict_proba, width=self.n_classes_, dtype=np.float64)

    def predict(self, X: Any) -> Any:  # type: ignore[override]
        """Predicted labels from ``classes_``: a dask array of shape ``(n,)``."""
        return self._map(X, _block_predict, width=None, dtype=self.classes_.dtype)


# --------------------------------------------------------------------------- LightGBM estimator

_LGBMRegressorBase: type = _lgb_dask.LGBMRegressor if _lgb_dask is not None else object


class _WorkerFocalModel(_LGBMRegressorBase):  # type: ignore[misc, valid-type]
    """What each worker fits inside ``lightgbm.dask``: the client's focal loss on class codes 0..K-1.

    A regressor, not a classifier: the client has encoded the labels and a
    worker's partitions may hold only some of the classes, which a
    classifier would re-encode locally. ``fit`` takes the loss the client
    resolved (``focal_alpha="balanced"`` needs every partition's class
    totals) and ``n_margins``, LightGBM's ``num_class`` (1 for binary, K for
    K classes). The start arrives as ``init_score`` (``(n,)`` or ``(n, K)``);
    the client folds it into the first tree(s) after training.
    """

    def __init__(
        self,
        *,
        focal_alpha: Any = None,
        focal_gamma: float = 2.0,
        focal_hessian: str | None = None,
        focal_proba: str = "posterior",
        **kwargs: Any,
    ) -> None:
        # the client's parameters, kept so that lightgbm.dask can copy them back; the loss comes with fit
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.focal_hessian = focal_hessian
        self.focal_proba = focal_proba
        super().__init__(**kwargs)

    def _process_params(self, stage: str) -> dict[str, Any]:
        given = self.get_params()
        params = super()._process_params(stage)
        for name in _FOCAL_PARAMS:
            params.pop(name, None)
        if stage == "fit":
            if all(given.get(k) is None for k in _gfl._aliases("metric")):
                params["metric"] = "None"  # the regressor's default, l2, means nothing here
            for key in _gfl._aliases("num_class"):
                params.pop(key, None)
            if self._n_margins != 1:
                params["num_class"] = self._n_margins
            self._objective = _gfl.FocalObjective(self._focal_loss, _gfl._threads_from_params(params))
            params["objective"] = self._objective
            _gfl._first_metric_only(params)  # early stopping watches the focal metric, reported first
        return params

    def fit(  # type: ignore[override]
        self,
        X: Any,
        y: Any,
        *,
        focal_loss: Loss,
        n_margins: int,
        eval_metric: Any = None,
        callbacks: Any = None,
        **kwargs: Any,
    ) -> Any:
        self._focal_loss, self._n_margins = focal_loss, n_margins
        # lightgbm.dask puts the worker's thread count in num_threads; the metric uses as many
        metric = _gfl._SklearnFocalMetric(focal_loss, _gfl._threads_from_params(self.get_params()))
        user = [] if eval_metric is None else (list(eval_metric) if isinstance(eval_metric, list) else [eval_metric])
        return super().fit(
            X,
            y,
            eval_metric=[metric, *user],
            callbacks=_gfl._focal_decides(callbacks),
            **kwargs,
        )


_LGBMDaskBase: type = _lgb_dask.DaskLGBMClassifier if _lgb_dask is not None else object


class DaskLGBMFocalClassifier(_LGBMDaskBase):  # type: ignore[misc, valid-type]
    """``lightgbm.DaskLGBMClassifier`` trained with the α-balanced focal loss, two classes or more.

    The Dask twin of :class:`gbfocal.lightgbm.LGBMFocalClassifier`: same
    ``focal_*`` parameters (``focal_alpha`` forms and ``focal_proba``
    included), every other one a LightGBM one (plus ``client``).
    ``fit(X, y, sample_weight=None, eval_set=None, ...)`` takes dask
    collections partitioned by rows; ``y`` any class labels (``classes_``
    sorted, found on the workers). Two classes train a
    :class:`~gbfocal.FocalLoss` (``classes_[1]`` positive), three or more a
    :class:`~gbfocal.MulticlassFocalLoss` (``num_class=K``, K trees per
    round). Labels are encoded on the workers, which send back K class
    weight totals per partition (never the labels; weights rounded to
    float32 as LightGBM stores them): they resolve
    ``focal_alpha="balanced"`` and give the focal start, the single-machine
    one, which every worker gets as ``init_score`` and which, after training,
    is added to the leaves of the first tree (K classes: the first K trees),
    so the model predicts correct margins on its own. ``predict_proba``
    (dask ``(n, K)``, rows summing to 1), ``predict`` (labels) and
    ``decision_function`` (``(n,)`` for two classes, ``(n, K)`` for K) run
    :meth:`to_local`'s ``LGBMFocalClassifier`` on each partition, as
    LightGBM's Dask classes do.

    Not supported: ``class_weight`` (LightGBM's Dask interface computes it per
    worker), ``init_score``/``eval_init_score`` (the start is the focal one),
    and probability metrics (refused as in ``LGBMFocalClassifier``). A custom
    metric, the focal one included, is evaluated on each worker's own rows
    (LightGBM does not reduce custom metrics over workers); ``evals_result_``
    holds the first worker's values.
    """

    def __init__(
        self,
        *,
        focal_alpha: Any = None,
        focal_gamma: float = 2.0,
        focal_hessian: str | None = None,
        focal_proba: str = "posterior",
        client: distributed.Client | None = None,
        **kwargs: Any,
    ) -> None:
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.focal_hessian = focal_hessian
        self.focal_proba = focal_proba
        super().__init__(client=client, **kwargs)

    def focal_loss(self) -> Loss:
        """The loss the fitted model was trained with; before ``fit``, the binary loss of the ``focal_*`` parameters.

        As ``LGBMFocalClassifier.focal_loss`` (``focal_alpha="balanced"``
        needs the training labels, so only the fitted model has its loss).
        """
        loss = getattr(self, "_focal_loss", None)
        return estimator_loss(self, np.array([0, 1])) if loss is None else loss

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters, ``client`` included.

        LightGBM collects a subclass's parameters from a copy of it, and its
        copies drop the client (the pickling hook), so without this
        ``get_params()["client"]`` would be None whatever was given.
        """
        params = super().get_params(deep)
        params["client"] = self.client
        return params

    def __sklearn_clone__(self) -> DaskLGBMFocalClassifier:
        return _clone_sharing_client(self, super().__sklearn_clone__)

    def fit(  # type: ignore[override]
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        eval_set: list[tuple[Any, Any]] | None = None,
        eval_names: list[str] | None = None,
        eval_sample_weight: list[Any] | None = None,
        eval_metric: Any = None,
        **kwargs: Any,
    ) -> DaskLGBMFocalClassifier:
        """Fit on dask ``X`` (n, d) and labels ``y`` (n,), both partitioned by rows alike."""
        _require_lightgbm()
        _check_fit_data(
            type(self).__name__,
            "gbfocal.lightgbm.LGBMFocalClassifier",
            X,
            y,
            sample_weight,
            eval_set,
            ("eval_sample_weight", eval_sample_weight),
        )
        for name in ("init_score", "eval_init_score", "eval_class_weight", "eval_X", "eval_y"):
            if kwargs.get(name) is not None:
                raise TypeError(f"DaskLGBMFocalClassifier.fit does not take {name}; use eval_set for validation data")
        given = self.get_params()
        set_objective = sorted(k for k in _gfl._aliases("objective") if given.get(k) is not None)
        if set_objective:
            raise ValueError(
                f"DaskLGBMFocalClassifier's objective is the focal loss; remove {set_objective} "
                "(use focal_alpha, focal_gamma and focal_hessian to configure it)"
            )
        if self.class_weight is not None:
            raise ValueError(
                "class_weight is not supported by DaskLGBMFocalClassifier (lightgbm.dask applies it per worker); "
                "weigh the classes with focal_alpha or sample_weight"
            )
        _gfl._refuse_random_forest(given)
        _gfl._refuse_linear_trees(given)
        _gfl._refuse_ignored_class_weights(given)
        for key in _gfl._aliases("metric"):
            _gfl._refuse_probability_metrics(given.get(key), key)
        _gfl._refuse_probability_metrics(eval_metric, "eval_metric")
        check_focal_params(self)
        _gfl._check_proba_mode(self.focal_proba, None)
        client = _lgb_dask._get_dask_client(self.client)
        classes = _fit_classes(client, y, type(self).__name__)
        n_classes = classes.shape[0]
        _gfl._check_proba_mode(self.focal_proba, n_classes)
        codes = _encoded(y, classes)
        # float32 weights: what LightGBM stores, hence what LGBMFocalClassifier counts
        loss, totals = _fit_loss(self, client, classes, codes, sample_weight, "float32")
        start = _start_from_totals(loss, totals)
        evals = [(X_eval, _encoded(y_eval, classes)) for X_eval, y_eval in (eval_set or ())]
        eval_start = [_constant_like(y_eval, start) for _, y_eval in evals]
        with warnings.catch_warnings():
            if self.n_jobs is None:
                # lightgbm.dask always sets num_threads from the workers' threads and warns about any n_jobs
                # key, even the default None, which asked for nothing; a user's own n_jobs still warns
                warnings.filterwarnings("ignore", message=r"Parameter n_jobs will be ignored", category=UserWarning)
            self._lgb_dask_fit(
                model_factory=_WorkerFocalModel,
                X=X,
                y=codes,
                sample_weight=sample_weight,
                init_score=_constant_like(codes, start),
                eval_set=evals or None,
                eval_names=eval_names,
                eval_sample_weight=eval_sample_weight,
                eval_init_score=eval_start or None,
                eval_metric=eval_metric,
                focal_loss=loss,
                n_margins=1 if n_classes == 2 else n_classes,
                **kwargs,
            )
        for key in _gfl._aliases("num_threads") - given.keys():
            # lightgbm.dask copies the workers' thread count back into the parameters; a refit would then warn
            # that it ignores it, and clone() would carry it, so keep the parameters as the user set them
            self._other_params.pop(key, None)
            self.__dict__.pop(key, None)
        _gfl._fold_into_first_tree(self._Booster, start)
        _gfl._record_loss(self._Booster, loss)
        self._classes = classes
        self._n_classes = n_classes
        self._focal_loss = loss  # what LGBMFocalClassifier.fit leaves for prediction; to_local copies it
        self.focal_start_ = start
        return self

    def to_local(self) -> Any:
        """The fitted single-machine :class:`gbfocal.lightgbm.LGBMFocalClassifier` with this booster."""
        from gbfocal.lightgbm import LGBMFocalClassifier

        return self._lgb_dask_to_local(LGBMFocalClassifier)

    def _map(self, X: Any, fn: Any, *, width: int | None, dtype: Any) -> Any:
        model = _lgb_dask._get_dask_client(self.client).scatter(self.to_local(), hash=False)
        return _map_rows(X, fn, model, width=width, dtype=dtype)

    def decision_function(self, X: Any) -> Any:
        """``LGBMFocalClassifier.decision_function`` per partition: a dask array, float64.

        Two classes: shape ``(n,)``, the logit of the ``predict_proba``
        probability (the raw margin with ``focal_proba="sigmoid"``). K
        classes: shape ``(n, K)``, whose softmax is ``predict_proba`` (the
        log posterior; the raw margins with ``"softmax"``).
        ``booster_.predict(X, raw_score=True)`` gives the raw margins, start
        included.
        """
        return self._map(X, _block_decision, width=_score_width(self.n_classes_), dtype=np.float64)

    def predict_proba(self, X: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Class probabilities: dask array ``(n, K)``, columns as ``classes_``, rows summing to 1."""
        if kwargs:
            raise TypeError(f"DaskLGBMFocalClassifier.predict_proba takes only X, got {sorted(kwargs)}")
        return self._map(X, _block_predict_proba, width=self.n_classes_, dtype=np.float64)

    def predict(self, X: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Predicted labels from ``classes_``: a dask array of shape ``(n,)``."""
        if kwargs:
            raise TypeError(f"DaskLGBMFocalClassifier.predict takes only X, got {sorted(kwargs)}")
        return self._map(X, _block_predict, width=None, dtype=self.classes_.dtype)
