"""``gbfocal bench --data`` and :func:`gbfocal.bench.bench_data`: the bench on the user's own data.

Every refusal (missing column, one class, a multiclass class too small, unknown positive
label, a class too small for the splits) happens before any training: the
output folder is never created.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _cli import run_cli

from gbfocal import bench
from gbfocal import datasets as gd
from gbfocal.bench import BenchConfig, bench_data

pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")

FAST = ["--seeds", "2", "--rounds", "3", "--early-stopping", "2", "--methods", "focal", "weighted_logloss"]
FAST += ["--jobs", "1", "--quiet"]
CONFIG = BenchConfig(seeds=2, rounds=3, early_stopping=2, methods=("focal", "weighted_logloss"), jobs=1)


def _frame(n: int = 1_200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(size=n),
            "city": rng.choice(["Paris", "Oslo", "Rome"], n),
            "member": rng.choice([True, False], n),
            "visits": rng.integers(0, 9, n),
        }
    )
    frame["label"] = np.where(frame["amount"] + (frame["city"] == "Oslo") + rng.normal(size=n) > 2.0, "churn", "stay")
    frame.loc[::7, "amount"] = np.nan  # missing values are allowed
    frame.loc[::11, "city"] = None
    return frame


@pytest.fixture(scope="module", params=["csv", "parquet"])
def data_file(request, tmp_path_factory) -> dict:
    frame = _frame()
    path = tmp_path_factory.mktemp("data") / f"customers.{request.param}"
    if request.param == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    return {"path": path, "frame": frame}


# ---------------------------------------------------------------------------- the command line


def test_cli_benchmarks_a_file(data_file, tmp_path):
    code, _, err = run_cli(
        ["bench", "--data", str(data_file["path"]), "--target", "label", *FAST, "--output", str(tmp_path / "out")]
    )
    assert code == 0, err
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    (ds,) = res["datasets"]
    frame = data_file["frame"]
    assert ds["name"] == "customers" and ds["n_rows"] == len(frame) and ds["n_features"] == 4
    assert ds["class_labels"] == ["stay", "churn"]  # the rarer class is positive
    assert ds["n_positive"] == int((frame["label"] == "churn").sum())
    assert ds["categorical_features"] == ["city"] and ds["has_missing"] is True
    assert "'label'" in ds["source"] and str(data_file["path"]) in ds["source"]
    assert {(f["engine"], f["method"]) for f in res["folds"]} == {
        (e, m) for e in ("xgboost", "lightgbm") for m in ("focal", "weighted_logloss")
    }
    assert (tmp_path / "out" / "predictions" / "customers.npz").is_file()
    text = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert "Target: 'churn' (positive, coded 1) against 'stay' (coded 0)" in text


def test_cli_positive_overrides_the_rare_class(data_file, tmp_path):
    argv = ["bench", "--data", str(data_file["path"]), "--target", "label", "--positive", "stay"]
    code, _, err = run_cli([*argv, *FAST, "--engines", "lightgbm", "--output", str(tmp_path / "out")])
    assert code == 0, err
    (ds,) = json.loads((tmp_path / "out" / "results.json").read_text())["datasets"]
    assert ds["class_labels"] == ["churn", "stay"]
    assert ds["n_positive"] == int((data_file["frame"]["label"] == "stay").sum())


def _refused(tmp_path, frame: pd.DataFrame, *options: str) -> str:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    code, stdout, err = run_cli(["bench", "--data", str(path), *options, *FAST, "--output", str(out)])
    assert code == 2 and stdout == ""
    assert not out.exists()  # refused before anything was trained or written
    return err


def test_cli_missing_column_names_the_columns(tmp_path):
    err = _refused(tmp_path, _frame(), "--target", "lable")
    assert "has no column 'lable'; did you mean 'label'?" in err and "'amount', 'city'" in err and "--target" in err


def test_cli_one_class_is_refused(tmp_path):
    err = _refused(tmp_path, _frame().assign(label="stay"), "--target", "label")
    assert "target 'label' has one class ('stay')" in err


def test_cli_multiclass_with_a_class_of_one_row_is_refused_clearly(tmp_path):
    frame = _frame().assign(label=lambda f: np.resize(["a", "b"], len(f)))
    frame.loc[frame.index[0], "label"] = "c"  # one row of class 'c'
    err = _refused(tmp_path, frame, "--target", "label")
    assert "has 1 rows of class 'c'" in err and "drop that class's rows or merge it with another class" in err


def test_cli_unknown_positive_lists_the_classes(tmp_path):
    err = _refused(tmp_path, _frame(), "--target", "label", "--positive", "maybe")
    assert "positive label 'maybe' is not a class of target 'label'" in err
    assert "'stay'" in err and "'churn'" in err


def test_cli_too_small_class_names_max_rows(tmp_path):
    frame = _frame(4_000)
    frame["label"] = "no"
    frame.loc[frame.index[::400], "label"] = "yes"  # 10 positives of 4,000
    err = _refused(tmp_path, frame, "--target", "label", "--max-rows", "200")
    assert "positive class 'yes'" in err and "raise max_rows (--max-rows) to" in err
    assert "or 0 on the command line for all 4,000 rows" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "x.csv"], "--data needs --target COLUMN"),
        (["--target", "y"], "give it with --data PATH"),
        (["--data", "x.csv", "--target", "y", "--datasets", "synthetic"], "--data and --datasets exclude each other"),
    ],
)
def test_cli_data_options_are_usage_errors(argv, message):
    code, _, err = run_cli(["bench", *argv])
    assert code == 2 and message in err


def test_cli_unknown_file_kind(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("")
    code, _, err = run_cli(["bench", "--data", str(path), "--target", "y", "--output", str(tmp_path / "o")])
    assert code == 2 and "must end in one of .csv" in err


# ---------------------------------------------------------------------------- Python


def test_bench_data_takes_arrays_and_any_label_type():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(900, 3))
    y = X[:, 0] + rng.normal(size=900) > 1.6  # bool labels, True the rare class
    result = bench_data(X, y, CONFIG, progress=False)
    (ds,) = result.results["datasets"]
    assert ds["class_labels"] == [False, True] and ds["n_positive"] == int(y.sum())
    assert ds["categorical_features"] == [] and ds["has_missing"] is False
    assert len(result.paired) == 2 and all("verdict_holm" in p for p in result.paired)


def test_bench_data_positive_matches_by_string_form():
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"a": rng.normal(size=900)})
    y = pd.Series(np.where(X["a"] > 1.2, 7, 3), name="grade")
    data = gd.from_xy(X, y, positive="3")
    assert data.class_labels == (7, 3) and data.n_positive == int((y == 3).sum())
    assert gd.from_xy(X, y).class_labels == (3, 7)  # default: the rarer class, 7
    with pytest.raises(gd.DataError, match=r"its classes are 3 \(.* rows\) and 7"):
        gd.from_xy(X, y, positive="8")


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.zeros((5, 2)), np.array([0, 1, 0, 1]), "X has 5 rows but y has 4"),
        (np.zeros((4, 2)), np.array([0, 1, None, 1], dtype=object), "1 missing values; drop those rows"),
        (pd.DataFrame({"t": pd.to_datetime(["2020-01-01"] * 4)}), np.array([0, 1, 0, 1]), "column 't' has type"),
    ],
)
def test_from_xy_refuses_bad_data(X, y, message):
    with pytest.raises(gd.DataError, match=message):
        gd.from_xy(X, y)


def test_bench_data_refuses_before_training(tmp_path, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("a model was trained")

    monkeypatch.setattr(bench, "_warm_up", no_fit)
    y = np.zeros(300, dtype=int)
    y[:3] = 1
    with pytest.raises(bench.BenchSetupError, match="too few for the stratified"):
        bench_data(np.ones((300, 2)), y, CONFIG, tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match=r"config\.datasets must be None"):
        bench_data(np.ones((300, 2)), y, BenchConfig(datasets=("synthetic",)), progress=False)
    with pytest.raises(ValueError, match="registered dataset"):
        bench_data(np.ones((300, 2)), y, CONFIG, name="synthetic", progress=False)
    assert not (tmp_path / "out").exists()


def test_bench_data_subsamples_like_the_shipped_data():
    frame = _frame(3_000)
    config = BenchConfig(
        seeds=2, rounds=2, early_stopping=0, methods=("focal",), engines=("lightgbm",), jobs=1, max_rows=1_000
    )
    result = bench_data(frame.drop(columns="label"), frame["label"], config, progress=False)
    (ds,) = result.results["datasets"]
    assert (ds["n_rows"], ds["full_n_rows"]) == (1_000, 3_000)
    rate = (frame["label"] == "churn").mean()
    assert ds["n_positive"] == round(1_000 * rate)
