"""CPU kernels: the vectorisable primitives, threads, lazy import, on-disk cache fallback."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from _reference import hessian_term_scale
from numba import njit, types

from gbfocal import FocalLoss, _loss
from gbfocal import _cpu as C
from gbfocal import _formulas as F

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def compiled_rows():
    """Every call here runs the kernels, small ones too (tests/test_cold_paths.py covers the Python rows)."""
    patch = pytest.MonkeyPatch()
    patch.setattr(_loss, "PYTHON_ROW_BUDGET", 0)
    yield
    patch.undo()


@njit
def _exp_neg_array(exp_neg, a, out):
    for i in range(a.shape[0]):
        out[i] = exp_neg(a[i])


@njit
def _log1p_array(log1p_unit, as_float, e, out):
    for i in range(e.shape[0]):
        out[i] = log1p_unit(e[i], as_float(1.0) / (as_float(2.0) + e[i]))


_PRIMITIVES = {
    np.float64: (C.exp_neg, C.log1p_unit, C.as_float),
    np.float32: (C.exp_neg32, C.log1p_unit32, C.as_float32),
}


F32_TINY = float(np.finfo(np.float32).tiny)
F32_EPS = float(np.finfo(np.float32).eps)

_EXP_CASES = {  # dtype: (arguments, relative bound on normal results, absolute bound on subnormal ones)
    np.float64: (
        [np.linspace(0, 760, 400_001), np.geomspace(1e-300, 1, 2000), [0.0, 745.13, 745.2, 1e4, 1e300]],
        4e-16,
        1e-323,
    ),
    np.float32: (
        [np.linspace(0, 110, 400_001), np.geomspace(1e-30, 1, 2000), [103.97, 104.0, 1e4, 3e38]],
        3 * F32_EPS,
        2e-45,
    ),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_neg_matches_libm(dtype):
    """exp_neg (float64) and exp_neg32 (float32) against NumPy's exp in float64."""
    parts, rel, subnormal_abs = _EXP_CASES[dtype]
    a = np.concatenate(parts).astype(dtype)
    out = np.empty_like(a)
    _exp_neg_array(_PRIMITIVES[dtype][0], a, out)
    ref = np.exp(-a.astype(np.float64))
    normal = ref >= np.finfo(dtype).tiny
    assert np.max(np.abs(out[normal] - ref[normal]) / ref[normal]) < rel
    assert np.max(np.abs(out[~normal] - ref[~normal])) <= subnormal_abs  # subnormals: absolute accuracy
    assert out[-1] == 0.0 and out[-2] == 0.0


@pytest.mark.parametrize("dtype, smallest, rel", [(np.float64, 1e-307, 8e-16), (np.float32, 1e-38, 3 * F32_EPS)])
def test_log1p_unit_matches_libm(dtype, smallest, rel):
    e = np.concatenate([np.linspace(0, 1, 200_001), np.geomspace(smallest, 1, 5000)]).astype(dtype)
    out = np.empty_like(e)
    _log1p_array(*_PRIMITIVES[dtype][1:], e, out)
    ref = np.log1p(e.astype(np.float64))
    nz = ref > 0
    assert np.max(np.abs(out[nz] - ref[nz]) / ref[nz]) < rel  # a few ulp
    assert out[0] == 0.0


_A_FLOAT_GLOBAL = 1e20


def test_float32_twin_retypes_constants_and_globals():
    def f(x):
        return x * 2.0 + _A_FLOAT_GLOBAL

    plain = njit(f)
    plain(np.float32(1.5))
    assert plain.nopython_signatures[0].return_type == types.float64  # what the twin exists for

    twin = C.float32_twin(f)
    assert twin.__name__ == "f_f32" and twin.__qualname__.endswith("f_f32")
    assert all(type(c) is not float for c in twin.__code__.co_consts)
    compiled = njit(twin)
    assert compiled(np.float32(1.5)) == np.float32(3.0) + np.float32(1e20)
    assert compiled.nopython_signatures[0].return_type == types.float32


_MARGINS32 = np.concatenate(
    [
        np.random.default_rng(7).normal(scale=6.0, size=20_000),
        np.random.default_rng(8).uniform(-120, 120, size=20_000),
        np.linspace(-3, 3, 2001),
        [0.0, 1e-8, -1e-8, 2.4, -2.4, 40, -40, 88, -88, 103, -103, 104, -104, 700, -700, 745, -745, 1e4, -1e4],
        [1e20, -1e20, 1e30, -1e30, 3.4e38, -3.4e38],
    ]
).astype(np.float32)


@pytest.mark.parametrize(
    "alpha,gamma", [(0.25, 2.0), (0.5, 0.0), (0.75, 0.5), (0.1, 5.0), (0.9, 1.7), (0.25, 1.0), (0.3, 3.0), (0.6, 4.0)]
)
@pytest.mark.parametrize("hessian", ["positive", "exact", "abs", "clip"])
@pytest.mark.parametrize("weighted", [False, True])
def test_float32_kernel_agrees_with_the_float64_kernel(alpha, gamma, hessian, weighted):
    """float32 margins are computed in float32 (8 lanes): error bounded against the float64 kernel."""
    z = _MARGINS32
    y = (np.arange(z.size) % 3 == 0).astype(np.float64)
    w = np.random.default_rng(1).uniform(0.0, 3.0, z.size).astype(np.float32) if weighted else None
    loss = FocalLoss(alpha, gamma, hessian=hessian)
    g32, h32 = loss.gradient_hessian(y, z, w)
    g64, h64 = loss.gradient_hessian(y, z.astype(np.float64), w)
    assert g32.dtype == h32.dtype == np.float32
    assert np.isfinite(g32).all() and np.isfinite(h32).all()
    if hessian != "exact":
        rows = slice(None) if w is None else w > 0
        assert (h32[rows] > 0).all()
    # relative error: a few float32 ulp per operation, amplified by q**gamma (bound 1e-5; ~100 ulp)
    tol = 1e-5
    assert np.all(np.abs(g32 - g64) <= tol * np.abs(g64) + 2 * F32_TINY)
    if hessian in ("positive",) or gamma == 0.0:
        assert np.all(np.abs(h32 - h64) <= tol * np.abs(h64) + 2 * F32_TINY)
    else:
        # the exact Hessian cancels where it crosses zero: compare against its terms' size
        scale = hessian_term_scale(y, z, alpha, gamma, w)
        floor = 0.0 if hessian == "exact" else F.HESSIAN_FLOOR * (1.0 if w is None else w)
        assert np.all(np.abs(h32 - h64) <= tol * scale + floor + 2 * F32_TINY)


def test_float32_kernel_row_loop_is_eight_lanes_wide():
    """Regression guard for the vector width (no timing): one 64-bit value in the row loop makes LLVM pick 4 lanes."""
    fresh = njit(nogil=True, fastmath={"contract"}, error_model="numpy")(C.gradient_hessian_kernel32.py_func)
    f32, f64 = np.zeros(8, np.float32), np.zeros(8, np.float64)
    fresh(f32, f32, f64[:0], np.float32(0.25), np.float32(2.0), 2, 1, f32.copy(), f32.copy(), 0, 8)
    ir = "".join(fresh.inspect_llvm().values())
    assert "<8 x float>" in ir


def test_float32_margins_flag_non_finite_values():
    loss = FocalLoss()
    for bad in (np.nan, np.inf, -np.inf):
        z = np.zeros(70_000, np.float32)
        z[[5, 40_000, 69_999]] = bad
        with pytest.raises(ValueError, match="contains 3 NaN"):
            loss.gradient_hessian(np.zeros(70_000), z)


def test_chunking_covers_every_row_once():
    n = 3 * C.MIN_ROWS_PER_THREAD + 17
    y = np.zeros(n)
    z = np.arange(n, dtype=np.float64) / n
    loss = FocalLoss()
    for n_threads in (1, 2, 3, 7):
        g, _ = loss.gradient_hessian(y, z, n_threads=n_threads)
        ref, _ = loss.gradient_hessian(y[:1000], z[:1000], n_threads=1)
        np.testing.assert_array_equal(g[:1000], ref)
        assert np.all(np.diff(g) > 0)  # every row written, in order (gradient grows with z for y = 0)


def test_concurrent_calls_from_many_threads():
    # Dask workers with threads_per_worker > 1 call the kernels at the same time
    rng = np.random.default_rng(0)
    n = 4 * C.MIN_ROWS_PER_THREAD
    y = (rng.random(n) < 0.1).astype(float)
    zs = [rng.normal(size=n) for _ in range(8)]
    loss = FocalLoss(0.25, 1.5)
    expected = [loss.gradient_hessian(y, z, n_threads=1)[0] for z in zs]
    results: list = [None] * 8
    errors: list = []

    def work(k):
        try:
            for _ in range(5):
                results[k] = loss.gradient_hessian(y, zs[k], n_threads=2)[0]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_concurrent_calls_with_different_thread_counts():
    # the pool must never be shut down under a thread that is submitting to it
    n = 4 * C.MIN_ROWS_PER_THREAD
    y = np.zeros(n)
    z = np.linspace(-5, 5, n)
    loss = FocalLoss()
    expected = loss.gradient_hessian(y, z, n_threads=1)[0]
    errors: list = []

    def work(k):
        try:
            for i in range(20):
                got = loss.gradient_hessian(y, z, n_threads=1 + (i + k) % 4)[0]
                if not np.array_equal(got, expected):
                    errors.append("wrong result")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _run(code: str, env: dict | None = None) -> str:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_compiles_nothing_and_loads_no_numba():
    out = _run(
        """
        import sys, gbfocal
        loss = gbfocal.FocalLoss(0.25, 2.0)
        print('numba' in sys.modules, 'xgboost' in sys.modules, 'lightgbm' in sys.modules)
        """
    )
    assert out.split() == ["False", "False", "False"]


def test_no_writable_cache_location_falls_back_to_memory():
    # As on a read-only site-packages with no writable home: every Numba cache
    # locator fails its write probe. Root ignores file modes, so the probe is
    # made to fail the way a read-only file system makes it fail.
    out = _run(
        """
        import errno, numpy as np
        from numba.core import caching
        def read_only(self):
            raise OSError(errno.EROFS, "Read-only file system")
        caching._CacheLocator.ensure_cache_path = read_only
        from gbfocal import FocalLoss
        g, h = FocalLoss().gradient_hessian(np.array([0.0, 1.0]), np.array([0.5, -0.5]))
        print(np.isfinite(g).all() and (h > 0).all())
        """
    )
    assert out.strip() == "True"


def test_forked_child_can_compute():
    out = _run(
        """
        import os, numpy as np
        from gbfocal import FocalLoss
        loss = FocalLoss()
        y = np.zeros(200_000); z = np.linspace(-5, 5, y.size)
        ref = loss.gradient_hessian(y, z, n_threads=2)[0]
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(loss.gradient_hessian(y, z, n_threads=2)[0], ref)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """
    )
    assert out.strip() == "0"


@pytest.mark.skipif(sys.platform != "linux", reason="uses os.fork")
def test_default_threads_respect_affinity():
    assert C.default_n_threads() == len(os.sched_getaffinity(0))


def test_run_chunked_ranges_are_fixed_and_in_order_whoever_runs_them():
    # ranges depend on n_rows and the thread count only; results come back in range order
    seen: list = []
    lock = threading.Lock()

    def kernel(tag, lo, hi):
        with lock:
            seen.append((lo, hi, threading.current_thread().name))
        return (tag, lo, hi)

    n = 5 * C.MIN_ROWS_PER_THREAD + 3
    parts = C.run_chunked(kernel, n, ("t",), 3)
    assert len(parts) == 3 * C.PIECES_PER_THREAD
    assert parts[0][1] == 0 and parts[-1][2] == n
    assert all(a[2] == b[1] for a, b in itertools.pairwise(parts))  # contiguous, in order
    assert sorted((lo, hi) for lo, hi, _ in seen) == [p[1:] for p in parts]  # each range run once
    assert C.run_chunked(kernel, n, ("t",), 3) == parts
    assert C.run_chunked(kernel, 100, ("t",), 3) == [("t", 0, 100)]  # small: the caller alone


def test_run_chunked_reports_an_error_after_every_range_has_stopped():
    running = []
    lock = threading.Lock()

    def kernel(lo, hi):
        with lock:
            running.append(1)
        time.sleep(0.01)
        with lock:
            running.pop()
        if lo == 0:
            raise RuntimeError("piece 0 failed")
        return lo

    with pytest.raises(RuntimeError, match="piece 0 failed"):
        C.run_chunked(kernel, 4 * C.MIN_ROWS_PER_THREAD, (), 2)
    assert running == []  # nothing still writing when the error reaches the caller
