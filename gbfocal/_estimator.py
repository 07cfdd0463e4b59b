"""The scikit-learn estimators' loss: ``focal_alpha``/``focal_gamma``/``focal_hessian`` and the classes seen in ``fit``.

Every estimator (XGBoost, LightGBM, their Dask twins) builds its loss here,
once its classes are known, exactly as the engines' own classifiers switch
to a softmax objective for more than two classes: two classes give a
binary :class:`~gbfocal.FocalLoss`, three or more a
:class:`~gbfocal.MulticlassFocalLoss`. Errors name the estimator's
parameter.

``focal_alpha`` takes:

* ``None`` (default): binary, 0.25 on ``classes_[1]`` (Lin et al.'s value
  with γ = 2); multiclass, weight 1 for every class.
* a float (binary only): the weight of ``classes_[1]``; ``classes_[0]``
  gets ``1 - alpha``.
* a sequence of one weight per class, in ``classes_`` order.
* a mapping ``{label: weight}`` naming every class (so a binary model's
  weights never depend on which label sorts last).
* ``"balanced"``: inverse class frequency of the training labels, weighted
  by ``sample_weight``: ``w_k = W / (K W_k)`` (scikit-learn's
  ``class_weight="balanced"`` convention, so Σ_k W_k w_k = W).

Per-class weights of a binary problem become ``alpha = w_1 / (w_0 + w_1)``:
the binary focal loss has one weight ``α`` and ``1 - α``, so only the ratio
of the two weights is kept (their common scale would only interact with the
engine's L2 regularisation and ``min_child_weight``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gbfocal import _validation as V
from gbfocal._loss import HESSIAN_POLICIES, FocalLoss
from gbfocal._multiclass import MULTICLASS_HESSIAN_POLICIES, MulticlassFocalLoss

#: What ``focal_alpha=None`` means for a binary estimator.
BINARY_DEFAULT_ALPHA = 0.25

Loss = FocalLoss | MulticlassFocalLoss


def class_totals(y_codes: np.ndarray, sample_weight: np.ndarray | None, n_classes: int) -> np.ndarray:
    """``W_k``, the (weighted) row count of each class code 0..K-1, shape ``(K,)``."""
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    return np.bincount(np.asarray(y_codes, dtype=np.int64), weights=w, minlength=n_classes).astype(np.float64)


def class_weights(
    focal_alpha: object, classes: np.ndarray, totals: np.ndarray | None = None, name: str = "focal_alpha"
) -> tuple[float, ...] | None:
    """Per-class weights in ``classes`` order from ``focal_alpha`` (``None`` stays ``None``).

    ``totals`` (the class weight totals ``W_k``) are needed for ``"balanced"``
    only. A float is refused here: it is a binary-only form.
    """
    n = len(classes)
    if focal_alpha is None:
        return None
    if isinstance(focal_alpha, str):
        if focal_alpha != "balanced":
            raise ValueError(f"{name} must be None, a float, a sequence, a mapping or 'balanced', got {focal_alpha!r}")
        if totals is None:
            raise ValueError(f"{name}='balanced' needs the training labels (it is resolved in fit)")
        totals = np.asarray(totals, dtype=np.float64)
        if (totals <= 0).any():
            empty = [_label_key(classes[i]) for i in np.flatnonzero(totals <= 0)][:5]
            raise ValueError(f"{name}='balanced' needs every class with positive total weight; {empty} have none")
        scale = totals.sum() / n
        return tuple(float(scale / t) for t in totals)
    if isinstance(focal_alpha, Mapping):
        known = {_label_key(c): i for i, c in enumerate(classes)}
        weights: list[float | None] = [None] * n
        for label, value in focal_alpha.items():
            i = known.get(_label_key(label))
            if i is None:
                raise ValueError(
                    f"{name} names the label {label!r}, which is not among the training classes "
                    f"{np.asarray(classes)[:10].tolist()}"
                )
            weights[i] = _positive(value, f"{name}[{label!r}]")
        missing = [_label_key(classes[i]) for i, v in enumerate(weights) if v is None]
        if missing:
            raise ValueError(f"{name} must give every class a weight; missing {missing[:10]}")
        return tuple(weights)  # type: ignore[arg-type]
    if isinstance(focal_alpha, (Sequence, np.ndarray)) and not isinstance(focal_alpha, (str, bytes)):
        values = (
            list(np.asarray(focal_alpha, dtype=object).ravel())
            if isinstance(focal_alpha, np.ndarray)
            else list(focal_alpha)
        )
        if len(values) != n:
            raise ValueError(
                f"{name} has {len(values)} weights but there are {n} classes {np.asarray(classes)[:10].tolist()}; "
                "give one weight per class in classes_ order, or a {label: weight} mapping"
            )
        return tuple(_positive(v, f"{name}[{i}]") for i, v in enumerate(values))
    if isinstance(focal_alpha, numbers.Real) and not isinstance(focal_alpha, bool):
        raise ValueError(
            f"{name}={focal_alpha!r} is a float, which only a binary problem takes (the weight of classes_[1]); "
            f"these data have {n} classes: give one weight per class, a {{label: weight}} mapping, 'balanced' or None"
        )
    raise TypeError(
        f"{name} must be None, a float, a sequence, a mapping or 'balanced', got {type(focal_alpha).__name__}"
    )


def check_focal_params(estimator: Any) -> None:
    """Check ``focal_alpha``/``focal_gamma``/``focal_hessian`` before any data is seen (the forms, not the fit)."""
    alpha = estimator.focal_alpha
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        V.check_alpha(alpha, "focal_alpha")
    elif not (alpha is None or isinstance(alpha, (str, Mapping, Sequence, np.ndarray))):
        raise TypeError(
            f"focal_alpha must be None, a float, a sequence, a mapping or 'balanced', got {type(alpha).__name__}"
        )
    elif isinstance(alpha, str) and alpha != "balanced":
        raise ValueError(f"focal_alpha must be None, a float, a sequence, a mapping or 'balanced', got {alpha!r}")
    V.check_gamma(estimator.focal_gamma, "focal_gamma")
    hessian = estimator.focal_hessian
    if hessian is not None:
        V.check_hessian(hessian, {**HESSIAN_POLICIES, **MULTICLASS_HESSIAN_POLICIES}, "focal_hessian")


def estimator_loss(
    estimator: Any,
    classes: np.ndarray,
    y_codes: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    *,
    totals: np.ndarray | None = None,
) -> Loss:
    """The loss of an estimator's ``focal_*`` parameters for these ``classes`` (sorted, K >= 2).

    ``y_codes`` (class codes 0..K-1 of the training rows) and
    ``sample_weight`` are read for ``focal_alpha="balanced"`` only; so are
    ``totals``, the class weight totals ``W_k`` (K,), which replace them where
    the rows are not at hand (the Dask estimators add them up per partition).
    ``focal_hessian=None`` takes each loss's default policy.
    """
    check_focal_params(estimator)
    classes = np.asarray(classes)
    n = len(classes)
    if n < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n}")
    alpha = estimator.focal_alpha
    gamma = V.check_gamma(estimator.focal_gamma, "focal_gamma")
    hessian = estimator.focal_hessian
    balanced = isinstance(alpha, str) and alpha == "balanced"
    if balanced and totals is None:
        if y_codes is None:
            raise ValueError("focal_alpha='balanced' needs the training labels (it is resolved in fit)")
        totals = class_totals(y_codes, sample_weight, n)
    if n == 2:
        if alpha is None:
            binary_alpha = BINARY_DEFAULT_ALPHA
        elif isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
            binary_alpha = V.check_alpha(alpha, "focal_alpha")
        else:
            w0, w1 = class_weights(alpha, classes, totals)  # type: ignore[misc]
            binary_alpha = w1 / (w0 + w1)
            if not 0.0 < binary_alpha < 1.0:
                raise ValueError(f"focal_alpha gives the class weights {w0!r}, {w1!r}, whose ratio is not usable")
        policy = "positive" if hessian is None else V.check_hessian(hessian, HESSIAN_POLICIES, "focal_hessian")
        return FocalLoss(binary_alpha, gamma, hessian=policy)
    weights = class_weights(alpha, classes, totals)
    policy = "clamp" if hessian is None else V.check_hessian(hessian, MULTICLASS_HESSIAN_POLICIES, "focal_hessian")
    return MulticlassFocalLoss(weights, gamma, hessian=policy)


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive finite number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _label_key(label: object) -> object:
    """Labels compare as the engines' classes_ do: NumPy scalars as their Python values."""
    return label.item() if isinstance(label, np.generic) else label
