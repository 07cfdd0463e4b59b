"""CUDA kernels: the formulas of :mod:`gbfocal._formulas` over rows, on the device.

The twin of :mod:`gbfocal._cpu`, with the same names (``row_terms``,
``gradient_hessian_row``, ``loss_row``, ``not_finite``,
``gradient_hessian_kernel``, ``loss_kernel``) and the same scalar functions,
here compiled with ``numba.cuda.jit(device=True)``. What differs is only what
the targets do best:

* **Transcendentals from libdevice.** ``math.exp``/``math.log1p`` compile to
  CUDA's own vectorised routines, so the CPU polynomials are not needed; the
  two targets agree to a few ulp (tests compare them to 1e-12).
* **One row per thread, grid-stride.** Every kernel loops
  ``for i in range(grid(1), n, gridsize(1))``, so a launch of any size covers
  every row once and :mod:`gbfocal._cuda` picks the grid.
* **Non-finite margins are counted, not trapped.** Each thread counts its
  NaN/inf margins and adds them to ``bad[0]`` with one atomic (only when it
  saw one); the host reads the count back and raises the CPU path's error.

No fast-math: IEEE semantics keep NaN detection and the tails exact.

This module imports ``numba.cuda`` at the top: :mod:`gbfocal._cuda` imports
it only once a CUDA device (or the simulator, ``NUMBA_ENABLE_CUDASIM=1``) is
known to be usable. Under the simulator the kernel bodies run as plain Python
with the same ``math`` calls, which is how CI checks them without a GPU.
"""

from __future__ import annotations

import math

from numba import cuda

from gbfocal import _formulas as F

device = cuda.jit(device=True)

logistic_parts = device(F.logistic_parts)
integer_power = device(F.integer_power)
focal_value = device(F.focal_value)
focal_grad_t = device(F.focal_grad_t)
focal_hess_t = device(F.focal_hess_t)


@device
def row_terms(y, z, alpha, gamma, gamma_int):
    """Everything a kernel needs for one row: s, α_t, p_t, 1-p_t, -log p_t, (1-p_t)^γ."""
    pos = y > 0.5
    s = 1.0 if pos else -1.0
    alpha_t = alpha if pos else 1.0 - alpha
    t = s * z
    e = math.exp(-abs(t))
    p, q, nlp, nlq = logistic_parts(t, e, math.log1p(e), 1.0 / (1.0 + e))
    qg = integer_power(q, gamma_int) if gamma_int >= 0 else math.exp(-gamma * nlq)
    return s, alpha_t, p, q, nlp, qg


@device
def gradient_hessian_row(y, z, alpha, gamma, gamma_int, policy):
    """(dFL/dz, d²FL/dz² under ``policy``) for one row; the margin clamped where both saturate."""
    z = min(max(z, -F.Z_SATURATED), F.Z_SATURATED)
    s, alpha_t, p, q, nlp, qg = row_terms(y, z, alpha, gamma, gamma_int)
    g = s * focal_grad_t(alpha_t, gamma, p, q, qg, nlp)
    return g, focal_hess_t(alpha_t, gamma, p, q, qg, nlp, policy)


@device
def loss_row(y, z, alpha, gamma, gamma_int):
    _s, alpha_t, _p, _q, nlp, qg = row_terms(y, z, alpha, gamma, gamma_int)
    return focal_value(alpha_t, qg, nlp)


@device
def not_finite(x):
    return not (abs(x) < math.inf)


# ``weighted`` is a flag rather than "``w`` is empty" (the CPU convention):
# a zero-length device array crosses __cuda_array_interface__ as a null
# pointer, and an unweighted data set passes its labels as ``w``, never read.


@cuda.jit
def gradient_hessian_kernel(y, z, w, weighted, alpha, gamma, gamma_int, policy, grad, hess, bad):
    """grad/hess w.r.t. z for every row; adds the number of non-finite margins to bad[0]."""
    count = 0
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        zi = float(z[i])
        count += not_finite(zi)
        g, h = gradient_hessian_row(y[i], zi, alpha, gamma, gamma_int, policy)
        if weighted:
            g *= w[i]
            h *= w[i]
        grad[i] = g
        hess[i] = h
    if count > 0:
        cuda.atomic.add(bad, 0, count)


@cuda.jit
def loss_kernel(y, z, w, weighted, alpha, gamma, gamma_int, out, bad):
    """Per-row (weighted) focal loss; adds the number of non-finite margins to bad[0]."""
    count = 0
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        zi = float(z[i])
        count += not_finite(zi)
        v = loss_row(y[i], zi, alpha, gamma, gamma_int)
        out[i] = w[i] * v if weighted else v
    if count > 0:
        cuda.atomic.add(bad, 0, count)
