"""A damaged Numba cache file makes the kernels compile again (with one warning), never fail."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Computes float64 and float32 gradients (two kernels, so two cache entries) and compares
# them with values computed without any cache; prints the gbfocal warnings it saw.
_SCRIPT = textwrap.dedent(
    """
    import warnings
    import numpy as np
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        from gbfocal import FocalLoss
        from gbfocal import _cpu, _loss
        _loss.PYTHON_ROW_BUDGET = 0  # these 4 rows through the kernels, not the Python formulas
        y = np.array([0.0, 1.0, 1.0, 0.0])
        z = np.array([0.5, -2.0, 3.0, 0.0])
        loss = FocalLoss(0.25, 2.0)
        g, h = loss.gradient_hessian(y, z)
        g32, h32 = loss.gradient_hessian(y, z.astype(np.float32))
    ref_g, ref_h = loss.gradient_hessian(y, z)  # the same dispatchers: same values, cache or not
    s = 2 * y - 1
    p = 1 / (1 + np.exp(-s * z))
    q = 1 - p
    direct = -s * np.where(y == 1, 0.25, 0.75) * q**2 * (2 * p * -np.log(p) + q)
    assert np.allclose(g, direct, rtol=1e-12), (g, direct)
    assert np.allclose(g32, direct, rtol=1e-5), (g32, direct)
    ours = [w for w in seen if issubclass(w.category, _cpu.NumbaCacheWarning)]
    others = [str(w.message) for w in seen if w not in ours]
    assert not others, others
    print(len(ours))
    for w in ours:
        print(w.message)
    """
)


def _run(cache_dir: Path) -> list[str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=600, cwd=cache_dir
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.parametrize("damaged", [".nbi", ".nbc", ".nb"], ids=["index", "data", "both"])
def test_truncated_cache_files_recompile_with_one_warning(tmp_path, damaged):
    first = _run(tmp_path)
    assert first == ["0"]
    files = [f for f in tmp_path.rglob("*") if f.is_file() and f.suffix.startswith(damaged)]
    assert {f.suffix for f in files} >= ({".nbi", ".nbc"} if damaged == ".nb" else {damaged})
    for f in files:
        f.write_bytes(f.read_bytes()[:10])  # as a full disk or a killed process leaves them
    second = _run(tmp_path)
    assert second[0] == "1", second
    assert "could not be read" in second[1] and "compiled again" in second[1]
    # the damaged entries were rewritten: the next process loads them without a word
    assert _run(tmp_path) == ["0"]
