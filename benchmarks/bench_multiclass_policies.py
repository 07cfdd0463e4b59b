"""Evidence for the multiclass default Hessian policy: train with each one and compare.

For every policy of ``MulticlassFocalLoss`` (``clamp``, ``positive``,
``abs``, ``clip``, and ``exact`` for reference) plain ``xgboost.train``
fits the same K-class focal model (per-class α ∝ 1 / sqrt(class frequency),
γ = 2, the same starting margins from ``init_score``, the same tree budget)
through a custom objective that hands the kernel's ``(n, K)`` gradient and
Hessian diagonal to XGBoost. It prints, per data set and policy, the mean
over seeds (and the spread) of the held-out focal loss and of the held-out
macro average precision (one-vs-rest, on ``posterior``), and the share of
exact diagonal entries that are negative at the end of training.

Data sets (all offline): scikit-learn's bundled digits (10 classes), wine and
iris (3), and two imbalanced synthetic 5-class problems from
``make_classification``, one with 15% flipped labels (many rows in the
concave region).

    python benchmarks/bench_multiclass_policies.py             # 5 seeds
    python benchmarks/bench_multiclass_policies.py --quick     # 2 seeds, fewer rounds
"""

from __future__ import annotations

import argparse

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_digits, load_iris, load_wine, make_classification
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

from gbfocal import MULTICLASS_HESSIAN_POLICIES, MulticlassFocalLoss


def _data_sets(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    sets = {name: loader(return_X_y=True) for name, loader in (("digits", load_digits), ("wine", load_wine))}
    sets["iris"] = load_iris(return_X_y=True)
    weights = [0.6, 0.25, 0.1, 0.04, 0.01]
    for name, flip in (("synthetic imbalanced", 0.0), ("synthetic imbalanced, 15% noise", 0.15)):
        X, y = make_classification(
            n_samples=6000,
            n_features=20,
            n_informative=8,
            n_classes=5,
            n_clusters_per_class=2,
            weights=weights,
            flip_y=flip,
            random_state=seed,
        )
        sets[name] = (X, y)
    return sets


def _macro_ap(y: np.ndarray, proba: np.ndarray) -> float:
    aps = [average_precision_score(y == k, proba[:, k]) for k in range(proba.shape[1]) if (y == k).any()]
    return float(np.mean(aps))


def fit_one(X, y, policy: str, seed: int, rounds: int, eta: float) -> tuple[float, float, float]:
    """(held-out focal loss, held-out macro AP, share of negative exact diagonal entries)."""
    k = int(y.max()) + 1
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    freq = np.bincount(y_tr, minlength=k) / len(y_tr)
    alpha = tuple(1.0 / np.sqrt(freq) / np.mean(1.0 / np.sqrt(freq)))
    loss = MulticlassFocalLoss(alpha, 2.0, hessian=policy)
    rows = loss.prepared(y_tr, n_classes=k)
    z0 = rows.init_score(loss)
    dtr, dva = xgb.DMatrix(X_tr), xgb.DMatrix(X_va)
    dtr.set_base_margin(np.tile(z0, (len(y_tr), 1)).astype(np.float32))
    dva.set_base_margin(np.tile(z0, (len(y_va), 1)).astype(np.float32))

    def objective(predt, dtrain):
        return rows.gradient_hessian(loss, predt.reshape(len(y_tr), k), n_threads=2)

    params = {
        "num_class": k,
        "tree_method": "hist",
        "max_depth": 4,
        "eta": eta,
        "nthread": 2,
        "seed": seed,
        "disable_default_eval_metric": 1,
    }
    booster = xgb.train(params, dtr, rounds, obj=objective)
    margin_va = booster.predict(dva, output_margin=True).reshape(len(y_va), k).astype(np.float64)
    margin_tr = booster.predict(dtr, output_margin=True).reshape(len(y_tr), k).astype(np.float64)
    valid_fl = loss.mean_loss(y_va, margin_va)
    ap = _macro_ap(y_va, loss.posterior(margin_va))
    _, h = MulticlassFocalLoss(alpha, 2.0, hessian="exact").gradient_hessian(y_tr, margin_tr)
    return valid_fl, ap, float((h < 0).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--eta", type=float, default=0.1)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 60 rounds")
    args = parser.parse_args()
    seeds, rounds = (2, 60) if args.quick else (args.seeds, args.rounds)
    policies = list(MULTICLASS_HESSIAN_POLICIES)
    summary: dict[str, list[tuple[float, float]]] = {p: [] for p in policies}
    for name, (X, y) in _data_sets().items():
        y = np.unique(y, return_inverse=True)[1]
        print(f"\n{name}: {len(y):,} rows, K={y.max() + 1}, class shares {np.round(np.bincount(y) / len(y), 3)}")
        print(f"{'policy':>9} | {'valid FL':>18} | {'valid macro AP':>18} | {'negative exact diag':>19}")
        results = {p: [fit_one(X, y, p, s, rounds, args.eta) for s in range(seeds)] for p in policies}
        best_fl = min(np.mean([r[0] for r in results[p]]) for p in policies)
        for p in policies:
            fl, ap, neg = (np.array(v) for v in zip(*results[p], strict=True))
            summary[p].append((fl.mean() / best_fl, ap.mean()))
            print(
                f"{p:>9} | {fl.mean():>9.5f} ± {fl.std():>6.5f} | {ap.mean():>9.4f} ± {ap.std():>6.4f} |"
                f" {neg.mean():>18.1%}"
            )
    print(f"\nover the data sets ({seeds} seeds, {rounds} rounds, eta={args.eta}):")
    print(f"{'policy':>9} | {'valid FL / best (mean)':>22} | {'macro AP (mean)':>15}")
    for p in policies:
        rel, ap = (np.array(v) for v in zip(*summary[p], strict=True))
        print(f"{p:>9} | {rel.mean():>22.4f} | {ap.mean():>15.4f}")


if __name__ == "__main__":
    main()
