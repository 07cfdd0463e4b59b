"""CPU kernels: the vectorisable primitives, threads, lazy import, on-disk cache fallback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from gbfocal import FocalLoss
from gbfocal import _cpu as C

ROOT = Path(__file__).resolve().parents[1]


@njit
def _exp_neg_array(a, out):
    for i in range(a.shape[0]):
        out[i] = C.exp_neg(a[i])


@njit
def _log1p_array(e, out):
    for i in range(e.shape[0]):
        out[i] = C.log1p_unit(e[i], 1.0 / (2.0 + e[i]))


def test_exp_neg_matches_libm():
    a = np.concatenate([np.linspace(0, 760, 400_001), np.geomspace(1e-300, 1, 2000), [0.0, 745.13, 745.2, 1e4, 1e300]])
    out = np.empty_like(a)
    _exp_neg_array(a, out)
    ref = np.exp(-a)
    normal = ref >= np.finfo(np.float64).tiny
    assert np.max(np.abs(out[normal] - ref[normal]) / ref[normal]) < 4e-16
    # subnormal results keep their absolute accuracy
    assert np.max(np.abs(out[~normal] - ref[~normal])) <= 1e-323
    assert out[-1] == 0.0 and out[-2] == 0.0


def test_log1p_unit_matches_libm():
    e = np.concatenate([np.linspace(0, 1, 200_001), np.geomspace(1e-307, 1, 5000)])
    out = np.empty_like(e)
    _log1p_array(e, out)
    ref = np.log1p(e)
    nz = ref > 0
    assert np.max(np.abs(out[nz] - ref[nz]) / ref[nz]) < 8e-16  # a few ulp
    assert out[0] == 0.0


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
