"""gbfocal: the α-balanced focal loss as a training objective for gradient-boosted trees.

``FocalLoss`` holds the math (Numba kernels, analytic gradients and Hessians
in logit space); ``gbfocal.xgboost`` and ``gbfocal.lightgbm`` adapt it to the
two engines. Importing this package compiles nothing and imports neither
engine: the estimators below load their engine on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gbfocal._loss import DEFAULT_HESSIAN, HESSIAN_POLICIES, FocalLoss, PreparedRows, loss_from_dict
from gbfocal._multiclass import (
    MULTICLASS_DEFAULT_HESSIAN,
    MULTICLASS_HESSIAN_POLICIES,
    MulticlassFocalLoss,
    MulticlassPreparedRows,
)
from gbfocal._multilabel import MultilabelFocalLoss, MultilabelPreparedRows

if TYPE_CHECKING:
    from gbfocal.dask import DaskLGBMFocalClassifier, DaskXGBFocalClassifier
    from gbfocal.lightgbm import LGBMFocalClassifier
    from gbfocal.xgboost import XGBFocalClassifier

__version__ = "0.1.0"

_LAZY = {
    "XGBFocalClassifier": "gbfocal.xgboost",
    "LGBMFocalClassifier": "gbfocal.lightgbm",
    "DaskXGBFocalClassifier": "gbfocal.dask",
    "DaskLGBMFocalClassifier": "gbfocal.dask",
}

__all__ = [
    "DEFAULT_HESSIAN",
    "HESSIAN_POLICIES",
    "MULTICLASS_DEFAULT_HESSIAN",
    "MULTICLASS_HESSIAN_POLICIES",
    "DaskLGBMFocalClassifier",
    "DaskXGBFocalClassifier",
    "FocalLoss",
    "LGBMFocalClassifier",
    "MulticlassFocalLoss",
    "MulticlassPreparedRows",
    "MultilabelFocalLoss",
    "MultilabelPreparedRows",
    "PreparedRows",
    "XGBFocalClassifier",
    "__version__",
    "loss_from_dict",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gbfocal' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
