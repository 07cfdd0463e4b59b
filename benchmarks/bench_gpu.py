"""GPU path against CPU path: the gradient kernel, and XGBoost training with ``device="cuda"``.

Prints, measured side by side in one run (medians of interleaved runs):

1. ``gradient_hessian`` for ``--rows`` rows (10M) from **host float32 margins**,
   which is what XGBoost hands a custom objective even with ``device="cuda"``:

   * ``cpu``: the Numba CPU kernels on every core, NumPy out;
   * ``cuda``: margins copied to the GPU, CUDA kernel, CuPy out (the time
     includes the copy and the wait for the kernel);
   * ``cuda, device margins``: the kernel alone, margins already on the GPU;
   * ``copy``: the host-to-device copy of the margins alone.

2. XGBoost ``hist`` training with ``device="cuda"`` on ``--train-rows`` × 20
   features for ``--rounds`` rounds: built-in ``binary:logistic`` against the
   gbfocal objective (γ = 2) computing on the host (NumPy out, XGBoost copies
   it to the GPU) and on the GPU (CuPy out), runs interleaved (A B C, ...,
   ``--pairs`` times), median ratios to the built-in objective. Issue 3's
   target: ≤ 1.25× with ``device="cuda"``. Skipped when XGBoost is missing or
   built without CUDA.

Nothing is asserted; read the ratios. Needs a CUDA GPU with numba-cuda and
CuPy (``pip install 'gbfocal[gpu]'``); exits with status 1 and the reason
otherwise.

    python benchmarks/bench_gpu.py
    python benchmarks/bench_gpu.py --rows 1000000 --train-rows 200000 --rounds 20 --pairs 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from gbfocal import FocalLoss, PreparedRows, _cuda


def _require_gpu() -> None:
    try:
        backend = _cuda._load()
    except (ImportError, RuntimeError) as exc:
        raise SystemExit(f"bench_gpu.py needs a CUDA GPU: {exc}") from None
    if backend.simulated:
        raise SystemExit(
            "bench_gpu.py: NUMBA_ENABLE_CUDASIM is set; the CUDA simulator runs Python on the CPU "
            "and its timings mean nothing: unset it"
        )


def _median(times: list[float]) -> float:
    return float(np.median(times))


def _interleaved(fns: dict[str, object], repeat: int) -> dict[str, float]:
    """Median wall time of each function, run in turn A B C A B C ... after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: _median(t) for name, t in times.items()}


def bench_kernel(n_rows: int, repeat: int) -> None:
    import cupy

    rng = np.random.default_rng(0)
    y = (rng.random(n_rows) < 0.1).astype(np.float64)
    z = rng.normal(scale=3.0, size=n_rows).astype(np.float32)
    loss = FocalLoss(0.25, 2.0)
    rows = PreparedRows(y)
    device_rows = _cuda.DeviceRows(rows)
    z_device = cupy.asarray(z)
    z_copy = cupy.empty_like(z_device)

    def copy() -> None:
        z_copy.set(z)
        cupy.cuda.Device().synchronize()

    t = _interleaved(
        {
            "cpu": lambda: rows.gradient_hessian(loss, z),
            "cuda": lambda: _cuda.gradient_hessian(loss, device_rows, z),
            "cuda, device margins": lambda: _cuda.gradient_hessian(loss, device_rows, z_device),
            "copy": copy,
        },
        repeat,
    )
    g_cpu, h_cpu = rows.gradient_hessian(loss, z)
    g_gpu, h_gpu = (a.get() for a in _cuda.gradient_hessian(loss, device_rows, z))
    diff = max(_max_rel(g_gpu, g_cpu), _max_rel(h_gpu, h_cpu))

    print(
        f"gradient_hessian, {n_rows:,} rows, host float32 margins, γ = 2 "
        f"(CPU: {len(os.sched_getaffinity(0))} threads; GPU: {_device_name()})"
    )
    for name, seconds in t.items():
        print(f"  {name:<22} {seconds * 1e3:9.2f} ms  {n_rows / seconds / 1e6:9.0f} Mrows/s")
    print(f"  ratio cpu / cuda:                      {t['cpu'] / t['cuda']:.2f}")
    print(f"  ratio cuda / (cuda, device margins):   {t['cuda'] / t['cuda, device margins']:.2f}")
    print(f"  max relative difference GPU vs CPU (float32 outputs): {diff:.1e}")


def _max_rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), np.finfo(np.float32).tiny)))


def _device_name() -> str:
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def _objectives(loss: FocalLoss, y: np.ndarray) -> tuple[dict[str, object], str]:
    """The gbfocal objectives, from gbfocal.xgboost when it offers them, else wired here."""
    try:
        import gbfocal.xgboost as gfx

        objectives = {"host": gfx.objective(loss, device="cpu"), "cuda": gfx.objective(loss, device="cuda")}
        return objectives, "gbfocal.xgboost.objective"
    except (ImportError, AttributeError, TypeError):
        rows = PreparedRows(y)
        device_rows = _cuda.DeviceRows(rows)
        return {
            "host": lambda predt, dtrain: rows.gradient_hessian(loss, predt.ravel()),
            "cuda": lambda predt, dtrain: _cuda.gradient_hessian(loss, device_rows, predt.ravel()),
        }, "PreparedRows / DeviceRows wired in this script"


def bench_xgboost(n_rows: int, rounds: int, pairs: int) -> None:
    try:
        import xgboost as xgb
    except ImportError:
        print("XGBoost training: skipped (xgboost is not installed)")
        return
    if not xgb.build_info().get("USE_CUDA"):
        print(f"XGBoost training: skipped (xgboost {xgb.__version__} was built without CUDA)")
        return
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n_rows, 20)).astype(np.float32)
    logit = X[:, :5] @ rng.normal(size=5) - 3.0
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    dtrain = xgb.QuantileDMatrix(X, label=y)
    params = {
        "tree_method": "hist",
        "device": "cuda",
        "max_depth": 6,
        "eta": 0.1,
        "objective": "binary:logistic",  # link and base_score; a custom `obj` supplies the gradients
        "base_score": 0.5,
        "disable_default_eval_metric": 1,
    }
    loss = FocalLoss(0.25, 2.0)
    objectives, source = _objectives(loss, y)

    def run(obj) -> None:
        booster = xgb.train(params, dtrain, num_boost_round=rounds, obj=obj)
        booster.save_raw()  # waits for the last round

    t = _interleaved(
        {
            "binary:logistic": lambda: run(None),
            "gbfocal, host": lambda: run(objectives["host"]),
            "gbfocal, cuda": lambda: run(objectives["cuda"]),
        },
        pairs,
    )
    print(
        f"XGBoost {xgb.__version__} hist, device='cuda', {n_rows:,} rows x 20 features, {rounds} rounds, "
        f"median of {pairs} interleaved runs (objective: {source})"
    )
    for name, seconds in t.items():
        print(f"  {name:<16} {seconds:8.2f} s   ratio to binary:logistic {seconds / t['binary:logistic']:.3f}")
    print("  target (issue 3): <= 1.25")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows for the kernel benchmark")
    parser.add_argument("--repeat", type=int, default=11, help="timed runs of each kernel")
    parser.add_argument("--train-rows", type=int, default=1_000_000, help="rows for XGBoost training")
    parser.add_argument("--rounds", type=int, default=100, help="boosting rounds")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved training runs of each objective")
    args = parser.parse_args(argv)
    _require_gpu()
    bench_kernel(args.rows, args.repeat)
    print()
    bench_xgboost(args.train_rows, args.rounds, args.pairs)


if __name__ == "__main__":
    main(sys.argv[1:])
