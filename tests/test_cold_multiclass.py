"""Cold start, multiclass: the Python row formulas against the kernels, the row budget, no Numba in a small fit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gbfocal import MulticlassFocalLoss, _loss
from gbfocal import _formulas as F
from gbfocal import _multiclass as M

ROOT = Path(__file__).resolve().parents[1]
POLICIES = list(M.MULTICLASS_HESSIAN_POLICIES)
TINY = 1e-300  # entries that underflow on one path may be subnormal on the other


def _margins(k: int, dtype=np.float64) -> np.ndarray:
    """Random rows plus the extremes: ±1e4, ties, one dominant class, clamped and near-underflow gaps."""
    rng = np.random.default_rng(k)
    rows = [rng.normal(0.0, 6.0, (300, k))]
    special = [
        np.zeros(k),  # all tied
        np.r_[1e4, np.zeros(k - 1)],  # one dominant class
        np.r_[-1e4, np.zeros(k - 1)],
        np.r_[np.full(2, 3.0), np.full(k - 2, -1.0)],  # a tie for the maximum
        np.linspace(-1e4, 1e4, k),
        np.r_[1e300, -1e300, np.zeros(k - 2)],  # clamped at Z_SATURATED
        np.r_[0.0, -745.0, np.full(k - 2, -740.0)],
        np.r_[40.0, np.zeros(k - 1)],
    ]
    rows.append(np.array(special))
    z = np.concatenate(rows)
    if dtype == np.float32:
        z = np.clip(z, -3e38, 3e38)  # ±1e300 becomes float32's near-largest margin
    z = z.astype(dtype)
    return np.ascontiguousarray(z)


def _labels(z: np.ndarray) -> np.ndarray:
    """Every class as the label of every special row, plus random labels."""
    rng = np.random.default_rng(z.shape[1] + 7)
    return rng.integers(0, z.shape[1], z.shape[0])


def _both_gradients(loss, y, z, w):
    yy, zz, ww = loss._check(y, z, w)
    py = loss._gradient_hessian_python(yy, zz, ww, np.empty_like(zz), np.empty_like(zz))
    kernel = loss._gradient_hessian_checked(yy, zz, ww, np.empty_like(zz), np.empty_like(zz), 1)
    return py, kernel


def _hess_scale(loss, y, z, w):
    """Per entry, the sum of the magnitudes of the exact Hessian's terms (times the weight)."""
    alpha = loss._alpha_for(z.shape[1]).tolist()
    out = np.empty(z.shape)
    for i, (row, yi) in enumerate(zip(z.astype(np.float64).tolist(), y.tolist(), strict=True)):
        e, kmax, u, inv, p, q, nlp, qg = F.multiclass_row_terms(row, yi, alpha[yi], loss.gamma, -1, F.Z_SATURATED)
        c = alpha[yi] * qg
        s_nt = u if yi == kmax else 1.0 + (u - e[yi])
        for k, ek in enumerate(e):
            if k == yi:
                rho, sigma = 1.0, p
            else:
                rho = -ek / s_nt if s_nt > 0.0 else 0.0
                sigma = -rho * (u * inv if k == kmax else 1.0 - ek * inv)
            out[i, k] = F.multiclass_hess_scale(c, loss.gamma, p, q, nlp, rho, sigma)
    return out * (1.0 if w is None else w[:, None])


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("gamma", [0.0, 2.0, 1.7])
@pytest.mark.parametrize("weighted", [False, True])
def test_python_gradient_hessian_matches_kernel(k, policy, gamma, weighted):
    z = _margins(k)
    y = _labels(z)
    w = np.random.default_rng(3).uniform(0.1, 5.0, z.shape[0]) if weighted else None
    loss = MulticlassFocalLoss(alpha=np.linspace(0.5, 2.0, k), gamma=gamma, hessian=policy)
    (g_py, h_py), (g_k, h_k) = _both_gradients(loss, y, z, w)
    np.testing.assert_allclose(g_py, g_k, rtol=1e-13, atol=TINY)
    scale = np.maximum(_hess_scale(loss, y, z, w), np.abs(h_k))
    assert np.all(np.abs(h_py - h_k) <= 1e-13 * scale + TINY)
    assert np.isfinite(g_py).all() and np.isfinite(h_py).all()


@pytest.mark.parametrize("policy", POLICIES)
def test_python_gradient_hessian_float32_margins(policy):
    z = _margins(4, np.float32)
    y = _labels(z)
    loss = MulticlassFocalLoss(gamma=2.0, hessian=policy)
    (g_py, h_py), (g_k, h_k) = _both_gradients(loss, y, z, None)
    assert g_py.dtype == h_py.dtype == np.float32
    np.testing.assert_allclose(g_py, g_k, rtol=1e-6, atol=1e-37)
    scale = np.maximum(_hess_scale(loss, y, z, None), np.abs(h_k))
    assert np.all(np.abs(h_py.astype(np.float64) - h_k) <= 1e-6 * scale + 1e-37)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("gamma", [0.0, 2.0, 1.7])
def test_python_loss_and_mean_loss_match_kernel(k, gamma):
    z = _margins(k)
    y = _labels(z)
    w = np.random.default_rng(4).uniform(0.1, 5.0, z.shape[0])
    loss = MulticlassFocalLoss(alpha=np.linspace(2.0, 0.5, k), gamma=gamma)
    yy, zz, ww = loss._check(y, z, w)
    np.testing.assert_allclose(loss._python_losses(yy, zz), _kernel_losses(loss, yy, zz), rtol=1e-13, atol=TINY)
    for weights in (ww, M._EMPTY):
        py = loss._mean_loss_checked(yy, zz, weights, 1, in_python=True)
        kernel = loss._mean_loss_checked(yy, zz, weights, 1, in_python=False)
        assert py == pytest.approx(kernel, rel=1e-13)


def _kernel_losses(loss, y, z):
    from gbfocal import _cpu

    out = np.empty(z.shape[0])
    args = (y, z, M._EMPTY, loss._alpha_for(z.shape[1]), loss.gamma, loss._gamma_int, out)
    _cpu.run_chunked(_cpu.multiclass_loss_kernel, z.shape[0], args, 1)
    return out


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("gamma", [0.0, 2.0, 1.7])
def test_python_posterior_matches_kernel(monkeypatch, k, gamma):
    z = _margins(k)
    loss = MulticlassFocalLoss(alpha=np.linspace(0.5, 2.0, k), gamma=gamma)
    python = loss.posterior(z)
    monkeypatch.setattr(M, "ONE_OFF_PYTHON_MARGINS", 0)  # every array through the kernel
    kernel = loss.posterior(z)
    np.testing.assert_allclose(python, kernel, rtol=1e-13, atol=TINY)
    np.testing.assert_allclose(python.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("rows", [10, 20_000])
def test_non_finite_margins_refused_before_any_write(rows):
    loss = MulticlassFocalLoss(gamma=2.0)
    z = np.zeros((rows, 3))
    z[-1, 1] = np.nan
    y = np.zeros(rows, dtype=int)
    grad, hess = np.full_like(z, 7.0), np.full_like(z, 7.0)
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        loss.gradient_hessian(y, z, gradient_out=grad, hessian_out=hess)
    out = np.full(rows, 7.0)
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        loss.loss(y, z, loss_out=out)
    if rows <= _loss.ONE_OFF_PYTHON_ROWS:  # the Python path checks first (the kernels report as they go)
        assert (grad == 7.0).all() and (hess == 7.0).all() and (out == 7.0).all()
    for call in (lambda: loss.mean_loss(y, z), lambda: loss.posterior(z)):
        with pytest.raises(ValueError, match="1 NaN or infinite"):
            call()
    prepared = loss.prepared(y, n_classes=3)
    for call in (lambda: prepared.gradient_hessian(loss, z), lambda: prepared.mean_loss(loss, z)):
        with pytest.raises(ValueError, match="1 NaN or infinite"):
            call()


def _spy(monkeypatch) -> list[str]:
    """Record which path each gradient/mean-loss call takes."""
    seen: list[str] = []
    cls = MulticlassFocalLoss
    py_grad, k_grad, mean = cls._gradient_hessian_python, cls._gradient_hessian_checked, cls._mean_loss_checked

    def grad_python(self, *args):
        seen.append("python")
        return py_grad(self, *args)

    def grad_kernel(self, *args):
        seen.append("kernel")
        return k_grad(self, *args)

    def mean_loss(self, y, z, w, n_threads, in_python=False):
        seen.append("loss-python" if in_python else "loss-kernel")
        return mean(self, y, z, w, n_threads, in_python)

    monkeypatch.setattr(cls, "_gradient_hessian_python", grad_python)
    monkeypatch.setattr(cls, "_gradient_hessian_checked", grad_kernel)
    monkeypatch.setattr(cls, "_mean_loss_checked", mean_loss)
    return seen


def test_prepared_rows_switch_to_the_kernel_when_the_budget_is_spent(monkeypatch):
    n, k = 100, 3
    rng = np.random.default_rng(5)
    y, z = rng.integers(0, k, n), rng.normal(size=(n, k)).astype(np.float32)
    monkeypatch.setattr(_loss, "PYTHON_ROW_BUDGET", 3 * n * k)  # margins (rows x K) are counted
    seen = _spy(monkeypatch)
    loss = MulticlassFocalLoss(gamma=2.0)
    prepared = loss.prepared(y, n_classes=k)
    results = [prepared.gradient_hessian(loss, z)[0].copy() for _ in range(5)]
    assert seen == ["python"] * 3 + ["kernel"] * 2
    np.testing.assert_allclose(results[0], results[4], rtol=1e-6)
    seen.clear()
    for _ in range(4):
        prepared.mean_loss(loss, z)
    assert seen == ["loss-python"] * 3 + ["loss-kernel"]
    seen.clear()
    prepared.gradient_hessian(loss, z.astype(np.float64))  # another specialisation: its own account
    assert seen == ["python"]


def test_one_off_calls_switch_on_size_and_budget(monkeypatch):
    seen = _spy(monkeypatch)
    loss = MulticlassFocalLoss(gamma=2.0)
    small = np.zeros((10, 3))
    loss.gradient_hessian(np.zeros(10, dtype=int), small)
    big_rows = np.zeros((_loss.ONE_OFF_PYTHON_ROWS + 1, 2))
    loss.gradient_hessian(np.zeros(big_rows.shape[0], dtype=int), big_rows)
    wide = np.zeros((100, M.ONE_OFF_PYTHON_MARGINS // 100 + 1))
    loss.gradient_hessian(np.zeros(100, dtype=int), wide)
    assert seen == ["python", "kernel", "kernel"]
    seen.clear()
    monkeypatch.setattr(_loss, "PYTHON_ROW_BUDGET", 40)  # spent by the next call's 30 margins plus one more
    fresh = MulticlassFocalLoss(gamma=2.0)
    fresh.gradient_hessian(np.zeros(10, dtype=int), small)
    fresh.gradient_hessian(np.zeros(10, dtype=int), small)
    assert seen == ["python", "kernel"]


def test_class_totals_without_a_kernel():
    loss = MulticlassFocalLoss(gamma=2.0)
    y = np.array([0, 2, 2, 1, 0])
    np.testing.assert_array_equal(loss.class_weight_totals(y, n_classes=4), [2.0, 1.0, 2.0, 0.0])
    w = np.array([1e-20, 1e20, 3.0, 2e-20, 1.0])
    totals = loss.class_weight_totals(y, w)
    np.testing.assert_allclose(totals, [1e-20 + 1.0, 2e-20, 1e20 + 3.0], rtol=1e-15)


# A 2,000-row, 3-class, 5-tree fit and predict_proba, with and without an eval set and early
# stopping: the whole run in the Python formulas, Numba never imported.
_NO_NUMBA = textwrap.dedent(
    """
    import sys
    import numpy as np
    from gbfocal.xgboost import XGBFocalClassifier
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 5))
    y = np.digitize(X[:, 0] + rng.logistic(size=2000), [-1.0, 1.0])
    w = rng.uniform(0.5, 2.0, 2000)
    XGBFocalClassifier(n_estimators=5, n_jobs=1).fit(X, y, sample_weight=w).predict_proba(X)
    model = XGBFocalClassifier(n_estimators=5, n_jobs=1, early_stopping_rounds=2, focal_alpha="balanced")
    model.fit(X[:1500], y[:1500], eval_set=[(X[1500:], y[1500:])])
    assert model.predict_proba(X).shape == (2000, 3)
    print("numba" in sys.modules, "llvmlite" in sys.modules, "gbfocal._cpu" in sys.modules)
    """
)


def test_small_multiclass_fit_never_imports_numba(tmp_path):
    pytest.importorskip("xgboost")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _NO_NUMBA], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].split() == ["False", "False", "False"]


@pytest.mark.parametrize("path", ["python", "kernel"])
@pytest.mark.parametrize("gap", [709.5, 720.0, 744.0])
def test_target_ahead_by_a_subnormal_gap_gives_finite_softmax_gradients(monkeypatch, path, gap):
    # Σ_{k≠y} e^{z_k - m} is subnormal here: its plain reciprocal overflowed and gave inf/NaN gradients
    if path == "kernel":
        monkeypatch.setattr(M, "ONE_OFF_PYTHON_MARGINS", 0)
    z = np.array([[0.0, 0.0, gap], [gap, 0.0, 0.0]])
    y = np.array([2, 0])
    g, h = MulticlassFocalLoss(None, 0.0).gradient_hessian(y, z)
    assert np.isfinite(g).all() and np.isfinite(h).all()
    p_off = np.exp(-gap) / (1.0 + 2.0 * np.exp(-gap))  # γ = 0: the gradient is p - onehot(y)
    np.testing.assert_allclose(g[0], [p_off, p_off, -2.0 * p_off], rtol=1e-12, atol=0)
    np.testing.assert_allclose(g[1], [-2.0 * p_off, p_off, p_off], rtol=1e-12, atol=0)
    g2, h2 = MulticlassFocalLoss([1.0, 2.0, 0.5], 2.0).gradient_hessian(y, z)
    assert np.isfinite(g2).all() and np.isfinite(h2).all() and (h2 > 0).all()
