"""Multi-label focal loss (issue 17): MultilabelFocalLoss, the XGBoost adapter and estimator, the LightGBM route.

The loss is the binary one element by element, so every value is checked
against :class:`FocalLoss` column by column; the XGBoost wiring is pinned to
XGBoost's own multi-label ``binary:logistic`` (γ = 0, α = 1/2).
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from scipy.special import expit

import gbfocal
from gbfocal import FocalLoss, MultilabelFocalLoss

xgb = pytest.importorskip("xgboost")
pytest.importorskip("sklearn")

import gbfocal.xgboost as gfx  # noqa: E402
from gbfocal.xgboost import XGBFocalClassifier  # noqa: E402

HIST = {"tree_method": "hist", "max_depth": 3, "eta": 0.3, "nthread": 1}
STRATEGIES = ["one_output_per_tree", "multi_output_tree"]


def _labels(n=400, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < np.linspace(0.1, 0.6, k)).astype(np.float64)
    z = rng.normal(scale=3.0, size=(n, k))
    w = rng.uniform(0.2, 3.0, size=n)
    return y, z, w


def _data(n=3000, seed=0):
    """Features, known per-label posteriors η (n, 3) and labels drawn from them (rare, medium, common)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    logits = np.column_stack([1.5 * X[:, 0] - 3.0, X[:, 1] - 0.5 * X[:, 2] ** 2, X[:, 3] + X[:, 4] + 0.5])
    eta = expit(logits)
    return X, eta, (rng.random(eta.shape) < eta).astype(np.float64)


# --------------------------------------------------------------------------- the loss


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_elements_are_the_binary_loss_with_each_labels_alpha(dtype):
    y, z, w = _labels()
    z = z.astype(dtype)
    alphas = [0.1, 0.5, 0.85]
    loss = MultilabelFocalLoss(alphas, 2.0)
    g, h = loss.gradient_hessian(y, z, w)
    values = loss.loss(y, z, w)
    assert g.shape == h.shape == values.shape == y.shape and g.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-13  # float32 margins: float32 arithmetic, as the binary kernel
    for k, a in enumerate(alphas):
        binary = FocalLoss(a, 2.0)
        gk, hk = binary.gradient_hessian(y[:, k], np.ascontiguousarray(z[:, k]), w)
        np.testing.assert_allclose(g[:, k], gk, rtol=tol)
        np.testing.assert_allclose(h[:, k], hk, rtol=tol)
        np.testing.assert_allclose(values[:, k], binary.loss(y[:, k], np.ascontiguousarray(z[:, k]), w), rtol=tol)


def test_one_alpha_is_the_binary_loss_on_the_raveled_elements_bit_for_bit():
    y, z, w = _labels()
    for loss in (MultilabelFocalLoss(0.3, 1.5), MultilabelFocalLoss([0.3, 0.3, 0.3], 1.5)):
        g, h = loss.gradient_hessian(y, z, w)
        gb, hb = FocalLoss(0.3, 1.5).gradient_hessian(y.ravel(), z.ravel(), np.repeat(w, 3))
        np.testing.assert_array_equal(g.ravel(), gb)
        np.testing.assert_array_equal(h.ravel(), hb)


def test_mean_loss_is_the_weighted_mean_over_rows_and_labels():
    y, z, w = _labels()
    alphas = [0.2, 0.5, 0.7]
    loss = MultilabelFocalLoss(alphas, 2.0)
    by_column = sum(
        FocalLoss(a, 2.0).loss(y[:, k], np.ascontiguousarray(z[:, k]), w).sum() for k, a in enumerate(alphas)
    )
    assert loss.mean_loss(y, z, w) == pytest.approx(by_column / (3 * w.sum()), rel=1e-13)
    assert loss.prepared(y, w).mean_loss(loss, z) == pytest.approx(by_column / (3 * w.sum()), rel=1e-13)
    unweighted = np.mean(loss.loss(y, z))
    assert loss.mean_loss(y, z) == pytest.approx(unweighted, rel=1e-13)


def test_output_buffers_are_filled_and_overlaps_refused():
    y, z, w = _labels()
    loss = MultilabelFocalLoss([0.2, 0.5, 0.7])
    grad, hess = np.empty_like(z), np.empty_like(z)
    g, h = loss.gradient_hessian(y, z, w, gradient_out=grad, hessian_out=hess)
    assert np.shares_memory(g, grad) and np.shares_memory(h, hess)
    np.testing.assert_array_equal(g, loss.gradient_hessian(y, z, w)[0])
    with pytest.raises(ValueError, match="gradient_out shares memory with hessian_out"):
        loss.gradient_hessian(y, z, w, gradient_out=grad, hessian_out=grad)
    with pytest.raises(ValueError, match=r"gradient_out must have shape \(400, 3\)"):
        loss.gradient_hessian(y, z, w, gradient_out=np.empty(1200))


def test_init_score_and_posterior_are_per_label():
    y, z, w = _labels()
    alphas = [0.2, 0.5, 0.7]
    loss = MultilabelFocalLoss(alphas, 2.0)
    start = loss.init_score(y, w)
    assert start.shape == (3,)
    expected = [FocalLoss(a, 2.0).init_score(y[:, k], w) for k, a in enumerate(alphas)]
    np.testing.assert_allclose(start, expected, rtol=1e-12)
    np.testing.assert_allclose(loss.prepared(y, w).init_score(loss), expected, rtol=1e-12)
    totals = loss.class_weight_totals(y, w)
    np.testing.assert_allclose(totals[:, 0], w @ y)
    np.testing.assert_allclose(totals[:, 1], w @ (1 - y))
    post = loss.posterior(z)
    for k, a in enumerate(alphas):
        np.testing.assert_allclose(post[:, k], FocalLoss(a, 2.0).posterior(np.ascontiguousarray(z[:, k])), rtol=1e-14)
    np.testing.assert_allclose(expit(loss.posterior_margin(z)), post, rtol=1e-12)


def test_record_pickle_and_equality():
    for loss in (MultilabelFocalLoss(0.3, 1.0, hessian="exact"), MultilabelFocalLoss([0.2, 0.9], 2.0)):
        assert gbfocal.loss_from_dict(json.loads(json.dumps(loss.to_dict()))) == loss
        assert pickle.loads(pickle.dumps(loss)) == loss
        assert hash(pickle.loads(pickle.dumps(loss))) == hash(loss)
    y, z, w = _labels()
    loss = MultilabelFocalLoss([0.2, 0.5, 0.7])
    rows = pickle.loads(pickle.dumps(loss.prepared(y, w)))
    assert rows.mean_loss(loss, z) == pytest.approx(loss.mean_loss(y, z, w), rel=1e-14)
    assert MultilabelFocalLoss(0.3).n_outputs is None and MultilabelFocalLoss([0.3, 0.4]).n_outputs == 2


# --------------------------------------------------------------------------- bad input


def test_bad_labels_are_refused_with_the_fix():
    y, z, _w = _labels()
    loss = MultilabelFocalLoss()
    bad = y.copy()
    bad[3, 2] = 2.0
    with pytest.raises(
        ValueError, match=r"must contain only 0 and 1 \(label absent/present\), found \[2.0\] in label "
    ):
        loss.gradient_hessian(bad, z)
    with pytest.raises(ValueError, match=r"must be a 2-D \(n, K\) 0/1 indicator matrix.*use gbfocal.FocalLoss"):
        loss.mean_loss(y[:, 0], z[:, 0])
    with pytest.raises(ValueError, match=r"raw_prediction has shape \(400, 2\) but the labels have shape \(400, 3\)"):
        loss.loss(y, z[:, :2])
    with pytest.raises(ValueError, match=r"for multi-label data .* use gbfocal.MultilabelFocalLoss"):
        FocalLoss().prepared(y)


def test_a_single_class_label_column_is_refused_where_a_start_is_needed():
    y, z, w = _labels()
    y[:, 1] = 1.0
    loss = MultilabelFocalLoss()
    with pytest.raises(ValueError, match=r"label column\(s\) \[1\] hold a single class"):
        loss.init_score(y, w)
    with pytest.raises(ValueError, match=r"label column\(s\) \[1\] hold a single class"):
        gfx.train(loss, HIST, xgb.DMatrix(z, label=y), 2)
    with pytest.raises(ValueError, match=r"label column\(s\) \[1\] hold a single class"):
        XGBFocalClassifier(n_estimators=2).fit(z, y)
    with pytest.raises(ValueError, match=r"label column\(s\) \[1\] hold a single class"):
        XGBFocalClassifier(n_estimators=2, base_score=0.5).fit(z, y)  # refused even with a given start
    loss.gradient_hessian(y, z)  # the derivatives themselves are defined


def test_alpha_of_the_wrong_length_or_value_is_refused():
    y, z, _w = _labels()
    with pytest.raises(ValueError, match="alpha has 2 per-label values but the labels have K = 3 label columns"):
        MultilabelFocalLoss([0.2, 0.3]).gradient_hessian(y, z)
    with pytest.raises(ValueError, match="alpha has 2 per-label values but the labels have K = 3 label columns"):
        MultilabelFocalLoss([0.2, 0.3]).prepared(y)
    with pytest.raises(ValueError, match="alpha has 2 per-label values but raw_prediction have K = 3"):
        MultilabelFocalLoss([0.2, 0.3]).posterior(z)
    with pytest.raises(ValueError, match=r"alpha\[1\] must lie strictly between 0 and 1"):
        MultilabelFocalLoss([0.2, 1.3])
    with pytest.raises(ValueError, match="K >= 2 per-label values"):
        MultilabelFocalLoss([0.2])
    with pytest.raises(TypeError, match="alpha must be a float in"):
        MultilabelFocalLoss("balanced")
    with pytest.raises(ValueError, match="focal_alpha has 2 per-label values but y has K = 3 label columns"):
        XGBFocalClassifier(focal_alpha=[0.2, 0.3], n_estimators=2).fit(z, y)
    with pytest.raises(TypeError, match="multi-label columns have no names"):
        XGBFocalClassifier(focal_alpha={0: 0.2}, n_estimators=2).fit(z, y)


def test_engines_without_multi_output_trees_refuse_it_with_the_route():
    lgb_adapter = pytest.importorskip("gbfocal.lightgbm")
    with pytest.raises(TypeError, match=r"MultiOutputClassifier\(gbfocal.LGBMFocalClassifier"):
        lgb_adapter.FocalObjective(MultilabelFocalLoss())
    with pytest.raises(ValueError, match="device='cuda' has no multi-label kernels yet"):
        gfx.objective(MultilabelFocalLoss(), device="cuda")
    y, _z, _ = _labels()
    with pytest.raises(ValueError, match="num_class=3 is XGBoost's multiclass"):
        gfx.params(MultilabelFocalLoss(), y, num_class=3)
    with pytest.raises(ValueError, match="objective='multi:softprob' conflicts with the focal loss"):
        gfx.params(MultilabelFocalLoss(), y, objective="multi:softprob")


# --------------------------------------------------------------------------- XGBoost native


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gamma_zero_alpha_half_reproduces_xgboost_multilabel_logistic(strategy):
    # FL(γ=0, α=0.5) = logloss / 2 per label: halving reg_lambda and min_child_weight leaves every
    # split gain ratio and leaf value unchanged (as the binary equivalence test).
    X, _, y = _data(2000, seed=1)
    dtrain = xgb.DMatrix(X, label=y)
    loss = MultilabelFocalLoss(0.5, 0.0)
    extra = {"multi_strategy": strategy, "reg_lambda": 0.5, "min_child_weight": 0.5}
    params = gfx.params(loss, dtrain, **HIST, **extra)
    np.testing.assert_allclose(params["base_score"], y.mean(axis=0), rtol=1e-12)  # γ = 0: each label's mean
    focal = xgb.train(params, dtrain, 40, obj=gfx.objective(loss))
    builtin_params = {**HIST, "multi_strategy": strategy, "objective": "binary:logistic"}
    builtin = xgb.train({**builtin_params, "base_score": params["base_score"]}, dtrain, 40)
    margins = focal.predict(dtrain, output_margin=True)
    assert margins.shape == y.shape
    np.testing.assert_allclose(margins, builtin.predict(dtrain, output_margin=True), rtol=0, atol=2e-5)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_start_is_inside_the_saved_model_and_metric_drives_early_stopping(strategy, tmp_path):
    X, _, y = _data(2000, seed=2)
    w = np.random.default_rng(3).uniform(0.5, 2.0, size=y.shape[0]).astype(np.float32)
    dtrain = xgb.DMatrix(X[:1500], label=y[:1500], weight=w[:1500])
    dvalid = xgb.DMatrix(X[1500:], label=y[1500:], weight=w[1500:])
    loss = MultilabelFocalLoss([0.25, 0.5, 0.75], 2.0)
    history: dict = {}
    params = {**HIST, "multi_strategy": strategy, "eta": 0.5}
    booster = gfx.train(
        loss,
        params,
        dtrain,
        300,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=5,
        evals_result=history,
        verbose_eval=False,
    )
    assert list(history["valid"]) == ["focal"]
    curve = history["valid"]["focal"]
    assert booster.best_iteration == int(np.argmin(curve)) and len(curve) < 300
    best = booster.predict(dvalid, output_margin=True, iteration_range=(0, booster.best_iteration + 1))
    assert curve[booster.best_iteration] == pytest.approx(loss.mean_loss(y[1500:], best, w[1500:]), abs=1e-6)
    path = tmp_path / "model.json"
    booster.save_model(path)
    plain = xgb.Booster(model_file=str(path))
    start = plain.predict(dtrain, output_margin=True, iteration_range=(0, 1)) - booster.predict(
        dtrain, output_margin=True, iteration_range=(0, 1)
    )
    assert np.abs(start).max() == 0.0
    empty = xgb.train(gfx.params(loss, dtrain, **params), dtrain, 0)
    np.testing.assert_allclose(
        empty.predict(dtrain, output_margin=True)[0], loss.init_score(y[:1500], w[:1500]), atol=1e-6
    )
    assert gfx.booster_loss(plain) == loss
    np.testing.assert_allclose(gfx.predict_posterior(None, plain, dvalid), loss.posterior(best), rtol=1e-12)


# --------------------------------------------------------------------------- XGBFocalClassifier


def test_classifier_posterior_recovers_known_per_label_probabilities():
    X, eta, y = _data(6000, seed=4)
    clf = XGBFocalClassifier(n_estimators=60, max_depth=3, learning_rate=0.2, n_jobs=1).fit(X[:4000], y[:4000])
    proba = clf.predict_proba(X[4000:])
    sigmoid = expit(clf.predict(X[4000:], output_margin=True).astype(np.float64))
    assert proba.shape == (2000, 3) and clf.n_classes_ == 2
    err_posterior = np.abs(proba - eta[4000:]).mean(axis=0)
    err_sigmoid = np.abs(sigmoid - eta[4000:]).mean(axis=0)
    assert np.all(err_posterior < 0.7 * err_sigmoid), (err_posterior, err_sigmoid)


def test_classifier_predict_save_load_and_plain_xgboost(tmp_path):
    X, _, y = _data(1500, seed=5)
    y_int = y.astype(np.int64)
    clf = XGBFocalClassifier(n_estimators=10, focal_alpha=[0.25, 0.5, 0.75], n_jobs=1).fit(
        X, y_int, eval_set=[(X, y_int)], verbose=False
    )
    pred = clf.predict(X)
    assert pred.shape == y.shape and pred.dtype == np.int64
    np.testing.assert_array_equal(pred, (clf.predict_proba(X) > 0.5).astype(np.int64))
    np.testing.assert_allclose(expit(clf.decision_function(X)), clf.predict_proba(X), rtol=1e-12)
    assert clf.get_booster().attr(gfx.LOSS_ATTR) is not None and list(clf.evals_result()["validation_0"]) == ["focal"]
    path = tmp_path / "clf.json"
    clf.save_model(path)
    loaded = XGBFocalClassifier()
    loaded.load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), pred)
    assert loaded.focal_alpha == [0.25, 0.5, 0.75]
    plain = xgb.XGBClassifier()
    plain.load_model(path)
    np.testing.assert_array_equal(plain.predict(X, output_margin=True), clf.predict(X, output_margin=True))
    clf.focal_proba = "sigmoid"
    np.testing.assert_allclose(clf.predict_proba(X), expit(clf.predict(X, output_margin=True).astype(float)))


def test_classifier_balanced_alpha_is_per_label_and_weights_are_per_row():
    X, _, y = _data(1500, seed=6)
    w = np.random.default_rng(7).uniform(0.5, 2.0, size=y.shape[0])
    clf = XGBFocalClassifier(n_estimators=3, focal_alpha="balanced", n_jobs=1).fit(X, y, sample_weight=w)
    expected = (w @ (1 - y)) / w.sum()  # α_k = W₀ₖ / (W₀ₖ + W₁ₖ)
    np.testing.assert_allclose(clf._focal_loss.alpha, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="eval_set labels have 2 label columns but y has 3"):
        XGBFocalClassifier(n_estimators=2).fit(X, y, eval_set=[(X, y[:, :2])])


# --------------------------------------------------------------------------- LightGBM: the scikit-learn route


def test_lightgbm_multioutput_route_trains_one_binary_focal_model_per_label():
    pytest.importorskip("lightgbm")
    from sklearn.multioutput import MultiOutputClassifier

    from gbfocal.lightgbm import LGBMFocalClassifier

    X, eta, y = _data(3000, seed=8)
    model = MultiOutputClassifier(
        LGBMFocalClassifier(focal_alpha="balanced", n_estimators=40, num_leaves=8, verbose=-1, n_jobs=1)
    ).fit(X[:2000], y[:2000].astype(int))
    for k, est in enumerate(model.estimators_):  # "balanced" is resolved per label, from its own column
        assert est.focal_loss().alpha == pytest.approx(1.0 - y[:2000, k].mean(), rel=1e-12)
    proba = np.column_stack([p[:, 1] for p in model.predict_proba(X[2000:])])
    assert model.predict(X[2000:]).shape == (1000, 3)
    assert np.all(np.abs(proba - eta[2000:]).mean(axis=0) < 0.1)


def test_an_xgboost_that_cannot_store_the_start_vector_is_refused_with_the_fix(monkeypatch):
    X, _, y = _data(300, seed=9)
    monkeypatch.setattr(xgb, "__version__", "3.0.5")
    with pytest.raises(RuntimeError, match=r"MultilabelFocalLoss needs xgboost >= 3\.1, found 3\.0\.5"):
        gfx.train(MultilabelFocalLoss(), HIST, xgb.DMatrix(X, label=y), 1)
    with pytest.raises(RuntimeError, match=r"MultilabelFocalLoss needs xgboost >= 3\.1"):
        XGBFocalClassifier(n_estimators=1).fit(X, y)


def test_margins_of_the_wrong_shape_name_the_multilabel_fix():
    X, _, y = _data(300, seed=10)
    dtrain = xgb.DMatrix(X, label=y)
    with pytest.raises(ValueError, match=r"expected one raw margin per label.*\(n, K\) 0/1 label matrix"):
        gfx.objective(MultilabelFocalLoss())(np.zeros(300, dtype=np.float32), dtrain)
    with pytest.raises(ValueError, match=r"the margins have 2 columns but the labels have K = 3 label columns"):
        gfx.metric(MultilabelFocalLoss())(np.zeros((300, 2), dtype=np.float32), dtrain)


def test_a_plain_xgboost_multilabel_file_loads_with_its_own_probabilities(tmp_path):
    X, _, y = _data(500, seed=11)
    plain = xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X, y.astype(int))
    path = tmp_path / "plain.json"
    plain.save_model(path)
    clf = XGBFocalClassifier()
    clf.load_model(path)
    assert clf.focal_proba == "sigmoid"
    np.testing.assert_allclose(clf.predict_proba(X), plain.predict_proba(X), rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), plain.predict(X))
    clf.focal_proba = "posterior"
    with pytest.raises(ValueError, match="no focal posterior to recover"):
        clf.predict_proba(X)


def test_focal_loss_takes_a_label_matrix_element_wise():
    # the "FocalLoss accepts (n, K) 0/1 labels": K binary problems, this α for every label
    rng = np.random.default_rng(3)
    y = (rng.random((200, 3)) < 0.2).astype(float)
    z = rng.normal(size=(200, 3)) * 4
    w = rng.uniform(0.5, 2.0, 200)
    loss = FocalLoss(0.3, 1.5)
    g, h = loss.gradient_hessian(y, z, w)
    per_row = loss.loss(y, z, w)
    assert g.shape == h.shape == per_row.shape == (200, 3)
    for k in range(3):  # each column is the binary loss of that label, weights per row
        gk, hk = loss.gradient_hessian(y[:, k], z[:, k], w)
        np.testing.assert_allclose(g[:, k], gk, rtol=1e-13, atol=0)
        np.testing.assert_allclose(h[:, k], hk, rtol=1e-13, atol=0)
        np.testing.assert_allclose(loss.posterior(z)[:, k], loss.posterior(z[:, k]), rtol=1e-13, atol=0)
    want = sum(loss.loss(y[:, k], z[:, k], w).sum() for k in range(3)) / (3 * w.sum())
    assert loss.mean_loss(y, z, w) == pytest.approx(want, rel=1e-13)
