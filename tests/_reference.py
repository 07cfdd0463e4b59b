"""NumPy reference pieces shared by the kernel tests (not collected: no ``test_`` prefix)."""

from __future__ import annotations

import numpy as np

from gbfocal import _formulas as F


def hessian_term_scale(y, z, alpha, gamma, w=None) -> np.ndarray:
    """Sum of the magnitudes of the exact Hessian's terms, in float64, times ``w``.

    The exact Hessian cancels where it crosses zero, so its rounding error is
    bounded relative to this, not to its value.
    """
    s = 2.0 * np.asarray(y, np.float64) - 1.0
    t = s * np.asarray(z, np.float64)
    nlp, nlq = np.logaddexp(0.0, -t), np.logaddexp(0.0, t)
    p, q = np.exp(-nlp), np.exp(-nlq)
    alpha_t = np.where(s > 0, alpha, 1.0 - alpha)
    scale = F.focal_hess_t_scale(alpha_t, gamma, p, q, np.exp(-gamma * nlq), nlp)
    return scale if w is None else scale * w
