"""Statistics of ``gbfocal bench``: intervals that stay inside a metric's range, paired tests, Holm's correction.

Every number here is a function of a few per-seed values (5 by default), so
the choices are the small-sample ones:

* **Intervals of a mean** are Student-t intervals on a scale where the
  metric is unbounded, mapped back: the logit scale for metrics in [0, 1]
  (average precision, ROC-AUC, precision at recall 0.5, Brier score), the
  log scale for positive quantities (log loss, training seconds, number of
  trees), the identity for differences. With ``u = g(x)`` per seed, ``ū`` the
  mean of ``u``, ``s_u`` its standard deviation and ``n`` seeds::

      [g⁻¹(ū - t s_u / √n),  g⁻¹(ū + t s_u / √n)],   t = t_{n-1}(0.975)

  An interval for the centre of the seed-to-seed distribution that cannot
  leave the metric's range (no "0.80 ± 0.34" precision, no negative time).
  A bootstrap would also stay inside, but with 5 seeds its percentile
  intervals are far too narrow. Values at the bound (an AP of exactly 1) are
  moved ``1e-6`` inside it before the transform; when every value is equal
  the interval is that value.
* **Paired comparisons** are two-sided paired t-tests on the per-seed
  differences, ``T = d̄ / (s_d / √n)``, whose p-value agrees with the
  t-interval of the difference (interval excludes 0 ⇔ p < 0.05).
* **Multiple comparisons**: a full run makes ~70 paired tests, so about 3
  would reach p < 0.05 by chance alone. :func:`holm` adjusts the p-values of
  all tests of a run together (Holm 1979), controlling the chance of any
  false claim at 5%; the bench reports the raw and the adjusted verdict side
  by side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["LEVEL", "SCALES", "holm", "interval", "paired_t_test", "t_interval"]

#: Confidence level of every interval and the significance level (1 - LEVEL) of every test.
LEVEL = 0.95
#: Scales an interval can be computed on: the metric's range decides.
SCALES = ("identity", "logit", "logit2", "log")
_INSIDE = 1e-6  # how far a value at a bound of (0, 1) or (0, ∞) is moved inside before the transform


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student-t confidence interval of the mean; NaN bounds for one value."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def interval(values: Sequence[float], scale: str = "identity", level: float = LEVEL) -> dict[str, float | None]:
    """``{"mean", "low", "high"}`` of per-seed ``values``: arithmetic mean and a t-interval on ``scale``.

    ``scale="logit"`` for values in [0, 1], ``"logit2"`` for values in
    [0, 2] (the multiclass Brier score: the logit of ``x / 2``), ``"log"``
    for values >= 0,
    ``"identity"`` for anything else (see the module docstring); the bounds
    then lie in the values' range whatever their spread. ``low`` and ``high``
    are None for a single value.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("interval needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return {"mean": mean, "low": None, "high": None}
    if np.all(x == x[0]):  # also keeps an all-perfect AP at exactly 1
        return {"mean": mean, "low": float(x[0]), "high": float(x[0])}
    if scale in ("logit", "logit2"):
        top = 2.0 if scale == "logit2" else 1.0
        if np.any((x < 0) | (x > top)):
            raise ValueError(f"{scale}-scale interval needs values in [0, {top:g}], got {x.min()!r} … {x.max()!r}")
        p = np.clip(x / top, _INSIDE, 1.0 - _INSIDE)
        _, low, high = t_interval(np.log(p) - np.log1p(-p), level)
        low, high = top * _expit(low), top * _expit(high)
    elif scale == "log":
        if np.any(x < 0):
            raise ValueError(f"log-scale interval needs values >= 0, got {x.min()!r}")
        _, low, high = t_interval(np.log(np.maximum(x, _INSIDE)), level)
        low, high = math.exp(low), math.exp(min(high, 700.0))
    else:
        _, low, high = t_interval(x, level)
    return {"mean": mean, "low": float(low), "high": float(high)}


def _expit(u: float) -> float:
    return 0.5 + 0.5 * math.tanh(0.5 * u)


def paired_t_test(differences: Sequence[float]) -> float | None:
    """Two-sided p-value of the paired t-test that the mean difference is 0; None for fewer than 2 values.

    All-zero differences give 1.0; equal non-zero differences (no spread,
    every seed agrees) give 0.0.
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2:
        return None
    sd = float(d.std(ddof=1))
    mean = float(d.mean())
    if sd == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    from scipy.stats import t

    statistic = mean / (sd / math.sqrt(d.size))
    return float(min(1.0, 2.0 * t.sf(abs(statistic), d.size - 1)))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values, in the input order; None entries (no test) stay None.

    With the ``m`` real p-values sorted, ``p_(1) <= … <= p_(m)``, the adjusted
    value of ``p_(i)`` is ``max_{j <= i} min(1, (m - j + 1) p_(j))``. Rejecting
    where the adjusted value is below 0.05 keeps the chance of any false
    rejection among all ``m`` tests at 5%, whatever their dependence.
    """
    real = [(p, k) for k, p in enumerate(p_values) if p is not None]
    m = len(real)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, k) in enumerate(sorted(real)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must lie in [0, 1], got {p!r}")
        running = max(running, min(1.0, (m - rank) * p))
        out[k] = running
    return out
