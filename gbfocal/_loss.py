"""The user-facing :class:`FocalLoss`: validation and wiring around the kernels."""

from __future__ import annotations

import itertools
import math
import threading
from typing import Any

import numpy as np

from gbfocal import _formulas as F
from gbfocal import _validation as V

HESSIAN_POLICIES = {
    "exact": F.HESSIAN_EXACT,
    "positive": F.HESSIAN_POSITIVE,
    "abs": F.HESSIAN_ABS,
    "clip": F.HESSIAN_CLIP,
}
DEFAULT_HESSIAN = "positive"


def _kernels():
    # Numba and the kernels load on first use, so ``import gbfocal`` stays cheap.
    from gbfocal import _cpu

    return _cpu


#: Row evaluations (rows x calls) that one owner runs through the Python
#: formulas, per kernel, before it switches to that compiled kernel for good
#: (a call larger than this goes to the kernel at once). Equal to the
#: kernel's first-use cost with a *warm* cache, measured in Python rows
#: (``python benchmarks/bench_cold_start.py --compile-cost``, load 1.7 on 2
#: cores): ``import numba`` plus loading the cached float32 gradient kernel
#: took 0.28 s, 0.3M rows of the Python ``PreparedRows.gradient_hessian``
#: (0.92 us a row). Compiling it in a fresh environment took 1.06-1.10 s
#: (1.15-1.20M rows); the loss-sum kernel 0.72 s (1.4-1.5M rows of
#: ``mean_loss``). The warm figure is chosen because every later process
#: pays it: a first budget of 1M rows cost a warm 1M-row, 50-round XGBoost
#: training one whole round in Python, 0.9 s of its 2.6 s (1.53x the replay
#: floor, ``benchmarks/bench_overhead_xgboost.py``).
PYTHON_ROW_BUDGET = 300_000

#: One-off :class:`FocalLoss` calls on more rows than this run compiled
#: whatever the budget (a single call never spends more than ~30 ms in Python).
ONE_OFF_PYTHON_ROWS = 16384


class PythonRowBudget:
    """Ski rental between the Python formulas and a compiled kernel, one account per kernel and thread.

    Every call asks :meth:`take` whether its ``n`` rows run in Python: yes
    while this owner's Python row evaluations for that kernel in the calling
    thread, the call's included, stay within :data:`PYTHON_ROW_BUDGET`; the
    first call that would pass it, and every later one, goes to the kernel.
    The answer depends on the row counts and the number of calls alone,
    never on whether a kernel is compiled or cached already, so a training
    computes the same numbers in a fresh process and in a warm one; and
    accounts are per thread, as the gradient buffers are, so several threads
    training on one data set at once each switch at the round where a lone
    training would.

    The bound: with the budget ``B`` equal to the kernel's first-use cost
    with a warm cache (in Python rows), the Python rows spent never exceed
    ``B``, so a warm training costs at most ``2 B`` (about 0.6 s) beyond its
    compiled row work where loading at once would have cost ``B``, and at
    most what all-Python costs where that is below ``B``: at most about
    twice the better of the two choices. In a fresh environment compiling
    costs ~3.7 ``B``: there the worst case (a training just over ``B``
    rows of work) is ~4.7x the all-Python cost, at most ~1.4 s, once per
    environment.
    """

    __slots__ = ("_local",)

    def __init__(self) -> None:
        self._local = threading.local()

    def take(self, kernel: str, n: int) -> bool:
        """Whether ``n`` more rows for ``kernel`` run in Python in this thread (counted if so)."""
        spent = getattr(self._local, "spent", None)
        if spent is None:  # this thread's first call
            spent = self._local.spent = {}
        done = spent.get(kernel, 0)
        if done < 0 or done + n > PYTHON_ROW_BUDGET:
            spent[kernel] = -1  # compiled for good
            return False
        spent[kernel] = done + n
        return True


class RecordedLoss:
    """Equality, hashing and pickling of a loss by its ``to_dict()`` record, written once for every loss.

    Two losses are equal when they are of the same class with the same
    record (α, γ, Hessian policy); a pickle holds the record without its
    ``"loss"`` tag and rebuilds the loss through ``__init__``, so it is
    validated again on load.
    """

    __slots__ = ()

    def to_dict(self) -> dict:  # pragma: no cover - every loss defines it
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        record = self.to_dict()
        return hash((type(self), *(tuple(v) if isinstance(v, list) else v for v in record.values())))

    def __getstate__(self) -> dict:
        state = self.to_dict()
        del state["loss"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["alpha"], state["gamma"], hessian=state["hessian"])


class FocalLoss(RecordedLoss):
    r"""α-balanced focal loss for binary classification, in logit space.

    .. math::

        FL(z, y) = -\alpha_t (1 - p_t)^\gamma \log p_t,\qquad
        p = \sigma(z),\ p_t = p \text{ if } y = 1 \text{ else } 1 - p,\
        \alpha_t = \alpha \text{ if } y = 1 \text{ else } 1 - \alpha

    (Lin, Goyal, Girshick, He, Dollár, "Focal Loss for Dense Object
    Detection", ICCV 2017, arXiv:1708.02002). ``z`` is the raw margin that
    gradient-boosted trees add up; every derivative is taken with respect to
    it, analytically::

        dFL/dz   = -s α_t q^γ (γ p_t ℓ + q),         s = 2y - 1, q = 1 - p_t, ℓ = -log p_t
        d²FL/dz² =  α_t p_t q^γ (γ² p_t ℓ + (1 + 2γ) q - γ q ℓ)

    ``γ = 0`` gives α-balanced logloss; ``γ = 0, α = 0.5`` is half the
    logloss. Everything is computed from the stable log-sigmoid
    ``log1p(exp(-|z|))`` with one exponential per row, so margins of any
    finite size (±1e4 and beyond) give finite, correct values.

    Parameters
    ----------
    alpha : float in (0, 1), default 0.25
        Weight of the positive class (y = 1); the negative class gets
        ``1 - alpha``. The default 0.25 *down*-weights the (usually rare)
        positives: Lin et al. found it best with γ = 2, because the
        ``(1 - p_t)^γ`` factor already removes most of the weight of the many
        easy negatives. It is not a class weight: do not set it to the
        inverse class frequency.
    gamma : float >= 0, default 2.0
        Focusing parameter; any real value, not only integers. A row's loss
        is its logloss times ``α_t (1 - p_t)^γ``: with γ = 2 a row predicted
        right with p_t = 0.9 keeps 1% of its weight, a badly wrong one with
        p_t = 0.1 keeps 81%. γ = 0 is α-weighted logloss. The README's
        "Choosing α and γ" gives the benchmark's evidence and how to tune both.
    hessian : {"positive", "exact", "abs", "clip"}, default "positive"
        What the booster receives as the second derivative. The focal loss is
        not convex in ``z`` for γ > 0: its exact second derivative is negative
        for badly misclassified rows (γ = 2, y = 1: z < -2.79), and a tree
        learner needs positive Hessians (leaf value ``-G / (H + λ)``).

        - ``"positive"`` (default): the exact expression without its only
          negative term ``-γ q ℓ``, i.e. ``α_t p_t q^γ (γ² p_t ℓ + (1 + 2γ) q)``.
          It is never below the exact curvature (Newton steps are never
          longer than the exact ones where those are sane), is smooth, equals
          the exact value for γ = 0 and in the well-classified tail, and
          behaves like logloss's ``p (1 - p)`` for badly misclassified rows.
          Chosen on training-loss and validation evidence, see the README.
        - ``"exact"``: the true second derivative; can be negative. For
          research and tests, not for training trees.
        - ``"abs"``: ``|exact|``. Vanishes where the exact one crosses zero.
        - ``"clip"``: ``max(exact, floor)``.

        Every non-exact policy is floored at 1e-16 (before sample weights),
        as XGBoost floors ``binary:logistic``, so it is finite and > 0
        everywhere.

    Notes
    -----
    Arrays: ``y_true`` holds 0/1 labels, ``raw_prediction`` raw margins of
    dtype float32 or float64 (both engines' native types; contiguous input is
    never copied), ``sample_weight`` non-negative weights that scale loss,
    gradient and Hessian row by row. Outputs have the dtype of
    ``raw_prediction``. Arithmetic is float64, except that the gradient and
    Hessian of float32 margins (what XGBoost hands its objectives) are
    computed in float32, as XGBoost computes its own (3x faster): within
    1e-5 relative of the float64 values (1e-6 measured for γ = 2, 6e-6 for
    γ = 5).

    To train with it, hand it to an engine adapter: ``gbfocal.xgboost.train``
    / ``objective`` / ``metric`` / ``params``, ``gbfocal.lightgbm.train`` /
    ``objective`` / ``metric``, or ``gbfocal.dask``; the scikit-learn
    estimators :class:`~gbfocal.XGBFocalClassifier` and
    :class:`~gbfocal.LGBMFocalClassifier` build it from ``focal_alpha`` and
    ``focal_gamma``. ``gbfocal.xgboost.predict_posterior`` and
    ``gbfocal.lightgbm.predict_posterior`` apply :meth:`posterior` to a
    booster's margins.

    Examples
    --------
    >>> import numpy as np
    >>> from gbfocal import FocalLoss
    >>> loss = FocalLoss(alpha=0.25, gamma=2.0)
    >>> y = np.array([0.0, 1.0, 1.0, 0.0])  # labels 0/1, shape (n,)
    >>> z = np.array([-2.0, 0.5, -3.0, 4.0])  # raw margins, shape (n,)
    >>> loss.loss(y, z).round(4).tolist()  # per row: right and confident costs little
    [0.0014, 0.0169, 0.6916, 2.9062]
    >>> grad, hess = loss.gradient_hessian(y, z)  # with respect to z, each (n,) in z's dtype
    >>> grad.round(4).tolist()
    [0.0037, -0.0345, -0.2817, 0.8148]
    >>> bool((hess > 0).all())  # the default "positive" Hessian policy
    True
    >>> round(loss.init_score(y), 4)  # the constant margin boosting starts from
    -0.4104
    >>> loss.posterior(z).round(4).tolist()  # P(y = 1 | x); sigmoid(z) is not
    [0.0134, 0.9196, 0.0008, 1.0]

    γ = 0, α = 1/2 is half the logloss:

    >>> half = FocalLoss(alpha=0.5, gamma=0.0).loss(y, z)
    >>> bool(np.allclose(2 * half, np.logaddexp(0.0, -(2 * y - 1) * z)))
    True
    """

    __slots__ = ("_alpha", "_gamma", "_gamma_int", "_hessian", "_one_off", "_policy")

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, *, hessian: str = DEFAULT_HESSIAN) -> None:
        self._alpha = V.check_alpha(alpha)
        self._gamma = V.check_gamma(gamma)
        self._hessian = V.check_hessian(hessian, HESSIAN_POLICIES)
        self._policy = HESSIAN_POLICIES[hessian]
        g = self._gamma
        self._gamma_int = int(g) if g == int(g) and g <= 4 else -1  # multiply instead of exp(γ log q)
        self._one_off = PythonRowBudget()  # the one-off calls' Python rows (not part of the loss's value)

    # ------------------------------------------------------------------ properties
    @property
    def alpha(self) -> float:
        """Weight of the positive class."""
        return self._alpha

    @property
    def gamma(self) -> float:
        """Focusing parameter γ."""
        return self._gamma

    @property
    def hessian(self) -> str:
        """Name of the Hessian policy."""
        return self._hessian

    @property
    def n_outputs(self) -> int:
        """Margins per row: 1 (the engine adapters ask every loss; a K-class loss answers K)."""
        return 1

    @property
    def link(self) -> str:
        """``"logit"``: the margin is the log-odds (engines: ``binary:logistic``); softmax losses say ``"softmax"``."""
        return "logit"

    def prepared(
        self, y_true: np.ndarray, sample_weight: np.ndarray | None = None, n_classes: int | None = None
    ) -> PreparedRows:
        """The labels and weights of one data set, checked once, for an engine adapter's every round.

        ``n_classes`` is accepted for symmetry with
        :meth:`MulticlassFocalLoss.prepared`; it must be None or 2.
        """
        if n_classes is not None and n_classes != 2:
            raise ValueError(
                f"FocalLoss is binary (2 classes), got n_classes={n_classes!r}; use gbfocal.MulticlassFocalLoss"
            )
        return PreparedRows(y_true, sample_weight)

    def _elementwise(self) -> Any:
        """This loss applied to every element of a label matrix: a :class:`~gbfocal.MultilabelFocalLoss`."""
        from gbfocal._multilabel import MultilabelFocalLoss  # imported at call time: it imports this module

        return MultilabelFocalLoss(self._alpha, self._gamma, hessian=self._hessian)

    def to_dict(self) -> dict:
        """The loss as plain JSON-able data (what saved models record); :func:`loss_from_dict` inverts it."""
        return {"loss": "focal", "alpha": self._alpha, "gamma": self._gamma, "hessian": self._hessian}

    def __repr__(self) -> str:
        return f"FocalLoss(alpha={self._alpha!r}, gamma={self._gamma!r}, hessian={self._hessian!r})"

    # ------------------------------------------------------------------ public API
    def loss(
        self,
        y_true: np.ndarray,
        raw_prediction: np.ndarray,
        sample_weight: np.ndarray | None = None,
        loss_out: np.ndarray | None = None,
        n_threads: int | None = None,
    ) -> np.ndarray:
        """Per-row focal loss (times ``sample_weight``), shape ``(n,)``; ``(n, K)`` for a label matrix."""
        if _is_label_matrix(y_true):
            return self._elementwise().loss(y_true, raw_prediction, sample_weight, loss_out, n_threads)
        n_threads = V.check_n_threads(n_threads)
        y, z, w = self._check(y_true, raw_prediction, sample_weight)
        if loss_out is None:
            out = np.empty_like(z)
        else:
            out = V.check_out(loss_out, z, "loss_out")
            V.check_disjoint(out, "loss_out", y_true=y, raw_prediction=z, sample_weight=w)
        if self._in_python("loss_kernel", z.shape[0]):
            values = self._python_losses(y, z)
            out[...] = values * w if w.shape[0] else values
            return out
        cpu = _kernels()
        bad = cpu.run_chunked(cpu.loss_kernel, z.shape[0], (y, z, w, *self._params(), out), n_threads)
        V.report_non_finite(sum(bad))
        return out

    def gradient_hessian(
        self,
        y_true: np.ndarray,
        raw_prediction: np.ndarray,
        sample_weight: np.ndarray | None = None,
        gradient_out: np.ndarray | None = None,
        hessian_out: np.ndarray | None = None,
        n_threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian (under the policy) with respect to the raw margin.

        An ``(n, K)`` 0/1 label matrix with ``(n, K)`` margins is K binary
        problems (multi-label, RetinaNet's form): element-wise, with this α
        for every label and one weight per row, outputs ``(n, K)``; it is
        :class:`~gbfocal.MultilabelFocalLoss` with this loss's α, which also
        takes one α per label.

        Returns ``(gradient, hessian)``, each of shape ``(n,)`` and the dtype of
        ``raw_prediction``. Pass ``gradient_out``/``hessian_out`` to reuse
        buffers across boosting rounds: two separate arrays that share no
        memory with each other or with the inputs (refused otherwise, before
        anything is written). ``n_threads`` defaults to every core this
        process may use.

        Raises ``ValueError`` if a weight times the largest possible
        gradient/Hessian (:meth:`max_abs_derivative`) overflows the output
        dtype, as weights of ~1e38 do in float32.
        """
        if _is_label_matrix(y_true):
            return self._elementwise().gradient_hessian(
                y_true, raw_prediction, sample_weight, gradient_out, hessian_out, n_threads
            )
        n_threads = V.check_n_threads(n_threads)
        y, z, w = self._check(y_true, raw_prediction, sample_weight)
        grad = np.empty_like(z) if gradient_out is None else V.check_out(gradient_out, z, "gradient_out")
        hess = np.empty_like(z) if hessian_out is None else V.check_out(hessian_out, z, "hessian_out")
        inputs = {"y_true": y, "raw_prediction": z, "sample_weight": w}
        if gradient_out is not None:
            V.check_disjoint(grad, "gradient_out", hessian_out=hess, **inputs)
        if hessian_out is not None:
            V.check_disjoint(hess, "hessian_out", **inputs)
        if w.shape[0]:
            self._check_weight_range(V.weight_max(w), z.dtype)
        if self._in_python(_gradient_kernel_name(z.dtype), z.shape[0]):
            return self._gradient_hessian_python(y, z, w, grad, hess)
        return self._gradient_hessian_checked(y, z, w, grad, hess, n_threads)

    def mean_loss(
        self,
        y_true: np.ndarray,
        raw_prediction: np.ndarray,
        sample_weight: np.ndarray | None = None,
        n_threads: int | None = None,
    ) -> float:
        """Weighted mean focal loss ``Σ w FL / Σ w`` (no per-row array is made).

        Right for any finite weights: they are scaled by a power of two (exact)
        when their sums could overflow or lose precision to underflow. For an
        ``(n, K)`` label matrix, the weighted mean over rows and labels.
        """
        if _is_label_matrix(y_true):
            return self._elementwise().mean_loss(y_true, raw_prediction, sample_weight, n_threads)
        n_threads = V.check_n_threads(n_threads)
        y, z, w = self._check(y_true, raw_prediction, sample_weight)
        in_python = self._in_python("loss_sum_kernel", z.shape[0])
        return self._mean_loss_checked(y, z, _scaled(w)[0], n_threads, in_python)

    def init_score(self, y_true: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        """The constant margin that minimises the (weighted) focal loss.

        Boosting should start there, as the engines' own ``boost_from_average``
        does for logloss. Only the class weight totals matter, so this is
        :meth:`init_score_from_totals` of ``Σ w [y = 1]`` and ``Σ w [y = 0]``.
        For γ = 0 it is exactly the α-weighted log-odds
        ``log(α W₁ / ((1 - α) W₀))``.
        """
        y = V.as_labels(y_true)
        w = _or_empty(V.as_weights(sample_weight, y.shape[0]))
        return self.init_score_from_totals(*_scaled_class_totals(y, _scaled(w)[0]))

    def posterior(self, raw_prediction: np.ndarray, n_threads: int | None = None) -> np.ndarray:
        """Estimate of P(y = 1 | x) from focal-trained margins; float64, shape ``(n,)`` (``(n, K)`` per label).

        σ(margin) is *not* a probability estimate under focal loss: the loss
        is classification-calibrated but not strictly proper, so its minimiser
        is pulled towards 1/2 (under-confident) and α shifts it further. The
        focal-optimal margin z for a row with true posterior η solves
        ``η·dFL(z, 1)/dz + (1 - η)·dFL(z, 0)/dz = 0``, hence

            η(z) = G₀(z) / (G₀(z) + G₁(z)),  G₁ = -dFL(z, 1)/dz,  G₀ = dFL(z, 0)/dz

        (Charoenphakdee, Vongkulbhisal, Chairatanakul, Sugiyama, "On Focal
        Loss for Class-Posterior Probability Estimation: A Theoretical
        Perspective", CVPR 2021). It is computed in log space from the same
        log-sigmoid terms as the loss, exact at the extremes. γ = 0 gives the
        prior correction ``σ(z + log((1 - α)/α))``; γ = 0, α = 1/2 gives σ(z).
        η is strictly increasing in z (checked numerically for α in
        [0.01, 0.99] and γ in [0, 10]), so it preserves rankings.
        """
        if _is_label_matrix(raw_prediction):
            return self._elementwise().posterior(raw_prediction, n_threads)
        return self._posterior(raw_prediction, False, V.check_n_threads(n_threads))

    def posterior_margin(self, raw_prediction: np.ndarray, n_threads: int | None = None) -> np.ndarray:
        """``logit`` of :meth:`posterior`, without rounding through a probability."""
        return self._posterior(raw_prediction, True, V.check_n_threads(n_threads))

    def _posterior(self, raw_prediction, as_logit: bool, n_threads):
        z = V.as_margins(raw_prediction)
        V.report_non_finite(_count_non_finite(z))
        lam = _posterior_logits(z, self._alpha, self._gamma, n_threads)
        if as_logit:
            return lam
        # η = σ(λ), with the exponential of -|λ| only (never overflows)
        e = np.exp(-np.abs(lam))
        return np.where(lam >= 0.0, 1.0, e) / (1.0 + e)

    @staticmethod
    def class_weight_totals(y_true: np.ndarray, sample_weight: np.ndarray | None = None) -> tuple[float, float]:
        """``(Σ w over y = 1, Σ w over y = 0)``; sums of partitions add up (Dask).

        Summed with the weights scaled by a power of two (exact), so the totals
        are right whenever they are representable; a ``ValueError`` names
        ``sample_weight`` when a total exceeds the largest float64.
        """
        y = V.as_labels(y_true)
        w, scale = _scaled(_or_empty(V.as_weights(sample_weight, y.shape[0])))
        totals = tuple(t / scale for t in _scaled_class_totals(y, w))
        if not all(math.isfinite(t) for t in totals):
            raise ValueError(
                "sample_weight sums to more than the largest float64 within a class; divide sample_weight "
                "by a common factor (init_score and mean_loss depend only on the weights' ratios)"
            )
        return totals

    def init_score_from_totals(self, w_pos: float, w_neg: float) -> float:
        """The focal-optimal constant margin given the class weight totals.

        Minimises ``F(z) = W₁ FL(z, 1) + W₀ FL(z, 0)``. With ``G₁ = -dFL(z, 1)/dz``
        and ``G₀ = dFL(z, 0)/dz`` (both > 0), ``F' = W₀ G₀ - W₁ G₁`` has the sign of
        ``h(z) - log(W₁ / W₀)`` where ``h = log G₀ - log G₁`` is the logit of
        :meth:`posterior`: the minimiser is the focal-optimal margin for
        ``η = W₁ / (W₁ + W₀)``. ``h`` is evaluated in log space, so any positive
        finite totals (1e-300 against 1e300) work. ``F`` need not be convex for
        γ > 0, so every sign change of ``F'`` is located on a grid (step 0.25)
        that covers [-60, 60] and both tail asymptotes
        ``h(z) ≈ (γ + 1) z + log((1 - α)(γ + 1) / α)`` (z → -∞) and
        ``h(z) ≈ (γ + 1) z + log((1 - α) / (α (γ + 1)))`` (z → +∞), widened until
        ``F'`` changes sign inside; each is refined by bracketing to full
        precision, and the lowest ``F`` wins.
        """
        w_pos, w_neg = float(w_pos), float(w_neg)
        if not (math.isfinite(w_pos) and math.isfinite(w_neg)) or w_pos < 0 or w_neg < 0:
            raise ValueError(f"class weight totals must be finite and >= 0, got {w_pos!r}, {w_neg!r}")
        if w_pos == 0.0 or w_neg == 0.0:
            raise ValueError(
                "init_score needs both classes with positive total weight (the optimal constant is "
                f"infinite otherwise); got positive-class weight {w_pos!r} and negative-class weight {w_neg!r}"
            )
        a = self._alpha
        log_ratio = math.log(w_pos) - math.log(w_neg)  # no product that could underflow or overflow
        if self._gamma == 0.0:
            return log_ratio + math.log(a) - math.log1p(-a)
        return _minimise_constant(self, w_pos, w_neg, log_ratio)

    def max_abs_derivative(self) -> float:
        """An upper bound on |gradient| and |Hessian| (every policy) of an unweighted row.

        With ``p = p_t``, ``q = 1 - p_t``, ``ℓ = -log p_t``: ``q^γ <= 1``, ``q <= 1``
        and ``p ℓ <= 1/e``, so ``|dFL/dz| <= α_t (γ/e + 1)`` and
        ``|d²FL/dz²| <= α_t (γ²/e + (1 + 2γ) + γ/e)``; the bound is
        ``max(α, 1 - α) (γ²/e + (2 + 1/e) γ + 1)``.
        """
        g = self._gamma
        return max(self._alpha, 1.0 - self._alpha) * (g * g / math.e + (2.0 + 1.0 / math.e) * g + 1.0)

    # ------------------------------------------------------------------ internals
    def _params(self) -> tuple[float, float, int]:
        return self._alpha, self._gamma, self._gamma_int

    def _check_weight_range(self, w_max: float, dtype: np.dtype) -> None:
        """Refuse weights that would make a weighted output overflow ``dtype``."""
        bound = self.max_abs_derivative()
        largest = float(np.finfo(dtype).max)
        if w_max * bound * (1.0 + 1e-3) > largest:  # 1e-3: the rounding of float32 arithmetic
            raise ValueError(
                f"sample_weight up to {w_max:.3g} times this loss's largest possible gradient or Hessian "
                f"({bound:.3g}) overflows {np.dtype(dtype)} outputs (largest {largest:.3g}); divide "
                f"sample_weight by a common factor so that every weight is below {largest / bound / 1.001:.3g}"
            )

    def _check(self, y_true, raw_prediction, sample_weight):
        y = V.as_labels(y_true)
        z = V.as_margins(raw_prediction)
        V.check_same_length(y.shape[0], z, "raw_prediction")
        w = V.as_weights(sample_weight, y.shape[0])
        return y, z, _or_empty(w)

    def _in_python(self, kernel: str, n: int) -> bool:
        """Whether a one-off call on ``n`` rows runs in Python: small, and this loss's budget not spent."""
        return n <= ONE_OFF_PYTHON_ROWS and self._one_off.take(kernel, n)

    def _python_losses(self, y, z) -> np.ndarray:
        """Unweighted FL per row, float64, by :func:`gbfocal._formulas.loss_row` in Python; margins checked."""
        V.report_non_finite(_count_non_finite(z))
        rep = itertools.repeat
        args = (y.tolist(), z.tolist(), rep(self._alpha), rep(self._gamma), rep(self._gamma_int))
        return np.fromiter(map(F.loss_row, *args), np.float64, z.shape[0])

    def _gradient_hessian_python(self, y, z, w, grad, hess):
        """:meth:`_gradient_hessian_checked` by :func:`gbfocal._formulas.gradient_hessian_row` in Python.

        Arithmetic in float64 (libm's ``exp``/``log1p``), stored in the
        outputs' dtype: within a few float64 ulp of the float64 kernel and
        within the float32 kernel's 1e-5 of it. Margins are checked before
        anything is written.
        """
        V.report_non_finite(_count_non_finite(z))
        rep = itertools.repeat
        params = (rep(self._alpha), rep(self._gamma), rep(self._gamma_int), rep(self._policy))
        # flattened as they come: no tuple outlives its row, so a long loop never wakes the cyclic GC
        # (which, with an engine's objects in the heap, doubled the time per row; measured)
        pairs = itertools.chain.from_iterable(map(F.gradient_hessian_row, y.tolist(), z.tolist(), *params))
        gh = np.fromiter(pairs, np.float64, 2 * z.shape[0])
        g64, h64 = gh[0::2], gh[1::2]
        if w.shape[0]:
            g64 *= w
            h64 *= w
        grad[...] = g64
        hess[...] = h64
        return grad, hess

    def _gradient_hessian_checked(self, y, z, w, grad, hess, n_threads):
        """Into ``grad``/``hess`` (z's dtype, or float32 for float64 z: stored rounded); margins are checked.

        Skips label/weight/buffer validation (done once by the caller).
        """
        cpu = _kernels()
        if z.dtype == np.float32:  # float32 arithmetic, twice the vector lanes (see gbfocal._cpu)
            kernel, alpha, gamma = cpu.gradient_hessian_kernel32, np.float32(self._alpha), np.float32(self._gamma)
            y = y if y.dtype == np.float32 else y.astype(np.float32)
        else:
            kernel, alpha, gamma = cpu.gradient_hessian_kernel, self._alpha, self._gamma
        args = (y, z, w, alpha, gamma, self._gamma_int, self._policy, grad, hess)
        bad = cpu.run_chunked(kernel, z.shape[0], args, n_threads)
        V.report_non_finite(sum(bad))
        return grad, hess

    def _mean_loss_checked(self, y, z, w, n_threads, in_python: bool = False) -> float:
        """``Σ w FL / Σ w``; ``w`` already scaled (:func:`_scaled`) so that neither sum overflows.

        ``in_python``: by :func:`gbfocal._formulas.loss_row` in Python rather
        than the loss-sum kernel (see :class:`PythonRowBudget`).
        """
        if in_python:
            values = self._python_losses(y, z)
            if w.shape[0]:
                w64 = w.astype(np.float64, copy=False)
                total, wsum = float(np.dot(w64, values)), float(np.sum(w64))
            else:
                total, wsum = float(np.sum(values)), float(z.shape[0])
        else:
            cpu = _kernels()
            parts = cpu.run_chunked(cpu.loss_sum_kernel, z.shape[0], (y, z, w, *self._params()), n_threads)
            V.report_non_finite(sum(p[2] for p in parts))
            total, wsum = sum(p[0] for p in parts), sum(p[1] for p in parts)
        if wsum <= 0.0:
            raise ValueError("sample_weight sums to 0: the weighted mean loss is undefined")
        return total / wsum


def loss_types() -> tuple[type, ...]:
    """Every loss class the engine adapters take (binary first)."""
    from gbfocal._multiclass import MulticlassFocalLoss  # no import cycle: _multiclass does not import this

    return (FocalLoss, MulticlassFocalLoss)


def check_loss(loss: object, binary_only: bool = False, multilabel: bool = False) -> Any:
    """``loss`` itself if it is a gbfocal loss; the engine adapters' argument check.

    ``binary_only`` for the few paths that exist for the binary loss alone;
    ``multilabel`` where the engine grows trees with K outputs for a
    ``(n, K)`` label matrix (XGBoost), which a :class:`~gbfocal.MultilabelFocalLoss`
    needs: elsewhere it is refused with the scikit-learn route.
    """
    from gbfocal._multilabel import MultilabelFocalLoss  # no import cycle: imported at call time

    allowed = (FocalLoss,) if binary_only else loss_types()
    if multilabel and not binary_only:
        allowed = (*allowed, MultilabelFocalLoss)
    elif isinstance(loss, MultilabelFocalLoss):
        raise TypeError(
            "gbfocal.MultilabelFocalLoss needs an engine that trains one tree ensemble for K outputs (XGBoost: "
            "gbfocal.xgboost); here train one binary FocalLoss per label, e.g. "
            "sklearn.multioutput.MultiOutputClassifier(gbfocal.LGBMFocalClassifier(...))"
        )
    if not isinstance(loss, allowed):
        names = " or ".join(f"gbfocal.{t.__name__}" for t in allowed)
        raise TypeError(f"loss must be a {names}, got {type(loss).__name__}")
    return loss


def loss_from_dict(record: object, where: str = "the loss record") -> Any:
    """The loss of a ``to_dict`` record of any gbfocal loss (binary, multiclass, multi-label), every field checked.

    Raises ``ValueError`` naming ``where`` for anything that is not such a record.
    This is how a saved model's loss (the XGBoost attribute ``gbfocal_loss``, the
    LightGBM model-text line) is read back.

    Examples
    --------
    >>> from gbfocal import FocalLoss, loss_from_dict
    >>> record = FocalLoss(0.25, 2.0).to_dict()
    >>> record
    {'loss': 'focal', 'alpha': 0.25, 'gamma': 2.0, 'hessian': 'positive'}
    >>> loss_from_dict(record) == FocalLoss(0.25, 2.0)
    True
    """
    if not isinstance(record, dict):
        raise ValueError(f"{where} must be a dict written by gbfocal, got {type(record).__name__}")
    from gbfocal._multilabel import MultilabelFocalLoss

    by_name = {"focal": FocalLoss, "multiclass_focal": loss_types()[1], "multilabel_focal": MultilabelFocalLoss}
    keys = {"loss", "alpha", "gamma", "hessian"}
    if set(record) != keys or record["loss"] not in by_name:
        raise ValueError(f"{where} is not a gbfocal loss record (keys {sorted(keys)}, loss in {sorted(by_name)})")
    try:
        return by_name[record["loss"]](record["alpha"], record["gamma"], hessian=record["hessian"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} holds an invalid loss: {err}") from None


def focal_loss_of(estimator: object) -> FocalLoss:
    """The :class:`FocalLoss` of an estimator's ``focal_alpha``, ``focal_gamma`` and ``focal_hessian``.

    The scikit-learn estimators of every engine build their loss here, so a
    bad value raises an error that names the estimator's parameter.
    """
    alpha = V.check_alpha(estimator.focal_alpha, "focal_alpha")
    gamma = V.check_gamma(estimator.focal_gamma, "focal_gamma")
    hessian = V.check_hessian(estimator.focal_hessian, HESSIAN_POLICIES, "focal_hessian")
    return FocalLoss(alpha, gamma, hessian=hessian)


_EMPTY = np.empty(0, dtype=np.float64)


class ThreadBuffers:
    """Gradient/Hessian buffer pairs owned by one data set *and the calling thread*.

    The engine adapters hand these buffers to the engine, which copies them
    after the objective returns; several threads training on one data set at
    once (``xgb.train`` in a thread pool, Dask workers) must therefore never
    share a pair. Each thread gets its own, reused on its next call; a
    thread's buffers are freed when it ends. Shared by every prepared-rows
    class, binary and multiclass.
    """

    __slots__ = ("_local",)

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, key: object, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:  # first call from this thread
            buffers = self._local.buffers = {}
        bufs = buffers.get(key)
        if bufs is None:
            bufs = buffers[key] = (np.empty(shape, dtype), np.empty(shape, dtype))
        return bufs


class PreparedRows:
    """Labels and weights of one data set, validated and converted once.

    Engine adapters keep one per training/validation set, so a boosting round
    only runs the kernel: no label checks, no conversions, and the gradient
    and Hessian buffers are reused (one pair per margin dtype and calling
    thread: several threads may train on one data set at once, as
    ``xgb.train`` in a thread pool or Dask workers do, and each gets buffers
    of its own; a thread's buffers are freed when it ends).
    """

    __slots__ = ("_local", "_lock", "_python", "_w_mean", "_y32", "n_rows", "w", "w_max", "y")

    def __init__(self, y_true: np.ndarray, sample_weight: np.ndarray | None = None) -> None:
        self.y = V.as_labels(y_true)
        self.n_rows = self.y.shape[0]
        self.w = _or_empty(V.as_weights(sample_weight, self.n_rows))
        self._setup()

    def _setup(self) -> None:
        self.w_max = V.weight_max(self.w)
        self._w_mean = _scaled(self.w)[0]  # for Σ w FL / Σ w: the weights scaled by a power of two
        self._y32: np.ndarray | None = None  # float32 labels, made on first use of float32 margins
        self._lock = threading.Lock()
        self._local = ThreadBuffers()  # per thread: {(margin dtype, output dtype): (gradient, Hessian)}
        self._python = PythonRowBudget()  # the first rounds run in Python, the rest compiled

    def __getstate__(self) -> dict:
        return {"y": self.y, "w": self.w}

    def __setstate__(self, state: dict) -> None:
        self.y, self.w, self.n_rows = state["y"], state["w"], state["y"].shape[0]
        self._setup()

    def margins(self, raw_prediction: np.ndarray) -> np.ndarray:
        z = V.as_margins(raw_prediction)
        V.check_same_length(self.n_rows, z, "raw_prediction")
        return z

    def gradient_hessian(
        self,
        loss: FocalLoss,
        raw_prediction: np.ndarray,
        n_threads: int | None = None,
        out_dtype: type | np.dtype | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``loss.gradient_hessian`` into buffers owned by this object and the calling thread.

        The buffers are overwritten by the same thread's next call (never by
        another thread's). ``out_dtype=np.float32`` with float64 margins
        computes in float64 and stores the results rounded to float32, for an
        engine that converts gradients to float32 anyway (LightGBM): the same
        values, without the engine's copy. Default: the margins' dtype.
        """
        n_threads = V.check_n_threads(n_threads)
        z = self.margins(raw_prediction)
        out = z.dtype if out_dtype is None else np.dtype(out_dtype)
        if out not in (z.dtype, np.dtype(np.float32)):
            raise ValueError(f"out_dtype must be None, float32 or the margins' dtype {z.dtype}, got {out}")
        if self.w.shape[0]:
            loss._check_weight_range(self.w_max, out)
        bufs = self._local.get((z.dtype, out), z.shape, out)
        if self._python.take(_gradient_kernel_name(z.dtype), self.n_rows):
            return loss._gradient_hessian_python(self.y, z, self.w, bufs[0], bufs[1])
        return loss._gradient_hessian_checked(self._labels(z.dtype), z, self.w, bufs[0], bufs[1], n_threads)

    def _labels(self, dtype: np.dtype) -> np.ndarray:
        """The labels in the kernel's dtype (float32 for float32 margins), converted once."""
        if dtype != np.float32:
            return self.y
        y32 = self._y32
        if y32 is None:
            with self._lock:  # one conversion even when several threads start at once
                if self._y32 is None:
                    self._y32 = self.y.astype(np.float32)
                y32 = self._y32
        return y32

    def mean_loss(self, loss: FocalLoss, raw_prediction: np.ndarray, n_threads: int | None = None) -> float:
        """``loss.mean_loss`` without re-validating labels and weights."""
        n_threads = V.check_n_threads(n_threads)
        z = self.margins(raw_prediction)
        in_python = self._python.take("loss_sum_kernel", self.n_rows)
        return loss._mean_loss_checked(self.y, z, self._w_mean, n_threads, in_python)

    def init_score(self, loss: FocalLoss) -> float:
        """``loss.init_score`` of these labels and weights."""
        return loss.init_score_from_totals(*_scaled_class_totals(self.y, self._w_mean))


def _is_label_matrix(a: object) -> bool:
    """An ``(n, K)`` array with K > 1: multi-label labels or margins."""
    return np.ndim(a) == 2 and np.shape(a)[1] > 1


def _or_empty(w: np.ndarray | None) -> np.ndarray:
    return _EMPTY if w is None else w


def _count_non_finite(z: np.ndarray) -> int:
    return z.shape[0] - int(np.count_nonzero(np.isfinite(z)))


def _gradient_kernel_name(dtype: np.dtype) -> str:
    """The compiled kernel a gradient call on margins of ``dtype`` would use: its budget account."""
    return "gradient_hessian_kernel32" if dtype == np.float32 else "gradient_hessian_kernel"


#: Weights whose largest value lies in [2**-_SAFE_EXPONENT, 2**_SAFE_EXPONENT]
#: are summed as they are: their sums over up to 2**60 rows, and their
#: products with losses down to 1e-100, stay normal float64 numbers.
_SAFE_EXPONENT = 600


def _scaled(w: np.ndarray) -> tuple[np.ndarray, float]:
    """``(w * s, s)`` with ``s`` a power of two bringing ``max(w)`` into [1/2, 1), or ``(w, 1.0)``.

    Scaling by a power of two is exact, so ``Σ s w FL / Σ s w`` is bit for
    bit the unscaled ratio wherever that one does not overflow; ``s`` is
    only applied (a copy) when ``max(w)`` lies outside ``2**±600``.
    """
    if not w.shape[0]:
        return w, 1.0
    w_max = float(w.max())
    if w_max == 0.0:
        return w, 1.0
    exponent = math.frexp(w_max)[1]
    if -_SAFE_EXPONENT <= exponent <= _SAFE_EXPONENT:
        return w, 1.0
    scale = math.ldexp(1.0, -max(exponent, -1023))  # 2**1023 at most: representable
    return w * scale, scale


def _scaled_class_totals(y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """``(Σ w [y = 1], Σ w [y = 0])`` of already scaled weights (see :func:`_scaled`).

    Two separate sums: Σ w - Σ w[y = 1] would lose the small class's total to
    cancellation (and overflow first). NumPy, not a kernel: read once per data
    set, memory-bound, and not worth a compilation on first use.
    """
    pos = y > 0.5
    if not w.shape[0]:
        n_pos = int(np.count_nonzero(pos))
        return float(n_pos), float(y.shape[0] - n_pos)  # exact: integer counts below 2**53
    return float(np.sum(w, where=pos)), float(np.sum(w, where=~pos))


#: Arrays up to this many margins get their posterior from Python arithmetic
#: (~1.3 µs a row, so 20 ms at most) instead of a kernel, whose first use in a
#: process costs a compilation (0.2 s) or a cache load (10 ms).
_PYTHON_POSTERIOR_ROWS = 16384


def _posterior_logits(z: np.ndarray, alpha: float, gamma: float, n_threads: int | None) -> np.ndarray:
    """:func:`gbfocal._formulas.posterior_logit` of finite margins, shape ``(n,)`` float64.

    Small arrays run the formula in Python, large ones in the compiled kernel;
    both round the same way, bit for bit (see ``posterior_logit_kernel``).
    """
    if z.shape[0] <= _PYTHON_POSTERIOR_ROWS:
        return np.array([F.posterior_logit(zi, alpha, gamma) for zi in z.tolist()], dtype=np.float64)
    cpu = _kernels()
    z = z.astype(np.float64, copy=False)  # one specialisation to compile, for either margin dtype
    out = np.empty(z.shape[0], dtype=np.float64)
    cpu.run_chunked(cpu.posterior_logit_kernel, z.shape[0], (z, alpha, gamma, out), n_threads)
    return out


#: Grid step (in margin units) on which sign changes of F' are looked for.
_GRID_STEP = 0.25


def _minimise_constant(loss: FocalLoss, w_pos: float, w_neg: float, log_ratio: float) -> float:
    """The global minimiser of ``W₁ FL(z, 1) + W₀ FL(z, 0)`` (γ > 0); see ``init_score_from_totals``."""
    a, g = loss.alpha, loss.gamma

    def slope_sign(z: np.ndarray) -> np.ndarray:
        """``h(z) - log(W₁/W₀)``: the sign of F'(z), computed in log space."""
        return _posterior_logits(z, a, g, 1) - log_ratio

    # where h(z) = log(W₁/W₀) on each tail asymptote
    tail_neg = (log_ratio - math.log((1.0 - a) * (g + 1.0) / a)) / (g + 1.0)
    tail_pos = (log_ratio - math.log((1.0 - a) / (a * (g + 1.0)))) / (g + 1.0)
    lo = min(-60.0, tail_neg, tail_pos) - 4.0
    hi = max(60.0, tail_neg, tail_pos) + 4.0
    for _ in range(64):  # widen until F' < 0 at lo and > 0 at hi (h grows like (γ + 1) z in both tails)
        ends = slope_sign(np.array([lo, hi]))
        if ends[0] < 0.0 < ends[1]:
            break
        width = hi - lo
        lo, hi = (lo - width if ends[0] >= 0.0 else lo), (hi + width if ends[1] <= 0.0 else hi)
    else:  # pragma: no cover - h is finite and tends to ±inf; kept as a guard
        raise RuntimeError(f"init_score: no sign change of the derivative found in [{lo!r}, {hi!r}]")
    grid = np.linspace(lo, hi, math.ceil((hi - lo) / _GRID_STEP) + 1)
    d = slope_sign(grid)
    # local minima of F: F' goes from < 0 to >= 0
    starts = np.flatnonzero((d[:-1] < 0.0) & (d[1:] >= 0.0))
    candidates = [_refine_root(slope_sign, float(grid[k]), float(grid[k + 1])) for k in starts]
    if len(candidates) == 1:
        return candidates[0]
    z = np.array(candidates)
    top = max(w_pos, w_neg)  # F / top: no overflow; ties broken on the values the engines would see
    values = (w_pos / top) * loss.loss(np.ones_like(z), z) + (w_neg / top) * loss.loss(np.zeros_like(z), z)
    return candidates[int(np.argmin(values))]


def _refine_root(f, lo: float, hi: float) -> float:
    """The root of increasing-through-zero ``f`` in [lo, hi] (f(lo) < 0 <= f(hi)), to the last bit.

    Each step evaluates ``f`` on 64 points of the bracket at once (one kernel
    call), shrinking it 64-fold; at the end the endpoint with the smaller
    ``|f|`` is returned.
    """
    f_lo, f_hi = float(f(np.array([lo]))[0]), float(f(np.array([hi]))[0])
    for _ in range(40):
        if f_hi == 0.0:
            return hi
        pts = np.linspace(lo, hi, 65)[1:-1]
        pts = pts[(pts > lo) & (pts < hi)]
        if pts.size == 0:  # adjacent floats
            break
        vals = f(pts)
        past = vals >= 0.0
        k = int(np.argmax(past)) if past.any() else pts.size  # first point at or past the root
        if k > 0:
            lo, f_lo = float(pts[k - 1]), float(vals[k - 1])
        if k < pts.size:
            hi, f_hi = float(pts[k]), float(vals[k])
    return lo if abs(f_lo) < abs(f_hi) else hi
