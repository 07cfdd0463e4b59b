"""The focal gradient and Hessian in plain NumPy: the baseline every benchmark compares against.

The same formulas as gbfocal (stable log-sigmoid, the default "positive"
Hessian policy), written as a careful NumPy user would: one array
expression per term, temporaries allocated every call.
"""

from __future__ import annotations

import numpy as np


def numpy_gradient_hessian(y, z, alpha: float, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """(gradient, Hessian) w.r.t. the raw margins ``z`` for 0/1 labels ``y``; float64, shape ``(n,)``."""
    y = np.asarray(y, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    s = 2.0 * y - 1.0
    t = s * z
    alpha_t = np.where(y == 1, alpha, 1.0 - alpha)
    p = 1.0 / (1.0 + np.exp(-t))
    q = 1.0 / (1.0 + np.exp(t))
    nlp = np.logaddexp(0.0, -t)
    qg = q**gamma
    grad = -s * alpha_t * qg * (gamma * p * nlp + q)
    hess = alpha_t * p * qg * (gamma * gamma * p * nlp + (1.0 + 2.0 * gamma) * q)
    return grad, np.maximum(hess, 1e-16)
