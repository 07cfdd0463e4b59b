"""gbfocal: the α-balanced focal loss as a training objective for gradient-boosted trees.

``FocalLoss`` holds the math (Numba kernels, analytic gradients and Hessians
in logit space); ``gbfocal.xgboost`` and ``gbfocal.lightgbm`` adapt it to the
two engines. Importing this package compiles nothing and imports neither
engine.
"""

from __future__ import annotations

from gbfocal._loss import DEFAULT_HESSIAN, HESSIAN_POLICIES, FocalLoss, PreparedRows

__version__ = "0.1.0"

__all__ = ["DEFAULT_HESSIAN", "HESSIAN_POLICIES", "FocalLoss", "PreparedRows", "__version__"]
