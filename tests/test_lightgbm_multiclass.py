"""gbfocal.lightgbm with MulticlassFocalLoss: native API, start in the first K trees, the estimator on K classes."""

import pickle
import threading

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")
sklearn = pytest.importorskip("sklearn")

from scipy.special import softmax  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import gbfocal.lightgbm as gfl  # noqa: E402
from gbfocal import FocalLoss, MulticlassFocalLoss  # noqa: E402
from gbfocal.lightgbm import LGBMFocalClassifier  # noqa: E402

BASE = {"verbosity": -1, "num_threads": 1, "num_leaves": 7, "deterministic": True, "force_row_wise": True}
SMALL = {"n_estimators": 10, "num_leaves": 7, "n_jobs": 1, "verbosity": -1, "deterministic": True}
SMALL["force_row_wise"] = True
K = 3


def _data(n=900, seed=0, weighted=False, k=K):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = np.argmax(X[:, :k] + rng.normal(size=(n, k)), axis=1).astype(np.float64)
    w = rng.uniform(0.2, 2.0, size=n) if weighted else None
    return X, y, w


def _softmax_ce(weight=None):
    """Plain NumPy softmax cross-entropy as a LightGBM objective: gradient p - onehot(y), Hessian p (1 - p)."""

    def fobj(preds, train_data):
        p = softmax(preds, axis=1)
        g = p.copy()
        g[np.arange(g.shape[0]), train_data.get_label().astype(int)] -= 1.0
        h = p * (1.0 - p)
        return (g, h) if weight is None else (g * weight[:, None], h * weight[:, None])

    return fobj


# ---------------------------------------------------------------------- native API
@pytest.mark.parametrize("weighted", [False, True])
def test_gamma_zero_reproduces_numpy_softmax_cross_entropy_through_the_same_call(weighted):
    X, y, w = _data(weighted=weighted)
    params = {**BASE, "num_class": K, "learning_rate": 0.2}

    def fit(fobj):
        return lgb.train({**params, "objective": fobj}, lgb.Dataset(X, y, weight=w), 30)

    ours = fit(gfl.objective(MulticlassFocalLoss(gamma=0.0))).predict(X, raw_score=True)
    reference = fit(_softmax_ce(w)).predict(X, raw_score=True)
    assert ours.shape == (X.shape[0], K)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)
    focal = fit(gfl.objective(MulticlassFocalLoss(gamma=2.0))).predict(X, raw_score=True)
    assert np.abs(focal - reference).max() > 0.1  # the comparison can tell losses apart


def test_objective_returns_the_loss_gradient_in_lightgbm_layout():
    X, y, w = _data(300, weighted=True)
    loss = MulticlassFocalLoss([1.0, 2.0, 0.5], 2.0)
    z = np.asfortranarray(np.random.default_rng(1).normal(size=(y.shape[0], K)))  # LightGBM's (n, K) view
    g, h = gfl.objective(loss)(z, lgb.Dataset(X, y, weight=w).construct())
    assert g.shape == h.shape == (y.shape[0], K) and g.dtype == h.dtype == np.float32
    g64, h64 = loss.gradient_hessian(y, z, w)  # the float64 values, weights applied, rounded to float32
    np.testing.assert_allclose(g, g64, rtol=2**-23, atol=1e-30)
    np.testing.assert_allclose(h, h64, rtol=2**-23, atol=1e-30)


def test_train_starts_from_init_score_and_folds_it_into_the_first_k_trees(tmp_path):
    X, y, w = _data(weighted=True)
    loss = MulticlassFocalLoss([1.0, 3.0, 0.5], 2.0)
    start = loss.init_score(y, w.astype(np.float32))
    tiny = gfl.train(loss, {**BASE, "learning_rate": 1e-12}, lgb.Dataset(X, y, weight=w), 1)
    raw = tiny.predict(X, raw_score=True)
    shift = raw - start  # a 1-tree model with learning rate ~0 predicts the start, up to a common shift
    np.testing.assert_allclose(shift, shift[:, :1] * np.ones((1, K)), atol=1e-9)
    np.testing.assert_allclose(raw, np.broadcast_to(start, raw.shape), atol=1e-9)

    booster = gfl.train(loss, BASE, lgb.Dataset(X, y, weight=w), 20)
    # the same training with the start as a Dataset init_score (used in training, never saved in a model)
    plain = lgb.train(
        {**BASE, "num_class": K, "objective": gfl.objective(loss)},
        lgb.Dataset(X, y, weight=w, init_score=np.tile(start, (y.shape[0], 1))),
        20,
    )
    np.testing.assert_allclose(booster.predict(X, raw_score=True), plain.predict(X, raw_score=True) + start, atol=1e-9)
    assert booster.num_model_per_iteration() == K and booster.num_trees() == 20 * K
    path = tmp_path / "focal.txt"
    booster.save_model(path)
    loaded = lgb.Booster(model_file=path)  # plain LightGBM: the start is in the first K trees
    np.testing.assert_array_equal(loaded.predict(X, raw_score=True), booster.predict(X, raw_score=True))
    np.testing.assert_array_equal(loaded.predict(X), booster.predict(X, raw_score=True))  # no link saved
    proba = gfl.predict_posterior(None, loaded, X)  # the loss is read from the file
    # (1-ulp differences: the vectorised kernel's chunks fall on other rows)
    np.testing.assert_allclose(proba, loss.posterior(booster.predict(X, raw_score=True)), rtol=1e-14)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert gfl._recorded_loss(pickle.loads(pickle.dumps(booster))) == loss


def test_num_class_from_params_loss_or_labels():
    X, y, _ = _data(300)
    by_labels = gfl.train(MulticlassFocalLoss(), BASE, lgb.Dataset(X, y), 2)
    by_alpha = gfl.train(MulticlassFocalLoss([1.0, 1.0, 1.0, 1.0]), BASE, lgb.Dataset(X, y), 2, init_score=0.0)
    by_params = gfl.train(MulticlassFocalLoss(), {**BASE, "num_classes": 4}, lgb.Dataset(X, y), 2, init_score=0.0)
    assert [b.num_model_per_iteration() for b in (by_labels, by_alpha, by_params)] == [3, 4, 4]
    with pytest.raises(ValueError, match=r"every class with positive total weight .* \[3\] have none"):
        gfl.train(MulticlassFocalLoss(), {**BASE, "num_class": 4}, lgb.Dataset(X, y), 2)  # no focal start
    start = MulticlassFocalLoss().init_score(y)
    vector = gfl.train(MulticlassFocalLoss(), {**BASE, "learning_rate": 1e-12}, lgb.Dataset(X, y), 1, init_score=start)
    np.testing.assert_allclose(vector.predict(X[:3], raw_score=True), np.tile(start, (3, 1)), atol=1e-9)


def test_continued_training_from_a_multiclass_booster():
    X, y, _ = _data()
    loss = MulticlassFocalLoss([1.0, 2.0, 1.0], 2.0)
    first = gfl.train(loss, BASE, lgb.Dataset(X, y), 5)
    more = gfl.train(loss, BASE, lgb.Dataset(X, y), 5, init_model=first)
    at_once = gfl.train(loss, BASE, lgb.Dataset(X, y), 10)
    assert more.num_trees() == 10 * K
    np.testing.assert_allclose(more.predict(X, raw_score=True), at_once.predict(X, raw_score=True), atol=1e-9)


def test_metric_reports_the_mean_focal_loss_and_stops_early():
    X, y, _ = _data(seed=0)
    Xv, yv, _ = _data(400, seed=1)
    loss = MulticlassFocalLoss([1.0, 2.0, 1.0], 2.0)
    history = {}
    booster = gfl.train(
        loss,
        {**BASE, "learning_rate": 0.5},
        lgb.Dataset(X, y),
        200,
        valid_sets=[lgb.Dataset(Xv, yv)],
        callbacks=[lgb.early_stopping(5, verbose=False), lgb.record_evaluation(history)],
    )
    curve = history["valid_0"]["focal"]
    assert 0 < booster.best_iteration < len(curve) < 200
    for it in (1, booster.best_iteration):
        margins = booster.predict(Xv, raw_score=True, num_iteration=it)
        assert curve[it - 1] == pytest.approx(loss.mean_loss(yv, margins), rel=1e-12)
    seen = []

    def feval(preds, data):
        seen.append(np.array(preds))
        return "seen", 0.0, False

    two = gfl.train(loss, BASE, lgb.Dataset(X, y), 2, valid_sets=[lgb.Dataset(Xv, yv)], feval=feval)
    np.testing.assert_allclose(seen[-1], two.predict(Xv, raw_score=True), atol=1e-12)  # the start included


def test_multiclass_bad_input_errors():
    X, y, _ = _data(300)
    loss = MulticlassFocalLoss()
    for metric in ("multi_logloss", "multi_error", "softmax"):
        with pytest.raises(ValueError, match="as if they were probabilities"):
            gfl.train(loss, {**BASE, "metric": metric}, lgb.Dataset(X, y))
    with pytest.raises(ValueError, match=r"params\['num_class'\] has 4 margins per row .* has 3 class weights"):
        gfl.train(MulticlassFocalLoss([1.0, 1.0, 1.0]), {**BASE, "num_class": 4}, lgb.Dataset(X, y))
    with pytest.raises(ValueError, match=r"one margin per row \(num_class = 1\), but MulticlassFocalLoss"):
        gfl.train(loss, {**BASE, "num_class": 1}, lgb.Dataset(X, y))
    with pytest.raises(ValueError, match=r"one margin per row .* set params\['num_class'\] = K"):
        lgb.train({**BASE, "objective": gfl.objective(loss)}, lgb.Dataset(X, y), 1)
    with pytest.raises(ValueError, match=r"init_score must have one value per class, K = 3, got 2"):
        gfl.train(loss, BASE, lgb.Dataset(X, y), init_score=[0.0, 1.0])
    with pytest.raises(ValueError, match="class indices in \\[0, 3\\)"):
        gfl.train(loss, {**BASE, "num_class": 3}, lgb.Dataset(X, y + 1))
    booster = gfl.train(loss, BASE, lgb.Dataset(X, y), 2)
    with pytest.raises(ValueError, match=r"the booster has 3 margins per row .* is binary"):
        gfl.predict_posterior(FocalLoss(), booster, X)


def test_one_objective_and_metric_shared_by_threads_train_as_serial():
    # Booster.update(fobj=...) really shares the objective (lgb.train deep-copies it): each thread's margins
    # copy and gradients must live in buffers of its own. Different learning rates: different values per round.
    X, y, _ = _data(6000)
    loss = MulticlassFocalLoss([1.0, 2.0, 0.5], 2.0)
    obj, feval = gfl.objective(loss, n_threads=1), gfl.metric(loss, n_threads=1)
    dtrain = lgb.Dataset(X, y, free_raw_data=False).construct()

    def fit(i):
        params = {**BASE, "num_class": K, "objective": "none", "learning_rate": 0.05 * (i + 1)}
        booster, focal = lgb.Booster(params, dtrain), []
        for _ in range(20):
            booster.update(fobj=obj)
            focal.append(booster.eval_train(feval=feval)[0][2])
        return booster.predict(X, raw_score=True), focal

    serial = []  # each in a thread of its own: the Python-or-kernel choice is counted per object and thread
    for i in range(4):
        one = threading.Thread(target=lambda i=i: serial.append(fit(i)))
        one.start()
        one.join()
    results, errors = [None] * 4, []
    barrier = threading.Barrier(4)

    def run(i):
        try:
            barrier.wait()
            results[i] = fit(i)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for (margin, focal), (serial_margin, serial_focal) in zip(results, serial, strict=True):
        np.testing.assert_array_equal(margin, serial_margin)
        assert focal == serial_focal


# ---------------------------------------------------------------------- the estimator
LABELS = np.array(["bird", "cat", "dog"])


def test_classifier_trains_the_multiclass_loss_on_any_labels(tmp_path):
    X, y, w = _data(weighted=True)
    labels = LABELS[y.astype(int)]
    clf = LGBMFocalClassifier(focal_alpha={"cat": 2.0, "bird": 1.0, "dog": 0.5}, **SMALL).fit(X, labels, w)
    assert clf.classes_.tolist() == LABELS.tolist() and clf.n_classes_ == K
    loss = clf.focal_loss()
    assert loss == MulticlassFocalLoss([1.0, 2.0, 0.5], 2.0, hessian="clamp")
    raw = clf.predict(X, raw_score=True)
    proba = clf.predict_proba(X)
    assert raw.shape == proba.shape == (X.shape[0], K)
    np.testing.assert_allclose(proba, loss.posterior(raw), rtol=1e-14)
    assert set(clf.predict(X)) <= set(LABELS)
    np.testing.assert_array_equal(clf.predict(X), LABELS[np.argmax(proba, axis=1)])
    scores = clf.decision_function(X)
    assert scores.shape == (X.shape[0], K)
    np.testing.assert_allclose(softmax(scores, axis=1), proba, rtol=1e-12)
    # the booster on its own: start included, posterior from the record
    np.testing.assert_array_equal(clf.booster_.predict(X, raw_score=True), raw)
    path = tmp_path / "clf.txt"
    clf.booster_.save_model(path)
    np.testing.assert_allclose(gfl.predict_posterior(None, lgb.Booster(model_file=path), X), proba, rtol=1e-14)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    # the start: what a 1-round model with learning rate ~0 predicts
    tiny = LGBMFocalClassifier(**{**SMALL, "n_estimators": 1, "learning_rate": 1e-12}).fit(X, labels)
    np.testing.assert_allclose(tiny.predict(X[:2], raw_score=True), np.tile(tiny.focal_loss().init_score(y), (2, 1)))


def test_classifier_focal_alpha_forms_and_proba_modes():
    X, y, w = _data(weighted=True)
    codes = y.astype(int)
    seq = LGBMFocalClassifier(focal_alpha=[1.0, 2.0, 0.5], **SMALL).fit(X, codes)
    assert seq.focal_loss().alpha == (1.0, 2.0, 0.5)
    default = LGBMFocalClassifier(**SMALL).fit(X, codes)
    assert default.focal_loss() == MulticlassFocalLoss(None, 2.0)
    balanced = LGBMFocalClassifier(focal_alpha="balanced", **SMALL).fit(X, codes, sample_weight=w)
    totals = np.bincount(codes, weights=w.astype(np.float32))
    np.testing.assert_allclose(balanced.focal_loss().alpha, totals.sum() / (K * totals), rtol=1e-6)
    soft = LGBMFocalClassifier(focal_proba="softmax", **SMALL).fit(X, codes)
    np.testing.assert_allclose(soft.predict_proba(X), softmax(soft.predict(X, raw_score=True), axis=1), rtol=1e-12)
    np.testing.assert_array_equal(soft.decision_function(X), soft.predict(X, raw_score=True))
    with pytest.raises(ValueError, match="names the label 'cow'"):
        LGBMFocalClassifier(focal_alpha={"cow": 1.0}, **SMALL).fit(X, LABELS[codes])
    with pytest.raises(ValueError, match="focal_alpha has 2 weights but there are 3 classes"):
        LGBMFocalClassifier(focal_alpha=[1.0, 2.0], **SMALL).fit(X, codes)
    with pytest.raises(ValueError, match="as if they were probabilities"):
        LGBMFocalClassifier(**SMALL).fit(X, codes, eval_set=[(X, codes)], eval_metric="multi_error")
    # a binary classifier's mapping weighs the named label, whichever sorts last
    yb = np.where(codes == 0, "fraud", "ok")
    binary = LGBMFocalClassifier(focal_alpha={"fraud": 3.0, "ok": 1.0}, **SMALL).fit(X, yb)
    assert binary.focal_loss() == FocalLoss(0.25, 2.0)  # alpha is the weight of classes_[1] = "ok"


def test_classifier_eval_set_reports_focal_and_stops_early():
    X, y, _ = _data(seed=0)
    Xv, yv, _ = _data(400, seed=1)
    labels, labels_v = LABELS[y.astype(int)], LABELS[yv.astype(int)]
    clf = LGBMFocalClassifier(**{**SMALL, "n_estimators": 300, "learning_rate": 0.5}).fit(
        X, labels, eval_set=[(Xv, labels_v)], callbacks=[lgb.early_stopping(5, verbose=False)]
    )
    curve = clf.evals_result_["valid_0"]["focal"]
    assert 0 < clf.best_iteration_ < len(curve) < 300
    best = clf.predict(Xv, raw_score=True, num_iteration=clf.best_iteration_)
    assert curve[clf.best_iteration_ - 1] == pytest.approx(clf.focal_loss().mean_loss(yv, best), rel=1e-12)


def test_posterior_is_closer_to_the_known_truth_than_softmax():
    # true posterior: softmax of a known linear score; labels drawn from it
    rng = np.random.default_rng(3)
    n = 20000
    X = rng.normal(size=(2 * n, 2))
    eta = softmax(np.column_stack([2.0 * X[:, 0], 2.0 * X[:, 1], np.zeros(2 * n)]), axis=1)
    y = (rng.uniform(size=(2 * n, 1)) > np.cumsum(eta, axis=1)).sum(axis=1)
    fit = {**SMALL, "n_estimators": 60, "learning_rate": 0.1, "min_child_samples": 50}
    clf = LGBMFocalClassifier(focal_gamma=2.0, **fit).fit(X[:n], y[:n])
    posterior = clf.predict_proba(X[n:])
    plain = clf.set_params(focal_proba="softmax").predict_proba(X[n:])
    err_posterior, err_softmax = (np.abs(p - eta[n:]).mean() for p in (posterior, plain))
    assert err_posterior < 0.6 * err_softmax, (err_posterior, err_softmax)


def test_classifier_in_grid_search_and_calibration():
    X, y, _ = _data(600)
    labels = LABELS[y.astype(int)]
    search = GridSearchCV(
        LGBMFocalClassifier(**SMALL),
        {"focal_gamma": [0.0, 2.0], "focal_alpha": [None, "balanced", {"bird": 2.0, "cat": 1.0, "dog": 1.0}]},
        cv=2,
        scoring="neg_log_loss",
    )
    search.fit(X, labels)
    assert set(search.best_params_) == {"focal_alpha", "focal_gamma"}
    assert search.best_estimator_.predict_proba(X).shape == (X.shape[0], K)
    calibrated = CalibratedClassifierCV(LGBMFocalClassifier(**SMALL), cv=2).fit(X, labels)
    proba = calibrated.predict_proba(X)
    assert proba.shape == (X.shape[0], K) and calibrated.classes_.tolist() == LABELS.tolist()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
