"""gbfocal.lightgbm: objective, metric, self-contained boosters, LGBMFocalClassifier, GPU device."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")
sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.class_weight import compute_sample_weight  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import gbfocal  # noqa: E402
import gbfocal.lightgbm as gfl  # noqa: E402
from gbfocal import FocalLoss, LGBMFocalClassifier  # noqa: E402

# deterministic, single-threaded, silent: results comparable bit for bit
BASE = {"verbosity": -1, "num_threads": 1, "num_leaves": 7, "deterministic": True, "force_row_wise": True}


def _data(n=1500, seed=0, weighted=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(size=n) > 1.3).astype(np.float64)  # ~15 % positives
    w = rng.uniform(0.5, 2.0, n) if weighted else None
    return X, y, w


def _stored(w):
    return None if w is None else w.astype(np.float32)  # LightGBM keeps weights as float32


def _raw(booster, X, **kw):
    return booster.predict(X, raw_score=True, **kw)


# --------------------------------------------------------------------------- equivalence with built-in binary


@pytest.mark.parametrize("weighted", [False, True])
def test_gamma_zero_half_alpha_reproduces_builtin_binary_from_zero(weighted):
    # γ = 0, α = 0.5 is half the logloss: halving λ and min_sum_hessian gives the same trees
    X, y, w = _data(weighted=weighted)
    ref = lgb.train(
        {**BASE, "objective": "binary", "boost_from_average": False, "lambda_l2": 1.0, "min_sum_hessian_in_leaf": 0.01},
        lgb.Dataset(X, y, weight=w),
        15,
    )
    ours = lgb.train(
        {**BASE, "objective": gfl.objective(FocalLoss(0.5, 0.0)), "lambda_l2": 0.5, "min_sum_hessian_in_leaf": 0.005},
        lgb.Dataset(X, y, weight=w),
        15,
    )
    np.testing.assert_allclose(_raw(ours, X), _raw(ref, X), rtol=0, atol=1e-9)


@pytest.mark.parametrize("weighted", [False, True])
def test_focal_start_reproduces_builtin_boost_from_average(weighted):
    X, y, w = _data(weighted=weighted)
    ref = lgb.train(
        {**BASE, "objective": "binary", "lambda_l2": 1.0, "min_sum_hessian_in_leaf": 0.01},
        lgb.Dataset(X, y, weight=w),
        15,
    )
    half = {**BASE, "lambda_l2": 0.5, "min_sum_hessian_in_leaf": 0.005}
    ours = gfl.train(FocalLoss(0.5, 0.0), half, lgb.Dataset(X, y, weight=w), 15)
    np.testing.assert_allclose(_raw(ours, X), _raw(ref, X), rtol=0, atol=1e-9)
    # both put the start in the first tree: a one-tree prediction agrees too
    np.testing.assert_allclose(_raw(ours, X, num_iteration=1), _raw(ref, X, num_iteration=1), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- γ = 2 training


def test_gamma_two_training_loss_decreases_from_the_focal_start():
    X, y, _ = _data()
    loss = FocalLoss(0.25, 2.0)
    dtrain = lgb.Dataset(X, y)
    history = {}
    gfl.train(loss, BASE, dtrain, 30, valid_sets=[dtrain], callbacks=[lgb.record_evaluation(history)])
    focal = np.array(history["training"]["focal"])
    at_start = loss.mean_loss(y, np.full_like(y, loss.init_score(y)))
    assert focal[0] < at_start
    assert np.all(np.diff(focal) < 0)
    assert focal[-1] < 0.7 * at_start


def test_metric_equals_mean_loss_of_saved_margins():
    X, y, w = _data(weighted=True)
    Xv, yv, wv = _data(500, seed=1, weighted=True)
    loss = FocalLoss(0.25, 2.0)
    history = {}
    booster = gfl.train(
        loss,
        BASE,
        lgb.Dataset(X, y, weight=w),
        20,
        valid_sets=[lgb.Dataset(Xv, yv, weight=wv)],
        callbacks=[lgb.record_evaluation(history)],
    )
    reported = history["valid_0"]["focal"][-1]
    assert reported == pytest.approx(loss.mean_loss(yv, _raw(booster, Xv), _stored(wv)), rel=1e-12)
    # and the metric itself, called directly, is FocalLoss.mean_loss
    direct = gfl.metric(loss)(_raw(booster, Xv), lgb.Dataset(Xv, yv, weight=wv))
    assert direct == ("focal", pytest.approx(loss.mean_loss(yv, _raw(booster, Xv), wv), rel=1e-12), False)


def test_objective_returns_focal_gradient_and_hessian():
    X, y, w = _data(200, weighted=True)
    z = np.random.default_rng(3).normal(0, 3, y.shape[0])
    loss = FocalLoss(0.3, 1.5, hessian="abs")
    grad, hess = gfl.objective(loss)(z, lgb.Dataset(X, y, weight=w))
    g_ref, h_ref = loss.gradient_hessian(y, z, w)
    np.testing.assert_array_equal(grad, g_ref)
    np.testing.assert_array_equal(hess, h_ref)


# --------------------------------------------------------------------------- self-contained boosters


def _recording_feval(store):
    def record(preds, eval_data):
        store[id(eval_data)] = preds.copy()
        return "recorded", 0.0, False

    return record


@pytest.mark.parametrize("boosting", ["gbdt", "dart", "goss"])
def test_booster_predicts_the_training_margins(boosting):
    # the margins LightGBM trained on (start included) are what the bare booster predicts
    X, y, w = _data(weighted=True)
    Xv, yv, _ = _data(400, seed=2)
    dtrain, dvalid = lgb.Dataset(X, y, weight=w), lgb.Dataset(Xv, yv)
    seen = {}
    params = {**BASE, "boosting": boosting}
    booster = gfl.train(
        FocalLoss(0.25, 2.0), params, dtrain, 12, valid_sets=[dtrain, dvalid], feval=_recording_feval(seen)
    )
    np.testing.assert_allclose(_raw(booster, X), seen[id(dtrain)], rtol=0, atol=1e-12)
    np.testing.assert_allclose(_raw(booster, Xv), seen[id(dvalid)], rtol=0, atol=1e-12)
    # the data sets are left as they were given: no init_score stays behind
    assert dtrain.get_init_score() is None and dvalid.get_init_score() is None


def test_start_is_in_the_first_tree_and_saved_with_the_model(tmp_path):
    X, y, w = _data(weighted=True)
    loss = FocalLoss(0.25, 2.0)
    booster = gfl.train(loss, BASE, lgb.Dataset(X, y, weight=w), 10)
    start = loss.init_score(y, _stored(w))
    plain = lgb.train(
        {**BASE, "objective": gfl.objective(loss)}, lgb.Dataset(X, y, weight=w, init_score=np.full(y.shape, start)), 10
    )
    np.testing.assert_allclose(_raw(booster, X), _raw(plain, X) + start, rtol=0, atol=1e-12)

    path = tmp_path / "model.txt"
    booster.save_model(path)
    margin = _raw(booster, X)
    np.testing.assert_array_equal(_raw(lgb.Booster(model_file=path), X), margin)
    text = booster.model_to_string()
    assert lgb.Booster(model_str=text).model_to_string() == text
    np.testing.assert_array_equal(_raw(lgb.Booster(model_str=text), X), margin)
    np.testing.assert_array_equal(_raw(pickle.loads(pickle.dumps(booster)), X), margin)
    # SHAP values still add up to the margin
    contrib = booster.predict(X[:50], pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1), margin[:50], rtol=0, atol=1e-9)


def test_continued_training_from_a_gbfocal_booster():
    X, y, _ = _data()
    loss = FocalLoss(0.25, 2.0)
    first = gfl.train(loss, BASE, lgb.Dataset(X, y), 5, keep_training_booster=True)
    more = gfl.train(loss, BASE, lgb.Dataset(X, y), 5, init_model=first)
    at_once = gfl.train(loss, BASE, lgb.Dataset(X, y), 10)
    assert more.num_trees() == 10
    np.testing.assert_allclose(_raw(more, X), _raw(at_once, X), rtol=0, atol=1e-9)


def test_init_score_choices():
    X, y, _ = _data()
    loss = FocalLoss(0.25, 2.0)
    params = {**BASE, "objective": gfl.objective(loss)}
    zero = gfl.train(loss, BASE, lgb.Dataset(X, y), 5, init_score=0.0)
    np.testing.assert_array_equal(_raw(zero, X), _raw(lgb.train(params, lgb.Dataset(X, y), 5), X))
    fixed = gfl.train(loss, BASE, lgb.Dataset(X, y), 5, init_score=-1.5)
    plain = lgb.train(params, lgb.Dataset(X, y, init_score=np.full(y.shape, -1.5)), 5)
    np.testing.assert_allclose(_raw(fixed, X), _raw(plain, X) - 1.5, rtol=0, atol=1e-12)
    # with init_score=0.0 a Dataset's own per-row init_score is used as given (and not saved)
    offsets = np.linspace(-1, 1, y.shape[0])
    own = gfl.train(loss, BASE, lgb.Dataset(X, y, init_score=offsets), 5, init_score=0.0)
    np.testing.assert_array_equal(_raw(own, X), _raw(lgb.train(params, lgb.Dataset(X, y, init_score=offsets), 5), X))


def test_datasets_are_reusable_and_labels_are_prepared_once(monkeypatch):
    X, y, w = _data(weighted=True)
    Xv, yv, _ = _data(300, seed=5)
    made = []
    prepared = FocalLoss.prepared

    def counting(self, *args):
        made.append(1)
        return prepared(self, *args)

    monkeypatch.setattr(FocalLoss, "prepared", counting)
    dtrain, dvalid = lgb.Dataset(X, y, weight=w), lgb.Dataset(Xv, yv)
    loss = FocalLoss(0.25, 2.0)
    a = gfl.train(loss, BASE, dtrain, 8, valid_sets=[dvalid])
    # start: 1; objective on dtrain: 1; metric on dvalid: 1 -- not one per round
    assert len(made) == 3
    b = gfl.train(loss, BASE, dtrain, 8, valid_sets=[dvalid])  # same (now constructed) Datasets again
    np.testing.assert_array_equal(_raw(a, X), _raw(b, X))


def test_prepared_rows_follow_the_dataset():
    X, y, _ = _data(300)
    z = np.random.default_rng(1).normal(size=y.shape[0])
    loss = FocalLoss(0.25, 2.0)
    obj = gfl.objective(loss)
    dtrain = lgb.Dataset(X, y, params={"verbosity": -1}).construct()
    # unweighted: float64 values rounded once to float32 (what LightGBM would do to them itself)
    g, h = obj(z, dtrain)
    assert g.dtype == h.dtype == np.float32
    np.testing.assert_array_equal(g, loss.gradient_hessian(y, z)[0].astype(np.float32))
    np.testing.assert_array_equal(h, loss.gradient_hessian(y, z)[1].astype(np.float32))
    dtrain.set_label(1.0 - y)  # a new label array: prepared again
    np.testing.assert_array_equal(obj(z, dtrain)[0], loss.gradient_hessian(1.0 - y, z)[0].astype(np.float32))
    w = np.linspace(0.5, 1.5, y.shape[0])
    dtrain.set_weight(w)
    g, _ = obj(z, dtrain)  # weighted: float64, so that w * g is rounded once, by LightGBM
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, loss.gradient_hessian(1.0 - y, z, w)[0], rtol=1e-7)
    del dtrain
    gc.collect()
    assert not obj._cache._entries  # buffers go with the Dataset


def test_too_little_data_to_split_gives_the_constant_focal_start():
    # 12 rows < min_data_in_leaf: no feature is usable. LightGBM's built-in objectives give a
    # constant model there; a callable objective used to fail (lightgbm-org/LightGBM#5667).
    X, y, _ = _data(12, seed=4)
    loss = FocalLoss(0.25, 2.0)
    booster = gfl.train(loss, {"verbosity": -1}, lgb.Dataset(X, y), 5)
    np.testing.assert_allclose(_raw(booster, X), loss.init_score(y), rtol=1e-15)
    clf = LGBMFocalClassifier(n_estimators=5, verbosity=-1).fit(X, y)
    np.testing.assert_allclose(clf.predict(X, raw_score=True), loss.init_score(y), rtol=1e-15)


# --------------------------------------------------------------------------- pickling and threads


def test_objective_and_metric_pickle():
    X, y, w = _data(300, weighted=True)
    z = np.random.default_rng(0).normal(size=y.shape[0])
    loss = FocalLoss(0.3, 2.0)
    dtrain = lgb.Dataset(X, y, weight=w)
    obj, met = gfl.objective(loss, n_threads=2), gfl.metric(loss)
    g, h = (a.copy() for a in obj(z, dtrain))
    value = met(z, dtrain)
    obj2, met2 = pickle.loads(pickle.dumps(obj)), pickle.loads(pickle.dumps(met))
    assert obj2.loss == loss and obj2.n_threads == 2
    assert not obj2._cache._entries  # the prepared rows do not travel
    g2, h2 = obj2(z, dtrain)
    np.testing.assert_array_equal(g2, g)
    np.testing.assert_array_equal(h2, h)
    assert met2(z, dtrain) == value
    assert "FocalLoss(alpha=0.3" in repr(obj2)


def test_num_threads_reaches_the_kernel(monkeypatch):
    X, y, _ = _data(300)
    made = []
    real = gfl.objective

    def spy(loss, *, n_threads=None):
        made.append(n_threads)
        return real(loss, n_threads=n_threads)

    monkeypatch.setattr(gfl, "objective", spy)
    params = {k: v for k, v in BASE.items() if k != "num_threads"}
    gfl.train(FocalLoss(), {**params, "nthread": 2}, lgb.Dataset(X, y), 1)
    gfl.train(FocalLoss(), {**params, "num_threads": 0, "nthread": 2}, lgb.Dataset(X, y), 1)  # main name wins
    assert made == [2, None]


# --------------------------------------------------------------------------- bad input


def test_bad_input_errors():
    X, y, _ = _data(300)
    loss = FocalLoss()
    with pytest.raises(TypeError, match=r"gbfocal\.FocalLoss"):
        gfl.objective("focal")
    with pytest.raises(TypeError, match="n_threads must be a positive int or None"):
        gfl.metric(loss, n_threads=1.5)
    with pytest.raises(ValueError, match="n_threads must be a positive int or None"):
        gfl.objective(loss, n_threads=0)  # LightGBM's "0 = every core" is for params["num_threads"] only
    with pytest.raises(TypeError, match=r"params\['num_threads'\] must be a positive int"):
        gfl.train(loss, {**BASE, "num_threads": "2"}, lgb.Dataset(X, y))
    with pytest.raises(ValueError, match="sets the objective itself"):
        gfl.train(loss, {**BASE, "objective": "binary"}, lgb.Dataset(X, y))
    with pytest.raises(ValueError, match="sets the objective itself"):
        gfl.train(loss, {**BASE, "application": "binary"}, lgb.Dataset(X, y))
    with pytest.raises(ValueError, match="as if they were probabilities"):
        gfl.train(loss, {**BASE, "metric": "auc,binary_logloss"}, lgb.Dataset(X, y))
    with pytest.raises(ValueError, match="already has an init_score"):
        gfl.train(loss, BASE, lgb.Dataset(X, y, init_score=np.zeros_like(y)))
    with pytest.raises(ValueError, match="valid_sets\\[0\\] already has an init_score"):
        gfl.train(loss, BASE, lgb.Dataset(X, y), valid_sets=[lgb.Dataset(X, y, init_score=np.zeros_like(y))])
    with pytest.raises(ValueError, match="linear_tree"):
        gfl.train(loss, {**BASE, "linear_tree": True}, lgb.Dataset(X, y))
    with pytest.raises(ValueError, match="init_score must be 'focal'"):
        gfl.train(loss, BASE, lgb.Dataset(X, y), init_score="mean")
    with pytest.raises(TypeError, match="init_score must be 'focal'"):
        gfl.train(loss, BASE, lgb.Dataset(X, y), init_score=float("nan"))
    with pytest.raises(TypeError, match=r"lightgbm\.Dataset"):
        gfl.train(loss, BASE, (X, y))
    with pytest.raises(ValueError, match=r"\['l2'\], which LightGBM computes on the raw margins"):
        gfl.train(loss, {**BASE, "metric": ["auc", "l2"]}, lgb.Dataset(X, y))
    with pytest.raises(TypeError, match="params must be a dict"):
        gfl.train(loss, [("num_leaves", 7)], lgb.Dataset(X, y))
    first = gfl.train(loss, BASE, lgb.Dataset(X, y), 2)
    with pytest.raises(ValueError, match="together with init_model"):
        gfl.train(loss, BASE, lgb.Dataset(X, y), 2, init_model=first, init_score=1.0)
    with pytest.raises(ValueError, match="must contain only 0 and 1"):
        gfl.train(loss, BASE, lgb.Dataset(X, 2 * y - 1))
    with pytest.raises(ValueError, match="must contain only 0 and 1"):
        gfl.train(loss, BASE, lgb.Dataset(X, 2 * y - 1), init_score=0.0)  # from the objective
    with pytest.raises(ValueError, match="both classes"):
        gfl.train(loss, BASE, lgb.Dataset(X, np.zeros_like(y)))
    with pytest.raises(ValueError, match=r"3 margins per row \(num_class = 3\), but FocalLoss.* is binary"):
        gfl.objective(loss)(np.zeros((y.shape[0], 3)), lgb.Dataset(X, y))
    with pytest.raises(ValueError, match=r"params\['num_class'\] has 3 margins per row .* is binary"):
        gfl.train(loss, {**BASE, "num_class": 3}, lgb.Dataset(X, y))
    with pytest.raises(ValueError, match="random forest mode"):
        gfl.train(loss, {**BASE, "boosting_type": "rf", "bagging_freq": 1, "bagging_fraction": 0.5}, lgb.Dataset(X, y))


def test_failed_training_leaves_the_datasets_untouched():
    X, y, _ = _data(300)
    dtrain = lgb.Dataset(X, y)
    with pytest.raises(lgb.basic.LightGBMError):
        gfl.train(FocalLoss(), {**BASE, "num_leaves": -3}, dtrain)
    assert dtrain.init_score is None


def test_sigmoid_and_posterior_helpers():
    z = np.array([-800.0, -30.0, -1.0, 0.0, 2.5, 40.0, 800.0])
    p = gfl.sigmoid(z)
    np.testing.assert_allclose(p, np.exp(-np.logaddexp(0.0, -z)), rtol=4e-15, atol=0)  # tails keep precision
    np.testing.assert_allclose(gfl.sigmoid(-z) + p, 1.0, rtol=1e-15)
    X, y, _ = _data(600)
    loss = FocalLoss(0.25, 2.0)
    booster = gfl.train(loss, BASE, lgb.Dataset(X, y), 10)
    posterior = gfl.predict_posterior(loss, booster, X)
    np.testing.assert_array_equal(posterior, loss.posterior(_raw(booster, X)))
    np.testing.assert_array_equal(
        gfl.predict_posterior(loss, booster, X, num_iteration=2), loss.posterior(_raw(booster, X, num_iteration=2))
    )
    with pytest.raises(TypeError, match=r"gbfocal\.FocalLoss"):
        gfl.predict_posterior(booster, loss, X)


# --------------------------------------------------------------------------- GPU (OpenCL) device


def _opencl_available():
    X, y, _ = _data(200)
    try:
        lgb.train({"device_type": "gpu", "verbosity": -1, "objective": "binary", "max_bin": 63}, lgb.Dataset(X, y), 1)
    except lgb.basic.LightGBMError:
        return False
    return True


@pytest.mark.gpu
def test_opencl_gpu_device_trains_with_the_host_objective():
    # LightGBM computes a callable objective on the host whatever the device; with the OpenCL
    # learner only histograms are built on the GPU. GPU histogram sums need not be bit-identical
    # to the CPU's, so this checks the device run on its own terms.
    if not _opencl_available():
        pytest.skip("no OpenCL device for LightGBM's device_type='gpu'")
    X, y, _ = _data()
    loss = FocalLoss(0.25, 2.0)
    dtrain = lgb.Dataset(X, y)
    seen, history = {}, {}
    params = {"verbosity": -1, "num_leaves": 7, "device_type": "gpu", "max_bin": 63}
    booster = gfl.train(
        loss,
        params,
        dtrain,
        20,
        valid_sets=[dtrain],
        feval=_recording_feval(seen),
        callbacks=[lgb.record_evaluation(history)],
    )
    np.testing.assert_allclose(_raw(booster, X), seen[id(dtrain)], rtol=0, atol=1e-9)
    focal = history["training"]["focal"]
    assert focal[-1] < focal[0] < loss.mean_loss(y, np.full_like(y, loss.init_score(y)))


# --------------------------------------------------------------------------- LGBMFocalClassifier

SMALL = {"n_estimators": 10, "num_leaves": 7, "n_jobs": 1, "verbosity": -1}
SMALL.update(deterministic=True, force_row_wise=True)


def test_classifier_matches_native_training():
    X, y, w = _data(weighted=True)
    labels = np.where(y == 1, "fraud", "ok")  # classes_ = ["fraud", "ok"]: "ok" is the positive class
    clf = LGBMFocalClassifier(focal_alpha=0.3, focal_gamma=1.5, class_weight="balanced", **SMALL).fit(
        X, labels, sample_weight=w
    )
    assert clf.classes_.tolist() == ["fraud", "ok"]
    y01 = (labels == "ok").astype(float)
    weight = w * compute_sample_weight("balanced", labels)
    booster = gfl.train(
        FocalLoss(0.3, 1.5),
        {"num_leaves": 7, "num_threads": 1, "verbosity": -1, "deterministic": True, "force_row_wise": True},
        lgb.Dataset(X, y01, weight=weight),
        10,
    )
    np.testing.assert_allclose(clf.predict(X, raw_score=True), _raw(booster, X), rtol=0, atol=1e-12)


def test_classifier_predictions_are_probabilities_and_labels():
    X, y, _ = _data()
    labels = np.where(y == 1, "yes", "no")
    clf = LGBMFocalClassifier(**SMALL).fit(X, labels)
    margin = clf.predict(X, raw_score=True)
    proba = clf.predict_proba(X)
    assert margin.shape == (X.shape[0],) and proba.shape == (X.shape[0], 2)
    np.testing.assert_array_equal(margin, _raw(clf.booster_, X))
    np.testing.assert_array_equal(clf.predict_proba(X, raw_score=True), margin)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-15)
    # focal_proba="posterior" (default): the recovered class posterior, and decision_function its log-odds
    loss = FocalLoss(0.25, 2.0)
    np.testing.assert_allclose(proba[:, 1], loss.posterior(margin), rtol=1e-14)
    decision = clf.decision_function(X)
    np.testing.assert_array_equal(decision, loss.posterior_margin(margin))
    np.testing.assert_array_equal(clf.predict(X), np.where(decision > 0, "yes", "no"))
    assert np.any((decision > 0) != (margin > 0))  # the posterior moves the threshold off margin 0
    # focal_proba="sigmoid": σ(margin), thresholded at margin 0
    sig = clone(clf).set_params(focal_proba="sigmoid").fit(X, labels)
    np.testing.assert_array_equal(sig.decision_function(X), margin)
    np.testing.assert_allclose(sig.predict_proba(X)[:, 1], gfl.sigmoid(margin), rtol=1e-15)
    np.testing.assert_array_equal(sig.predict(X), np.where(margin > 0, "yes", "no"))
    # LightGBM's other prediction kinds pass through
    assert clf.predict(X, pred_leaf=True).shape == (X.shape[0], 10)
    np.testing.assert_allclose(clf.predict_proba(X, pred_contrib=True).sum(axis=1), margin, atol=1e-9)
    first3 = clf.predict(X, raw_score=True, num_iteration=3)
    np.testing.assert_array_equal(first3, _raw(clf.booster_, X, num_iteration=3))
    assert clf.objective_.loss == loss
    assert clf.objective_.n_threads == 1  # n_jobs reaches the gradient kernel


def test_classifier_eval_set_reports_focal_and_stops_early():
    X, y, w = _data(weighted=True)
    Xv, yv, wv = _data(600, seed=7, weighted=True)
    labels, labels_v = np.where(y == 1, "b", "a"), np.where(yv == 1, "b", "a")
    params = {**SMALL, "n_estimators": 300, "learning_rate": 0.3}
    clf = LGBMFocalClassifier(**params).fit(
        X,
        labels,
        sample_weight=w,
        eval_set=[(Xv, labels_v)],
        eval_sample_weight=[wv],
        eval_metric="auc",
        callbacks=[lgb.early_stopping(5, first_metric_only=True, verbose=False)],
    )
    focal = clf.evals_result_["valid_0"]["focal"]
    assert "auc" in clf.evals_result_["valid_0"]
    assert clf.best_iteration_ < 300 and len(focal) == clf.best_iteration_ + 5
    best = clf.best_score_["valid_0"]["focal"]
    assert best == min(focal)
    loss = FocalLoss(0.25, 2.0)
    assert best == pytest.approx(loss.mean_loss(yv, clf.predict(Xv, raw_score=True), _stored(wv)), rel=1e-12)
    # eval_X / eval_y (LightGBM 4.7's spelling) give the same model
    other = LGBMFocalClassifier(**params).fit(
        X,
        labels,
        sample_weight=w,
        eval_X=(Xv,),
        eval_y=(labels_v,),
        eval_sample_weight=[wv],
        eval_metric="auc",
        callbacks=[lgb.early_stopping(5, first_metric_only=True, verbose=False)],
    )
    np.testing.assert_array_equal(other.decision_function(Xv), clf.decision_function(Xv))


def test_classifier_round_trips(tmp_path):
    X, y, _ = _data()
    clf = LGBMFocalClassifier(**SMALL).fit(X, y.astype(int))
    proba = clf.predict_proba(X)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))
    path = tmp_path / "clf.txt"
    clf.booster_.save_model(path)
    loaded = lgb.Booster(model_file=path)
    np.testing.assert_array_equal(loaded.predict(X, raw_score=True), clf.predict(X, raw_score=True))
    np.testing.assert_allclose(gfl.predict_posterior(FocalLoss(), loaded, X), proba[:, 1], rtol=1e-14)


def test_classifier_in_clone_pipeline_and_grid_search():
    X, y, _ = _data(800)
    clf = LGBMFocalClassifier(focal_alpha=0.4, alpha=0.7, **SMALL)
    params = clf.get_params()
    assert params["focal_alpha"] == 0.4 and params["alpha"] == 0.7  # LightGBM's own alpha passes through
    twin = clone(clf)
    assert twin.get_params() == params
    pipe = make_pipeline(StandardScaler(), clone(clf)).fit(X, y)
    assert pipe.predict_proba(X).shape == (X.shape[0], 2)
    assert "focal_alpha" not in pipe[-1].booster_.params and pipe[-1].booster_.params["alpha"] == 0.7
    search = GridSearchCV(
        LGBMFocalClassifier(**SMALL), {"focal_alpha": [0.25, 0.75], "focal_gamma": [0.0, 2.0]}, cv=2, scoring="roc_auc"
    ).fit(X, y)
    assert set(search.best_params_) == {"focal_alpha", "focal_gamma"}
    assert search.best_estimator_.objective_.loss == FocalLoss(
        search.best_params_["focal_alpha"], search.best_params_["focal_gamma"]
    )
    # set_params reaches the loss
    a = clone(clf).set_params(focal_gamma=0.0).fit(X, y).decision_function(X)
    b = clone(clf).set_params(focal_gamma=3.0).fit(X, y).decision_function(X)
    assert not np.allclose(a, b)


def test_classifier_top_level_export():
    assert gbfocal.LGBMFocalClassifier is gfl.LGBMFocalClassifier


def test_classifier_bad_input_errors():
    X, y, _ = _data(300)
    three = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    with pytest.raises(ValueError, match=r"focal_alpha=0.3 is a float, which only a binary problem takes"):
        LGBMFocalClassifier(focal_alpha=0.3, **SMALL).fit(X, three)
    with pytest.raises(ValueError, match=r"focal_proba='sigmoid' is for two classes; .* 3: use 'softmax'"):
        LGBMFocalClassifier(focal_proba="sigmoid", **SMALL).fit(X, three)
    with pytest.raises(ValueError, match="only one"):
        LGBMFocalClassifier(**SMALL).fit(X, np.ones_like(y))
    with pytest.raises(ValueError, match="objective is the focal loss"):
        LGBMFocalClassifier(objective="binary", **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="objective is the focal loss"):
        LGBMFocalClassifier(loss="binary", **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="as if they were probabilities"):
        LGBMFocalClassifier(**SMALL).fit(X, y, eval_set=[(X, y)], eval_metric="logloss")
    with pytest.raises(ValueError, match="as if they were probabilities"):
        LGBMFocalClassifier(metric="binary_error", **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="alpha must lie strictly between 0 and 1"):
        LGBMFocalClassifier(focal_alpha=1.5, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="hessian must be one of"):
        LGBMFocalClassifier(focal_hessian="newton", **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="focal_proba must be one of"):
        LGBMFocalClassifier(focal_proba="calibrated", **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="linear_tree"):
        LGBMFocalClassifier(linear_tree=True, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="sample_weight has 3 rows"):
        LGBMFocalClassifier(**SMALL).fit(X, y, sample_weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="either eval_set or eval_X"):
        LGBMFocalClassifier(**SMALL).fit(X, y, eval_set=[(X, y)], eval_X=X, eval_y=y)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        LGBMFocalClassifier().predict_proba(X)


def test_classifier_with_a_built_in_rank_metric():
    X, y, _ = _data(600)
    clf = LGBMFocalClassifier(metric="auc", **SMALL).fit(X, y, eval_set=[(X, y)])
    assert set(clf.evals_result_["training"]) == {"auc", "focal"}


# --------------------------------------------------------------------------- scikit-learn's estimator checks

# Parameters passed through **kwargs (verbosity, here) become attributes in LGBMModel.__init__, which
# check_no_attributes_set_in_init rejects for lightgbm.LGBMClassifier(verbosity=-1) too. The checked
# instances therefore keep LightGBM's default verbosity: its [Info] lines go to stdout, not to warnings.
#
# scikit-learn runs its checks with n_estimators=5, on binary and multiclass data alike. The softmax
# instance (the sigmoid for two classes) uses balanced α: thresholding σ(margin) of an α = 0.25 model at
# 1/2 is biased towards the negative class (the posterior corrects that), and five rounds from its
# negative start miss check_classifiers_train's 0.83 training accuracy.
CHECKED = {"n_estimators": 5, "num_leaves": 7, "n_jobs": 1}


@parametrize_with_checks(
    [
        LGBMFocalClassifier(**CHECKED),
        LGBMFocalClassifier(focal_proba="softmax", focal_alpha="balanced", **CHECKED),
    ],
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
