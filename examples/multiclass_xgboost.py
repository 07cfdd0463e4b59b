"""Multiclass focal loss with XGBoost: the scikit-learn estimator and the native API.

Three classes, one of them rare. XGBFocalClassifier switches to
MulticlassFocalLoss by itself when y has more than two classes, as
XGBClassifier switches to multi:softprob.

python examples/multiclass_xgboost.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import xgboost as xgb
from sklearn.datasets import make_classification
from sklearn.metrics import average_precision_score, log_loss
from sklearn.model_selection import train_test_split

import gbfocal.xgboost as gfx
from gbfocal import MulticlassFocalLoss
from gbfocal.xgboost import XGBFocalClassifier


def main() -> None:
    X, codes = make_classification(
        n_samples=6000, n_features=12, n_informative=6, n_classes=3, weights=[0.75, 0.22, 0.03], random_state=0
    )
    y = np.array(["minor", "serious", "fatal"])[codes]  # any labels; classes_ is their sorted array
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    X_fit, X_valid, y_fit, y_valid = train_test_split(X_train, y_train, test_size=0.2, stratify=y_train, random_state=0)

    # --- scikit-learn API: focal_alpha as a {label: weight} mapping (or a list in classes_ order, or "balanced")
    clf = XGBFocalClassifier(
        n_estimators=400,
        learning_rate=0.1,
        max_depth=4,
        n_jobs=2,
        focal_gamma=2.0,
        focal_alpha={"fatal": 4.0, "serious": 1.5, "minor": 1.0},
        early_stopping_rounds=20,  # on the focal loss of eval_set
    )
    clf.fit(X_fit, y_fit, eval_set=[(X_valid, y_valid)], verbose=False)
    proba = clf.predict_proba(X_test)  # (n, 3): the recovered class posterior, columns in classes_ order
    print("classes_", clf.classes_.tolist(), "best iteration", clf.best_iteration)
    print("trained loss", clf._focal_loss)
    fatal = list(clf.classes_).index("fatal")
    print(f"test log loss {log_loss(y_test, proba, labels=clf.classes_):.4f}")
    ap = average_precision_score(y_test == "fatal", proba[:, fatal])
    print(f"average precision of the rare class 'fatal': {ap:.3f}")
    softmax = clf.set_params(focal_proba="softmax").predict_proba(X_test)  # the engine's own, under-confident
    clf.set_params(focal_proba="posterior")
    print(f"log loss of softmax(margins) instead: {log_loss(y_test, softmax, labels=clf.classes_):.4f}")

    # The saved file is a plain multi:softprob model that starts from the focal start; gbfocal restores the rest.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "focal_multiclass.json"
        clf.save_model(path)
        loaded = XGBFocalClassifier()
        loaded.load_model(path)
        assert np.array_equal(loaded.predict_proba(X_test), proba)
        plain = xgb.Booster(model_file=path)  # no gbfocal: same raw margins
        best = (0, clf.best_iteration + 1)  # the estimator predicts with the best iteration's trees
        margins = plain.predict(xgb.DMatrix(X_test), output_margin=True, iteration_range=best)
        assert np.array_equal(margins, clf.predict(X_test, output_margin=True))
        assert np.allclose(gfx.booster_loss(plain).posterior(margins), proba)

    # --- native API: class indices 0..K-1 in the DMatrix; train sets multi:softprob, num_class, the start
    loss = MulticlassFocalLoss(alpha=[4.0, 1.0, 1.5], gamma=2.0)  # in class-code order: fatal, minor, serious
    order = {label: k for k, label in enumerate(sorted(set(y)))}
    dtrain = xgb.DMatrix(X_fit, label=[order[v] for v in y_fit])
    dvalid = xgb.DMatrix(X_valid, label=[order[v] for v in y_valid])
    params = {"tree_method": "hist", "max_depth": 4, "eta": 0.1, "nthread": 2}
    booster = gfx.train(
        loss, params, dtrain, 400, evals=[(dvalid, "valid")], early_stopping_rounds=20, verbose_eval=False
    )
    posterior = gfx.predict_posterior(None, booster, xgb.DMatrix(X_test))  # (n, 3), the loss read from the booster
    print(f"native: best iteration {booster.best_iteration}, posterior shape {posterior.shape}")
    assert np.allclose(posterior, proba, atol=1e-5)  # the same model as the estimator's
    print(f"native test log loss {log_loss([order[v] for v in y_test], posterior, labels=[0, 1, 2]):.4f}")


if __name__ == "__main__":
    main()
