"""Probabilities users can trust: the recovered posterior against a known truth.

Synthetic data with the true class posterior η known for every row. A focal
model's σ(margin) is under-confident; ``FocalLoss.posterior`` of the same
margins must clearly beat it on Brier score and expected calibration error,
and come close to a logloss model trained the same way.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gbfocal import FocalLoss
from gbfocal.datasets import make_synthetic

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
sklearn = pytest.importorskip("sklearn")

from sklearn.calibration import CalibratedClassifierCV  # noqa: E402

from gbfocal.lightgbm import LGBMFocalClassifier  # noqa: E402
from gbfocal.xgboost import XGBFocalClassifier  # noqa: E402

PARAMS = {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1, "n_jobs": 2, "random_state": 0}
LGB_EXTRA = {"num_leaves": 8, "verbosity": -1}
ENGINES = {
    "xgboost": (XGBFocalClassifier, lambda: xgb.XGBClassifier(objective="binary:logistic", **PARAMS), {}),
    "lightgbm": (LGBMFocalClassifier, lambda: lgb.LGBMClassifier(**PARAMS, **LGB_EXTRA), LGB_EXTRA),
}


def _raw(est, X):
    return (
        est.predict(X, raw_score=True) if isinstance(est, LGBMFocalClassifier) else est.predict(X, output_margin=True)
    )


def _ece(p, y, bins=15):
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    gaps = [abs(p[idx == b].mean() - y[idx == b].mean()) * np.mean(idx == b) for b in range(bins) if (idx == b).any()]
    return sum(gaps)


@pytest.fixture(scope="module")
def data():
    d = make_synthetic(40_000, n_features=8, positive_rate=0.1, random_state=3)
    n = 20_000
    return SimpleNamespace(X=d.X[:n], y=d.y[:n], Xt=d.X[n:], yt=d.y[n:], eta=d.eta[n:])


@pytest.fixture(scope="module", params=sorted(ENGINES))
def fitted(request, data):
    X, y = data.X, data.y
    focal_cls, reference, extra = ENGINES[request.param]
    focal = focal_cls(focal_alpha=0.25, focal_gamma=2.0, **PARAMS, **extra).fit(X, y)
    return focal, reference().fit(X, y)


def test_recovered_posterior_beats_sigmoid_and_approaches_logloss(data, fitted):
    Xt, yt, eta = data.Xt, data.yt, data.eta
    focal, logloss = fitted
    margin = _raw(focal, Xt)
    p_sigmoid = 1 / (1 + np.exp(-margin.astype(np.float64)))
    p_post = focal.predict_proba(Xt)[:, 1]
    p_log = logloss.predict_proba(Xt)[:, 1]
    np.testing.assert_allclose(p_post, focal.focal_loss().posterior(margin))

    def brier(p):
        return np.mean((p - yt) ** 2)

    def mse_eta(p):
        return np.mean((p - eta) ** 2)

    # σ(margin) of a focal model is badly calibrated; the recovered posterior is not
    assert _ece(p_post, yt) < 0.5 * _ece(p_sigmoid, yt)
    assert brier(p_post) < brier(p_sigmoid) - 0.001
    assert mse_eta(p_post) < 0.5 * mse_eta(p_sigmoid)
    # ... and is close to what a logloss model achieves on the same budget
    assert brier(p_post) < brier(p_log) * 1.02
    assert _ece(p_post, yt) < _ece(p_log, yt) + 0.01
    # rankings are untouched (the transform is strictly increasing)
    assert np.array_equal(np.argsort(p_post, kind="stable"), np.argsort(margin, kind="stable"))


def test_sigmoid_switch_and_threshold(data, fitted):
    X, y, Xt = data.X, data.y, data.Xt
    focal, _ = fitted
    sig = sklearn.base.clone(focal).set_params(focal_proba="sigmoid")
    sig.fit(X[:5000], y[:5000])
    margin = _raw(sig, Xt[:100])
    np.testing.assert_array_equal(sig.decision_function(Xt[:100]), margin)
    np.testing.assert_allclose(sig.predict_proba(Xt[:100])[:, 1], 1 / (1 + np.exp(-margin.astype(np.float64))))
    # predict thresholds the probability it reports, and decision_function is its log-odds
    proba = focal.predict_proba(Xt)
    np.testing.assert_array_equal(focal.predict(Xt), focal.classes_[(proba[:, 1] > 0.5).astype(int)])
    score = focal.decision_function(Xt)
    np.testing.assert_allclose(score, focal.focal_loss().posterior_margin(_raw(focal, Xt)))
    np.testing.assert_array_equal(score > 0, focal.predict(Xt) == focal.classes_[1])
    with pytest.raises(ValueError, match="focal_proba must be one of"):
        sklearn.base.clone(focal).set_params(focal_proba="isotonic").fit(X[:500], y[:500]).predict_proba(Xt[:5])


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_works_inside_calibrated_classifier_cv(data, engine):
    X, y, Xt, yt = data.X, data.y, data.Xt, data.yt
    focal_cls, _, extra = ENGINES[engine]
    base = focal_cls(focal_alpha=0.25, focal_gamma=2.0, **{**PARAMS, "n_estimators": 40}, **extra)
    cal = CalibratedClassifierCV(base, method="isotonic", cv=3).fit(X[:15_000], y[:15_000])
    p = cal.predict_proba(Xt)[:, 1]
    assert np.all((p >= 0) & (p <= 1))
    assert np.mean((p - yt) ** 2) < np.mean((yt - yt.mean()) ** 2)  # better than the base rate


def test_native_helper_matches_estimator(data):
    import gbfocal.xgboost as gfx

    X, y, Xt = data.X, data.y, data.Xt
    loss = FocalLoss(0.25, 2.0)
    dtrain = xgb.DMatrix(X[:5000], label=y[:5000])
    booster = gfx.train(loss, {"max_depth": 3, "eta": 0.1, "nthread": 2}, dtrain, 20)
    dtest = xgb.DMatrix(Xt[:200])
    np.testing.assert_allclose(
        gfx.predict_posterior(loss, booster, dtest), loss.posterior(booster.predict(dtest, output_margin=True))
    )
