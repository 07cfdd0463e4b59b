"""FocalLoss.posterior: class posteriors recovered from focal-trained margins."""

from __future__ import annotations

from pathlib import Path

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


# The README's "Serving a saved focal model" snippet, verbatim: P(y = 1 | x) from a raw margin with NumPy only.
SERVING_SNIPPET = '''
import numpy as np


def focal_posterior(z, alpha, gamma):
    """P(y = 1 | x) from raw margins z of a model trained with FocalLoss(alpha, gamma)."""
    z = np.asarray(z, dtype=np.float64)

    def log_pull(t, a):  # log G = log a q^γ (γ p ℓ + q), p = σ(t), q = 1 - p, ℓ = -log p
        e = np.exp(-np.abs(t))  # exp(-|t|) in (0, 1]: never overflows
        log1p_e = np.log1p(e)
        log_q = -(log1p_e + np.maximum(t, 0.0))  # log σ(-t)
        p = np.where(t >= 0.0, 1.0, e) / (1.0 + e)  # σ(t)
        # ℓ / q without dividing two underflowing numbers (→ 1 as t → +∞)
        l_over_q_pos = np.divide(log1p_e, e, out=np.ones_like(e), where=e > 0.0)
        l_over_q = (1.0 + e) * np.where(t >= 0.0, l_over_q_pos, log1p_e - t)
        return np.log(a) + (gamma + 1.0) * log_q + np.log1p(gamma * p * l_over_q)

    logit = log_pull(-z, 1.0 - alpha) - log_pull(z, alpha)  # log G₀ - log G₁
    return np.exp(-np.logaddexp(0.0, -logit))  # σ(logit), no overflow
'''

SERVING_Z = np.concatenate(
    [s * np.array([1e-8, 1e-3, 0.5, 2.4, 10.0, 40.0, 100.0, 300.0, 700.0, 1e4]) for s in (-1.0, 1.0)] + [[0.0]]
)


@pytest.mark.parametrize(("alpha", "gamma"), [*PARAMS, (0.01, 10.0), (0.99, 0.3)])
def test_serving_snippet_matches_posterior(alpha, gamma):
    namespace: dict = {}
    exec(SERVING_SNIPPET, namespace)  # the README text, run as users will run it
    got = namespace["focal_posterior"](SERVING_Z, alpha, gamma)
    want = FocalLoss(alpha, gamma).posterior(SERVING_Z)
    normal = want >= np.finfo(np.float64).tiny  # subnormal results carry fewer digits in both
    np.testing.assert_allclose(got[normal], want[normal], rtol=1e-12, atol=0)
    np.testing.assert_allclose(got[~normal], want[~normal], rtol=0, atol=np.finfo(np.float64).tiny)
    np.testing.assert_allclose(
        namespace["focal_posterior"](SERVING_Z.astype(np.float32), alpha, gamma),
        FocalLoss(alpha, gamma).posterior(SERVING_Z.astype(np.float32)),
        rtol=1e-12,
        atol=1e-300,
    )


def test_readme_serving_snippet_is_the_tested_one():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"```python\n{SERVING_SNIPPET.strip(chr(10))}\n```" in readme
