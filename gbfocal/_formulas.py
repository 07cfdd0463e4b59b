"""The α-balanced focal loss, its derivatives and its class posterior, per row.

This module is the single home of the math. Every function here is plain
scalar arithmetic on floats: no NumPy, and in the per-round functions no
branches the compiler cannot turn into selects. The CPU kernels (:mod:`gbfocal._cpu`) compile these
functions with ``numba.njit`` and the CUDA kernels (:mod:`gbfocal._cuda_kernels`) with
``numba.cuda.jit(device=True)``, so both targets run the same formulas; and
:mod:`gbfocal._loss` runs them as they are, in Python, where a compilation
would cost more than it saves (small data sets, the first rounds). The two
transcendental primitives of a row, :func:`exp_neg` and :func:`log1p_unit`,
are module globals: here they call ``math``, and a compiled copy of the row
functions (``_cpu._rebound``) finds the target's own primitives under the
same names (vectorisable polynomials on the CPU).

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


def exp_neg(a):
    """``exp(-a)`` for ``a >= 0`` (Python: ``math.exp``; compiled: ``_cpu.exp_neg``, a polynomial)."""
    return math.exp(-a)


def log1p_unit(e, inv_2pe):
    """``log1p(e)`` for ``e`` in [0, 1]; ``inv_2pe = 1 / (2 + e)`` feeds the compiled series (``_cpu.log1p_unit``)."""
    return math.log1p(e)


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


def row_terms(y, z, alpha, gamma, gamma_int):
    """Everything a row needs: s, α_t, p_t, 1-p_t, -log p_t, (1-p_t)^γ, from one exponential.

    ``gamma_int`` is γ when γ is an integer in 0..4 (q^γ by multiplication),
    else -1 (q^γ = exp(-γ (-log q))).
    """
    pos = y > 0.5
    s = 1.0 if pos else -1.0
    alpha_t = alpha if pos else 1.0 - alpha
    t = s * z
    e = exp_neg(abs(t))
    # one division for both reciprocals: 1/(1+e) and 1/(2+e)
    d = 1.0 / ((1.0 + e) * (2.0 + e))
    inv_1pe = (2.0 + e) * d
    inv_2pe = (1.0 + e) * d
    p, q, nlp, nlq = logistic_parts(t, e, log1p_unit(e, inv_2pe), inv_1pe)
    # both candidates, then a select: this form lets LLVM unswitch the loop on
    # gamma_int (a conditional call does not, and costs 2x; measured)
    q_int = integer_power(q, gamma_int)
    q_exp = exp_neg(gamma * nlq)
    qg = q_int if gamma_int >= 0 else q_exp
    return s, alpha_t, p, q, nlp, qg


def gradient_hessian_row(y, z, alpha, gamma, gamma_int, policy):
    """(dFL/dz, d²FL/dz² under ``policy``) for one row.

    Both are constant beyond |z| = :data:`Z_SATURATED` (σ has saturated in
    either precision), so the margin is clamped there: that keeps the exact
    Hessian's ``γ q ℓ`` finite for margins up to the float type's maximum.
    """
    z = min(max(z, -Z_SATURATED), Z_SATURATED)
    s, alpha_t, p, q, nlp, qg = row_terms(y, z, alpha, gamma, gamma_int)
    g = s * focal_grad_t(alpha_t, gamma, p, q, qg, nlp)
    return g, focal_hess_t(alpha_t, gamma, p, q, qg, nlp, policy)


def loss_row(y, z, alpha, gamma, gamma_int):
    """FL of one row (margin not clamped: an infinite margin gives its limit or NaN, flagged by the caller)."""
    _s, alpha_t, _p, _q, nlp, qg = row_terms(y, z, alpha, gamma, gamma_int)
    return focal_value(alpha_t, qg, nlp)


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


# --------------------------------------------------------------------------- multiclass
#
# Softmax focal loss (the multiclass form of Lin et al. 2017). Notation::
#
#     z ∈ R^K raw margins, p = softmax(z), y ∈ {0, …, K-1}
#     p = p_y,  q = 1 - p_y = Σ_{k≠y} p_k,  ℓ = -log p_y = logsumexp(z) - z_y
#     FL = α_y q^γ ℓ = α_y f(p_y),  f(p) = -(1 - p)^γ log p
#
# With A(p) = α_y p f'(p) = -α_y q^(γ-1) (γ p ℓ + q) ≤ 0 and dp_y/dz_j = p_y (δ_jy - p_j)::
#
#     dFL/dz_j    = A (δ_jy - p_j)
#     d²FL/dz_j²  = A'(p) p (δ_jy - p_j)² - A p_j (1 - p_j)
#     p A'(p)     = α_y γ p q^(γ-2) (γ p ℓ + 2 q - ℓ)
#
# Everything is written with c = α_y q^γ, b = γ p ℓ + q (so -A q = c b is the
# binary "pull" -focal_grad_t) and, per class j, ρ_j = (δ_jy - p_j) / q
# (ρ_y = 1, ρ_j = -p_j / q otherwise) and σ_j = p_j (1 - p_j) / q (σ_y = p)::
#
#     dFL/dz_j    = -c b ρ_j
#     d²FL/dz_j²  =  c (κ ρ_j² + b σ_j),   κ = γ p (γ p ℓ + 2 q - ℓ) = p A' q² / c
#
# p_j / q is a softmax over the non-target classes (≤ 1), so no q^(γ-1) or
# q^(γ-2) is ever formed: every term stays finite as q → 0 for any γ ≥ 0. For
# j = y these are exactly the binary dFL/dt and d²FL/dt² (focal_grad_t,
# focal_hess_t with t = z_y - logsumexp_{k≠y} z_k): the binary loss is the
# K = 2 case. The full Hessian is ``A' p v vᵀ - A (diag p - p pᵀ)`` with
# v = e_y - p: the second term is positive semi-definite (-A ≥ 0), the first
# is too exactly where A' ≥ 0 (κ ≥ 0). κ's only negative term is -γ p ℓ.

#: Multiclass only: A' clamped at 0 (κ → max(κ, 0)).
HESSIAN_CLAMP = 4

#: 2**64: Σ_{k≠y} e_k and each e_k are multiplied by it before ρ_j = -e_j / Σ_{k≠y} e_k is
#: formed, so the reciprocal stays finite where the sum is subnormal (the target leads every
#: other margin by 709-745, e.g. margins (0, 0, 720) with y = 2). A power of two: exact.
NONTARGET_SCALE = 18446744073709551616.0


def softmax_target_parts(e_y, u, inv_1pu, log1p_u, gap, y_is_max):
    """``p_y``, ``1 - p_y`` and ``-log p_y`` of one row, without cancellation.

    Inputs, with m = max_k z_k and k* the first class attaining it:
    ``e_y = exp(z_y - m)``, ``u = Σ_{k≠k*} exp(z_k - m)`` (a sum of
    non-negative terms), ``1 / (1 + u)``, ``log1p(u)``, ``gap = m - z_y ≥ 0``
    and whether y = k*. Then p_y = e_y / (1 + u) and -log p_y = gap +
    log1p(u) (no logarithm of a rounded probability). 1 - p_y is
    ``u / (1 + u)`` when y = k*; otherwise p_y ≤ p_k* gives p_y ≤ 1/2, so
    ``1 - p_y`` is computed to full relative precision by subtraction.
    """
    p = e_y * inv_1pu
    q = u * inv_1pu if y_is_max else 1.0 - p
    nlp = gap + log1p_u
    return p, q, nlp


def multiclass_curvature(gamma, p, q, nlp, policy):
    """κ = p A'(p) q² / c = γ p (γ p ℓ + 2 q - ℓ) under a Hessian policy.

    ``positive`` drops its one negative term -γ p ℓ; ``clamp`` is max(κ, 0)
    (A' clamped at 0); both keep the full Hessian positive semi-definite.
    Every other policy uses the exact κ.
    """
    positive = gamma * p * (gamma * p * nlp + 2.0 * q)
    exact = positive - gamma * p * nlp
    if policy == HESSIAN_POSITIVE:
        return positive
    if policy == HESSIAN_CLAMP:
        return exact if exact > 0.0 else 0.0
    return exact


def multiclass_grad_entry(c, b, rho):
    """dFL/dz_j = -c b ρ_j (ρ_y = 1; ρ_j = -p_j / (1 - p_y) for j ≠ y)."""
    return -c * b * rho


def multiclass_hess_entry(c, kappa, b, rho, sigma, policy):
    """d²FL/dz_j² = c (κ ρ_j² + b σ_j) under a Hessian policy.

    ``kappa`` comes from :func:`multiclass_curvature` for the same policy;
    ``sigma`` is p_y for j = y and ``p_j (1 - p_j) / (1 - p_y)`` otherwise.
    ``abs`` takes |exact|, ``clip`` max(exact, floor); every non-exact policy
    is floored at :data:`HESSIAN_FLOOR`.
    """
    h = c * (kappa * rho * rho + b * sigma)
    if policy == HESSIAN_EXACT:
        return h
    if policy == HESSIAN_ABS:
        h = abs(h)
    return h if h > HESSIAN_FLOOR else HESSIAN_FLOOR


def multiclass_hess_scale(c, gamma, p, q, nlp, rho, sigma):
    """Sum of the magnitudes of the exact d²FL/dz_j²'s terms (what its rounding error is bounded by)."""
    return c * (gamma * p * (gamma * p * nlp + 2.0 * q + nlp) * rho * rho + (gamma * p * nlp + q) * sigma)


def log_class_pull(log_alpha, gamma, p, log_q, nlp, nlp_over_q):
    """``log(α_k |f'(p_k)|)``: how hard the loss of label k pulls on its probability.

    |f'(p)| = (1 - p)^γ / p - γ (1 - p)^(γ-1) log p = q^γ e^ℓ (1 + γ p ℓ / q),
    so in logs ``log α + γ log q + ℓ + log1p(γ p ℓ / q)``, with
    ``nlp_over_q = ℓ / q`` (→ 1 as q → 0) passed in so that no two
    underflowing numbers are divided here. Finite for every finite margin.

    The class posterior behind a focal-trained margin follows from it: the
    conditional risk Σ_k η_k α_k f(p_k(z)) is stationary where
    η_j α_j f'(p_j) is the same for every class j, so
    η_k ∝ 1 / (α_k |f'(p_k)|), i.e. ``log η = -log_class_pull`` normalised.
    Not a hot path: uses ``math``.
    """
    return log_alpha + gamma * log_q + nlp + math.log1p(gamma * p * nlp_over_q)


# --------------------------------------------------------------------------- multiclass rows in Python
#
# One row at a time in plain Python (``math``), for where a compiled kernel
# would cost more than it saves (small data sets, the first rounds; see
# ``gbfocal._loss.PythonRowBudget``). Each mirrors a kernel of gbfocal._cpu
# step for step (same clamping, same sums in the same order, same floors), so
# the two agree to a few ulp; the kernels only differ in their exp/log
# primitives. ``z`` is one row's K margins as a sequence of Python floats,
# already checked finite by the caller.


def multiclass_row_terms(z, y, alpha_y, gamma, gamma_int, bound):
    """(e, k*, u, 1/(1+u), p_y, 1 - p_y, -log p_y, (1 - p_y)^γ) of one row, margins clamped to ±``bound``.

    ``e[k] = exp(z_k - m)`` with m = max_k z_k attained first at k*, and
    ``u = Σ_{k≠k*} e[k]`` summed in class order (``_cpu.softmax_row``); then
    :func:`softmax_target_parts` and ``q^γ`` as ``_cpu.multiclass_target``:
    by multiplication for an integer γ in 0..4, else ``exp(γ log q)`` (0 at q = 0).
    """
    zc = [min(max(zk, -bound), bound) for zk in z]
    m = zc[0]
    kmax = 0
    for k in range(1, len(zc)):
        if zc[k] > m:
            m = zc[k]
            kmax = k
    e = [math.exp(zk - m) for zk in zc]  # exp(-(m - z_k)): the same rounding, z_k - m = -(m - z_k) exactly
    u = 0.0
    for k, ek in enumerate(e):
        if k != kmax:
            u += ek
    inv = 1.0 / (1.0 + u)
    p, q, nlp = softmax_target_parts(e[y], u, inv, math.log1p(u), m - zc[y], y == kmax)
    if gamma_int >= 0:
        qg = integer_power(q, gamma_int)
    else:
        qg = math.exp(gamma * math.log(q)) if q > 0.0 else 0.0
    return e, kmax, u, inv, p, q, nlp, qg


def multiclass_gradient_hessian_row(z, y, alpha_y, gamma, gamma_int, policy):
    """(gradient list, Hessian-diagonal list), K entries each, of one unweighted row under ``policy``.

    As ``_cpu.multiclass_gradient_hessian_kernel``: margins clamped at
    ±:data:`Z_SATURATED`; with c = α_y q^γ, b = γ p ℓ + q, κ from
    :func:`multiclass_curvature` and ``S = Σ_{k≠y} e_k`` (``u`` when y = k*,
    else ``1 + (u - e_y)``: no cancellation), ``ρ_k = -e_k / S`` (0 when S
    underflowed), ``1 - p_k`` as ``u/(1+u)`` for k = k* and ``1 - e_k/(1+u)``
    otherwise, ``σ_k = -ρ_k (1 - p_k)``; gradient ``-c b ρ_k`` (ρ_y = 1),
    Hessian ``c (κ ρ_k² + b σ_k)`` (σ_y = p_y), floored per policy. Sample
    weights multiply both afterwards, as the kernel's do (after the floor).
    """
    e, kmax, u, inv, p, q, nlp, qg = multiclass_row_terms(z, y, alpha_y, gamma, gamma_int, Z_SATURATED)
    c = alpha_y * qg
    b = gamma * p * nlp + q
    kappa = multiclass_curvature(gamma, p, q, nlp, policy)
    s_nt = (u if y == kmax else 1.0 + (u - e[y])) * NONTARGET_SCALE
    inv_snt = 1.0 / s_nt if s_nt > 0.0 else 0.0
    cb = c * b
    ck = c * kappa
    grad = []
    hess = []
    for k, ek in enumerate(e):
        if k == y:
            grad.append(multiclass_grad_entry(cb, 1.0, 1.0))
            hess.append(multiclass_hess_entry(c, kappa, b, 1.0, p, policy))
            continue
        rho = -(ek * NONTARGET_SCALE) * inv_snt
        omp = u * inv if k == kmax else 1.0 - ek * inv
        grad.append(multiclass_grad_entry(cb, 1.0, rho))
        hess.append(multiclass_hess_entry(1.0, ck, cb, rho, -rho * omp, policy))
    return grad, hess


def multiclass_loss_row(z, y, alpha_y, gamma, gamma_int):
    """FL = α_y (1 - p_y)^γ (-log p_y) of one row, unclamped (as ``_cpu.multiclass_loss_kernel``)."""
    _e, _kmax, _u, _inv, _p, _q, nlp, qg = multiclass_row_terms(z, y, alpha_y, gamma, gamma_int, math.inf)
    return focal_value(alpha_y, qg, nlp)


def multiclass_posterior_row(z, log_alpha, gamma):
    """The K class posteriors η_k ∝ 1 / (α_k |f'(p_k)|) of one row (as ``_cpu.multiclass_posterior_kernel``).

    Margins clamped at ±:data:`Z_SATURATED`; ``u = Σ_{k≠k*} e^{z_k - m}``
    through its logarithm ``log u = (m₂ - m) + log Σ_{k≠k*} e^{z_k - m₂}``
    (m₂ the largest other margin), so 1 - p_k* never underflows; then
    :func:`log_class_pull` per class and a log-sum-exp normalisation.
    """
    zc = [min(max(zk, -Z_SATURATED), Z_SATURATED) for zk in z]
    n_classes = len(zc)
    m = zc[0]
    kmax = 0
    for k in range(n_classes):
        if zc[k] > m:
            m = zc[k]
            kmax = k
    m2 = -math.inf
    for k in range(n_classes):
        if k != kmax:
            m2 = max(m2, zc[k])
    s2 = 0.0
    for k in range(n_classes):
        if k != kmax:
            s2 += math.exp(zc[k] - m2)
    log_u = (m2 - m) + math.log(s2)
    u = math.exp(log_u)
    log1p_u = math.log1p(u)
    a = []
    for k in range(n_classes):
        if k == kmax:
            p = 1.0 / (1.0 + u)
            log_q = log_u - log1p_u
            ratio = log1p_u * (1.0 + u) / u if u > 0.0 else 1.0
            nlp = log1p_u
        else:
            nlp = (m - zc[k]) + log1p_u
            p = math.exp(-nlp)
            log_q = math.log1p(-p)
            ratio = nlp / (1.0 - p)  # p <= 1/2
        a.append(-log_class_pull(log_alpha[k], gamma, p, log_q, nlp, ratio))
    amax = max(a)
    s = 0.0
    for ak in a:
        s += math.exp(ak - amax)
    log_s = amax + math.log(s)
    return [math.exp(ak - log_s) for ak in a]
