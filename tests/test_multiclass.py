"""MulticlassFocalLoss against references that share no code with it.

mpmath (the definition FL = -α_y (1 - p_y)^γ log p_y at 60 digits, and its
derivatives by mpmath's own differentiation), finite differences, the γ = 0
closed forms of softmax cross-entropy, scipy minimisation of the conditional
risk (posterior, init_score), and the binary FocalLoss for K = 2.
"""

from __future__ import annotations

import pickle

import mpmath as mp
import numpy as np
import pytest
from scipy.optimize import minimize

from gbfocal import (
    MULTICLASS_DEFAULT_HESSIAN,
    MULTICLASS_HESSIAN_POLICIES,
    FocalLoss,
    MulticlassFocalLoss,
    MulticlassPreparedRows,
)
from gbfocal._multiclass import as_margin_rows

ALPHA_GAMMA = {
    3: [(None, 0.0), ((0.5, 1.0, 2.0), 2.0), ((1.0, 0.25, 3.0), 0.5)],
    5: [(None, 2.0), ((0.2, 0.4, 1.0, 2.0, 4.0), 1.7), ((1.0,) * 5, 5.0)],
    10: [(None, 0.5), (tuple(np.linspace(0.1, 2.0, 10)), 2.0), (tuple(np.linspace(2.0, 0.5, 10)), 0.0)],
}
SCALES = [1e-8, 1e-3, 1.0, 8.0, 30.0, 1e3, 1e4]


def _rows(k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Labels and margins: random rows at every scale, ties, one dominant class (right and wrong)."""
    zs, ys = [], []
    for scale in SCALES:
        for _ in range(2):
            zs.append(rng.normal(size=k) * scale)
            ys.append(rng.integers(k))
    for big in (40.0, 800.0, 1e4):
        dominant = np.zeros(k)
        dominant[1] = big
        zs += [dominant, dominant, -dominant]
        ys += [1, 0, 1]  # well classified, badly classified, the label pushed down
    tie = np.full(k, 3.0)
    two_max = np.zeros(k)
    two_max[[0, 2]] = 5.0
    zs += [tie, two_max, two_max]
    ys += [k - 1, 2, 0]
    return np.array(ys), np.array(zs)


mp.mp.dps = 60


def _mp_loss(z, y, alpha, gamma):
    """The definition, in mpmath: z is a list of mpf."""
    s = mp.log(mp.fsum(mp.exp(v) for v in z))
    p = mp.exp(z[y] - s)
    a = mp.mpf(1) if alpha is None else mp.mpf(alpha[y])
    q = mp.fsum(mp.exp(v - s) for j, v in enumerate(z) if j != y)  # 1 - p, at 60 digits either way
    return -a * q ** mp.mpf(gamma) * mp.log(p) if q > 0 else mp.mpf(0)


def _mp_taylor(z, y, alpha, gamma, j):
    """(FL, dFL/dz_j, d²FL/dz_j²) by mpmath's numerical differentiation of the definition along z_j.

    Fully independent of any derivation, but only usable where the derivatives
    are not tiny next to FL itself (moderate margins) at this precision.
    """
    zz = [mp.mpf(float(v)) for v in z]

    def along(t):
        w = list(zz)
        w[j] = w[j] + t
        return _mp_loss(w, y, alpha, gamma)

    c0, c1, c2 = mp.taylor(along, 0, 2)
    return c0, c1, 2 * c2


def _mp_chain_rule(z, y, alpha, gamma):
    """FL and, per class j, (dFL/dz_j, d²FL/dz_j², the Hessian's term scale), by the chain rule.

    FL = α_y g(p_y), g(p) = -(1 - p)^γ log p, and dp_y/dz_j = p_y (δ - p_j), so
    dFL/dz_j = α g'(p_y) p_y (δ - p_j) and
    d²FL/dz_j² = α g'' p_y² (δ - p_j)² + α g' p_y ((δ - p_j)² - p_j (1 - p_j)), with
    the textbook g' = γ (1-p)^(γ-1) log p - (1-p)^γ / p and
    g'' = -γ(γ-1)(1-p)^(γ-2) log p + 2γ (1-p)^(γ-1) / p + (1-p)^γ / p².
    Every 1 - p is a sum of the other classes' probabilities, and the working
    precision grows with the margins' spread (the Hessian's terms can cancel
    down to e^-spread of their size), so this holds for margins of any size.
    The term scale (what the kernel's rounding is bounded by) is the sum of the
    magnitudes of the kernel's own split, c (|κ| terms ρ² + b σ).
    """
    spread = float(np.max(z) - np.min(z))
    with mp.workdps(60 + int(spread / 2.3)):
        zz = [mp.mpf(float(v)) for v in z]
        s = mp.log(mp.fsum(mp.exp(v) for v in zz))
        p_all = [mp.exp(v - s) for v in zz]
        one_minus = [mp.fsum(v for k, v in enumerate(p_all) if k != i) for i in range(len(zz))]
        p, q, logp = p_all[y], one_minus[y], zz[y] - s
        a = mp.mpf(1) if alpha is None else mp.mpf(alpha[y])
        g = mp.mpf(gamma)
        if q == 0:
            return mp.mpf(0), [(mp.mpf(0), mp.mpf(0), mp.mpf(0))] * len(zz)
        g1 = g * q ** (g - 1) * logp - q**g / p
        g2 = -g * (g - 1) * q ** (g - 2) * logp + 2 * g * q ** (g - 1) / p + q**g / p**2
        out = []
        for j in range(len(zz)):
            d = q if j == y else -p_all[j]  # δ_jy - p_j
            var = p_all[j] * one_minus[j]
            rho, sigma = d / q, var / q
            scale = a * q**g * (g * p * (-g * p * logp + 2 * q - logp) * rho**2 + (-g * p * logp + q) * sigma)
            out.append((+(a * g1 * p * d), +(a * g2 * p**2 * d**2 + a * g1 * p * (d**2 - var)), +scale))
        return +(-a * q**g * logp), out


@pytest.mark.parametrize("k", sorted(ALPHA_GAMMA))
def test_loss_gradient_exact_hessian_match_mpmath(k):
    rng = np.random.default_rng(k)
    y, z = _rows(k, rng)
    for alpha, gamma in ALPHA_GAMMA[k]:
        loss = MulticlassFocalLoss(alpha, gamma, hessian="exact")
        values = loss.loss(y, z)
        g, h = loss.gradient_hessian(y, z)
        for i in range(len(y)):
            v, per_class = _mp_chain_rule(z[i], int(y[i]), alpha, gamma)
            assert abs(values[i] - v) <= 1e-9 * abs(v) + 1e-300, f"loss, K={k} alpha={alpha} gamma={gamma} row {i}"
            for j, (dv, d2v, scale) in enumerate(per_class):
                what = f"K={k} alpha={alpha} gamma={gamma} row {i} z={z[i]} y={y[i]} class {j}"
                assert abs(g[i, j] - dv) <= 1e-9 * abs(dv) + 1e-300, f"gradient, {what}: {g[i, j]} vs {dv}"
                assert abs(h[i, j] - d2v) <= 1e-9 * scale + 1e-300, f"Hessian, {what}: {h[i, j]} vs {d2v}"


def test_gamma_zero_is_softmax_cross_entropy_exactly():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=4.0, size=(2000, 6))
    y = rng.integers(0, 6, 2000)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g, h = MulticlassFocalLoss(None, 0.0, hessian="exact").gradient_hessian(y, z)
    np.testing.assert_allclose(g, p - np.eye(6)[y], rtol=1e-13, atol=1e-15)
    # Σ_{k≠j} p_k, not 1 - p_j: exact for the confident class too
    one_minus_p = np.stack([p[:, np.arange(6) != j].sum(axis=1) for j in range(6)], axis=1)
    np.testing.assert_allclose(h, p * one_minus_p, rtol=1e-13, atol=1e-16)
    # -log p_y = (max z - z_y) + log1p(Σ_{k≠argmax} e^(z_k - max z)), without rounding p_y
    e = np.exp(z - z.max(axis=1, keepdims=True))
    e[np.arange(2000), z.argmax(axis=1)] = 0.0
    nlp = (z.max(axis=1) - z[np.arange(2000), y]) + np.log1p(e.sum(axis=1))
    np.testing.assert_allclose(MulticlassFocalLoss(None, 0.0).loss(y, z), nlp, rtol=1e-13)
    # every non-exact policy equals the exact diagonal for γ = 0 (A' >= 0 there), up to the floor
    for policy in MULTICLASS_HESSIAN_POLICIES:
        _, hp = MulticlassFocalLoss(None, 0.0, hessian=policy).gradient_hessian(y, z)
        np.testing.assert_allclose(hp, np.maximum(h, 1e-16) if policy != "exact" else h, rtol=1e-12)


def test_mpmath_chain_rule_matches_mpmath_differentiation():
    """The chain-rule reference against mpmath's own differentiation, where the latter is usable."""
    rng = np.random.default_rng(11)
    for _ in range(20):
        z = rng.normal(scale=4.0, size=4)
        y = int(rng.integers(4))
        alpha, gamma = (0.5, 1.0, 2.0, 0.25), float(rng.choice([0.0, 0.5, 1.7, 2.0, 5.0]))
        v, per_class = _mp_chain_rule(z, y, alpha, gamma)
        for j in range(4):
            ref = _mp_taylor(z, y, alpha, gamma, j)
            for x, r in zip((v, *per_class[j][:2]), ref, strict=True):
                assert abs(x - r) <= mp.mpf("1e-30") * (abs(r) + 1)


def _fd4(loss, y, z, j, eps):
    """4th-order central difference of the per-row loss along class j."""
    out = 0.0
    for coef, step in ((1.0, -2.0), (-8.0, -1.0), (8.0, 1.0), (-1.0, 2.0)):
        zz = z.copy()
        zz[:, j] += step * eps
        out = out + coef * loss.loss(y, zz)
    return out / (12.0 * eps)


@pytest.mark.parametrize("gamma", [0.5, 2.0, 3.3])
def test_gradient_and_diagonal_match_finite_differences(gamma):
    rng = np.random.default_rng(1)
    z = rng.normal(scale=3.0, size=(300, 4))
    y = rng.integers(0, 4, 300)
    loss = MulticlassFocalLoss((0.3, 1.0, 2.0, 0.7), gamma, hessian="exact")
    g, h = loss.gradient_hessian(y, z)
    for j in range(4):
        np.testing.assert_allclose(g[:, j], _fd4(loss, y, z, j, 1e-3), rtol=1e-6, atol=1e-9)
        zp, zm = z.copy(), z.copy()
        zp[:, j] += 1e-5
        zm[:, j] -= 1e-5
        fd = (loss.gradient_hessian(y, zp)[0][:, j] - loss.gradient_hessian(y, zm)[0][:, j]) / 2e-5
        np.testing.assert_allclose(h[:, j], fd, rtol=1e-5, atol=1e-8)


def test_k2_is_the_binary_focal_loss():
    rng = np.random.default_rng(2)
    t = rng.normal(scale=5.0, size=1000)
    y = (rng.random(1000) < 0.3).astype(float)
    a, gamma = 0.25, 2.0
    multi = MulticlassFocalLoss((1.0 - a, a), gamma, hessian="exact")
    binary = FocalLoss(a, gamma, hessian="exact")
    z = np.column_stack([np.zeros_like(t), t])
    g, h = multi.gradient_hessian(y.astype(int), z)
    gb, hb = binary.gradient_hessian(y, t)
    np.testing.assert_allclose(multi.loss(y.astype(int), z), binary.loss(y, t), rtol=1e-12)
    np.testing.assert_allclose(g[:, 1], gb, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(g[:, 0], -gb, rtol=1e-12, atol=1e-300)
    for col in (0, 1):  # d²/dz_0² = d²/dz_1² = d²/dt² for K = 2
        np.testing.assert_allclose(h[:, col], hb, rtol=1e-10, atol=1e-12 * np.abs(hb).max())
    np.testing.assert_allclose(multi.posterior(z)[:, 1], binary.posterior(t), rtol=1e-12)


def test_exact_diagonal_has_negative_entries_default_policy_never():
    rng = np.random.default_rng(3)
    z = rng.normal(scale=3.0, size=(20000, 5))
    y = rng.integers(0, 5, 20000)
    _, h = MulticlassFocalLoss(None, 2.0, hessian="exact").gradient_hessian(y, z)
    share = (h < 0).mean()
    assert 0.05 < share < 0.25, share  # the concave region is real
    for policy in MULTICLASS_HESSIAN_POLICIES:
        if policy == "exact":
            continue
        _, hp = MulticlassFocalLoss(None, 2.0, hessian=policy).gradient_hessian(y, z)
        assert np.all(hp >= 1e-16) and np.all(np.isfinite(hp)), policy
        if policy in ("positive", "clamp", "clip"):
            assert np.all(hp >= h), policy  # never below the exact curvature


def test_clamp_and_positive_are_diagonals_of_a_psd_hessian():
    """Exact full Hessian by finite differences, H = A' p v vᵀ - A (diag p - p pᵀ), v = e_y - p.

    A policy changes only A', so its diagonal minus the exact one is δ v_j² for
    one δ; H + δ v vᵀ must then have that diagonal and no negative eigenvalue.
    """
    rng = np.random.default_rng(4)
    exact = MulticlassFocalLoss(None, 2.0, hessian="exact")
    n_concave = 0
    for _ in range(40):
        z = rng.normal(scale=4.0, size=(1, 4))
        y = rng.integers(0, 4, 1)
        full = np.empty((4, 4))
        for j in range(4):
            zp, zm = z.copy(), z.copy()
            zp[0, j] += 1e-6
            zm[0, j] -= 1e-6
            full[:, j] = (exact.gradient_hessian(y, zp)[0][0] - exact.gradient_hessian(y, zm)[0][0]) / 2e-6
        full = 0.5 * (full + full.T)
        p = np.exp(z[0] - z[0].max())
        p /= p.sum()
        v = np.eye(4)[y[0]] - p
        h_exact = exact.gradient_hessian(y, z)[1][0]
        n_concave += np.linalg.eigvalsh(full)[0] < -1e-6
        for policy in ("clamp", "positive"):
            h = MulticlassFocalLoss(None, 2.0, hessian=policy).gradient_hessian(y, z)[1][0]
            delta = (h[y[0]] - h_exact[y[0]]) / v[y[0]] ** 2
            modified = full + delta * np.outer(v, v)
            np.testing.assert_allclose(modified.diagonal(), np.maximum(h, 1e-16), rtol=1e-5, atol=1e-8)
            assert np.linalg.eigvalsh(modified)[0] > -1e-7, (policy, z, y)
    assert n_concave > 0  # some exact Hessians were indefinite: the check above had work to do


def test_extreme_margins_give_finite_values():
    big = np.finfo(np.float64).max
    z = np.array([[big, -big, 0.0], [-big, big, 0.0], [1e300, 0.0, -1e300], [0.0, 0.0, 0.0], [5e-324, 0.0, -5e-324]])
    y = np.array([1, 1, 2, 0, 2])
    for policy in MULTICLASS_HESSIAN_POLICIES:
        g, h = MulticlassFocalLoss((1.0, 2.0, 0.5), 0.7, hessian=policy).gradient_hessian(y, z)
        assert np.isfinite(g).all() and np.isfinite(h).all(), policy
        if policy != "exact":
            assert (h > 0).all()
    post = MulticlassFocalLoss((1.0, 2.0, 0.5), 0.7).posterior(z)
    assert np.isfinite(post).all()
    np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-15)
    z32 = z[3:].astype(np.float32)
    g32, h32 = MulticlassFocalLoss(None, 2.0).gradient_hessian(y[3:], z32)
    assert np.isfinite(g32).all() and (h32 > 0).all()


# --------------------------------------------------------------------------- posterior


def _np_conditional_risk(z, eta, alpha, gamma):
    """Σ_k η_k FL(z, k) in plain NumPy (the definition)."""
    s = np.logaddexp.reduce(z)
    logp = z - s
    p = np.exp(logp)
    return float(np.sum(eta * alpha * (1.0 - p) ** gamma * -logp))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 4.0])
def test_posterior_inverts_the_conditional_risk_minimiser(gamma):
    rng = np.random.default_rng(int(gamma * 10))
    for k in (3, 4):
        alpha = rng.uniform(0.3, 3.0, size=k)
        loss = MulticlassFocalLoss(tuple(alpha), gamma)
        for _ in range(4):
            eta = rng.dirichlet(np.ones(k))
            res = minimize(
                lambda free, eta=eta, alpha=alpha: _np_conditional_risk(np.r_[0.0, free], eta, alpha, gamma),
                np.zeros(k - 1),
                method="BFGS",
                options={"gtol": 1e-12},
            )
            z_star = np.r_[0.0, res.x][None, :]
            np.testing.assert_allclose(loss.posterior(z_star)[0], eta, rtol=2e-4, atol=1e-6)


def test_posterior_closed_forms_and_extremes():
    rng = np.random.default_rng(5)
    z = rng.normal(scale=3.0, size=(100, 4))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(MulticlassFocalLoss(None, 0.0).posterior(z), p, rtol=1e-13)
    alpha = np.array([0.5, 1.0, 2.0, 4.0])
    expected = p / alpha
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(MulticlassFocalLoss(tuple(alpha), 0.0).posterior(z), expected, rtol=1e-13)
    # far tails: log-space keeps the small posteriors exact; the ranking of margins is preserved
    loss = MulticlassFocalLoss(None, 2.0)
    post = loss.posterior(np.array([[0.0, -100.0, -200.0]]))[0]
    assert post[1] > 0 and post[2] > 0 and post[0] > post[1] > post[2]
    # η_k ∝ 1/|f'(p_k)|, and |f'(p)| = e^ℓ (1 + O(p ℓ)) for small p: η_2 / η_1 = p_2 / p_1 = e^-100
    assert np.log(post[2] / post[1]) == pytest.approx(-100.0, rel=1e-13)
    # η_1 / η_0 = |f'(p_0)| / |f'(p_1)| ≈ q_0^γ (1 + γ) / e^100 with q_0 ≈ e^-100: e^-300 (1 + γ)
    assert np.log(post[1] / post[0]) == pytest.approx(-300.0 + np.log(3.0), rel=1e-13)


# --------------------------------------------------------------------------- init_score


def test_init_score_gamma_zero_closed_form():
    y = np.array([0, 1, 1, 2, 2, 2, 2])
    w = np.array([1.0, 2.0, 0.5, 1.0, 1.0, 3.0, 0.25])
    alpha = np.array([2.0, 1.0, 0.5])
    totals = np.array([1.0, 2.5, 5.25])
    loss = MulticlassFocalLoss(tuple(alpha), 0.0)
    np.testing.assert_allclose(loss.class_weight_totals(y, w), totals)
    log_aw = np.log(alpha * totals)
    np.testing.assert_allclose(loss.init_score(y, w), log_aw - np.logaddexp.reduce(log_aw), rtol=1e-14)


@pytest.mark.parametrize("gamma", [0.5, 2.0, 5.0])
def test_init_score_minimises_the_weighted_loss(gamma):
    totals = np.array([1.0, 30.0, 0.2, 5.0])
    alpha = np.array([1.0, 0.25, 2.0, 1.0])
    loss = MulticlassFocalLoss(tuple(alpha), gamma, hessian="exact")
    c = loss.init_score_from_totals(totals)
    assert np.logaddexp.reduce(c) == pytest.approx(0.0, abs=1e-14)  # the representative: log-probabilities

    def total(free):
        zc = np.r_[0.0, free]
        return sum(totals[k] * _np_conditional_risk(zc, np.eye(4)[k], alpha, gamma) for k in range(4))

    res = minimize(total, np.zeros(3), method="BFGS", options={"gtol": 1e-12})
    ref = np.r_[0.0, res.x]
    np.testing.assert_allclose(c - c[0], ref, atol=1e-5)
    # stationarity with the kernels: Σ_k W_k ∇FL(c, k) = 0
    g, _ = loss.gradient_hessian(np.arange(4), np.tile(c, (4, 1)), totals)
    assert np.abs(g.sum(axis=0)).max() < 1e-12 * totals.sum()
    # the optimal constant's posterior is the class frequency
    np.testing.assert_allclose(loss.posterior(c[None, :])[0], totals / totals.sum(), rtol=1e-9)


def test_init_score_depends_only_on_totals_partitions_add_up():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 5, 1000)
    w = rng.uniform(0, 2, 1000)
    loss = MulticlassFocalLoss(None, 2.0)
    whole = loss.init_score(y, w, n_classes=5)
    parts = loss.class_weight_totals(y[:400], w[:400], 5) + loss.class_weight_totals(y[400:], w[400:], 5)
    np.testing.assert_allclose(loss.init_score_from_totals(parts), whole, rtol=1e-12)
    np.testing.assert_allclose(loss.prepared(y, w, 5).init_score(loss), whole, rtol=1e-12)


def test_init_score_refuses_an_empty_class():
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have none"):
        MulticlassFocalLoss(None, 2.0).init_score([0, 2, 2])


# --------------------------------------------------------------------------- arrays, buffers, threads


def test_float32_margins_float32_outputs_close_to_float64():
    rng = np.random.default_rng(7)
    z = rng.normal(scale=3.0, size=(5000, 5)).astype(np.float32)
    y = rng.integers(0, 5, 5000)
    loss = MulticlassFocalLoss(None, 2.0)
    g32, h32 = loss.gradient_hessian(y, z)
    g64, h64 = loss.gradient_hessian(y, z.astype(np.float64))
    assert g32.dtype == np.float32 and h32.dtype == np.float32
    eps32 = np.finfo(np.float32).eps
    np.testing.assert_allclose(g32, g64, rtol=eps32, atol=1e-37)
    np.testing.assert_allclose(h32, h64, rtol=eps32, atol=1e-37)
    assert loss.loss(y, z).dtype == np.float32


def test_buffers_are_reused_and_input_not_copied():
    rng = np.random.default_rng(8)
    z = rng.normal(size=(100, 3))
    y = rng.integers(0, 3, 100)
    assert as_margin_rows(z) is z
    loss = MulticlassFocalLoss()
    gbuf, hbuf = np.empty_like(z), np.empty_like(z)
    g, h = loss.gradient_hessian(y, z, gradient_out=gbuf, hessian_out=hbuf)
    assert g is gbuf and h is hbuf
    rows = loss.prepared(y)
    g1, _ = rows.gradient_hessian(loss, z)
    g2, _ = rows.gradient_hessian(loss, z + 1.0)
    assert g2 is g1
    np.testing.assert_array_equal(rows.gradient_hessian(loss, z)[1], loss.gradient_hessian(y, z)[1])
    g3, _ = rows.gradient_hessian(loss, z, out_dtype=np.float32)
    assert g3.dtype == np.float32
    assert rows.mean_loss(loss, z) == pytest.approx(loss.mean_loss(y, z), rel=1e-14)


def test_sample_weight_multiplies_and_mean_loss_is_the_weighted_mean():
    rng = np.random.default_rng(9)
    z = rng.normal(scale=2.0, size=(500, 4))
    y = rng.integers(0, 4, 500)
    w = rng.uniform(0.0, 3.0, 500)
    w[:10] = 0.0
    loss = MulticlassFocalLoss((1.0, 2.0, 3.0, 4.0), 1.7)
    g, h = loss.gradient_hessian(y, z)
    gw, hw = loss.gradient_hessian(y, z, w)
    np.testing.assert_allclose(gw, g * w[:, None], rtol=1e-15)
    np.testing.assert_allclose(hw, h * w[:, None], rtol=1e-15)
    np.testing.assert_allclose(loss.loss(y, z, w), loss.loss(y, z) * w, rtol=1e-15)
    assert loss.mean_loss(y, z, w) == pytest.approx(np.sum(w * loss.loss(y, z)) / w.sum(), rel=1e-13)


def test_threads_give_identical_results():
    rng = np.random.default_rng(10)
    z = rng.normal(scale=3.0, size=(200_000, 3))
    y = rng.integers(0, 3, 200_000)
    loss = MulticlassFocalLoss(None, 2.0)
    one = loss.gradient_hessian(y, z, n_threads=1)
    two = loss.gradient_hessian(y, z, n_threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    assert loss.mean_loss(y, z, n_threads=2) == pytest.approx(loss.mean_loss(y, z, n_threads=1), rel=1e-12)


def test_object_surface_pickle_and_repr():
    loss = MulticlassFocalLoss([1, 2, 3], 1.5, hessian="positive")
    assert loss.n_outputs == 3 and MulticlassFocalLoss().n_outputs is None
    assert loss.alpha == (1.0, 2.0, 3.0) and loss.gamma == 1.5 and loss.hessian == "positive"
    assert MulticlassFocalLoss().hessian == MULTICLASS_DEFAULT_HESSIAN
    back = pickle.loads(pickle.dumps(loss))
    assert back == loss and hash(back) == hash(loss)
    assert repr(loss) == "MulticlassFocalLoss(alpha=[1.0, 2.0, 3.0], gamma=1.5, hessian='positive')"
    rows = pickle.loads(pickle.dumps(loss.prepared([0, 1, 2], [1.0, 2.0, 3.0])))
    assert isinstance(rows, MulticlassPreparedRows) and rows.n_classes == 3


# --------------------------------------------------------------------------- bad input


Z3 = np.zeros((4, 3))
Y3 = np.array([0, 1, 2, 1])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: MulticlassFocalLoss(0.25), TypeError, "alpha must be None .* or a sequence"),
        (lambda: MulticlassFocalLoss([1.0]), ValueError, "at least 2 classes"),
        (lambda: MulticlassFocalLoss([1.0, 0.0]), ValueError, r"alpha\[1\] must be a finite weight > 0"),
        (lambda: MulticlassFocalLoss([1.0, np.nan]), ValueError, r"alpha\[1\] must be a finite weight > 0"),
        (lambda: MulticlassFocalLoss([1.0, "a"]), TypeError, r"alpha\[1\] must be a real number"),
        (lambda: MulticlassFocalLoss(None, -1.0), ValueError, "gamma must be a finite number >= 0"),
        (lambda: MulticlassFocalLoss(hessian="nope"), ValueError, "hessian must be one of"),
        (lambda: MulticlassFocalLoss([1, 2]).loss(Y3, Z3), ValueError, "K = 3 class columns but alpha has 2"),
        (lambda: MulticlassFocalLoss().loss(Y3, np.zeros(4)), ValueError, "raw_prediction must be 2-D"),
        (lambda: MulticlassFocalLoss().loss(Y3, np.zeros((4, 1))), ValueError, "K >= 2 columns"),
        (lambda: MulticlassFocalLoss().loss(Y3, Z3[:3]), ValueError, "raw_prediction has 3 rows but y_true has 4"),
        (lambda: MulticlassFocalLoss().loss([0, 1, 3, 1], Z3), ValueError, r"class indices in \[0, 3\).*\[3\]"),
        (lambda: MulticlassFocalLoss().loss([0, -1, 2, 1], Z3), ValueError, r"found \[-1\]"),
        (lambda: MulticlassFocalLoss().loss([0, 1.5, 2, 1], Z3), ValueError, r"integer class indices.*\[1.5\]"),
        (lambda: MulticlassFocalLoss().loss(np.array(list("abca")), Z3), TypeError, "LabelEncoder"),
        (lambda: MulticlassFocalLoss().loss(np.eye(3)[Y3], Z3), ValueError, "not one-hot rows"),
        (lambda: MulticlassFocalLoss().loss(Y3, Z3, [1, 1, -1, 1]), ValueError, "sample_weight contains negative"),
        (lambda: MulticlassFocalLoss().loss(Y3, Z3, [1, 1]), ValueError, "sample_weight has 2 rows"),
        (lambda: MulticlassFocalLoss().loss(Y3, Z3, n_threads=0), ValueError, "n_threads must be a positive int"),
        (
            lambda: MulticlassFocalLoss().gradient_hessian(Y3, Z3, gradient_out=np.empty((4, 3), np.float32)),
            ValueError,
            "gradient_out must have shape",
        ),
        (lambda: MulticlassFocalLoss().init_score_from_totals([1.0, -1.0]), ValueError, "finite and >= 0"),
        (lambda: MulticlassFocalLoss().prepared(Y3, n_classes=1), ValueError, "n_classes must be >= 2"),
        (lambda: MulticlassFocalLoss().prepared(Y3).gradient_hessian(FocalLoss(), Z3), TypeError, "Multiclass"),
        (
            lambda: MulticlassFocalLoss().prepared(Y3).gradient_hessian(MulticlassFocalLoss(), np.zeros((4, 4))),
            ValueError,
            "prepared for K = 3",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_it(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_margins_are_refused(bad):
    z = np.zeros((4, 3))
    z[2, 1] = bad
    loss = MulticlassFocalLoss()
    for call in (loss.loss, loss.mean_loss, loss.gradient_hessian):
        with pytest.raises(ValueError, match="raw_prediction contains 1 NaN or infinite"):
            call(Y3, z)
    with pytest.raises(ValueError, match="raw_prediction contains 1 NaN or infinite"):
        loss.posterior(z)


@pytest.mark.parametrize("budget", [0, 10**9], ids=["kernel", "python"])
@pytest.mark.parametrize("weighted", [False, True])
def test_fortran_ordered_margins_and_shift_give_the_row_major_values(monkeypatch, budget, weighted):
    # LightGBM's (n, K) scores are Fortran-ordered: prepared rows read them (plus a start) class by class and
    # return Fortran-ordered outputs, equal bit for bit to the C-ordered route through z + shift
    from gbfocal import _loss

    monkeypatch.setattr(_loss, "PYTHON_ROW_BUDGET", budget)
    rng = np.random.default_rng(11)
    n = 70_000 if budget == 0 else 700  # the kernel path over several pieces and threads
    z = np.asfortranarray(rng.normal(scale=4.0, size=(n, 5)))
    z[:5] = [[800.0, -800.0, 0.0, 1e4, -1e4]] * 5  # saturated rows
    y = rng.integers(0, 5, n)
    w = rng.uniform(0.0, 3.0, n) if weighted else None
    shift = np.array([0.5, -1.25, 3.0, 0.0, -700.0])
    loss = MulticlassFocalLoss((1.0, 2.0, 0.5, 1.0, 4.0), 2.0)
    want_g, want_h = loss.gradient_hessian(y, np.ascontiguousarray(z) + shift, w)
    for out_dtype in (None, np.float32):
        rows = loss.prepared(y, w, 5)
        g, h = rows.gradient_hessian(loss, z, n_threads=2, out_dtype=out_dtype, shift=shift)
        assert g.flags.f_contiguous and not g.flags.c_contiguous and h.flags.f_contiguous
        dtype = np.float64 if out_dtype is None else np.float32
        np.testing.assert_array_equal(g, want_g.astype(dtype))
        np.testing.assert_array_equal(h, want_h.astype(dtype))
        g0, _ = rows.gradient_hessian(loss, z, n_threads=2, out_dtype=out_dtype)  # no shift
        np.testing.assert_array_equal(g0, loss.gradient_hessian(y, np.ascontiguousarray(z), w)[0].astype(dtype))
    bad = z.copy(order="F")
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        loss.prepared(y, w, 5).gradient_hessian(loss, bad, shift=shift)
    with pytest.raises(ValueError, match="shift must hold K = 5 finite"):
        loss.prepared(y, w, 5).gradient_hessian(loss, z, shift=[0.0, 1.0])


@pytest.mark.parametrize(
    "totals, alpha, gamma",
    [
        ([1.0, 30.0, 0.2, 5.0], (1.0, 0.25, 2.0, 1.0), 2.0),
        ([1.0, 1e12], None, 0.5),  # a class 1e12 times rarer
        ([1e-30, 1.0, 1.0], (1.0, 1.0, 1e-5), 5.0),
        ([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0], None, 20.0),
        ([1.0, 1e60], None, 1.0),  # π of the rare class far below float64's epsilon
    ],
)
def test_init_score_meets_the_stationarity_conditions_to_60_digits(totals, alpha, gamma):
    # the focal-optimal constant: W_k α_k |f'(π_k)| equal for every k, Σ π = 1 (checked in mpmath)
    loss = MulticlassFocalLoss(alpha, gamma)
    s = loss.init_score_from_totals(totals)
    a = np.ones(len(totals)) if alpha is None else np.array(alpha)
    with mp.workdps(60):
        pulls = []
        for k, sk in enumerate(s):
            p = mp.exp(mp.mpf(sk))
            q = -mp.expm1(mp.mpf(sk))
            pulls.append(
                mp.log(mp.mpf(totals[k]) * a[k]) + gamma * mp.log(q) - mp.log(p) + mp.log1p(gamma * p * -mp.log(p) / q)
            )
        spread = max(pulls) - min(pulls)
        assert float(spread) < 1e-12 * max(1.0, float(max(abs(v) for v in pulls)))
        assert abs(float(mp.fsum(mp.exp(mp.mpf(v)) for v in s) - 1)) < 1e-15
