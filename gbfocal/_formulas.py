"""The α-balanced focal loss, its derivatives and its class posterior, per row.

This module is the single home of the math. Every function here is plain
scalar arithmetic on floats: no NumPy, and in the per-round functions no
``math`` and no branches the compiler cannot turn into selects. The CPU kernels (:mod:`gbfocal._cpu`) compile these
functions with ``numba.njit`` and the CUDA kernels (:mod:`gbfocal._cuda_kernels`) with
``numba.cuda.jit(device=True)``, so both targets run the same formulas. The
transcendental pieces (``exp``, ``log1p``) are target-specific and are passed
in already evaluated.

Notation (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
arXiv:1708.02002)::

    z      raw margin (what the booster adds trees to), p = σ(z)
    y      label in {0, 1};   s = 2y - 1
    t      = s·z, the margin of the true class, so p_t = σ(t)
    α_t    = α if y = 1 else 1 - α
    FL     = -α_t (1 - p_t)^γ log p_t

With ``p = p_t = σ(t)``, ``q = 1 - p_t = σ(-t)`` and ``ℓ = -log p_t =
softplus(-t)`` (so ``dp/dt = pq``, ``dq/dt = -pq``, ``dℓ/dt = -q``)::

    FL        = α_t q^γ ℓ
    dFL/dt    = -α_t q^γ (γ p ℓ + q)
    d²FL/dt²  =  α_t p q^γ (γ² p ℓ + (1 + 2γ) q - γ q ℓ)

and, because t = s·z with s = ±1, ``dFL/dz = s·dFL/dt`` and
``d²FL/dz² = d²FL/dt²``. For γ = 0 these reduce to α_t times the logistic
loss, ``α_t (p - y)`` and ``α_t p (1 - p)``.

The only negative term of the second derivative is ``-γ q ℓ``; it dominates
for badly misclassified rows (γ = 2: t < -2.79), where the focal loss is
concave. The Hessian policies below decide what the booster sees there.
"""

import math

# Hessian policies (integer codes shared by every kernel).
HESSIAN_EXACT = 0
HESSIAN_POSITIVE = 1
HESSIAN_ABS = 2
HESSIAN_CLIP = 3

#: Margin beyond which gradient and Hessian no longer change in float32 or
#: float64 (σ(±z) has saturated to 0 and 1). Kernels clamp |z| here, which
#: keeps the exact Hessian's ``γ q ℓ`` finite for every finite margin (ℓ ~ |z|
#: would overflow near float32's and float64's largest values).
Z_SATURATED = 1e20

#: Smallest Hessian a non-exact policy returns, before sample weights. XGBoost's
#: own ``binary:logistic`` floors ``p (1 - p)`` at the same value.
HESSIAN_FLOOR = 1e-16


def logistic_parts(t, e, log1p_e, inv_1pe):
    """``p_t``, ``1 - p_t``, ``-log p_t`` and ``-log(1 - p_t)`` from one exponential.

    Inputs: the true-class margin ``t``, ``e = exp(-|t|)``, ``log1p(e)`` and
    ``1 / (1 + e)``. No probability is rounded before a logarithm is taken,
    so all four outputs keep full relative precision for every finite ``t``
    (``-log p_t = max(-t, 0) + log1p(e)``).
    """
    pos = t >= 0.0
    p = inv_1pe if pos else e * inv_1pe
    q = e * inv_1pe if pos else inv_1pe
    nlp = log1p_e + (0.0 if pos else -t)
    nlq = log1p_e + (t if pos else 0.0)
    return p, q, nlp, nlq


def integer_power(q, gamma_int):
    """``q ** gamma_int`` for ``gamma_int`` in 0..4 by multiplication (0**0 = 1)."""
    q2 = q * q
    if gamma_int == 0:
        return 1.0
    if gamma_int == 1:
        return q
    if gamma_int == 2:
        return q2
    if gamma_int == 3:
        return q2 * q
    return q2 * q2


def focal_value(alpha_t, qg, nlp):
    """FL = α_t (1 - p_t)^γ (-log p_t); ``qg`` is ``(1 - p_t)^γ``."""
    return alpha_t * qg * nlp


def focal_grad_t(alpha_t, gamma, p, q, qg, nlp):
    """dFL/dt = -α_t q^γ (γ p ℓ + q). Never positive; both terms are ≥ 0."""
    return -alpha_t * qg * (gamma * p * nlp + q)


def focal_hess_t(alpha_t, gamma, p, q, qg, nlp, policy):
    """d²FL/dt² under a Hessian policy.

    ``exact``: α_t p q^γ (γ² p ℓ + (1 + 2γ) q - γ q ℓ), negative where the
    loss is concave. ``positive``: the same without the one negative term,
    α_t p q^γ (γ² p ℓ + (1 + 2γ) q), which is ≥ the exact value everywhere,
    equal to it for γ = 0 and in the well-classified tail. ``abs``: the
    absolute value of the exact one. ``clip``: the exact one clipped at the
    floor. Every non-exact policy is floored at :data:`HESSIAN_FLOOR`.
    """
    scale = alpha_t * p * qg
    positive = gamma * gamma * p * nlp + (1.0 + 2.0 * gamma) * q
    exact = positive - gamma * q * nlp
    if policy == HESSIAN_EXACT:
        return scale * exact
    if policy == HESSIAN_POSITIVE:
        h = scale * positive
    elif policy == HESSIAN_ABS:
        h = scale * abs(exact)
    else:
        h = scale * exact
    return h if h > HESSIAN_FLOOR else HESSIAN_FLOOR


def focal_hess_t_scale(alpha_t, gamma, p, q, qg, nlp):
    """Sum of the magnitudes of the exact second derivative's terms.

    The exact value cancels where it crosses zero; its rounding error is
    bounded relative to this sum, which is what the tests measure against.
    """
    return alpha_t * p * qg * (gamma * gamma * p * nlp + (1.0 + 2.0 * gamma) * q + gamma * q * nlp)


def log_focal_pull(t, e, log1p_e, alpha_t, gamma):
    """``log(-dFL/dt)``, the log of how hard the loss pulls on the true-class margin.

    -dFL/dt = α_t q^γ (γ p ℓ + q) = α_t q^(γ+1) (1 + γ p ℓ / q), so in logs
    ``log α_t + (γ + 1) log q + log1p(γ p ℓ / q)`` with ``log q = -softplus(t)``.
    ``ℓ / q`` is evaluated without dividing two underflowing numbers: for
    t >= 0 it is ``(1 + e) log1p(e) / e`` (→ 1 as e → 0), for t < 0 it is
    ``(1 + e) ℓ``. Finite for every finite t. Not a hot path: uses ``math``.

    The class posterior behind a focal-trained margin z follows from it: the
    conditional risk ``η FL(z, 1) + (1 - η) FL(z, 0)`` is stationary at z when
    ``η G₁ = (1 - η) G₀`` with ``G₁ = -dFL(z, 1)/dz`` (t = z, α) and
    ``G₀ = dFL(z, 0)/dz`` (t = -z, 1 - α), so
    ``logit η = log G₀ - log G₁`` (Charoenphakdee et al., CVPR 2021); the
    composition is :func:`posterior_logit`. For γ = 0 it is
    ``z + log((1 - α) / α)``, the usual prior correction.
    """
    pos = t >= 0.0
    if pos:
        ratio = (1.0 + e) * (log1p_e / e if e > 0.0 else 1.0)
        p = 1.0 / (1.0 + e)
        log_q = -(log1p_e + t)
    else:
        ratio = (1.0 + e) * (log1p_e - t)
        p = e / (1.0 + e)
        log_q = -log1p_e
    return math.log(alpha_t) + (gamma + 1.0) * log_q + math.log1p(gamma * p * ratio)


def posterior_logit(z, alpha, gamma):
    """logit η = log G₀(z) - log G₁(z) of a finite margin ``z``: see :func:`log_focal_pull`.

    Plain Python on floats (``math``), so it runs as is where a compiled
    kernel would cost more than it saves (a few thousand rows, the
    ``init_score`` search) and compiled inside the CPU posterior kernel.
    """
    e = math.exp(-abs(z))
    log1p_e = math.log1p(e)
    return log_focal_pull(-z, e, log1p_e, 1.0 - alpha, gamma) - log_focal_pull(z, e, log1p_e, alpha, gamma)
