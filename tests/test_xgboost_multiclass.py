"""The XGBoost adapter with MulticlassFocalLoss: native API, starting score in the model, XGBFocalClassifier."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")
pytest.importorskip("sklearn")

from scipy.special import softmax  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import gbfocal.xgboost as gfx  # noqa: E402
from gbfocal import FocalLoss, MulticlassFocalLoss  # noqa: E402
from gbfocal.xgboost import XGBFocalClassifier  # noqa: E402

HIST = {"tree_method": "hist", "max_depth": 3, "eta": 0.3, "nthread": 1}
K = 4


def _data(n=1500, k=K, d=5, seed=0, rare=False):
    """Features and class indices 0..k-1 drawn from a known softmax posterior; also returns that posterior."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(scale=1.2, size=(d, k))
    logits = X @ W + (np.log([0.75] + [0.25 / (k - 1)] * (k - 1)) if rare else 0.0)
    eta = softmax(logits, axis=1)
    y = (rng.random(n)[:, None] > np.cumsum(eta, axis=1)).sum(axis=1)
    return X, np.minimum(y, k - 1).astype(np.float64), eta


def _clf(**kwargs) -> XGBFocalClassifier:
    kwargs = {"n_estimators": 10, "max_depth": 3, "n_jobs": 1, **kwargs}
    return XGBFocalClassifier(**kwargs)


# --------------------------------------------------------------------------- native: the end-to-end proof


def _numpy_softmax_ce(predt, dtrain):
    """Plain softmax cross-entropy in NumPy: gradient p - onehot(y), Hessian p (1 - p)."""
    y = dtrain.get_label().astype(np.int64)
    p = softmax(np.asarray(predt, dtype=np.float64), axis=1)
    grad = p.copy()
    grad[np.arange(y.shape[0]), y] -= 1.0
    return grad, p * (1.0 - p)


def test_gamma_zero_reproduces_numpy_softmax_cross_entropy_over_30_rounds():
    # Same xgboost.train call, same start: only the objective differs. Equal margins after 30 rounds
    # prove the (n, K) shapes, the class order and the softmax link end to end.
    X, y, _ = _data(seed=1)
    dtrain = xgb.DMatrix(X, label=y)
    loss = MulticlassFocalLoss(gamma=0.0)
    params = gfx.params(loss, dtrain, **HIST)
    assert params["objective"] == "multi:softprob" and params["num_class"] == K
    ours = xgb.train(params, dtrain, 30, obj=gfx.objective(loss))
    reference = xgb.train(params, dtrain, 30, obj=_numpy_softmax_ce)
    m_ours, m_ref = (b.predict(dtrain, output_margin=True) for b in (ours, reference))
    assert m_ours.shape == (X.shape[0], K)
    assert np.abs(m_ref).max() > 1.0  # the models learned something
    np.testing.assert_allclose(m_ours, m_ref, rtol=0, atol=2e-4)


def test_train_gives_what_xgboost_train_gives_by_hand_and_stores_the_loss(tmp_path):
    X, y, _ = _data(seed=2)
    dtrain = xgb.DMatrix(X, label=y, weight=np.random.default_rng(2).uniform(0.5, 2.0, X.shape[0]))
    loss = MulticlassFocalLoss([1.0, 2.0, 0.5, 1.0], gamma=2.0)
    booster = gfx.train(loss, HIST, dtrain, 8)
    by_hand = xgb.train(gfx.params(loss, dtrain, **HIST), dtrain, 8, obj=gfx.objective(loss))
    np.testing.assert_array_equal(
        booster.predict(dtrain, output_margin=True), by_hand.predict(dtrain, output_margin=True)
    )
    assert gfx.booster_loss(booster) == loss
    booster.save_model(tmp_path / "m.ubj")
    loaded = xgb.Booster(model_file=tmp_path / "m.ubj")
    assert gfx.booster_loss(loaded) == loss
    posterior = gfx.predict_posterior(None, loaded, dtrain)
    assert posterior.shape == (X.shape[0], K)
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(posterior, loss.posterior(loaded.predict(dtrain, output_margin=True)))
    with pytest.raises(ValueError, match="differs from the loss the booster was trained with"):
        gfx.predict_posterior(MulticlassFocalLoss(gamma=2.0), loaded, dtrain)
    with pytest.raises(ValueError, match="differs from the loss the booster was trained with"):
        gfx.predict_posterior(FocalLoss(), loaded, dtrain)


@pytest.mark.parametrize("weighted", [False, True])
def test_the_saved_model_holds_the_focal_start(tmp_path, weighted):
    # A first tree that barely moves (learning rate ~0) must predict loss.init_score up to a common
    # shift, and so must the model saved and loaded by plain XGBoost: the start is in the file.
    X, y, _ = _data(seed=3, rare=True)
    w = np.random.default_rng(3).uniform(0.2, 3.0, X.shape[0]) if weighted else None
    dtrain = xgb.DMatrix(X, label=y, weight=w)
    loss = MulticlassFocalLoss([1.0, 4.0, 2.0, 3.0], gamma=2.0)
    start = loss.init_score(y, w, n_classes=K)
    booster = gfx.train(loss, {**HIST, "eta": 1e-12}, dtrain, 1)
    booster.save_model(tmp_path / "start.json")
    plain = xgb.Booster(model_file=tmp_path / "start.json")
    for b in (booster, plain):
        margins = b.predict(dtrain, output_margin=True).astype(np.float64)
        shift = margins - start
        np.testing.assert_allclose(shift - shift[0, 0], 0.0, atol=1e-5)
    # it is the start, not a starting point the first tree learned: without it the margins are constant 0.5
    config = json.loads(plain.save_config())["learner"]["learner_model_param"]
    np.testing.assert_allclose(json.loads(config["base_score"]), start, rtol=1e-6)
    assert not np.allclose(np.diff(start), 0.0)


def test_continued_training_keeps_the_loaded_start():
    X, y, _ = _data(seed=4)
    dtrain = xgb.DMatrix(X, label=y)
    loss = MulticlassFocalLoss(gamma=1.0)
    first = gfx.train(loss, HIST, dtrain, 3)
    more = gfx.train(loss, HIST, dtrain, 2, xgb_model=first)
    whole = gfx.train(loss, HIST, dtrain, 5)
    np.testing.assert_allclose(
        more.predict(dtrain, output_margin=True), whole.predict(dtrain, output_margin=True), atol=1e-5
    )


def test_metric_is_the_weighted_mean_loss_and_early_stopping_minimises_it():
    X, y, _ = _data(2000, seed=5)
    dtrain, dvalid = xgb.DMatrix(X[:1500], label=y[:1500]), xgb.DMatrix(X[1500:], label=y[1500:])
    loss = MulticlassFocalLoss(gamma=2.0)
    history: dict = {}
    booster = gfx.train(
        loss,
        {**HIST, "eta": 0.8, "max_depth": 6},
        dtrain,
        200,
        evals=[(dvalid, "valid")],
        evals_result=history,
        early_stopping_rounds=5,
        verbose_eval=False,
    )
    curve = history["valid"]["focal"]
    assert list(history["valid"]) == ["focal"]  # XGBoost's mlogloss would be computed on raw margins
    assert booster.best_iteration == int(np.argmin(curve)) and len(curve) < 200
    margins = booster.predict(dvalid, output_margin=True, iteration_range=(0, booster.best_iteration + 1))
    assert curve[booster.best_iteration] == pytest.approx(loss.mean_loss(y[1500:], margins), rel=1e-5)


def test_objective_returns_float32_n_by_k_buffers_and_pickles():
    X, y, _ = _data(300, seed=6)
    dtrain = xgb.DMatrix(X, label=y)
    loss = MulticlassFocalLoss(gamma=2.0)
    obj = gfx.objective(loss, n_threads=1)
    z = np.random.default_rng(6).normal(size=(300, K)).astype(np.float32)
    g, h = obj(z, dtrain)
    assert g.shape == h.shape == (300, K) and g.dtype == h.dtype == np.float32
    eg, eh = loss.gradient_hessian(y, z.astype(np.float64))
    np.testing.assert_allclose(g, eg, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h, eh, rtol=1e-6, atol=1e-7)
    again = pickle.loads(pickle.dumps(obj))
    np.testing.assert_array_equal(again(z, dtrain)[0], g)
    name, value = pickle.loads(pickle.dumps(gfx.metric(loss)))(z, dtrain)
    assert name == "focal" and value == pytest.approx(loss.mean_loss(y, z))


def test_native_bad_inputs_name_the_fix():
    X, y, _ = _data(300, seed=7)
    dtrain = xgb.DMatrix(X, label=y)
    multi, binary = MulticlassFocalLoss(gamma=2.0), FocalLoss()
    z = np.zeros((300, K), dtype=np.float32)
    with pytest.raises(ValueError, match=r"expected one raw margin per row, got .*\(300, 4\).*MulticlassFocalLoss"):
        gfx.objective(binary)(z, dtrain)
    with pytest.raises(ValueError, match=r"expected one raw margin per class, shape \(n, K\).*num_class=K"):
        gfx.objective(multi)(np.zeros(300, dtype=np.float32), dtrain)
    with pytest.raises(ValueError, match=r"objective='multi:softmax' conflicts .*needs objective='multi:softprob'"):
        gfx.params(multi, dtrain, objective="multi:softmax")
    with pytest.raises(ValueError, match="num_class=3 but the loss's alpha has 4 class weights"):
        gfx.params(MulticlassFocalLoss([1, 1, 1, 1]), dtrain, num_class=3)
    with pytest.raises(ValueError, match=r"num_class=4 with the binary FocalLoss"):
        gfx.train(binary, {"num_class": 4}, dtrain, 1)
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        gfx.train(multi, {"num_class": 3}, dtrain, 1)
    with pytest.raises(TypeError, match=r"loss must be a gbfocal\.FocalLoss or gbfocal\.MulticlassFocalLoss"):
        gfx.objective("softmax")


def test_an_xgboost_that_cannot_store_the_start_vector_is_refused_with_the_fix(monkeypatch):
    # XGBoost 2.1.4 and 3.0.5 fail later with "Invalid Parameter format for base_score expect float".
    X, y, _ = _data(300, seed=9)
    dtrain = xgb.DMatrix(X, label=y)
    monkeypatch.setattr(xgb, "__version__", "3.0.5")
    with pytest.raises(RuntimeError, match=r"needs xgboost >= 3\.1, found 3\.0\.5.*pip install -U 'xgboost>=3\.1'"):
        gfx.train(MulticlassFocalLoss(), HIST, dtrain, 1)
    with pytest.raises(RuntimeError, match=r"needs xgboost >= 3\.1"):
        _clf().fit(X, y)
    gfx.train(FocalLoss(), HIST, xgb.DMatrix(X, label=y == 0), 1)  # the binary loss needs no vector


def test_cuda_objective_under_the_simulator_matches_cpu():
    code = """
        import numpy as np, xgboost as xgb
        import gbfocal.xgboost as gfx
        from gbfocal import MulticlassFocalLoss, _cuda
        assert _cuda.simulated()
        rng = np.random.default_rng(0)
        y = rng.integers(0, 3, 40).astype(float)
        dtrain = xgb.DMatrix(rng.normal(size=(40, 3)), label=y, weight=rng.uniform(0.5, 2, 40))
        z = rng.normal(scale=3, size=(40, 3)).astype(np.float32)
        loss = MulticlassFocalLoss([1.0, 2.0, 0.5], 2.0)
        dev = gfx.objective(loss, device="cuda")
        g, h = dev(z, dtrain)
        assert isinstance(dev._device_rows.get(dtrain, None), _cuda.MulticlassDeviceRows)
        cg, ch = gfx.objective(loss)(z, dtrain)
        print(np.abs(g.copy_to_host() - cg).max(), np.abs(h.copy_to_host() - ch).max(), g.dtype, g.shape)
    """
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    dg, dh, dtype, *_ = proc.stdout.split()
    assert float(dg) < 1e-6 and float(dh) < 1e-6 and dtype == "float32"


@pytest.mark.gpu
@pytest.mark.filterwarnings("ignore:.*mismatched devices:UserWarning")  # predict on a host DMatrix
def test_gpu_training_same_margins_with_host_and_device_gradients():
    from gbfocal import _cuda

    if not _cuda.is_available() or _cuda.simulated() or not xgb.build_info().get("USE_CUDA"):
        pytest.skip("no CUDA GPU (with numba-cuda, CuPy and a CUDA build of xgboost) available")
    import cupy

    X, y, _ = _data(5000, seed=8, rare=True)
    loss = MulticlassFocalLoss([1.0, 3.0, 2.0, 1.0], 2.0)
    dtrain = xgb.DMatrix(X, label=y)
    g, _ = gfx.objective(loss, device="cuda")(np.zeros((5000, K), dtype=np.float32), dtrain)
    assert isinstance(g, cupy.ndarray) and g.dtype == np.float32 and g.shape == (5000, K)
    params = {**HIST, "device": "cuda"}
    margins = [
        gfx.train(loss, params, dtrain, 20, objective_device=device).predict(dtrain, output_margin=True)
        for device in ("cpu", "cuda")
    ]
    np.testing.assert_allclose(margins[1], margins[0], atol=1e-4)
    clf = _clf(n_estimators=20, device="cuda", focal_alpha=[1.0, 3.0, 2.0, 1.0]).fit(X, y)
    np.testing.assert_allclose(clf.predict(X, output_margin=True), margins[0], atol=1e-4)


# --------------------------------------------------------------------------- estimator


def test_classifier_switches_to_the_multiclass_loss_with_string_labels():
    X, y, _ = _data(seed=10)
    names = np.array(["severe", "fatal", "minor", "none"])[y.astype(int)]
    clf = _clf().fit(X, names)
    assert clf.classes_.tolist() == ["fatal", "minor", "none", "severe"] and clf.n_classes_ == 4
    assert clf._focal_loss == MulticlassFocalLoss(None, 2.0, hessian="clamp")
    proba = clf.predict_proba(X)
    assert proba.shape == (X.shape[0], 4) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    margins = clf.predict(X, output_margin=True)
    np.testing.assert_array_equal(proba, clf._focal_loss.posterior(margins))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    scores = clf.decision_function(X)
    assert scores.shape == (X.shape[0], 4)
    np.testing.assert_array_equal(scores.argmax(axis=1), proba.argmax(axis=1))
    clf.set_params(focal_proba="softmax")
    np.testing.assert_allclose(clf.predict_proba(X), softmax(margins.astype(np.float64), axis=1), rtol=1e-12)
    np.testing.assert_array_equal(clf.decision_function(X), margins)
    clf.set_params(focal_proba="sigmoid")  # the same switch under its binary name
    np.testing.assert_allclose(clf.predict_proba(X), softmax(margins.astype(np.float64), axis=1), rtol=1e-12)


def test_classifier_equals_native_training_from_the_same_start():
    X, y, _ = _data(seed=11)
    w = np.random.default_rng(11).uniform(0.5, 2.0, X.shape[0])
    clf = _clf(focal_alpha=[1.0, 2.0, 3.0, 4.0], focal_gamma=1.5).fit(X, y, sample_weight=w)
    loss = MulticlassFocalLoss([1.0, 2.0, 3.0, 4.0], 1.5)
    booster = gfx.train(loss, {**HIST, "eta": None}, xgb.DMatrix(X, label=y, weight=w), 10)
    np.testing.assert_allclose(
        clf.predict(X, output_margin=True), booster.predict(xgb.DMatrix(X), output_margin=True), atol=1e-5
    )
    assert clf.get_params()["base_score"] is None  # the start was set for fit only


def test_focal_alpha_forms_for_k_classes_and_the_binary_label_trap():
    X, y, _ = _data(seed=12, rare=True)
    labels = np.array(["a", "b", "c", "d"])[y.astype(int)]
    by_mapping = _clf(n_estimators=2, focal_alpha={"d": 4.0, "c": 3.0, "b": 2.0, "a": 1.0}).fit(X, labels)
    assert by_mapping._focal_loss.alpha == (1.0, 2.0, 3.0, 4.0)
    balanced = _clf(n_estimators=2, focal_alpha="balanced").fit(X, labels)
    totals = np.bincount(y.astype(int), minlength=4)
    np.testing.assert_allclose(balanced._focal_loss.alpha, totals.sum() / (4 * totals))
    with pytest.raises(ValueError, match=r"focal_alpha=0\.25 is a float, which only a binary problem takes"):
        _clf(focal_alpha=0.25).fit(X, labels)
    with pytest.raises(ValueError, match="focal_alpha names the label 'e', which is not among the training classes"):
        _clf(focal_alpha={"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}).fit(X, labels)
    with pytest.raises(ValueError, match="focal_alpha has 3 weights but there are 4 classes"):
        _clf(focal_alpha=[1, 2, 3]).fit(X, labels)
    with pytest.raises(ValueError, match="focal_alpha must be None, a float, a sequence, a mapping or 'balanced'"):
        _clf(focal_alpha="rare").fit(X, labels)
    # Binary: a mapping names the label, so "fraud" gets its weight although "ok" sorts last.
    fraud = np.where(y == 0, "ok", "fraud")
    clf = _clf(n_estimators=2, focal_alpha={"fraud": 0.75, "ok": 0.25}).fit(X, fraud)
    assert clf.classes_.tolist() == ["fraud", "ok"] and clf._focal_loss == FocalLoss(0.25, 2.0)
    assert _clf(n_estimators=2).fit(X, fraud)._focal_loss == FocalLoss(0.25, 2.0, hessian="positive")


def test_classifier_early_stopping_on_the_focal_metric():
    X, y, _ = _data(2000, seed=13)
    clf = _clf(n_estimators=300, learning_rate=0.8, max_depth=6, early_stopping_rounds=5)
    clf.fit(X[:1500], y[:1500], eval_set=[(X[1500:], y[1500:])], verbose=False)
    curve = clf.evals_result()["validation_0"]["focal"]
    assert clf.best_iteration == int(np.argmin(curve)) and len(curve) < 300
    margins = clf.predict(X[1500:], output_margin=True)  # the best iteration's trees
    assert curve[clf.best_iteration] == pytest.approx(clf._focal_loss.mean_loss(y[1500:], margins), rel=1e-5)


def test_saved_estimator_restores_predict_proba_and_plain_xgboost_gives_its_margins(tmp_path):
    X, y, _ = _data(seed=14)
    labels = np.array([10, 20, 30, 40])[y.astype(int)]
    clf = _clf(focal_alpha=[1.0, 1.0, 2.0, 2.0], focal_gamma=3.0).fit(X, labels)
    clf.save_model(tmp_path / "m.json")
    loaded = XGBFocalClassifier()
    loaded.load_model(tmp_path / "m.json")
    assert loaded.classes_.tolist() == [10, 20, 30, 40] and loaded._focal_loss == clf._focal_loss
    assert loaded.focal_alpha == [1.0, 1.0, 2.0, 2.0] and loaded.base_score is None
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    plain = xgb.Booster(model_file=tmp_path / "m.json")
    np.testing.assert_array_equal(plain.predict(xgb.DMatrix(X), output_margin=True), clf.predict(X, output_margin=True))
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "_focal_loss")


def test_booster_from_train_and_plain_multiclass_xgbclassifier_load(tmp_path):
    X, y, _ = _data(600, seed=15)
    loss = MulticlassFocalLoss(gamma=2.0)
    gfx.train(loss, HIST, xgb.DMatrix(X, label=y), 3).save_model(tmp_path / "native.json")
    native = XGBFocalClassifier()
    native.load_model(tmp_path / "native.json")
    assert native.classes_.tolist() == [0, 1, 2, 3] and native._focal_loss == loss and native.focal_alpha is None
    np.testing.assert_array_equal(native.predict_proba(X), loss.posterior(native.predict(X, output_margin=True)))
    plain = xgb.XGBClassifier(n_estimators=3, n_jobs=1).fit(X, y.astype(int))
    plain.save_model(tmp_path / "plain.json")
    loaded = XGBFocalClassifier()
    loaded.load_model(tmp_path / "plain.json")
    assert loaded.focal_proba == "softmax" and loaded.classes_.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(loaded.predict_proba(X), plain.predict_proba(X), rtol=1e-5)


def test_grid_search_over_focal_gamma_and_focal_alpha_and_calibration():
    X, y, _ = _data(900, k=3, seed=16, rare=True)
    grid = GridSearchCV(
        _clf(n_estimators=5),
        {"focal_gamma": [0.0, 2.0], "focal_alpha": [None, "balanced", [1.0, 2.0, 2.0]]},
        cv=3,
        scoring="neg_log_loss",
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 6 and grid.best_estimator_.predict_proba(X).shape == (900, 3)
    calibrated = CalibratedClassifierCV(_clf(n_estimators=5), cv=3).fit(X, y)
    proba = calibrated.predict_proba(X)
    assert proba.shape == (900, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)


def test_posterior_is_clearly_closer_to_the_known_posterior_than_softmax():
    # Data drawn from a known posterior η(x); with γ = 2 softmax(margins) is pulled towards uniform,
    # the recovered posterior undoes that.
    X, y, eta = _data(12000, k=3, seed=17)
    n_train = 9000
    clf = XGBFocalClassifier(n_estimators=150, max_depth=2, learning_rate=0.1, n_jobs=2, focal_gamma=2.0)
    clf.fit(X[:n_train], y[:n_train])
    truth = eta[n_train:]
    posterior = clf.predict_proba(X[n_train:])
    plain = softmax(clf.predict(X[n_train:], output_margin=True).astype(np.float64), axis=1)
    err_posterior = np.abs(posterior - truth).mean()
    err_softmax = np.abs(plain - truth).mean()
    assert err_posterior < 0.7 * err_softmax, (err_posterior, err_softmax)
