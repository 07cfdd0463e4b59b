"""Cold start: what the first fit in a fresh process compiles, and the paths that avoid compiling."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gbfocal import FocalLoss, _loss

ROOT = Path(__file__).resolve().parents[1]

# A small scikit-learn fit and predict_proba with the Python row budget at 0 (as a large
# data set spends it): prints the kernels Numba compiled or loaded.
_SCRIPT = textwrap.dedent(
    """
    import numba.core.dispatcher as D
    import numpy as np
    from gbfocal import _loss
    _loss.PYTHON_ROW_BUDGET = 0
    seen = []
    original = D.Dispatcher._compile_for_args
    def spy(self, *args, **kwargs):
        seen.append(self.py_func.__name__)
        return original(self, *args, **kwargs)
    D.Dispatcher._compile_for_args = spy
    from gbfocal import XGBFocalClassifier
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 4))
    y = (X[:, 0] + rng.logistic(size=500) > 1).astype(int)
    XGBFocalClassifier(n_estimators=3, n_jobs=1).fit(X, y).predict_proba(X)
    print(" ".join(seen))
    """
)


def _run(script: str, tmp_path: Path) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_large_fit_compiles_only_the_gradient_kernel(tmp_path):
    pytest.importorskip("xgboost")
    # XGBoost hands float32 margins: the float32 kernel, once; class totals, init_score and the
    # posterior of 500 rows need no kernel
    assert _run(_SCRIPT, tmp_path).split() == ["gradient_hessian_kernel_f32"]


# A 2,000-row, 5-tree fit and predict_proba, with and without an eval set and early stopping:
# the whole run in the Python formulas, Numba never imported.
_NO_NUMBA = textwrap.dedent(
    """
    import sys
    import numpy as np
    from gbfocal.{module} import {cls}
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 5))
    y = (X[:, 0] + rng.logistic(size=2000) > 1).astype(int)
    w = rng.uniform(0.5, 2.0, 2000)
    {cls}(n_estimators=5, n_jobs=1{extra}).fit(X, y, sample_weight=w).predict_proba(X)
    model = {cls}(n_estimators=5, n_jobs=1{extra}{early}).fit(X[:1500], y[:1500], eval_set=[(X[1500:], y[1500:])])
    model.predict_proba(X)
    print("numba" in sys.modules, "llvmlite" in sys.modules)
    """
)


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
def test_small_fit_never_imports_numba(tmp_path, engine):
    pytest.importorskip(engine)
    if engine == "xgboost":
        fmt = {"module": "xgboost", "cls": "XGBFocalClassifier", "extra": "", "early": ", early_stopping_rounds=2"}
    else:
        fmt = {
            "module": "lightgbm",
            "cls": "LGBMFocalClassifier",
            "extra": ", verbose=-1",
            "early": ", early_stopping_round=2",
        }
    assert _run(_NO_NUMBA.format(**fmt), tmp_path).splitlines()[-1].split() == ["False", "False"]


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.5, 0.0), (0.1, 5.0), (0.9, 1.7)])
def test_posterior_paths_agree_bit_for_bit(monkeypatch, alpha, gamma):
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.normal(0.0, 8.0, 3000), [-1e300, -745.0, -1e-8, 0.0, 1e-8, 40.0, 745.0, 1e300]])
    loss = FocalLoss(alpha, gamma)
    python = loss.posterior_margin(z), loss.posterior(z)
    monkeypatch.setattr(_loss, "_PYTHON_POSTERIOR_ROWS", 0)  # every array through the kernel
    kernel = loss.posterior_margin(z), loss.posterior(z)
    np.testing.assert_array_equal(python[0], kernel[0])
    np.testing.assert_array_equal(python[1], kernel[1])


@pytest.mark.parametrize("rows", [10, 20_000])
def test_posterior_refuses_non_finite_on_both_paths(rows):
    z = np.zeros(rows)
    z[-1] = np.inf
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        FocalLoss().posterior(z)


@pytest.mark.parametrize("weighted", [False, True])
def test_class_totals_are_separate_sums(weighted):
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.0])
    w = np.array([1e-20, 1e20, 3.0, 2e-20, 1.0]) if weighted else None
    totals = FocalLoss.class_weight_totals(y, w)
    # the small class keeps its total (Σ w - Σ w[y = 0] would give 0 or noise)
    want = (math.fsum([1e-20, 2e-20]), math.fsum([1e20, 3.0, 1.0])) if weighted else (2.0, 3.0)
    assert totals == pytest.approx(want, rel=1e-15)
