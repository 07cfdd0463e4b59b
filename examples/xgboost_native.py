"""Focal loss with XGBoost's native API.

Two ways to the same model: ``gbfocal.xgboost.train`` (one call), or
``xgboost.train`` with the pieces ``gfx.params`` (logistic link, focal
starting score), ``gfx.objective`` and ``gfx.metric``. The result is an
ordinary XGBoost Booster: a saved model loads and gives the same margins
without gbfocal. Its ``predict`` returns σ(margin), which ranks rows correctly
but is not P(y = 1 | x) under the focal loss; ``gfx.predict_posterior`` is,
and ``gfx.train`` stores the loss in the booster so the saved file carries it.

    python examples/xgboost_native.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import xgboost as xgb
from sklearn.datasets import make_classification
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

import gbfocal.xgboost as gfx
from gbfocal import FocalLoss


def main() -> None:
    # 5% positives: the setting focal loss is made for.
    X, y = make_classification(
        n_samples=10_000, n_features=20, n_informative=6, weights=[0.95], flip_y=0.02, random_state=0
    )
    X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    dtrain = xgb.DMatrix(X_train, label=y_train)
    dvalid = xgb.DMatrix(X_valid, label=y_valid)
    loss = FocalLoss(alpha=0.25, gamma=2.0)
    params = {"tree_method": "hist", "max_depth": 4, "eta": 0.2, "nthread": 2}

    # 1. One call: objective, "focal" metric on every eval set, starting score, logistic link.
    booster = gfx.train(
        loss, params, dtrain, 300, evals=[(dvalid, "valid")], early_stopping_rounds=20, verbose_eval=100
    )
    best = (0, booster.best_iteration + 1)
    p_valid = booster.predict(dvalid, iteration_range=best)  # σ(margin): a score, not a probability
    ap = average_precision_score(y_valid, p_valid)
    print(f"best iteration {booster.best_iteration}, valid average precision {ap:.3f}")
    posterior = gfx.predict_posterior(loss, booster, dvalid)  # P(y = 1 | x), best iteration by default
    print(f"mean predicted P(y=1): sigma(margin) {p_valid.mean():.4f}, posterior {posterior.mean():.4f}, ", end="")
    print(f"observed rate {y_valid.mean():.4f}")

    # 2. The same with xgboost.train and the pieces.
    full = gfx.params(loss, dtrain, **params)  # adds objective="binary:logistic" and base_score
    print(f"init_score {loss.init_score(y_train):+.4f} -> base_score {full['base_score']:.4f} (a probability)")
    by_hand = xgb.train(
        full, dtrain, booster.best_iteration + 1, obj=gfx.objective(loss, n_threads=2), custom_metric=gfx.metric(loss)
    )
    same = np.allclose(by_hand.predict(dvalid), p_valid, atol=1e-6)
    print(f"xgboost.train with gfx.params/objective/metric gives the same model: {same}")

    # 3. A saved model is a plain binary:logistic XGBoost model that carries its focal loss.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "focal.ubj"
        booster.save_model(path)
        loaded = xgb.Booster(model_file=path)
        print(
            f"reloaded predictions identical: {np.array_equal(loaded.predict(dvalid, iteration_range=best), p_valid)}"
        )
        print(f"loss stored in the file: {gfx.booster_loss(loaded)}")
        same_posterior = np.array_equal(gfx.predict_posterior(None, loaded, dvalid), posterior)
        print(f"reloaded posterior identical (loss read from the file): {same_posterior}")


if __name__ == "__main__":
    main()
