"""Kernel throughput and start-up latency of ``FocalLoss.gradient_hessian``.

Prints, measured side by side in one run (median of ``--repeat`` runs each):

* rows/s of gbfocal's ``gradient_hessian`` (Numba kernels, ``--threads``)
  as the engine adapters call it: labels validated and converted once
  (``PreparedRows``), output buffers reused,
* rows/s of the one-off ``FocalLoss.gradient_hessian(y, z, ...)`` call, which
  validates the labels on every call (and, for float32 margins, converts
  float64 labels to float32),
* rows/s of a plain NumPy implementation of the same formulas,
* rows/s of a NumPy copy of the same bytes (read y and z, write two arrays:
  the memory-bandwidth limit of any implementation),

for float64 and float32 margins, γ = 2 (integer fast path) and γ = 1.7, and
the ratios gbfocal/NumPy and copy/gbfocal. Then the start-up latency: a fresh
interpreter's ``import gbfocal`` plus the first float64 and float32 calls,
with an empty Numba cache (compiles) and with a warm one (loads from disk).

Then the same for ``MulticlassFocalLoss`` (K = 5 by default, ``--classes``):
its blocked kernel through ``MulticlassPreparedRows`` against a
straightforward NumPy implementation of the same formulas (default ``clamp``
policy), float64 and float32 margins.

Targets (issue 2): ≥ 10x NumPy (2 threads, γ = 2, float64), within 4x of the
copy; ≤ 3 s cold and ≤ 0.3 s warm start-up. Multiclass (issue 12): ≥ 10x
NumPy at 1M rows, K = 5, γ = 2, 2 threads, float32 at least as fast as
float64. Nothing is asserted: machines are shared and noisy, so read the
ratios (and ``/proc/loadavg``, printed with them).

    python benchmarks/bench_kernels.py            # 10M rows
    python benchmarks/bench_kernels.py --rows 1000000 --repeat 3
    python benchmarks/bench_kernels.py --rows 1000000 --multiclass-only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from functools import partial

import numpy as np
from numpy_focal import numpy_gradient_hessian

from gbfocal import FocalLoss, MulticlassFocalLoss
from gbfocal._loss import PreparedRows


def _copy(outs, ins):
    for o, i in zip(outs, ins, strict=True):
        np.copyto(o, i)


def _median_time(fn, repeat):
    fn()  # warm-up (compilation, page faults)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def throughput(rows: int, repeat: int, threads: int) -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(rows) < 0.05).astype(np.float64)
    z64 = rng.normal(-3.0, 3.0, rows)
    print(f"rows={rows:,} threads={threads} repeat={repeat} (median times)")
    header = (
        f"{'dtype':>7} {'gamma':>5} | {'gbfocal Mrows/s':>15} {'one-off call':>12} {'numpy Mrows/s':>13}"
        f" {'copy Mrows/s':>12} |"
    )
    print(header + f" {'gbfocal/numpy':>13} {'copy/gbfocal':>12}")
    for dtype in (np.float64, np.float32):
        z = z64.astype(dtype)
        out_a, out_b = np.empty_like(z), np.empty_like(z)
        copy_a, copy_b = np.empty(rows), np.empty_like(z)
        for gamma in (2.0, 1.7):
            loss = FocalLoss(0.25, gamma)
            rows_once = PreparedRows(y)
            t_gb = _median_time(partial(rows_once.gradient_hessian, loss, z, threads), repeat)
            one_off = partial(loss.gradient_hessian, y, z, gradient_out=out_a, hessian_out=out_b, n_threads=threads)
            t_once = _median_time(one_off, repeat)
            t_np = _median_time(partial(numpy_gradient_hessian, y, z, 0.25, gamma), max(1, repeat // 2))
            t_cp = _median_time(partial(_copy, (copy_a, copy_b), (y, z)), repeat)
            mr = rows / 1e6
            print(
                f"{np.dtype(dtype).name:>7} {gamma:>5} | {mr / t_gb:>15.1f} {mr / t_once:>12.1f} {mr / t_np:>13.1f}"
                f" {mr / t_cp:>12.1f} |"
                f" {t_np / t_gb:>12.1f}x {t_gb / t_cp:>11.2f}x"
            )


def numpy_multiclass_gradient_hessian(y, z, alpha, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax focal gradient and Hessian diagonal (clamp policy), written as a careful NumPy user would.

    Same formulas as gbfocal (log-softmax, A' clamped at 0), one array
    expression per term, temporaries every call; 1 - p by subtraction, as
    most implementations do (gbfocal avoids that, which only costs it).
    """
    z = np.asarray(z, dtype=np.float64)
    n, k = z.shape
    rows = np.arange(n)
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    p = e / s
    log_p = shifted - np.log(s)
    py = p[rows, y]
    nlp = -log_p[rows, y]
    q = 1.0 - py
    c = np.asarray(alpha, dtype=np.float64)[y] * q**gamma
    b = gamma * py * nlp + q
    kappa = np.maximum(gamma * py * (gamma * py * nlp + 2.0 * q - nlp), 0.0)
    onehot = np.zeros((n, k))
    onehot[rows, y] = 1.0
    rho = (onehot - p) / q[:, None]
    sigma = p * (1.0 - p) / q[:, None]
    grad = -(c * b)[:, None] * rho
    hess = c[:, None] * (kappa[:, None] * rho**2 + b[:, None] * sigma)
    return grad, np.maximum(hess, 1e-16)


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:  # pragma: no cover - not Linux
        return "n/a"


def multiclass_throughput(rows: int, repeat: int, threads: int, n_classes: int) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, n_classes, rows)
    z64 = rng.normal(0.0, 3.0, (rows, n_classes))
    alpha = np.ones(n_classes)
    print(
        f"\nmulticlass: rows={rows:,} K={n_classes} threads={threads} repeat={repeat} (median times), "
        f"load average {_loadavg()}"
    )
    print(f"{'dtype':>7} {'gamma':>5} | {'gbfocal Mrows/s':>15} {'numpy Mrows/s':>13} | {'gbfocal/numpy':>13}")
    t_np = {}
    for gamma in (2.0, 1.7):
        t_np[gamma] = _median_time(
            partial(numpy_multiclass_gradient_hessian, y, z64, alpha, gamma), max(1, repeat // 2)
        )
    for dtype in (np.float64, np.float32):
        z = z64.astype(dtype)
        for gamma in (2.0, 1.7):
            loss = MulticlassFocalLoss(None, gamma)
            prepared = loss.prepared(y, n_classes=n_classes)
            t_gb = _median_time(partial(prepared.gradient_hessian, loss, z, threads), repeat)
            mr = rows / 1e6
            print(
                f"{np.dtype(dtype).name:>7} {gamma:>5} | {mr / t_gb:>15.1f} {mr / t_np[gamma]:>13.1f} |"
                f" {t_np[gamma] / t_gb:>12.1f}x"
            )
    print(f"load average after: {_loadavg()}")


_STARTUP = """
import time
t0 = time.perf_counter()
import numpy as np
import gbfocal
loss = gbfocal.FocalLoss(0.25, 2.0)
y = np.array([0.0, 1.0])
loss.gradient_hessian(y, np.array([0.5, -0.5]))
loss.gradient_hessian(y, np.array([0.5, -0.5], dtype=np.float32))
print(time.perf_counter() - t0)
"""


def startup() -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        run = [sys.executable, "-c", textwrap.dedent(_STARTUP)]
        cold = float(subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout)
        warm = [
            float(subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout) for _ in range(3)
        ]
    print(
        f"start-up (import + first float64 and float32 gradient_hessian): cold cache {cold:.2f} s, "
        f"warm cache {np.median(warm):.3f} s (median of 3)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", type=int, default=5, help="K for the multiclass kernel")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--multiclass-only", action="store_true")
    args = parser.parse_args()
    if not args.multiclass_only:
        throughput(args.rows, args.repeat, args.threads)
    multiclass_throughput(args.rows, args.repeat, args.threads, args.classes)
    if not (args.skip_startup or args.multiclass_only):
        startup()


if __name__ == "__main__":
    main()
