"""Multiclass focal loss with LightGBM: three classes, one of them rare.

Native API: ``gbfocal.lightgbm.train`` with a ``MulticlassFocalLoss`` trains K
trees per round from the focal-optimal start (saved in the first K trees),
reports the focal metric for early stopping, and records the loss in the
model, so ``predict_posterior(None, booster, X)`` works on a model file read
back by plain LightGBM. scikit-learn: ``LGBMFocalClassifier`` switches to the
multiclass loss when ``y`` has more than two classes, as ``LGBMClassifier``
does; ``focal_alpha`` takes per-class weights ({label: weight}, a sequence in
``classes_`` order, or "balanced").
"""

from __future__ import annotations

import pickle
from pathlib import Path
from tempfile import TemporaryDirectory

import lightgbm as lgb
import numpy as np
from scipy.special import softmax
from sklearn.datasets import make_classification
from sklearn.metrics import average_precision_score, log_loss
from sklearn.model_selection import train_test_split

import gbfocal.lightgbm as gfl
from gbfocal import LGBMFocalClassifier, MulticlassFocalLoss

X, y = make_classification(
    n_samples=6_000, n_features=12, n_informative=6, n_classes=3, weights=[0.75, 0.2, 0.05], random_state=0
)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
X_fit, X_valid, y_fit, y_valid = train_test_split(X_train, y_train, test_size=0.2, stratify=y_train, random_state=0)

# ---- native API: labels are class indices 0..K-1; num_class comes from the loss (or the labels)
loss = MulticlassFocalLoss(alpha=[1.0, 1.0, 2.0], gamma=2.0)  # the rare class 2 weighs double
params = {"learning_rate": 0.1, "num_leaves": 15, "num_threads": 1, "verbosity": -1}
booster = gfl.train(
    loss,
    params,
    lgb.Dataset(X_fit, y_fit),
    300,
    valid_sets=[lgb.Dataset(X_valid, y_valid)],
    callbacks=[lgb.early_stopping(20, verbose=False)],
)
print(f"native: {booster.num_model_per_iteration()} trees per round, best iteration {booster.best_iteration}")
print(f"start (focal-optimal constant margins) {np.round(loss.init_score(y_fit), 4).tolist()}")

with TemporaryDirectory() as tmp:
    path = Path(tmp) / "focal_multiclass.txt"
    booster.save_model(path)
    plain = lgb.Booster(model_file=path)  # plain LightGBM: raw margins (n, K), the start included
    margins = plain.predict(X_test, raw_score=True, num_iteration=booster.best_iteration)
    posterior = gfl.predict_posterior(None, plain, X_test, num_iteration=booster.best_iteration)  # loss from the file
assert margins.shape == posterior.shape == (X_test.shape[0], 3)
losses = {"posterior": log_loss(y_test, posterior), "softmax of margins": log_loss(y_test, softmax(margins, axis=1))}
print("native: test log loss " + ", ".join(f"{name} {value:.4f}" for name, value in losses.items()))

# ---- scikit-learn: any labels, per-class focal_alpha
names = np.array(["none", "minor", "severe"])  # class 0 is the common one; classes_ will sort them
labels_fit, labels_valid, labels_test = names[y_fit], names[y_valid], names[y_test]
clf = LGBMFocalClassifier(
    focal_alpha={"none": 1.0, "minor": 1.0, "severe": 2.0},
    focal_gamma=2.0,
    n_estimators=300,
    learning_rate=0.1,
    num_leaves=15,
    n_jobs=1,
    verbosity=-1,
)
clf.fit(X_fit, labels_fit, eval_set=[(X_valid, labels_valid)], callbacks=[lgb.early_stopping(20, verbose=False)])
proba = clf.predict_proba(X_test)  # (n, 3), columns in the order of clf.classes_, the recovered posterior
print(f"classes {clf.classes_.tolist()}, loss {clf.focal_loss()}, best iteration {clf.best_iteration_}")
severe = list(clf.classes_).index("severe")
print(f"test average precision for 'severe': {average_precision_score(labels_test == 'severe', proba[:, severe]):.3f}")
predicted, counts = np.unique(clf.predict(X_test), return_counts=True)
print(f"predictions: {dict(zip(predicted.tolist(), counts.tolist(), strict=True))}")

# Pickling restores predict_proba exactly; the booster alone gives it through predict_posterior.
assert np.array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X_test), proba)
alone = lgb.Booster(model_str=clf.booster_.model_to_string())
assert np.allclose(gfl.predict_posterior(None, alone, X_test), proba, rtol=1e-12, atol=0)

balanced = LGBMFocalClassifier(focal_alpha="balanced", n_estimators=100, num_leaves=15, n_jobs=1, verbosity=-1)
balanced.fit(X_fit, labels_fit)
print(f"focal_alpha='balanced' gives per-class weights {np.round(balanced.focal_loss().alpha, 3).tolist()}")
