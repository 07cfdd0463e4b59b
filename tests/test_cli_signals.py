"""``kill`` and Ctrl-C end ``gbfocal bench --jobs 2`` at once: its worker processes go too, and no traceback shows.

Each test starts a real bench in a subprocess, waits until its two worker
processes exist, signals it, and checks that the parent and every child are
gone within seconds. Linux only: children are found through ``/proc``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _cli import COMMAND

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
pytest.importorskip("xgboost")

#: Long enough to be running when the signal comes (minutes), short to start: 2 seeds, one engine.
LONG = ["bench", "--datasets", "synthetic", "--max-rows", "20000", "--seeds", "2", "--rounds", "100000"]
LONG += ["--early-stopping", "0", "--engines", "xgboost", "--methods", "focal", "--jobs", "2", "--quiet"]


def _children(pid: int) -> list[int]:
    """Live descendants of ``pid``, from ``/proc/<pid>/stat``'s parent field."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _workers(pid: int) -> list[int]:
    out = []
    for child in _children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(child)
        except OSError:
            continue
    return out


@pytest.mark.parametrize(
    ("signum", "status", "line"),
    [(signal.SIGTERM, 143, "gbfocal: terminated"), (signal.SIGINT, 130, "gbfocal: interrupted")],
    ids=["SIGTERM", "SIGINT"],
)
def test_signal_ends_the_bench_and_its_workers(tmp_path, signum, status, line):
    proc = subprocess.Popen(
        [*COMMAND, *LONG, "--output", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell job: Ctrl-C reaches parent and workers
    )
    try:
        deadline = time.monotonic() + 120
        while len(_workers(proc.pid)) < 2:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.2)
        time.sleep(1.0)  # let them import and start training
        family = _children(proc.pid)
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)  # what the terminal does on Ctrl-C
        else:
            os.kill(proc.pid, signum)  # what `kill <pid>` does: the parent only
        _, err = proc.communicate(timeout=20)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in family if _alive(p)], "worker processes outlived the bench"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == status, err
    assert "Traceback" not in err and err.strip().splitlines() == [line]
    assert not (tmp_path / "out").exists()
