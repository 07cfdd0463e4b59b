"""What the tuned methods of a ``gbfocal bench`` run picked, and the mean AP of every method.

Reads a bench run's ``results.json`` (default: the full run shipped in
``benchmarks/results/``) and prints, over every data set × engine × seed:

- how often ``focal_tuned`` chose each (α, γ), and each α and γ on its own;
- how often ``weighted_logloss_tuned`` chose each exponent ``t`` of
  ``scale_pos_weight = (n_neg/n_pos)^t`` (``t = 0`` is plain logloss);
- per engine, the mean over data sets of each method's mean test average
  precision (every data set counts once, whatever its size).

These are the figures quoted in the README's "Choosing α and γ".

    python benchmarks/tuning_picks.py
    python benchmarks/tuning_picks.py gbfocal-bench/results.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

DEFAULT = Path(__file__).resolve().parent / "results" / "results.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT, help=f"results.json (default: {DEFAULT})")
    results = json.loads(parser.parse_args().results.read_text(encoding="utf-8"))
    folds = results["folds"]

    pairs: Counter = Counter()
    alphas: Counter = Counter()
    gammas: Counter = Counter()
    exponents: Counter = Counter()
    ap: defaultdict = defaultdict(list)
    for fold in folds:
        ap[fold["engine"], fold["method"], fold["dataset"]].append(fold["metrics"]["average_precision"])
        chosen = fold.get("chosen") or {}
        if fold["method"] == "focal_tuned":
            pairs[chosen["alpha"], chosen["gamma"]] += 1
            alphas[chosen["alpha"]] += 1
            gammas[chosen["gamma"]] += 1
        elif fold["method"] == "weighted_logloss_tuned":
            exponents[chosen["weight_exponent"]] += 1

    n_tuned = sum(pairs.values())
    command = results.get("command", "?")
    print(f"{' '.join(command) if isinstance(command, list) else command}: {len(folds)} fold × method results")
    print(f"\nfocal_tuned picks over {n_tuned} fits (data set × engine × seed):")
    for (alpha, gamma), count in sorted(pairs.items()):
        print(f"  α={alpha:g} γ={gamma:g}: {count}")
    print("  by α: " + ", ".join(f"{a:g} ×{c}" for a, c in sorted(alphas.items())))
    print("  by γ: " + ", ".join(f"{g:g} ×{c}" for g, c in sorted(gammas.items())))
    print(f"\nweighted_logloss_tuned picks of t over {sum(exponents.values())} fits:")
    print("  " + ", ".join(f"t={t:g} ×{c}" for t, c in sorted(exponents.items())))

    datasets = sorted({d for (_, _, d) in ap})
    print(f"\nmean test AP over {len(datasets)} data sets (each data set's mean over seeds, then the mean):")
    for engine in sorted({e for (e, _, _) in ap}):
        methods = [m for m in results["config"]["methods"] if (engine, m, datasets[0]) in ap]
        means = {m: np.mean([np.mean(ap[engine, m, d]) for d in datasets if (engine, m, d) in ap]) for m in methods}
        print(f"  {engine:>8}: " + ", ".join(f"{m} {v:.3f}" for m, v in means.items()))


if __name__ == "__main__":
    main()
