"""GPU path: focal-loss gradients, Hessians and losses computed on a CUDA device.

XGBoost with ``device="cuda"`` hands a custom objective its margins as host
float32 NumPy arrays (dmlc/xgboost#10049) and accepts CuPy gradients back,
building its gradient pairs on the device. This module is that device path:
margins are copied to the GPU, :mod:`gbfocal._cuda_kernels` runs there (the
formulas of :mod:`gbfocal._formulas`, the ones the CPU kernels compile too)
and CuPy arrays come back. Labels and weights go to the device once per data
set (:class:`DeviceRows`); margin and output buffers are allocated once per
margin dtype and reused every round.

Nothing here imports ``numba.cuda`` or CuPy before it is used, so importing
this module never needs CUDA. The path works wherever :func:`is_available`
says so:

* on a CUDA GPU, with Numba's CUDA target (the ``numba-cuda`` package) and
  CuPy; results are CuPy arrays on the current device;
* under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before Numba
  is imported), which runs the kernels as Python on the CPU, for tests;
  results are the simulator's device arrays.

Arithmetic is float64 on the device as on the host; outputs have the dtype of
the margins.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from gbfocal import _validation as V
from gbfocal._loss import FocalLoss, PreparedRows, check_loss

INSTALL_HINT = (
    "install the GPU extra, pip install 'gbfocal[gpu]' (numba-cuda and CuPy for CUDA 12), "
    "or for CUDA 13 pip install 'numba-cuda[cu13]' cupy-cuda13x"
)

#: Threads per block: the kernels are memory-bound, one row per thread.
THREADS_PER_BLOCK = 256
#: Numba warns about launches of fewer blocks (low occupancy). Grid-stride
#: loops make idle blocks nearly free, so small inputs get this many.
MIN_BLOCKS = 128
#: Enough blocks per multiprocessor for the grid-stride loops to fill a GPU.
BLOCKS_PER_SM = 32
#: The simulator runs one Python thread per CUDA thread: a small grid.
SIMULATOR_LAUNCH = (2, 16)

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ZERO = np.zeros(1, dtype=np.int64)


# --------------------------------------------------------------------------- backend


class _Backend:
    """``numba.cuda``, CuPy (None under the simulator), the kernels, launch sizes."""

    def __init__(self, cuda, cupy) -> None:
        from gbfocal import _cuda_kernels

        self.cuda = cuda
        self.cupy = cupy
        self.kernels = _cuda_kernels
        self.simulated = cupy is None
        if self.simulated:
            self.max_blocks = SIMULATOR_LAUNCH[0]
        else:
            self.max_blocks = BLOCKS_PER_SM * cuda.get_current_device().MULTIPROCESSOR_COUNT

    def grid(self, n_rows: int) -> tuple[int, int]:
        if self.simulated:
            return SIMULATOR_LAUNCH
        blocks = -(-n_rows // THREADS_PER_BLOCK)
        return max(MIN_BLOCKS, min(blocks, self.max_blocks)), THREADS_PER_BLOCK

    def empty(self, n: int, dtype: np.dtype) -> tuple[object, object]:
        """A new device array, as (what callers get, what kernels take)."""
        if self.simulated:
            arr = self.cuda.device_array(n, dtype=dtype)
            return arr, arr
        arr = self.cupy.empty(n, dtype=dtype)
        return arr, self.cuda.as_cuda_array(arr)

    def upload(self, host: np.ndarray) -> tuple[object, object]:
        public, view = self.empty(host.shape[0], host.dtype)
        view.copy_to_device(host)
        return public, view

    def view(self, obj: object) -> object:
        """The kernel's view of a caller's device array (CuPy, Numba, anything with the CUDA array interface)."""
        if self.simulated or self.cuda.devicearray.is_cuda_ndarray(obj):
            return obj
        return self.cuda.as_cuda_array(obj)

    def total(self, public: object, view: object) -> float:
        """Sum of a float64 device array."""
        if self.simulated:
            return math.fsum(view.copy_to_host())
        return float(public.sum())


def _simulated(cuda) -> bool:
    # numba.cuda exports the simulator's API in place of the driver's when NUMBA_ENABLE_CUDASIM=1.
    return cuda.jit.__module__.startswith("numba.cuda.simulator")


@functools.cache
def _load() -> _Backend:
    """The backend, imported and checked once; raises ImportError/RuntimeError saying what is missing."""
    try:
        from numba import cuda
    except ImportError as exc:  # e.g. numba-cuda installed without its CUDA bindings
        raise ImportError(
            f"gbfocal's GPU path needs Numba's CUDA target, which failed to import: {exc}; {INSTALL_HINT}"
        ) from exc
    if _simulated(cuda):
        return _Backend(cuda, None)
    if not cuda.is_available():
        error = cuda.cuda_error()
        if error is None:  # the driver is fine; cuda.is_available() also needs NVVM
            reason = "Numba found no NVVM, CUDA's compiler library: install numba-cuda[cu12] or numba-cuda[cu13]"
        else:
            reason = " ".join(str(error).split())
        raise RuntimeError(
            f"gbfocal's GPU path found no usable CUDA GPU ({reason}); use the CPU path "
            "(FocalLoss.gradient_hessian) on this machine"
        )
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(f"gbfocal's GPU path needs CuPy, which failed to import: {exc}; {INSTALL_HINT}") from exc
    return _Backend(cuda, cupy)


def is_available() -> bool:
    """Whether the GPU path can run here: a CUDA GPU with numba's CUDA target and CuPy, or the simulator."""
    try:
        _load()
    except (ImportError, RuntimeError):
        return False
    return True


def simulated() -> bool:
    """Whether the GPU path runs under Numba's CUDA simulator (False where it cannot run at all)."""
    return is_available() and _load().simulated


# --------------------------------------------------------------------------- rows on the device


class DeviceRows:
    """Labels and weights of one data set, copied once to the current CUDA device.

    The device twin of :class:`~gbfocal.PreparedRows`, and used like it: an
    engine adapter keeps one per training or validation set, and each boosting
    round only copies the margins in and runs the kernel. The margin, gradient,
    Hessian and loss buffers are allocated on first use, one set per margin
    dtype, and overwritten by the next call.

    Attributes: ``n_rows``; ``y`` (float64 labels) and ``w`` (float64 weights,
    None when unweighted) as device arrays; ``weight_sum``, the total weight
    (``n_rows`` when unweighted).
    """

    __slots__ = ("_buffers", "_counter", "_w", "_y", "n_rows", "w", "weight_sum", "y")

    def __init__(self, rows: PreparedRows) -> None:
        if not isinstance(rows, PreparedRows):
            raise TypeError(
                f"DeviceRows takes a gbfocal.PreparedRows, got {type(rows).__name__}; "
                "build one with PreparedRows(y_true, sample_weight)"
            )
        be = _load()
        self.n_rows = rows.n_rows
        self.y, self._y = be.upload(rows.y)
        if rows.w.shape[0] > 0:
            self.w, self._w = be.upload(rows.w)
            self.weight_sum = float(rows.w.sum())
        else:
            self.w, self._w = None, None
            self.weight_sum = float(rows.n_rows)
        self._counter = be.empty(1, np.dtype(np.int64))[1]
        self._buffers: dict[tuple[str, np.dtype], tuple[object, object]] = {}

    def gradient_hessian(self, loss: FocalLoss, raw_prediction, n_threads: int | None = None):
        """:func:`gradient_hessian` into this object's buffers (``n_threads``, for PreparedRows parity, is unused)."""
        return gradient_hessian(loss, self, raw_prediction)

    def mean_loss(self, loss: FocalLoss, raw_prediction, n_threads: int | None = None) -> float:
        """:func:`mean_loss` (``n_threads``, for PreparedRows parity, is unused)."""
        return mean_loss(loss, self, raw_prediction)

    def _buffer(self, be: _Backend, name: str, dtype: np.dtype) -> tuple[object, object]:
        buf = self._buffers.get((name, dtype))
        if buf is None:
            buf = self._buffers[(name, dtype)] = be.empty(self.n_rows, dtype)
        return buf

    def _margins(self, be: _Backend, raw_prediction) -> object:
        """Kernel view of the margins: a device array as it is, a host array copied into a reused buffer."""
        if _is_device_array(raw_prediction):
            z = raw_prediction
            if len(z.shape) != 1:
                raise ValueError(
                    f"raw_prediction must be 1-D with one value per row, got an array of shape "
                    f"{tuple(z.shape)}; pass a 1-D array (for a column vector use .ravel())"
                )
            if np.dtype(z.dtype) not in _FLOAT_DTYPES:
                raise TypeError(f"raw_prediction on the device must be float32 or float64, got {z.dtype}")
            V.check_same_length(self.n_rows, z, "raw_prediction")
            return be.view(z)
        z = V.as_margins(raw_prediction)
        V.check_same_length(self.n_rows, z, "raw_prediction")
        view = self._buffer(be, "margins", z.dtype)[1]
        view.copy_to_device(z)
        return view

    def _weights(self) -> tuple[object, bool]:
        # Unweighted kernels are handed the labels as weights and never read them.
        return (self._w, True) if self._w is not None else (self._y, False)

    def _count_non_finite(self, be: _Backend, launch) -> None:
        """Run ``launch(counter)`` and raise the CPU path's error if it counted NaN/inf margins."""
        self._counter.copy_to_device(_ZERO)
        launch(self._counter)
        V.report_non_finite(int(self._counter.copy_to_host()[0]))  # the copy waits for the kernel


def _is_device_array(obj: object) -> bool:
    return hasattr(obj, "__cuda_array_interface__") or bool(getattr(obj, "__cuda_ndarray__", False))


def _out(be: _Backend, out: object, like: object, n_rows: int, name: str) -> tuple[object, object]:
    """A caller's output buffer: a C-contiguous device array of the margins' length and dtype."""
    if not _is_device_array(out):
        raise TypeError(f"{name} must be a CUDA device array (CuPy or Numba), got {type(out).__name__}")
    dtype = np.dtype(like.dtype)
    if tuple(out.shape) != (n_rows,) or np.dtype(out.dtype) != dtype:
        raise ValueError(f"{name} must have shape ({n_rows},) and dtype {dtype}, got {tuple(out.shape)} {out.dtype}")
    if n_rows > 1 and tuple(out.strides) != (dtype.itemsize,):
        raise ValueError(f"{name} must be a C-contiguous device array")
    return out, be.view(out)


def _check_args(loss: object, device_rows: object) -> None:
    check_loss(loss, binary_only=True)
    if not isinstance(device_rows, DeviceRows):
        raise TypeError(f"device_rows must be a gbfocal._cuda.DeviceRows, got {type(device_rows).__name__}")


# --------------------------------------------------------------------------- entry points


def gradient_hessian(
    loss: FocalLoss,
    device_rows: DeviceRows,
    raw_prediction,
    gradient_out=None,
    hessian_out=None,
) -> tuple[object, object]:
    """Gradient and Hessian (under ``loss.hessian``) with respect to the raw margin, on the GPU.

    The same values as :meth:`FocalLoss.gradient_hessian` (to a few ulp) for
    the labels and weights of ``device_rows``. ``raw_prediction``, shape
    ``(n,)``, float32 or float64: a host NumPy array (copied into a device
    buffer that is reused) or a device array (CuPy, Numba), used in place.

    Returns ``(gradient, hessian)``: device arrays (CuPy; the simulator's
    arrays under the simulator) of shape ``(n,)`` and the margins' dtype.
    They are ``gradient_out``/``hessian_out`` when given (C-contiguous device
    arrays), else buffers owned by ``device_rows`` that the next call
    overwrites. Raises the CPU path's ValueError on NaN or infinite margins.
    """
    _check_args(loss, device_rows)
    be = _load()
    z = device_rows._margins(be, raw_prediction)
    n = device_rows.n_rows
    grad = (
        device_rows._buffer(be, "gradient", z.dtype)
        if gradient_out is None
        else _out(be, gradient_out, z, n, "gradient_out")
    )
    hess = (
        device_rows._buffer(be, "hessian", z.dtype)
        if hessian_out is None
        else _out(be, hessian_out, z, n, "hessian_out")
    )
    w, weighted = device_rows._weights()
    kernel = be.kernels.gradient_hessian_kernel[be.grid(n)]
    args = (device_rows._y, z, w, weighted, loss._alpha, loss._gamma, loss._gamma_int, loss._policy, grad[1], hess[1])
    device_rows._count_non_finite(be, lambda bad: kernel(*args, bad))
    return grad[0], hess[0]


def loss_values(loss: FocalLoss, device_rows: DeviceRows, raw_prediction, loss_out=None) -> object:
    """Per-row (weighted) focal loss on the GPU, shape ``(n,)``, the margins' dtype.

    The device twin of :meth:`FocalLoss.loss`; arrays as in :func:`gradient_hessian`.
    """
    _check_args(loss, device_rows)
    be = _load()
    z = device_rows._margins(be, raw_prediction)
    out = (
        device_rows._buffer(be, "loss", z.dtype)
        if loss_out is None
        else _out(be, loss_out, z, device_rows.n_rows, "loss_out")
    )
    _run_loss(be, loss, device_rows, z, out[1])
    return out[0]


def mean_loss(loss: FocalLoss, device_rows: DeviceRows, raw_prediction) -> float:
    """Weighted mean focal loss ``Σ w FL / Σ w`` on the GPU (per-row values summed in float64)."""
    _check_args(loss, device_rows)
    be = _load()
    z = device_rows._margins(be, raw_prediction)
    public, view = device_rows._buffer(be, "loss", np.dtype(np.float64))
    _run_loss(be, loss, device_rows, z, view)
    if device_rows.weight_sum <= 0.0:
        raise ValueError("sample_weight sums to 0: the weighted mean loss is undefined")
    return be.total(public, view) / device_rows.weight_sum


def _run_loss(be: _Backend, loss: FocalLoss, device_rows: DeviceRows, z: object, out: object) -> None:
    w, weighted = device_rows._weights()
    kernel = be.kernels.loss_kernel[be.grid(device_rows.n_rows)]
    args = (device_rows._y, z, w, weighted, loss._alpha, loss._gamma, loss._gamma_int, out)
    device_rows._count_non_finite(be, lambda bad: kernel(*args, bad))


# --------------------------------------------------------------------------- multiclass


class MulticlassDeviceRows:
    """Labels, weights and α of one K-class data set on the current CUDA device.

    The device twin of :class:`~gbfocal.MulticlassPreparedRows`: margins
    ``(n, K)`` (host arrays are copied into a reused buffer, device arrays
    used in place) go through the kernels of :mod:`gbfocal._cuda_kernels`;
    gradient, Hessian and loss buffers are owned here, one set per dtype.
    """

    __slots__ = ("_buffers", "_counter", "_w", "_y", "n_classes", "n_rows", "weight_sum")

    def __init__(self, rows) -> None:
        from gbfocal._multiclass import MulticlassPreparedRows

        if not isinstance(rows, MulticlassPreparedRows):
            raise TypeError(
                f"MulticlassDeviceRows takes a gbfocal.MulticlassPreparedRows, got {type(rows).__name__}; "
                "build one with MulticlassFocalLoss.prepared(y_true, sample_weight)"
            )
        be = _load()
        self.n_rows, self.n_classes = rows.n_rows, rows.n_classes
        self._y = be.upload(rows.y)[1]
        self._w = be.upload(rows.w)[1] if rows.w.shape[0] > 0 else None
        self.weight_sum = float(rows.w.sum()) if rows.w.shape[0] > 0 else float(rows.n_rows)
        self._counter = be.empty(1, np.dtype(np.int64))[1]
        self._buffers: dict[tuple[str, np.dtype], tuple[object, object]] = {}

    def _buffer(self, be: _Backend, name: str, shape, dtype: np.dtype) -> tuple[object, object]:
        buf = self._buffers.get((name, dtype))
        if buf is None:
            buf = self._buffers[(name, dtype)] = be.empty(shape, dtype)
        return buf

    def _margins(self, be: _Backend, raw_prediction) -> object:
        from gbfocal._multiclass import as_margin_rows

        shape = (self.n_rows, self.n_classes)
        if _is_device_array(raw_prediction):
            if tuple(raw_prediction.shape) != shape or np.dtype(raw_prediction.dtype) not in _FLOAT_DTYPES:
                raise ValueError(
                    f"raw_prediction on the device must be float32/float64 of shape {shape}, "
                    f"got {raw_prediction.dtype} {tuple(raw_prediction.shape)}"
                )
            return be.view(raw_prediction)
        z = as_margin_rows(raw_prediction)
        if z.shape != shape:
            raise ValueError(f"raw_prediction must have shape {shape} (rows, classes), got {z.shape}")
        view = self._buffer(be, "margins", shape, z.dtype)[1]
        view.copy_to_device(z)
        return view

    def _args(self, loss) -> tuple:
        from gbfocal._multiclass import _check_multiclass_loss

        loss = _check_multiclass_loss(loss)
        alpha = _load().upload(loss._alpha_for(self.n_classes))[1]  # K floats, per call
        return (self._y, *((self._w, True) if self._w is not None else (self._y, False)), alpha, loss)

    def _run(self, be: _Backend, launch) -> None:
        self._counter.copy_to_device(_ZERO)
        launch(self._counter)
        V.report_non_finite(int(self._counter.copy_to_host()[0]))

    def gradient_hessian(self, loss, raw_prediction, n_threads: int | None = None) -> tuple[object, object]:
        """Gradient and Hessian diagonal ``(n, K)`` on the device, the margins' dtype (buffers reused)."""
        y, w, weighted, alpha, loss = self._args(loss)
        be = _load()
        z = self._margins(be, raw_prediction)
        grad = self._buffer(be, "gradient", z.shape, z.dtype)
        hess = self._buffer(be, "hessian", z.shape, z.dtype)
        kernel = be.kernels.multiclass_gradient_hessian_kernel[be.grid(self.n_rows)]
        args = (y, z, w, weighted, alpha, loss._gamma, loss._gamma_int, loss._policy, grad[1], hess[1])
        self._run(be, lambda bad: kernel(*args, bad))
        return grad[0], hess[0]

    def loss_values(self, loss, raw_prediction) -> object:
        """Per-row (weighted) loss ``(n,)`` on the device, float64."""
        y, w, weighted, alpha, loss = self._args(loss)
        be = _load()
        z = self._margins(be, raw_prediction)
        public, view = self._buffer(be, "loss", self.n_rows, np.dtype(np.float64))
        kernel = be.kernels.multiclass_loss_kernel[be.grid(self.n_rows)]
        args = (y, z, w, weighted, alpha, loss._gamma, loss._gamma_int, view)
        self._run(be, lambda bad: kernel(*args, bad))
        return public

    def mean_loss(self, loss, raw_prediction, n_threads: int | None = None) -> float:
        """Weighted mean loss ``Σ w FL / Σ w`` on the device."""
        public = self.loss_values(loss, raw_prediction)
        if self.weight_sum <= 0.0:
            raise ValueError("sample_weight sums to 0: the weighted mean loss is undefined")
        be = _load()
        return be.total(public, self._buffers[("loss", np.dtype(np.float64))][1]) / self.weight_sum


def device_rows(rows) -> DeviceRows | MulticlassDeviceRows:
    """The device twin of a prepared-rows object: what an engine adapter keeps per data set with ``device="cuda"``.

    :class:`DeviceRows` for a :class:`~gbfocal.PreparedRows` (one margin per
    row), :class:`MulticlassDeviceRows` for a
    :class:`~gbfocal.MulticlassPreparedRows` (``(n, K)`` margins); the adapter
    never needs to know which loss it trains.
    """
    from gbfocal._multiclass import MulticlassPreparedRows

    if isinstance(rows, MulticlassPreparedRows):
        return MulticlassDeviceRows(rows)
    return DeviceRows(rows)
