"""FocalLoss: API contract, Hessian policies, init_score, input validation, properties."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbfocal import HESSIAN_POLICIES, FocalLoss, PreparedRows, _loss

FLOATS = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
ALPHAS = st.floats(min_value=0.01, max_value=0.99)
GAMMAS = st.floats(min_value=0.0, max_value=6.0)


@pytest.fixture(autouse=True, scope="module", params=["python", "compiled"])
def row_path(request):
    """Every test here runs on both row paths: the Python formulas (small calls, first rounds) and the kernels."""
    patch = pytest.MonkeyPatch()
    # "python": a budget no test spends, so small calls stay on the Python formulas throughout
    patch.setattr(_loss, "PYTHON_ROW_BUDGET", 0 if request.param == "compiled" else 10**12)
    yield request.param
    patch.undo()


def _logloss(y, z):
    return np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y)


def _data(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.float64)
    z = rng.normal(0, 4, n)
    return y, z


# --------------------------------------------------------------------------- identities


def test_gamma_zero_is_alpha_weighted_logloss():
    y, z = _data()
    loss = FocalLoss(0.3, 0.0)
    alpha_t = np.where(y == 1, 0.3, 0.7)
    np.testing.assert_allclose(loss.loss(y, z), alpha_t * _logloss(y, z), rtol=1e-14)
    g, h = loss.gradient_hessian(y, z)
    p = 1 / (1 + np.exp(-z))
    p_minus_y = np.where(y == 1, -1 / (1 + np.exp(z)), p)  # p - y without cancellation
    np.testing.assert_allclose(g, alpha_t * p_minus_y, rtol=1e-13, atol=1e-300)
    one_minus_p = 1 / (1 + np.exp(z))
    np.testing.assert_allclose(h, np.maximum(alpha_t * p * one_minus_p, 1e-16), rtol=1e-12)


def test_focal_over_crossentropy_is_modulating_factor():
    y, z = _data()
    loss = FocalLoss(0.5, 2.0)
    ce = 0.5 * _logloss(y, z)
    one_minus_pt = 1 / (1 + np.exp(np.where(y == 1, z, -z)))  # σ(-t), no cancellation
    np.testing.assert_allclose(loss.loss(y, z), ce * one_minus_pt**2, rtol=1e-12, atol=1e-300)


def test_gradient_matches_central_differences():
    # 4th-order central differences, as scikit-learn's loss tests do
    y, z = _data(200, seed=1)
    z = np.clip(z, -20, 20)
    for gamma in (0.0, 0.5, 2.0, 3.3):
        loss = FocalLoss(0.25, gamma, hessian="exact")
        eps = 1e-3
        f = [loss.loss(y, z + k * eps) for k in (-2, -1, 1, 2)]
        num = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * eps)
        g, h = loss.gradient_hessian(y, z)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-9)
        gs = [loss.gradient_hessian(y, z + k * eps)[0] for k in (-2, -1, 1, 2)]
        num_h = (gs[0] - 8 * gs[1] + 8 * gs[2] - gs[3]) / (12 * eps)
        np.testing.assert_allclose(h, num_h, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- policies


@pytest.mark.parametrize("policy", sorted(HESSIAN_POLICIES))
def test_policies_finite_and_positive_on_extremes(policy):
    z = np.array([-1e300, -1e4, -745.2, -700, -40, -2.79, -1e-8, 0, 1e-8, 2.79, 40, 700, 745.2, 1e4, 1e300])
    for y in (0.0, 1.0):
        for gamma in (0.0, 0.5, 2.0, 5.0, 7.3):
            g, h = FocalLoss(0.25, gamma, hessian=policy).gradient_hessian(np.full(z.size, y), z)
            assert np.isfinite(g).all() and np.isfinite(h).all()
            if policy != "exact":
                assert (h > 0).all()


def test_policy_relations():
    y, z = _data(5000)
    exact = FocalLoss(0.25, 2.0, hessian="exact").gradient_hessian(y, z)[1]
    floor = 1e-16
    pos = FocalLoss(0.25, 2.0, hessian="positive").gradient_hessian(y, z)[1]
    ab = FocalLoss(0.25, 2.0, hessian="abs").gradient_hessian(y, z)[1]
    clip = FocalLoss(0.25, 2.0, hessian="clip").gradient_hessian(y, z)[1]
    assert (exact < 0).any(), "γ = 2 must have concave rows in this sample"
    assert (pos >= exact).all()
    np.testing.assert_array_equal(ab, np.maximum(np.abs(exact), floor))
    np.testing.assert_array_equal(clip, np.maximum(exact, floor))
    # the policies agree with the exact Hessian where it is comfortably positive and the
    # dropped term is negligible: the well-classified tail
    t = np.where(y == 1, z, -z)
    tail = t > 20
    np.testing.assert_allclose(pos[tail], np.maximum(exact[tail], floor), rtol=1e-6)


def test_gradients_identical_across_policies():
    y, z = _data()
    grads = [FocalLoss(0.25, 2.0, hessian=p).gradient_hessian(y, z)[0] for p in HESSIAN_POLICIES]
    for g in grads[1:]:
        np.testing.assert_array_equal(g, grads[0])


# --------------------------------------------------------------------------- dtypes, buffers, weights


def test_float32_margins_give_float32_outputs_without_copy():
    y, z = _data()
    z32 = z.astype(np.float32)
    loss = FocalLoss()
    g32, h32 = loss.gradient_hessian(y, z32)
    assert g32.dtype == np.float32 and h32.dtype == np.float32
    g64, h64 = loss.gradient_hessian(y, z32.astype(np.float64))
    # computed in float32 (tests/test_cpu.py bounds the error over the whole range)
    np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-38)
    np.testing.assert_allclose(h32, h64, rtol=1e-5, atol=1e-38)
    assert loss.loss(y, z32).dtype == np.float32


def test_integer_margins_are_accepted():
    loss = FocalLoss()
    np.testing.assert_allclose(loss.loss([0, 1], [1, -1]), loss.loss([0.0, 1.0], [1.0, -1.0]))


def test_output_buffers_are_reused():
    y, z = _data()
    loss = FocalLoss()
    g, h = np.empty_like(z), np.empty_like(z)
    g2, h2 = loss.gradient_hessian(y, z, gradient_out=g, hessian_out=h)
    assert g2 is g and h2 is h
    ref = loss.gradient_hessian(y, z)
    np.testing.assert_array_equal(g, ref[0])
    out = np.empty_like(z)
    assert loss.loss(y, z, loss_out=out) is out


def test_bad_output_buffers():
    y, z = _data(10)
    loss = FocalLoss()
    with pytest.raises(ValueError, match="gradient_out must have shape"):
        loss.gradient_hessian(y, z, gradient_out=np.empty(10, np.float32))
    with pytest.raises(TypeError, match="hessian_out must be a NumPy array"):
        loss.gradient_hessian(y, z, hessian_out=[0.0] * 10)
    ro = np.empty(10)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable C-contiguous"):
        loss.loss(y, z, loss_out=ro)


def test_read_only_and_memmapped_inputs(tmp_path):
    y, z = _data()
    yr, zr = y.copy(), z.copy()
    yr.flags.writeable = False
    zr.flags.writeable = False
    loss = FocalLoss()
    np.testing.assert_array_equal(loss.gradient_hessian(yr, zr)[0], loss.gradient_hessian(y, z)[0])
    path = tmp_path / "z.npy"
    np.save(path, z)
    zm = np.load(path, mmap_mode="r")
    np.testing.assert_array_equal(loss.loss(y, zm), loss.loss(y, z))


def test_sample_weight_scales_rows():
    y, z = _data()
    w = np.random.default_rng(3).uniform(0, 3, y.size)
    loss = FocalLoss(0.25, 1.5)
    g, h = loss.gradient_hessian(y, z)
    gw, hw = loss.gradient_hessian(y, z, w)
    np.testing.assert_allclose(gw, g * w, rtol=1e-15)
    np.testing.assert_allclose(hw, h * w, rtol=1e-15)
    np.testing.assert_allclose(loss.loss(y, z, w), loss.loss(y, z) * w, rtol=1e-15)
    assert loss.mean_loss(y, z, w) == pytest.approx(np.sum(loss.loss(y, z) * w) / w.sum(), rel=1e-12)
    assert loss.mean_loss(y, z) == pytest.approx(loss.loss(y, z).mean(), rel=1e-12)


def test_threads_do_not_change_results():
    y, z = _data(200_000)
    loss = FocalLoss(0.25, 2.0)
    one = loss.gradient_hessian(y, z, n_threads=1)
    four = loss.gradient_hessian(y, z, n_threads=4)
    np.testing.assert_array_equal(one[0], four[0])
    np.testing.assert_array_equal(one[1], four[1])
    assert loss.mean_loss(y, z, n_threads=4) == pytest.approx(loss.mean_loss(y, z, n_threads=1), rel=1e-12)


@pytest.mark.parametrize("hessian", ["exact", "positive", "abs", "clip"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_largest_finite_margins_give_saturated_finite_values(hessian, dtype):
    big = float(np.finfo(dtype).max)
    z = np.array([big, -big, 1e20, -1e20, 1e6, -1e6], dtype=dtype)
    y = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    g, h = FocalLoss(0.25, 2.0, hessian=hessian).gradient_hessian(y, z)
    assert np.isfinite(g).all() and np.isfinite(h).all()
    # correct class far away: no pull; wrong class far away: pull -α_t (y = 1) and +α_t (y = 0)
    np.testing.assert_array_equal(g, np.array([0.0, -0.25, 0.75, 0.0, 0.0, 0.0], dtype=dtype))
    if hessian != "exact":
        assert (h > 0).all()


def test_prepared_rows_float32_out_from_float64_margins_is_the_rounded_float64_result():
    y, z = _data()
    loss = FocalLoss(0.25, 2.0)
    rows = PreparedRows(y)
    g, h = rows.gradient_hessian(loss, z, out_dtype=np.float32)
    assert g.dtype == h.dtype == np.float32
    ref = loss.gradient_hessian(y, z)
    np.testing.assert_array_equal(g, ref[0].astype(np.float32))
    np.testing.assert_array_equal(h, ref[1].astype(np.float32))
    assert rows.gradient_hessian(loss, z)[0].dtype == np.float64  # buffers kept per (margin, output) dtype
    with pytest.raises(ValueError, match="out_dtype"):
        rows.gradient_hessian(loss, z.astype(np.float32), out_dtype=np.float64)


def test_prepared_rows_match_public_api_and_reuse_buffers():
    y, z = _data()
    w = np.linspace(0.5, 2, y.size)
    loss = FocalLoss(0.3, 2.5, hessian="abs")
    rows = PreparedRows(y, w)
    g, h = rows.gradient_hessian(loss, z)
    ref = loss.gradient_hessian(y, z, w)
    np.testing.assert_array_equal(g, ref[0])
    np.testing.assert_array_equal(h, ref[1])
    g2, _ = rows.gradient_hessian(loss, z + 1)
    assert g2 is g
    assert rows.mean_loss(loss, z) == pytest.approx(loss.mean_loss(y, z, w), rel=1e-12)
    assert rows.init_score(loss) == pytest.approx(loss.init_score(y, w), rel=1e-12)
    rows2 = pickle.loads(pickle.dumps(rows))
    np.testing.assert_array_equal(rows2.gradient_hessian(loss, z)[1], ref[1])


# --------------------------------------------------------------------------- object behaviour


def test_pickle_repr_eq():
    loss = FocalLoss(0.3, 1.5, hessian="clip")
    clone = pickle.loads(pickle.dumps(loss))
    assert clone == loss and hash(clone) == hash(loss)
    assert repr(loss) == "FocalLoss(alpha=0.3, gamma=1.5, hessian='clip')"
    assert FocalLoss() != FocalLoss(hessian="exact")
    y, z = _data(50)
    np.testing.assert_array_equal(clone.loss(y, z), loss.loss(y, z))


def test_defaults():
    loss = FocalLoss()
    assert (loss.alpha, loss.gamma, loss.hessian) == (0.25, 2.0, "positive")


# --------------------------------------------------------------------------- init_score


@pytest.mark.parametrize("alpha", [0.1, 0.25, 0.5, 0.9])
def test_init_score_gamma_zero_is_weighted_log_odds(alpha):
    y = np.r_[np.ones(37), np.zeros(963)]
    w = np.linspace(0.1, 2.0, y.size)
    w1, w0 = w[y == 1].sum(), w[y == 0].sum()
    # exact up to the rounding of the weight sums
    assert FocalLoss(alpha, 0.0).init_score(y, w) == pytest.approx(np.log(alpha * w1 / ((1 - alpha) * w0)), rel=1e-15)


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.75, 0.5), (0.1, 5.0), (0.9, 1.7), (0.5, 3.0)])
@pytest.mark.parametrize("rate", [0.005, 0.05, 0.3, 0.8])
def test_init_score_minimises_the_constant_model(alpha, gamma, rate):
    n = 10_000
    y = (np.arange(n) < rate * n).astype(float)
    loss = FocalLoss(alpha, gamma)
    z0 = loss.init_score(y)
    f0 = loss.mean_loss(y, np.full(n, z0))
    # a fine scan does no better, and the derivative vanishes at z0
    grid = np.linspace(z0 - 3, z0 + 3, 6001)
    best = min(loss.mean_loss(y, np.full(n, g)) for g in grid[::50])
    assert f0 <= best + 1e-15
    g, _ = FocalLoss(alpha, gamma, hessian="exact").gradient_hessian(y, np.full(n, z0))
    assert abs(g.mean()) < 1e-12


def test_init_score_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        FocalLoss().init_score(np.zeros(10))
    with pytest.raises(ValueError, match="both classes"):
        FocalLoss().init_score(np.r_[np.ones(5), np.zeros(5)], np.r_[np.zeros(5), np.ones(5)])


def test_class_weight_totals_add_over_partitions():
    y, _ = _data(10_000)
    w = np.random.default_rng(0).random(y.size)
    parts = [FocalLoss.class_weight_totals(y[i : i + 2500], w[i : i + 2500]) for i in range(0, 10_000, 2500)]
    total = FocalLoss.class_weight_totals(y, w)
    assert sum(p[0] for p in parts) == pytest.approx(total[0])
    loss = FocalLoss()
    assert loss.init_score_from_totals(*total) == pytest.approx(loss.init_score(y, w), rel=1e-12)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"alpha": 0.0}, ValueError, "alpha must lie strictly between 0 and 1"),
        ({"alpha": 1.0}, ValueError, "alpha must lie strictly between 0 and 1"),
        ({"alpha": float("nan")}, ValueError, "alpha must lie"),
        ({"alpha": "0.25"}, TypeError, "alpha must be a real number"),
        ({"alpha": True}, TypeError, "alpha must be a real number"),
        ({"gamma": -0.1}, ValueError, "gamma must be a finite number >= 0"),
        ({"gamma": float("nan")}, ValueError, "gamma must be a finite number >= 0"),
        ({"gamma": float("inf")}, ValueError, "gamma must be a finite number >= 0"),
        ({"gamma": None}, TypeError, "gamma must be a real number"),
        ({"hessian": "newton"}, ValueError, "hessian must be one of"),
    ],
)
def test_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        FocalLoss(**kwargs)


@pytest.mark.parametrize(
    ("y", "z", "w", "exc", "match"),
    [
        ([-1, 1, 1], [0, 0, 0], None, ValueError, r"look like \{-1, 1\}"),
        ([1, 2, 2], [0, 0, 0], None, ValueError, r"look like \{1, 2\}"),
        ([0, 1, 3], [0, 0, 0], None, ValueError, "y_true must contain only 0 and 1"),
        ([0, 1, np.nan], [0, 0, 0], None, ValueError, "y_true must contain only 0 and 1"),
        (["a", "b", "a"], [0, 0, 0], None, TypeError, "y_true must be numeric 0/1 labels"),
        ([0, 1, 1], [0, np.nan, 0], None, ValueError, "raw_prediction contains 1 NaN or infinite"),
        ([0, 1, 1], [0, np.inf, -np.inf], None, ValueError, "raw_prediction contains 2 NaN or infinite"),
        ([0, 1, 1], [0, 0], None, ValueError, "raw_prediction has 2 rows but y_true has 3"),
        ([0, 1, 1], [[0, 0, 0]], None, ValueError, "raw_prediction must be 1-D"),
        # a label matrix is multi-label (K binary problems): its margins must be (n, K) too
        ([[0, 1, 1]], [0, 0, 0], None, ValueError, r"raw_prediction must be 2-D, one margin per label"),
        ([], [], None, ValueError, "y_true is empty"),
        ([0, 1, 1], ["x", "y", "z"], None, TypeError, "raw_prediction must be a numeric array"),
        ([0, 1, 1], [0, 0, 0], [1, -1, 1], ValueError, "sample_weight contains negative values"),
        ([0, 1, 1], [0, 0, 0], [1, np.nan, 1], ValueError, "sample_weight contains NaN or infinite"),
        ([0, 1, 1], [0, 0, 0], [1, 1], ValueError, "sample_weight has 2 rows but the labels have 3"),
        ([0, 1, 1], [0, 0, 0], [[1, 1, 1]], ValueError, "sample_weight must be 1-D"),
    ],
)
def test_bad_inputs(y, z, w, exc, match):
    loss = FocalLoss()
    for call in (loss.loss, loss.gradient_hessian, loss.mean_loss):
        with pytest.raises(exc, match=match):
            call(y, z, w)


def test_bad_inputs_float32_nan():
    with pytest.raises(ValueError, match="NaN or infinite"):
        FocalLoss().gradient_hessian(np.ones(3), np.array([0, np.nan, 0], np.float32))


def test_bool_labels_and_empty_weights():
    loss = FocalLoss()
    y = np.array([True, False, True])
    z = np.array([0.5, -1.0, 2.0])
    np.testing.assert_array_equal(loss.loss(y, z), loss.loss(y.astype(float), z))
    np.testing.assert_array_equal(loss.loss(y, z, np.empty(0)), loss.loss(y, z))


# --------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(z=FLOATS, alpha=ALPHAS, gamma=GAMMAS, y=st.sampled_from([0.0, 1.0]))
def test_property_finite_and_default_hessian_positive(z, alpha, gamma, y):
    loss = FocalLoss(alpha, gamma)
    yy, zz = np.array([y]), np.array([z])
    g, h = loss.gradient_hessian(yy, zz)
    v = loss.loss(yy, zz)
    assert np.isfinite(v).all() and np.isfinite(g).all() and np.isfinite(h).all()
    assert v[0] >= 0 and h[0] > 0


@settings(max_examples=200, deadline=None)
@given(z=FLOATS, alpha=ALPHAS, gamma=GAMMAS)
def test_property_symmetry(z, alpha, gamma):
    # FL(z, 1; α) = FL(-z, 0; 1 - α), and the gradients mirror
    a = FocalLoss(alpha, gamma, hessian="exact")
    b = FocalLoss(1 - alpha, gamma, hessian="exact")
    la = a.loss(np.ones(1), np.array([z]))
    lb = b.loss(np.zeros(1), np.array([-z]))
    np.testing.assert_allclose(la, lb, rtol=1e-12, atol=1e-300)
    ga, ha = a.gradient_hessian(np.ones(1), np.array([z]))
    gb, hb = b.gradient_hessian(np.zeros(1), np.array([-z]))
    np.testing.assert_allclose(ga, -gb, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(ha, hb, rtol=1e-12, atol=1e-300)


@settings(max_examples=200, deadline=None)
@given(z=FLOATS, alpha=ALPHAS, y=st.sampled_from([0.0, 1.0]))
def test_property_gamma_zero_is_weighted_logloss(z, alpha, y):
    v = FocalLoss(alpha, 0.0).loss(np.array([y]), np.array([z]))
    alpha_t = alpha if y == 1 else 1 - alpha
    np.testing.assert_allclose(v, alpha_t * _logloss(np.array([y]), np.array([z])), rtol=1e-13, atol=1e-300)


@settings(max_examples=200, deadline=None)
@given(z=FLOATS, alpha=ALPHAS, gamma=GAMMAS, y=st.sampled_from([0.0, 1.0]))
def test_property_gradient_sign(z, alpha, gamma, y):
    # the loss always pulls the margin towards the label: dFL/dz <= 0 for y = 1, >= 0 for y = 0
    g, _ = FocalLoss(alpha, gamma).gradient_hessian(np.array([y]), np.array([z]))
    assert g[0] <= 0 if y == 1 else g[0] >= 0
