"""Overhead of the gbfocal objective in LightGBM, against LightGBM's built-in ``binary``.

Same data (one constructed Dataset), same parameters, same number of rounds;
only the objective differs:

* ``binary``   -- ``lgb.train({"objective": "binary", ...})``, gradients in C++;
* ``gbfocal``  -- ``gbfocal.lightgbm.train(FocalLoss(0.25, 2.0), ...)``: the focal
  objective (Numba kernels), the focal start and its folding into the model;
* ``replay``   -- the floor of any custom objective: the gradients ``gbfocal``
  computed, recorded round by round in one untimed run, returned again through
  the same custom-objective call (identical trees, none of gbfocal's work);
  gbfocal / replay is the honest overhead (target ≤ 1.05, issue 15);
* ``numpy``    -- for context, a focal objective written the way one usually
  writes it in NumPy (labels read and converted every round, temporaries).

Runs are interleaved (binary, gbfocal, numpy, binary, gbfocal, ...) so that
load from other processes hits every arm alike; the ratio reported is the
median over pairs of gbfocal time / binary time. Nothing is asserted.

    python benchmarks/bench_overhead_lightgbm.py               # 1M x 20, 50 rounds, 5 pairs
    python benchmarks/bench_overhead_lightgbm.py --quick       # 200k rows, 20 rounds, 3 pairs
    python benchmarks/bench_overhead_lightgbm.py --rows 2000000 --rounds 100 --pairs 7

On a machine shared with other jobs, OpenMP's default busy-waiting makes every
arm erratic (a descheduled thread stalls its siblings at each barrier); the CPU
times printed next to the wall times, or a run with OMP_WAIT_POLICY=PASSIVE,
are steadier there.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import lightgbm as lgb
import numpy as np
from numpy_focal import numpy_gradient_hessian

import gbfocal.lightgbm as gfl
from gbfocal import FocalLoss

ALPHA, GAMMA = 0.25, 2.0


def make_data(n_rows: int, n_features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    signal = X[:, 0] + 0.5 * X[:, 1] - 0.25 * X[:, 2] * X[:, 3]
    y = (signal + rng.standard_normal(n_rows, dtype=np.float32) > 2.3).astype(np.float64)  # ~3 % positives
    return X, y


def numpy_focal_objective(preds: np.ndarray, train_data: lgb.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Focal gradient and (positive) Hessian in plain NumPy, labels read every round."""
    return numpy_gradient_hessian(train_data.get_label(), preds, ALPHA, GAMMA)


def run_binary(params: dict, dtrain: lgb.Dataset, rounds: int) -> lgb.Booster:
    return lgb.train({**params, "objective": "binary"}, dtrain, rounds)


def run_gbfocal(params: dict, dtrain: lgb.Dataset, rounds: int) -> lgb.Booster:
    return gfl.train(FocalLoss(ALPHA, GAMMA), params, dtrain, rounds)


def run_numpy(params: dict, dtrain: lgb.Dataset, rounds: int) -> lgb.Booster:
    return lgb.train({**params, "objective": numpy_focal_objective}, dtrain, rounds)


def record_gradients(params: dict, dtrain: lgb.Dataset, rounds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (gradient, Hessian) pairs gbfocal's objective returns in one ``run_gbfocal``, copied round by round."""
    recorded = []
    original = gfl.FocalObjective.__call__

    def recording(self, preds, train_data):
        grad, hess = original(self, preds, train_data)
        recorded.append((grad.copy(), hess.copy()))
        return grad, hess

    gfl.FocalObjective.__call__ = recording
    try:
        run_gbfocal(params, dtrain, rounds)
    finally:
        gfl.FocalObjective.__call__ = original
    return recorded


def replay_arm(recorded: list[tuple[np.ndarray, np.ndarray]]):
    """An arm training with an objective that hands back ``recorded``, round by round."""

    def run_replay(params: dict, dtrain: lgb.Dataset, rounds: int) -> lgb.Booster:
        it = iter(recorded)  # a fresh pass per training run, from its first round
        return lgb.train({**params, "objective": lambda preds, data: next(it)}, dtrain, rounds)

    return run_replay


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a shared machine the CPU time is the steadier one."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=5, help="interleaved repetitions of every arm")
    parser.add_argument("--threads", type=int, default=2, help="num_threads for LightGBM and the gbfocal kernel")
    parser.add_argument("--num-leaves", type=int, default=31)
    parser.add_argument("--no-numpy", action="store_true", help="skip the plain-NumPy objective")
    parser.add_argument("--quick", action="store_true", help="200k rows, 20 rounds, 3 pairs (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds, args.pairs = 200_000, 20, 3

    print(f"LightGBM {lgb.__version__}, numpy {np.__version__}, Python {platform.python_version()}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical cores, load average {load[0]}")
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print(f"data: {args.rows:,} rows x {args.features} features; {args.rounds} rounds; num_threads={args.threads}")

    X, y = make_data(args.rows, args.features)
    params = {
        "num_threads": args.threads,
        "num_leaves": args.num_leaves,
        "learning_rate": 0.1,
        "verbosity": -1,
        "max_bin": 255,
    }
    t0 = time.perf_counter()
    dtrain = lgb.Dataset(X, y, params={"max_bin": 255, "verbosity": -1}, free_raw_data=False).construct()
    print(f"Dataset construction (once, not timed below): {time.perf_counter() - t0:.2f} s; positives {y.mean():.2%}")

    arms = {
        "binary": run_binary,
        "gbfocal": run_gbfocal,
        "replay": replay_arm(record_gradients(params, dtrain, args.rounds)),
    }
    if not args.no_numpy:
        arms["numpy"] = run_numpy
    for fn in arms.values():  # warm up: Numba compilation / cache load, LightGBM first touch
        fn(params, dtrain, 2)

    wall: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {name: [] for name in arms}
    for rep in range(args.pairs):
        line = []
        for name, fn in arms.items():
            seconds, cpu_seconds = timed(fn, params, dtrain, args.rounds)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
            line.append(f"{name} {seconds:7.3f} s (cpu {cpu_seconds:7.3f} s)")
        print(f"pair {rep + 1}: " + "   ".join(line), flush=True)

    print()
    for name in arms:
        per_round = statistics.median(wall[name]) / args.rounds * 1e3
        print(
            f"{name:8s} median {statistics.median(wall[name]):7.3f} s wall ({per_round:.1f} ms/round), "
            f"{statistics.median(cpu[name]):7.3f} s cpu"
        )
    pairs = [(a, "binary") for a in arms if a != "binary"] + [("gbfocal", "replay")]
    for name, ref in pairs:
        for kind, table in (("wall", wall), ("cpu", cpu)):
            ratios = [a / b for a, b in zip(table[name], table[ref], strict=True)]
            each = ", ".join(f"{r:.3f}" for r in ratios)
            print(f"{name} / {ref} ({kind}): median ratio {statistics.median(ratios):.3f}  (pairs: {each})")


if __name__ == "__main__":
    main()
