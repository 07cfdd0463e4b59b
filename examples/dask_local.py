"""gbfocal on Dask: a 2-worker LocalCluster on this machine, XGBoost and LightGBM, two classes and three.

On a real cluster, replace the LocalCluster by ``Client("tcp://scheduler-host:8786")``
and build the dask arrays from your storage (``dd.read_parquet``...); the rest
is unchanged.
"""

from __future__ import annotations

import importlib.util
import sys

if not all(importlib.util.find_spec(m) for m in ("dask", "distributed", "xgboost", "lightgbm", "sklearn")):
    print("needs the dask, xgboost and lightgbm extras: pip install 'gbfocal[dask,xgboost,lightgbm]'")
    sys.exit(0)

import dask.array as da
import numpy as np
import xgboost as xgb
import xgboost.dask
from distributed import Client, LocalCluster
from sklearn.metrics import average_precision_score

import gbfocal.dask as gfd
from gbfocal import FocalLoss, MulticlassFocalLoss


def main() -> None:
    # Rows are partitioned across workers; labels are chunked exactly like the features.
    rng = np.random.default_rng(0)
    n = 60_000
    X = rng.normal(size=(n, 8))
    y = (X[:, 0] - 0.5 * X[:, 1] ** 2 + rng.normal(size=n) > 2.0).astype(np.float64)  # ~5% positives
    labels = np.where(y > 0, "yes", "no")  # classes_ sorted: "yes" is classes_[1], the positive class

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        dX = da.from_array(X, chunks=(15_000, -1))
        dy = da.from_array(y, chunks=15_000)
        loss = FocalLoss(alpha=0.25, gamma=2.0)

        # The starting score is computed per partition on the workers: labels never reach the client.
        print(f"focal start: distributed {gfd.init_score(loss, dy):.6f}, in memory {loss.init_score(y):.6f}")

        # Native XGBoost: xgboost.dask.train with gbfocal's objective, metric and base_score.
        dtrain = xgb.dask.DaskDMatrix(client, dX, dy)
        out = gfd.xgboost_train(
            client,
            loss,
            {"tree_method": "hist", "max_depth": 4},
            dtrain,
            30,
            evals=[(dtrain, "train")],
            verbose_eval=False,
        )
        print(f"xgboost.dask: train focal loss {out['history']['train']['focal'][-1]:.5f} after 30 rounds")

        # scikit-learn style, any two labels; predictions are dask arrays. client= is optional (default client).
        dlabels = da.from_array(labels, chunks=15_000)
        for model in (
            gfd.DaskXGBFocalClassifier(client=client, n_estimators=30, max_depth=4, tree_method="hist"),
            gfd.DaskLGBMFocalClassifier(client=client, n_estimators=30, num_leaves=15, verbose=-1),
        ):
            model.fit(dX, dlabels)
            proba = model.predict_proba(dX).compute()
            predicted = model.predict(dX).compute()
            ap = average_precision_score(labels == "yes", proba[:, 1])
            print(
                f"{type(model).__name__}: classes {model.classes_.tolist()}, rows sum to 1: "
                f"{np.allclose(proba.sum(axis=1), 1.0)}, predicted 'yes' {np.mean(predicted == 'yes'):.3f}, "
                f"average precision {ap:.3f}"
            )

        # Three classes, one rare: the estimators switch to MulticlassFocalLoss, as XGBClassifier/LGBMClassifier
        # switch to softmax. focal_alpha="balanced" weighs each class by W / (K W_k) from class totals summed per
        # partition on the workers; the start (K margins) comes from the same totals.
        score = X[:, 0] - 0.5 * X[:, 1] ** 2 + rng.normal(size=n)
        codes = np.searchsorted(np.quantile(score, [0.7, 0.95]), score)  # 70 %, 25 %, 5 %
        severity = np.array(["minor", "serious", "fatal"])[codes]
        start = gfd.init_score(MulticlassFocalLoss(), da.from_array(codes.astype(np.float64), chunks=15_000))
        print(f"multiclass focal start (K margins, distributed): {np.round(start, 4).tolist()}")
        dseverity = da.from_array(severity, chunks=15_000)
        for model in (
            gfd.DaskXGBFocalClassifier(n_estimators=20, max_depth=4, tree_method="hist", focal_alpha="balanced"),
            gfd.DaskLGBMFocalClassifier(n_estimators=20, num_leaves=15, verbose=-1, focal_alpha="balanced"),
        ):
            model.fit(dX, dseverity)
            proba = model.predict_proba(dX).compute()  # (n, 3), columns as classes_, the recovered posterior
            fatal = list(model.classes_).index("fatal")
            ap = average_precision_score(severity == "fatal", proba[:, fatal])
            print(
                f"{type(model).__name__}: classes {model.classes_.tolist()}, proba {proba.shape}, "
                f"class weights {[round(a, 2) for a in model.to_local()._focal_loss.alpha]}, "
                f"average precision of 'fatal' {ap:.3f}"
            )


if __name__ == "__main__":
    main()
