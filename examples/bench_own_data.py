"""``gbfocal bench`` on your own data, from Python: a table with a text label and a categorical column.

:func:`gbfocal.bench.bench_data` takes ``X, y`` (arrays, or a DataFrame and a
Series) and runs the protocol of ``gbfocal bench`` on them: the same splits,
methods, statistics, ``results.md`` / ``results.json`` and plots. String
columns become categories, missing values stay missing, and the rarer class
is the positive one (``positive=`` overrides). The command line does the
same for a file: ``gbfocal bench --data churn.csv --target churned``.

Here 3,000 generated customer rows, 2 seeds and at most 30 trees keep it to a
few seconds.

    python examples/bench_own_data.py
"""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd

from gbfocal.bench import BenchConfig, bench_data


def customers(n: int = 3_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "monthly_fee": rng.gamma(2.0, 20.0, n),
            "plan": rng.choice(["basic", "family", "pro"], n, p=[0.6, 0.3, 0.1]),
            "support_calls": rng.poisson(1.0, n),
        }
    )
    risk = 0.03 * frame["monthly_fee"] + 0.8 * frame["support_calls"] - 1.0 * (frame["plan"] == "family")
    frame["churned"] = np.where(risk + rng.logistic(size=n) > 4.0, "yes", "no")
    frame.loc[rng.random(n) < 0.05, "monthly_fee"] = np.nan  # missing values are fine
    return frame


def main() -> None:
    frame = customers()
    methods = ("focal", "weighted_logloss", "logloss")
    # jobs=1: on data this small, starting worker processes would cost more than it saves
    config = BenchConfig(seeds=2, rounds=30, early_stopping=10, methods=methods, jobs=1)
    with tempfile.TemporaryDirectory() as folder:
        result = bench_data(frame.drop(columns="churned"), frame["churned"], config, folder, progress=False)
        (ds,) = result.results["datasets"]
        print(f"{ds['n_rows']:,} rows, positive class {ds['class_labels'][1]!r} ({ds['positive_rate']:.1%})")
        print(f"kernel compile/load {result.results['timing']['kernel_compile_seconds']:.1f} s (not in train s)")
        for p in result.paired:
            print(
                f"{p['engine']:>8} {p['focal']} - {p['baseline']}: {p['mean']:+.3f} "
                f"({p['verdict']}; after Holm: {p['verdict_holm']})"
            )


if __name__ == "__main__":  # worker processes re-import this file: train only when run as a script
    main()
