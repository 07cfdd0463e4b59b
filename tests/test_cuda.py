"""CUDA kernels: under Numba's CUDA simulator against the CPU kernels, lazy imports, and on a real GPU.

The simulator must be switched on (``NUMBA_ENABLE_CUDASIM=1``) before Numba
is imported, so its checks run this file as a script in a subprocess
(``python tests/test_cuda.py OUT.npz``): the subprocess runs the kernels on
fixed data and saves what they returned; the tests compare that with the CPU
kernels. The tests marked ``gpu`` run the same cases in-process on a CUDA GPU
and are skipped without one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from _reference import hessian_term_scale

from gbfocal import FocalLoss, PreparedRows

ROOT = Path(__file__).resolve().parents[1]

#: (alpha, gamma, hessian): integer γ (multiplied out) and real γ (exp/log), every policy.
CASES = [
    (0.25, 2.0, "positive"),
    (0.25, 2.0, "exact"),
    (0.5, 0.0, "positive"),
    (0.1, 1.5, "abs"),
    (0.75, 3.0, "clip"),
    (0.25, 0.7, "exact"),
    (0.4, 5.0, "positive"),
]
#: Margins every case sees with both labels: the stable-log-sigmoid cut-offs and the far tails.
SPECIAL = [0.0, -0.0, 1e-8, -1e-8, 2.4, -2.4, 40.0, -40.0, 745.0, -745.0, 746.0, -746.0, 1e4, -1e4]
N_ROWS = 1500
HUGE_Z = np.array([1.7e308, -1.7e308, 1.7e308, -1.7e308])
HUGE_Y = np.array([1.0, 1.0, 0.0, 0.0])
F32_EPS = float(np.finfo(np.float32).eps)


def _data(dtype=np.float64):
    """Labels, margins (the specials with both labels, then random ones) and weights."""
    rng = np.random.default_rng(42)
    special = np.array(SPECIAL + ([1e300, -1e300] if dtype == np.float64 else []))
    k = special.shape[0]
    y = np.concatenate([np.zeros(k), np.ones(k), (rng.random(N_ROWS - 2 * k) < 0.2).astype(float)])
    z = np.concatenate([special, special, rng.normal(scale=6.0, size=N_ROWS - 2 * k)]).astype(dtype)
    w = rng.uniform(0.0, 3.0, size=N_ROWS)
    return y, z, w


def _host(arr) -> np.ndarray:
    """A device array's values on the host (CuPy has .get, Numba and the simulator .copy_to_host)."""
    return arr.get() if hasattr(arr, "get") else arr.copy_to_host()


def _error(fn) -> str:
    try:
        fn()
    except (TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def _run_cases(C) -> dict[str, np.ndarray]:
    """Run ``gbfocal._cuda`` (module ``C``) on the fixed data; everything comes back as host arrays."""
    out: dict[str, np.ndarray] = {}
    y, z, w = _data()
    for k, (alpha, gamma, hessian) in enumerate(CASES):
        loss = FocalLoss(alpha, gamma, hessian=hessian)
        weights = w if k % 2 else None  # odd cases weighted
        rows = C.DeviceRows(PreparedRows(y, weights))
        g, h = C.gradient_hessian(loss, rows, z)
        out[f"grad{k}"], out[f"hess{k}"] = _host(g), _host(h)
        out[f"loss{k}"] = _host(C.loss_values(loss, rows, z))
        out[f"mean{k}"] = np.array(C.mean_loss(loss, rows, z))

    # host float32 margins (what XGBoost passes): float32 out, computed in float64
    y32, z32, _ = _data(np.float32)
    loss = FocalLoss(0.25, 2.0)
    rows = C.DeviceRows(PreparedRows(y32, w))
    g, h = C.gradient_hessian(loss, rows, z32)
    out["grad_f32"], out["hess_f32"] = _host(g), _host(h)
    out["dtype_f32"] = np.array([str(g.dtype), str(h.dtype)])
    out["loss_f32"] = _host(C.loss_values(loss, rows, z32))

    # buffers: owned ones are reused per dtype; caller's ones are written and returned
    g2, h2 = C.gradient_hessian(loss, rows, z32)
    g64, _ = C.gradient_hessian(loss, rows, z32.astype(np.float64))
    out["reused"] = np.array([g2 is g, h2 is h, g64 is not g])
    gbuf, hbuf = _empty_like_device(C, g), _empty_like_device(C, h)
    g3, h3 = C.gradient_hessian(loss, rows, z32, gradient_out=gbuf, hessian_out=hbuf)
    out["caller_buffers"] = np.array([g3 is gbuf, h3 is hbuf])
    out["grad_caller"], out["hess_caller"] = _host(g3), _host(h3)

    # margins already on the device are used in place
    g4, h4 = C.gradient_hessian(loss, rows, _to_device(C, z32))
    out["grad_device_in"], out["hess_device_in"] = _host(g4), _host(h4)

    # a launch smaller than the grid: every row still written
    small = C.DeviceRows(PreparedRows(np.array([1.0, 0.0, 1.0])))
    g5, _ = C.gradient_hessian(loss, small, np.array([0.5, -3.0, 800.0]))
    out["grad_small"] = _host(g5)

    # the largest margins: clamped where gradient and Hessian saturate, so the exact Hessian stays finite
    huge = C.DeviceRows(PreparedRows(HUGE_Y))
    g6, h6 = C.gradient_hessian(FocalLoss(0.25, 2.0, hessian="exact"), huge, HUGE_Z)
    out["grad_huge"], out["hess_huge"] = _host(g6), _host(h6)

    # errors: the CPU path's messages
    bad = z.copy()
    bad[[3, 50, 700]] = [np.nan, np.inf, -np.inf]
    out["err_non_finite"] = np.array(_error(lambda: C.gradient_hessian(loss, rows, bad)))
    out["err_non_finite_loss"] = np.array(_error(lambda: C.mean_loss(loss, rows, bad)))
    out["err_length"] = np.array(_error(lambda: C.gradient_hessian(loss, rows, z[:-1])))
    out["err_2d"] = np.array(_error(lambda: C.gradient_hessian(loss, rows, z[:, None])))
    out["err_out_dtype"] = np.array(_error(lambda: C.gradient_hessian(loss, rows, z, gradient_out=gbuf)))
    out["err_out_host"] = np.array(_error(lambda: C.gradient_hessian(loss, rows, z32, hessian_out=np.empty_like(z32))))
    out["err_loss_type"] = np.array(_error(lambda: C.gradient_hessian("focal", rows, z)))
    out["err_rows_type"] = np.array(_error(lambda: C.DeviceRows(y)))
    zero_w = C.DeviceRows(PreparedRows(y, np.zeros_like(w)))
    out["err_zero_weight"] = np.array(_error(lambda: C.mean_loss(loss, zero_w, z)))
    return out


def _empty_like_device(C, arr):
    be = C._load()
    return be.cuda.device_array(arr.shape[0], dtype=arr.dtype) if be.simulated else be.cupy.empty_like(arr)


def _to_device(C, host):
    be = C._load()
    return be.cuda.to_device(host) if be.simulated else be.cupy.asarray(host)


# --------------------------------------------------------------------------- the comparison


def _assert_close(actual, desired, rtol, floor, what):
    err = np.abs(actual.astype(np.float64) - desired.astype(np.float64))
    bound = rtol * np.abs(desired.astype(np.float64)) + floor
    worst = int(np.argmax(err - bound))
    assert np.all(err <= bound), f"{what}: row {worst}: {actual[worst]!r} vs CPU {desired[worst]!r}"


def _check_against_cpu(res: dict[str, np.ndarray], rtol: float) -> None:
    y, z, w = _data()
    for k, (alpha, gamma, hessian) in enumerate(CASES):
        loss = FocalLoss(alpha, gamma, hessian=hessian)
        weights = w if k % 2 else None
        what = f"alpha={alpha} gamma={gamma} hessian={hessian} weighted={weights is not None}"
        g, h = loss.gradient_hessian(y, z, weights)
        tiny = 1e-300  # subnormal tails: the CPU's polynomial exp and libm agree in absolute terms there
        _assert_close(res[f"grad{k}"], g, rtol, tiny, f"gradient, {what}")
        # positive is a sum of non-negative terms; the others cancel where the exact Hessian crosses 0
        h_floor = tiny if hessian == "positive" else rtol * hessian_term_scale(y, z, alpha, gamma, weights) + tiny
        _assert_close(res[f"hess{k}"], h, rtol, h_floor, f"Hessian, {what}")
        _assert_close(res[f"loss{k}"], loss.loss(y, z, weights), rtol, tiny, f"loss, {what}")
        assert res[f"mean{k}"] == pytest.approx(loss.mean_loss(y, z, weights), rel=rtol), what
        assert np.all(np.isfinite(res[f"grad{k}"])) and np.all(np.isfinite(res[f"hess{k}"]))
        if hessian != "exact":
            assert np.all(res[f"hess{k}"] > 0.0)

    y32, z32, _ = _data(np.float32)
    loss = FocalLoss(0.25, 2.0)
    # the CUDA kernel computes float32 margins in float64 and rounds once: within one float32 ulp
    # of the CPU's float64 values (the CPU computes float32 margins in float32: tests/test_cpu.py)
    g, h = loss.gradient_hessian(y32, z32.astype(np.float64), w)
    assert res["dtype_f32"].tolist() == ["float32", "float32"]
    f32_tiny = float(np.finfo(np.float32).smallest_subnormal)
    _assert_close(res["grad_f32"], g, F32_EPS, f32_tiny, "float32 gradient")
    _assert_close(res["hess_f32"], h, F32_EPS, f32_tiny, "float32 Hessian")
    _assert_close(res["loss_f32"], loss.loss(y32, z32, w), F32_EPS, f32_tiny, "float32 loss")
    for key in ("caller", "device_in"):
        np.testing.assert_array_equal(res[f"grad_{key}"], res["grad_f32"])
        np.testing.assert_array_equal(res[f"hess_{key}"], res["hess_f32"])
    assert res["reused"].all()
    assert res["caller_buffers"].all()
    g_small, _ = loss.gradient_hessian(np.array([1.0, 0.0, 1.0]), np.array([0.5, -3.0, 800.0]))
    _assert_close(res["grad_small"], g_small, rtol, 0.0, "three rows")
    g_huge, h_huge = FocalLoss(0.25, 2.0, hessian="exact").gradient_hessian(HUGE_Y, HUGE_Z)
    assert np.isfinite(res["grad_huge"]).all() and np.isfinite(res["hess_huge"]).all()
    np.testing.assert_array_equal(res["grad_huge"], g_huge)
    np.testing.assert_array_equal(res["hess_huge"], h_huge)


def _check_errors(res: dict[str, np.ndarray]) -> None:
    y, z, w = _data()
    loss = FocalLoss(0.25, 2.0)
    bad = z.copy()
    bad[[3, 50, 700]] = [np.nan, np.inf, -np.inf]
    assert str(res["err_non_finite"]) == _error(lambda: loss.gradient_hessian(y, bad, w))
    assert "3 NaN or infinite" in str(res["err_non_finite"])
    assert str(res["err_non_finite_loss"]) == _error(lambda: loss.mean_loss(y, bad, w))
    assert str(res["err_length"]) == _error(lambda: loss.gradient_hessian(y, z[:-1], w))
    assert str(res["err_2d"]) == _error(lambda: loss.gradient_hessian(y, z[:, None], w))
    assert str(res["err_out_dtype"]).startswith("ValueError: gradient_out must have shape (1500,) and dtype float64")
    assert str(res["err_out_host"]) == "TypeError: hessian_out must be a CUDA device array (CuPy or Numba), got ndarray"
    assert str(res["err_loss_type"]) == "TypeError: loss must be a gbfocal.FocalLoss, got str"
    assert str(res["err_rows_type"]).startswith("TypeError: DeviceRows takes a gbfocal.PreparedRows, got ndarray")
    assert str(res["err_zero_weight"]) == _error(lambda: loss.mean_loss(y, z, np.zeros_like(w)))


# --------------------------------------------------------------------------- simulator


def _subprocess(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    full_env.update(env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=300)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> dict[str, np.ndarray]:
    path = tmp_path_factory.mktemp("cudasim") / "results.npz"
    proc = _subprocess([str(Path(__file__)), str(path)], {"NUMBA_ENABLE_CUDASIM": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # the worker turns warnings into errors: none were raised
    with np.load(path) as npz:
        return dict(npz)


def test_simulated_kernels_match_cpu(simulated):
    # the simulator runs the device code as Python (math.exp, math.log1p); the CPU its polynomials
    _check_against_cpu(simulated, rtol=1e-12)


def test_simulated_errors_match_cpu(simulated):
    _check_errors(simulated)


def _run(code: str, env: dict[str, str]) -> str:
    proc = _subprocess(["-W", "error", "-c", textwrap.dedent(code)], env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_is_lazy():
    out = _run(
        """
        import sys
        import gbfocal, gbfocal._cuda
        print(sorted(m for m in sys.modules if m.startswith(("numba.cuda", "cupy", "gbfocal._cuda_kernels"))))
        """,
        {},
    )
    assert out.strip() == "[]"


def test_no_gpu_is_reported_not_raised_at_import():
    # hiding every device gives "no GPU" on any machine, with or without one
    out = _run(
        """
        import numpy as np
        from gbfocal import PreparedRows, _cuda
        print(_cuda.is_available(), _cuda.simulated())
        try:
            _cuda.DeviceRows(PreparedRows(np.ones(3)))
        except (RuntimeError, ImportError) as exc:
            print(f"{type(exc).__name__}: {exc}")
        """,
        {"CUDA_VISIBLE_DEVICES": ""},
    )
    first, second = out.strip().splitlines()
    assert first == "False False"
    assert second.startswith("RuntimeError: gbfocal's GPU path found no usable CUDA GPU")
    assert second.endswith("use the CPU path (FocalLoss.gradient_hessian) on this machine")


# --------------------------------------------------------------------------- real GPU


@pytest.fixture(scope="module")
def gpu():
    from gbfocal import _cuda

    try:
        backend = _cuda._load()
    except (ImportError, RuntimeError) as exc:
        pytest.skip(str(exc))
    if backend.simulated:
        pytest.skip("NUMBA_ENABLE_CUDASIM is set: the simulator is tested separately")
    return _cuda


@pytest.mark.gpu
def test_gpu_kernels_match_cpu(gpu):
    res = _run_cases(gpu)
    # libdevice's exp/log1p and FMA contraction against the CPU polynomials: a few ulp
    _check_against_cpu(res, rtol=1e-12)
    _check_errors(res)


@pytest.mark.gpu
def test_gpu_returns_cupy_arrays_on_the_current_device(gpu):
    import cupy

    y, z, w = _data(np.float32)
    rows = gpu.DeviceRows(PreparedRows(y, w))
    assert isinstance(rows.y, cupy.ndarray) and isinstance(rows.w, cupy.ndarray)
    g, h = gpu.gradient_hessian(FocalLoss(), rows, z)
    assert isinstance(g, cupy.ndarray) and isinstance(h, cupy.ndarray)
    assert g.dtype == np.float32 and g.device.id == cupy.cuda.Device().id
    g2, _ = rows.gradient_hessian(FocalLoss(), cupy.asarray(z))  # PreparedRows' method, device margins
    assert g2 is g


# --------------------------------------------------------------------------- simulator worker

if __name__ == "__main__":
    # Run by the `simulated` fixture with NUMBA_ENABLE_CUDASIM=1: any warning is an error here too.
    warnings.simplefilter("error")
    from gbfocal import _cuda

    assert _cuda.simulated(), "run with NUMBA_ENABLE_CUDASIM=1"
    np.savez(sys.argv[1], **_run_cases(_cuda))
