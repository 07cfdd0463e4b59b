"""MulticlassFocalLoss on its own, then as a plain XGBoost custom objective.

python examples/multiclass_basics.py
"""

from __future__ import annotations

import numpy as np

from gbfocal import MulticlassFocalLoss


def main() -> None:
    loss = MulticlassFocalLoss(alpha=[1.0, 2.0, 4.0], gamma=2.0)  # one α per class; default Hessian "clamp"
    y = np.array([0, 1, 2, 2])  # class indices 0..K-1
    z = np.array([[3.0, 0.0, -1.0], [2.0, -1.0, 0.5], [0.0, 0.0, 0.0], [800.0, 0.0, -800.0]])  # (n, K) margins

    print(loss)
    print("loss      ", loss.loss(y, z))
    grad, hess = loss.gradient_hessian(y, z)  # both (n, K): gradient and Hessian diagonal
    print("gradient\n", grad)
    print("hessian (always > 0 under the default policy)\n", hess)
    exact = MulticlassFocalLoss([1.0, 2.0, 4.0], 2.0, hessian="exact").gradient_hessian(y, z)[1]
    print("exact diagonal (negative entries where the row is badly misclassified)\n", exact)
    print("posterior (rows sum to 1; softmax(z) is not the posterior under focal loss)\n", loss.posterior(z))

    # The constant margins boosting should start from: log-probabilities whose posterior is the class share.
    labels = np.repeat([0, 1, 2], [900, 90, 10])
    z0 = loss.init_score(labels)
    print("init_score", z0, "posterior", loss.posterior(z0[None, :])[0])
    assert np.allclose(loss.posterior(z0[None, :])[0], [0.9, 0.09, 0.01])

    try:
        import xgboost as xgb
        from sklearn.datasets import load_wine
    except ImportError:
        return
    X, target = load_wine(return_X_y=True)
    loss = MulticlassFocalLoss(gamma=2.0)
    rows = loss.prepared(target, n_classes=3)  # labels checked once, buffers reused every round
    dtrain = xgb.DMatrix(X)
    dtrain.set_base_margin(np.tile(rows.init_score(loss), (len(target), 1)))

    def objective(predt, dmatrix):
        return rows.gradient_hessian(loss, predt.reshape(len(target), 3))

    params = {"num_class": 3, "max_depth": 3, "eta": 0.3, "nthread": 2, "disable_default_eval_metric": 1}
    booster = xgb.train(params, dtrain, 30, obj=objective)
    margins = booster.predict(dtrain, output_margin=True).reshape(len(target), 3)
    print(f"wine, 30 rounds: training focal loss {loss.mean_loss(target, margins):.4f}")
    print("accuracy", (loss.posterior(margins).argmax(axis=1) == target).mean())


if __name__ == "__main__":
    main()
