"""leaklib.plots: every figure has a title, labelled axes and a caption."""

from __future__ import annotations

import base64
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from leaklib import plots
from leaklib.gate import Decision
from leaklib.leak_location import Location, Network


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _scores(n: int = 200):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    return y, np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1)


def test_every_plot_has_title_axis_labels_and_caption():
    y, proba = _scores()
    figures = [
        plots.plot_roc(y, proba),
        plots.plot_pr(y, proba),
        plots.plot_calibration(y, proba),
        plots.plot_confusion(y, proba, threshold=0.5),
        plots.plot_threshold_sweep(y, proba, threshold=0.5),
        plots.plot_importance(
            pd.DataFrame({"mean": [0.1, 0.02], "std": [0.01, 0.01]}, index=["a", "b"])
        ),
        plots.plot_delays(
            pd.DataFrame({"delay_hours": [1.0, 5.0, np.nan], "detected": [True, True, False]})
        ),
    ]
    for fig in figures:
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert fig.texts and fig.texts[0].get_text().endswith(".")


def test_plot_delays_counts_the_detected_leaks_in_its_title():
    delays = pd.DataFrame({"delay_hours": [1.0, 5.0, np.nan], "detected": [True, True, False]})
    assert plots.plot_delays(delays).axes[0].get_title().endswith("(2 of 3 detected)")


def test_plot_distributions_draws_one_panel_per_column():
    y, proba = _scores()
    frame = pd.DataFrame({"a": proba, "b": proba**2, "leaks": y})
    fig = plots.plot_distributions(frame, columns=["a", "b"], target="leaks")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a", "b"]
    assert fig._suptitle.get_text() == "Distributions by class"


def _decision(*, with_bootstrap: bool = True) -> Decision:
    return Decision(
        primary_metric="roc_auc",
        challenger={"metrics": {"roc_auc": 0.9}},
        confidence=0.95,
        min_improvement=0.0,
        difference=0.05 if with_bootstrap else None,
        ci_low=0.02 if with_bootstrap else None,
        ci_high=0.08 if with_bootstrap else None,
        bootstrap={"histogram": {"edges": [0.0, 0.05, 0.1], "counts": [40, 60]}}
        if with_bootstrap
        else None,
    )


def test_plot_bootstrap_has_a_title_labelled_axes_and_the_interval():
    fig = plots.plot_bootstrap(_decision())
    axes = fig.axes[0]
    assert axes.get_title() and axes.get_xlabel() and axes.get_ylabel()
    labels = axes.get_legend_handles_labels()[1]
    assert "95% interval" in labels and "difference +0.0500" in labels


def test_plot_bootstrap_without_a_champion_says_so():
    axes = plots.plot_bootstrap(_decision(with_bootstrap=False)).axes[0]
    assert [t.get_text() for t in axes.texts] == ["No champion to compare with"]


def test_open_figures_are_named_after_their_titles():
    y, proba = _scores()
    plots.plot_roc(y, proba)
    assert list(plots.open_figures()) == ["roc-curve-on-the-holdout"]


def test_trend_png_is_a_png_of_the_figure_size():
    trend = plots.Trend(
        points=[(0, 0.8), (1, 0.85), (3, 0.9)],
        champion=[(0, 0.8), (3, 0.9)],
        promoted=[(0, 0.8), (3, 0.9)],
        failed=[2],
        dates=["a", "b", "c", "d"],
        title="holdout ROC-AUC",
    )
    png, width, height = plots.trend_png(trend)
    assert base64.b64decode(png).startswith(b"\x89PNG") and (width, height) == (900, 360)
    assert plots.trend_figure(trend).axes[0].get_title().startswith("holdout ROC-AUC across runs")


def _square_network():
    """A 2 x 2 square of 100 m pipes, as leaklib.leak_location.Network holds it."""
    links = pd.DataFrame(
        {
            "start": ["a", "b", "c", "d"],
            "end": ["b", "c", "d", "a"],
            "length_m": [100.0] * 4,
            "is_pipe": [True] * 4,
        },
        index=pd.Index(["p1", "p2", "p3", "p4"], name="name"),
    )
    xy = pd.DataFrame(
        {"x": [0.0, 100.0, 100.0, 0.0], "y": [0.0, 0.0, 100.0, 100.0]},
        index=pd.Index(list("abcd"), name="node"),
    )
    network = Network(Path("square.inp"), "0" * 64, tuple("abcd"), tuple("abcd"), links, xy, ())
    ranked = pd.DataFrame({"rank": [1, 2], "node": ["c", "b"], "score": [0.9, 0.5]})
    return network, Location(candidates=ranked, walk_m=100.0)


def test_plot_location_map_draws_the_network_the_leak_and_the_candidates():
    network, location = _square_network()
    fig = plots.plot_location_map(network, location, sensors=["a", "d"], true_pipe="p2")
    ax = fig.axes[0]
    assert ax.get_title() == "Where is the leak" and ax.get_xlabel() and ax.get_ylabel()
    labels = ax.get_legend_handles_labels()[1]
    assert "true leak (p2)" in labels and "top candidate (c)" in labels
    assert any("walks 100 m of main" in t.get_text() for t in fig.texts)
    # without a known leak, no leak is drawn
    fig = plots.plot_location_map(network, location, sensors=["a"])
    assert not any(
        lab.startswith("true leak") for lab in fig.axes[0].get_legend_handles_labels()[1]
    )


def test_plot_location_map_refuses_an_unknown_true_pipe():
    network, location = _square_network()
    with pytest.raises(KeyError, match="p9"):
        plots.plot_location_map(network, location, sensors=["a"], true_pipe="p9")


def test_plot_location_maps_draws_one_small_map_per_event():
    network, location = _square_network()
    panels = [("leak 1: 0 m (within 300 m)", location, "p2"), ("leak 2: 100 m", location, None)]
    fig = plots.plot_location_maps(network, panels, sensors=["a", "d"], columns=4)
    drawn = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in drawn] == ["leak 1: 0 m (within 300 m)", "leak 2: 100 m"]
    labels = [ax.get_legend_handles_labels()[1] for ax in drawn]
    assert "true leak (p2)" in labels[0] and not any(x.startswith("true") for x in labels[1])
    assert all("top candidate (c)" in found for found in labels)
    assert all(len(ax.collections) >= 3 for ax in drawn)  # pipes, sensors, candidates
    with pytest.raises(KeyError, match="p9"):
        plots.plot_location_maps(network, [("x", location, "p9")], sensors=["a"])
