"""Multiclass training time in LightGBM: gbfocal against the built-in softmax and the custom-objective floor.

Same data (one constructed Dataset), same parameters, same number of rounds
and K = 5 classes; only the objective differs:

* ``builtin``  -- ``lgb.train({"objective": "multiclass", ...})``, softmax gradients in C++;
* ``gbfocal``  -- ``gbfocal.lightgbm.train(MulticlassFocalLoss(gamma=2), ...)``: the
  focal objective (Numba kernels), the focal start, its folding into the first
  K trees and the loss record;
* ``replay``   -- the floor of any custom objective: a Python callable that hands
  LightGBM, round by round, the very gradients and Hessians gbfocal produced
  (recorded once beforehand), so the trees are the ones gbfocal grows and
  only LightGBM's plumbing for a callable objective is timed (its
  ``(n, K)`` score view, the Fortran-order copy of the gradients, float32).

Runs are interleaved (builtin, gbfocal, replay, builtin, ...) so that load
from other processes hits every arm alike; ratios are medians over the
repetitions of the per-repetition ratios. The time spent inside the gbfocal
objective (kernel and the margins' copy) is measured in a separate run and
printed per round, to show where the gap to the floor goes. Nothing is asserted.

    python benchmarks/bench_overhead_multiclass_lightgbm.py            # 200k x 20, K = 5, 30 rounds, 5 reps
    python benchmarks/bench_overhead_multiclass_lightgbm.py --quick    # 50k rows, 10 rounds, 3 reps
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import lightgbm as lgb
import numpy as np

import gbfocal.lightgbm as gfl
from gbfocal import MulticlassFocalLoss

GAMMA = 2.0


def make_data(n_rows: int, n_features: int, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class k's score leans on feature k; the last class is rare (a shifted score)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    scores = X[:, :n_classes] + rng.gumbel(size=(n_rows, n_classes)).astype(np.float32)
    scores[:, -1] -= 2.5
    return X, np.argmax(scores, axis=1).astype(np.float64)


# Closures, not objects: lgb.train deep-copies its params, objective included, and a function survives
# that as itself, so what it records is seen here.
def recorder(inner, rounds: list, seconds: list):
    """A LightGBM objective that calls ``inner``, keeps a copy of every round's gradients and adds up its time."""

    def fobj(preds, train_data):
        t0 = time.perf_counter()
        grad, hess = inner(preds, train_data)
        seconds.append(time.perf_counter() - t0)
        rounds.append((grad.copy(order="K"), hess.copy(order="K")))  # in the layout returned (F for K classes)
        return grad, hess

    return fobj


def replay(rounds: list):
    """A LightGBM objective that returns recorded gradients, round after round (the custom-objective floor)."""
    it = iter(rounds)

    def fobj(preds, train_data):
        return next(it)

    return fobj


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a shared machine the CPU time is the steadier one."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions of every arm")
    parser.add_argument("--threads", type=int, default=2, help="num_threads for LightGBM and the gbfocal kernel")
    parser.add_argument("--num-leaves", type=int, default=31)
    parser.add_argument("--quick", action="store_true", help="50k rows, 10 rounds, 3 reps (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds, args.reps = 50_000, 10, 3

    print(f"LightGBM {lgb.__version__}, numpy {np.__version__}, Python {platform.python_version()}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical cores, load average {load[0]}")
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print(
        f"data: {args.rows:,} rows x {args.features} features, K = {args.classes}; {args.rounds} rounds; "
        f"num_threads={args.threads}"
    )
    X, y = make_data(args.rows, args.features, args.classes)
    params = {
        "num_threads": args.threads,
        "num_leaves": args.num_leaves,
        "learning_rate": 0.1,
        "verbosity": -1,
        "max_bin": 255,
    }
    t0 = time.perf_counter()
    dtrain = lgb.Dataset(X, y, params={"max_bin": 255, "verbosity": -1}, free_raw_data=False).construct()
    shares = np.bincount(y.astype(int)) / y.shape[0]
    print(f"Dataset construction (once, not timed): {time.perf_counter() - t0:.2f} s; class shares {shares.round(3)}")

    loss = MulticlassFocalLoss(gamma=GAMMA)
    start = loss.init_score(y)

    # Record gbfocal's gradients once: its objective on a Dataset that carries the focal start as init_score,
    # so the scores (and gradients) are those of gfl.train, whose objective adds the start itself.
    dstart = lgb.Dataset(X, y, init_score=np.tile(start, (y.shape[0], 1)), params={"max_bin": 255, "verbosity": -1})
    rounds: list = []
    seconds: list = []
    record = recorder(gfl.objective(loss, n_threads=args.threads), rounds, seconds)
    recorded = lgb.train({**params, "num_class": args.classes, "objective": record}, dstart.construct(), args.rounds)
    print(f"gbfocal objective (kernel + margins copy): {statistics.median(seconds) * 1e3:.1f} ms/round (median)")

    def run_builtin() -> lgb.Booster:
        return lgb.train({**params, "objective": "multiclass", "num_class": args.classes}, dtrain, args.rounds)

    def run_gbfocal() -> lgb.Booster:
        return gfl.train(loss, params, dtrain, args.rounds)

    def run_replay() -> lgb.Booster:
        return lgb.train({**params, "num_class": args.classes, "objective": replay(rounds)}, dtrain, args.rounds)

    arms = {"builtin": run_builtin, "gbfocal": run_gbfocal, "replay": run_replay}
    for fn in arms.values():  # warm up: Numba compilation / cache load, LightGBM first touch
        fn()
    rows = X[:2000]
    trees = recorded.predict(rows, raw_score=True)  # the recorded model's trees; its Dataset init_score is not saved
    same = np.abs(run_replay().predict(rows, raw_score=True) - trees).max()
    drift = np.abs(run_gbfocal().predict(rows, raw_score=True) - (trees + start)).max()
    print(f"replay vs recorded trees: max margin difference {same:.2e}")
    print(f"gbfocal.train vs recorded trees + start: max margin difference {drift:.2e}")

    wall: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {name: [] for name in arms}
    for rep in range(args.reps):
        line = []
        for name, fn in arms.items():
            seconds, cpu_seconds = timed(fn)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
            line.append(f"{name} {seconds:7.3f} s (cpu {cpu_seconds:7.3f} s)")
        print(f"rep {rep + 1}: " + "   ".join(line), flush=True)

    print()
    for name in arms:
        per_round = statistics.median(wall[name]) / args.rounds * 1e3
        print(
            f"{name:8s} median {statistics.median(wall[name]):7.3f} s wall ({per_round:.1f} ms/round), "
            f"{statistics.median(cpu[name]):7.3f} s cpu"
        )
    for num, den in (("gbfocal", "replay"), ("gbfocal", "builtin"), ("replay", "builtin")):
        for kind, table in (("wall", wall), ("cpu", cpu)):
            ratios = [a / b for a, b in zip(table[num], table[den], strict=True)]
            each = ", ".join(f"{r:.3f}" for r in ratios)
            print(f"{num} / {den} ({kind}): median ratio {statistics.median(ratios):.3f}  (reps: {each})")


if __name__ == "__main__":
    main()
