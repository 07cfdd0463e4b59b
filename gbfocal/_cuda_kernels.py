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


# --------------------------------------------------------------------------- multiclass
#
# The softmax focal loss over rows of K margins, one row per thread: the
# scalar functions of :mod:`gbfocal._formulas` that the CPU's blocked kernel
# compiles too. Without per-thread scratch of run-time size, a row's
# exponentials are recomputed in the output loop (cheap on the device).

softmax_target_parts = device(F.softmax_target_parts)
multiclass_curvature = device(F.multiclass_curvature)
multiclass_grad_entry = device(F.multiclass_grad_entry)
multiclass_hess_entry = device(F.multiclass_hess_entry)


@device
def clamped(x, limit):
    return min(max(float(x), -limit), limit)


@device
def multiclass_row_terms(z, i, yi, gamma, gamma_int, limit):
    """(m, k*, u, 1/(1+u), e_y, p_y, 1 - p_y, -log p_y, (1 - p_y)^γ) of row i; margins clamped at ±limit."""
    n_classes = z.shape[1]
    m = clamped(z[i, 0], limit)
    kmax = 0
    for k in range(1, n_classes):
        zk = clamped(z[i, k], limit)
        if zk > m:
            m = zk
            kmax = k
    u = 0.0
    ey = 0.0
    for k in range(n_classes):
        ek = math.exp(clamped(z[i, k], limit) - m)
        if k != kmax:
            u += ek
        if k == yi:
            ey = ek
    inv = 1.0 / (1.0 + u)
    zy = clamped(z[i, yi], limit)
    p, q, nlp = softmax_target_parts(ey, u, inv, math.log1p(u), m - zy, yi == kmax)
    if gamma_int >= 0:
        qg = integer_power(q, gamma_int)
    else:
        qg = math.exp(gamma * math.log(q)) if q > 0.0 else 0.0
    return m, kmax, u, inv, ey, p, q, nlp, qg


@device
def count_row_not_finite(z, i):
    count = 0
    for k in range(z.shape[1]):
        count += not_finite(float(z[i, k]))
    return count


@cuda.jit
def multiclass_gradient_hessian_kernel(y, z, w, weighted, alpha, gamma, gamma_int, policy, grad, hess, bad):
    """grad/hess (n, K) w.r.t. z (n, K); adds the number of non-finite margins to bad[0]."""
    count = 0
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        count += count_row_not_finite(z, i)
        yi = y[i]
        m, kmax, u, inv, ey, p, q, nlp, qg = multiclass_row_terms(z, i, yi, gamma, gamma_int, F.Z_SATURATED)
        c = alpha[yi] * qg
        b = gamma * p * nlp + q
        kappa = multiclass_curvature(gamma, p, q, nlp, policy)
        s_nt = u if yi == kmax else 1.0 + (u - ey)
        inv_snt = 1.0 / s_nt if s_nt > 0.0 else 0.0
        wi = w[i] if weighted else 1.0
        for k in range(z.shape[1]):
            if k == yi:
                rho = 1.0
                sigma = p
            else:
                ek = math.exp(clamped(z[i, k], F.Z_SATURATED) - m)
                rho = -ek * inv_snt
                omp = u * inv if k == kmax else 1.0 - ek * inv
                sigma = -rho * omp
            grad[i, k] = wi * multiclass_grad_entry(c, b, rho)
            hess[i, k] = wi * multiclass_hess_entry(c, kappa, b, rho, sigma, policy)
    if count > 0:
        cuda.atomic.add(bad, 0, count)


@cuda.jit
def multiclass_loss_kernel(y, z, w, weighted, alpha, gamma, gamma_int, out, bad):
    """Per-row (weighted) softmax focal loss; adds the number of non-finite margins to bad[0]."""
    count = 0
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        count += count_row_not_finite(z, i)
        yi = y[i]
        terms = multiclass_row_terms(z, i, yi, gamma, gamma_int, math.inf)
        v = focal_value(alpha[yi], terms[8], terms[7])
        out[i] = w[i] * v if weighted else v
    if count > 0:
        cuda.atomic.add(bad, 0, count)
