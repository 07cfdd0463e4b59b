"""Focal loss with LightGBM's native API: train, early-stop, predict, save and reload.

``gbfocal.lightgbm.train`` is ``lgb.train`` with the focal objective, the focal
metric and the focal-optimal starting margin saved in the model, so the booster
predicts correct margins on its own, also after ``save_model``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightgbm as lgb
import numpy as np

import gbfocal.lightgbm as gfl
from gbfocal import FocalLoss

rng = np.random.default_rng(0)
X = rng.normal(size=(8_000, 8))
y = (X[:, 0] + X[:, 1] ** 2 + rng.normal(size=len(X)) > 3.2).astype(float)  # ~11% positives
X_train, y_train, X_valid, y_valid = X[:6_000], y[:6_000], X[6_000:], y[6_000:]

loss = FocalLoss(alpha=0.25, gamma=2.0)
dtrain = lgb.Dataset(X_train, y_train)
dvalid = lgb.Dataset(X_valid, y_valid, reference=dtrain)
params = {"learning_rate": 0.1, "num_leaves": 15, "metric": "auc", "verbosity": -1, "num_threads": 1}  # small data

history: dict = {}
booster = gfl.train(
    loss,
    params,
    dtrain,
    num_boost_round=300,
    valid_sets=[dvalid],
    callbacks=[lgb.early_stopping(20, verbose=False), lgb.record_evaluation(history)],
)
print(f"positives: {y_train.mean():.1%} of {len(y_train)} training rows")
print(f"focal start (first tree holds it): {loss.init_score(y_train):+.4f}")
print(f"best iteration {booster.best_iteration}: {dict(booster.best_score['valid_0'])}")

margin = booster.predict(X_valid, raw_score=True)  # raw margins, start included
proba = gfl.predict_posterior(loss, booster, X_valid)  # P(y = 1 | x), recovered from the focal margins
print(f"validation focal loss {loss.mean_loss(y_valid, margin):.5f}")
print(f"mean P(y=1): posterior {proba.mean():.4f}, sigmoid(margin) {gfl.sigmoid(margin).mean():.4f}, ", end="")
print(f"observed {y_valid.mean():.4f}")

# The model file alone reproduces the margins (nothing to add back by hand) and records the loss, so
# predict_posterior needs no FocalLoss for it. Plain LightGBM's predict on it returns raw margins.
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "focal.txt"
    booster.save_model(path)
    reloaded = lgb.Booster(model_file=path)
    assert np.array_equal(reloaded.predict(X_valid), margin)
    assert np.array_equal(gfl.predict_posterior(None, reloaded, X_valid), proba)
print("saved and reloaded model: identical margins and probabilities")

# gfl.objective / gfl.metric also plug into lgb.train directly; boosting then starts at 0.
plain = lgb.train({**params, "objective": gfl.objective(loss)}, dtrain, 50, valid_sets=[dvalid], feval=gfl.metric(loss))
plain_loss = loss.mean_loss(y_valid, plain.predict(X_valid, raw_score=True))
print(f"plain lgb.train, 50 rounds from 0: validation focal loss {plain_loss:.5f}")
