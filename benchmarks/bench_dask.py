"""XGBoost on Dask with gbfocal: time per round on a LocalCluster against one machine, focal against built-in.

Synthetic data (Gaussian features, ~10% positives from a noisy logistic
model, float32), generated on the workers in row chunks; the same rows are
gathered for the single-machine runs. Four trainings of the same ``hist``
model (same parameters and rounds), interleaved so that drifts in machine
load hit all alike, each repeated ``--pairs`` times:

* local built-in ``binary:logistic`` (``xgboost.train``, ``nthread`` = all cores),
* local gbfocal (``gbfocal.xgboost.train``, ``FocalLoss(0.25, 2.0)``),
* Dask built-in (``xgboost.dask.train`` on the LocalCluster),
* Dask gbfocal (``gbfocal.dask.xgboost_train``: objective pickled to the
  workers, distributed starting score, global focal metric off).

The DMatrix objects are built once, before timing; Numba compiles on every
worker during an untimed warm-up. A training callback stamps the end of every
round where it runs (on the workers for Dask) and the time per round is the
median gap between stamps after the first round, so the fixed cost of each
``xgboost.dask.train`` call (tracker, each worker's local DMatrix, for
gbfocal the distributed starting score) is left out; it is reported
separately, as the rest of each call's wall time. Prints the median over the
repetitions of each, the ratios Dask/local and gbfocal/built-in (target on
Dask: ≤ 1.10), and the ratio of the fastest repetitions, less sensitive to
other load on a shared machine. Nothing is asserted.

    python benchmarks/bench_dask.py                 # 10M rows x 20, 2 workers x 1 thread, 20 rounds
    python benchmarks/bench_dask.py --rows 2000000  # what fits a small shared machine
    python benchmarks/bench_dask.py --quick         # 200k rows, 10 rounds: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import dask.array as da
import numpy as np
import xgboost as xgb
import xgboost.dask
from distributed import Client, LocalCluster

import gbfocal.dask as gfd
import gbfocal.xgboost as gfx
from gbfocal import FocalLoss


class RoundTimer(xgb.callback.TrainingCallback):
    """Stamps every round where training runs; the booster carries the per-round seconds back."""

    def before_training(self, model: xgb.Booster) -> xgb.Booster:
        self.stamps = [time.perf_counter()]
        return model

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        self.stamps.append(time.perf_counter())
        return False

    def after_training(self, model: xgb.Booster) -> xgb.Booster:
        model.set_attr(round_seconds=json.dumps(np.diff(self.stamps).tolist()))
        return model


class TimedObjective:
    """gbfocal's objective, timing each call where it runs (kept on the Dask worker object)."""

    def __init__(self, inner: gfx.FocalObjective) -> None:
        self.inner = inner

    def __call__(self, predt: np.ndarray, dtrain: xgb.DMatrix):
        from distributed import get_worker

        t = time.perf_counter()
        out = self.inner(predt, dtrain)
        get_worker().__dict__.setdefault("gbfocal_objective_seconds", []).append(time.perf_counter() - t)
        return out


def _objective_seconds(dask_worker) -> list[float]:
    return dask_worker.__dict__.pop("gbfocal_objective_seconds", [])


def _per_round(booster: xgb.Booster) -> float:
    rounds = json.loads(booster.attr("round_seconds"))
    return statistics.median(rounds[1:])  # the first round also reads labels and sets up buffers


def _block_labels(block: np.ndarray, coef: np.ndarray, seed: int, block_info: dict | None = None) -> np.ndarray:
    rng = np.random.default_rng([seed, block_info[0]["chunk-location"][0] if block_info else 0])
    score = block @ coef / np.sqrt(block.shape[1]) + rng.logistic(size=block.shape[0]).astype(np.float32)
    return (score > 2.2).astype(np.float32)  # ~10% positives


def make_data(client: Client, n_rows: int, n_features: int, n_chunks: int, seed: int = 0):
    """Features and labels as dask arrays chunked by rows, computed and held on the workers."""
    rng = da.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32, chunks=(-(-n_rows // n_chunks), n_features))
    coef = np.random.default_rng(seed).normal(size=n_features).astype(np.float32)
    y = X.map_blocks(_block_labels, coef, seed, drop_axis=1, dtype=np.float32)
    X, y = client.persist([X, y])
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=3, help="interleaved repetitions of the four trainings")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--max-depth", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="200k rows, 10 rounds, 1 pair (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds, args.pairs = min(args.rows, 200_000), min(args.rounds, 10), 1
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (the first round is left out of the time per round)")

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{args.rows:,} rows x {args.features} features, {args.rounds} rounds, max_depth {args.max_depth}, "
        f"{args.pairs} repetitions; LocalCluster {args.workers} workers x {args.threads_per_worker} threads, "
        f"local nthread {cores}; load average at start {os.getloadavg()[0]:.1f} on {cores} cores"
    )
    loss = FocalLoss(0.25, 2.0)
    base = {"tree_method": "hist", "max_depth": args.max_depth, "eta": 0.1}
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=args.threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        t = time.perf_counter()
        X, y = make_data(client, args.rows, args.features, 4 * args.workers)
        dtrain = xgb.dask.DaskQuantileDMatrix(client, X, y)
        print(f"data on the workers and Dask DMatrix: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        X_local, y_local = client.compute([X, y], sync=True)
        dlocal = xgb.QuantileDMatrix(X_local, label=y_local, nthread=cores)
        print(f"gathered and local DMatrix: {time.perf_counter() - t:.1f} s; positives {y_local.mean():.3f}")

        builtin = {**base, "objective": "binary:logistic", "nthread": cores}
        focal = {**base, "nthread": cores}

        def local_builtin(rounds: int) -> xgb.Booster:
            return xgb.train(builtin, dlocal, rounds, callbacks=[RoundTimer()])

        def local_focal(rounds: int) -> xgb.Booster:
            return gfx.train(loss, focal, dlocal, rounds, callbacks=[RoundTimer()])

        def dask_builtin(rounds: int) -> xgb.Booster:
            params = {**base, "objective": "binary:logistic"}
            return xgb.dask.train(client, params, dtrain, rounds, verbose_eval=False, callbacks=[RoundTimer()])[
                "booster"
            ]

        def dask_focal(rounds: int) -> xgb.Booster:
            out = gfd.xgboost_train(client, loss, base, dtrain, rounds, verbose_eval=False, callbacks=[RoundTimer()])
            return out["booster"]

        runs = {
            "local built-in": local_builtin,
            "local gbfocal": local_focal,
            "Dask built-in": dask_builtin,
            "Dask gbfocal": dask_focal,
        }
        for fn in runs.values():  # warm-up: Numba compiles (or loads its cache) on each worker
            fn(2)
        times: dict[str, list[float]] = {name: [] for name in runs}
        fixed: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.pairs):
            for name, fn in runs.items():
                t = time.perf_counter()
                booster = fn(args.rounds)
                wall = time.perf_counter() - t
                rounds = json.loads(booster.attr("round_seconds"))
                times[name].append(_per_round(booster))
                fixed[name].append(wall - sum(rounds))
        # What the objective itself costs inside Dask training: its calls timed on the workers.
        params = {**base, "objective": "binary:logistic", "base_score": gfd.xgboost_base_score(loss, dtrain)}
        obj = TimedObjective(gfx.objective(loss, n_threads=args.threads_per_worker))
        client.run(_objective_seconds)
        xgb.dask.train(client, params, dtrain, args.rounds, obj=obj, verbose_eval=False)
        calls = [t for ts in client.run(_objective_seconds).values() for t in ts[1:]]
        objective_call = statistics.median(calls)
        print(f"load average at end {os.getloadavg()[0]:.1f}")

    print(f"\n{'training':<16} {'s/round (median)':>17} {'fastest':>9} {'fixed s/call':>13}   all s/round")
    for name, ts in times.items():
        print(
            f"{name:<16} {statistics.median(ts):>17.4f} {min(ts):>9.4f} {statistics.median(fixed[name]):>13.3f}   "
            + " ".join(f"{v:.4f}" for v in ts)
        )

    def ratio(a: str, b: str) -> str:
        med = statistics.median(times[a]) / statistics.median(times[b])
        fast = min(times[a]) / min(times[b])
        return f"{med:5.2f}x median, {fast:5.2f}x fastest"

    print()
    print(f"Dask gbfocal / Dask built-in   : {ratio('Dask gbfocal', 'Dask built-in')}   (target <= 1.10)")
    print(f"local gbfocal / local built-in : {ratio('local gbfocal', 'local built-in')}")
    print(f"Dask built-in / local built-in : {ratio('Dask built-in', 'local built-in')}")
    print(f"Dask gbfocal / local gbfocal   : {ratio('Dask gbfocal', 'local gbfocal')}")
    share = objective_call / statistics.median(times["Dask gbfocal"])
    print(
        f"gbfocal objective call on a worker: {1e3 * objective_call:.1f} ms median "
        f"({share:.1%} of a Dask gbfocal round; the rest of a round is XGBoost's)"
    )


if __name__ == "__main__":
    main()
