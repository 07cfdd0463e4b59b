"""Loss, gradient and exact Hessian against an independent 60-digit reference (mpmath).

The reference is the definition FL = -α_t (1 - p_t)^γ log p_t evaluated with
mpmath at 60 significant digits, and its derivatives are taken by mpmath's
numerical differentiation (``mp.diff``) at that precision (more where the
curvature is tiny next to the loss): nothing of
gbfocal's algebra is reused.
"""

from __future__ import annotations

import numpy as np
import pytest

from gbfocal import FocalLoss

mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp

PARAMS = [(0.25, 2.0), (0.5, 0.0), (0.75, 0.5), (0.1, 5.0), (0.9, 1.7)]
_FIXED = [1e-8, 2.4, 40.0, 700.0, 745.0, 1e4, 0.5, 5.0, 15.0, 100.0]
_rng = np.random.default_rng(20261124)
GRID = np.array(
    sorted({0.0, *_FIXED, *(-v for v in _FIXED), *_rng.uniform(-30, 30, 16).round(6), *_rng.uniform(-800, 800, 6)})
)
RTOL = 1e-9
# Below the smallest normal double (2.2e-308) float64 has no relative precision
# left; there the comparison is absolute.
ATOL = 1e-300


def _reference(alpha: float, gamma: float, y: int, z: float):
    """(FL, dFL/dz, d²FL/dz², Σ|terms of d²FL/dz²|) to 60 significant digits.

    For a badly misclassified row FL ≈ |z| while its curvature is ≈ e^-|z|, so
    a finite difference needs |z|/ln(10) more digits to resolve it.
    """
    with mp.workdps(60 + int(abs(z) / 2.3)):
        a = mp.mpf(alpha) if y == 1 else 1 - mp.mpf(alpha)
        g = mp.mpf(gamma)
        s = 1 if y == 1 else -1

        def fl(zz):
            t = s * zz
            one_minus_pt = 1 / (1 + mp.exp(t))  # 1 - σ(t), no cancellation
            log_pt = -mp.log1p(mp.exp(-t))  # log σ(t), no rounding of σ(t) first
            return -a * one_minus_pt**g * log_pt

        zz = mp.mpf(z)
        value = fl(zz)
        d1 = mp.diff(fl, zz, 1)
        d2 = mp.diff(fl, zz, 2)
        t = s * zz
        p, q, ell = 1 / (1 + mp.exp(-t)), 1 / (1 + mp.exp(t)), mp.log1p(mp.exp(-t))
        terms = a * p * q**g * (g * g * p * ell + (1 + 2 * g) * q + g * q * ell)
        return float(value), float(d1), float(d2), float(terms)


@pytest.fixture(scope="module", params=PARAMS, ids=[f"a{a}-g{g}" for a, g in PARAMS])
def case(request):
    alpha, gamma = request.param
    rows = [(y, z) for y in (0, 1) for z in GRID]
    ref = np.array([_reference(alpha, gamma, y, z) for y, z in rows])
    y = np.array([r[0] for r in rows], dtype=np.float64)
    z = np.array([r[1] for r in rows], dtype=np.float64)
    return FocalLoss(alpha, gamma, hessian="exact"), y, z, ref


def _assert_close(actual, expected, scale, what, z, y):
    err = np.abs(actual - expected)
    bound = RTOL * np.abs(scale) + ATOL
    bad = err > bound
    assert not bad.any(), (
        f"{what}: {bad.sum()} rows off; worst z={z[bad][0]!r} y={y[bad][0]!r} "
        f"got {actual[bad][0]!r} want {expected[bad][0]!r}"
    )


def test_loss_matches_mpmath(case):
    loss, y, z, ref = case
    _assert_close(loss.loss(y, z), ref[:, 0], ref[:, 0], "loss", z, y)


def test_gradient_matches_mpmath(case):
    loss, y, z, ref = case
    grad, _ = loss.gradient_hessian(y, z)
    _assert_close(grad, ref[:, 1], ref[:, 1], "gradient", z, y)


def test_exact_hessian_matches_mpmath(case):
    loss, y, z, ref = case
    _, hess = loss.gradient_hessian(y, z)
    # the exact Hessian cancels where it crosses zero: its error is measured
    # against the sum of the magnitudes of its terms
    _assert_close(hess, ref[:, 2], ref[:, 3], "exact hessian", z, y)


def test_grid_covers_the_required_points():
    for v in (1e-8, 2.4, 40.0, 700.0, 745.0, 1e4):
        assert v in GRID and -v in GRID


def test_known_values_gamma_2():
    # y = 1, z = 0: p_t = 1/2, FL = α (1/2)^2 log 2
    loss = FocalLoss(0.25, 2.0, hessian="exact")
    np.testing.assert_allclose(loss.loss(np.ones(1), np.zeros(1)), [0.25 * 0.25 * np.log(2)], rtol=1e-15)
    # the exact Hessian changes sign at z = -2.7904 for y = 1 (γ = 2)
    _, h = loss.gradient_hessian(np.ones(2), np.array([-2.7903, -2.7905]))
    assert h[0] > 0 > h[1]
