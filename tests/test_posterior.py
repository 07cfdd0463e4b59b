"""FocalLoss.posterior: class posteriors recovered from focal-trained margins."""

from __future__ import annotations

import numpy as np
import pytest

from gbfocal import FocalLoss

mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp

PARAMS = [(0.25, 2.0), (0.5, 0.0), (0.75, 0.5), (0.1, 5.0), (0.9, 1.7), (0.3, 0.0)]
Z = np.array([-1e4, -745.0, -700.0, -40.0, -5.0, -2.4, -1e-8, 0.0, 1e-8, 0.3, 2.4, 5.0, 40.0, 700.0, 745.0, 1e4])


def _reference_logit(alpha, gamma, z):
    """logit η with η = B / (A + B), A = -α φ'(q), B = -(1 - α) φ'(1 - q), in probability space.

    φ(u) = -(1 - u)^γ log u, φ'(u) = γ (1 - u)^(γ-1) log u - (1 - u)^γ / u, q = σ(z);
    the working precision grows with |z| so that 1 - q keeps its digits.
    """
    with mp.workdps(60 + int(abs(z) / 2.3)):
        a, g, zz = mp.mpf(alpha), mp.mpf(gamma), mp.mpf(z)
        q = 1 / (1 + mp.exp(-zz))

        def dphi(u):
            return g * (1 - u) ** (g - 1) * mp.log(u) - (1 - u) ** g / u if g != 0 else -1 / u

        big_a = -a * dphi(q)
        big_b = -(1 - a) * dphi(1 - q)
        return float(mp.log(big_b) - mp.log(big_a))


@pytest.mark.parametrize(("alpha", "gamma"), PARAMS)
def test_posterior_logit_matches_mpmath(alpha, gamma):
    got = FocalLoss(alpha, gamma).posterior_margin(Z)
    want = np.array([_reference_logit(alpha, gamma, z) for z in Z])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.5, 0.8])
def test_gamma_zero_is_prior_correction(alpha):
    z = np.linspace(-30, 30, 1001)
    np.testing.assert_allclose(
        FocalLoss(alpha, 0.0).posterior_margin(z), z + np.log((1 - alpha) / alpha), rtol=1e-13, atol=1e-13
    )
    if alpha == 0.5:
        np.testing.assert_allclose(FocalLoss(0.5, 0.0).posterior(z), 1 / (1 + np.exp(-z)), rtol=1e-14)


@pytest.mark.parametrize("alpha", [0.01, 0.25, 0.5, 0.75, 0.99])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0, 10.0])
def test_posterior_is_strictly_increasing(alpha, gamma):
    z = np.linspace(-60, 60, 120_001)
    assert np.all(np.diff(FocalLoss(alpha, gamma).posterior_margin(z)) > 0)


def test_posterior_extremes_and_types():
    loss = FocalLoss(0.25, 2.0)
    z = np.array([-1e300, -1e4, 0.0, 1e4, 1e300])
    eta = loss.posterior(z)
    assert np.isfinite(eta).all() and eta[0] == 0.0 and eta[-1] == 1.0
    assert np.isfinite(loss.posterior_margin(z)).all()
    assert loss.posterior(z[1:4].astype(np.float32)).dtype == np.float64
    with pytest.raises(ValueError, match="NaN or infinite"):
        loss.posterior(np.array([0.0, np.nan]))


def test_posterior_undoes_focal_shrinkage_on_constant_model():
    # The focal-optimal constant margin for base rate π maps back to π itself.
    for alpha, gamma in PARAMS:
        loss = FocalLoss(alpha, gamma)
        for rate in (0.01, 0.1, 0.5):
            z0 = loss.init_score_from_totals(rate, 1 - rate)
            assert loss.posterior(np.array([z0]))[0] == pytest.approx(rate, rel=1e-9)
