"""Focal loss with XGBoost's scikit-learn API: ``gbfocal.XGBFocalClassifier``.

An ``xgboost.XGBClassifier`` trained with the focal loss: any two class
labels, ``predict_proba``/``predict``/``decision_function``, early stopping
on the focal metric, ``Pipeline``, ``GridSearchCV`` over ``focal_alpha`` and
``focal_gamma``, and ``save_model``/``load_model``. XGBoost's own ``gamma``
(min split loss) and ``alpha`` (L1) keep their meaning.

    python examples/xgboost_sklearn.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GridSearchCV, train_test_split

from gbfocal import XGBFocalClassifier


def main() -> None:
    X, y = make_classification(
        n_samples=6_000, n_features=20, n_informative=6, weights=[0.95], flip_y=0.02, random_state=1
    )
    labels = np.where(y == 1, "fraud", "legit")  # classes_ sorted: ["fraud", "legit"], so "legit" is positive
    X_train, X_valid, l_train, l_valid = train_test_split(X, labels, test_size=0.25, stratify=y, random_state=0)

    # focal_alpha weighs classes_[1] ("legit"): 0.75 puts 0.25 on the rare "fraud" class.
    clf = XGBFocalClassifier(
        focal_alpha=0.75,
        focal_gamma=2.0,
        n_estimators=300,
        max_depth=4,
        learning_rate=0.2,
        early_stopping_rounds=20,
        n_jobs=2,
    )
    clf.fit(X_train, l_train, eval_set=[(X_valid, l_valid)], verbose=False)
    proba = clf.predict_proba(X_valid)  # columns in the order of clf.classes_
    fraud = proba[:, list(clf.classes_).index("fraud")]
    print(
        f"classes {clf.classes_.tolist()}, best iteration {clf.best_iteration}, "
        f"valid focal loss {min(clf.evals_result()['validation_0']['focal']):.5f}"
    )
    print(
        f"average precision for 'fraud' {average_precision_score(l_valid == 'fraud', fraud):.3f}, "
        f"accuracy {clf.score(X_valid, l_valid):.3f}, predictions {clf.predict(X_valid[:3]).tolist()}"
    )

    # A small grid over the focal parameters; XGBoost's gamma is a different parameter.
    grid = GridSearchCV(
        XGBFocalClassifier(n_estimators=60, max_depth=3, learning_rate=0.2, gamma=0.1, n_jobs=2),
        {"focal_alpha": [0.5, 0.75], "focal_gamma": [0.0, 2.0]},
        scoring="average_precision",
        cv=2,
    ).fit(X_train, l_train == "fraud")
    print(f"grid search best {grid.best_params_}, average precision {grid.best_score_:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "focal.json"
        clf.save_model(path)
        loaded = XGBFocalClassifier()
        loaded.load_model(path)  # classes_ and focal parameters come back too
        print(
            f"reloaded: classes {loaded.classes_.tolist()}, identical probabilities "
            f"{np.array_equal(loaded.predict_proba(X_valid), proba)}"
        )


if __name__ == "__main__":
    main()
