"""A small ``gbfocal bench`` from Python: focal loss vs weighted logloss on synthetic rare events.

The command ``gbfocal bench`` runs the same code (:mod:`gbfocal.bench`) on
real data; here 3,000 synthetic rows (2% positives), 2 seeds and at most 30
trees keep it to a few seconds. Results, predictions and plots go to a
temporary folder.

    python examples/bench_small.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from gbfocal.bench import BenchConfig, run_bench


def main() -> None:
    config = BenchConfig(
        datasets=("synthetic",),
        engines=("xgboost", "lightgbm"),
        methods=("focal", "weighted_logloss", "logloss"),
        seeds=2,
        rounds=30,
        early_stopping=10,
        max_rows=3_000,
        jobs=1,  # tiny data: starting worker processes would cost more than it saves
    )
    with tempfile.TemporaryDirectory() as folder:
        result = run_bench(config, folder, progress=False)
        print(f"wrote {', '.join(result.files)}")
        for entry in result.summary:
            ap = entry["metrics"]["average_precision"]
            print(f"{entry['engine']:>8} {entry['method']:<17} test AP {ap['mean']:.3f} over {entry['n_seeds']} seeds")
        for p in result.paired:
            print(f"{p['engine']:>8} {p['focal']} - {p['baseline']}: {p['mean']:+.3f} ({p['verdict']})")
        # Every number can be recomputed from the saved test margins.
        assert (Path(folder) / "predictions" / "synthetic.npz").exists()


if __name__ == "__main__":  # worker processes re-import this file: train only when run as a script
    main()
