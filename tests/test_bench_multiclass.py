"""``gbfocal bench`` on multiclass data: files, the Python entry point, metrics, refusals and warm timings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _cli import run_cli

from gbfocal import _bench_multiclass as mc
from gbfocal import bench
from gbfocal import datasets as gd
from gbfocal.bench import BenchConfig, bench_data

pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")

FAST = ["--seeds", "2", "--rounds", "4", "--early-stopping", "2", "--jobs", "1", "--quiet"]
CONFIG = BenchConfig(seeds=2, rounds=4, early_stopping=2, jobs=1)


def _frame(n: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=n), "shop": rng.choice(["A", "B", "C"], n), "z": rng.normal(size=n)})
    score = frame["x"] + 0.5 * (frame["shop"] == "B") + 0.3 * rng.normal(size=n)
    frame["grade"] = np.select([score > 1.3, score > 0.3], ["gold", "silver"], "bronze")
    frame.loc[::9, "x"] = np.nan
    return frame


@pytest.fixture(scope="module", params=["csv", "parquet"])
def run(request, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("mc")
    path = folder / f"grades.{request.param}"
    frame = _frame()
    frame.to_csv(path, index=False) if request.param == "csv" else frame.to_parquet(path)
    out = folder / "out"
    code, _, err = run_cli(["bench", "--data", str(path), "--target", "grade", "--output", str(out), *FAST])
    assert code == 0, err
    return {"folder": out, "results": json.loads((out / "results.json").read_text()), "frame": frame}


def test_cli_benchmarks_a_multiclass_file(run):
    res = run["results"]
    (ds,) = res["datasets"]
    assert ds["task"] == "multiclass" and ds["n_classes"] == 3
    assert ds["class_labels"] == ["bronze", "gold", "silver"]  # codes in sorted label order
    assert ds["class_counts"] == run["frame"]["grade"].value_counts().sort_index().to_dict()
    assert {p["metric"] for p in res["paired"]} == {"macro_average_precision"} and len(res["paired"]) == 6
    text = (run["folder"] / "results.md").read_text(encoding="utf-8")
    assert "| engine | method | macro AP | macro F1 | bal. acc. |" in text and "(macro AP)" in text
    assert (run["folder"] / "pr_grades.png").is_file() and (run["folder"] / "reliability_grades.png").is_file()


def test_multiclass_metrics_recompute_from_saved_predictions(run):
    res, folder = run["results"], run["folder"]
    assert len(res["folds"]) == 2 * 2 * len(bench.METHODS)
    for fold in res["folds"]:
        arrays = np.load(folder / fold["predictions"]["file"])
        y = arrays[fold["predictions"]["labels"]]
        margin = arrays[fold["predictions"]["margin"]]
        corrected = arrays[fold["predictions"]["calibrated"]]
        assert margin.shape == (y.size, 3) and corrected.shape == (y.size, 3)
        again = mc.score(y, margin, corrected)
        assert again == pytest.approx(fold["metrics"], rel=1e-12, abs=1e-12)
        chosen = fold["chosen"]
        if chosen["loss"] == "logloss":  # the prior correction softmax(z - log w), recomputed from the record
            np.testing.assert_allclose(corrected, margin - np.log(chosen["class_weights"]), atol=1e-5)


def test_multiclass_summary_and_paired_recompute(run):
    res = run["results"]
    summary, paired = bench.summarize(res["folds"])
    assert summary == res["summary"] and [p["mean"] for p in paired] == [p["mean"] for p in res["paired"]]


def test_score_matches_scikit_learn():
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score, log_loss

    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), [40, 25, 10, 5])
    z = rng.normal(size=(y.size, 4)) + 2.0 * np.eye(4)[y] * rng.uniform(size=(y.size, 1))
    out = mc.score(y, z, z - 1.0)
    p = mc.softmax(z)
    onehot = np.eye(4)[y]
    assert out["macro_average_precision"] == pytest.approx(average_precision_score(onehot, p, average="macro"))
    assert out["macro_f1"] == pytest.approx(f1_score(y, z.argmax(1), average="macro"))
    assert out["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, z.argmax(1)))
    assert out["log_loss"] == pytest.approx(log_loss(y, p))
    assert out["brier"] == pytest.approx(np.mean(np.sum((p - onehot) ** 2, axis=1)))
    # a constant shift of every margin changes no probability
    assert out["log_loss_calibrated"] == pytest.approx(out["log_loss"])


def test_prior_correction_recovers_the_posterior():
    """A class-weighted cross-entropy minimiser is softmax(z) ∝ w η; softmax(z - log w) is η again."""
    eta = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    balanced = np.array([0.5, 2.0, 4.0])
    cand = mc.MulticlassCandidate("logloss", weight_exponent=1.0)
    z = np.log(eta * balanced) + 3.0  # any row-constant offset
    np.testing.assert_allclose(mc.softmax(cand.corrected_margins(z, balanced)), eta)


def test_grids_have_the_same_size_and_hold_the_untuned_methods():
    for grid, size in bench.GRIDS.items():
        focal, weighted = mc.candidates("focal_tuned", size), mc.candidates("weighted_logloss_tuned", size)
        assert len(focal) == len(weighted) == size, grid
        assert mc.candidates("focal", size)[0] in focal
        assert {mc.candidates(m, size)[0] for m in ("logloss", "weighted_logloss")} <= set(weighted)
        assert any(c.label() == "α=balanced γ=2" for c in focal)


def test_bench_data_takes_multiclass_arrays():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(700, 3))
    y = np.digitize(X[:, 0] + 0.3 * rng.normal(size=700), [-0.8, 0.9])  # 3 integer classes
    config = BenchConfig(seeds=2, rounds=3, early_stopping=0, methods=("focal", "weighted_logloss"), jobs=1)
    result = bench_data(X, y, config, progress=False)
    (ds,) = result.results["datasets"]
    assert ds["class_labels"] == [0, 1, 2] and ds["task"] == "multiclass"
    (pair,) = [p for p in result.paired if p["engine"] == "xgboost"]
    assert pair["metric"] == "macro_average_precision" and pair["baseline"] == "weighted_logloss"


def _refused(tmp_path, frame, *argv):
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    code, _, err = run_cli(["bench", "--data", str(path), "--output", str(out), *argv, *FAST])
    assert code == 2 and not out.exists()
    return err


def test_multiclass_with_positive_is_refused(tmp_path):
    err = _refused(tmp_path, _frame(), "--target", "grade", "--positive", "gold")
    assert "target 'grade' has 3 classes (multiclass)" in err and "drop --positive" in err


def test_multiclass_class_too_small_is_named(tmp_path):
    frame = _frame()
    frame.loc[frame.index[:3], "grade"] = "platinum"  # 3 rows cannot fill fitting, validation and test parts
    err = _refused(tmp_path, frame, "--target", "grade")
    assert "rows of class 'platinum'" in err and "drop that class's rows or merge it" in err


def test_too_many_classes_is_refused(tmp_path):
    frame = _frame().assign(grade=lambda f: np.arange(len(f)) % 150)
    err = _refused(tmp_path, frame, "--target", "grade")
    assert "has 150 classes, more than the 100" in err and "numeric column" in err


def test_small_subsample_keeps_every_class_splittable(monkeypatch):
    """max_rows keeps min(n_k, MIN_CLASS_ROWS) rows of each class, so a small subsample still splits."""
    data = gd.load("fars_multiclass", max_rows=300)
    assert data.n_rows == 300 and data.class_counts.min() == gd.MIN_CLASS_ROWS  # 9 of 100,968 rows: kept 8
    bench._check_splits("fars_multiclass", data, BenchConfig(seeds=10))


def test_multiclass_registry_datasets_load():
    for name, info in gd.DATASETS.items():
        if info.n_classes > 2:
            data = gd.load(name)
            assert (data.n_rows, data.n_features, data.n_positive, data.n_classes) == (
                info.n_rows,
                info.n_features,
                info.n_positive,
                info.n_classes,
            )
            assert data.class_counts.min() >= gd.MIN_CLASS_ROWS
            sub = gd.load(name, max_rows=200)
            assert sub.n_rows == min(200, info.n_rows) and sub.n_classes == info.n_classes


def test_warm_up_compiles_every_kernel_a_timed_fit_uses():
    """After the warm-up, a real (large enough to leave the Python formulas) fit compiles nothing.

    Without the budget set to 0 in the warm-up, its tiny fits run the formulas in Python and the first
    timed fit compiles the kernels.
    """
    import numba

    from gbfocal import _cpu

    def signatures():
        return {n: len(d.signatures) for n, d in vars(_cpu).items() if isinstance(d, numba.core.registry.CPUDispatcher)}

    bench._warm_up(("xgboost", "lightgbm"), 1, multiclass=True)
    before = signatures()
    rng = np.random.default_rng(5)
    n = 40_000  # rounds x rows beyond the Python row budget: the kernels run
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = np.digitize(X[:, 0], [-0.5, 0.8]).astype(np.int8)
    fold = bench._Fold(X, y, X[:2000], y[:2000], X[:2000], y[:2000], np.nan, mc.balanced_weights(y, 3))
    (focal,) = mc.candidates("focal", 4)
    binary = bench._Fold(
        X, (y == 2).astype(np.int8), X[:2000], (y[:2000] == 2).astype(np.int8), X[:2000], y[:2000], 3.0
    )
    config = BenchConfig(rounds=30, early_stopping=5)
    for engine in ("xgboost", "lightgbm"):
        fit = bench._FITTERS[engine](focal, fold, config, 0, 1)
        focal.corrected_margins(fit.margin_test, fold.balanced)
        fit = bench._FITTERS[engine](bench.candidates("focal")[0], binary, config, 0, 1)
        bench.candidates("focal")[0].calibrated_logit(fit.margin_test, 3.0)
    assert signatures() == before
