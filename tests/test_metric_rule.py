"""One metric rule for both engines (README, "Metrics"; the "Metrics" section of each adapter's docstring).

The focal metric is always reported and is the one early stopping uses; the engines' rank metrics are
reported beside it; metrics that read probabilities off the raw margins are refused, saying why.
The data are chosen so that the rank metric peaks *before* the focal metric: had the rank metric (or
whichever metric stalls first) decided, training would have stopped earlier than the focal rule says.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

import gbfocal.lightgbm as gfl
import gbfocal.xgboost as gfx
from gbfocal import FocalLoss, MulticlassFocalLoss

PATIENCE = 3
# (classes, seed of the data): seeds where the rank metric peaks before the focal metric, in both engines
CASES = [(2, 1), (3, 4)]
LGB_PARAMS = {"learning_rate": 0.3, "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, "num_threads": 1}
XGB_PARAMS = {"learning_rate": 0.3, "max_depth": 4, "n_jobs": 1}


def _data(k: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(1600, 6))
    z = X[:, 0] + 0.5 * X[:, 1] ** 2
    if k == 2:
        y = (z + rng.normal(scale=1.5, size=1600) > 0.8).astype(int)
    else:
        y = np.digitize(z + rng.normal(scale=1.0, size=1600), [0.0, 1.0])
    return X[:800], y[:800], X[800:], y[800:]


def _loss(k: int) -> FocalLoss | MulticlassFocalLoss:
    return FocalLoss() if k == 2 else MulticlassFocalLoss(gamma=2.0)


def _check_focal_decided(curves: dict, rank: str, best: int) -> None:
    """Early stopping stopped ``PATIENCE`` rounds after the focal minimum, which the rank metric did not share."""
    focal, ranked = np.asarray(curves["focal"]), np.asarray(curves[rank])
    assert best == int(np.argmin(focal))
    assert len(focal) == best + PATIENCE + 1
    assert int(np.argmax(ranked)) < best  # so the rank metric stalled first: it did not decide


# --------------------------------------------------------------------------- XGBoost


@pytest.mark.parametrize(("k", "seed"), CASES)
def test_xgboost_train_reports_auc_and_stops_on_focal(k, seed):
    X, y, Xv, yv = _data(k, seed)
    history: dict = {}
    booster = gfx.train(
        _loss(k),
        {"eta": 0.3, "max_depth": 4, "nthread": 1, "eval_metric": "auc"},
        xgb.DMatrix(X, label=y),
        200,
        evals=[(xgb.DMatrix(Xv, label=yv), "valid")],
        evals_result=history,
        early_stopping_rounds=PATIENCE,
        verbose_eval=False,
    )
    assert list(history["valid"]) == ["auc", "focal"]
    _check_focal_decided(history["valid"], "auc", booster.best_iteration)


@pytest.mark.parametrize(("k", "seed"), CASES)
def test_xgboost_classifier_reports_auc_and_stops_on_focal(k, seed):
    X, y, Xv, yv = _data(k, seed)
    clf = gfx.XGBFocalClassifier(n_estimators=200, eval_metric="auc", early_stopping_rounds=PATIENCE, **XGB_PARAMS).fit(
        X, y, eval_set=[(Xv, yv)], verbose=False
    )
    curves = clf.evals_result()["validation_0"]
    assert list(curves) == ["auc", "focal"]
    _check_focal_decided(curves, "auc", clf.best_iteration)


def test_xgboost_custom_metric_is_reported_before_focal():
    X, y, Xv, yv = _data(2, 1)

    def mean_margin(predt, dmatrix):
        return "mean_margin", float(np.mean(predt))

    history: dict = {}
    booster = gfx.train(
        FocalLoss(),
        {"eta": 0.3, "max_depth": 4, "nthread": 1},
        xgb.DMatrix(X, label=y),
        200,
        evals=[(xgb.DMatrix(Xv, label=yv), "valid")],
        custom_metric=mean_margin,
        evals_result=history,
        early_stopping_rounds=PATIENCE,
        verbose_eval=False,
    )
    assert list(history["valid"]) == ["mean_margin", "focal"]
    focal = history["valid"]["focal"]
    assert booster.best_iteration == int(np.argmin(focal)) and len(focal) == booster.best_iteration + PATIENCE + 1
    # the scikit-learn API: a callable eval_metric is reported before the focal metric too
    clf = gfx.XGBFocalClassifier(n_estimators=3, eval_metric=["aucpr", _margin_mean], **XGB_PARAMS)
    clf.fit(X, y, eval_set=[(Xv, yv)], verbose=False)
    assert list(clf.evals_result()["validation_0"]) == ["aucpr", "_margin_mean", "focal"]


def _margin_mean(y_true, y_score, sample_weight=None):
    return float(np.mean(y_score))


@pytest.mark.parametrize(("k", "name"), [(2, "logloss"), (2, "error"), (3, "mlogloss"), (3, "merror"), (2, "rmse")])
def test_xgboost_probability_metrics_are_refused(k, name):
    X, y, _, _ = _data(k, 1)
    dtrain = xgb.DMatrix(X, label=y)
    why = rf"\['{name}'\], which XGBoost computes on sigma\(margin\) or softmax\(margins\).*'focal'"
    with pytest.raises(ValueError, match=r"params\['eval_metric'\] asks for " + why):
        gfx.train(_loss(k), {"eval_metric": ["auc", name]}, dtrain, 2)
    fitted = gfx.XGBFocalClassifier(n_estimators=2, **XGB_PARAMS).fit(X, y)
    before = fitted.predict_proba(X)
    with pytest.raises(ValueError, match="eval_metric asks for " + why):
        fitted.set_params(eval_metric=name).fit(X, y)
    np.testing.assert_array_equal(fitted.predict_proba(X), before)  # the refused fit changed nothing


def test_xgboost_maximize_is_refused():
    X, y, _, _ = _data(2, 1)
    with pytest.raises(ValueError, match="maximize=True would make early stopping maximise the focal loss"):
        gfx.train(FocalLoss(), {}, xgb.DMatrix(X, label=y), 2, maximize=True)


# --------------------------------------------------------------------------- LightGBM

LGB_RANK = {2: "auc", 3: "auc_mu"}


@pytest.mark.parametrize("how", ["params", "callback"])
@pytest.mark.parametrize(("k", "seed"), CASES)
def test_lightgbm_train_reports_the_rank_metric_and_stops_on_focal(k, seed, how):
    X, y, Xv, yv = _data(k, seed)
    params = {**LGB_PARAMS, "metric": LGB_RANK[k]}
    stopper = lgb.early_stopping(PATIENCE, verbose=False)  # first_metric_only=False: every metric could stop
    callbacks = [stopper]
    if how == "params":
        params["early_stopping_round"], callbacks = PATIENCE, []
    history: dict = {}
    booster = gfl.train(
        _loss(k),
        params,
        lgb.Dataset(X, y),
        200,
        valid_sets=[lgb.Dataset(Xv, yv)],
        callbacks=[*callbacks, lgb.record_evaluation(history)],
    )
    assert set(history["valid_0"]) == {LGB_RANK[k], "focal"}
    _check_focal_decided(history["valid_0"], LGB_RANK[k], booster.best_iteration - 1)
    assert stopper.first_metric_only is False  # the caller's callback is left as it was


@pytest.mark.parametrize(("k", "seed"), CASES)
def test_lightgbm_classifier_reports_the_rank_metric_and_stops_on_focal(k, seed):
    X, y, Xv, yv = _data(k, seed)
    clf = gfl.LGBMFocalClassifier(n_estimators=200, **LGB_PARAMS).fit(
        X, y, eval_set=[(Xv, yv)], eval_metric=LGB_RANK[k], callbacks=[lgb.early_stopping(PATIENCE, verbose=False)]
    )
    curves = clf.evals_result_["valid_0"]
    assert set(curves) == {LGB_RANK[k], "focal"}
    _check_focal_decided(curves, LGB_RANK[k], clf.best_iteration_ - 1)


@pytest.mark.parametrize(
    ("k", "name"), [(2, "binary_logloss"), (2, "binary_error"), (3, "multi_logloss"), (3, "multi_error"), (2, "l2")]
)
def test_lightgbm_probability_metrics_are_refused(k, name):
    X, y, _, _ = _data(k, 1)
    why = rf"\['{name}'\], which LightGBM computes on the raw margins as if they were probabilities.*'focal'"
    with pytest.raises(ValueError, match=r"params\['metric'\] asks for " + why):
        gfl.train(_loss(k), {**LGB_PARAMS, "metric": ["auc", name]}, lgb.Dataset(X, y), 2)
    with pytest.raises(ValueError, match=r"params\['metric'\] asks for " + why):
        gfl.train(_loss(k), {**LGB_PARAMS, "metric": name}, lgb.Dataset(X, y), 2, init_score=0.0)
    fitted = gfl.LGBMFocalClassifier(n_estimators=2, **LGB_PARAMS).fit(X, y)
    before = fitted.predict_proba(X)
    with pytest.raises(ValueError, match="eval_metric asks for " + why):
        fitted.fit(X, y, eval_set=[(X, y)], eval_metric=name)
    with pytest.raises(ValueError, match="metric asks for " + why):
        fitted.set_params(metric=name).fit(X, y)
    np.testing.assert_array_equal(fitted.predict_proba(X), before)  # the refused fits changed nothing
