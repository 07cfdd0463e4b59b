"""Cold start: the first focal fit in a fresh process, against the same script with the engine's own classifier.

Runs three scripts, each in a fresh interpreter, interleaved cold warm plain
cold warm plain ... so that drifts in machine load hit all alike:

* cold: a 2,000-row ``XGBFocalClassifier(n_estimators=5).fit(X, y).predict_proba(X)``
  with an empty Numba cache (a fresh ``NUMBA_CACHE_DIR`` per run): what every
  new virtual environment, container, CI job and Dask worker pays once,
* warm: the same script again with that cache filled (every later process),
* plain: the same script with ``xgboost.XGBClassifier`` (no gbfocal, no Numba).

Each time is the whole process, from launch to exit (imports included), and
the figures are medians over ``--repeat`` runs. Prints the medians, the
ratios cold/plain and warm/plain (targets of issue 15: ≤ 2 and ≤ 1.25), and
``/proc/loadavg`` before and after: on a loaded machine every figure grows,
XGBoost's OpenMP threads most of all. Nothing is asserted.

    python benchmarks/bench_cold_start.py                       # XGBoost, 5 runs each
    python benchmarks/bench_cold_start.py --engine lightgbm     # LGBMFocalClassifier vs LGBMClassifier
    python benchmarks/bench_cold_start.py --n-jobs 1            # one engine thread (less load noise)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_SCRIPT = """
import numpy as np
from {module} import {cls}
rng = np.random.default_rng(0)
X = rng.standard_normal(({rows}, 10))
y = (X[:, 0] + rng.logistic(size={rows}) > 1).astype(int)
{cls}(n_estimators=5{n_jobs}).fit(X, y).predict_proba(X)
"""

_CLASSES = {
    "xgboost": (("gbfocal", "XGBFocalClassifier"), ("xgboost", "XGBClassifier")),
    "lightgbm": (("gbfocal", "LGBMFocalClassifier"), ("lightgbm", "LGBMClassifier")),
}


def _script(module: str, cls: str, rows: int, n_jobs: int | None, engine: str) -> str:
    extra = "" if n_jobs is None else f", n_jobs={n_jobs}"
    if engine == "lightgbm":
        extra += ", verbose=-1"
    return _SCRIPT.format(module=module, cls=cls, rows=rows, n_jobs=extra)


def _run(code: str, env: dict[str, str]) -> float:
    """Wall-clock seconds of a fresh interpreter running ``code``, launch to exit."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:  # pragma: no cover - not Linux
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=sorted(_CLASSES), default="xgboost")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each script (median reported)")
    parser.add_argument("--n-jobs", type=int, default=None, help="engine threads (default: the engine's own)")
    args = parser.parse_args()

    (focal_module, focal_cls), (plain_module, plain_cls) = _CLASSES[args.engine]
    focal = _script(focal_module, focal_cls, args.rows, args.n_jobs, args.engine)
    plain = _script(plain_module, plain_cls, args.rows, args.n_jobs, args.engine)
    root = str(Path(__file__).resolve().parents[1])
    base = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}

    print(f"{args.engine}: {args.rows:,} rows, n_estimators=5, n_jobs={args.n_jobs}, {args.repeat} runs each")
    print(f"load average before: {_loadavg()}")
    times: dict[str, list[float]] = {"cold": [], "warm": [], "plain": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            env = {**base, "NUMBA_CACHE_DIR": cache}
            times["cold"].append(_run(focal, env))
            times["warm"].append(_run(focal, env))
        times["plain"].append(_run(plain, base))
    print(f"load average after:  {_loadavg()}")

    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"{'':>6} {'median s':>9} {'min s':>7} {'/ plain':>8}   runs")
    for k, v in times.items():
        runs = " ".join(f"{t:.2f}" for t in v)
        print(f"{k:>6} {med[k]:>9.2f} {min(v):>7.2f} {med[k] / med['plain']:>7.2f}x   {runs}")
    print("targets (issue 15): cold/plain <= 2.00x, warm/plain <= 1.25x")


if __name__ == "__main__":
    main()
