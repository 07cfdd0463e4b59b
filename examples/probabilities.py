"""Probabilities you can trust from a focal-loss model.

σ(margin) of a focal-trained model is under-confident (the focal loss pulls
its minimiser towards 1/2, and α shifts it). ``predict_proba`` of the gbfocal
estimators returns the class posterior recovered from the margin instead
(``FocalLoss.posterior``); this script shows the difference on synthetic data
whose true posterior η is known.

    python examples/probabilities.py
"""

from __future__ import annotations

import numpy as np
import xgboost as xgb

from gbfocal import XGBFocalClassifier
from gbfocal.datasets import make_synthetic


def main() -> None:
    data = make_synthetic(20_000, n_features=8, positive_rate=0.1, random_state=0)
    n = 10_000
    X, y, X_test, y_test, eta = data.X[:n], data.y[:n], data.X[n:], data.y[n:], data.eta[n:]
    params = {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1, "n_jobs": 2}

    focal = XGBFocalClassifier(focal_alpha=0.25, focal_gamma=2.0, **params).fit(X, y)
    logloss = xgb.XGBClassifier(**params).fit(X, y)

    margin = focal.predict(X_test, output_margin=True).astype(np.float64)
    candidates = {
        "focal, σ(margin)": 1 / (1 + np.exp(-margin)),
        "focal, predict_proba (posterior)": focal.predict_proba(X_test)[:, 1],
        "logloss, predict_proba": logloss.predict_proba(X_test)[:, 1],
    }
    print(f"{'probability':>34} | {'Brier':>7} | {'mean p':>7} | {'MSE to true η':>13}")
    for name, p in candidates.items():
        brier = np.mean((p - y_test) ** 2)
        print(f"{name:>34} | {brier:7.4f} | {p.mean():7.4f} | {np.mean((p - eta) ** 2):13.5f}")
    print(f"{'observed positive rate':>34} |         | {y_test.mean():7.4f} |")

    # The transform is strictly increasing: rankings (AUC, AP) are unchanged.
    post = candidates["focal, predict_proba (posterior)"]
    assert np.array_equal(np.argsort(post, kind="stable"), np.argsort(margin, kind="stable"))


if __name__ == "__main__":
    main()
