"""The user-facing :class:`MultilabelFocalLoss`: one sigmoid focal loss per label, as RetinaNet trains it.

There is no new math here. Lin et al.'s detector trains K independent
sigmoid classifiers with the binary α-balanced focal loss and sums their
losses; so does this class, element by element over an ``(n, K)`` label
matrix, with the binary loss's own code (:class:`~gbfocal.FocalLoss`, its
kernels and its Python path) run on the raveled ``n K`` elements. A
per-label α reaches the binary kernel, whose α is one number, through the
element weights: ``α_t FL₀.₅ / (1/2)`` is ``FL_α`` (``FL`` is linear in
``α_t``), so the kernel runs with α = 1/2 and element weights
``2 α_t(i, k) w_i``, built once per data set in
:class:`MultilabelPreparedRows`.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gbfocal import _validation as V
from gbfocal._loss import DEFAULT_HESSIAN, HESSIAN_POLICIES, FocalLoss, PreparedRows, RecordedLoss, _scaled

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------- input checks


def _check_label_alpha(alpha: object, name: str = "alpha") -> float | tuple[float, ...]:
    """One α in (0, 1) for every label, or a sequence of K >= 2 of them (one per label column)."""
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        return V.check_alpha(alpha, name)
    if isinstance(alpha, (str, bytes)) or not isinstance(alpha, (Sequence, np.ndarray)):
        raise TypeError(
            f"{name} must be a float in (0, 1) (every label) or a sequence of one float in (0, 1) per label, "
            f"got {type(alpha).__name__} {alpha!r}"
        )
    values = tuple(V.check_alpha(a, f"{name}[{k}]") for k, a in enumerate(np.asarray(alpha, dtype=object).ravel()))
    if np.ndim(alpha) != 1 or len(values) < 2:
        raise ValueError(
            f"{name} must be one float or a flat sequence of K >= 2 per-label values, got {np.shape(alpha)} values; "
            "for a single label use gbfocal.FocalLoss"
        )
    return values


def as_label_matrix(y: object, name: str = "y_true") -> np.ndarray:
    """Labels as a C-contiguous ``(n, K)`` float64 array of 0/1 indicators, K >= 2 (no copy if already so)."""
    if y is None:
        raise TypeError(f"{name} is required, got None")
    arr = np.asarray(y)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (n, K) 0/1 indicator matrix, one column per label, got an array of shape "
            f"{arr.shape}; for one 0/1 label per row use gbfocal.FocalLoss"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: at least one row is needed")
    if arr.shape[1] < 2:
        raise ValueError(
            f"{name} has {arr.shape[1]} label column(s); a multi-label loss needs K >= 2 (for one label use "
            "gbfocal.FocalLoss on y[:, 0])"
        )
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold numeric 0/1 indicators, got dtype {arr.dtype}; binarise labels first, e.g. with "
            "sklearn.preprocessing.MultiLabelBinarizer"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    ok = (arr == 0.0) | (arr == 1.0)
    if not ok.all():
        columns = np.flatnonzero(~ok.all(axis=0))[:5].tolist()
        values = np.unique(arr[~ok])[:5].tolist()
        raise ValueError(
            f"{name} must contain only 0 and 1 (label absent/present), found {values} in label column(s) {columns}"
        )
    return arr


def as_margin_matrix(z: object, name: str = "raw_prediction") -> np.ndarray:
    """Raw margins as a C-contiguous ``(n, K)`` float32/float64 array; such input is not copied."""
    if z is None:
        raise TypeError(f"{name} is required, got None")
    arr = np.asarray(z)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D, one margin per label, shape (n, K), got an array of shape {arr.shape}; "
            "reshape a flat array with .reshape(n_rows, K)"
        )
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array of raw margins (logits), got dtype {arr.dtype}")
    if arr.dtype not in _FLOAT_DTYPES:
        arr = arr.astype(np.float64)
    return np.ascontiguousarray(arr)


def _check_same_shape(y: np.ndarray, z: np.ndarray, name: str = "raw_prediction") -> None:
    if z.shape != y.shape:
        raise ValueError(
            f"{name} has shape {z.shape} but the labels have shape {y.shape}; they must match element for element "
            "(one margin per row and label)"
        )


# --------------------------------------------------------------------------- the loss


class MultilabelFocalLoss(RecordedLoss):
    r"""Multi-label α-balanced focal loss: K independent sigmoid focal losses, one per label.

    .. math::

        FL(Z, Y) = \frac{1}{K} \sum_{k=1}^{K} -\alpha_{t,k} (1 - p_{t,k})^\gamma \log p_{t,k},\qquad
        p_k = \sigma(z_k),\ p_{t,k} = p_k \text{ if } y_k = 1 \text{ else } 1 - p_k,\
        \alpha_{t,k} = \alpha_k \text{ if } y_k = 1 \text{ else } 1 - \alpha_k

    for a row with margins ``z ∈ R^K`` and 0/1 labels ``y ∈ {0, 1}^K``: the
    loss with which Lin, Goyal, Girshick, He and Dollár train RetinaNet's K
    sigmoid classifiers ("Focal Loss for Dense Object Detection", ICCV 2017,
    arXiv:1708.02002). Element ``(i, k)`` is exactly the binary
    :class:`~gbfocal.FocalLoss` of ``(y_ik, z_ik)`` with α = α_k: same
    formulas, derivatives, Hessian policies and numerics (the binary kernels
    run on the raveled elements), so the gradient and Hessian with respect to
    ``z_ik`` are the binary ones, and each label's margin is a column of an
    ``(n, K)`` array (what XGBoost hands a custom objective for a
    ``(n, K)`` label matrix).

    Parameters
    ----------
    alpha : float in (0, 1), or sequence of K floats in (0, 1), default 0.25
        Weight of the positive class of every label, or of each label
        (``alpha[k]`` for column k; then K is fixed to ``len(alpha)``).
    gamma : float >= 0, default 2.0
        Focusing parameter, shared by the labels.
    hessian : {"positive", "exact", "abs", "clip"}, default "positive"
        The binary loss's Hessian policies (see :class:`~gbfocal.FocalLoss`).

    Notes
    -----
    Arrays: ``y_true`` is ``(n, K)`` of 0/1, ``raw_prediction`` ``(n, K)``
    float32 or float64 margins (C-contiguous input is not copied),
    ``sample_weight`` ``(n,)``: one weight per *row*, applied to each of its
    K labels. Elementwise outputs are ``(n, K)`` in the margins' dtype.
    :meth:`mean_loss` is the weighted mean over rows and labels,
    ``Σ_i w_i Σ_k FL_ik / (K Σ_i w_i)``.

    With different per-label α the binary kernel runs at α = 1/2 with element
    weights ``2 α_t w`` (``FL`` is linear in ``α_t``): the values agree with
    ``FocalLoss(alpha[k])`` column by column to rounding, except that the
    Hessian floor 1e-16 (reached only where σ has saturated) is scaled by
    ``2 α_t`` too. A single α (or K equal ones) runs the binary kernel with
    that α, bit for bit ``FocalLoss(alpha)`` on the raveled arrays.
    """

    __slots__ = ("_alpha", "_alpha_arr", "_binary", "_per_label")

    def __init__(
        self,
        alpha: float | Sequence[float] | np.ndarray = 0.25,
        gamma: float = 2.0,
        *,
        hessian: str = DEFAULT_HESSIAN,
    ) -> None:
        # every argument is checked before any attribute is set, so a refused
        # __init__/__setstate__ leaves an existing object as it was
        checked = _check_label_alpha(alpha)
        g = V.check_gamma(gamma)
        h = V.check_hessian(hessian, HESSIAN_POLICIES)
        uniform = checked if isinstance(checked, float) else (checked[0] if len(set(checked)) == 1 else None)
        binary = FocalLoss(0.5 if uniform is None else uniform, g, hessian=h)
        self._alpha = checked
        self._alpha_arr = None if isinstance(checked, float) else np.array(checked, dtype=np.float64)
        self._binary = binary
        self._per_label = uniform is None  # the kernel runs at α = 1/2 with element weights 2 α_t w

    # ------------------------------------------------------------------ properties
    @property
    def alpha(self) -> float | tuple[float, ...]:
        """The positive-class weight of every label (float), or of each label (tuple of K)."""
        return self._alpha

    @property
    def gamma(self) -> float:
        """Focusing parameter γ."""
        return self._binary.gamma

    @property
    def hessian(self) -> str:
        """Name of the Hessian policy."""
        return self._binary.hessian

    @property
    def n_outputs(self) -> int | None:
        """Margins per row, K: ``len(alpha)``, or None until the labels say (one α for every label)."""
        return None if self._alpha_arr is None else self._alpha_arr.shape[0]

    @property
    def link(self) -> str:
        """``"logit"``: each margin is a label's log-odds on its own (engines: ``binary:logistic`` per output)."""
        return "logit"

    def to_dict(self) -> dict:
        """The loss as plain JSON-able data (what saved models record); ``gbfocal.loss_from_dict`` inverts it."""
        alpha = self._alpha if isinstance(self._alpha, float) else list(self._alpha)
        return {"loss": "multilabel_focal", "alpha": alpha, "gamma": self.gamma, "hessian": self.hessian}

    def __repr__(self) -> str:
        d = self.to_dict()
        return f"MultilabelFocalLoss(alpha={d['alpha']!r}, gamma={d['gamma']!r}, hessian={d['hessian']!r})"

    # ------------------------------------------------------------------ public API
    def loss(
        self,
        y_true: np.ndarray,
        raw_prediction: np.ndarray,
        sample_weight: np.ndarray | None = None,
        loss_out: np.ndarray | None = None,
        n_threads: int | None = None,
    ) -> np.ndarray:
        """Element-wise focal loss ``w_i FL(z_ik, y_ik; α_k)``, shape ``(n, K)``, the margins' dtype."""
        y, z, w = self._check(y_true, raw_prediction, sample_weight)
        out = None if loss_out is None else V.check_out(loss_out, z, "loss_out").reshape(-1)
        e = _element_weights(self, y, w)
        return self._binary.loss(y.reshape(-1), z.reshape(-1), e, out, n_threads).reshape(z.shape)

    def gradient_hessian(
        self,
        y_true: np.ndarray,
        raw_prediction: np.ndarray,
        sample_weight: np.ndarray | None = None,
        gradient_out: np.ndarray | None = None,
        hessian_out: np.ndarray | None = None,
        n_threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian (under the policy) with respect to every margin ``z_ik``, each ``(n, K)``.

        Element ``(i, k)`` is :meth:`FocalLoss.gradient_hessian` of
        ``(y_ik, z_ik)`` with α = α_k, times ``w_i``. ``gradient_out`` /
        ``hessian_out`` (``(n, K)``, the margins' dtype, C-contiguous, sharing
        no memory with each other or the inputs) are filled instead of new
        arrays.
        """
        y, z, w = self._check(y_true, raw_prediction, sample_weight)
        grad = None if gradient_out is None else V.check_out(gradient_out, z, "gradient_out").reshape(-1)
        hess = None if hessian_out is None else V.check_out(hessian_out, z, "hessian_out").reshape(-1)
        e = _element_weights(self, y, w)
        g, h = self._binary.gradient_hessian(y.reshape(-1), z.reshape(-1), e, grad, hess, n_threads)
        return g.reshape(z.shape), h.reshape(z.shape)

    def mean_loss(
        self,
        y_true: np.ndarray,
        raw_prediction: np.ndarray,
        sample_weight: np.ndarray | None = None,
        n_threads: int | None = None,
    ) -> float:
        """Weighted mean over rows and labels, ``Σ_i w_i Σ_k FL_ik / (K Σ_i w_i)``."""
        y, z, w = self._check(y_true, raw_prediction, sample_weight)
        e = _element_weights(self, y, w)
        mean = self._binary.mean_loss(y.reshape(-1), z.reshape(-1), e, n_threads)
        return mean * _mean_factor(self, y, w)

    def class_weight_totals(self, y_true: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
        """Per label ``(Σ w [y_k = 1], Σ w [y_k = 0])``, shape ``(K, 2)``; totals of partitions add up (Dask).

        Summed with the weights scaled by a power of two (exact); a
        ``ValueError`` names ``sample_weight`` when a total exceeds float64.
        """
        y = as_label_matrix(y_true)
        w, scale = _scaled(_or_empty(V.as_weights(sample_weight, y.shape[0])))
        totals = _label_totals(y, w) / scale
        if not np.isfinite(totals).all():
            raise ValueError(
                "sample_weight sums to more than the largest float64 within a label's class; divide sample_weight "
                "by a common factor (init_score and mean_loss depend only on the weights' ratios)"
            )
        return totals

    def init_score(self, y_true: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
        """The focal-optimal constant margin of each label, shape ``(K,)``.

        Label k's is :meth:`FocalLoss.init_score` of column k with α_k: the
        labels' losses are separate, so the constant vector minimising their
        sum minimises each. Every label column needs both classes with
        positive weight (else its optimal constant is infinite).
        """
        y = as_label_matrix(y_true)
        w = _or_empty(V.as_weights(sample_weight, y.shape[0]))
        return self.init_score_from_totals(_label_totals(y, _scaled(w)[0]))

    def init_score_from_totals(self, totals: np.ndarray) -> np.ndarray:
        """Per-label focal-optimal constant margins, ``(K,)``, from the ``(K, 2)`` totals ``(W₁, W₀)``.

        See :meth:`FocalLoss.init_score_from_totals` (one label at a time).
        """
        t = np.asarray(totals, dtype=np.float64)
        if t.ndim != 2 or t.shape[1] != 2 or t.shape[0] < 2:
            raise ValueError(f"totals must have shape (K, 2), K >= 2: (W₁, W₀) per label, got shape {t.shape}")
        alphas = self._alphas(t.shape[0], "the labels")
        if not np.isfinite(t).all() or (t < 0).any():
            raise ValueError(f"label weight totals must be finite and >= 0, got {t.tolist()!r}")
        single = np.flatnonzero((t == 0.0).any(axis=1))
        if single.size:
            raise ValueError(
                f"label column(s) {single[:10].tolist()} hold a single class (every row 0, or every row 1, once "
                "weighted): the focal-optimal start is infinite and there is nothing to learn; drop those "
                "columns or add rows of the missing class"
            )
        g, h = self.gamma, self.hessian
        return np.array(
            [
                FocalLoss(a, g, hessian=h).init_score_from_totals(w1, w0)
                for a, (w1, w0) in zip(alphas, t.tolist(), strict=True)
            ],
            dtype=np.float64,
        )

    def posterior(self, raw_prediction: np.ndarray, n_threads: int | None = None) -> np.ndarray:
        """Estimate of P(y_k = 1 | x) of each label, float64 ``(n, K)``: :meth:`FocalLoss.posterior` per column.

        σ(margin) is pulled towards 1/2 by the focal loss and shifted by α;
        the labels are separate losses, so each column's focal-optimal
        margin depends on that label's posterior alone and
        ``η_k(z) = G₀(z) / (G₀(z) + G₁(z))`` with α_k inverts it
        (Charoenphakdee et al., CVPR 2021). Rows do not sum to 1.
        """
        return self._posterior(raw_prediction, False, n_threads)

    def posterior_margin(self, raw_prediction: np.ndarray, n_threads: int | None = None) -> np.ndarray:
        """``logit`` of :meth:`posterior`, ``(n, K)``, without rounding through a probability."""
        return self._posterior(raw_prediction, True, n_threads)

    def max_abs_derivative(self) -> float:
        """An upper bound on every |gradient| and |Hessian| element of an unweighted row (the largest α's)."""
        alphas = (self._alpha,) if isinstance(self._alpha, float) else self._alpha
        worst = max(alphas, key=lambda a: max(a, 1.0 - a))
        return FocalLoss(worst, self.gamma, hessian=self.hessian).max_abs_derivative()

    def prepared(
        self, y_true: np.ndarray, sample_weight: np.ndarray | None = None, n_classes: int | None = None
    ) -> MultilabelPreparedRows:
        """The labels and weights of one data set, checked once, for an engine adapter's every round.

        ``n_classes`` (the adapters' name for the margins' width) is the
        number of label columns K if given; it must match ``y_true`` and
        ``alpha``.
        """
        rows = MultilabelPreparedRows(y_true, sample_weight, n_classes)
        self._alphas(rows.n_outputs, "the labels")
        return rows

    # ------------------------------------------------------------------ internals
    def _alphas(self, n_labels: int, what: str = "raw_prediction") -> np.ndarray:
        """α_k for K = ``n_labels`` label columns, shape ``(K,)``; a wrong length names ``alpha``."""
        if self._alpha_arr is None:
            return np.full(n_labels, self._alpha)
        if self._alpha_arr.shape[0] != n_labels:
            raise ValueError(
                f"alpha has {self._alpha_arr.shape[0]} per-label values but {what} have K = {n_labels} label "
                "columns; give one alpha per label column, or one float for every label"
            )
        return self._alpha_arr

    def _check(self, y_true, raw_prediction, sample_weight):
        y = as_label_matrix(y_true)
        z = as_margin_matrix(raw_prediction)
        _check_same_shape(y, z)
        self._alphas(y.shape[1], "the labels")
        w = V.as_weights(sample_weight, y.shape[0])
        return y, z, _or_empty(w)

    def _posterior(self, raw_prediction, as_logit: bool, n_threads):
        z = as_margin_matrix(raw_prediction)
        if z.shape[1] < 2:
            raise ValueError(f"raw_prediction must have K >= 2 label columns, got shape {z.shape}")
        alphas = self._alphas(z.shape[1])
        method = "posterior_margin" if as_logit else "posterior"
        if not self._per_label:
            flat = getattr(self._binary, method)(z.reshape(-1), n_threads)
            return flat.reshape(z.shape)
        out = np.empty(z.shape, dtype=np.float64)
        g = self.gamma
        for k, a in enumerate(alphas.tolist()):
            column = np.ascontiguousarray(z[:, k])
            out[:, k] = getattr(FocalLoss(a, g, hessian=self.hessian), method)(column, n_threads)
        return out


class MultilabelPreparedRows:
    """Labels and row weights of one ``(n, K)`` multi-label data set, validated and converted once.

    The multi-label twin of :class:`~gbfocal.PreparedRows`, which it wraps:
    the labels raveled to ``n K`` elements and the element weights (``w_i``
    repeated over the labels, times ``2 α_t`` for per-label α) are built once
    per α, so each round runs the binary kernel (or, for the first rounds,
    its Python formulas) into buffers owned per thread, returned as ``(n, K)``
    views.
    """

    __slots__ = ("_by_alpha", "_lock", "_w_mean", "n_outputs", "n_rows", "w", "y")

    def __init__(self, y_true: np.ndarray, sample_weight: np.ndarray | None = None, n_labels: int | None = None):
        y = as_label_matrix(y_true)
        if n_labels is not None and n_labels != y.shape[1]:
            raise ValueError(
                f"the margins have {n_labels} columns but the labels have K = {y.shape[1]} label columns; "
                "they must match"
            )
        self.y = y
        self.n_rows, self.n_outputs = y.shape
        self.w = _or_empty(V.as_weights(sample_weight, self.n_rows))
        self._setup()

    def _setup(self) -> None:
        self._w_mean = _scaled(self.w)[0]  # for the label totals: the weights scaled by a power of two
        self._by_alpha: dict = {}  # alpha key -> (binary PreparedRows of the raveled elements, mean factor)
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"y": self.y, "w": self.w}

    def __setstate__(self, state: dict) -> None:
        self.y, self.w = state["y"], state["w"]
        self.n_rows, self.n_outputs = self.y.shape
        self._setup()

    def margins(self, raw_prediction: np.ndarray) -> np.ndarray:
        z = as_margin_matrix(raw_prediction)
        _check_same_shape(self.y, z)
        return z

    def gradient_hessian(
        self,
        loss: MultilabelFocalLoss,
        raw_prediction: np.ndarray,
        n_threads: int | None = None,
        out_dtype: type | np.dtype | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``loss.gradient_hessian`` into ``(n, K)`` buffers owned by this object and the calling thread.

        Overwritten by the same thread's next call; ``out_dtype`` as in
        :meth:`PreparedRows.gradient_hessian`.
        """
        z = self.margins(raw_prediction)
        rows, _ = self._elements(loss)
        g, h = rows.gradient_hessian(loss._binary, z.reshape(-1), n_threads, out_dtype)
        return g.reshape(z.shape), h.reshape(z.shape)

    def mean_loss(self, loss: MultilabelFocalLoss, raw_prediction: np.ndarray, n_threads: int | None = None) -> float:
        """``loss.mean_loss`` (over rows and labels) without re-validating labels and weights."""
        z = self.margins(raw_prediction)
        rows, factor = self._elements(loss)
        return rows.mean_loss(loss._binary, z.reshape(-1), n_threads) * factor

    def init_score(self, loss: MultilabelFocalLoss) -> np.ndarray:
        """``loss.init_score`` of these labels and weights, shape ``(K,)``."""
        return _check_multilabel_loss(loss).init_score_from_totals(_label_totals(self.y, self._w_mean))

    def _elements(self, loss: MultilabelFocalLoss) -> tuple[PreparedRows, float]:
        """The binary rows of the raveled elements for ``loss``'s α, and its mean-loss factor; made once."""
        loss = _check_multilabel_loss(loss)
        key = loss._alpha if loss._per_label else None  # one α: the element weights do not depend on it
        found = self._by_alpha.get(key)
        if found is None:
            loss._alphas(self.n_outputs, "the labels")
            with self._lock:
                found = self._by_alpha.get(key)
                if found is None:
                    e = _element_weights(loss, self.y, self.w)
                    rows = PreparedRows(self.y.reshape(-1), e)
                    found = self._by_alpha[key] = (rows, _mean_factor(loss, self.y, self.w))
        return found


# --------------------------------------------------------------------------- helpers


def _check_multilabel_loss(loss: object) -> MultilabelFocalLoss:
    if not isinstance(loss, MultilabelFocalLoss):
        raise TypeError(f"loss must be a gbfocal.MultilabelFocalLoss, got {type(loss).__name__}")
    return loss


_EMPTY = np.empty(0, dtype=np.float64)


def _or_empty(w: np.ndarray | None) -> np.ndarray:
    return _EMPTY if w is None else w


def _alpha_t_factor(loss: MultilabelFocalLoss, y: np.ndarray) -> np.ndarray | None:
    """``2 α_t(i, k)``, shape ``(n, K)``, when the binary kernel runs at α = 1/2 (per-label α); else None."""
    if not loss._per_label:
        return None
    a2 = 2.0 * loss._alphas(y.shape[1])
    return np.where(y > 0.5, a2, 2.0 - a2)


def _element_weights(loss: MultilabelFocalLoss, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The binary kernel's weight of each raveled element: ``w_i`` (times ``2 α_t``), or empty (unweighted)."""
    factor = _alpha_t_factor(loss, y)
    if factor is None:
        return np.repeat(w, y.shape[1]) if w.shape[0] else w
    if w.shape[0]:
        factor *= w[:, None]
    return factor.reshape(-1)


def _mean_factor(loss: MultilabelFocalLoss, y: np.ndarray, w: np.ndarray) -> float:
    """``Σ e / (K Σ w)``: turns the binary ``Σ e FL₀.₅ / Σ e`` into ``Σ w FL / (K Σ w)``; 1 with one α.

    Computed with the weights scaled by a power of two, so neither sum overflows.
    """
    factor = _alpha_t_factor(loss, y)
    if factor is None:
        return 1.0
    ws = _scaled(w)[0]
    if not ws.shape[0]:
        return float(np.mean(factor))
    return float(np.dot(ws, factor.sum(axis=1)) / (y.shape[1] * np.sum(ws)))


def _label_totals(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(W₁, W₀)`` of every label column, ``(K, 2)``, from (already scaled) weights; two separate sums."""
    pos = y > 0.5
    if not w.shape[0]:
        n_pos = np.count_nonzero(pos, axis=0).astype(np.float64)
        return np.column_stack([n_pos, y.shape[0] - n_pos])
    return np.column_stack([w @ pos, w @ ~pos]).astype(np.float64)


#: What ``focal_alpha=None`` means for every label of a multi-label estimator (Lin et al.'s value with γ = 2).
MULTILABEL_DEFAULT_ALPHA = 0.25


def estimator_multilabel_loss(
    estimator: Any, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> MultilabelFocalLoss:
    """The :class:`MultilabelFocalLoss` of an estimator's ``focal_*`` parameters for an ``(n, K)`` label matrix.

    ``focal_alpha``: ``None`` (0.25 for every label), a float (every label),
    a sequence of K floats in (0, 1) (label column k's positive weight), or
    ``"balanced"``: per label ``α_k = W₀ₖ / (W₀ₖ + W₁ₖ)`` from its
    (sample-weighted) class totals, the binary ``"balanced"`` rule applied to
    each label. A mapping is refused (label columns have no names).
    ``focal_hessian``: a binary policy, None for ``"positive"``. Errors name
    the estimator's parameter.
    """
    y = as_label_matrix(y, "y")
    k = y.shape[1]
    alpha = estimator.focal_alpha
    if alpha is None:
        alpha = MULTILABEL_DEFAULT_ALPHA
    elif isinstance(alpha, str):
        if alpha != "balanced":
            raise ValueError(f"focal_alpha must be None, a float, a sequence or 'balanced', got {alpha!r}")
        w = _or_empty(V.as_weights(sample_weight, y.shape[0]))
        totals = _label_totals(y, _scaled(w)[0])
        single = np.flatnonzero((totals == 0.0).any(axis=1))
        if single.size:
            raise ValueError(
                f"focal_alpha='balanced' needs both classes in every label column; column(s) "
                f"{single[:10].tolist()} of y hold a single class"
            )
        alpha = [float(t0 / (t1 + t0)) for t1, t0 in totals.tolist()]
    elif isinstance(alpha, Mapping):
        raise TypeError(
            "focal_alpha as a mapping names classes; multi-label columns have no names: give one float in (0, 1) "
            f"per label column, in order (K = {k}), a float for every label, or 'balanced'"
        )
    alpha = _check_label_alpha(alpha, "focal_alpha")
    if not isinstance(alpha, float) and len(alpha) != k:
        raise ValueError(
            f"focal_alpha has {len(alpha)} per-label values but y has K = {k} label columns; give one float in "
            "(0, 1) per label column, one float for every label, or 'balanced'"
        )
    loss = MultilabelFocalLoss(
        alpha,
        V.check_gamma(estimator.focal_gamma, "focal_gamma"),
        hessian=V.check_hessian(
            DEFAULT_HESSIAN if estimator.focal_hessian is None else estimator.focal_hessian,
            HESSIAN_POLICIES,
            "focal_hessian",
        ),
    )
    return loss
