"""Multiclass focal training time in XGBoost, against the built-in softmax and the custom-objective floor.

Trains the same ``hist`` model (same data, parameters, rounds and starting
margins) three ways, interleaved A B C A B C ... so that drifts in machine
load hit all alike:

* A: XGBoost's built-in ``multi:softprob`` (softmax cross-entropy in C++),
* B: ``gbfocal.xgboost.train`` with ``MulticlassFocalLoss(gamma=2)``,
* C: the floor of *any* custom objective: a replay objective that hands back,
  round by round, copies of the very gradients and Hessians B produced, so
  C grows the same trees as B (checked: equal margins) and times only
  XGBoost's plumbing for a Python objective (margins handed to Python,
  ``(n, K)`` gradients copied back).

Prints every wall time, the median ratios B/C (the issue's goal: ≤ 1.10)
and B/A, the ratios of the fastest runs, the same for the process's CPU
time (user + system of all its threads: on a machine shared with other
jobs, wall time also counts the time spent waiting for a core, CPU time
mostly does not), and what each round costs, timed piece by piece:
XGBoost handing the margins to Python, gbfocal's objective call alone, and
inside training. Nothing is asserted: machines are shared and noisy, so
read the ratios (and ``cat /proc/loadavg``).

    python benchmarks/bench_overhead_multiclass_xgboost.py            # 200k x 20, K = 5, 30 rounds, 2 threads
    python benchmarks/bench_overhead_multiclass_xgboost.py --quick    # 50k rows, 10 rounds: a smoke run
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import xgboost as xgb

import gbfocal.xgboost as gfx
from gbfocal import MulticlassFocalLoss

GAMMA = 2.0


def make_data(n_rows: int, n_features: int, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features; classes from a noisy linear softmax model, the last class rare."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    coef = rng.normal(size=(n_features, n_classes)).astype(np.float32) / np.sqrt(n_features)
    prior = np.log(np.r_[np.full(n_classes - 1, 0.97 / (n_classes - 1)), 0.03]).astype(np.float32)
    score = X @ coef + prior + rng.gumbel(size=(n_rows, n_classes)).astype(np.float32)
    return X, score.argmax(axis=1).astype(np.float32)


class Replay:
    """A custom objective that returns, round by round, gradient/Hessian pairs recorded earlier."""

    def __init__(self, recorded: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.recorded, self.round = recorded, 0

    def __call__(self, predt: np.ndarray, dtrain: xgb.DMatrix) -> tuple[np.ndarray, np.ndarray]:
        pair = self.recorded[self.round]
        self.round += 1
        return pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=5, help="interleaved repetitions of A B C")
    parser.add_argument("--threads", type=int, default=2, help="nthread of XGBoost and of the gbfocal objective")
    parser.add_argument("--max-depth", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="50k rows, 10 rounds (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds = min(args.rows, 50_000), min(args.rounds, 10)

    X, y = make_data(args.rows, args.features, args.classes)
    dtrain = xgb.QuantileDMatrix(X, label=y, max_bin=256)  # binned once, shared by every run
    loss = MulticlassFocalLoss(gamma=GAMMA)
    params = {"tree_method": "hist", "max_depth": args.max_depth, "eta": 0.1, "nthread": args.threads, "max_bin": 256}
    focal_params = gfx.params(loss, dtrain, **params)  # multi:softprob, num_class, base_score = init_score
    builtin_params = dict(focal_params)  # same link, same start: only the gradients differ

    # Record gbfocal's gradients once (copies: the objective's buffers are reused every round).
    objective = gfx.objective(loss, n_threads=args.threads)
    recorded: list[tuple[np.ndarray, np.ndarray]] = []

    def recording(predt: np.ndarray, dmatrix: xgb.DMatrix) -> tuple[np.ndarray, np.ndarray]:
        grad, hess = objective(predt, dmatrix)
        recorded.append((grad.copy(), hess.copy()))
        return grad, hess

    reference = xgb.train(focal_params, dtrain, args.rounds, obj=recording)
    replayed = xgb.train(focal_params, dtrain, args.rounds, obj=Replay(recorded))
    same = np.array_equal(reference.predict(dtrain, output_margin=True), replayed.predict(dtrain, output_margin=True))

    runs = {
        "A builtin": lambda: xgb.train(builtin_params, dtrain, args.rounds),
        "B gbfocal": lambda: gfx.train(loss, params, dtrain, args.rounds),
        "C replay": lambda: xgb.train(focal_params, dtrain, args.rounds, obj=Replay(recorded)),
    }
    print(
        f"xgboost {xgb.__version__}, {args.rows} rows x {args.features} features, K = {args.classes}, "
        f"{args.rounds} rounds, max_depth {args.max_depth}, nthread {args.threads}, {args.pairs} interleaved "
        f"triples; replay grows the same trees as gbfocal: {same}"
    )
    for run in runs.values():  # warm-up, not timed
        run()

    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(args.pairs):
        line = []
        for name, run in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            run()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            line.append(f"{name} {times[name][-1]:7.3f} s (cpu {cpu[name][-1]:7.3f} s)")
        print(f"triple {i + 1}: " + "   ".join(line), flush=True)

    for label, table in (("wall", times), ("cpu", cpu)):
        b = np.array(table["B gbfocal"])
        for other in ("C replay", "A builtin"):
            o = np.array(table[other])
            ratios = b / o
            print(
                f"{label}: B gbfocal / {other}: median ratio {np.median(ratios):.3f} "
                f"(triples: {' '.join(f'{r:.3f}' for r in ratios)}); fastest runs {b.min():.3f} s vs "
                f"{o.min():.3f} s, ratio {b.min() / o.min():.3f}"
            )

    # Where B's time beyond the floor goes: its objective call, timed alone and inside training.
    per_round = min(times["C replay"]) / args.rounds
    print(f"per round: replay-floor round {1e3 * per_round:.1f} ms (fastest C run / rounds)")
    inside: list[float] = []

    def timed(predt: np.ndarray, dmatrix: xgb.DMatrix) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        out = objective(predt, dmatrix)
        inside.append(time.perf_counter() - t0)
        return out

    booster = xgb.train(focal_params, dtrain, max(args.rounds, 3), obj=timed)
    margins = booster.predict(dtrain, output_margin=True, training=True)
    pieces = {
        "XGBoost hands the margins to Python": lambda: booster.predict(dtrain, output_margin=True, training=True),
        "gbfocal objective call, alone": lambda: objective(margins, dtrain),
    }
    costs = {}
    for name, piece in pieces.items():
        piece()
        samples = []
        for _ in range(7):
            t0 = time.perf_counter()
            piece()
            samples.append(time.perf_counter() - t0)
        costs[name] = float(np.median(samples))
    costs["gbfocal objective call, inside training"] = float(np.median(inside[1:]))
    for name, cost in costs.items():
        print(f"per round: {name} {1e3 * cost:.2f} ms ({100 * cost / per_round:.1f}% of a replay-floor round)")


if __name__ == "__main__":
    main()
