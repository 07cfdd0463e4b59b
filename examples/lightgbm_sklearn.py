"""LGBMFocalClassifier: a scikit-learn classifier trained with focal loss.

Labels can be anything; ``focal_alpha`` weighs ``classes_[1]``, the class
scikit-learn sorts last ("rare" here). ``predict_proba`` returns the class
posterior recovered from the focal margins (``focal_proba="sigmoid"`` gives
σ(margin) instead), and the fitted ``booster_`` is self-contained.
"""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
from sklearn.datasets import make_classification
from sklearn.metrics import average_precision_score, make_scorer
from sklearn.model_selection import GridSearchCV, train_test_split

import gbfocal.lightgbm as gfl
from gbfocal import LGBMFocalClassifier

X, y = make_classification(n_samples=5_000, n_features=10, weights=[0.95], class_sep=0.8, random_state=0)
labels = np.where(y == 1, "rare", "normal")
X_train, X_test, y_train, y_test = train_test_split(X, labels, test_size=0.25, stratify=labels, random_state=0)
X_fit, X_valid, y_fit, y_valid = train_test_split(X_train, y_train, test_size=0.2, stratify=y_train, random_state=0)

clf = LGBMFocalClassifier(
    focal_alpha=0.25, focal_gamma=2.0, n_estimators=300, learning_rate=0.1, num_leaves=15, n_jobs=1, verbosity=-1
)
clf.fit(X_fit, y_fit, eval_set=[(X_valid, y_valid)], callbacks=[lgb.early_stopping(20, verbose=False)])
proba = clf.predict_proba(X_test)  # (n, 2), columns in the order of clf.classes_
rare = list(clf.classes_).index("rare")
print(f"classes {clf.classes_.tolist()}, best iteration {clf.best_iteration_}")
print(f"validation focal loss {clf.best_score_['valid_0']['focal']:.5f}")
print(f"test average precision {average_precision_score(y_test == 'rare', proba[:, rare]):.3f}")
print(f"predictions: {dict(zip(*np.unique(clf.predict(X_test), return_counts=True), strict=True))}")

# Pickling restores predict_proba exactly. The booster's own model file (booster_.save_model) gives raw
# margins from plain LightGBM, and P(classes_[1]) through gfl.predict_posterior, which reads the loss from it.
assert np.array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X_test), proba)
booster = lgb.Booster(model_str=clf.booster_.model_to_string())
assert np.array_equal(booster.predict(X_test), clf.predict(X_test, raw_score=True))
assert np.allclose(gfl.predict_posterior(None, booster, X_test), proba[:, 1], rtol=1e-12, atol=0)

# The focal parameters are ordinary hyper-parameters.
rare_ap = make_scorer(average_precision_score, response_method="predict_proba", pos_label="rare")
search = GridSearchCV(
    LGBMFocalClassifier(n_estimators=50, learning_rate=0.1, num_leaves=15, n_jobs=1, verbosity=-1),
    {"focal_gamma": [0.0, 2.0]},
    scoring=rare_ap,
    cv=3,
).fit(X_train, y_train)
print(f"grid search: best {search.best_params_}, average precision {search.best_score_:.3f}")
