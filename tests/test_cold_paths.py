"""The two row paths: the Python formulas (small work) and the compiled kernels, and the budget between them."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
from _reference import hessian_term_scale

from gbfocal import FocalLoss, PreparedRows, _loss
from gbfocal import _formulas as F

F32_TINY = float(np.finfo(np.float32).tiny)

# ordinary margins and every regime of the formulas: both tails, the float32 and float64
# exp underflow points, the Z_SATURATED clamp, the largest finite values
_MARGINS = np.concatenate(
    [
        np.random.default_rng(3).normal(scale=6.0, size=3000),
        np.linspace(-3, 3, 61),
        [0.0, 1e-8, -1e-8, 2.79, -2.79, 40, -40, 88, -88, 104, -104, 700, -700, 745.2, -745.2, 746, -746],
        [1e4, -1e4, 1e20, -1e20, 1e30, -1e30, 3.4e38, -3.4e38],
    ]
)
_CASES = [(0.25, 2.0), (0.5, 0.0), (0.75, 0.5), (0.1, 5.0), (0.9, 1.7), (0.25, 1.0), (0.3, 3.0), (0.6, 4.0)]


def _both_paths(monkeypatch, fn):
    """``fn()`` on the Python path (default budget, small arrays) and on the kernels (budget 0)."""
    python = fn()
    monkeypatch.setattr(_loss, "PYTHON_ROW_BUDGET", 0)
    compiled = fn()
    monkeypatch.undo()
    return python, compiled


def _labels(n):
    return (np.arange(n) % 3 == 0).astype(np.float64)


@pytest.mark.parametrize(("alpha", "gamma"), _CASES)
@pytest.mark.parametrize("hessian", ["positive", "exact", "abs", "clip"])
@pytest.mark.parametrize("weighted", [False, True])
def test_python_rows_agree_with_the_float64_kernel(monkeypatch, alpha, gamma, hessian, weighted):
    """libm's exp/log1p against the kernel's polynomials: a few float64 ulp apart, on every regime."""
    z = _MARGINS
    y = _labels(z.size)
    w = np.random.default_rng(1).uniform(0.0, 3.0, z.size) if weighted else None
    loss = FocalLoss(alpha, gamma, hessian=hessian)
    (g_py, h_py), (g_k, h_k) = _both_paths(monkeypatch, lambda: loss.gradient_hessian(y, z, w))
    assert g_py.dtype == h_py.dtype == np.float64
    tol = 1e-13  # both within ~4 ulp of the true value, amplified by q**γ (γ <= 5)
    tiny = 1e-300
    np.testing.assert_array_less(np.abs(g_py - g_k), tol * np.abs(g_k) + tiny)
    scale = hessian_term_scale(y, z, alpha, gamma, w) if hessian != "positive" and gamma else np.abs(h_k)
    floor = 0.0 if hessian == "exact" else F.HESSIAN_FLOOR * (1.0 if w is None else w)
    np.testing.assert_array_less(np.abs(h_py - h_k), tol * scale + floor * tol + tiny)
    (l_py, m_py), (l_k, m_k) = _both_paths(monkeypatch, lambda: (loss.loss(y, z, w), loss.mean_loss(y, z, w)))
    np.testing.assert_array_less(np.abs(l_py - l_k), tol * np.abs(l_k) + tiny)
    assert m_py == pytest.approx(m_k, rel=1e-13)


@pytest.mark.parametrize(("alpha", "gamma"), _CASES)
@pytest.mark.parametrize("hessian", ["positive", "exact", "clip"])
@pytest.mark.parametrize("weighted", [False, True])
def test_python_rows_agree_with_the_float32_kernel(monkeypatch, alpha, gamma, hessian, weighted):
    """float32 margins: the Python path computes in float64 and rounds once, within the float32 kernel's 1e-5."""
    z = _MARGINS.astype(np.float32)
    y = _labels(z.size)
    w = np.random.default_rng(2).uniform(0.0, 3.0, z.size).astype(np.float32) if weighted else None
    loss = FocalLoss(alpha, gamma, hessian=hessian)
    rows = PreparedRows(y, w)
    (g_py, h_py), (g_k, h_k) = _both_paths(monkeypatch, lambda: tuple(a.copy() for a in rows.gradient_hessian(loss, z)))
    assert g_py.dtype == h_py.dtype == np.float32
    tol = 1e-5  # the float32 kernel's documented bound against float64 arithmetic
    np.testing.assert_array_less(np.abs(g_py - g_k), tol * np.abs(g_py) + 2 * F32_TINY)
    if hessian == "positive" or gamma == 0.0:
        np.testing.assert_array_less(np.abs(h_py - h_k), tol * np.abs(h_py) + 2 * F32_TINY)
    else:
        scale = hessian_term_scale(y, z, alpha, gamma, w)
        floor = 0.0 if hessian == "exact" else F.HESSIAN_FLOOR * (1.0 if w is None else w)
        np.testing.assert_array_less(np.abs(h_py - h_k), tol * scale + floor + 2 * F32_TINY)


def test_python_rows_float32_out_of_float64_margins_round_the_float64_result():
    z = _MARGINS
    y = _labels(z.size)
    loss = FocalLoss(0.25, 2.0)
    g32, h32 = PreparedRows(y).gradient_hessian(loss, z, out_dtype=np.float32)
    g64, h64 = loss.gradient_hessian(y, z)
    np.testing.assert_array_equal(g32, g64.astype(np.float32))
    np.testing.assert_array_equal(h32, h64.astype(np.float32))


def _spy_kernels(monkeypatch):
    """A list that records every kernel launch (the compiled path) from here on."""
    launched = []
    cpu = _loss._kernels()

    class Spy:
        def __getattr__(self, name):
            return getattr(cpu, name)

        @staticmethod
        def run_chunked(kernel, n_rows, args, n_threads):
            launched.append(kernel.py_func.__name__)
            return cpu.run_chunked(kernel, n_rows, args, n_threads)

    monkeypatch.setattr(_loss, "_kernels", lambda: Spy())
    return launched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prepared_rows_switch_to_the_kernel_when_the_budget_is_spent(monkeypatch, dtype):
    """Rounds 1-3 in Python (3 x 1000 rows fit a 3,500-row budget), every later round compiled, per kernel."""
    monkeypatch.setattr(_loss, "PYTHON_ROW_BUDGET", 3500)
    launched = _spy_kernels(monkeypatch)
    z = np.linspace(-5, 5, 1000).astype(dtype)
    loss, rows = FocalLoss(), PreparedRows(_labels(1000))
    grads = [rows.gradient_hessian(loss, z)[0].copy() for _ in range(5)]
    name = "gradient_hessian_kernel_f32" if dtype == np.float32 else "gradient_hessian_kernel"
    assert launched == [name, name]
    np.testing.assert_allclose(grads[0], grads[4], rtol=1e-5)
    # the loss-sum kernel has its own account: its first three calls run in Python again
    for _ in range(4):
        rows.mean_loss(loss, z)
    assert launched == [name, name, "loss_sum_kernel"]
    # a pickled copy (a Dask worker's) starts with a full budget
    launched.clear()
    pickle.loads(pickle.dumps(rows)).gradient_hessian(loss, z)
    assert launched == []


def test_the_switch_does_not_depend_on_a_compiled_kernel(monkeypatch):
    """A kernel compiled earlier in the process does not move the switch: same rounds, same path."""
    monkeypatch.setattr(_loss, "PYTHON_ROW_BUDGET", 2000)
    z = np.linspace(-5, 5, 1000)
    loss = FocalLoss()
    loss.gradient_hessian(_labels(20_000), np.zeros(20_000))  # compiles (or loads) the float64 kernel
    launched = _spy_kernels(monkeypatch)
    rows = PreparedRows(_labels(1000))
    for _ in range(3):
        rows.gradient_hessian(loss, z)
    assert launched == ["gradient_hessian_kernel"]


def test_one_off_calls_run_in_python_only_when_small_and_within_the_loss_budget(monkeypatch):
    monkeypatch.setattr(_loss, "PYTHON_ROW_BUDGET", 2500)
    launched = _spy_kernels(monkeypatch)
    loss = FocalLoss()
    big = _loss.ONE_OFF_PYTHON_ROWS + 1
    loss.gradient_hessian(_labels(big), np.zeros(big))  # too large for Python whatever the budget
    assert launched == ["gradient_hessian_kernel"]
    for _ in range(3):  # 2 x 1000 rows in Python, then this loss's budget is spent
        loss.mean_loss(_labels(1000), np.zeros(1000))
    assert launched == ["gradient_hessian_kernel", "loss_sum_kernel"]
    FocalLoss().mean_loss(_labels(1000), np.zeros(1000))  # another loss object: a budget of its own
    assert launched == ["gradient_hessian_kernel", "loss_sum_kernel"]
    assert FocalLoss() == loss and hash(FocalLoss()) == hash(loss)  # the budget is not part of the value


def test_each_thread_switches_where_a_lone_training_would(monkeypatch):
    """Four threads sharing one PreparedRows (xgb.train in a thread pool) each run 3 rounds in Python, then compile."""
    monkeypatch.setattr(_loss, "PYTHON_ROW_BUDGET", 3500)
    launched = _spy_kernels(monkeypatch)
    z = np.linspace(-5, 5, 1000).astype(np.float32)
    loss, rows = FocalLoss(), PreparedRows(_labels(1000))
    start = threading.Barrier(4)
    results: dict = {}

    def train(k):
        start.wait()
        results[k] = [rows.gradient_hessian(loss, z)[0].copy() for _ in range(5)]

    threads = [threading.Thread(target=train, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert launched == ["gradient_hessian_kernel_f32"] * 8  # rounds 4 and 5 of each thread
    for k in range(1, 4):
        for a, b in zip(results[0], results[k], strict=True):
            np.testing.assert_array_equal(a, b)
    budget = _loss.PythonRowBudget()
    assert budget.take("k", 3000)
    assert not budget.take("k", 501)
    assert not budget.take("k", 1)  # spent for good, even for a call that would fit
    assert budget.take("other", 7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("call", ["gradient_hessian", "prepared", "mean_loss", "loss"])
def test_python_path_refuses_non_finite_margins_before_writing(dtype, call):
    loss = FocalLoss()
    y = _labels(100)
    z = np.linspace(-3, 3, 100).astype(dtype)
    z[[3, 50]] = [np.nan, np.inf]
    grad, hess = np.full(100, 7.0, dtype), np.full(100, 7.0, dtype)
    with pytest.raises(ValueError, match="raw_prediction contains 2 NaN or infinite"):
        if call == "gradient_hessian":
            loss.gradient_hessian(y, z, gradient_out=grad, hessian_out=hess)
        elif call == "prepared":
            PreparedRows(y).gradient_hessian(loss, z)
        elif call == "mean_loss":
            loss.mean_loss(y, z)
        else:
            loss.loss(y, z)
    assert (grad == 7.0).all() and (hess == 7.0).all()


def test_python_path_keeps_the_weight_overflow_check():
    y = _labels(10)
    w = np.full(10, 3e38)
    with pytest.raises(ValueError, match="overflows float32 outputs"):
        FocalLoss().gradient_hessian(y, np.zeros(10, np.float32), w)
    with pytest.raises(ValueError, match="overflows float32 outputs"):
        PreparedRows(y, w).gradient_hessian(FocalLoss(), np.zeros(10), out_dtype=np.float32)
