"""Statistics and plot data of ``gbfocal bench``: intervals inside the metric's range, Holm, PR averaging."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t
from scipy.stats import ttest_1samp

from gbfocal import _bench_plots as plots
from gbfocal import _bench_stats as stats
from gbfocal import bench


@pytest.mark.parametrize(
    ("values", "scale", "low_bound", "high_bound"),
    [
        ([0.99, 1.0, 0.97, 1.0, 0.93], "logit", 0.0, 1.0),  # a precision near 1: no "0.98 ± 0.05" past 1
        ([0.80, 0.20, 0.95, 0.05, 0.90], "logit", 0.0, 1.0),  # wide spread: a plain t-interval leaves [0, 1]
        ([0.001, 0.0, 0.02, 0.004, 0.0], "logit", 0.0, 1.0),
        ([0.1, 0.12, 2.5, 0.09, 0.11], "log", 0.0, math.inf),  # a time with one slow seed: no negative seconds
    ],
)
def test_intervals_stay_inside_the_range(values, scale, low_bound, high_bound):
    plain = stats.t_interval(values)
    assert plain[1] < low_bound or plain[2] > high_bound  # the old interval left the range
    out = stats.interval(values, scale)
    assert low_bound < out["low"] < out["high"] < high_bound
    assert out["mean"] == pytest.approx(np.mean(values))


def test_logit_interval_is_the_t_interval_of_the_logits():
    values = np.array([0.6, 0.7, 0.65, 0.8])
    u = np.log(values / (1 - values))
    half = student_t.ppf(0.975, 3) * u.std(ddof=1) / 2
    out = stats.interval(values, "logit")
    assert out["low"] == pytest.approx(1 / (1 + np.exp(-(u.mean() - half))))
    assert out["high"] == pytest.approx(1 / (1 + np.exp(-(u.mean() + half))))


def test_interval_edge_cases():
    assert stats.interval([1.0, 1.0, 1.0], "logit") == {"mean": 1.0, "low": 1.0, "high": 1.0}
    assert stats.interval([0.5], "logit") == {"mean": 0.5, "low": None, "high": None}
    with pytest.raises(ValueError, match="scale must be one of"):
        stats.interval([1.0, 2.0], "probit")
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        stats.interval([0.5, 1.5], "logit")


def test_paired_t_test_matches_scipy():
    d = [0.01, -0.02, 0.03, 0.015, 0.005]
    assert stats.paired_t_test(d) == pytest.approx(ttest_1samp(d, 0.0).pvalue)
    assert stats.paired_t_test([0.0, 0.0]) == 1.0 and stats.paired_t_test([0.1, 0.1]) == 0.0
    assert stats.paired_t_test([0.1]) is None


def test_holm_by_hand():
    # sorted: 0.01*4 = 0.04; 0.03*3 = 0.09; 0.04*2 = 0.08 -> 0.09 (monotone); 0.5*1 = 0.5
    assert stats.holm([0.04, 0.5, 0.01, None, 0.03]) == pytest.approx([0.09, 0.5, 0.04, None, 0.09])


def test_summarize_reports_holm_beside_the_raw_verdict():
    folds = []
    for engine, shift in (("xgboost", 0.02), ("lightgbm", 0.0)):
        for seed in range(5):
            for method, ap in (("focal", 0.5 + shift + 0.001 * seed), ("weighted_logloss", 0.5 + 0.0005 * seed**2)):
                metrics = dict.fromkeys(bench.METRICS, 0.5) | {"average_precision": ap}
                folds.append(
                    {"dataset": "d", "engine": engine, "method": method, "seed": seed, "metrics": metrics}
                    | {"train_seconds": 1.0 + seed, "n_trees": 10}
                )
    _, paired = bench.summarize(folds)
    raw = [p["p_value"] for p in paired]
    assert [p["p_holm"] for p in paired] == pytest.approx(stats.holm(raw))
    for p in paired:
        assert (p["verdict_holm"] != "no clear difference") == (p["p_holm"] < 0.05)
        assert (p["verdict"] != "no clear difference") == (p["p_value"] < 0.05)


# ---------------------------------------------------------------------------- plot data


def test_pr_curves_average_every_seed():
    y = np.array([0, 0, 1, 0, 1, 0])
    perfect = np.array([0.0, 0.1, 0.9, 0.2, 0.8, 0.3])
    worst = -perfect
    curves = plots.pr_curves([y, y], [perfect, worst])
    assert curves["precision"].shape == (2, plots.RECALL_GRID.size)
    np.testing.assert_array_equal(curves["precision"][0], 1.0)  # a perfect ranking: precision 1 at every recall
    assert curves["precision"][1][-1] == pytest.approx(2 / 6)  # reversed: all rows needed for recall 1
    np.testing.assert_allclose(curves["mean"], curves["precision"].mean(axis=0))
    assert np.all(np.diff(curves["precision"][1]) <= 0)  # the envelope never rises with recall
    assert curves["average_precision"][0] == 1.0


def test_reliability_bins_cover_every_row():
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 20, 5_000)
    y = rng.random(5_000) < p
    bins = plots.reliability_bins(y, p)
    assert bins["count"].sum() == 5_000 and bins["count"].size == 10
    assert np.all(np.diff(bins["mean_predicted"]) > 0)
    np.testing.assert_allclose(np.average(bins["positive_rate"], weights=bins["count"]), y.mean())
    one = plots.reliability_bins(np.array([0, 1]), np.array([0.3, 0.3]))
    assert one["count"].tolist() == [2]


def _fake_run(seeds: int = 3) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    methods = list(bench.METHODS)
    engines = ["xgboost", "lightgbm"]
    arrays = {}
    for s in range(seeds):
        y = (rng.random(200) < 0.1).astype(np.int8)
        arrays[f"y__{s}"] = y
        for e in engines:
            base = y + rng.normal(size=200)
            for m in methods:  # tuned methods equal to their untuned one: curves that coincide
                arrays[f"margin__{e}__{m}__{s}"] = base - 2.0
                arrays[f"calibrated__{e}__{m}__{s}"] = base - 2.5
    results = {"config": {"engines": engines, "methods": methods, "seeds": seeds}}
    return results, arrays


def test_figures_keep_legends_off_the_data_and_methods_apart():
    pytest.importorskip("matplotlib")
    results, arrays = _fake_run()
    styles = {(s["linestyle"], s["marker"]) for s in plots.METHOD_STYLES.values()}
    assert len(styles) == len(plots.METHOD_STYLES)  # coinciding curves stay distinguishable
    for make in (plots.pr_figure, plots.reliability_figure):
        fig = make(results, arrays, "fake")
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        for ax in fig.axes:
            legend = ax.get_legend()
            box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
            assert not box.overlaps(area), make.__name__
    texts = [t.get_text() for t in plots.reliability_figure(results, arrays, "fake").axes[0].get_legend().get_texts()]
    assert "corrected probability" in texts and "σ(margin)" in texts
    pr = plots.pr_figure(results, arrays, "fake").axes[0]
    faint = [line for line in pr.get_lines() if line.get_alpha() == 0.2]
    assert len(faint) == 3 * len(bench.METHODS)  # every seed of every method is drawn
