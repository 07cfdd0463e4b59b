"""The plots of ``gbfocal bench``: precision–recall over all seeds, reliability, AP differences.

The numbers a plot shows come from small functions that return arrays
(:func:`pr_curves`, :func:`reliability_bins`), so they can be checked without
looking at pixels; the ``*_figure`` functions only draw them. Figures are
built from :class:`matplotlib.figure.Figure` directly, not pyplot: no GUI
backend and no global state, whatever the caller uses.

Readability rules every figure follows: each method has its own colour,
line style and marker (:data:`METHOD_STYLES`), so methods whose curves
coincide (a tuned model that chose its untuned candidate) stay visible;
legends sit outside the axes, so they cover no data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["METHOD_STYLES", "RECALL_GRID", "draw_plots", "pr_curves", "pr_figure", "reliability_bins"]

#: Colour, line style and marker of each method; markers sit at different recalls (offset) for every method.
METHOD_STYLES: dict[str, dict[str, Any]] = {
    "focal": {"color": "C0", "linestyle": "-", "marker": "o"},
    "focal_tuned": {"color": "C1", "linestyle": "--", "marker": "s"},
    "weighted_logloss": {"color": "C2", "linestyle": "-.", "marker": "^"},
    "weighted_logloss_tuned": {"color": "C3", "linestyle": ":", "marker": "v"},
    "logloss": {"color": "C4", "linestyle": (0, (5, 1, 1, 1, 1, 1)), "marker": "D"},
}
#: Recall values at which every seed's precision is read before averaging.
RECALL_GRID = np.linspace(0.0, 1.0, 101)
_MARK_EVERY = 20  # grid points between two markers of one curve; methods are offset by 4 points each


def pr_curves(ys: Sequence[np.ndarray], margins: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Precision–recall of one method over seeds, vertically averaged on :data:`RECALL_GRID`.

    ``ys[s]`` (0/1 labels) and ``margins[s]`` (scores) are the test part of
    seed ``s``, each of shape ``(n_s,)``. Each seed's curve is read as the
    *interpolated* precision ``P_s(r) = max{precision at thresholds with recall
    >= r}`` (the usual step envelope, non-increasing in ``r``); the curve
    shown is the mean over seeds ``P̄(r) = mean_s P_s(r)``.

    Returns ``{"recall": (R,), "precision": (n_seeds, R), "mean": (R,),
    "average_precision": (n_seeds,)}``, with ``R = len(RECALL_GRID)``.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    if len(ys) != len(margins) or not ys:
        raise ValueError(f"need the same positive number of label and margin arrays, got {len(ys)} and {len(margins)}")
    curves, aps = [], []
    for y, z in zip(ys, margins, strict=True):
        precision, recall, _ = precision_recall_curve(y, z)
        # recall is non-increasing along the arrays; the envelope is the running max from the high-recall end
        order = np.argsort(recall, kind="stable")
        recall, precision = recall[order], precision[order]
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        at = np.searchsorted(recall, RECALL_GRID, side="left")
        curves.append(np.where(at < recall.size, envelope[np.minimum(at, recall.size - 1)], 0.0))
        aps.append(average_precision_score(y, z))
    precision = np.vstack(curves)
    return {
        "recall": RECALL_GRID.copy(),
        "precision": precision,
        "mean": precision.mean(axis=0),
        "average_precision": np.asarray(aps),
    }


def reliability_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Quantile-binned reliability: per non-empty bin, mean predicted probability, positive rate and count.

    Bin edges are the ``0, 1/n_bins, …, 1`` quantiles of ``p`` (duplicates
    merged), so bins hold about equally many rows even for the skewed
    probabilities of rare events. ``y``, ``p``: shape ``(n,)``.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size < 2:  # every prediction equal: one bin
        edges = np.array([p.min(), p.max()])
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, edges.size - 2)
    count = np.bincount(which, minlength=edges.size - 1)
    used = count > 0
    return {
        "mean_predicted": np.bincount(which, weights=p, minlength=edges.size - 1)[used] / count[used],
        "positive_rate": np.bincount(which, weights=y, minlength=edges.size - 1)[used] / count[used],
        "count": count[used],
    }


def _engines(results: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[str]:
    """The run's engines that trained on this dataset (CatBoost skips multiclass data)."""
    first = results["config"]["methods"][0]
    return [e for e in results["config"]["engines"] if f"margin__{e}__{first}__0" in arrays]


def _seeds_of(arrays: dict[str, np.ndarray], key: str, seeds: int) -> list[np.ndarray]:
    return [arrays[f"{key}__{s}"] for s in range(seeds)]


def pr_figure(results: dict[str, Any], arrays: dict[str, np.ndarray], dataset: str) -> Any:
    """The precision–recall figure of ``dataset``: one panel per engine, every seed faint, their mean bold."""
    from matplotlib.figure import Figure

    engines, methods, seeds = _engines(results, arrays), results["config"]["methods"], results["config"]["seeds"]
    fig = Figure(figsize=(5.0 * len(engines), 4.0 + 0.25 * len(methods)), layout="constrained")
    axes = fig.subplots(1, len(engines), squeeze=False)[0]
    ys = _seeds_of(arrays, "y", seeds)
    for ax, engine in zip(axes, engines, strict=True):
        for k, method in enumerate(methods):
            style = METHOD_STYLES[method]
            curves = pr_curves(ys, _seeds_of(arrays, f"margin__{engine}__{method}", seeds))
            for one in curves["precision"]:
                ax.plot(curves["recall"], one, color=style["color"], linewidth=0.6, alpha=0.2, drawstyle="steps-post")
            ax.plot(
                curves["recall"],
                curves["mean"],
                drawstyle="steps-post",
                markevery=(4 * k % _MARK_EVERY, _MARK_EVERY),
                markersize=5,
                fillstyle="none",
                label=f"{method} (AP {curves['average_precision'].mean():.3f})",
                **style,
            )
        rate = float(np.mean(np.concatenate(ys)))
        ax.axhline(rate, color="grey", linestyle=":", linewidth=1, label=f"positive rate {rate:.3f}")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=engine)
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, frameon=False)
    fig.suptitle(
        f"{dataset}: precision-recall on the test part, mean over {seeds} seed(s) (bold; mean AP in the legend), "
        "each seed faint",
        fontsize="medium",
    )
    return fig


def reliability_figure(results: dict[str, Any], arrays: dict[str, np.ndarray], dataset: str) -> Any:
    """Reliability of each method's corrected probability (solid) and of its σ(margin) (dotted, faint)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from scipy.special import expit

    engines, methods, seeds = _engines(results, arrays), results["config"]["methods"], results["config"]["seeds"]
    fig = Figure(figsize=(5.0 * len(engines), 4.0 + 0.25 * len(methods)), layout="constrained")
    axes = fig.subplots(1, len(engines), squeeze=False)[0]
    y = np.concatenate(_seeds_of(arrays, "y", seeds)).astype(np.float64)
    for ax, engine in zip(axes, engines, strict=True):
        lowest = 1.0
        for method in methods:
            style = METHOD_STYLES[method]
            for kind, line, alpha in (("margin", ":", 0.4), ("calibrated", "-", 1.0)):
                logit = np.concatenate(_seeds_of(arrays, f"{kind}__{engine}__{method}", seeds))
                bins = reliability_bins(y, expit(logit.astype(np.float64)))
                shown = bins["positive_rate"] > 0  # log axes: bins without a positive cannot be drawn
                x, f = bins["mean_predicted"][shown], bins["positive_rate"][shown]
                ax.plot(x, f, linestyle=line, marker=style["marker"], color=style["color"], markersize=3, alpha=alpha)
                lowest = min(lowest, float(bins["mean_predicted"].min()), float(f.min(initial=1.0)))
        lowest = max(lowest / 2, 1e-6)
        ax.plot([lowest, 1], [lowest, 1], "k--", linewidth=1)
        ax.set(xscale="log", yscale="log", xlim=(lowest, 1), ylim=(lowest, 1), title=engine)
        ax.set(xlabel="mean predicted probability", ylabel="observed positive rate")
        handles = [
            Line2D([], [], color=METHOD_STYLES[m]["color"], marker=METHOD_STYLES[m]["marker"], label=m) for m in methods
        ]
        handles += [
            Line2D([], [], color="black", linestyle="-", marker="o", markersize=3, label="corrected probability"),
            Line2D([], [], color="black", linestyle=":", marker="o", markersize=3, alpha=0.4, label="σ(margin)"),
            Line2D([], [], color="black", linestyle="--", label="perfectly calibrated"),
        ]
        ax.legend(handles=handles, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2)
    fig.suptitle(f"{dataset}: reliability over all {seeds} seed(s), quantile bins", fontsize="medium")
    return fig


def differences_figure(paired: list[dict[str, Any]]) -> Any:
    """Paired AP differences with their 95% t-intervals, one row per dataset × engine."""
    from matplotlib.figure import Figure

    pairs = list(dict.fromkeys((p["focal"], p["baseline"]) for p in paired))
    groups = list(dict.fromkeys((p["dataset"], p["engine"]) for p in paired))
    fig = Figure(figsize=(7.5, 1.8 + 0.5 * len(groups)), layout="constrained")
    ax = fig.subplots()
    for k, (focal, baseline) in enumerate(pairs):
        items = [p for p in paired if p["focal"] == focal and p["baseline"] == baseline]
        y = [groups.index((p["dataset"], p["engine"])) + 0.2 * (k - 1) for p in items]
        x = [p["mean"] for p in items]
        err = [
            [p["mean"] - p["low"] if p["low"] is not None else 0.0 for p in items],
            [p["high"] - p["mean"] if p["high"] is not None else 0.0 for p in items],
        ]
        ax.errorbar(x, y, xerr=err, fmt="os^"[k % 3], capsize=3, color=f"C{k}", label=f"{focal} − {baseline}")
    ax.axvline(0.0, color="black", linewidth=1)
    ax.set_yticks(range(len(groups)), [f"{d} · {e}" for d, e in groups])
    ax.invert_yaxis()
    ax.set_xlabel("test AP difference: mean over seeds, 95% t-interval (not Holm-adjusted)")
    ax.set_title("focal loss − baseline; left of 0: focal loses")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize="small")
    return fig


def one_vs_rest(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Multiclass predictions as pooled one-vs-rest binary ones, for the PR and reliability figures.

    Every row × class becomes one binary item: label ``[y = k]`` (``y__<seed>``,
    shape ``(n K,)``) and the logit of ``softmax(margin)[:, k]`` (margin and
    corrected keys alike): the micro-averaged view of all classes at once.
    """
    from scipy.special import log_softmax, logit

    out: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if key.startswith("y__"):
            k = next(v.shape[1] for name, v in arrays.items() if name.startswith("margin__"))
            out[key] = (value[:, None] == np.arange(k)[None, :]).ravel().astype(np.int8)
        elif key.startswith(("margin__", "calibrated__")):
            p = np.exp(log_softmax(np.asarray(value, dtype=np.float64), axis=1))
            out[key] = logit(np.clip(p, 1e-15, 1 - 1e-15)).ravel()
        else:
            out[key] = value
    return out


def draw_plots(results: dict[str, Any], predictions: dict[str, dict[str, np.ndarray]], folder: Path) -> list[str]:
    """Write every plot of a run into ``folder``; returns their file names (relative to ``folder``)."""
    files = []
    for ds in results["datasets"]:
        name = ds["name"]
        arrays, title = predictions[name], name
        if ds.get("task") == "multiclass":
            arrays, title = one_vs_rest(arrays), f"{name} (one-vs-rest, all classes pooled)"
        for kind, make in (("pr", pr_figure), ("reliability", reliability_figure)):
            path = f"{kind}_{name}.png"
            make(results, arrays, title).savefig(folder / path, dpi=100)
            files.append(path)
    if results["paired"]:
        differences_figure(results["paired"]).savefig(folder / "ap_difference.png", dpi=100)
        files.append("ap_difference.png")
    return files
