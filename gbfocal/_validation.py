"""Input checks. Each error names the argument and says how to fix it."""

from __future__ import annotations

import math
import numbers

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Largest accepted focusing parameter γ. Every intermediate of the kernels is
#: then provably finite in float32 (and float64): the largest are γ·q·ℓ ≤ γ·Z
#: and γ²·p·ℓ ≤ γ²·Z with margins clamped at Z = 1e20
#: (:data:`gbfocal._formulas.Z_SATURATED`), i.e. at most 1e32 against float32's
#: 3.4e38, while every gradient and Hessian is below γ² ≈ 1e12 (see
#: ``FocalLoss.max_abs_derivative``), which leaves weights up to ~1e26 room even
#: in float32. γ ≈ 1.3e154 would overflow the float64 Hessian; γ > 10 is
#: already far beyond any use (Lin et al. tune γ in [0, 5]).
GAMMA_MAX = 1e6


def check_alpha(alpha: object, name: str = "alpha") -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"{name} must be a real number in (0, 1), got {type(alpha).__name__} {alpha!r}")
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(
            f"{name} must lie strictly between 0 and 1 (it weighs the positive class, 1 - {name} the "
            f"negative one), got {alpha!r}"
        )
    return alpha


def check_gamma(gamma: object, name: str = "gamma") -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0, got {type(gamma).__name__} {gamma!r}")
    gamma = float(gamma)
    if not (gamma >= 0.0 and math.isfinite(gamma)):
        raise ValueError(f"{name} must be a finite number >= 0 (0 gives α-balanced logloss), got {gamma!r}")
    if gamma > GAMMA_MAX:
        raise ValueError(
            f"{name} must be at most {GAMMA_MAX:g} (beyond it the Hessian's γ² terms are no longer provably "
            f"finite; useful values lie in [0, 5]), got {gamma!r}"
        )
    return gamma


def check_hessian(hessian: object, policies: object, name: str = "hessian") -> str:
    """A Hessian policy name from ``policies``."""
    if not isinstance(hessian, str) or hessian not in policies:
        raise ValueError(f"{name} must be one of {sorted(policies)}, got {hessian!r}")
    return hessian


def _as_1d(x: object, name: str) -> np.ndarray:
    if x is None:
        raise TypeError(f"{name} is required, got None")
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D with one value per row, got an array of shape {arr.shape}; "
            f"pass a 1-D array (for a column vector use .ravel())"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: at least one row is needed")
    return arr


def as_labels(y: object, name: str = "y_true") -> np.ndarray:
    """Labels as a contiguous float64 array with values in {0, 1} (no copy if already so)."""
    if np.ndim(y) == 2 and np.shape(y)[1] > 1:
        raise ValueError(
            f"{name} must be 1-D, one 0/1 label per row, got a label matrix of shape {np.shape(y)}; for "
            "multi-label data (one 0/1 column per label) use gbfocal.MultilabelFocalLoss"
        )
    arr = _as_1d(y, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be numeric 0/1 labels, got dtype {arr.dtype}; encode classes as 0 (negative) "
            f"and 1 (positive), e.g. (y == positive_label).astype(float)"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    ok = (arr == 0.0) | (arr == 1.0)
    if not ok.all():
        values = np.unique(arr[~ok])[:5]
        present = np.unique(arr)
        hint = "encode the negative class as 0 and the positive class as 1"
        if present.size <= 2 and set(present.tolist()) <= {-1.0, 1.0}:
            hint = "labels look like {-1, 1}: use (y > 0).astype(float)"
        elif present.size <= 2 and set(present.tolist()) <= {1.0, 2.0}:
            hint = "labels look like {1, 2}: use (y == 2).astype(float)"
        raise ValueError(f"{name} must contain only 0 and 1, found {values.tolist()}; {hint}")
    return arr


def as_margins(z: object, name: str = "raw_prediction") -> np.ndarray:
    """Raw margins as a contiguous float32/float64 array; contiguous float input is not copied."""
    arr = _as_1d(z, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array of raw margins (logits), got dtype {arr.dtype}")
    if arr.dtype not in _FLOAT_DTYPES:
        arr = arr.astype(np.float64)
    return np.ascontiguousarray(arr)


def as_weights(w: object, n_rows: int, name: str = "sample_weight") -> np.ndarray | None:
    """Weights as a contiguous float64 array of length ``n_rows``, or None."""
    if w is None:
        return None
    arr = np.asarray(w)
    if arr.ndim == 1 and arr.shape[0] == 0:
        return None  # an empty weight array means "unweighted", as in LightGBM
    arr = _as_1d(arr, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows but the labels have {n_rows}; pass one weight per row")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values; weights must be finite and >= 0")
    if (arr < 0).any():
        raise ValueError(f"{name} contains negative values (min {arr.min()!r}); weights must be >= 0")
    return arr


def check_same_length(n_labels: int, arr: np.ndarray, name: str) -> None:
    if arr.shape[0] != n_labels:
        raise ValueError(f"{name} has {arr.shape[0]} rows but y_true has {n_labels}; they must match row for row")


def check_out(out: object, like: np.ndarray, name: str) -> np.ndarray:
    """A caller-supplied output buffer: writable, contiguous, same length and dtype as ``like``."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(out).__name__}")
    if out.shape != like.shape or out.dtype != like.dtype:
        raise ValueError(f"{name} must have shape {like.shape} and dtype {like.dtype}, got {out.shape} {out.dtype}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"{name} must be a writable C-contiguous array")
    return out


def check_disjoint(out: np.ndarray, name: str, **others: np.ndarray) -> None:
    """Refuse an output buffer that shares memory with an input or with another output.

    The kernels read and write row by row in blocks, so an overlap silently
    gives wrong values (one output overwriting the other, or a margin
    overwritten before it is read again).
    """
    for other_name, other in others.items():
        if other.size and np.shares_memory(out, other):
            raise ValueError(
                f"{name} shares memory with {other_name}; pass a separate array for each output, "
                f"distinct from the inputs"
            )


def weight_max(w: np.ndarray) -> float:
    """Largest weight, or 1.0 for an empty (unweighted) array: the scale of the rows' weights."""
    return float(w.max()) if w.shape[0] else 1.0


def report_non_finite(count: int, name: str = "raw_prediction") -> None:
    if count:
        raise ValueError(
            f"{name} contains {count} NaN or infinite margin(s); the booster diverged or was fed bad "
            f"input (check the learning rate, base_score/init_score, and the features)"
        )


def check_n_threads(n_threads: object, name: str = "n_threads") -> int | None:
    """``None`` (every core this process may use) or a positive ``int``; anything else is refused.

    Shared by :class:`~gbfocal.FocalLoss` and every engine adapter, so ``'2'``,
    ``1.5``, ``True``, ``0`` and NaN get the same clear error everywhere
    (an engine whose own convention maps ``<= 0`` to "all cores" converts
    before calling this).
    """
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(
            f"{name} must be a positive int or None (every core), got {type(n_threads).__name__} {n_threads!r}"
        )
    if n_threads < 1:
        raise ValueError(f"{name} must be a positive int or None (every core), got {n_threads!r}")
    return int(n_threads)
