"""The figures of the reports: every plot has a title, labelled axes and a one-line caption.

The only module that imports pyplot, so that training, scoring and the command line never
pay for it (or pick a backend) unless a figure is drawn.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from leaklib.metrics import FALSE_ALARM_RATES


def _caption(fig: Figure, text: str, *, y: float = 0.005) -> None:
    """Write a figure's caption, small and italic, under its axes."""
    fig.text(0.01, y, text, fontsize=8, style="italic", ha="left", va="bottom", wrap=True)


def _figure(
    title: str, xlabel: str, ylabel: str, caption: str, size=(6.4, 4.4)
) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.get_layout_engine().set(h_pad=0.15)
    _caption(fig, caption)
    return fig, ax


def plot_roc(y: np.ndarray, proba: np.ndarray, *, label: str = "model") -> Figure:
    """ROC curve with the fixed false-alarm rates marked."""
    fig, ax = _figure(
        "ROC curve on the holdout",
        "False-positive rate (share of no-leak windows alarmed)",
        "True-positive rate (share of leak windows alarmed)",
        "Look at the far left: operators live at false-alarm rates of 1 % or less.",
    )
    fpr, tpr, _ = roc_curve(y, proba)
    ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(y, proba):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="chance")
    for rate in FALSE_ALARM_RATES:
        ax.axvline(rate, color="tab:red", lw=0.6, ls="--")
    ax.legend(loc="lower right")
    return fig


def plot_pr(y: np.ndarray, proba: np.ndarray) -> Figure:
    """Precision-recall curve against the base rate."""
    fig, ax = _figure(
        "Precision-recall curve on the holdout",
        "Recall (share of leak windows found)",
        "Precision (share of alarms that are leaks)",
        "The dashed line is the leak base rate: the curve's height above it is what the model adds.",
    )
    precision, recall, _ = precision_recall_curve(y, proba)
    ax.plot(recall, precision, label=f"AP {average_precision_score(y, proba):.3f}")
    ax.axhline(np.mean(y), ls="--", color="grey", label=f"base rate {np.mean(y):.2f}")
    ax.legend(loc="lower left")
    return fig


def plot_calibration(y: np.ndarray, proba: np.ndarray, *, bins: int = 10) -> Figure:
    """Reliability diagram: predicted probability against observed leak share."""
    fig, ax = _figure(
        "Calibration on the holdout",
        "Mean predicted leak probability",
        "Observed share of leak windows",
        "Points on the diagonal mean a predicted 70 % is a leak 70 % of the time.",
    )
    observed, predicted = calibration_curve(y, proba, n_bins=bins, strategy="quantile")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect calibration")
    ax.legend(loc="upper left")
    return fig


def plot_confusion(y: np.ndarray, proba: np.ndarray, *, threshold: float) -> Figure:
    """Confusion matrix at the alarm threshold, with counts."""
    fig, ax = _figure(
        f"Confusion matrix at threshold {threshold:g}",
        "Predicted",
        "Actual",
        "Top right are false alarms, bottom left are missed leak windows.",
        size=(5.2, 4.4),
    )
    matrix = confusion_matrix(y, (np.asarray(proba) >= threshold).astype(int), labels=[0, 1])
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            f"{count:,}",
            ha="center",
            va="center",
            color="black",
            fontsize=12,
            bbox={"facecolor": "white", "alpha": 0.7, "lw": 0},
        )
    ax.set_xticks([0, 1], ["no leak", "leak"])
    ax.set_yticks([0, 1], ["no leak", "leak"])
    return fig


def plot_threshold_sweep(y: np.ndarray, proba: np.ndarray, *, threshold: float) -> Figure:
    """Precision, recall and F1 against the alarm threshold."""
    fig, ax = _figure(
        "Metrics against the alarm threshold",
        "Alarm threshold on the leak probability",
        "Score",
        "The vertical line is the configured threshold; moving it trades recall for precision.",
    )
    grid = np.linspace(0.01, 0.99, 99)
    y = np.asarray(y)
    rows = []
    for t in grid:
        predicted = (np.asarray(proba) >= t).astype(int)
        rows.append(
            (
                precision_score(y, predicted, zero_division=0),
                recall_score(y, predicted, zero_division=0),
                f1_score(y, predicted, zero_division=0),
            )
        )
    values = np.array(rows)
    for i, name in enumerate(("precision", "recall", "F1")):
        ax.plot(grid, values[:, i], label=name)
    ax.axvline(threshold, color="black", ls="--", lw=0.8)
    ax.legend(loc="best")
    return fig


def plot_importance(importance: pd.DataFrame, *, top: int = 15) -> Figure:
    """Horizontal bars of permutation importance (mean drop in ROC-AUC, with spread)."""
    shown = importance.sort_values("mean", ascending=True).tail(top)
    fig, ax = _figure(
        "Permutation importance on the holdout",
        "Drop in ROC-AUC when the column is shuffled",
        "Feature",
        "Long bars are the sensors the model leans on; near-zero bars add little.",
        size=(6.4, 0.3 * len(shown) + 1.6),
    )
    ax.barh(shown.index, shown["mean"], xerr=shown["std"], color="tab:blue")
    return fig


def plot_delays(delays: pd.DataFrame) -> Figure:
    """Histogram of detection delays per leak scenario."""
    fig, ax = _figure(
        "Detection delay per leak",
        "Hours from leak start to first alarm",
        "Leaks",
        "Left-heavy is good; leaks never alarmed are counted in the title.",
    )
    found = delays["delay_hours"].dropna()
    ax.set_title(f"Detection delay per leak ({len(found)} of {len(delays)} detected)")
    ax.hist(found, bins=min(20, max(5, len(found))), color="tab:green")
    return fig


def plot_distributions(frame: pd.DataFrame, *, columns: list[str], target: str) -> Figure:
    """Per-class histograms of a few numeric columns."""
    import seaborn as sns  # heavy, and only this one figure uses it

    n = len(columns)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), layout="constrained", squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        sns.histplot(
            data=frame,
            x=column,
            hue=target,
            stat="density",
            common_norm=False,
            bins=40,
            ax=ax,
            element="step",
        )
        ax.set_title(column)
        ax.set_xlabel(column)
        ax.set_ylabel("Density")
    fig.suptitle("Distributions by class")
    fig.text(
        0.01,
        0.005,
        "Columns whose leak and no-leak shapes differ carry the signal.",
        fontsize=8,
        style="italic",
    )
    fig.get_layout_engine().set(h_pad=0.15)
    return fig


def plot_bootstrap(decision: Any) -> Figure:
    """Histogram of the bootstrapped differences with the interval and the minimum improvement."""
    metric = decision.primary_metric
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.15)  # room for the caption under the axis label
    ax.set_title(f"Paired bootstrap of the {metric} difference (challenger − champion)")
    ax.set_xlabel(f"Difference in {metric} on resampled holdout groups")
    ax.set_ylabel("Bootstrap draws")
    boot = decision.bootstrap
    if not boot:
        ax.text(
            0.5,
            0.5,
            "No champion to compare with",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        return fig
    edges, counts = np.asarray(boot["histogram"]["edges"]), np.asarray(boot["histogram"]["counts"])
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue", alpha=0.6)
    level = f"{decision.confidence * 100:.4g}%"
    ax.axvspan(
        decision.ci_low,
        decision.ci_high,
        color="tab:blue",
        alpha=0.12,
        label=f"{level} interval",
    )
    ax.axvline(
        decision.difference,
        color="tab:blue",
        lw=1.5,
        label=f"difference {decision.difference:+.4f}",
    )
    ax.axvline(
        decision.min_improvement,
        color="tab:red",
        ls="--",
        label=f"minimum improvement {decision.min_improvement:+g}",
    )
    ax.axvline(0, color="grey", ls=":", lw=0.8)
    ax.legend(loc="best", fontsize=8)
    fig.text(
        0.01,
        0.005,
        "Promoted only if the whole shaded interval lies right of the red line.",
        fontsize=8,
        style="italic",
        ha="left",
        va="bottom",
    )
    return fig


def open_figures() -> dict[str, Figure]:
    """Return the open matplotlib figures by a file-safe version of their title."""
    figures = {}
    for number in plt.get_fignums():
        fig = plt.figure(number)
        title = fig.axes[0].get_title() if fig.axes else f"figure-{number}"
        title = (fig._suptitle.get_text() if fig._suptitle else None) or title
        figures[re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or f"figure-{number}"] = fig
    return figures


@dataclass
class Trend:
    """A metric across runs: (position, value) points, the champion's line, marks and labels."""

    points: list[tuple[int, float]]
    champion: list[tuple[int, float]]
    promoted: list[tuple[int, float]]
    failed: list[int]
    dates: list[str]
    title: str


def trend_figure(trend: Trend) -> Figure:
    """The metric of every run with the champion history, promotions and failed runs marked."""
    xs, ys = zip(*trend.points, strict=True)
    low, high = min(ys), max(ys)
    pad = max(0.02, 0.1 * (high - low))
    fig = Figure(figsize=(9, 3.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(xs, ys, "o", color="#57606a", label="run")
    if trend.champion:
        cx, cy = zip(*trend.champion, strict=True)
        ax.step(cx, cy, where="post", color="#1a7f37", label="champion")
    if trend.promoted:
        px, py = zip(*trend.promoted, strict=True)
        ax.plot(px, py, "*", color="#bf8700", markersize=14, label="promoted")
    if trend.failed:
        bottom = [low - 1.5 * pad] * len(trend.failed)
        ax.plot(
            trend.failed, bottom, "x", color="#cf222e", markersize=9, label="failed run (no metric)"
        )
    ax.set_title(f"{trend.title} across runs, with the champion history")
    ax.set_xlabel("Run, oldest to newest (start date)")
    ax.set_ylabel(trend.title)
    ax.set_ylim(low - 2 * pad, high + pad)
    ticks = list(range(0, len(trend.dates), max(1, len(trend.dates) // 10)))
    ax.set_xticks(ticks)
    ax.set_xticklabels([trend.dates[i] for i in ticks], rotation=20, ha="right", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def trend_png(trend: Trend) -> tuple[str, int, int]:
    """Return the trend figure as base64 PNG with its pixel width and height."""
    fig = trend_figure(trend)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    width, height = (int(v) for v in fig.get_size_inches() * fig.dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii"), width, height


def _leak_window(
    frame: pd.DataFrame, *, target: str, group: str | None, timestamp: str
) -> tuple[pd.DataFrame | None, str]:
    """Return the rows to draw around one leak, and where they are from (for the title)."""
    if group:
        leaking = frame.groupby(group)[target].agg(["max", "min"])
        chosen = leaking[(leaking["max"] == 1) & (leaking["min"] == 0)].index
        if len(chosen) == 0:
            return None, ""
        return frame[frame[group] == chosen[0]].sort_values(timestamp), f"in {group} {chosen[0]}"
    rows = frame.sort_values(timestamp)
    times = pd.to_datetime(rows[timestamp])
    flags = rows[target].to_numpy()
    starts = np.flatnonzero((flags[1:] == 1) & (flags[:-1] == 0)) + 1
    for start in starts:
        begin = times.iloc[start] - pd.Timedelta(days=3)
        if (
            begin >= times.iloc[0]
            and not flags[(times >= begin).to_numpy() & (np.arange(len(rows)) < start)].any()
        ):
            keep = (
                (times >= begin) & (times < times.iloc[start] + pd.Timedelta(days=4))
            ).to_numpy()
            return rows[keep], f"around the leak starting {times.iloc[start]:%Y-%m-%d %H:%M}"
    return None, ""


def plot_deviation_during_leak(
    frame: pd.DataFrame,
    *,
    column: str,
    derived: str,
    target: str,
    group: str | None,
    timestamp: str,
) -> Figure:
    """A sensor and one of its derived deviations over one leak, the leak shaded.

    With a group: the first group holding both leak and quiet rows. On a stream: the week
    around its first leak start that follows at least three quiet days.
    """
    fig, (raw, deviation) = plt.subplots(2, 1, figsize=(8, 4.8), sharex=True, layout="constrained")
    rows, where = _leak_window(frame, target=target, group=group, timestamp=timestamp)
    if rows is None or derived not in frame.columns:
        raw.text(
            0.5, 0.5, "No leak with quiet rows before it", ha="center", transform=raw.transAxes
        )
        return fig
    for ax, name, label in ((raw, column, "reading"), (deviation, derived, "derived deviation")):
        ax.plot(rows[timestamp], rows[name], lw=0.8, color="tab:blue")
        ax.fill_between(
            rows[timestamp],
            0,
            1,
            where=rows[target].to_numpy() == 1,
            color="tab:red",
            alpha=0.12,
            transform=ax.get_xaxis_transform(),
            label="leak",
        )
        ax.set_ylabel(f"{name}\n({label})", fontsize=8)
    deviation.axhline(0, color="grey", lw=0.6, ls=":")
    raw.set_title(f"{column} {where}: the reading and its deviation from normal")
    raw.legend(loc="upper left", fontsize=8)
    deviation.set_xlabel("Time")
    _caption(
        fig,
        "The leak (shaded) is hard to see in the reading, which follows demand; against the "
        "same time on a normal day it stands out.",
    )
    return fig


def plot_alarms(
    scored: pd.DataFrame,
    *,
    group: str | None,
    timestamp: str | None,
    target: str | None,
    threshold: float,
    most: int = 6,
) -> Figure:
    """The operator's view: leak probability and alarms over time, one panel per group.

    True leak periods are shaded where the scored table carried the target. At most ``most``
    groups are drawn: those with the most alarms.
    """
    x = timestamp if timestamp in scored else None
    if group in scored:
        counts = scored.groupby(group)["alarm"].sum().sort_values(ascending=False, kind="stable")
        chosen = list(counts.index[:most])
    else:
        chosen, scored = ["all rows"], scored.assign(_all="all rows")
        group = "_all"
    fig, axes = plt.subplots(
        len(chosen),
        1,
        figsize=(9, 1.6 * len(chosen) + 0.8),
        sharey=True,
        layout="constrained",
        squeeze=False,
    )
    for ax, key in zip(axes[:, 0], chosen, strict=True):
        rows = scored[scored[group] == key]
        rows = rows.sort_values(x) if x else rows
        when = rows[x] if x else np.arange(len(rows))
        ax.plot(when, rows["probability"], lw=0.7, color="tab:blue")
        ax.axhline(threshold, color="tab:red", lw=0.6, ls="--")
        ax.plot(
            when[rows["alarm"].to_numpy()],
            rows["probability"][rows["alarm"]],
            "|",
            color="tab:red",
            ms=8,
        )
        if target in rows:
            ax.fill_between(
                when,
                0,
                1,
                where=rows[target].to_numpy() == 1,
                color="tab:orange",
                alpha=0.15,
                transform=ax.get_xaxis_transform(),
            )
        ax.set_ylabel(f"{key}", fontsize=8)
        ax.set_ylim(0, 1)
    axes[0, 0].set_title(
        "Leak probability and alarms (red) per group, true leaks shaded\n"
        f"alarm threshold {threshold:.3f} (dashed); the groups with the most alarms",
        fontsize=10,
    )
    return fig


_KIND_COLOURS = {"abrupt": "tab:red", "incipient": "tab:orange"}
_OUTCOME_COLOURS = {"detection": "tab:green", "false alarm": "tab:red"}  # others: olive


def plot_event_timeline(
    result: Any,
    *,
    times: pd.Series,
    proba: np.ndarray,
    threshold: float,
    faults: pd.DataFrame | None = None,
) -> Figure:
    """The evaluation period as an operator sees it: leaks as bars, alarms as ticks.

    Args:
        result: :class:`leaklib.leak_events.EventResult` (its ``leaks`` and ``alarms`` tables).
        times: The scored rows' timestamps.
        proba: Their leak probabilities.
        threshold: The alarm threshold.
        faults: Sensor-fault events (``first``, ``last``), drawn in grey when given.
    """
    leaks = result.leaks
    fig, (top, bottom) = plt.subplots(
        2,
        1,
        sharex=True,
        figsize=(10, 3.2 + 0.18 * max(len(leaks), 4)),
        height_ratios=[1.3, max(1.0, 0.12 * len(leaks))],
        layout="constrained",
    )
    fig.get_layout_engine().set(h_pad=0.3)  # room for the caption under the dates
    _draw_alarm_panel(top, result, times=times, proba=proba, threshold=threshold, faults=faults)
    _draw_leak_bars(bottom, result)
    _caption(
        fig,
        "Top: probability, threshold, alarm events (green: detected a leak, red: false alarm, "
        "olive: another alarm on a leak already found; grey: a sensor fault). Bottom: each true "
        "leak from its start to its repair; the triangle is its detection time.",
        y=0.002,
    )
    return fig


def _draw_alarm_panel(
    ax: plt.Axes,
    result: Any,
    *,
    times: pd.Series,
    proba: np.ndarray,
    threshold: float,
    faults: pd.DataFrame | None,
) -> None:
    """The timeline's top panel: probability, threshold, alarm events and sensor faults."""
    leaks, alarms = result.leaks, result.alarms
    order = np.argsort(pd.to_datetime(times).to_numpy(), kind="stable")
    stamps = pd.to_datetime(times).to_numpy()[order]
    ax.plot(stamps, np.asarray(proba)[order], lw=0.4, color="tab:blue", label="leak probability")
    ax.axhline(threshold, color="black", lw=0.8, ls="--", label=f"threshold {threshold:.3g}")
    for _, alarm in alarms.iterrows():
        colour = _OUTCOME_COLOURS.get(alarm["outcome"], "tab:olive")
        ax.axvspan(alarm["first_alarm"], alarm["last_alarm"], color=colour, alpha=0.35, lw=0)
    for _, fault in (faults if faults is not None else pd.DataFrame()).iterrows():
        ax.axvspan(fault["first"], fault["last"], color="tab:grey", alpha=0.3, lw=0)
    ax.set_ylim(0, 1)
    ax.set_ylabel("leak probability")
    ax.set_title(
        f"Evaluation period: {len(leaks)} leaks, {int(leaks['detected'].sum())} detected, "
        f"{int((alarms['outcome'] == 'false alarm').sum())} false alarms"
    )
    ax.legend(loc="upper left", fontsize=7, ncols=2)


def _draw_leak_bars(ax: plt.Axes, result: Any) -> None:
    """The timeline's bottom panel: each true leak as a bar, its detection as a triangle."""
    leaks = result.leaks
    for row, (_, leak) in enumerate(leaks.iterrows()):
        end = leak["end"] if pd.notna(leak["end"]) else result.end
        colour = _KIND_COLOURS.get(leak["kind"], "tab:purple")
        ax.barh(row, end - leak["start"], left=leak["start"], height=0.6, color=colour, alpha=0.6)
        if leak["detected"]:
            ax.plot(leak["detection_time"], row, marker="v", color="black", ms=5)
    ax.set_yticks(range(len(leaks)), [str(i) for i in leaks["leak_id"]], fontsize=6)
    ax.invert_yaxis()
    ax.set_ylabel("leak")
    ax.set_xlim(result.start, result.end)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.6) for c in _KIND_COLOURS.values()]
    handles.append(plt.Line2D([], [], marker="v", color="black", lw=0))
    ax.legend(handles, [*_KIND_COLOURS, "detected at"], loc="lower right", fontsize=7)


def _draw_network(ax: plt.Axes, network: Any, sensors: list[str], *, small: bool = False) -> None:
    """Pipes in grey and the pressure sensors as triangles, to scale."""
    xy, links = network.coordinates, network.links
    starts, ends = xy.loc[links["start"]].to_numpy(), xy.loc[links["end"]].to_numpy()
    segments = np.stack([starts, ends], axis=1)
    width = 0.3 if small else 0.5
    ax.add_collection(LineCollection(segments, colors="0.7", linewidths=width, zorder=1))
    ax.scatter(
        xy.loc[sensors, "x"], xy.loc[sensors, "y"], marker="^", s=8 if small else 28,
        color="tab:blue", label="pressure sensor", zorder=3,
    )  # fmt: skip
    ax.set_aspect("equal", adjustable="datalim")


def _draw_true_leak(ax: plt.Axes, network: Any, pipe: str, *, small: bool = False) -> None:
    """The leaking pipe in red, a cross at its middle (KeyError: not a link of the network)."""
    xy, links = network.coordinates, network.links
    a, b = links.loc[pipe, "start"], links.loc[pipe, "end"]
    ax.plot(xy.loc[[a, b], "x"], xy.loc[[a, b], "y"], color="tab:red", lw=4, zorder=2)
    mid = xy.loc[[a, b]].mean()
    ax.scatter(mid["x"], mid["y"], marker="X", s=50 if small else 90, color="tab:red",
               edgecolors="white", zorder=6, label=f"true leak ({pipe})")  # fmt: skip


def _draw_candidates(ax: plt.Axes, network: Any, location: Any, *, small: bool = False) -> None:
    """The ranked candidates: rings, the top one a star, each with its rank."""
    xy, ranked = network.coordinates, location.candidates
    rest = ranked.iloc[1:]
    ax.scatter(
        xy.loc[rest["node"], "x"], xy.loc[rest["node"], "y"], s=20 if small else 45,
        facecolors="none", edgecolors="darkorange", lw=1.2 if small else 1.5,
        label=f"candidates 2 to {len(ranked)}", zorder=4,
    )  # fmt: skip
    best = ranked.iloc[0]
    ax.scatter(
        xy.loc[best["node"], "x"], xy.loc[best["node"], "y"], s=70 if small else 140,
        marker="*", color="darkorange", edgecolors="black",
        label=f"top candidate ({best['node']})", zorder=5,
    )  # fmt: skip
    if small:
        return
    for _, row in ranked.iterrows():
        x, y = xy.loc[row["node"]]
        ax.annotate(str(row["rank"]), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)


def _caption_below(fig: Figure, text: str) -> None:
    """A caption as the figure's x label: the constrained layout keeps room for it."""
    fig.supxlabel(text, fontsize=8, style="italic", x=0.01, ha="left")


def plot_location_map(
    network: Any,
    location: Any,
    *,
    sensors: list[str],
    true_pipe: str | None = None,
    title: str = "Where is the leak",
) -> Figure:
    """The network as a crew sees it: pipes, sensors, the true leak and the ranked candidates.

    Args:
        network: :class:`leaklib.leak_location.Network` (its links and node coordinates).
        location: :class:`leaklib.leak_location.Location` (its ranked ``candidates`` and walk).
        sensors: The pressure sensors' nodes.
        true_pipe: The leaking pipe, when known.
        title: The figure's title.
    """
    fig, ax = plt.subplots(figsize=(7.5, 7.0), layout="constrained")
    _draw_network(ax, network, sensors)
    if true_pipe is not None:
        _draw_true_leak(ax, network, true_pipe)
    _draw_candidates(ax, network, location)
    ax.set_title(title)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.legend(loc="best", fontsize=7)
    _caption_below(
        fig,
        f"Pipes in grey, pressure sensors as triangles; the ranked candidate nodes in orange "
        f"(star: the top one).\nA crew covering them walks {location.walk_m:.0f} m of main.",
    )
    return fig


def plot_location_maps(
    network: Any,
    panels: list[tuple[str, Any, str | None]],
    *,
    sensors: list[str],
    columns: int = 4,
) -> Figure:
    """One small map per event (small multiples): the network, sensors, candidates, true leak.

    Args:
        network: :class:`leaklib.leak_location.Network`.
        panels: Per event, its title (name it as the events table does), its
            :class:`leaklib.leak_location.Location` and its true pipe (None: not known).
        sensors: The pressure sensors' nodes.
        columns: Maps per row.
    """
    rows = max(1, -(-len(panels) // columns))
    width = min(columns, max(len(panels), 1))
    xy = network.coordinates
    span = xy.max() - xy.min()
    aspect = float(span["y"] / span["x"]) if span["x"] > 0 else 1.0
    fig, grid = plt.subplots(
        rows,
        width,
        figsize=(2.6 * width, (2.6 * min(max(aspect, 0.3), 1.5) + 0.3) * rows + 0.6),
        layout="constrained",
        squeeze=False,
    )
    for ax, (title, location, pipe) in zip(grid.flat, panels, strict=False):
        _draw_network(ax, network, sensors, small=True)
        if pipe is not None:
            _draw_true_leak(ax, network, pipe, small=True)
        _draw_candidates(ax, network, location, small=True)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(grid.flat)[len(panels) :]:
        ax.set_axis_off()
    fig.suptitle("Where is each leak: one map per event", fontsize=10)
    _caption_below(
        fig,
        "Grey: pipes; blue triangles: pressure sensors; orange star: the top candidate, rings: "
        "the others; red: the true leaking pipe, when known.",
    )
    return fig
