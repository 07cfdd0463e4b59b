"""The multiclass CUDA kernels under Numba's CUDA simulator, against the CPU kernels.

As in tests/test_cuda.py, the simulator must be on before Numba is imported,
so this file runs itself as a script in a subprocess
(``NUMBA_ENABLE_CUDASIM=1 python tests/test_multiclass_cuda.py OUT.npz``) and
the test compares what it saved with the CPU path. Small on purpose: the
simulator runs every CUDA thread as Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from gbfocal import MulticlassFocalLoss

#: (alpha, gamma, hessian): integer γ (multiplied out) and real γ (exp/log), several policies.
CASES = [
    (None, 2.0, "clamp"),
    ((0.5, 1.0, 2.0, 0.25), 1.7, "exact"),
    ((1.0, 3.0, 0.5, 1.0), 0.0, "positive"),
    (None, 5.0, "abs"),
]


def _data(dtype=np.float64):
    rng = np.random.default_rng(12)
    special = np.array(
        [
            [0.0, 0.0, 0.0, 0.0],
            [40.0, 0.0, 0.0, 0.0],
            [800.0, 0.0, -800.0, 1e-8],
            [1e4, -1e4, 0.0, 5.0],
            [5.0, 5.0, -3.0, 1.0],
            [0.0, 0.0, 0.0, 0.0],  # the largest margins of the dtype, set below
        ]
    )
    special[5, :2] = [np.finfo(dtype).max, -np.finfo(dtype).max]
    z = np.concatenate([special, special, rng.normal(scale=5.0, size=(28, 4))]).astype(dtype)
    y = np.concatenate([[0, 0, 1, 1, 1, 0], [1, 2, 0, 3, 2, 1], rng.integers(0, 4, 28)])
    w = rng.uniform(0.0, 2.0, len(y))
    return y, z, w


def _host(arr) -> np.ndarray:
    return arr.get() if hasattr(arr, "get") else arr.copy_to_host()


def _run_cases(C) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    y, z, w = _data()
    for k, (alpha, gamma, hessian) in enumerate(CASES):
        loss = MulticlassFocalLoss(alpha, gamma, hessian=hessian)
        rows = C.MulticlassDeviceRows(loss.prepared(y, w if k % 2 else None, n_classes=4))
        g, h = rows.gradient_hessian(loss, z)
        out[f"grad{k}"], out[f"hess{k}"] = _host(g), _host(h)
        out[f"loss{k}"] = _host(rows.loss_values(loss, z[:, :] if k != 3 else np.clip(z, -1e300, 1e300)))
        out[f"mean{k}"] = np.array(rows.mean_loss(loss, np.clip(z, -1e300, 1e300)))
    y32, z32, _ = _data(np.float32)
    loss = MulticlassFocalLoss()
    rows = C.MulticlassDeviceRows(loss.prepared(y32, n_classes=4))
    g, h = rows.gradient_hessian(loss, z32)
    out["grad_f32"], out["hess_f32"] = _host(g), _host(h)
    bad = z.copy()
    bad[3, 1] = np.nan
    try:
        C.MulticlassDeviceRows(loss.prepared(y, n_classes=4)).gradient_hessian(loss, bad)
        out["err_non_finite"] = np.array("no error")
    except ValueError as exc:
        out["err_non_finite"] = np.array(str(exc))
    return out


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> dict[str, np.ndarray]:
    path = tmp_path_factory.mktemp("cudasim_mc") / "results.npz"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__)), str(path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    with np.load(path) as npz:
        return dict(npz)


def test_simulated_multiclass_kernels_match_cpu(simulated):
    y, z, w = _data()
    for k, (alpha, gamma, hessian) in enumerate(CASES):
        loss = MulticlassFocalLoss(alpha, gamma, hessian=hessian)
        weights = w if k % 2 else None
        g, h = loss.gradient_hessian(y, z, weights)
        what = f"alpha={alpha} gamma={gamma} hessian={hessian}"
        np.testing.assert_allclose(simulated[f"grad{k}"], g, rtol=1e-12, atol=1e-300, err_msg=what)
        # the exact diagonal cancels where it crosses zero: compare it on the scale of the row
        atol = 1e-12 * np.abs(h).max(axis=1, keepdims=True) if hessian == "exact" else 1e-300
        assert np.all(np.abs(simulated[f"hess{k}"] - h) <= 1e-12 * np.abs(h) + atol), what
        zl = z if k != 3 else np.clip(z, -1e300, 1e300)
        np.testing.assert_allclose(simulated[f"loss{k}"], loss.loss(y, zl, weights), rtol=1e-12, err_msg=what)
        clipped = np.clip(z, -1e300, 1e300)
        assert simulated[f"mean{k}"] == pytest.approx(loss.mean_loss(y, clipped, weights), rel=1e-12)
        assert np.isfinite(simulated[f"grad{k}"]).all() and np.isfinite(simulated[f"hess{k}"]).all()
    y32, z32, _ = _data(np.float32)
    g, h = MulticlassFocalLoss().gradient_hessian(y32, z32)
    assert simulated["grad_f32"].dtype == np.float32
    np.testing.assert_allclose(simulated["grad_f32"], g, rtol=2e-7, atol=1e-38)
    np.testing.assert_allclose(simulated["hess_f32"], h, rtol=2e-7, atol=1e-38)
    assert "raw_prediction contains 1 NaN or infinite" in str(simulated["err_non_finite"])


if __name__ == "__main__":
    warnings.simplefilter("error")
    from gbfocal import _cuda

    assert _cuda.simulated(), "run with NUMBA_ENABLE_CUDASIM=1"
    np.savez(sys.argv[1], **_run_cases(_cuda))
