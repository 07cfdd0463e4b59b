"""gbfocal on Dask: distributed start, XGBoost and LightGBM training, workers' Numba cache and threads.

One 2-process LocalCluster on loopback serves the whole module. Distributed
``hist`` sketches its bins per partition, so a distributed model differs from
the single-machine one even for the built-in objectives; the comparisons hold
gbfocal to the built-in objective's own Dask-vs-local gap, and demand exact
equality where the engine itself is exact (one partition, the starting score).
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import shutil
import sys
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")
xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
pytest.importorskip("sklearn")

import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402
import xgboost.dask  # noqa: E402, F401
from distributed import Client, LocalCluster, futures_of, wait  # noqa: E402
from sklearn.base import clone  # noqa: E402

import gbfocal.dask as gfd  # noqa: E402
import gbfocal.lightgbm as gfl  # noqa: E402
import gbfocal.xgboost as gfx  # noqa: E402
from gbfocal import FocalLoss, _loss  # noqa: E402
from gbfocal.lightgbm import LGBMFocalClassifier  # noqa: E402
from gbfocal.xgboost import XGBFocalClassifier  # noqa: E402

HIST = {"tree_method": "hist", "max_depth": 4, "eta": 0.3}
#: small trees: a worker process's first lightgbm.dask session pays a network latency per split (~0.1 s here)
LGB = {"n_estimators": 10, "num_leaves": 7, "min_child_samples": 20, "verbose": -1, "deterministic": True}
#: lightgbm.dask warns about n_jobs for every DaskLGBMClassifier (its default None included)
LGB_N_JOBS = r"Parameter n_jobs will be ignored"


@pytest.fixture(scope="module")
def numba_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("numba_cache")


@pytest.fixture(scope="module")
def client(numba_cache_dir):
    # Two worker processes with two threads each, loopback only, sharing one fresh Numba cache. The scheduler's
    # HTTP server gets a free loopback port: with dashboard_address=None it still binds :8787 and, when another
    # cluster on this machine holds that port, warns "Port 8787 is already in use" (an error under -W error).
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            env={"NUMBA_CACHE_DIR": str(numba_cache_dir)},
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _data(n=40_000, d=10, seed=0, rate=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    score = X[:, 0] - 0.5 * X[:, 1] ** 2 + 0.5 * X[:, 2] * X[:, 3] + rng.normal(size=n)
    y = (score > (np.quantile(score, 1 - rate) if rate else 0.5)).astype(np.float64)
    return X, y


def _gap(a, b):
    """(max |a - b| relative to b's spread, 1 - corr(a, b)): how far a distributed model is from the local one."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / b.std()), float(1.0 - np.corrcoef(a, b)[0, 1])


def _persist_on_both_workers(client, *arrays):
    """Persist dask arrays spread over both workers, so that fits sharing them see one data placement.

    LightGBM trains each worker on the partitions it holds; arrays built anew for each fit may land
    elsewhere, or all on one worker (then the "distributed" model is the local one).
    """
    arrays = client.persist(list(arrays))
    wait(arrays)
    if len({w for ws in client.who_has(arrays[0]).values() for w in ws}) < 2:
        client.rebalance(futures_of(arrays))
    assert len({w for ws in client.who_has(arrays[0]).values() for w in ws}) == 2
    return arrays


def _assert_gap_within_builtin(focal, builtin):
    # The engine's own Dask-vs-local difference (built-in objective) bounds what gbfocal may show;
    # factor 2 for run-to-run noise of the per-partition sketches.
    assert focal[0] <= 2.0 * builtin[0], (focal, builtin)
    assert focal[1] <= 2.0 * builtin[1], (focal, builtin)


# --------------------------------------------------------------------------- Numba on workers (first: fresh cache)


def _compile_at(start_at: float):
    """Import gbfocal's kernels and run one at ``start_at`` (wall clock), so both workers compile at once."""
    while time.time() < start_at:
        time.sleep(0.002)
    t0 = time.time()
    from gbfocal import FocalLoss, _cpu, _loss

    budget, _loss.PYTHON_ROW_BUDGET = _loss.PYTHON_ROW_BUDGET, 0  # 3 rows through the kernel, not in Python
    try:
        g, _ = FocalLoss().gradient_hessian(np.array([0.0, 1.0, 1.0]), np.array([-1.0, 0.5, 3.0], dtype=np.float32))
    finally:
        _loss.PYTHON_ROW_BUDGET = budget
    stats = _cpu.gradient_hessian_kernel32.stats  # float32 margins: the float32 kernel
    return t0, time.time(), sum(stats.cache_misses.values()), sum(stats.cache_hits.values()), stats.cache_path, g


def test_workers_compile_at_once_into_a_fresh_shared_cache_and_reload_it_after_restart(
    client, numba_cache_dir, monkeypatch
):
    monkeypatch.setattr(_loss, "PYTHON_ROW_BUDGET", 0)  # expected: the kernel's values, as the workers compute
    if any(client.run(lambda: "gbfocal._cpu" in sys.modules).values()) or any(numba_cache_dir.iterdir()):
        shutil.rmtree(numba_cache_dir)
        numba_cache_dir.mkdir()
        client.restart()
    expected, _ = FocalLoss().gradient_hessian(np.array([0.0, 1.0, 1.0]), np.array([-1.0, 0.5, 3.0], np.float32))

    first = list(client.run(_compile_at, time.time() + 1.0).values())
    assert len(first) == 2
    for _t0, _t1, misses, hits, path, g in first:
        assert misses >= 1 and hits == 0  # compiled here, not loaded
        assert path.startswith(str(numba_cache_dir))
        np.testing.assert_array_equal(g, expected)
    assert max(r[0] for r in first) < min(r[1] for r in first), "the two compilations did not overlap"
    assert list(numba_cache_dir.rglob("*.nbi")) and list(numba_cache_dir.rglob("*.nbc"))

    # A restart between fits: fresh processes load the cache both wrote, and training works.
    X, y = _data(4000, 5)
    dX, dy = da.from_array(X, chunks=(1000, -1)), da.from_array(y, chunks=1000)
    before = gfd.DaskXGBFocalClassifier(n_estimators=5, **HIST).fit(dX, dy)
    client.restart()
    second = list(client.run(_compile_at, 0.0).values())
    for _t0, _t1, misses, hits, _path, g in second:
        assert misses == 0 and hits >= 1
        np.testing.assert_array_equal(g, expected)
    after = gfd.DaskXGBFocalClassifier(n_estimators=5, **HIST).fit(dX, dy)
    assert _base_score(after) == _base_score(before)
    np.testing.assert_allclose(after.predict_proba(dX).compute().sum(axis=1), 1.0)
    np.testing.assert_array_equal(before.predict_proba(dX).compute(), before.to_local().predict_proba(X))


# --------------------------------------------------------------------------- threads on workers


def _hammer(seed: int, n_rows: int, repeats: int):
    """Several kernel calls from one Dask task thread, each split over gbfocal's own pool."""
    import threading

    import numba

    from gbfocal import FocalLoss

    rng = np.random.default_rng(seed)
    y = (rng.random(n_rows) < 0.1).astype(np.float64)
    z = rng.normal(scale=4.0, size=n_rows).astype(np.float32)
    loss = FocalLoss(0.25, 2.0)
    ref_g, ref_h = loss.gradient_hessian(y, z, n_threads=1)
    t0 = time.time()
    ok = True
    for _ in range(repeats):
        g, h = loss.gradient_hessian(y, z, n_threads=2)
        ok &= bool(np.array_equal(g, ref_g) and np.array_equal(h, ref_h))
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region was ever launched in this process
        layer = None
    return ok, t0, time.time(), threading.get_ident(), os.getpid(), layer


def test_worker_threads_call_the_kernels_at_once_without_a_numba_threading_layer(client):
    futures = [client.submit(_hammer, seed, 200_000, 20, pure=False) for seed in range(8)]
    results = client.gather(futures)
    assert all(r[0] for r in results), "a concurrent call returned different gradients"
    assert all(r[5] is None for r in results), "a Numba threading layer was initialised on a worker"
    # the test only means something if two task threads of one worker process ran kernels at the same time
    overlapped = False
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            if a[4] == b[4] and a[3] != b[3] and a[1] < b[2] and b[1] < a[2]:
                overlapped = True
    assert overlapped


def _vary_chunk_counts(seed: int, seconds: float):
    """Kernel calls whose row-chunk count changes every call, as partitions of different sizes give."""
    from gbfocal import FocalLoss

    rng = np.random.default_rng(seed)
    y = (rng.random(140_000) < 0.2).astype(np.float64)
    z = rng.normal(size=140_000)
    loss = FocalLoss()
    end, i = time.time() + seconds, 0
    while time.time() < end:
        i += 1
        try:
            loss.gradient_hessian(y, z, n_threads=2 + (i + seed) % 3)
        except RuntimeError as error:
            return repr(error)
    return None


def test_worker_threads_calling_with_different_chunk_counts(client):
    errors = client.gather([client.submit(_vary_chunk_counts, seed, 3.0, pure=False) for seed in range(4)])
    assert errors == [None] * 4


# --------------------------------------------------------------------------- distributed starting score


@pytest.mark.parametrize("weights", ["none", "integer", "float"])
@pytest.mark.parametrize("kind", ["array", "series"])
def test_init_score_is_the_single_machine_one(client, weights, kind):
    rng = np.random.default_rng(3)
    n = 9000
    y = (rng.random(n) < 0.05).astype(np.float64)
    y[:3000] = 0.0  # the first partition holds no positive at all
    w = {"none": None, "integer": rng.integers(0, 5, n).astype(np.float64), "float": rng.random(n) * 3}[weights]
    chunks = (3000, 0, 2500, 3500)  # uneven, one empty
    if kind == "array":
        dy = da.from_array(y, chunks=(chunks,))
        dw = None if w is None else da.from_array(w, chunks=(chunks,))
    else:
        frame = dd.from_pandas(pd.DataFrame({"y": y, "w": rng.random(n) if w is None else w}), npartitions=3)
        dy, dw = frame["y"], (None if w is None else frame["w"])
    for loss in (FocalLoss(0.25, 2.0), FocalLoss(0.7, 0.5), FocalLoss(0.25, 0.0)):
        local = loss.init_score(y, w)
        distributed_start = gfd.init_score(loss, dy, dw, client=client)
        if weights == "float":  # sums in another order: equal to rounding
            assert distributed_start == pytest.approx(local, rel=1e-12, abs=1e-12)
        else:
            assert distributed_start == local
    assert gfd.class_weight_totals(dy, dw) == pytest.approx(FocalLoss.class_weight_totals(y, w), rel=1e-13)


def test_xgboost_base_score_from_a_dask_dmatrix_is_the_single_machine_one(client):
    X, y = _data(6000, 4)
    w = np.random.default_rng(1).integers(1, 4, y.shape[0]).astype(np.float64)
    dtrain = xgb.dask.DaskDMatrix(
        client, da.from_array(X, chunks=(1500, -1)), da.from_array(y, chunks=1500), weight=da.from_array(w, chunks=1500)
    )
    loss = FocalLoss(0.3, 2.0)
    assert gfd.xgboost_base_score(loss, dtrain) == gfx.base_score(loss, xgb.DMatrix(X, label=y, weight=w))


def test_partition_mismatch_and_bad_labels_are_reported(client):
    dy = da.from_array(np.array([0.0, 1.0] * 50), chunks=25)
    frame = dd.from_pandas(pd.DataFrame({"y": [0.0, 1.0] * 50, "w": 1.0}), npartitions=4)
    with pytest.raises(ValueError, match="partitioned alike"):
        gfd.class_weight_totals(frame["y"], frame["w"].repartition(npartitions=2), client=client)
    with pytest.raises(ValueError, match=r"must contain only 0 and 1, found \[2.0\]"):
        gfd.class_weight_totals(dy * 2, client=client)
    with pytest.raises(ValueError, match="both classes"):
        gfd.init_score(FocalLoss(), dy * 0, client=client)
    with pytest.raises(TypeError, match="dask array, Series or one-column DataFrame"):
        gfd.class_weight_totals(np.array([0.0, 1.0]), client=client)


# --------------------------------------------------------------------------- XGBoost native


def test_xgboost_train_on_one_partition_is_the_single_machine_model(client):
    X, y = _data(8000, 6)
    loss = FocalLoss(0.25, 2.0)
    params = {**HIST, "nthread": 2}
    dtrain = xgb.dask.DaskDMatrix(client, da.from_array(X, chunks=(-1, -1)), da.from_array(y, chunks=-1))
    out = gfd.xgboost_train(client, loss, params, dtrain, 10, evals=[(dtrain, "train")], verbose_eval=False)
    local_hist: dict = {}
    dlocal = xgb.DMatrix(X, label=y)
    local = gfx.train(loss, params, dlocal, 10, evals=[(dlocal, "train")], evals_result=local_hist, verbose_eval=False)
    dm = xgb.DMatrix(X)
    np.testing.assert_array_equal(out["booster"].predict(dm, output_margin=True), local.predict(dm, output_margin=True))
    assert out["history"]["train"]["focal"] == local_hist["train"]["focal"]
    assert gfx.booster_loss(out["booster"]) == loss  # recorded as gfx.train records it
    recorded = gfx.predict_posterior(None, out["booster"], dm)
    np.testing.assert_array_equal(recorded, gfx.predict_posterior(loss, local, dm))


def test_xgboost_dask_vs_local_gap_is_the_engines_own(client):
    X, y = _data()
    dX, dy = da.from_array(X, chunks=(10_000, -1)), da.from_array(y, chunks=10_000)
    dtrain = xgb.dask.DaskDMatrix(client, dX, dy)
    dlocal, dm = xgb.DMatrix(X, label=y), xgb.DMatrix(X)
    loss = FocalLoss(0.25, 2.0)
    focal = gfd.xgboost_train(client, loss, HIST, dtrain, 30, verbose_eval=False)["booster"]
    builtin_params = {**HIST, "objective": "binary:logistic"}
    builtin = xgb.dask.train(client, builtin_params, dtrain, 30, verbose_eval=False)["booster"]
    focal_gap = _gap(
        focal.predict(dm, output_margin=True), gfx.train(loss, HIST, dlocal, 30).predict(dm, output_margin=True)
    )
    builtin_gap = _gap(
        builtin.predict(dm, output_margin=True),
        xgb.train(builtin_params, dlocal, 30).predict(dm, output_margin=True),
    )
    assert builtin_gap[0] > 0  # partitioned sketches: the engine itself is not exact here
    _assert_gap_within_builtin(focal_gap, builtin_gap)


def test_xgboost_focal_metric_is_the_weighted_mean_over_all_rows(client):
    X, y = _data(9000, 5)
    w = np.random.default_rng(2).random(y.shape[0]) * 2
    chunks = ((1000, 8000),)  # workers hold very different row counts
    dtrain = xgb.dask.DaskDMatrix(
        client,
        da.from_array(X, chunks=(chunks[0], (5,))),
        da.from_array(y, chunks=chunks),
        weight=da.from_array(w, chunks=chunks),
    )
    loss = FocalLoss(0.25, 2.0)
    out = gfd.xgboost_train(client, loss, HIST, dtrain, 5, evals=[(dtrain, "train")], verbose_eval=False)
    margins = out["booster"].predict(xgb.DMatrix(X), output_margin=True)
    reported = out["history"]["train"]["focal"][-1]
    assert reported == pytest.approx(loss.mean_loss(y, margins, w), rel=1e-5)
    # XGBoost's averaging of per-worker values, which the plain single-machine metric gets, is not it
    plain = gfd.xgboost_train(
        client, loss, HIST, dtrain, 5, evals=[(dtrain, "train")], custom_metric=gfx.metric(loss), verbose_eval=False
    )
    if len(dtrain.worker_map) == 2:
        assert plain["history"]["train"]["focal"][-1] != pytest.approx(reported, rel=1e-3)


def _use_on_worker(obj_bytes: bytes):
    """Unpickle an objective on a worker, use it on two DMatrix objects, then drop them."""
    import xgboost as xgb

    obj = pickle.loads(obj_bytes)
    assert len(obj._rows._values) == 0  # nothing came along from the client
    rng = np.random.default_rng(0)
    out = []
    for n in (100, 300):
        d = xgb.DMatrix(rng.normal(size=(n, 2)), label=(rng.random(n) < 0.3).astype(float))
        z = rng.normal(size=n).astype(np.float32)
        g1, _ = obj(z, d)
        rows = obj.prepared(d)
        g2, _ = obj(z, d)
        out.append(bool(obj.prepared(d) is rows and np.array_equal(g1, g2)))
        del d, rows
    for _ in range(50):  # another task's collection may be running in this process: gc.collect() then returns at once
        gc.collect()
        if not len(obj._rows._values):
            break
        time.sleep(0.01)
    return out, len(obj._rows._values)


def test_objective_pickles_without_state_and_works_in_each_worker(client):
    loss = FocalLoss(0.3, 1.5)
    obj = gfx.objective(loss, n_threads=1)
    d = xgb.DMatrix(np.zeros((4, 1)), label=[0.0, 1.0, 1.0, 0.0])
    obj(np.zeros(4, np.float32), d)  # the client's copy has a cached DMatrix now
    blob = pickle.dumps(obj)
    results = client.gather([client.submit(_use_on_worker, blob, pure=False) for _ in range(4)])
    assert all(r == ([True, True], 0) for r in results), results  # cached per DMatrix, released with it
    for made in (obj, gfd.XGBoostFocalMetric(loss), gfl.objective(loss), gfl.metric(loss)):
        back = pickle.loads(pickle.dumps(made))
        assert type(back) is type(made) and back.loss == loss


# --------------------------------------------------------------------------- estimators


def _base_score(model) -> float:
    config = json.loads(model.get_booster().save_config())
    return float(config["learner"]["learner_model_param"]["base_score"].strip("[]"))


def test_dask_xgb_classifier_contract(client):
    X, y = _data(12_000, 6, rate=0.1)
    labels = np.where(y > 0, "fraud", "ok")
    frame = dd.from_pandas(pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]), npartitions=3)
    dlabels = dd.from_pandas(pd.Series(labels, name="label"), npartitions=3)
    params = {"n_estimators": 10, "focal_alpha": 0.4, "focal_gamma": 1.0, **HIST}
    model = gfd.DaskXGBFocalClassifier(**params).fit(frame, dlabels, eval_set=[(frame, dlabels)])
    local = XGBFocalClassifier(**params).fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]), labels)
    assert model.classes_.tolist() == ["fraud", "ok"] == local.classes_.tolist()
    assert _base_score(model) == _base_score(local)  # the same start, from partitions
    proba = model.predict_proba(frame).compute()
    assert proba.shape == (12_000, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    predicted = model.predict(frame).compute()
    assert set(predicted) <= {"fraud", "ok"}
    np.testing.assert_array_equal(predicted, model.classes_[np.argmax(proba, axis=1)])
    twin = model.to_local()
    np.testing.assert_array_equal(proba, twin.predict_proba(frame.compute()))
    assert model.decision_function(frame).compute().shape == (12_000,)
    assert len(model.evals_result_["validation_0"]["focal"]) == 10
    back = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(back.predict_proba(frame).compute(), proba)
    assert clone(model).get_params()["focal_alpha"] == 0.4
    with pytest.raises(ValueError, match="needs at least two classes"):
        one = dd.from_pandas(pd.Series(np.array(["a"] * 12_000), name="label"), npartitions=3)
        gfd.DaskXGBFocalClassifier(n_estimators=2).fit(frame, one)


def test_dask_lgbm_classifier_matches_local_as_closely_as_builtin(client):
    X, y = _data(20_000, 8)
    labels = np.where(y > 0, 2, 1)
    dX, dlabels, dy = _persist_on_both_workers(
        client, da.from_array(X, chunks=(5000, -1)), da.from_array(labels, chunks=5000), da.from_array(y, chunks=5000)
    )
    model = gfd.DaskLGBMFocalClassifier(**LGB).fit(dX, dlabels)
    local = LGBMFocalClassifier(**LGB).fit(X, labels)
    assert model.focal_start_ == FocalLoss().init_score(y)
    assert model.classes_.tolist() == [1, 2]
    proba = model.predict_proba(dX).compute()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(model.predict(dX).compute(), model.classes_[np.argmax(proba, axis=1)])
    np.testing.assert_array_equal(proba, model.to_local().predict_proba(X))
    np.testing.assert_array_equal(model.decision_function(dX).compute(), model.to_local().decision_function(X))
    # the start lives in the first tree: the booster alone predicts the margins, as the local model's does
    margins = model.booster_.predict(X, raw_score=True)
    model.set_params(focal_proba="sigmoid")
    np.testing.assert_allclose(model.predict_proba(dX).compute()[:, 1], 1.0 / (1.0 + np.exp(-margins)), rtol=1e-12)
    model.set_params(focal_proba="posterior")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=LGB_N_JOBS, category=UserWarning)
        builtin = lgb.DaskLGBMClassifier(**LGB).fit(dX, dy)
    builtin_local = lgb.LGBMClassifier(**LGB).fit(X, y)
    focal_gap = _gap(margins, local.booster_.predict(X, raw_score=True))
    builtin_gap = _gap(builtin.predict(dX, raw_score=True).compute(), builtin_local.predict(X, raw_score=True))
    assert builtin_gap[0] > 0  # both workers trained: the engine itself is not exact here
    _assert_gap_within_builtin(focal_gap, builtin_gap)
    back = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(back.predict_proba(dX).compute(), proba)
    assert "num_threads" not in clone(model).get_params()


def test_dask_lgbm_classifier_on_one_partition_is_the_single_machine_model(client):
    X, y = _data(6000, 5)
    w = np.random.default_rng(4).random(y.shape[0]) + 0.5
    params = {**LGB, "n_estimators": 8}
    model = gfd.DaskLGBMFocalClassifier(**params).fit(
        da.from_array(X, chunks=(-1, -1)), da.from_array(y, chunks=-1), sample_weight=da.from_array(w, chunks=-1)
    )
    local = LGBMFocalClassifier(**params).fit(X, y, sample_weight=w)
    assert model.focal_start_ == pytest.approx(FocalLoss().init_score(y, w.astype(np.float32)), rel=1e-13)
    np.testing.assert_allclose(
        model.booster_.predict(X, raw_score=True), local.booster_.predict(X, raw_score=True), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(
        model.predict_proba(da.from_array(X, chunks=(2000, -1))).compute(), local.predict_proba(X)
    )


def test_dask_lgbm_classifier_refuses_what_it_cannot_honour(client):
    dX = da.from_array(np.zeros((40, 2)), chunks=(20, -1))
    dy = da.from_array(np.array([0.0, 1.0] * 20), chunks=20)
    with pytest.raises(ValueError, match="class_weight is not supported"):
        gfd.DaskLGBMFocalClassifier(class_weight="balanced").fit(dX, dy)
    with pytest.raises(ValueError, match="objective is the focal loss"):
        gfd.DaskLGBMFocalClassifier(objective="binary").fit(dX, dy)
    with pytest.raises(TypeError, match="does not take init_score"):
        gfd.DaskLGBMFocalClassifier().fit(dX, dy, init_score=dy)
    with pytest.raises(ValueError, match="binary_logloss"):
        gfd.DaskLGBMFocalClassifier(metric="binary_logloss").fit(dX, dy)


# --------------------------------------------------------------------------- client=, trained loss, bad input


def test_estimators_take_the_client_as_a_parameter_without_a_cluster():
    # No cluster runs here: get_params, repr and clone must not need one, and report what was given.
    for make in (gfd.DaskXGBFocalClassifier, gfd.DaskLGBMFocalClassifier):
        model = make(n_estimators=3)
        assert model.get_params()["client"] is None
        assert clone(model).get_params()["client"] is None
        assert "n_estimators=3" in repr(model)
    assert "client" not in gfd.DaskXGBFocalClassifier().get_xgb_params()


def test_estimators_fit_and_predict_with_the_client_given(client):
    # xgboost.dask.DaskXGBClassifier(client=c) files the client among the booster's parameters, which travel to
    # the workers: "Could not serialize object of type LLGExpr". gbfocal's estimators keep it out of them.
    X, y = _data(4000, 4)
    dX, dy = da.from_array(X, chunks=(1000, -1)), da.from_array(y, chunks=1000)
    for model in (
        gfd.DaskXGBFocalClassifier(client=client, n_estimators=3, **HIST),
        gfd.DaskLGBMFocalClassifier(client=client, **{**LGB, "n_estimators": 3}),
    ):
        assert model.get_params()["client"] is client
        model.fit(dX, dy)
        np.testing.assert_array_equal(model.predict_proba(dX).compute(), model.to_local().predict_proba(X))
        twin = clone(model)  # scikit-learn deep-copies parameters; a Client cannot be copied, so it is shared
        assert twin.get_params()["client"] is client
        assert twin.get_params()["focal_alpha"] == model.get_params()["focal_alpha"]
        assert pickle.loads(pickle.dumps(model)).get_params()["client"] is None  # a client does not pickle
    assert "client" not in model.to_local().get_params()


def _check_trained_loss_kept(model, dX, X):
    proba, local = model.predict_proba(dX).compute(), model.to_local().predict_proba(X)
    np.testing.assert_array_equal(proba, local)
    trained = model.focal_loss()
    model.set_params(focal_gamma=0.0, focal_alpha=0.5)  # a new configuration for the next fit, not this model
    np.testing.assert_array_equal(model.predict_proba(dX).compute(), proba)
    np.testing.assert_array_equal(model.to_local().predict_proba(X), proba)
    assert model.to_local()._focal_loss == trained
    assert model.to_local().get_params()["focal_gamma"] == 0.0


def test_dask_xgb_classifier_predicts_with_the_trained_loss_after_set_params(client):
    X, y = _data(4000, 4)
    dX, dy = da.from_array(X, chunks=(1000, -1)), da.from_array(y, chunks=1000)
    model = gfd.DaskXGBFocalClassifier(n_estimators=5, focal_alpha=0.25, focal_gamma=2.0, **HIST).fit(dX, dy)
    _check_trained_loss_kept(model, dX, X)


def test_dask_lgbm_classifier_predicts_with_the_trained_loss_after_set_params(client):
    X, y = _data(4000, 4)
    dX, dy = da.from_array(X, chunks=(1000, -1)), da.from_array(y, chunks=1000)
    model = gfd.DaskLGBMFocalClassifier(**{**LGB, "n_estimators": 5}).fit(dX, dy)
    _check_trained_loss_kept(model, dX, X)


def test_xgboost_train_refuses_a_plain_dmatrix_and_takes_params_none(client):
    X, y = _data(2000, 4)
    local = xgb.DMatrix(X, label=y)
    dtrain = xgb.dask.DaskDMatrix(client, da.from_array(X, chunks=(1000, -1)), da.from_array(y, chunks=1000))
    with pytest.raises(TypeError, match=r"dtrain must be an xgboost.dask.DaskDMatrix.*gbfocal.xgboost.train"):
        gfd.xgboost_train(client, FocalLoss(), HIST, local, 2)
    with pytest.raises(TypeError, match=r"evals\[0\]\[0\] must be an xgboost.dask.DaskDMatrix"):
        gfd.xgboost_train(client, FocalLoss(), HIST, dtrain, 2, evals=[(local, "local")])
    with pytest.raises(TypeError, match=r"evals\[0\] must be a \(DaskDMatrix, name\) pair"):
        gfd.xgboost_train(client, FocalLoss(), HIST, dtrain, 2, evals=[dtrain])
    with pytest.raises(TypeError, match=r"dtrain must be an xgboost.dask.DaskDMatrix"):
        gfd.xgboost_base_score(FocalLoss(), local, client=client)
    with pytest.raises(TypeError, match="params must be a dict"):
        gfd.xgboost_train(client, FocalLoss(), [("eta", 0.3)], dtrain, 2)
    # None: no parameters, as xgboost.train takes it
    none = gfd.xgboost_train(client, FocalLoss(), None, dtrain, 2, verbose_eval=False)["booster"]
    empty = gfd.xgboost_train(client, FocalLoss(), {}, dtrain, 2, verbose_eval=False)["booster"]
    assert none.save_raw("json") == empty.save_raw("json")


@pytest.mark.parametrize(
    ("make", "local"),
    [
        (lambda: gfd.DaskXGBFocalClassifier(n_estimators=2), "gbfocal.xgboost.XGBFocalClassifier"),
        (lambda: gfd.DaskLGBMFocalClassifier(n_estimators=2), "gbfocal.lightgbm.LGBMFocalClassifier"),
    ],
)
def test_estimators_refuse_data_in_memory_naming_the_argument(make, local):
    # checked before anything runs on a cluster: no client is needed for the error
    X, y = np.zeros((40, 2)), np.array([0.0, 1.0] * 20)
    dX, dy = da.from_array(X, chunks=(20, -1)), da.from_array(y, chunks=20)
    eval_weights = "sample_weight_eval_set" if "XGB" in local else "eval_sample_weight"
    for args, kwargs, name in [
        ((X, dy), {}, "X"),
        ((dX, y), {}, "y"),
        ((dX, dy), {"sample_weight": np.ones(40)}, "sample_weight"),
        ((dX, dy), {"eval_set": [(dX, y)]}, r"eval_set\[0\]\[1\]"),
        ((dX, dy), {"eval_set": [(dX, dy)], eval_weights: [np.ones(40)]}, rf"{eval_weights}\[0\]"),
    ]:
        with pytest.raises(TypeError, match=rf"fit takes dask collections.*{name} must be a dask.*{local}"):
            make().fit(*args, **kwargs)


def test_dask_xgb_classifier_refuses_scale_pos_weight():
    # refused as XGBFocalClassifier refuses it (XGBoost ignores it with a custom objective), before any cluster work
    dX = da.from_array(np.zeros((40, 2)), chunks=(20, -1))
    dy = da.from_array(np.array([0.0, 1.0] * 20), chunks=20)
    with pytest.raises(ValueError, match="scale_pos_weight=3 has no effect with a custom objective"):
        gfd.DaskXGBFocalClassifier(scale_pos_weight=3).fit(dX, dy)


@pytest.mark.parametrize(
    "param",
    [{"scale_pos_weight": 3.0}, {"is_unbalance": True}, {"pos_bagging_fraction": 0.5}, {"neg_bagging_fraction": 0.5}],
)
def test_dask_lgbm_classifier_refuses_class_weights_it_would_ignore(client, param):
    # LightGBM applies these inside its built-in binary objective only: with the focal objective they do nothing
    dX = da.from_array(np.zeros((40, 2)), chunks=(20, -1))
    dy = da.from_array(np.array([0.0, 1.0] * 20), chunks=20)
    with pytest.raises(ValueError, match=next(iter(param))):
        gfd.DaskLGBMFocalClassifier(**param).fit(dX, dy)


def test_xgboost_focal_metric_is_safe_to_share_between_threads():
    # A worker with threads_per_worker > 1 may run tasks at once; the metric's only state is its per-DMatrix cache
    # of read-only labels and weights, and mean_loss writes into no shared buffer.
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    loss = FocalLoss(0.25, 2.0)
    sets = []
    for n in (30_000, 50_000):
        d = xgb.DMatrix(np.zeros((n, 1)), label=(rng.random(n) < 0.2).astype(float), weight=rng.random(n) + 0.5)
        sets.append((d, [rng.normal(scale=3.0, size=n).astype(np.float32) for _ in range(4)]))
    jobs = [(d, z) for d, margins in sets for z in margins] * 6
    expected = [gfd.XGBoostFocalMetric(loss, n_threads=1)(z, d)[1] for d, z in jobs]
    shared = gfd.XGBoostFocalMetric(loss, n_threads=2)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda job: shared(job[1], job[0])[1], jobs))
    assert got == pytest.approx(expected, rel=1e-12)


def test_dask_estimators_follow_the_metric_rule(client):
    # focal always reported and deciding early stopping; rank metrics beside it; metrics on sigma(margin) refused
    X, y = _data(4000, 4)
    dX, dy = da.from_array(X, chunks=(2000, -1)), da.from_array(y, chunks=2000)
    with pytest.raises(ValueError, match="computes on sigma"):
        gfd.DaskXGBFocalClassifier(n_estimators=3, eval_metric="logloss", **HIST).fit(dX, dy)
    model = gfd.DaskXGBFocalClassifier(n_estimators=40, eval_metric="auc", early_stopping_rounds=3, **HIST)
    model.fit(dX, dy, eval_set=[(dX, dy)])
    history = model.evals_result_["validation_0"]
    assert list(history) == ["auc", "focal"]  # focal last: XGBoost's early stopping watches it
    assert model.get_booster().best_iteration == int(np.argmin(history["focal"]))
    with pytest.raises(ValueError, match="binary_logloss"):
        gfd.DaskLGBMFocalClassifier(n_estimators=3, metric="binary_logloss", verbose=-1).fit(dX, dy)
