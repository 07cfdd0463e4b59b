"""gbfocal.lightgbm under adversarial use: threads, ignored class weights, early stopping, saved models."""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")
pytest.importorskip("sklearn")

import gbfocal.lightgbm as gfl  # noqa: E402
from gbfocal import FocalLoss, LGBMFocalClassifier  # noqa: E402

# deterministic, single-threaded, silent: results comparable bit for bit
BASE = {"verbosity": -1, "num_threads": 1, "num_leaves": 7, "deterministic": True, "force_row_wise": True}
SMALL = {"n_estimators": 15, "num_leaves": 7, "verbosity": -1, "n_jobs": 1, "deterministic": True}
N_THREADS = 4


def _data(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(size=n) > 1.3).astype(np.float64)  # ~15 % positives
    return X, y


def _in_threads(fn, n=N_THREADS):
    """``fn(i)`` for i < n, all started together; results in order, or the first exception raised."""
    results, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# --------------------------------------------------------------------------- threads
@pytest.mark.parametrize("route", ["lgb.train", "Booster.update"])
def test_one_objective_and_metric_shared_by_threads_train_as_serial(route):
    # A threaded parameter search: one objective and one metric object, one Dataset, several trainings at once,
    # each with its own learning rate (identical runs would hide a shared buffer: same values at the same round).
    # lgb.train deep-copies params, objective included; Booster.update(fobj=...) really shares it.
    X, y = _data(20_000)
    loss = FocalLoss(0.25, 2.0)
    obj, feval = gfl.objective(loss, n_threads=1), gfl.metric(loss, n_threads=1)
    dtrain = lgb.Dataset(X, y, free_raw_data=False).construct()

    def fit(i):
        params = {**BASE, "learning_rate": 0.05 * (i + 1)}
        if route == "lgb.train":
            record = {}
            params["objective"] = obj
            callbacks = [lgb.record_evaluation(record)]
            booster = lgb.train(params, dtrain, 30, valid_sets=[dtrain], feval=feval, callbacks=callbacks)
            return booster.predict(X, raw_score=True), record["training"]["focal"]
        booster, focal = lgb.Booster({**params, "objective": "none"}, dtrain), []
        for _ in range(30):
            booster.update(fobj=obj)
            focal.append(booster.eval_train(feval=feval)[0][2])
        return booster.predict(X, raw_score=True), focal

    # each serial run in a thread of its own: the Python-or-kernel choice is counted per object and thread
    # (gbfocal._loss.PythonRowBudget), and the two paths agree to 1e-13, not bit for bit
    serial = [_in_threads(lambda _, i=i: fit(i), n=1)[0] for i in range(N_THREADS)]
    for (margin, focal), (serial_margin, serial_focal) in zip(_in_threads(fit), serial, strict=True):
        np.testing.assert_array_equal(margin, serial_margin)
        assert focal == serial_focal


def test_train_from_threads_on_one_dataset_leaves_it_untouched():
    X, y = _data()
    Xv, yv = _data(500, seed=1)
    loss = FocalLoss(0.25, 2.0)
    dtrain = lgb.Dataset(X, y).construct()
    dvalid = lgb.Dataset(Xv, yv, reference=dtrain).construct()

    def fit(_):
        record = {}
        booster = gfl.train(
            loss, BASE, dtrain, 20, valid_sets=[dvalid], valid_names=["v"], callbacks=[lgb.record_evaluation(record)]
        )
        return booster.predict(X, raw_score=True), record["v"]["focal"]

    serial_margin, serial_focal = fit(None)
    for margin, focal in _in_threads(fit):
        np.testing.assert_array_equal(margin, serial_margin)
        assert focal == serial_focal
    for ds in (dtrain, dvalid):
        assert ds.init_score is None
        assert ds.get_field("init_score") is None


def test_start_reaches_the_fevals_as_the_models_margins():
    # The start is added by gbfocal, not held in the Dataset: a feval must still see the model's own margins.
    X, y = _data()
    seen = []

    def last_margins(preds, _data):
        seen.append(np.array(preds))
        return "mean_margin", float(np.mean(preds)), False

    booster = gfl.train(FocalLoss(), BASE, lgb.Dataset(X, y), 10, valid_sets=[lgb.Dataset(X, y)], feval=last_margins)
    np.testing.assert_allclose(seen[-1], booster.predict(X, raw_score=True), rtol=0, atol=1e-9)


# --------------------------------------------------------------------------- class weighting LightGBM ignores
IGNORED = [
    {"scale_pos_weight": 5.0},
    {"is_unbalance": True},
    {"unbalance": "true"},
    {"pos_bagging_fraction": 0.5, "bagging_freq": 1},
    {"pos_subsample": 0.5, "bagging_freq": 1},
    {"neg_bagging_fraction": 0.3, "bagging_freq": 1},
    {"neg_sub_row": 0.3, "bagging_freq": 1},
]


@pytest.mark.parametrize("extra", IGNORED, ids=lambda d: next(iter(d)))
def test_lightgbm_ignores_class_weighting_with_a_custom_objective(extra):
    # The premise of the refusal, measured: plain lgb.train with our objective builds the very same trees.
    X, y = _data()
    params = {**BASE, "objective": gfl.objective(FocalLoss())}
    plain = lgb.train(params, lgb.Dataset(X, y), 10).predict(X, raw_score=True)
    weighted = lgb.train({**params, **extra}, lgb.Dataset(X, y), 10).predict(X, raw_score=True)
    np.testing.assert_array_equal(weighted, plain)


@pytest.mark.parametrize("extra", IGNORED, ids=lambda d: next(iter(d)))
def test_ignored_class_weighting_is_refused(extra):
    X, y = _data(300)
    with pytest.raises(ValueError, match=r"ignores with a custom objective.*focal alpha.*sample_weight"):
        gfl.train(FocalLoss(), {**BASE, **extra}, lgb.Dataset(X, y))
    with pytest.raises(ValueError, match=r"LGBMFocalClassifier sets .*focal_alpha"):
        LGBMFocalClassifier(**SMALL, **extra).fit(X, y)
    with pytest.raises(ValueError, match="ignores with a custom objective"):
        gfl._refuse_ignored_class_weights(extra)


def test_neutral_class_weighting_values_and_plain_bagging_are_accepted():
    X, y = _data()
    neutral = {"scale_pos_weight": 1, "is_unbalance": False, "pos_bagging_fraction": 1.0, "neg_bagging_fraction": 1}
    ref = gfl.train(FocalLoss(), BASE, lgb.Dataset(X, y), 10).predict(X, raw_score=True)
    same = gfl.train(FocalLoss(), {**BASE, **neutral}, lgb.Dataset(X, y), 10).predict(X, raw_score=True)
    np.testing.assert_array_equal(same, ref)
    bagged = {**BASE, "bagging_fraction": 0.5, "bagging_freq": 1}  # sampling, not objective: it does act
    assert np.abs(gfl.train(FocalLoss(), bagged, lgb.Dataset(X, y), 10).predict(X, raw_score=True) - ref).max() > 0.01


# --------------------------------------------------------------------------- early stopping
@pytest.mark.parametrize("keep", [False, True])
def test_predict_posterior_defaults_to_the_best_iteration(keep):
    X, y = _data()
    Xv, yv = _data(500, seed=1)
    loss = FocalLoss()
    booster = gfl.train(
        loss,
        {**BASE, "learning_rate": 0.5},
        lgb.Dataset(X, y),
        300,
        valid_sets=[lgb.Dataset(Xv, yv)],
        callbacks=[lgb.early_stopping(5, verbose=False)],
        keep_training_booster=keep,
    )
    best = booster.best_iteration
    assert 0 < best < 300
    at_best = loss.posterior(booster.predict(Xv, raw_score=True, num_iteration=best))
    np.testing.assert_array_equal(gfl.predict_posterior(loss, booster, Xv), at_best)
    np.testing.assert_array_equal(gfl.predict_posterior(None, booster, Xv), at_best)
    first = loss.posterior(booster.predict(Xv, raw_score=True, num_iteration=1))
    np.testing.assert_array_equal(gfl.predict_posterior(loss, booster, Xv, num_iteration=1), first)


# --------------------------------------------------------------------------- saved models
def test_saved_booster_restores_the_posterior_without_the_loss(tmp_path):
    X, y = _data()
    loss = FocalLoss(0.3, 1.5, hessian="abs")
    booster = gfl.train(loss, BASE, lgb.Dataset(X, y), 12)
    expected = gfl.predict_posterior(loss, booster, X)
    np.testing.assert_array_equal(gfl.predict_posterior(None, booster, X), expected)
    path = tmp_path / "focal.txt"
    booster.save_model(path)
    loaded = lgb.Booster(model_file=path)
    assert gfl._recorded_loss(loaded) == loss
    np.testing.assert_array_equal(gfl.predict_posterior(None, loaded, X), expected)
    # plain LightGBM knows no link for a custom objective: raw margins, not probabilities
    np.testing.assert_array_equal(loaded.predict(X), booster.predict(X, raw_score=True))
    for copy_ in (
        pickle.loads(pickle.dumps(loaded)),
        copy.deepcopy(booster),
        lgb.Booster(model_str=loaded.model_to_string()),
    ):
        np.testing.assert_array_equal(gfl.predict_posterior(None, copy_, X), expected)
    # the record survives continued training through gbfocal, and says the newest loss
    more = gfl.train(FocalLoss(0.4, 2.0), BASE, lgb.Dataset(X, y), 3, init_model=loaded)
    assert gfl._recorded_loss(more) == FocalLoss(0.4, 2.0)


def test_kept_training_booster_records_the_loss_on_the_object():
    X, y = _data()
    booster = gfl.train(FocalLoss(0.3, 1.0), BASE, lgb.Dataset(X, y), 5, keep_training_booster=True)
    expected = gfl.predict_posterior(FocalLoss(0.3, 1.0), booster, X)
    np.testing.assert_array_equal(gfl.predict_posterior(None, booster, X), expected)
    np.testing.assert_array_equal(gfl.predict_posterior(None, pickle.loads(pickle.dumps(booster)), X), expected)
    booster.update(fobj=gfl.objective(FocalLoss(0.3, 1.0)))  # still a training booster


def test_a_booster_without_a_record_needs_the_loss():
    X, y = _data(300)
    plain = lgb.train({**BASE, "objective": gfl.objective(FocalLoss())}, lgb.Dataset(X, y), 2)
    assert gfl._recorded_loss(plain) is None
    with pytest.raises(ValueError, match=r"records none.*pass the FocalLoss"):
        gfl.predict_posterior(None, plain, X)
    text = gfl.train(FocalLoss(), BASE, lgb.Dataset(X, y), 2).model_to_string()
    assert '[gbfocal_loss: {"loss":"focal","alpha":0.25,"gamma":2.0,"hessian":"positive"}]' in text
    broken = lgb.Booster(model_str=text.replace('"gamma":2.0', '"gamma":"two"'))
    with pytest.raises(ValueError, match="malformed"):
        gfl.predict_posterior(None, broken, X)


def test_binary_records_of_the_earlier_format_are_still_read():
    X, y = _data(300)
    text = gfl.train(FocalLoss(0.3, 1.5, hessian="abs"), BASE, lgb.Dataset(X, y), 2).model_to_string()
    record = next(line for line in text.splitlines() if line.startswith("[gbfocal_loss: "))
    old = lgb.Booster(model_str=text.replace(record, "[gbfocal_loss: alpha=0.3 gamma=1.5 hessian=abs]"))
    assert gfl._recorded_loss(old) == FocalLoss(0.3, 1.5, hessian="abs")
    broken = lgb.Booster(model_str=text.replace(record, "[gbfocal_loss: alpha=0.3 gamma=two hessian=abs]"))
    with pytest.raises(ValueError, match="malformed"):
        gfl.predict_posterior(None, broken, X)


def test_classifier_pickle_and_saved_booster_restore_probabilities(tmp_path):
    X, y = _data()
    labels = np.where(y == 1, "yes", "no")
    clf = LGBMFocalClassifier(focal_alpha=0.3, focal_gamma=1.5, **SMALL).fit(X, labels)
    proba = clf.predict_proba(X)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))
    path = tmp_path / "clf.txt"
    clf.booster_.save_model(path)
    loaded = lgb.Booster(model_file=path)
    np.testing.assert_allclose(gfl.predict_posterior(None, loaded, X), proba[:, 1], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X, raw_score=True))  # raw margins


# --------------------------------------------------------------------------- messages
def test_classifier_negative_sample_weight_is_named():
    X, y = _data(300)
    with pytest.raises(ValueError, match=r"sample_weight contains negative values"):
        LGBMFocalClassifier(**SMALL).fit(X, y, sample_weight=-np.ones_like(y))
    with pytest.raises(ValueError, match=r"sample_weight \(times class_weight\) is zero for every row"):
        LGBMFocalClassifier(**SMALL).fit(X, y, sample_weight=np.zeros_like(y))


def test_train_params_none_and_lightgbm_thread_convention():
    X, y = _data(300)
    ref = gfl.train(FocalLoss(), {}, lgb.Dataset(X, y, params={"verbosity": -1}), 3)
    none = gfl.train(FocalLoss(), None, lgb.Dataset(X, y, params={"verbosity": -1}), 3)
    np.testing.assert_array_equal(none.predict(X, raw_score=True), ref.predict(X, raw_score=True))
    for threads in (0, -1):  # LightGBM's "every core" in params is accepted
        gfl.train(FocalLoss(), {**BASE, "num_threads": threads}, lgb.Dataset(X, y), 2)
    LGBMFocalClassifier(**{**SMALL, "n_jobs": 0}).fit(X, y)
