"""MulticlassFocalLoss at the edges: aliased buffers, weights that overflow, huge and tiny weights, γ's bound.

The multiclass twin of tests/test_core_extremes.py.
"""

from __future__ import annotations

import copy
import itertools
import math

import mpmath as mp
import numpy as np
import pytest

from gbfocal import MULTICLASS_HESSIAN_POLICIES, MulticlassFocalLoss, MulticlassPreparedRows
from gbfocal import _validation as V

POLICIES = sorted(MULTICLASS_HESSIAN_POLICIES)


def _data(n: int = 6, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return np.arange(n) % k, rng.normal(size=(n, k)) * 3.0, rng.uniform(0.5, 2.0, size=n)


# --------------------------------------------------------------------------- aliased buffers


def test_overlapping_gradient_and_hessian_buffers_are_refused():
    y, z, _ = _data()
    loss = MulticlassFocalLoss()
    base = np.zeros(z.size + 3)
    grad, hess = base[: z.size].reshape(z.shape), base[3:].reshape(z.shape)  # one row shared
    with pytest.raises(ValueError, match="gradient_out shares memory with hessian_out"):
        loss.gradient_hessian(y, z, gradient_out=grad, hessian_out=hess)
    assert (base == 0).all()  # refused before anything is written
    same = np.zeros_like(z)
    with pytest.raises(ValueError, match="gradient_out shares memory with hessian_out"):
        loss.gradient_hessian(y, z, gradient_out=same, hessian_out=same)


def _aliased(which: str, source: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Inputs (n = 6, K = 3) and an output buffer for ``which`` that overlaps input ``source``."""
    y, z, w = _data()
    base = np.zeros(z.size + y.size)  # float64 memory the input and the output both live in
    if source == "raw_prediction":
        z = base[: z.size].reshape(z.shape)
        z[...] = _data()[1]
    elif source == "sample_weight":
        w = base[: w.size]
        w[...] = _data()[2]
    else:  # int64 labels viewing the same bytes: all-zero memory reads as class 0
        y = base[: y.size].view(np.int64)
    if which == "loss_out":
        out = base[: y.size]
    else:
        out = base[: z.size].reshape(z.shape)
    return {"y_true": y, "raw_prediction": z, "sample_weight": w}, out


@pytest.mark.parametrize("which", ["gradient_out", "hessian_out", "loss_out"])
@pytest.mark.parametrize("source", ["y_true", "raw_prediction", "sample_weight"])
def test_output_overlapping_an_input_is_refused(which, source):
    data, out = _aliased(which, source)
    before = {k: v.copy() for k, v in data.items()}
    loss = MulticlassFocalLoss((1.0, 2.0, 0.5), 2.0)
    with pytest.raises(ValueError, match=f"{which} shares memory with {source}"):
        if which == "loss_out":
            loss.loss(*data.values(), loss_out=out)
        else:
            loss.gradient_hessian(*data.values(), **{which: out})
    for k in data:
        np.testing.assert_array_equal(data[k], before[k])


# --------------------------------------------------------------------------- weights that overflow the outputs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_that_overflow_the_outputs_are_refused(dtype):
    y, z, _ = _data()
    z = z.astype(dtype)
    loss = MulticlassFocalLoss((0.5, 2.0, 1.0), 2.0)
    w = np.ones(y.size)
    w[2] = float(np.finfo(dtype).max) / 2.0  # times a gradient/Hessian entry of up to 7.9: overflows
    with pytest.raises(ValueError, match=r"sample_weight up to .* overflows"):
        loss.gradient_hessian(y, z, w)
    rows = loss.prepared(y, w)
    with pytest.raises(ValueError, match=r"sample_weight up to .* overflows"):
        rows.gradient_hessian(loss, z)
    if dtype == np.float64:
        rows = loss.prepared(y, np.r_[1e38, np.ones(y.size - 1)])
        with pytest.raises(ValueError, match="overflows float32 outputs"):
            rows.gradient_hessian(loss, z, out_dtype=np.float32)
        rows.gradient_hessian(loss, z)  # float64 outputs hold them


def test_alpha_that_overflows_unweighted_outputs_is_refused():
    y, z, _ = _data()
    loss = MulticlassFocalLoss((1.0, 1e38, 1.0), 2.0)
    with pytest.raises(ValueError, match=r"alpha up to 1e\+38 .* overflows float32 outputs"):
        loss.gradient_hessian(y, z.astype(np.float32))
    with pytest.raises(ValueError, match=r"alpha up to 1e\+38 .* overflows float32 outputs"):
        loss.prepared(y).gradient_hessian(loss, z, out_dtype=np.float32)
    g, h = loss.gradient_hessian(y, z)  # float64 holds them
    assert np.isfinite(g).all() and np.isfinite(h).all()
    # a bound that overflows float64 itself (α γ² ≈ 1e300 · 4e11): refused even with all-zero weights
    extreme = MulticlassFocalLoss((1.0, 1e300, 1.0), V.GAMMA_MAX)
    assert extreme.max_abs_derivative() == math.inf
    with pytest.raises(ValueError, match="alpha up to 1e\\+300"):
        extreme.gradient_hessian(y, z, np.zeros(y.size))


def test_largest_accepted_weight_gives_finite_large_float32_outputs():
    loss = MulticlassFocalLoss((0.5, 2.0, 1.0), 2.0)
    limit = float(np.finfo(np.float32).max) / loss.max_abs_derivative() / 1.001
    t = np.linspace(-30.0, 30.0, 601)
    z = np.stack([t, np.zeros_like(t), -t / 3.0], axis=1).astype(np.float32)
    for label in range(3):
        g, h = loss.gradient_hessian(np.full(t.size, label), z, np.full(t.size, limit))
        assert np.isfinite(g).all() and np.isfinite(h).all()
    # the bound is within a small factor of the truth, so these outputs are large
    assert max(np.abs(g).max(), h.max()) > 0.05 * float(np.finfo(np.float32).max)


def _bound_rows(k: int) -> np.ndarray:
    """Random rows at several scales and every combination of extreme margins (in the first 3 classes)."""
    rng = np.random.default_rng(k)
    rand = np.concatenate([rng.normal(size=(400, k)) * s for s in (0.3, 1.0, 3.0, 10.0, 40.0)])
    levels = [-1e20, -1e6, -50.0, -2.0, 0.0, 0.5, 2.0, 50.0, 1e6, 1e20]
    grid = np.array(list(itertools.product(levels, repeat=min(k, 3))))
    if k > 3:
        grid = np.concatenate([grid, np.zeros((grid.shape[0], k - 3))], axis=1)
    return np.concatenate([rand, grid])


@pytest.mark.parametrize("hessian", POLICIES)
@pytest.mark.parametrize(
    ("alpha", "gamma"),
    [(None, 0.0), ((0.3, 1.0, 3.0), 0.5), ((2.0, 0.5, 1.0), 2.0), (None, 5.0), ((1.0, 4.0, 0.25), 37.0),
     ((1e-20, 1e-20, 1e-20), 2.0), (None, 1e3), ((0.5, 1.0, 2.0), V.GAMMA_MAX)],
)  # fmt: skip
def test_max_abs_derivative_bounds_every_entry(hessian, alpha, gamma):
    loss = MulticlassFocalLoss(alpha, gamma, hessian=hessian)
    bound = loss.max_abs_derivative()
    z = _bound_rows(3)
    for label in range(3):
        g, h = loss.gradient_hessian(np.full(len(z), label), z)
        assert np.abs(g).max() <= bound
        assert np.abs(h).max() <= bound


@pytest.mark.parametrize("k", [2, 5])
def test_max_abs_derivative_bounds_other_widths(k):
    for gamma, hessian in itertools.product((0.0, 2.0, 7.5), POLICIES):
        loss = MulticlassFocalLoss(tuple(np.linspace(0.2, 3.0, k)), gamma, hessian=hessian)
        z = _bound_rows(k)
        for label in range(k):
            g, h = loss.gradient_hessian(np.full(len(z), label), z)
            assert max(np.abs(g).max(), np.abs(h).max()) <= loss.max_abs_derivative()


def test_max_abs_derivative_formula():
    e = math.e
    assert MulticlassFocalLoss(None, 0.0).max_abs_derivative() == 1.0
    assert MulticlassFocalLoss((1.0, 3.0), 2.0).max_abs_derivative() == pytest.approx(3.0 * (4 / e + 1 + 4 / e + 1))
    assert MulticlassFocalLoss((1e-30, 1e-30), 2.0).max_abs_derivative() == 1e-16  # the policies' floor


# --------------------------------------------------------------------------- huge and tiny weights


def test_mean_loss_with_weights_whose_sum_overflows_or_underflows():
    y, z, w = _data()
    loss = MulticlassFocalLoss((0.5, 2.0, 1.0), 2.0)
    want = float(np.sum(w * loss.loss(y, z)) / np.sum(w))
    for factor in (1e308 / 2.0, 1e-310):
        assert loss.mean_loss(y, z, w * factor) == pytest.approx(want, rel=1e-14)
        assert loss.prepared(y, w * factor).mean_loss(loss, z) == pytest.approx(want, rel=1e-14)
    unweighted = loss.mean_loss(y, z)
    assert loss.mean_loss(y, z, np.full(y.size, 1e308)) == pytest.approx(unweighted, rel=1e-14)
    assert loss.prepared(y, np.full(y.size, 1e308)).mean_loss(loss, z) == pytest.approx(unweighted, rel=1e-14)


def test_class_weight_totals_with_huge_weights():
    loss = MulticlassFocalLoss()
    y = np.array([0, 1, 2, 2])
    # each class total is representable though their sum is not
    got = loss.class_weight_totals(y, np.array([1e308, 1e308, 0.0, 1e308]))
    np.testing.assert_array_equal(got, [1e308, 1e308, 1e308])
    assert loss.class_weight_totals(y, np.array([1e20, 1.0, 2.0, 0.0])).tolist() == [1e20, 1.0, 2.0]
    with pytest.raises(ValueError, match="sample_weight sums to more than the largest float64"):
        loss.class_weight_totals(y, np.array([1.0, 1.0, 1e308, 1e308]))


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_init_score_with_extreme_weights(gamma):
    # only the ratios of the class totals matter: weights whose sums overflow (1e307 · 10 rows) or
    # whose logs would be taken of underflowed totals give the init_score of the unscaled weights
    y = np.array([0, 1, 2, 0, 1, 2, 0, 0, 1, 0])
    w = np.arange(1.0, 11.0)  # small integers: exact even as subnormals times 2**-1060
    loss = MulticlassFocalLoss((0.5, 2.0, 1.0), gamma)
    want = loss.init_score(y, w)
    for factor in (1.7e307, 1e-300, 2.0**-1060):
        np.testing.assert_allclose(loss.init_score(y, w * factor), want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(loss.prepared(y, w * factor).init_score(loss), want, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- γ's bound


def _mp_row_loss(z: np.ndarray, y: int, alpha: float, gamma: float) -> mp.mpf:
    """α (1 - p_y)^γ (-log p_y) from the definition, 40 digits beyond the margins' own (any exponent range)."""
    with mp.workdps(40 + int(math.log10(1.0 + float(np.abs(z).max())))):
        zz = [mp.mpf(float(v)) for v in z]
        s = mp.fsum(mp.exp(v - zz[y]) for v in zz)  # 1 / p_y
        q = mp.fsum(mp.exp(v - zz[y]) for j, v in enumerate(zz) if j != y) / s
        return mp.mpf(alpha) * q ** mp.mpf(gamma) * mp.log(s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_largest_gamma_gives_finite_values_for_every_margin(dtype):
    big = float(np.finfo(dtype).max)
    levels = [big, -big, 1e20, -1e20, 1e6, -1e6, 30.0, -30.0, 1e-6, 0.0]
    z = np.array(list(itertools.product(levels, levels, (0.0, -big, big))), dtype=dtype)
    alpha = (0.5, 2.0, 1.0)
    for hessian in POLICIES:
        loss = MulticlassFocalLoss(alpha, V.GAMMA_MAX, hessian=hessian)
        for label in range(3):
            g, h = loss.gradient_hessian(np.full(len(z), label), z)
            assert np.isfinite(g).all() and np.isfinite(h).all()
            assert np.isfinite(loss.posterior(z)).all()
    # the loss is finite and right wherever its true value α_y (1-p_y)^γ ℓ is representable and so is
    # ℓ ≈ max z - z_y (float64 arithmetic): it overflows only for margins more than ~1.8e308 apart
    loss = MulticlassFocalLoss(alpha, V.GAMMA_MAX)
    z64 = z.astype(np.float64)
    for label in range(3):
        got = loss.loss(np.full(len(z), label), z)
        want = np.array([float(_mp_row_loss(row, label, alpha[label], V.GAMMA_MAX)) for row in z])
        with np.errstate(over="ignore"):
            gap_fits = np.isfinite(z64.max(axis=1) - z64[:, label])
        representable = (want <= big) & gap_fits
        assert representable.mean() > 0.5  # not a vacuous check
        assert np.isfinite(got[representable]).all()
        np.testing.assert_allclose(got[representable], want[representable].astype(dtype), rtol=1e-6)
        assert np.isinf(got[~representable]).all()
        fine = representable & (np.abs(z).max(axis=1) < 1e30)
        assert math.isfinite(loss.mean_loss(np.full(fine.sum(), label), z[fine]))


# --------------------------------------------------------------------------- failed calls change nothing


def test_refused_calls_leave_the_callers_buffers_untouched():
    y, z, w = _data()
    loss = MulticlassFocalLoss((0.5, 2.0, 1.0), 2.0)
    grad, hess, out = np.full_like(z, 7.0), np.full_like(z, 7.0), np.full(len(y), 7.0)
    refusals = [
        (lambda: loss.gradient_hessian(y, z, np.r_[1e308, w[1:]], grad, hess), "sample_weight up to"),
        (lambda: loss.gradient_hessian(y, z, w, grad, hess, n_threads=0), "n_threads"),
        (lambda: loss.gradient_hessian(y, z[:, :2], None, grad[:, :2].copy(), hess), "alpha has 3"),
        (lambda: loss.gradient_hessian(y, z, w, grad, grad), "shares memory"),
        (lambda: loss.loss(y, z, w, out, n_threads="2"), "n_threads"),
        (lambda: loss.loss(y, z, w, w), "loss_out shares memory with sample_weight"),
    ]
    for call, match in refusals:
        with pytest.raises((TypeError, ValueError), match=match):
            call()
        assert (grad == 7.0).all() and (hess == 7.0).all() and (out == 7.0).all()


def test_refused_setstate_leaves_the_loss_as_it_was():
    loss = MulticlassFocalLoss((0.5, 2.0, 1.0), 2.0, hessian="positive")
    before = copy.copy(loss)
    y, z, _ = _data()
    g0, h0 = loss.gradient_hessian(y, z)
    for state in (
        {"alpha": (1.0, 1.0), "gamma": -1.0, "hessian": "clamp"},  # valid alpha, bad gamma
        {"alpha": (1.0, 1.0), "gamma": 1.0, "hessian": "nope"},  # valid alpha and gamma, bad policy
    ):
        with pytest.raises(ValueError):
            loss.__setstate__(state)
        assert loss == before and repr(loss) == repr(before)
        g, h = loss.gradient_hessian(y, z)
        np.testing.assert_array_equal(g, g0)
        np.testing.assert_array_equal(h, h0)


def test_prepared_rows_refuse_overflowing_weights_before_touching_their_buffers():
    y, z, w = _data()
    loss = MulticlassFocalLoss((0.5, 2.0, 1.0), 2.0)
    rows = MulticlassPreparedRows(y, np.r_[1e38, w[1:]], n_classes=3)
    g, h = rows.gradient_hessian(loss, z)  # float64: fine, and these are the rows' own buffers
    g_copy, h_copy = g.copy(), h.copy()
    with pytest.raises(ValueError, match="overflows float32"):
        rows.gradient_hessian(loss, z.astype(np.float32))
    with pytest.raises(ValueError, match="overflows float32"):
        rows.gradient_hessian(loss, z, out_dtype=np.float32)
    np.testing.assert_array_equal(g, g_copy)
    np.testing.assert_array_equal(h, h_copy)
