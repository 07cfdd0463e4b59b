"""Multi-label focal loss with XGBoost: one sigmoid focal loss per label, as RetinaNet trains it.

Each row carries three 0/1 flags (one rare, one moderate, one common) drawn
from known per-label probabilities. XGBFocalClassifier fitted on the (n, 3)
indicator matrix trains MultilabelFocalLoss, as XGBClassifier trains
multi-label binary:logistic; the native API trains the same loss with either
multi_strategy. LightGBM has no multi-output trees: wrap LGBMFocalClassifier
in sklearn.multioutput.MultiOutputClassifier (last section).

python examples/multilabel_xgboost.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import xgboost as xgb
from scipy.special import expit
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

import gbfocal.xgboost as gfx
from gbfocal import MultilabelFocalLoss
from gbfocal.xgboost import XGBFocalClassifier

LABELS = ["rare", "moderate", "common"]


def make_data(n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, the true per-label probabilities η (n, 3), and labels drawn from them."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    logits = np.column_stack([1.5 * X[:, 0] - 4.0, X[:, 1] - 0.5 * X[:, 2] ** 2 - 1.0, X[:, 3] + X[:, 4] + 0.5])
    eta = expit(logits)
    return X, eta, (rng.random(eta.shape) < eta).astype(np.int64)


def main() -> None:
    X, eta, Y = make_data()
    X_train, X_test, Y_train, Y_test, _, eta_test = train_test_split(X, Y, eta, test_size=0.3, random_state=0)
    X_fit, X_valid, Y_fit, Y_valid = train_test_split(X_train, Y_train, test_size=0.2, random_state=0)
    print("positive rate per label:", dict(zip(LABELS, Y.mean(axis=0).round(3).tolist(), strict=True)))

    # --- scikit-learn API: a 2-D y makes it multi-label; focal_alpha per label (or one float, or "balanced")
    clf = XGBFocalClassifier(
        n_estimators=300,
        learning_rate=0.2,
        max_depth=3,
        n_jobs=2,
        focal_alpha=[0.5, 0.4, 0.25],
        focal_gamma=2.0,
        early_stopping_rounds=20,  # stops on the focal loss, the mean over rows and labels
    )
    clf.fit(X_fit, Y_fit, eval_set=[(X_valid, Y_valid)], verbose=False)
    proba = clf.predict_proba(X_test)  # (n, 3): recovered per-label posteriors
    sigmoid = expit(clf.predict(X_test, output_margin=True).astype(np.float64))
    print(f"stopped at {clf.best_iteration + 1} trees per label; predict: {clf.predict(X_test).shape} indicators")
    for k, name in enumerate(LABELS):
        ap = average_precision_score(Y_test[:, k], proba[:, k])
        err_post = np.abs(proba[:, k] - eta_test[:, k]).mean()
        err_sig = np.abs(sigmoid[:, k] - eta_test[:, k]).mean()
        print(f"  {name:9s} AP {ap:.3f}   mean |P - true η|: posterior {err_post:.4f}, σ(margin) {err_sig:.4f}")

    # save/load keeps the loss; plain XGBoost reads the same file and gives the same margins
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "multilabel.json"
        clf.save_model(path)
        loaded = XGBFocalClassifier()
        loaded.load_model(path)
        assert np.array_equal(loaded.predict_proba(X_test), proba)
        plain = xgb.XGBClassifier()
        plain.load_model(path)
        assert np.array_equal(plain.predict(X_test, output_margin=True), clf.predict(X_test, output_margin=True))

    # --- native API: the same loss, one tree per label or one multi-output tree per round
    loss = MultilabelFocalLoss(alpha=[0.5, 0.4, 0.25], gamma=2.0)
    dfit = xgb.DMatrix(X_fit, label=Y_fit)
    dvalid = xgb.DMatrix(X_valid, label=Y_valid)
    dtest = xgb.DMatrix(X_test)
    for strategy in ("one_output_per_tree", "multi_output_tree"):
        params = {"tree_method": "hist", "max_depth": 3, "eta": 0.2, "nthread": 2, "multi_strategy": strategy}
        booster = gfx.train(
            loss, params, dfit, 300, evals=[(dvalid, "valid")], early_stopping_rounds=20, verbose_eval=False
        )
        post = gfx.predict_posterior(None, booster, dtest)  # the loss is stored in the booster
        mean_ap = np.mean([average_precision_score(Y_test[:, k], post[:, k]) for k in range(3)])
        print(f"native {strategy:20s} best round {booster.best_iteration + 1:3d}, mean AP {mean_ap:.3f}")

    # --- LightGBM: no multi-output trees; one binary focal model per label column
    try:
        from sklearn.multioutput import MultiOutputClassifier

        from gbfocal.lightgbm import LGBMFocalClassifier
    except ImportError:  # pragma: no cover - LightGBM is optional
        return
    per_label = MultiOutputClassifier(
        LGBMFocalClassifier(focal_alpha="balanced", n_estimators=80, num_leaves=8, verbose=-1, n_jobs=2)
    ).fit(X_train, Y_train)
    lgb_proba = np.column_stack([p[:, 1] for p in per_label.predict_proba(X_test)])
    alphas = [round(est.focal_loss().alpha, 3) for est in per_label.estimators_]
    mean_ap = np.mean([average_precision_score(Y_test[:, k], lgb_proba[:, k]) for k in range(3)])
    print(f"LightGBM MultiOutputClassifier: balanced α per label {alphas}, mean AP {mean_ap:.3f}")


if __name__ == "__main__":
    main()
