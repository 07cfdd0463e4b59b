"""CPU kernels: the formulas of :mod:`gbfocal._formulas` over arrays of rows.

Three design points, each measured (``benchmarks/bench_kernels.py``):

* **One exponential per row, vectorisable.** Numba's scalar ``exp``/``log1p``
  are calls into libm that LLVM cannot vectorise without Intel's SVML, which
  caps a plain loop at ~40 Mrows/s. :func:`exp_neg` and :func:`log1p_unit`
  below are branch-free polynomials (Cody–Waite range reduction plus a degree
  13 Taylor polynomial for ``exp``; the ``atanh`` series for ``log1p`` on
  [0, 1]) that LLVM turns into AVX2 code, accurate to a few ulp.
* **float32 margins, float32 arithmetic.** XGBoost hands float32 margins
  and takes float32 gradients back; computing those in float32 fills all 8
  AVX2 lanes instead of 4 (3x the rows per second, measured). The float32
  kernel is not a second copy of the math: :func:`float32_twin` recompiles
  the same Python functions with every float constant made float32.
* **Threads from Python, not ``prange``.** Each kernel works on a row range
  with the GIL released (``nogil=True``); :func:`run_chunked` splits the rows
  over a small thread pool. This avoids Numba's threading layers entirely
  (the ``workqueue`` layer aborts when two threads launch parallel regions at
  once, as Dask workers with ``threads_per_worker > 1`` do), and kernels
  compile in a fraction of the time a parfor needs.
* **Compile on first use, cache on disk.** Nothing compiles at import.
  Numba's cache stores machine code beside the package (or in Numba's
  per-user cache when that is read-only); where no cache location is
  writable the kernels are compiled in memory instead of failing, and an
  unreadable cache file (truncated by a full disk or a killed process)
  makes the kernel compile again, with a :class:`NumbaCacheWarning`,
  instead of failing every call until the file is deleted.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import types as pytypes
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.caching import FunctionCache
from numba.extending import intrinsic

from gbfocal import _formulas as F

_FASTMATH = {"contract"}  # allow FMA; keep IEEE NaN/inf semantics (we detect NaN)


class NumbaCacheWarning(RuntimeWarning):
    """Numba's on-disk cache of a gbfocal kernel could not be read or written; the kernel was compiled anew."""


_cache_warned = False
_cache_warned_lock = threading.Lock()


def _warn_cache(action: str, cache: FunctionCache, exc: BaseException) -> None:
    """One :class:`NumbaCacheWarning` per process (every kernel shares the cause: the cache directory)."""
    global _cache_warned
    with _cache_warned_lock:
        if _cache_warned:
            return
        _cache_warned = True
    warnings.warn(
        f"gbfocal: Numba's on-disk cache of {cache._py_func.__qualname__} in {cache.cache_path} could not "
        f"be {action} ({type(exc).__name__}: {exc}); the kernel is compiled again and the entry rewritten. "
        f"If this repeats, delete the files {cache._impl.filename_base}.* there.",
        NumbaCacheWarning,
        stacklevel=2,
    )


class _RecompilingCache(FunctionCache):
    """Numba's per-function disk cache, except that a broken entry means "compile again".

    Numba unpickles the index (``.nbi``) and data (``.nbc``) files on the
    first call of each signature and raises if one is truncated or corrupt,
    on every call, until the file is deleted. Here a failed load warns
    (:class:`NumbaCacheWarning`), writes an empty index for the function
    (atomically, as Numba writes every index) and answers "not cached": the
    dispatcher compiles the Python function as if there were no cache, and
    saves the fresh result over the broken entry. A failed save only warns:
    the compiled kernel is still used.
    """

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as exc:  # any unpickling/rebuild error of a damaged file
            _warn_cache("read", self, exc)
            try:
                self._cache_file.flush()
            except OSError:
                pass  # the next save fails too and warns; the kernel still compiles
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception as exc:
            _warn_cache("written", self, exc)


def _compile(fn=None, **options):
    """The one decorator policy: nogil, FMA contraction, cached when possible.

    The cache is Numba's own (``cache=True``) in the subclass above, which
    recompiles instead of failing on a damaged cache file.
    """

    def wrap(f):
        kwargs = {"nogil": True, "fastmath": _FASTMATH, "error_model": "numpy", **options}
        dispatcher = njit(cache=False, **kwargs)(f)
        try:
            dispatcher._cache = _RecompilingCache(dispatcher.py_func)  # what cache=True does, recovering
        except RuntimeError:  # no writable cache location (read-only install, no HOME): compile in memory
            pass
        return dispatcher

    return wrap(fn) if fn is not None else wrap


def _inline(f):
    return njit(inline="always", fastmath=_FASTMATH, error_model="numpy")(f)


def _rebound(fn, name=None, consts=None, **replace):
    """A copy of the Python function ``fn`` whose globals ``replace`` overrides.

    How a compiled function calls compiled callees: a :mod:`gbfocal._formulas`
    function that calls another finds the plain Python one in its module;
    its copy here finds the compiled one. ``name`` and ``consts`` (the code's
    constants) change the copy's name and literals, as :func:`float32_twin` does.
    """
    fn = getattr(fn, "py_func", fn)
    name = name or fn.__name__
    code = fn.__code__.replace(co_name=name, co_consts=fn.__code__.co_consts if consts is None else consts)
    twin = pytypes.FunctionType(code, {**fn.__globals__, **replace}, name, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__[: -len(fn.__name__)] + name
    twin.__doc__ = fn.__doc__
    return twin


logistic_parts = _inline(F.logistic_parts)
integer_power = _inline(F.integer_power)
focal_value = _inline(F.focal_value)
focal_grad_t = _inline(F.focal_grad_t)
focal_hess_t = _inline(F.focal_hess_t)


@intrinsic
def _f64_as_i64(typingctx, x):
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _i64_as_f64(typingctx, x):
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer in the low bits
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # fdlibm split of ln 2: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10


@_inline
def exp_neg(a):
    """``exp(-a)`` for ``a >= 0`` (0 beyond 745.2, where exp underflows to 0).

    exp(-a) = 2^-n exp(-r), n = round(a / ln 2), |r| <= ln(2) / 2; exp(-r) by
    its Taylor polynomial of degree 13 (truncation < 4e-18 relative); 2^-n is
    built in the exponent bits, in two factors so subnormal results round
    correctly.
    """
    ac = min(a, 746.0)
    kf = ac * _LOG2E + _MAGIC
    nf = kf - _MAGIC
    n = _f64_as_i64(kf) - _f64_as_i64(_MAGIC)
    x = -((ac - nf * _LN2_HI) - nf * _LN2_LO)
    poly = 1.0 / 6227020800.0
    poly = poly * x + 1.0 / 479001600.0
    poly = poly * x + 1.0 / 39916800.0
    poly = poly * x + 1.0 / 3628800.0
    poly = poly * x + 1.0 / 362880.0
    poly = poly * x + 1.0 / 40320.0
    poly = poly * x + 1.0 / 5040.0
    poly = poly * x + 1.0 / 720.0
    poly = poly * x + 1.0 / 120.0
    poly = poly * x + 1.0 / 24.0
    poly = poly * x + 1.0 / 6.0
    poly = poly * x + 0.5
    poly = poly * x + 1.0
    poly = poly * x + 1.0
    n1 = n >> 1
    s1 = _i64_as_f64((1023 - n1) << 52)
    s2 = _i64_as_f64((1023 - (n - n1)) << 52)
    out = poly * s1 * s2
    return 0.0 if a > 745.2 else out


@_inline
def log1p_unit(e, inv_2pe):
    """``log1p(e)`` for ``e`` in [0, 1], given ``1 / (2 + e)``.

    log1p(e) = 2 atanh(s) with s = e / (2 + e) in [0, 1/3]: the odd series
    2 s (1 + s²/3 + s⁴/5 + ...) to s^30 (truncation < 2e-16 relative); exact
    relative precision as e -> 0.
    """
    s = e * inv_2pe
    s2 = s * s
    poly = 1.0 / 31.0
    poly = poly * s2 + 1.0 / 29.0
    poly = poly * s2 + 1.0 / 27.0
    poly = poly * s2 + 1.0 / 25.0
    poly = poly * s2 + 1.0 / 23.0
    poly = poly * s2 + 1.0 / 21.0
    poly = poly * s2 + 1.0 / 19.0
    poly = poly * s2 + 1.0 / 17.0
    poly = poly * s2 + 1.0 / 15.0
    poly = poly * s2 + 1.0 / 13.0
    poly = poly * s2 + 1.0 / 11.0
    poly = poly * s2 + 1.0 / 9.0
    poly = poly * s2 + 1.0 / 7.0
    poly = poly * s2 + 1.0 / 5.0
    poly = poly * s2 + 1.0 / 3.0
    poly = poly * s2 + 1.0
    return 2.0 * s * poly


#: :data:`gbfocal._formulas.Z_SATURATED`, as a module global of the kernels here.
Z_SATURATED = F.Z_SATURATED
#: :data:`gbfocal._formulas.NONTARGET_SCALE` (see the multiclass gradient kernel).
NONTARGET_SCALE = F.NONTARGET_SCALE

#: The row functions of :mod:`gbfocal._formulas`, calling the compiled
#: primitives above (and each other) where the Python ones call ``math``.
row_terms = _inline(
    _rebound(
        F.row_terms,
        exp_neg=exp_neg,
        log1p_unit=log1p_unit,
        logistic_parts=logistic_parts,
        integer_power=integer_power,
    )
)
gradient_hessian_row = _inline(
    _rebound(F.gradient_hessian_row, row_terms=row_terms, focal_grad_t=focal_grad_t, focal_hess_t=focal_hess_t)
)
loss_row = _inline(_rebound(F.loss_row, row_terms=row_terms, focal_value=focal_value))


_INF = math.inf


@_inline
def not_finite(x):
    return not (abs(x) < _INF)


@_inline
def as_float(x):
    """A margin in the kernel's arithmetic type (float64 here; float32 in the twins)."""
    return np.float64(x)


@_inline
def count_not_finite(z):
    bad = 0
    for i in range(z.shape[0]):
        bad += not_finite(as_float(z[i]))
    return bad


#: Rows per block: weights are applied per block, while the block is in cache.
#: One vectorised row loop per kernel (instead of a weighted and an unweighted
#: copy) halves compile time, and the separate weight loop vectorises too.
BLOCK = 8192

# Every loop below runs over ``range(m)`` of slices rather than ``range(lo, hi)``:
# Numba cannot prove a signed loop index non-negative, adds negative-index
# wraparound to each access, and LLVM then does not vectorise the loop (4-5x
# slower, measured).


@_compile
def gradient_hessian_kernel(y, z, w, alpha, gamma, gamma_int, policy, grad, hess, lo, hi):
    """grad/hess w.r.t. z for rows [lo, hi); returns the number of non-finite margins.

    ``w`` is the weight array, or an empty array for unit weights. Computes in
    float64; :data:`gradient_hessian_kernel32` is its float32 twin.
    """
    bad = 0
    weighted = w.shape[0] > 0
    for b0 in range(lo, hi, BLOCK):
        b1 = min(b0 + BLOCK, hi)
        yb, zb, gb, hb = y[b0:b1], z[b0:b1], grad[b0:b1], hess[b0:b1]
        # a boolean "any" (not an int64 count) keeps every value in the row
        # loop 32 bits wide in the float32 twin, so LLVM picks 8 lanes, not 4
        any_bad = False
        for i in range(b1 - b0):
            zi = as_float(zb[i])
            any_bad |= not_finite(zi)
            gb[i], hb[i] = gradient_hessian_row(yb[i], zi, alpha, gamma, gamma_int, policy)
        if any_bad:
            bad += count_not_finite(zb)
        if weighted:
            wb = w[b0:b1]
            for i in range(b1 - b0):
                gb[i] *= wb[i]
                hb[i] *= wb[i]
    return bad


@_compile
def loss_kernel(y, z, w, alpha, gamma, gamma_int, out, lo, hi):
    """Per-row (weighted) focal loss for rows [lo, hi); returns the non-finite count."""
    bad = 0
    weighted = w.shape[0] > 0
    for b0 in range(lo, hi, BLOCK):
        b1 = min(b0 + BLOCK, hi)
        yb, zb, ob = y[b0:b1], z[b0:b1], out[b0:b1]
        for i in range(b1 - b0):
            zi = np.float64(zb[i])
            bad += not_finite(zi)
            ob[i] = loss_row(yb[i], zi, alpha, gamma, gamma_int)
        if weighted:
            wb = w[b0:b1]
            for i in range(b1 - b0):
                ob[i] *= wb[i]
    return bad


@_compile(fastmath={"contract", "reassoc"})
def loss_sum_kernel(y, z, w, alpha, gamma, gamma_int, lo, hi):
    """(Σ w·FL, Σ w, non-finite count) over rows [lo, hi), without a per-row array."""
    bad = 0
    weighted = w.shape[0] > 0
    total = 0.0
    wsum = 0.0 if weighted else float(hi - lo)
    values = np.empty(BLOCK)
    for b0 in range(lo, hi, BLOCK):
        b1 = min(b0 + BLOCK, hi)
        yb, zb = y[b0:b1], z[b0:b1]
        for i in range(b1 - b0):
            zi = np.float64(zb[i])
            bad += not_finite(zi)
            values[i] = loss_row(yb[i], zi, alpha, gamma, gamma_int)
        if weighted:
            wb = w[b0:b1]
            for i in range(b1 - b0):
                total += wb[i] * values[i]
                wsum += wb[i]
        else:
            for i in range(b1 - b0):
                total += values[i]
    return total, wsum, bad


#: :func:`gbfocal._formulas.posterior_logit`, calling the compiled ``log_focal_pull``.
posterior_logit = _inline(_rebound(F.posterior_logit, log_focal_pull=_inline(F.log_focal_pull)))


@_compile(fastmath=False)
def posterior_logit_kernel(z, alpha, gamma, out, lo, hi):
    """logit η of float64 margins, rows [lo, hi) (every margin finite: checked by the caller).

    Without FMA contraction the kernel rounds exactly as Python running
    :func:`gbfocal._formulas.posterior_logit` does (libm's ``exp``, ``log`` and
    ``log1p`` both ways), so small arrays (Python) and large ones (this kernel)
    get the same bits: :meth:`gbfocal.FocalLoss.posterior` takes either path.
    """
    zs, os_ = z[lo:hi], out[lo:hi]
    for i in range(hi - lo):
        os_[i] = posterior_logit(zs[i], alpha, gamma)
    return 0


# --------------------------------------------------------------------------- float32


def float32_twin(fn, **replace):
    """A copy of the Python function behind ``fn`` that computes in float32.

    Numba types every float literal as float64, so float32 arguments are
    promoted at the first constant. The twin is the same bytecode with every
    float constant, and every float global (such as
    :data:`gbfocal._formulas.HESSIAN_FLOOR`), made ``np.float32``; ``replace``
    swaps other globals, i.e. the float32 primitives and twins for the
    float64 ones the function calls. Its name gets a ``_f32`` suffix so that
    Numba's on-disk cache keeps the two apart.
    """
    fn = getattr(fn, "py_func", fn)
    consts = tuple(np.float32(c) if type(c) is float else c for c in fn.__code__.co_consts)
    floats = {k: np.float32(v) for k, v in fn.__globals__.items() if type(v) is float}
    return _rebound(fn, fn.__name__ + "_f32", consts, **{**floats, **replace})


@intrinsic
def _f32_scale_pow2_neg(typingctx, x, kf):
    """``x * 2**-n`` where ``kf = n + 1.5 * 2**23`` holds the integer ``n`` in its low bits.

    All integer work in 32-bit lanes (Numba would widen int32 arithmetic to
    int64, halving the vector width); two factors so subnormal results round
    correctly.
    """
    sig = types.float32(types.float32, types.float32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        x, k = args
        n = builder.sub(builder.bitcast(k, i32), ir.Constant(i32, 0x4B400000))  # bits of 1.5 * 2**23
        n1 = builder.ashr(n, ir.Constant(i32, 1))
        n2 = builder.sub(n, n1)
        scale = []
        for part in (n1, n2):
            bits = builder.shl(builder.sub(ir.Constant(i32, 127), part), ir.Constant(i32, 23))
            scale.append(builder.bitcast(bits, ir.FloatType()))
        return builder.fmul(builder.fmul(x, scale[0]), scale[1])

    return sig, codegen


_F32 = np.float32
_MAGIC32 = _F32(12582912.0)  # 1.5 * 2**23
_LOG2E32 = _F32(_LOG2E)
_LN2_HI32 = _F32(0.693359375)  # 10 significant bits: n * _LN2_HI32 is exact for n < 2**14
_LN2_LO32 = _F32(-2.12194440e-4)


@_inline
def exp_neg32(a):
    """float32 ``exp(-a)`` for ``a >= 0`` (0 beyond 104): :func:`exp_neg` at float32 width.

    Taylor polynomial of degree 7 on |r| <= ln(2) / 2 (truncation < 6e-9
    relative).
    """
    ac = min(a, _F32(104.0))
    kf = ac * _LOG2E32 + _MAGIC32
    nf = kf - _MAGIC32
    x = -((ac - nf * _LN2_HI32) - nf * _LN2_LO32)
    poly = _F32(1.0 / 5040.0)
    poly = poly * x + _F32(1.0 / 720.0)
    poly = poly * x + _F32(1.0 / 120.0)
    poly = poly * x + _F32(1.0 / 24.0)
    poly = poly * x + _F32(1.0 / 6.0)
    poly = poly * x + _F32(0.5)
    poly = poly * x + _F32(1.0)
    poly = poly * x + _F32(1.0)
    out = _f32_scale_pow2_neg(poly, kf)
    return _F32(0.0) if a > _F32(104.0) else out


@_inline
def log1p_unit32(e, inv_2pe):
    """float32 ``log1p(e)`` for ``e`` in [0, 1]: :func:`log1p_unit`'s series to s^12 (truncation < 2e-8)."""
    s = e * inv_2pe
    s2 = s * s
    poly = _F32(1.0 / 13.0)
    poly = poly * s2 + _F32(1.0 / 11.0)
    poly = poly * s2 + _F32(1.0 / 9.0)
    poly = poly * s2 + _F32(1.0 / 7.0)
    poly = poly * s2 + _F32(1.0 / 5.0)
    poly = poly * s2 + _F32(1.0 / 3.0)
    poly = poly * s2 + _F32(1.0)
    return _F32(2.0) * s * poly


@_inline
def as_float32(x):
    return np.float32(x)


_row_terms32 = _inline(
    float32_twin(
        row_terms,
        exp_neg=exp_neg32,
        log1p_unit=log1p_unit32,
        logistic_parts=_inline(float32_twin(F.logistic_parts)),
        integer_power=_inline(float32_twin(F.integer_power)),
    )
)
_gradient_hessian_row32 = _inline(
    float32_twin(
        gradient_hessian_row,
        row_terms=_row_terms32,
        focal_grad_t=_inline(float32_twin(F.focal_grad_t)),
        focal_hess_t=_inline(float32_twin(F.focal_hess_t)),
    )
)
_not_finite32 = _inline(float32_twin(not_finite))

#: :func:`gradient_hessian_kernel` in float32 arithmetic: labels, margins and
#: outputs float32 (weights may be either), ``alpha``/``gamma`` ``np.float32``.
#: Relative error against the float64 kernel: ~2 float32 ulp on average, the
#: rounding amplified by q**γ at worst (6.3e-6 for γ = 5, 3.5e-6 for γ = 1.7,
#: 1e-6 for γ = 2; tests/test_cpu.py bounds it at 1e-5). The exact Hessian's
#: error is relative to its terms' size, as it cancels where it crosses zero.
gradient_hessian_kernel32 = _compile(
    float32_twin(
        gradient_hessian_kernel,
        gradient_hessian_row=_gradient_hessian_row32,
        not_finite=_not_finite32,
        as_float=as_float32,
        count_not_finite=_inline(float32_twin(count_not_finite, not_finite=_not_finite32, as_float=as_float32)),
    )
)


# --------------------------------------------------------------------------- threads

#: Below this many rows per thread, one thread is faster than a hand-off.
MIN_ROWS_PER_THREAD = 32768

#: Row ranges per thread in :func:`run_chunked`: enough for a slowed thread to hand work to the others,
#: few enough that the per-range call (a few microseconds) stays negligible.
PIECES_PER_THREAD = 8

_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] = (0, 0)
_pool_lock = threading.Lock()


def default_n_threads() -> int:
    """Cores this process may use (affinity-aware), like OpenMP's default."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _executor(n_threads: int) -> ThreadPoolExecutor:
    """The process's pool, with at least ``n_threads`` workers.

    The pool only grows and is never shut down: another thread (a Dask
    worker's, say) may be submitting to the current one at this moment. A
    forked child gets a pool of its own (the parent's threads do not exist
    there).
    """
    global _pool, _pool_key
    pid = os.getpid()
    with _pool_lock:
        if _pool is None or _pool_key[0] != pid or _pool_key[1] < n_threads:
            _pool = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="gbfocal")
            _pool_key = (pid, n_threads)
        return _pool


def run_chunked(kernel, n_rows: int, args: tuple, n_threads: int | None) -> list:
    """Call ``kernel(*args, lo, hi)`` over contiguous row ranges covering [0, n_rows).

    Returns the list of per-range results, in row order. Kernels release the
    GIL, so the ranges run truly in parallel. The ranges are fixed by
    ``n_rows`` and the thread count alone (so per-range sums add up in the
    same order every call), but which thread runs which range is not: the
    calling thread and ``n_threads - 1`` pool threads take the next range
    as they finish one (:data:`PIECES_PER_THREAD` ranges per thread). A
    thread that runs slower, on a core an engine's OpenMP threads still
    spin on after their parallel region, or that starts late, then simply
    takes fewer ranges instead of holding up the call.
    """
    if n_threads is None:
        n_threads = default_n_threads()
    n_workers = max(1, min(int(n_threads), n_rows // MIN_ROWS_PER_THREAD))
    if n_workers == 1:
        return [kernel(*args, 0, n_rows)]
    n_pieces = n_workers * PIECES_PER_THREAD
    bounds = np.linspace(0, n_rows, n_pieces + 1).astype(np.int64).tolist()
    results: list = [None] * n_pieces
    claim = itertools.count().__next__  # atomic under the GIL

    def work() -> None:
        i = claim()
        while i < n_pieces:
            results[i] = kernel(*args, bounds[i], bounds[i + 1])
            i = claim()

    pool = _executor(n_workers - 1)
    futures = [pool.submit(work) for _ in range(n_workers - 1)]
    try:
        work()
    finally:  # never return (or raise) while a pool thread may still write into the caller's arrays
        for f in futures:
            f.exception()
    for f in futures:
        f.result()  # a kernel's error in a pool thread
    return results


# --------------------------------------------------------------------------- multiclass
#
# The softmax focal loss of :mod:`gbfocal._formulas` over rows of K margins.
# Margins arrive as a C-contiguous (n, K) array of float32 or float64 (the
# gradient kernel also reads their class-major (K, n) transpose); one compiled
# specialisation per dtype; arithmetic is float64 for both, and float32
# outputs are stored rounded. Labels are int64 class indices, α a (K,)
# float64 array. A row's K exponentials use the vectorisable exp_neg above
# (every argument z_k - max z is <= 0).

softmax_target_parts = _inline(F.softmax_target_parts)
multiclass_curvature = _inline(F.multiclass_curvature)
multiclass_grad_entry = _inline(F.multiclass_grad_entry)
multiclass_hess_entry = _inline(F.multiclass_hess_entry)
log_class_pull = _inline(F.log_class_pull)


@_inline
def log1p_nonneg(u):
    """``log1p(u)`` for ``u >= 0``: the series of :func:`log1p_unit` on [0, 1], libm's log above."""
    return log1p_unit(u, 1.0 / (2.0 + u)) if u <= 1.0 else np.log(1.0 + u)


@_inline
def softmax_row(z, e, lo_clamp, hi_clamp):
    """(m, k*, u) of one row, and e[k] = exp(z_k - m); margins clamped to [lo_clamp, hi_clamp].

    m = max_k z_k attained first at k*, u = Σ_{k≠k*} e[k]: a sum of
    non-negative terms, so 1 - p_k* = u / (1 + u) keeps full precision.
    """
    n_classes = z.shape[0]
    m = min(max(as_float(z[0]), lo_clamp), hi_clamp)
    kmax = 0
    for k in range(1, n_classes):
        zk = min(max(as_float(z[k]), lo_clamp), hi_clamp)
        if zk > m:
            m = zk
            kmax = k
    u = 0.0
    for k in range(n_classes):
        ek = exp_neg(m - min(max(as_float(z[k]), lo_clamp), hi_clamp))
        e[k] = ek
        u += ek if k != kmax else 0.0
    return m, kmax, u


@_inline
def multiclass_target(z, yi, e, alpha_y, gamma, gamma_int, lo_clamp, hi_clamp):
    """Per-row scalars: (k*, u, 1/(1+u), p_y, 1 - p_y, -log p_y, (1 - p_y)^γ)."""
    m, kmax, u = softmax_row(z, e, lo_clamp, hi_clamp)
    inv = 1.0 / (1.0 + u)
    zy = min(max(as_float(z[yi]), lo_clamp), hi_clamp)
    p, q, nlp = softmax_target_parts(e[yi], u, inv, log1p_nonneg(u), m - zy, yi == kmax)
    if gamma_int >= 0:
        qg = integer_power(q, gamma_int)
    else:
        qg = exp_neg(-gamma * np.log(q)) if q > 0.0 else 0.0
    return kmax, u, inv, p, q, nlp, qg


@_inline
def log_ge1(x):
    """``log(x)`` for ``1 <= x < 2**1023``, branch-free: x = 2^n f, f in [1, 2), log f by :func:`log1p_unit`."""
    bits = _f64_as_i64(x)
    n = (bits >> 52) - 1023
    f = _i64_as_f64((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    return n * _LN2_HI + (n * _LN2_LO + log1p_unit(f - 1.0, 1.0 / (1.0 + f)))


@_inline
def log1p_nonneg_vec(u):
    """``log1p(u)`` for ``u >= 0``, vectorisable, full relative precision as u -> 0.

    log(x) of the rounded x = 1 + u by :func:`log_ge1`, plus the first-order
    correction for the rounding, (u - (x - 1)) / x (exact: x - 1 is exact).
    """
    x = 1.0 + u
    return log_ge1(x) + (u - (x - 1.0)) / x


@_inline
def log_unit(q):
    """``log(q)`` for ``0 < q <= 1`` (subnormal q read as the smallest normal), vectorisable."""
    return -log_ge1(1.0 / max(q, 2.2250738585072014e-308))


#: Rows per block of the multiclass gradient kernel: its scratch (K + 8 rows
#: of float64) stays in L1/L2 and every loop over a block's rows vectorises.
MC_BLOCK = 256


@_compile
def multiclass_gradient_hessian_kernel(
    y, z, shift, w, alpha, gamma, gamma_int, policy, class_major, grad, hess, lo, hi
):
    """grad/hess w.r.t. the margins ``z + shift`` for rows [lo, hi); returns the number of non-finite margins.

    ``z``, ``grad``, ``hess``: C-contiguous ``(n, K)`` arrays, or with
    ``class_major`` their transposes ``(K, n)`` (what a Fortran-ordered
    ``(n, K)`` array such as LightGBM's scores is viewed as), read and
    written in that layout with no copy. ``shift`` (K,): added to every
    row's margins as they are read (an engine's starting score; zeros for
    none), in float64 as ``z + shift`` would be. ``w`` is the weight array,
    or an empty array for unit weights. Works on blocks of :data:`MC_BLOCK`
    rows in class-major scratch, so that every loop runs over contiguous
    rows (SIMD lanes, no gathers) rather than over the K classes of one
    row. Margins are clamped at ±:data:`Z_SATURATED`, where everything has
    saturated.
    """
    n_classes = shift.shape[0]
    weighted = w.shape[0] > 0
    zt = np.empty((n_classes, MC_BLOCK))
    e = np.empty((n_classes, MC_BLOCK))
    gt = np.empty((n_classes, MC_BLOCK))
    ht = np.empty((n_classes, MC_BLOCK))
    m = np.empty(MC_BLOCK)
    u = np.empty(MC_BLOCK)
    kmax = np.empty(MC_BLOCK, dtype=np.int64)
    ey = np.empty(MC_BLOCK)
    zy = np.empty(MC_BLOCK)
    ay = np.empty(MC_BLOCK)
    cb = np.empty(MC_BLOCK)  # c b
    ck = np.empty(MC_BLOCK)  # c κ
    wt = np.empty(MC_BLOCK)
    inv_snt = np.empty(MC_BLOCK)
    inv = np.empty(MC_BLOCK)
    hyy = np.empty(MC_BLOCK)
    bad = 0
    for b0 in range(lo, hi, MC_BLOCK):
        nb = min(MC_BLOCK, hi - b0)
        yb = y[b0 : b0 + nb]
        any_bad = False
        if class_major:
            for k in range(n_classes):
                zk_row, zt_row, sk = z[k, b0 : b0 + nb], zt[k], shift[k]
                for i in range(nb):
                    zk = as_float(zk_row[i]) + sk
                    any_bad |= not_finite(zk)
                    zt_row[i] = min(max(zk, -Z_SATURATED), Z_SATURATED)
        else:
            zb = z[b0 : b0 + nb]
            for i in range(nb):
                zi = zb[i]
                for k in range(n_classes):
                    zk = as_float(zi[k]) + shift[k]
                    any_bad |= not_finite(zk)
                    zt[k, i] = min(max(zk, -Z_SATURATED), Z_SATURATED)
        if any_bad:
            for k in range(n_classes):
                for i in range(nb):
                    zk = as_float(z[k, b0 + i] if class_major else z[b0 + i, k]) + shift[k]
                    bad += not_finite(zk)
        z0 = zt[0]
        for i in range(nb):
            m[i] = z0[i]
            kmax[i] = 0
        for k in range(1, n_classes):
            zk_row = zt[k]
            for i in range(nb):
                gt_ = zk_row[i] > m[i]
                m[i] = zk_row[i] if gt_ else m[i]
                kmax[i] = k if gt_ else kmax[i]
        for i in range(nb):
            u[i] = 0.0
            ey[i] = 0.0
            zy[i] = 0.0
            ay[i] = 0.0
        for k in range(n_classes):
            zk_row, ek_row, ak = zt[k], e[k], alpha[k]
            for i in range(nb):
                ek = exp_neg(m[i] - zk_row[i])
                ek_row[i] = ek
                u[i] += ek if k != kmax[i] else 0.0
                is_y = k == yb[i]
                ey[i] = ek if is_y else ey[i]
                zy[i] = zk_row[i] if is_y else zy[i]
                ay[i] = ak if is_y else ay[i]
        for i in range(nb):
            ui = u[i]
            invi = 1.0 / (1.0 + ui)
            is_max = yb[i] == kmax[i]
            p, q, nlp = softmax_target_parts(ey[i], ui, invi, log1p_nonneg_vec(ui), m[i] - zy[i], is_max)
            q_int = integer_power(q, gamma_int)
            q_exp = exp_neg(-gamma * log_unit(q))
            qg = q_int if gamma_int >= 0 else (q_exp if q > 0.0 else 0.0)
            c = ay[i] * qg
            b = gamma * p * nlp + q
            kappa = multiclass_curvature(gamma, p, q, nlp, policy)
            wi = w[b0 + i] if weighted else 1.0
            # Σ_{k≠y} e_k without cancellation, scaled by 2**64 so its reciprocal is finite when it is subnormal
            s_nt = (ui if is_max else 1.0 + (ui - ey[i])) * NONTARGET_SCALE
            inv_snt[i] = 1.0 / s_nt if s_nt > 0.0 else 0.0  # 0: every e_k (k≠y) underflowed
            inv[i] = invi
            wt[i] = wi
            cb[i] = c * b
            ck[i] = c * kappa
            hyy[i] = wi * multiclass_hess_entry(c, kappa, b, 1.0, p, policy)
        for k in range(n_classes):
            ek_row, gk_row, hk_row = e[k], gt[k], ht[k]
            for i in range(nb):
                ek = ek_row[i]
                rho = -(ek * NONTARGET_SCALE) * inv_snt[i]
                omp = u[i] * inv[i] if k == kmax[i] else 1.0 - ek * inv[i]  # 1 - p_k; p_k <= 1/2 unless k = k*
                sigma = -rho * omp
                on_target = k == yb[i]
                g_k = multiclass_grad_entry(cb[i], 1.0, 1.0 if on_target else rho)
                gk_row[i] = wt[i] * g_k
                h_off = wt[i] * multiclass_hess_entry(1.0, ck[i], cb[i], rho, sigma, policy)
                hk_row[i] = hyy[i] if on_target else h_off
        if class_major:
            for k in range(n_classes):
                gk_out, hk_out, gk_row, hk_row = grad[k, b0 : b0 + nb], hess[k, b0 : b0 + nb], gt[k], ht[k]
                for i in range(nb):
                    gk_out[i] = gk_row[i]
                    hk_out[i] = hk_row[i]
        else:
            gb, hb = grad[b0 : b0 + nb], hess[b0 : b0 + nb]
            for i in range(nb):
                gi, hi_ = gb[i], hb[i]
                for k in range(n_classes):
                    gi[k] = gt[k, i]
                    hi_[k] = ht[k, i]
    return bad


@_compile
def multiclass_loss_kernel(y, z, w, alpha, gamma, gamma_int, out, lo, hi):
    """Per-row (weighted) softmax focal loss for rows [lo, hi); returns the non-finite count."""
    n_classes = z.shape[1]
    e = np.empty(n_classes)
    weighted = w.shape[0] > 0
    bad = 0
    big = math.inf
    for i in range(lo, hi):
        zi = z[i]
        for k in range(n_classes):
            bad += not_finite(as_float(zi[k]))
        yi = y[i]
        _kmax, _u, _inv, _p, _q, nlp, qg = multiclass_target(zi, yi, e, alpha[yi], gamma, gamma_int, -big, big)
        v = focal_value(alpha[yi], qg, nlp)
        out[i] = v * w[i] if weighted else v
    return bad


@_compile(fastmath={"contract", "reassoc"})
def multiclass_loss_sum_kernel(y, z, w, alpha, gamma, gamma_int, lo, hi):
    """(Σ w·FL, Σ w, non-finite count) over rows [lo, hi), without a per-row array."""
    n_classes = z.shape[1]
    e = np.empty(n_classes)
    weighted = w.shape[0] > 0
    bad = 0
    total = 0.0
    wsum = 0.0 if weighted else float(hi - lo)
    big = math.inf
    for i in range(lo, hi):
        zi = z[i]
        for k in range(n_classes):
            bad += not_finite(as_float(zi[k]))
        yi = y[i]
        _kmax, _u, _inv, _p, _q, nlp, qg = multiclass_target(zi, yi, e, alpha[yi], gamma, gamma_int, -big, big)
        v = focal_value(alpha[yi], qg, nlp)
        if weighted:
            total += w[i] * v
            wsum += w[i]
        else:
            total += v
    return total, wsum, bad


@_compile
def multiclass_posterior_kernel(z, log_alpha, gamma, out, lo, hi):
    """Class posterior η (n, K) from margins (n, K), rows [lo, hi); returns the non-finite count.

    log η_k = -log_class_pull_k - logsumexp_j(-log_class_pull_j), every
    term in log space: 1 - p_k* comes from log u with u = Σ_{k≠k*} e^{z_k - m}
    evaluated as a log-sum-exp, so it never underflows for finite margins.
    """
    n_classes = z.shape[1]
    a = np.empty(n_classes)
    zc = np.empty(n_classes)
    bad = 0
    for i in range(lo, hi):
        zi = z[i]
        for k in range(n_classes):
            zk = np.float64(zi[k])
            bad += not_finite(zk)
            # clamped where η has saturated (a gap of 2e20 puts e^-2e20 in every ratio)
            zc[k] = min(max(zk, -Z_SATURATED), Z_SATURATED)
        m = zc[0]
        kmax = 0
        for k in range(n_classes):
            if zc[k] > m:
                m = zc[k]
                kmax = k
        m2 = -math.inf  # largest margin but the first maximum
        for k in range(n_classes):
            if k != kmax:
                m2 = max(m2, zc[k])
        s2 = 0.0
        for k in range(n_classes):
            if k != kmax:
                s2 += np.exp(zc[k] - m2)
        log_u = (m2 - m) + np.log(s2)
        u = np.exp(log_u)
        log1p_u = np.log1p(u)
        for k in range(n_classes):
            if k == kmax:
                p = 1.0 / (1.0 + u)
                log_q = log_u - log1p_u
                ratio = log1p_u * (1.0 + u) / u if u > 0.0 else 1.0
                nlp = log1p_u
            else:
                nlp = (m - zc[k]) + log1p_u
                p = np.exp(-nlp)
                q = 1.0 - p  # p <= 1/2
                log_q = np.log1p(-p)
                ratio = nlp / q
            a[k] = -log_class_pull(log_alpha[k], gamma, p, log_q, nlp, ratio)
        amax = a[0]
        for k in range(n_classes):
            amax = max(amax, a[k])
        s = 0.0
        for k in range(n_classes):
            s += np.exp(a[k] - amax)
        log_s = amax + np.log(s)
        oi = out[i]
        for k in range(n_classes):
            oi[k] = np.exp(a[k] - log_s)
    return bad


@_compile(fastmath={"contract", "reassoc"})
def class_weight_sums_kernel(y, w, n_classes, lo, hi):
    """(K,) totals: [k] = Σ w over rows [lo, hi) with y = k."""
    totals = np.zeros(n_classes)
    if w.shape[0] > 0:
        for i in range(lo, hi):
            totals[y[i]] += w[i]
    else:
        for i in range(lo, hi):
            totals[y[i]] += 1.0
    return totals
