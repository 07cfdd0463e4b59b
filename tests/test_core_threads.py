"""PreparedRows shared by several threads: each gets its own buffers, none sees another's values."""

from __future__ import annotations

import gc
import pickle
import threading
import weakref

import numpy as np
import pytest

from gbfocal import FocalLoss, PreparedRows, _loss


@pytest.fixture(autouse=True)
def compiled_rows(monkeypatch):
    """Every round through the kernels: the expected values come from one-off kernel calls."""
    monkeypatch.setattr(_loss, "PYTHON_ROW_BUDGET", 0)


def _hammer(rows, loss, y, w, zs, out_dtype, rounds=40):
    """Every thread computes its own margins again and again; returns the mismatches seen."""
    if out_dtype is None:
        expected = [loss.gradient_hessian(y, z, w) for z in zs]
    else:  # weights applied to the stored float32 values: what one thread alone gets
        expected = [tuple(a.copy() for a in PreparedRows(y, w).gradient_hessian(loss, z, 1, out_dtype)) for z in zs]
    errors: list = []
    start = threading.Barrier(len(zs))

    def work(k):
        try:
            start.wait()
            for _ in range(rounds):
                g, h = rows.gradient_hessian(loss, zs[k], n_threads=1, out_dtype=out_dtype)
                if not (np.array_equal(g, expected[k][0]) and np.array_equal(h, expected[k][1])):
                    errors.append(k)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(zs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.parametrize(
    ("margin_dtype", "out_dtype"), [(np.float64, None), (np.float32, None), (np.float64, np.float32)]
)
def test_threads_sharing_prepared_rows_each_get_their_own_results(margin_dtype, out_dtype):
    # as 4 threads running xgb.train with one objective on one DMatrix do: before per-thread
    # buffers, every thread wrote into the same pair and read the others' values
    rng = np.random.default_rng(7)
    n = 100_000
    y = (rng.random(n) < 0.3).astype(np.float64)
    w = rng.uniform(0.5, 2.0, n)
    zs = [rng.normal(k - 3, 2, n).astype(margin_dtype) for k in range(6)]
    rows = PreparedRows(y, w)  # fresh: the float32 labels are made lazily, by whichever thread comes first
    assert _hammer(rows, FocalLoss(0.25, 2.0), y, w, zs, out_dtype) == []


def test_one_thread_still_reuses_its_buffers():
    y = np.array([0.0, 1.0, 1.0])
    rows = PreparedRows(y)
    loss = FocalLoss()
    g1, h1 = rows.gradient_hessian(loss, np.array([0.1, 0.2, 0.3]))
    g2, h2 = rows.gradient_hessian(loss, np.array([1.0, 2.0, 3.0]))
    assert g1 is g2 and h1 is h2
    other: dict = {}
    t = threading.Thread(target=lambda: other.update(g=rows.gradient_hessian(loss, np.zeros(3))[0]))
    t.start()
    t.join()
    assert other["g"] is not g1
    np.testing.assert_array_equal(g1, loss.gradient_hessian(y, np.array([1.0, 2.0, 3.0]))[0])


def test_a_finished_threads_buffers_are_freed():
    rows = PreparedRows(np.array([0.0, 1.0, 1.0]))
    loss = FocalLoss()
    refs: list = []

    def work():
        g, _ = rows.gradient_hessian(loss, np.zeros(3))
        refs.append(weakref.ref(g))

    for _ in range(5):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    gc.collect()
    assert all(r() is None for r in refs)


def test_prepared_rows_pickle_round_trip_keeps_working_in_threads():
    rng = np.random.default_rng(1)
    n = 20_000
    y = (rng.random(n) < 0.5).astype(np.float64)
    rows = PreparedRows(y)
    loss = FocalLoss(0.3, 1.5)
    rows.gradient_hessian(loss, rng.normal(size=n).astype(np.float32))  # state that must not travel
    clone = pickle.loads(pickle.dumps(rows))
    zs = [rng.normal(size=n).astype(np.float32) for _ in range(4)]
    assert _hammer(clone, loss, y, None, zs, None, rounds=10) == []
