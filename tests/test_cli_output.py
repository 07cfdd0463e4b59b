"""``gbfocal bench --output``: a folder it cannot use is refused before any fit, and two runs never mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli import TINY, run_cli

from gbfocal import bench
from gbfocal.bench import MANIFEST, BenchConfig, BenchSetupError, run_bench

pytest.importorskip("lightgbm")


@pytest.fixture
def no_training(monkeypatch):
    """Any fit fails the test: the run must be refused before training."""

    def fit(*args, **kwargs):
        raise AssertionError("a model was trained")

    monkeypatch.setattr(bench, "_FITTERS", dict.fromkeys(bench.ENGINES, fit))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(argv: list[str]) -> str:
    code, out, err = run_cli(argv)
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("gbfocal bench: ")
    return line


# ---------------------------------------------------------------------------- unusable folders


def test_output_that_is_a_file_is_refused_before_training(tmp_path, no_training):
    target = tmp_path / "results.txt"
    target.write_text("mine")
    line = _refused([*TINY, "--output", str(target)])
    assert "is an existing file" in line and "choose another output folder" in line
    assert target.read_text() == "mine"


def test_output_under_a_file_is_refused_before_training(tmp_path, no_training):
    (tmp_path / "somefile").write_text("mine")
    line = _refused([*TINY, "--output", str(tmp_path / "somefile" / "sub" / "deeper")])
    assert "cannot create output folder" in line and "is a file, not a folder" in line


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "to-create"])
def test_unwritable_output_is_refused_before_training(tmp_path, monkeypatch, no_training, exists):
    folder = tmp_path / "out"
    if exists:
        folder.mkdir()
    # Tests may run as root, who may write anywhere: the permission answer is simulated.
    monkeypatch.setattr(bench.os, "access", lambda path, mode: False)
    line = _refused([*TINY, "--output", str(folder)])
    assert "not writable" in line if exists else "no permission to write in" in line
    assert folder.exists() == exists


# ---------------------------------------------------------------------------- one run per folder


def test_run_writes_a_manifest_of_exactly_its_files(tmp_path):
    folder = tmp_path / "out"
    code, _, err = run_cli([*TINY, "--output", str(folder)])
    assert code == 0, err
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["schema"] == "gbfocal-bench-manifest/1"
    assert sorted(manifest["files"]) == sorted(_files(folder))
    assert "predictions/synthetic.npz" in manifest["files"] and "pr_synthetic.png" in manifest["files"]


def test_second_run_into_a_used_folder_is_refused(tmp_path, no_training):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / MANIFEST).write_text(json.dumps({"schema": "gbfocal-bench-manifest/1", "files": ["results.json"]}))
    (folder / "results.json").write_text("{}")
    before = _files(folder)
    line = _refused([*TINY, "--output", str(folder)])
    assert "is not empty" in line and "a previous gbfocal bench run" in line and "--overwrite" in line
    assert _files(folder) == before
    with pytest.raises(BenchSetupError, match="overwrite=True"):
        run_bench(BenchConfig(("synthetic",), max_rows=1_000, seeds=1), folder, progress=False)


def test_folder_of_other_files_is_refused(tmp_path, no_training):
    (tmp_path / "notes.txt").write_text("mine")
    line = _refused([*TINY, "--output", str(tmp_path)])
    assert f"no {MANIFEST}" in line and "--overwrite" in line and "other files are kept" in line
    assert _files(tmp_path) == {"notes.txt": b"mine"}


def test_overwrite_removes_exactly_the_previous_runs_files(tmp_path):
    # A previous run on another dataset: without the manifest its plots would stay beside the new ones.
    previous = ["results.json", "results.md", "pr_sylva.png", "predictions/sylva.npz", "ap_difference.png"]
    (tmp_path / "predictions").mkdir()
    for name in previous:
        (tmp_path / name).write_text("old")
    # Not the run's own: a user's files, and names a damaged manifest lists that no run writes.
    mine = {"notes.txt": b"mine", "pr_mine.png": b"mine", "predictions/keep.npz": b"mine"}
    for name, content in mine.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path.parent / "outside.txt").write_text("mine")
    listed = [*previous, "notes.txt", "../outside.txt", "predictions/keep.npz"]
    (tmp_path / MANIFEST).write_text(json.dumps({"schema": "gbfocal-bench-manifest/1", "files": listed}))

    code, _, err = run_cli([*TINY, "--output", str(tmp_path), "--overwrite"])
    assert code == 0, err
    files = _files(tmp_path)
    written = json.loads(files[MANIFEST])["files"]
    assert sorted(files) == sorted([*written, *mine])
    assert all(files[name] == content for name, content in mine.items())
    assert (tmp_path.parent / "outside.txt").read_text() == "mine"
    assert not (tmp_path / "pr_sylva.png").exists() and not (tmp_path / "predictions" / "sylva.npz").exists()
    assert json.loads(files["results.json"])["config"]["datasets"] == ["synthetic"]


def test_overwrite_without_manifest_removes_only_known_output_names(tmp_path):
    (tmp_path / "predictions").mkdir()
    stale = ["results.md", "reliability_yeast6.png", "predictions/yeast6.npz"]
    for name in stale:
        (tmp_path / name).write_text("old")
    mine = {"data.csv": b"mine", "predictions/mine.txt": b"mine", "results.json.bak": b"mine"}
    for name, content in mine.items():
        (tmp_path / name).write_bytes(content)

    code, _, err = run_cli([*TINY, "--output", str(tmp_path), "--overwrite"])
    assert code == 0, err
    files = _files(tmp_path)
    assert sorted(files) == sorted([*json.loads(files[MANIFEST])["files"], *mine])
    assert all(files[name] == content for name, content in mine.items())


def test_overwrite_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        run_bench(BenchConfig(("synthetic",), max_rows=1_000, seeds=1), tmp_path, overwrite="yes")
