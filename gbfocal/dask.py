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

scikit-learn API: :class:`DaskXGBFocalClassifier` and :class:`DaskLGBMFocalClassifier`
(``fit`` on dask collections, ``predict_proba``/``predict`` return dask arrays).

How the pieces travel
---------------------
* **Objectives and metrics** are the single-machine ones (``gbfocal.xgboost.objective``,
  ``gbfocal.lightgbm.FocalObjective``). Both engines pickle them to every worker;
  each worker unpickles its own copy, whose per-DMatrix / per-label-array cache
  starts empty (only the loss and the thread count are pickled) and fills on the
  worker's first round from the worker's local rows. Nothing is global: two
  objectives with different losses may train at once in one worker process.
* **The starting score** needs the class weight totals of the *whole* training
  set. :func:`class_weight_totals` maps :meth:`FocalLoss.class_weight_totals`
  over the partitions on the workers and adds the per-partition pairs on the
  client: two floats per partition cross the network, never the labels. The
  start is then :meth:`FocalLoss.init_score_from_totals`, the very function the
  single-machine path calls, so both start from the same constant (bit for bit
  whenever the totals are exact, e.g. unit or integer weights).
* **The XGBoost metric**: XGBoost averages a custom metric's per-worker values,
  which is not the weighted mean over all rows when workers hold different row
  counts. :class:`XGBoostFocalMetric` all-reduces ``(Σ w·FL, Σ w)`` over the
  workers itself, so the reported focal loss is exactly the global one (and
  equals the single-machine metric on one worker).
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

from gbfocal._loss import DEFAULT_HESSIAN, FocalLoss, check_loss, focal_loss_of

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


def _partition_totals(y: Any, w: Any, weight_dtype: str | None) -> tuple[float, float]:
    """(Σ w over y = 1, Σ w over y = 0) of one partition; runs on a worker."""
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
        return 0.0, 0.0
    return FocalLoss.class_weight_totals(y, w)


def _totals_from_parts(client: distributed.Client, pairs: list[tuple[Any, Any]], weight_dtype: str | None):
    tasks = [dask.delayed(_partition_totals, pure=True)(y, w, weight_dtype) for y, w in pairs]
    totals = client.gather(client.compute(tasks))
    # fsum: the exact sum of the per-partition floats, independent of their order
    return math.fsum(t[0] for t in totals), math.fsum(t[1] for t in totals)


def class_weight_totals(
    y: Any,
    sample_weight: Any = None,
    *,
    client: distributed.Client | None = None,
    weight_dtype: str | None = None,
) -> tuple[float, float]:
    """``(Σ w over y = 1, Σ w over y = 0)`` of dask labels, computed where the rows live.

    ``y``: 0/1 labels, a 1-D dask array, dask Series or one-column dask
    DataFrame; ``sample_weight``: None or weights partitioned like ``y``. Each
    partition is reduced on its worker by :meth:`FocalLoss.class_weight_totals`;
    only the per-partition pairs come back, and are added exactly
    (``math.fsum``). ``weight_dtype="float32"`` rounds the weights first, as
    the engines store them. Labels are validated on the workers (the error of
    a bad partition is raised here).
    """
    client = _client(client)
    y_parts = _vector_parts(y, "y")
    if sample_weight is None:
        w_parts: list = [None] * len(y_parts)
    else:
        w_parts = _vector_parts(_aligned_weights(y, sample_weight), "sample_weight")
        if len(w_parts) != len(y_parts):
            raise ValueError(
                f"y has {len(y_parts)} partitions but sample_weight has {len(w_parts)}: they must be partitioned "
                "alike (rechunk/repartition one to match the other)"
            )
    return _totals_from_parts(client, list(zip(y_parts, w_parts, strict=True)), weight_dtype)


def init_score(
    loss: FocalLoss,
    y: Any,
    sample_weight: Any = None,
    *,
    client: distributed.Client | None = None,
    weight_dtype: str | None = None,
) -> float:
    """The focal-optimal constant margin of distributed labels: ``loss.init_score`` without gathering ``y``.

    Same arguments as :func:`class_weight_totals`; returns
    ``loss.init_score_from_totals(*class_weight_totals(y, sample_weight))``,
    equal to ``loss.init_score(y.compute(), sample_weight.compute())`` (exactly
    when the weight totals are exact sums, as with unit or integer weights).
    """
    loss = check_loss(loss, binary_only=True)
    w_pos, w_neg = class_weight_totals(y, sample_weight, client=client, weight_dtype=weight_dtype)
    return loss.init_score_from_totals(w_pos, w_neg)


# --------------------------------------------------------------------------- XGBoost native


def _require_xgboost() -> None:
    if _xgb_dask is None:
        raise ImportError("gbfocal.dask's XGBoost part needs xgboost: pip install 'gbfocal[xgboost,dask]'")


def _require_lightgbm() -> None:
    if _lgb_dask is None:
        raise ImportError("gbfocal.dask's LightGBM part needs lightgbm: pip install 'gbfocal[lightgbm,dask]'")


def _dmatrix_part_totals(part: Mapping[str, Any]) -> tuple[float, float]:
    """Class weight totals of one ``DaskDMatrix`` partition (a dict of its pieces); runs on a worker."""
    if part.get("label") is None:
        raise ValueError("the DaskDMatrix has no labels; build it with DaskDMatrix(client, X, y) with y in {0, 1}")
    # float32: the weights the DMatrix stores, so the start equals gbfocal.xgboost.train's
    return _partition_totals(part["label"], part.get("weight"), "float32")


def _check_dask_dmatrix(dmatrix: Any, name: str) -> None:
    if not isinstance(dmatrix, _xgb_dask.DaskDMatrix):
        hint = "; for data in memory use gbfocal.xgboost.train" if isinstance(dmatrix, _xgb.DMatrix) else ""
        raise TypeError(
            f"{name} must be an xgboost.dask.DaskDMatrix (or DaskQuantileDMatrix), got {type(dmatrix).__name__}: "
            f"build it from dask collections with xgboost.dask.DaskDMatrix(client, X, y){hint}"
        )


def xgboost_base_score(loss: FocalLoss, dtrain: Any, *, client: distributed.Client | None = None) -> float:
    """XGBoost's ``base_score`` (a probability) for a labelled ``xgboost.dask.DaskDMatrix``.

    Returns ``σ(loss.init_score_from_totals(...))`` of the class weight totals
    of every partition of ``dtrain``, each computed on the worker that holds
    it (``DaskDMatrix.worker_map``). Equal to
    ``gbfocal.xgboost.base_score(loss, DMatrix(X, y, weight=w))`` on the
    gathered data (weights rounded to float32 as XGBoost stores them).
    """
    _require_xgboost()
    from scipy.special import expit

    loss = check_loss(loss, binary_only=True)
    _check_dask_dmatrix(dtrain, "dtrain")
    client = _client(client)
    parts = [future for futures in dtrain.worker_map.values() for future in futures]
    if not parts:
        raise ValueError("the DaskDMatrix holds no partitions")
    totals = client.gather([client.submit(_dmatrix_part_totals, part, pure=False) for part in parts])
    w_pos, w_neg = math.fsum(t[0] for t in totals), math.fsum(t[1] for t in totals)
    return float(expit(loss.init_score_from_totals(w_pos, w_neg)))


class XGBoostFocalMetric(_gfx.FocalMetric if _gfx is not None else object):  # type: ignore[misc]
    """``gbfocal.xgboost.FocalMetric`` that reports the global weighted mean under ``xgboost.dask``.

    Signature ``(predt, dmatrix) -> (name, value)``; ``predt`` holds the raw
    margins of the worker's local rows, shape ``(n,)``. In one process it is
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
            rows = self._rows.get(dmatrix, _gfx._rows_of_dmatrix)
            wsum = float(np.sum(rows.w, dtype=np.float64)) if rows.w.shape[0] else float(n_rows)
            if wsum > 0.0:
                margins = _gfx._one_margin_per_row(predt)
                sums[:] = rows.mean_loss(self.loss, margins, self.n_threads) * wsum, wsum
        sums = collective.allreduce(sums, collective.Op.SUM)
        if not sums[1] > 0.0:
            raise ValueError("sample_weight sums to 0 over all workers: the weighted mean focal loss is undefined")
        return self.name, float(sums[0] / sums[1])

    def __repr__(self) -> str:
        return f"XGBoostFocalMetric({self.loss!r}, name={self.name!r}, n_threads={self.n_threads!r})"


def _train_xgboost(
    client: distributed.Client,
    loss: FocalLoss,
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
    start = None
    if train_kwargs.get("xgb_model") is None and params.get("base_score") is None:
        start = xgboost_base_score(loss, dtrain, client=client)
    full = _gfx._focal_params(params, start)
    if focal_metric and train_kwargs.get("custom_metric") is None:
        train_kwargs["custom_metric"] = XGBoostFocalMetric(loss, n_threads=n_threads)
        if full.get("eval_metric") is None:  # report the focal loss alone, so early stopping uses it
            full["disable_default_eval_metric"] = True
    obj = _gfx.objective(loss, n_threads=n_threads)
    out = _xgb_dask.train(client, full, dtrain, num_boost_round, evals=evals, obj=obj, **train_kwargs)
    _gfx._store_loss(out["booster"], loss)  # as gbfocal.xgboost.train: predict_posterior(None, ...) reads it
    return out


def xgboost_train(
    client: distributed.Client | None,
    loss: FocalLoss,
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
    ``objective="binary:logistic"`` (the link: ``predict`` returns
    probabilities) and, unless given or continuing from ``xgb_model``,
    ``base_score =`` :func:`xgboost_base_score`, the value
    ``gbfocal.xgboost.train`` computes on one machine. ``obj`` is
    ``gbfocal.xgboost.objective(loss)``, pickled to every worker, where it
    sees the worker's local rows; ``custom_metric`` defaults to
    :class:`XGBoostFocalMetric` (XGBoost's default metric is then switched off
    unless ``params`` name an ``eval_metric``). The objective and metric use
    ``nthread`` threads if ``params`` set it, else as many as the smallest
    worker has (``threads_per_worker``), as XGBoost itself does on each
    worker. Other keyword arguments go to
    ``xgboost.dask.train``. Returns its ``{"booster": Booster, "history": dict}``;
    ``booster.predict`` gives probabilities, ``output_margin=True`` margins.
    """
    _require_xgboost()
    loss = check_loss(loss, binary_only=True)
    return _train_xgboost(_client(client), loss, params, dtrain, num_boost_round, evals, True, train_kwargs)


# --------------------------------------------------------------------------- labels on the cluster


def _partition_classes(part: Any) -> np.ndarray:
    return np.unique(_block_vector(part))


def _unique_labels(client: distributed.Client, y: Any) -> np.ndarray:
    """The sorted distinct labels: unique per partition on the workers, merged on the client."""
    tasks = [dask.delayed(_partition_classes, pure=True)(part) for part in _vector_parts(y, "y")]
    return np.unique(np.concatenate(client.gather(client.compute(tasks))))


def _two_classes(client: distributed.Client, y: Any, owner: str) -> np.ndarray:
    classes = _unique_labels(client, y)
    if classes.shape[0] != 2:
        shown = classes[:5].tolist()
        raise ValueError(
            f"Only binary classification is supported. {owner} needs exactly two classes in y, got "
            f"{classes.shape[0]} (first {shown}); multiclass focal loss is not available yet"
        )
    return classes


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
    """0/1 float codes of ``y`` (``classes[1]`` is 1), partitioned as ``y``; lazy."""
    if isinstance(y, da.Array):
        if y.ndim == 2:
            y = y[:, 0]
        return y.map_blocks(_encode_block, classes, dtype=np.float64)
    return y.map_partitions(_encode_partition, classes, meta=("label", "f8"))


def _constant_block(block: Any, value: float) -> np.ndarray:
    return np.full(np.shape(block)[0], value)


def _constant_partition(part: Any, value: float) -> Any:
    import pandas as pd

    return pd.Series(np.full(len(part), value), index=part.index, name="init_score")


def _constant_like(y: Any, value: float) -> Any:
    """A per-row constant partitioned as the (encoded) labels ``y``; lazy."""
    if isinstance(y, da.Array):
        return y.map_blocks(functools.partial(_constant_block, value=value), dtype=np.float64)
    return y.map_partitions(functools.partial(_constant_partition, value=value), meta=("init_score", "f8"))


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


def _check_proba(est: Any, modes: Sequence[str]) -> None:
    if est.focal_proba not in modes:
        raise ValueError(f"focal_proba must be one of {list(modes)}, got {est.focal_proba!r}")


def _map_rows(X: Any, fn: Any, model: Any, *, proba: bool, dtype: Any) -> Any:
    """``fn(block, model)`` over the row partitions of ``X``; a dask array of shape ``(n,)`` or ``(n, 2)``.

    ``model`` is a future of the scattered local estimator, so it travels to
    each worker once, not once per partition. Dataframe partitions reach
    ``fn`` as pandas frames (feature names and dtypes intact).
    """
    if isinstance(X, dd.DataFrame):
        lengths = X.map_partitions(len).compute().tolist()
        blocks = []
        for part, n_rows in zip(X.to_delayed(), lengths, strict=True):
            shape = (n_rows, 2) if proba else (n_rows,)
            blocks.append(da.from_delayed(dask.delayed(fn, pure=True)(part, model), shape=shape, dtype=dtype))
        return da.concatenate(blocks)
    if not isinstance(X, da.Array) or X.ndim != 2:
        raise TypeError(f"X must be a 2-D dask array or a dask DataFrame, got {type(X).__name__}")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    if proba:
        return X.map_blocks(fn, model, chunks=(X.chunks[0], (2,)), dtype=dtype)
    return X.map_blocks(fn, model, drop_axis=1, dtype=dtype)


def _block_predict_proba(block: np.ndarray, model: Any) -> np.ndarray:
    if block.shape[0] == 0:
        return np.empty((0, 2))
    return model.predict_proba(block)


def _block_predict(block: np.ndarray, model: Any) -> np.ndarray:
    if block.shape[0] == 0:
        return np.empty(0, dtype=model.classes_.dtype)
    return model.predict(block)


def _block_decision(block: np.ndarray, model: Any) -> np.ndarray:
    if block.shape[0] == 0:
        return np.empty(0)
    return np.asarray(model.decision_function(block), dtype=np.float64)


# --------------------------------------------------------------------------- XGBoost estimator

_XGBBase: type = _xgb_dask.DaskXGBClassifier if _xgb_dask is not None else object


class DaskXGBFocalClassifier(_XGBBase):  # type: ignore[misc, valid-type]
    """``xgboost.dask.DaskXGBClassifier`` trained with the α-balanced focal loss (binary).

    The Dask twin of :class:`gbfocal.xgboost.XGBFocalClassifier`, with the
    same parameters (``focal_alpha``, ``focal_gamma``, ``focal_hessian``,
    ``focal_proba``; every other one keeps its XGBoost meaning) and the same
    contract, on dask collections partitioned by rows:

    * ``fit(X, y, *, sample_weight=None, eval_set=None, ...)``: ``y`` holds
      any two class labels; ``classes_`` is their sorted array,
      ``classes_[1]`` the positive class. Labels are encoded on the workers;
      the starting score is :func:`init_score` of the whole training set
      (computed per partition); training is :func:`xgboost_train`. With
      ``eval_metric=None`` each ``eval_set`` reports the global weighted mean
      focal loss as ``"focal"``.
    * ``predict_proba(X)``: dask array ``(n, 2)``, columns as ``classes_``,
      rows summing to 1 (the probability ``focal_proba`` selects);
      ``predict(X)``: dask array of labels from ``classes_``;
      ``decision_function(X)``: their log-odds, shape ``(n,)``. Each
      partition is predicted by :meth:`to_local`'s ``XGBFocalClassifier``
      (scattered to the workers once), so the numbers are the single-machine
      ones by construction.

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
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        focal_hessian: str = DEFAULT_HESSIAN,
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

    def focal_loss(self) -> FocalLoss:
        """The :class:`~gbfocal.FocalLoss` of the current ``focal_*`` parameters."""
        return focal_loss_of(self)

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
        loss = self.focal_loss()
        _check_proba(self, _gfx.PROBA_MODES)
        _gfx._focal_params({"objective": self.objective, "scale_pos_weight": self.scale_pos_weight}, None)
        if callable(self.eval_metric):
            raise ValueError(
                "DaskXGBFocalClassifier takes eval_metric=None (the focal loss over all workers) or XGBoost metric "
                "names; XGBoost would average a callable metric over the workers"
            )
        client = _client(self.client)
        classes = _two_classes(client, y, type(self).__name__)
        y01 = _encoded(y, classes)
        params = self.get_xgb_params()
        if self.base_score is None and xgb_model is None:
            # from the labels' partitions (float64 weights), as XGBFocalClassifier does from y and sample_weight
            params["base_score"] = float(1.0 / (1.0 + math.exp(-init_score(loss, y01, sample_weight, client=client))))
        quantile = params.get("tree_method") in (None, "hist", "approx")
        make = _xgb_dask.DaskQuantileDMatrix if quantile else _xgb_dask.DaskDMatrix
        common: dict[str, Any] = {"missing": self.missing, "enable_categorical": self.enable_categorical}
        if quantile:
            common["max_bin"] = self.max_bin
        dtrain = make(client, X, y01, weight=sample_weight, **common)
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
            self.eval_metric is None,
            train_kwargs,
        )
        self._Booster = result["booster"]
        self.evals_result_ = result["history"]
        self.classes_ = classes
        self.n_classes_ = 2
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
        local.n_classes_ = 2
        local._gbfocal_classes = self.classes_
        local._focal_loss = self._focal_loss
        return local

    def _map(self, X: Any, fn: Any, *, proba: bool, dtype: Any) -> Any:
        model = _client(self.client).scatter(self.to_local(), hash=False)
        return _map_rows(X, fn, model, proba=proba, dtype=dtype)

    def decision_function(self, X: Any) -> Any:
        """``XGBFocalClassifier.decision_function`` per partition: a dask array of shape ``(n,)``, float64.

        That is the log-odds of the ``predict_proba`` probability (the raw
        margin with ``focal_proba="sigmoid"``); raw margins:
        ``xgboost.dask.predict(client, model.get_booster(), X, output_margin=True)``.
        """
        return self._map(X, _block_decision, proba=False, dtype=np.float64)

    def predict_proba(self, X: Any) -> Any:  # type: ignore[override]
        """Class probabilities: dask array ``(n, 2)``, float64, columns as ``classes_``, rows summing to 1."""
        return self._map(X, _block_predict_proba, proba=True, dtype=np.float64)

    def predict(self, X: Any) -> Any:  # type: ignore[override]
        """Predicted labels from ``classes_``: a dask array of shape ``(n,)``."""
        return self._map(X, _block_predict, proba=False, dtype=self.classes_.dtype)


# --------------------------------------------------------------------------- LightGBM estimator

_LGBMRegressorBase: type = _lgb_dask.LGBMRegressor if _lgb_dask is not None else object


class _WorkerFocalModel(_LGBMRegressorBase):  # type: ignore[misc, valid-type]
    """What each worker fits inside ``lightgbm.dask``: the focal loss on 0/1 codes.

    A regressor, not a classifier: the client has encoded the labels
    (``classes_[1]`` is 1) and a worker's partitions may hold a single class,
    which a classifier would re-encode locally. The start arrives as
    ``init_score``; the client folds it into the first tree after training.
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
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.focal_hessian = focal_hessian
        self.focal_proba = focal_proba  # for prediction only: the client's twin reads it
        super().__init__(**kwargs)

    def _process_params(self, stage: str) -> dict[str, Any]:
        given = self.get_params()
        params = super()._process_params(stage)
        for name in _FOCAL_PARAMS:
            params.pop(name, None)
        if stage == "fit":
            if all(given.get(k) is None for k in _gfl._aliases("metric")):
                params["metric"] = "None"  # the regressor's default, l2, means nothing here
            self._objective = _gfl.FocalObjective(focal_loss_of(self), _gfl._threads_from_params(params))
            params["objective"] = self._objective
        return params

    def fit(self, X: Any, y: Any, eval_metric: Any = None, callbacks: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        # lightgbm.dask puts the worker's thread count in num_threads; the metric uses as many
        metric = _gfl._SklearnFocalMetric(focal_loss_of(self), _gfl._threads_from_params(self.get_params()))
        user = [] if eval_metric is None else (list(eval_metric) if isinstance(eval_metric, list) else [eval_metric])
        return super().fit(
            X,
            y,
            eval_metric=[metric, *user],
            callbacks=[*(callbacks or []), _gfl._SkipObjectiveReset()],
            **kwargs,
        )


_LGBMDaskBase: type = _lgb_dask.DaskLGBMClassifier if _lgb_dask is not None else object


class DaskLGBMFocalClassifier(_LGBMDaskBase):  # type: ignore[misc, valid-type]
    """``lightgbm.DaskLGBMClassifier`` trained with the α-balanced focal loss (binary).

    The Dask twin of :class:`gbfocal.lightgbm.LGBMFocalClassifier`: same
    ``focal_*`` parameters (``focal_proba`` included), every other one a
    LightGBM one (plus ``client``).
    ``fit(X, y, sample_weight=None, eval_set=None, ...)`` takes dask
    collections partitioned by rows; ``y`` any two labels (``classes_``
    sorted, ``classes_[1]`` positive). Labels are encoded on the workers, the
    focal start is :func:`init_score` of the whole training set (weights
    rounded to float32 as LightGBM stores them), given to every worker as
    ``init_score`` and, after training, added to the leaves of the first tree,
    so the model predicts correct margins on its own. ``predict_proba``
    (dask ``(n, 2)``, rows summing to 1), ``predict`` (labels) and
    ``decision_function`` (margins ``(n,)``) run :meth:`to_local`'s
    ``LGBMFocalClassifier`` on each partition, as LightGBM's Dask classes do.

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
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        focal_hessian: str = DEFAULT_HESSIAN,
        focal_proba: str = "posterior",
        client: distributed.Client | None = None,
        **kwargs: Any,
    ) -> None:
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.focal_hessian = focal_hessian
        self.focal_proba = focal_proba
        super().__init__(client=client, **kwargs)

    def focal_loss(self) -> FocalLoss:
        """The :class:`~gbfocal.FocalLoss` of the current ``focal_*`` parameters."""
        return focal_loss_of(self)

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
        loss = self.focal_loss()
        _check_proba(self, _gfl.PROBA_MODES)
        client = _lgb_dask._get_dask_client(self.client)
        classes = _two_classes(client, y, type(self).__name__)
        y01 = _encoded(y, classes)
        start = init_score(loss, y01, sample_weight, client=client, weight_dtype="float32")
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
                y=y01,
                sample_weight=sample_weight,
                init_score=_constant_like(y01, start),
                eval_set=evals or None,
                eval_names=eval_names,
                eval_sample_weight=eval_sample_weight,
                eval_init_score=eval_start or None,
                eval_metric=eval_metric,
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
        self._n_classes = 2
        self._focal_loss = loss  # what LGBMFocalClassifier.fit leaves for prediction; to_local copies it
        self.focal_start_ = start
        return self

    def to_local(self) -> Any:
        """The fitted single-machine :class:`gbfocal.lightgbm.LGBMFocalClassifier` with this booster."""
        from gbfocal.lightgbm import LGBMFocalClassifier

        return self._lgb_dask_to_local(LGBMFocalClassifier)

    def _map(self, X: Any, fn: Any, *, proba: bool, dtype: Any) -> Any:
        model = _lgb_dask._get_dask_client(self.client).scatter(self.to_local(), hash=False)
        return _map_rows(X, fn, model, proba=proba, dtype=dtype)

    def decision_function(self, X: Any) -> Any:
        """``LGBMFocalClassifier.decision_function`` per partition: a dask array of shape ``(n,)``.

        That is the logit of the ``predict_proba`` probability (the raw
        margin with ``focal_proba="sigmoid"``); ``booster_.predict(X,
        raw_score=True)`` gives the raw margins, start included.
        """
        return self._map(X, _block_decision, proba=False, dtype=np.float64)

    def predict_proba(self, X: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Class probabilities: dask array ``(n, 2)``, columns as ``classes_``, rows summing to 1."""
        if kwargs:
            raise TypeError(f"DaskLGBMFocalClassifier.predict_proba takes only X, got {sorted(kwargs)}")
        return self._map(X, _block_predict_proba, proba=True, dtype=np.float64)

    def predict(self, X: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Predicted labels from ``classes_``: a dask array of shape ``(n,)``."""
        if kwargs:
            raise TypeError(f"DaskLGBMFocalClassifier.predict takes only X, got {sorted(kwargs)}")
        return self._map(X, _block_predict, proba=False, dtype=self.classes_.dtype)
