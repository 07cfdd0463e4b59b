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
    python benchmarks/bench_cold_start.py --compile-cost        # the Python row budget's measurement
    python benchmarks/bench_cold_start.py --medium              # 50k rows x 200 rounds, warm cache

``--compile-cost`` measures what :data:`gbfocal._loss.PYTHON_ROW_BUDGET`
stands for: in one fresh process per run, the Python row cost of
``PreparedRows.gradient_hessian`` and ``.mean_loss`` (float32 margins), then ``import numba`` plus the
first call of the float32 gradient kernel and of the loss-sum kernel,
with an empty cache (compiled) and a filled one (loaded), each expressed in
Python rows. ``--medium`` times a 50,000-row, 200-round fit in a warm
process against the same fit with the budget at 0 (kernels from round 1),
interleaved: what the first rounds in Python cost a larger fit.
"""

from __future__ import annotations

import argparse
import os
import resource
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
y = np.digitize(X[:, 0] + rng.logistic(size={rows}), {edges})
{cls}(n_estimators=5{n_jobs}).fit(X, y).predict_proba(X)
"""

_CLASSES = {
    "xgboost": (("gbfocal", "XGBFocalClassifier"), ("xgboost", "XGBClassifier")),
    "lightgbm": (("gbfocal", "LGBMFocalClassifier"), ("lightgbm", "LGBMClassifier")),
}


def _script(module: str, cls: str, rows: int, n_jobs: int | None, engine: str, classes: int = 2) -> str:
    extra = "" if n_jobs is None else f", n_jobs={n_jobs}"
    if engine == "lightgbm":
        extra += ", verbose=-1"
    # class edges on the noisy score: [1] gives the binary script (about 1 row in 5 positive)
    edges = [1.0] if classes == 2 else [float(v) for v in np.linspace(-1.0, 1.5, classes - 1)]
    return _SCRIPT.format(module=module, cls=cls, rows=rows, n_jobs=extra, edges=edges)


def _run(code: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall-clock, CPU) seconds of a fresh interpreter running ``code``, launch to exit.

    CPU time (user + system, every thread) is what a loaded machine inflates
    least: read it beside the wall clock when the load average is high.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


_COMPILE_COST = """
import time
import numpy as np
from gbfocal import FocalLoss, PreparedRows
rng = np.random.default_rng(0)
n = 20_000
y = (rng.random(n) < 0.3).astype(np.float64)
z = rng.normal(0, 3, n).astype(np.float32)
loss = FocalLoss(0.25, 2.0)
def best(f):
    times = []
    for _ in range(3):
        rows = PreparedRows(y)  # fresh: within its Python row budget
        t0 = time.perf_counter(); f(rows); times.append(time.perf_counter() - t0)
    return min(times) / n
gh = best(lambda rows: rows.gradient_hessian(loss, z))
lo = best(lambda rows: rows.mean_loss(loss, z))
t0 = time.perf_counter()
from gbfocal import _cpu as C
f32, f64 = np.zeros(8, np.float32), np.zeros(8, np.float64)
C.gradient_hessian_kernel32(f32, f32, f64[:0], np.float32(0.25), np.float32(2.0), 2, 1, f32.copy(), f32.copy(), 0, 8)
t1 = time.perf_counter()
C.loss_sum_kernel(f64, f64, f64[:0], 0.25, 2.0, 2, 0, 8)
t2 = time.perf_counter()
print(gh, lo, t1 - t0, t2 - t1)
"""

_MEDIUM = """
import sys, time
import numpy as np
from gbfocal import XGBFocalClassifier, _loss
if sys.argv[1] == "compiled":
    _loss.PYTHON_ROW_BUDGET = 0
rng = np.random.default_rng(0)
X = rng.standard_normal((50_000, 10))
y = (X[:, 0] + rng.logistic(size=50_000) > 1).astype(int)
XGBFocalClassifier(n_estimators=2, n_jobs={n_jobs}).fit(X[:100], y[:100])  # imports (Python path: no Numba)
t0 = time.perf_counter()
XGBFocalClassifier(n_estimators=200, n_jobs={n_jobs}).fit(X, y)
print(time.perf_counter() - t0)
"""


def _compile_cost(base: dict[str, str], repeat: int) -> None:
    """Prints each run's Python row costs and kernel first-use costs, cold then warm."""
    print(f"load average before: {_loadavg()}")
    print(
        f"{'cache':>6} {'gh us/row':>9} {'loss us/row':>11} {'gh kernel s':>11} {'= M gh rows':>11} "
        f"{'loss kernel s':>13} {'= M loss rows':>13}"
    )
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as cache:
            env = {**base, "NUMBA_CACHE_DIR": cache}
            for label in ("cold", "warm"):
                out = subprocess.run(
                    [sys.executable, "-c", _COMPILE_COST], env=env, check=True, capture_output=True, text=True
                ).stdout
                gh, lo, t_gh, t_lo = map(float, out.split())
                print(
                    f"{label:>6} {gh * 1e6:>9.2f} {lo * 1e6:>11.2f} {t_gh:>11.2f} {t_gh / gh / 1e6:>11.2f} "
                    f"{t_lo:>13.2f} {t_lo / lo / 1e6:>13.2f}"
                )
    print(f"load average after:  {_loadavg()}")


def _medium(base: dict[str, str], repeat: int, n_jobs: int | None) -> None:
    """A 50k-row, 200-round XGBoost fit (warm cache): default budget against kernels from round 1."""
    code = _MEDIUM.format(n_jobs=n_jobs)
    print(f"load average before: {_loadavg()}")
    times: dict[str, list[float]] = {"default": [], "compiled": []}
    with tempfile.TemporaryDirectory() as cache:
        env = {**base, "NUMBA_CACHE_DIR": cache}
        subprocess.run([sys.executable, "-c", code, "compiled"], env=env, check=True, capture_output=True)  # fill
        for _ in range(repeat):
            for mode in times:
                out = subprocess.run(
                    [sys.executable, "-c", code, mode], env=env, check=True, capture_output=True, text=True
                ).stdout
                times[mode].append(float(out))
    print(f"load average after:  {_loadavg()}")
    for mode, v in times.items():
        print(f"{mode:>9} fit s: median {np.median(v):.2f}   runs " + " ".join(f"{t:.2f}" for t in v))
    print(f"default / compiled: {np.median(times['default']) / np.median(times['compiled']):.2f}x")


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:  # pragma: no cover - not Linux
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=sorted(_CLASSES), default="xgboost")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=2, help="classes in y (3+: the multiclass loss)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each script (median reported)")
    parser.add_argument("--n-jobs", type=int, default=None, help="engine threads (default: the engine's own)")
    parser.add_argument("--compile-cost", action="store_true", help="measure the Python row budget instead")
    parser.add_argument("--medium", action="store_true", help="a 50k-row 200-round fit, default vs compiled")
    args = parser.parse_args()

    (focal_module, focal_cls), (plain_module, plain_cls) = _CLASSES[args.engine]
    focal = _script(focal_module, focal_cls, args.rows, args.n_jobs, args.engine, args.classes)
    plain = _script(plain_module, plain_cls, args.rows, args.n_jobs, args.engine, args.classes)
    root = str(Path(__file__).resolve().parents[1])
    base = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    if args.compile_cost:
        return _compile_cost(base, args.repeat)
    if args.medium:
        return _medium(base, args.repeat, args.n_jobs)

    print(
        f"{args.engine}: {args.rows:,} rows, {args.classes} classes, n_estimators=5, n_jobs={args.n_jobs}, "
        f"{args.repeat} runs each"
    )
    print(f"load average before: {_loadavg()}")
    times: dict[str, list[float]] = {"cold": [], "warm": [], "plain": []}
    cpu: dict[str, list[float]] = {"cold": [], "warm": [], "plain": []}

    def record(label: str, code: str, env: dict[str, str]) -> None:
        wall, used = _run(code, env)
        times[label].append(wall)
        cpu[label].append(used)

    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            env = {**base, "NUMBA_CACHE_DIR": cache}
            record("cold", focal, env)
            record("warm", focal, env)
        record("plain", plain, base)
    print(f"load average after:  {_loadavg()}")

    med = {k: float(np.median(v)) for k, v in times.items()}
    med_cpu = {k: float(np.median(v)) for k, v in cpu.items()}
    print(f"{'':>6} {'median s':>9} {'min s':>7} {'/ plain':>8} {'CPU s':>7} {'/ plain':>8}   wall-clock runs")
    for k, v in times.items():
        runs = " ".join(f"{t:.2f}" for t in v)
        print(
            f"{k:>6} {med[k]:>9.2f} {min(v):>7.2f} {med[k] / med['plain']:>7.2f}x "
            f"{med_cpu[k]:>7.2f} {med_cpu[k] / med_cpu['plain']:>7.2f}x   {runs}"
        )
    print("targets (issue 15): cold/plain <= 2.00x, warm/plain <= 1.25x")


if __name__ == "__main__":
    main()
