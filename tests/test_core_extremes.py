"""FocalLoss at the edges: far-out init_score, huge and tiny weights, γ's bound, aliased buffers, n_threads."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gbfocal import FocalLoss, PreparedRows
from gbfocal import _validation as V

mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp

# --------------------------------------------------------------------------- init_score far out


def _reference_init_score(alpha: float, gamma: float, w_pos: float, w_neg: float) -> float:
    """The root of F'(z) = W₁ dFL(z, 1)/dz + W₀ dFL(z, 0)/dz, from the definition, at 60 digits.

    dFL/dz is mpmath's numerical derivative of FL = -α_t (1 - p_t)^γ log p_t,
    so nothing of gbfocal's algebra is reused. The root is bracketed by a
    scan for the sign change (F' < 0 left of the minimiser, > 0 right of it)
    and bisected.
    """
    with mp.workdps(60):
        a, g, w1, w0 = mp.mpf(alpha), mp.mpf(gamma), mp.mpf(w_pos), mp.mpf(w_neg)

        def fl(z, y):
            t = z if y == 1 else -z
            a_t = a if y == 1 else 1 - a
            return a_t * (1 / (1 + mp.exp(t))) ** g * mp.log1p(mp.exp(-t))

        def slope(z):
            return w1 * mp.diff(lambda u: fl(u, 1), z) + w0 * mp.diff(lambda u: fl(u, 0), z)

        lo = mp.mpf(-2000)
        step = mp.mpf(8)
        while slope(lo + step) < 0:
            lo += step
        hi = lo + step
        for _ in range(120):  # bisection: 8 / 2**120 is far below float64 resolution
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if slope(mid) < 0 else (lo, mid)
        return float((lo + hi) / 2)


_EXTREMES = [(1e-40, 1.0), (1e-100, 1.0), (1.0, 1e-100), (1e-300, 1e300), (1e300, 1e-300), (3.0, 7.0)]


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize(("w_pos", "w_neg"), _EXTREMES)
def test_init_score_from_totals_far_out_matches_mpmath(gamma, w_pos, w_neg):
    loss = FocalLoss(0.25, gamma)
    want = _reference_init_score(0.25, gamma, w_pos, w_neg)
    assert loss.init_score_from_totals(w_pos, w_neg) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_init_score_beyond_the_old_grid():
    # the review's cases: the grid on [-60, 60] returned -60.0 and -231.4
    assert FocalLoss(0.25, 0.5).init_score_from_totals(1e-40, 1.0) == pytest.approx(-62.40498741, abs=1e-7)
    assert FocalLoss(0.25, 2.0).init_score_from_totals(1e-100, 1.0) == pytest.approx(-77.48524463, abs=1e-7)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_init_score_with_extreme_weights(gamma):
    # only the ratio of the class totals matters: weights of 1e300 (whose sums overflow) and of
    # 1e-300 (whose products underflow) give the init_score of the unscaled weights
    y = np.r_[np.ones(3), np.zeros(7)]
    w = np.arange(1.0, 11.0)  # small integers: exact even as subnormals times 2**-1060
    loss = FocalLoss(0.25, gamma)
    want = loss.init_score(y, w)
    for factor in (1.7e307, 1e-300, 2.0**-1060):
        assert loss.init_score(y, w * factor) == pytest.approx(want, rel=1e-12)
        assert PreparedRows(y, w * factor).init_score(loss) == pytest.approx(want, rel=1e-12)


def test_init_score_gamma_zero_with_tiny_totals():
    # α W₁ underflows to 0 for W₁ = 5e-324: the log-odds are taken as a sum of logs
    got = FocalLoss(0.25, 0.0).init_score_from_totals(5e-324, 1.0)
    assert got == pytest.approx(math.log(5e-324) + math.log(0.25 / 0.75), rel=1e-15)


# --------------------------------------------------------------------------- huge weights


def test_mean_loss_with_weights_whose_sum_overflows():
    y = np.array([0.0, 1.0, 0.0, 1.0])
    z = np.array([1.0, 2.0, -3.0, 0.5])
    w = np.array([1.0, 2.0, 0.5, 1.5])
    loss = FocalLoss()
    want = float(np.sum(w * loss.loss(y, z)) / np.sum(w))
    for factor in (1e308 / 2.0, 1e-310):
        assert loss.mean_loss(y, z, w * factor) == pytest.approx(want, rel=1e-14)
        assert PreparedRows(y, w * factor).mean_loss(loss, z) == pytest.approx(want, rel=1e-14)
    assert loss.mean_loss(y, z, np.full(4, 1e308)) == pytest.approx(loss.mean_loss(y, z), rel=1e-14)


def test_class_weight_totals_with_huge_and_lopsided_weights():
    y = np.array([1.0, 0.0, 0.0, 1.0])
    # a total of 1e308 plus another 1e308 in the other class: their sum overflows, each total does not
    assert FocalLoss.class_weight_totals(y, np.array([1e308, 1e308, 0.0, 0.0])) == (1e308, 1e308)
    # the negative class's total is not Σ w - Σ w[y = 1] (which would round to 0)
    assert FocalLoss.class_weight_totals(y, np.array([1e20, 1.0, 2.0, 0.0])) == (1e20, 3.0)
    with pytest.raises(ValueError, match="sample_weight sums to more than the largest float64"):
        FocalLoss.class_weight_totals(y, np.array([1e308, 0.0, 0.0, 1e308]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_that_overflow_the_outputs_are_refused(dtype):
    y = np.array([0.0, 1.0, 0.0])
    z = np.array([3.0, -3.0, 0.0], dtype=dtype)
    loss = FocalLoss(0.25, 2.0)
    huge = float(np.finfo(dtype).max) / 2.0  # times a gradient/Hessian of up to 5.4: overflows
    w = np.array([1.0, huge, 1.0])
    with pytest.raises(ValueError, match=r"sample_weight up to .* overflows"):
        loss.gradient_hessian(y, z, w)
    with pytest.raises(ValueError, match=r"sample_weight up to .* overflows"):
        PreparedRows(y, w).gradient_hessian(loss, z)
    if dtype == np.float64:
        with pytest.raises(ValueError, match="overflows float32 outputs"):
            PreparedRows(y, np.array([1.0, 1e38, 1.0])).gradient_hessian(loss, z, out_dtype=np.float32)


def test_largest_accepted_weight_gives_finite_float32_outputs():
    # the bound is within a small factor of the truth (3.6 for γ = 2): weights at it give finite, large outputs
    loss = FocalLoss(0.25, 2.0)
    limit = float(np.finfo(np.float32).max) / loss.max_abs_derivative() / 1.001
    z = np.linspace(-30, 30, 2001).astype(np.float32)
    for y in (0.0, 1.0):
        g, h = loss.gradient_hessian(np.full(z.size, y), z, np.full(z.size, limit))
        assert np.isfinite(g).all() and np.isfinite(h).all()
        assert max(np.abs(g).max(), h.max()) > 0.02 * float(np.finfo(np.float32).max)


@pytest.mark.parametrize("hessian", ["exact", "positive", "abs", "clip"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 37.0, 1e3, V.GAMMA_MAX])
def test_max_abs_derivative_bounds_every_row(hessian, gamma):
    loss = FocalLoss(0.3, gamma, hessian=hessian)
    z = np.r_[np.linspace(-50, 50, 20001), np.geomspace(1e-8, 1e20, 300), -np.geomspace(1e-8, 1e20, 300)]
    for y in (0.0, 1.0):
        g, h = loss.gradient_hessian(np.full(z.size, y), z)
        assert max(np.abs(g).max(), np.abs(h).max()) <= loss.max_abs_derivative()


# --------------------------------------------------------------------------- γ's bound


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hessian", ["exact", "positive", "abs", "clip"])
def test_largest_gamma_gives_finite_values_for_every_margin(dtype, hessian):
    big = float(np.finfo(dtype).max)
    z = np.array([big, -big, 1e20, -1e20, 1e6, -1e6, 30.0, -30.0, 1e-6, 0.0], dtype=dtype)
    loss = FocalLoss(0.25, V.GAMMA_MAX, hessian=hessian)
    for y in (0.0, 1.0):
        g, h = loss.gradient_hessian(np.full(z.size, y), z)
        assert np.isfinite(g).all() and np.isfinite(h).all()
        assert np.isfinite(loss.loss(np.full(z.size, y), z)).all()
        assert np.isfinite(loss.posterior(z)).all()


@pytest.mark.parametrize("gamma", [V.GAMMA_MAX * 1.0000001, 1.3e154, 1e300])
def test_gamma_above_the_bound_is_refused(gamma):
    with pytest.raises(ValueError, match="gamma must be at most 1e\\+06"):
        FocalLoss(0.25, gamma)


# --------------------------------------------------------------------------- aliased buffers


def test_one_buffer_for_gradient_and_hessian_is_refused():
    y, z = np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.5, -1.0, 2.0, 0.0])
    loss = FocalLoss()
    buf = np.zeros(4)
    with pytest.raises(ValueError, match="gradient_out shares memory with hessian_out"):
        loss.gradient_hessian(y, z, gradient_out=buf, hessian_out=buf)
    assert (buf == 0).all()  # nothing written before the refusal
    two = np.zeros(6)
    with pytest.raises(ValueError, match="gradient_out shares memory with hessian_out"):
        loss.gradient_hessian(y, z, gradient_out=two[:4], hessian_out=two[2:])


@pytest.mark.parametrize("which", ["gradient_out", "hessian_out", "loss_out"])
@pytest.mark.parametrize("source", ["y_true", "raw_prediction", "sample_weight"])
def test_output_overlapping_an_input_is_refused(which, source):
    data = {
        "y_true": np.array([0.0, 1.0, 1.0, 0.0]),
        "raw_prediction": np.array([0.5, -1.0, 2.0, 0.0]),
        "sample_weight": np.array([1.0, 2.0, 0.5, 1.0]),
    }
    before = {k: v.copy() for k, v in data.items()}
    loss = FocalLoss()
    kwargs = {which: data[source]}
    with pytest.raises(ValueError, match=f"{which} shares memory with {source}"):
        if which == "loss_out":
            loss.loss(data["y_true"], data["raw_prediction"], data["sample_weight"], **kwargs)
        else:
            loss.gradient_hessian(data["y_true"], data["raw_prediction"], data["sample_weight"], **kwargs)
    for k in data:
        np.testing.assert_array_equal(data[k], before[k])


# --------------------------------------------------------------------------- n_threads

_BAD_THREADS = [
    ("2", TypeError, "n_threads must be a positive int or None"),
    (1.5, TypeError, "n_threads must be a positive int or None"),
    (True, TypeError, "n_threads must be a positive int or None"),
    (float("nan"), TypeError, "n_threads must be a positive int or None"),
    (0, ValueError, r"n_threads must be a positive int or None .every core., got 0"),
    (-3, ValueError, r"n_threads must be a positive int or None .every core., got -3"),
]


def _calls_with_n_threads():
    y, z = np.array([0.0, 1.0, 1.0]), np.array([0.5, -1.0, 2.0])
    loss = FocalLoss()
    rows = PreparedRows(y)
    return {
        "loss": lambda n: loss.loss(y, z, n_threads=n),
        "gradient_hessian": lambda n: loss.gradient_hessian(y, z, n_threads=n),
        "mean_loss": lambda n: loss.mean_loss(y, z, n_threads=n),
        "posterior": lambda n: loss.posterior(z, n_threads=n),
        "posterior_margin": lambda n: loss.posterior_margin(z, n_threads=n),
        "PreparedRows.gradient_hessian": lambda n: rows.gradient_hessian(loss, z, n_threads=n),
        "PreparedRows.mean_loss": lambda n: rows.mean_loss(loss, z, n_threads=n),
    }


@pytest.mark.parametrize("method", sorted(_calls_with_n_threads()))
@pytest.mark.parametrize(("n_threads", "exc", "match"), _BAD_THREADS, ids=[repr(b[0]) for b in _BAD_THREADS])
def test_bad_n_threads(method, n_threads, exc, match):
    call = _calls_with_n_threads()[method]
    with pytest.raises(exc, match=match):
        call(n_threads)
    call(None)
    call(np.int64(2))  # NumPy integers are ints
