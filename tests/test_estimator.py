"""focal_alpha / focal_gamma / focal_hessian of the scikit-learn estimators, resolved for the classes seen in fit."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gbfocal import FocalLoss, MulticlassFocalLoss
from gbfocal._estimator import estimator_loss


def est(alpha=None, gamma=2.0, hessian=None):
    return SimpleNamespace(focal_alpha=alpha, focal_gamma=gamma, focal_hessian=hessian)


BIN = np.array(["fraud", "ok"])
TRI = np.array([0, 1, 2])


def test_defaults_follow_the_number_of_classes():
    assert estimator_loss(est(), BIN) == FocalLoss(0.25, 2.0, hessian="positive")
    assert estimator_loss(est(), TRI) == MulticlassFocalLoss(None, 2.0, hessian="clamp")


def test_binary_forms():
    assert estimator_loss(est(0.6), BIN).alpha == 0.6
    # a mapping names the classes: no dependence on which label sorts last
    assert estimator_loss(est({"fraud": 3.0, "ok": 1.0}), BIN).alpha == pytest.approx(0.25)
    assert estimator_loss(est([1.0, 3.0]), BIN).alpha == pytest.approx(0.75)
    y = np.array([0] * 90 + [1] * 10)  # 'fraud' common, 'ok' rare: balanced weighs the rare one up
    assert estimator_loss(est("balanced"), BIN, y).alpha == pytest.approx(0.9)
    w = np.where(y == 1, 9.0, 1.0)  # weighted totals equal: balanced is 1/2
    assert estimator_loss(est("balanced"), BIN, y, w).alpha == pytest.approx(0.5)


def test_multiclass_forms():
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    assert estimator_loss(est([1, 2, 3]), TRI).alpha == (1.0, 2.0, 3.0)
    assert estimator_loss(est({2: 5.0, 0: 1.0, 1: 1.0}), TRI).alpha == (1.0, 1.0, 5.0)
    alpha = np.array(estimator_loss(est("balanced"), TRI, y).alpha)
    np.testing.assert_allclose(alpha, 100 / (3 * np.array([60, 30, 10])))
    totals = np.bincount(y)
    assert (alpha * totals).sum() == pytest.approx(100)  # Σ_k W_k w_k = W


@pytest.mark.parametrize(
    ("alpha", "classes", "error", "match"),
    [
        (0.25, TRI, ValueError, "only a binary problem takes"),
        ({3: 1.0, 0: 1.0, 1: 1.0, 2: 1.0}, TRI, ValueError, "names the label 3"),
        ({0: 1.0, 1: 1.0}, TRI, ValueError, r"missing \[2\]"),
        ([1.0, 2.0], TRI, ValueError, "has 2 weights but there are 3 classes"),
        ([1.0, -2.0, 1.0], TRI, ValueError, r"focal_alpha\[1\] must be a positive"),
        ("inverse", TRI, ValueError, "'balanced'"),
        (1.5, BIN, ValueError, "focal_alpha must lie strictly between 0 and 1"),
        (object(), BIN, TypeError, "focal_alpha must be None"),
    ],
)
def test_bad_alpha_is_refused_naming_focal_alpha(alpha, classes, error, match):
    with pytest.raises(error, match=match):
        estimator_loss(est(alpha), classes, np.array([0, 1, 2]) % len(classes))


def test_balanced_needs_every_class_and_the_labels():
    with pytest.raises(ValueError, match="positive total weight"):
        estimator_loss(est("balanced"), TRI, np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="needs the training labels"):
        estimator_loss(est("balanced"), TRI)


def test_hessian_policy_per_loss():
    assert estimator_loss(est(hessian="clip"), TRI).hessian == "clip"
    with pytest.raises(ValueError, match="focal_hessian must be one of"):
        estimator_loss(est(hessian="clamp"), BIN)
    with pytest.raises(ValueError, match="focal_hessian must be one of"):
        estimator_loss(est(hessian="nope"), TRI)
