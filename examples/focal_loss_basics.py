"""The FocalLoss object on its own: per-row loss, gradient and Hessian, starting score.

python examples/focal_loss_basics.py
"""

from __future__ import annotations

import numpy as np

from gbfocal import FocalLoss


def main() -> None:
    loss = FocalLoss(alpha=0.25, gamma=2.0)  # the default Hessian policy is "positive"
    y = np.array([1.0, 1.0, 0.0, 0.0])
    z = np.array([-4.0, 3.0, -3.0, 800.0])  # raw margins (logits); any finite size is fine

    print(loss)
    print("loss     ", loss.loss(y, z))
    grad, hess = loss.gradient_hessian(y, z)
    print("gradient ", grad)
    print("hessian  ", hess, "(always > 0 under the default policy)")
    exact = FocalLoss(alpha=0.25, gamma=2.0, hessian="exact").gradient_hessian(y, z)[1]
    print("exact    ", exact, "(negative for the badly misclassified first row)")

    # The constant margin boosting should start from: for 2% positives it is not 0.
    labels = np.r_[np.ones(20), np.zeros(980)]
    z0 = loss.init_score(labels)
    print(f"init_score for 2% positives: {z0:.4f} (probability {1 / (1 + np.exp(-z0)):.4f})")
    assert np.isclose(FocalLoss(0.25, 0.0).init_score(labels), np.log(0.25 * 20 / (0.75 * 980)))

    # float32 margins (what XGBoost hands a custom objective) give float32 outputs.
    g32, _ = loss.gradient_hessian(y, z.astype(np.float32))
    print("float32  ", g32.dtype, g32)


if __name__ == "__main__":
    main()
