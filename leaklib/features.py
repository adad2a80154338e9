"""Derived, time-aware features declared as data, computed from the past only.

A derive block is a list of derivations; each takes the declared numeric features its
``columns`` select (fnmatch patterns or a list of them) and adds new columns, computed inside
each group in timestamp order from the current and earlier rows only; without a group the
whole table is one series. ``steps``, ``period`` and ``window`` count rows, so a series' rows
are assumed evenly spaced (96 rows = one day of 15-minute rows). Rows without enough history
get NaN, which HistGradientBoosting handles. Each derivation says how many earlier rows a value
needs (its ``lookback``; :func:`lookback` for a whole block), which is what a scorer must read
before the first row it writes.

```yaml
derive:
  - {kind: diff, columns: "p_*", steps: 96}                  # p_n1__diff96
  - {kind: seasonal_deviation, columns: ["p_*", "q_*"], period: 96}   # p_n1__sdev96x1
  - {kind: seasonal_deviation, columns: "p_*", period: 96, baseline: first, window: 48}
  #                                                          # p_n1__fdev96x1w48
  - {kind: rolling, columns: "p_*", window: 8, stats: [mean, std]}    # p_n1__mean8, p_n1__std8
  - {kind: seasonal_deviation, columns: "p_*", period: 96, baseline: trailing, days: 7}
  #                 the median of the same time of day over the previous 7 days: p_n1__tdev96x7
  - {kind: seasonal_deviation, columns: "p_*", period: 96, baseline: trailing, days: 4,
     same_weekday: true}        # ... of the same weekday over the previous 4 weeks: p_n1__tdev96x4wk
```
"""

from __future__ import annotations

import fnmatch
import warnings

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from leaklib.errors import LeakError
from leaklib.params import (
    FIRST_NEEDS_A_GROUP,
    DatasetSpec,
    Derivation,
    DeriveSpec,
    Diff,
    FeatureSpec,
    Rolling,
    Selector,
)


class DeriveError(LeakError, ValueError):
    """A derivation cannot be computed on this table; the message names the key."""


def lookback(spec: DeriveSpec) -> int | None:
    """Return how many earlier rows of a series every derivation of ``spec`` needs.

    A scorer reads that many rows before the first row it writes, and a value computed so
    equals the one computed from the series' start. None when a derivation needs the series
    from its start (``baseline: first``); 0 for an empty block.
    """
    return spec.lookback


def derive_features(
    frame: pd.DataFrame,
    *,
    spec: DeriveSpec,
    group: str | None,
    timestamp: str | None,
    features: dict[str, FeatureSpec],
) -> tuple[pd.DataFrame, dict[str, FeatureSpec]]:
    """Return the frame with the derived columns added, and those columns typed numeric.

    Each derived value at a row depends only on that row and earlier rows of its group, so
    deriving before or after a grouped split gives the same values, and a value needs only
    the ``lookback`` rows before it.

    Args:
        frame: The table; its row order and index are kept.
        spec: The derivations.
        group: Column whose rows form one series (a scenario, a district); None: the whole
            table is one series (a stream), where ``baseline: first`` is refused.
        timestamp: Column that orders the rows of a series.
        features: Declared features; ``columns`` select among the numeric ones.
    """
    if not spec.root:
        return frame, {}
    if timestamp is None:
        raise DeriveError("derive needs a timestamp column to order each series; timestamp is null")
    _check_roles(frame, spec=spec, group=group, timestamp=timestamp)
    order, start_of, position = _series_positions(frame, group=group, timestamp=timestamp)
    longest = int(position.max()) + 1

    numeric = [name for name, s in features.items() if s.type == "numeric"]
    new: dict[str, np.ndarray] = {}
    for i, derivation in enumerate(spec.root):
        key = f"derive[{i}]"
        _check_history(derivation, key=key, longest=longest, group=group)
        for column in _select(derivation.columns, numeric, key=key):
            if column not in frame.columns:
                raise DeriveError(f"{key}.columns: feature {column!r} is not in the table")
            values = frame[column].to_numpy(dtype=float)[order]
            for name, derived in _compute(derivation, column, values, start_of, position):
                if name in new or name in frame.columns:
                    raise DeriveError(f"{key}: column {name!r} is derived twice or already exists")
                new[name] = derived
    unsorted = np.empty_like(order)
    unsorted[order] = np.arange(len(order))
    added = pd.DataFrame({n: v[unsorted] for n, v in new.items()}, index=frame.index)
    return pd.concat([frame, added], axis=1), {n: FeatureSpec(type="numeric") for n in new}


def _check_roles(
    frame: pd.DataFrame, *, spec: DeriveSpec, group: str | None, timestamp: str
) -> None:
    """Check the group and timestamp columns, and that ``baseline: first`` has a group.

    Raises:
        DeriveError: A role's column is missing or has missing values, or a derivation takes
            the first rows as its baseline in a table without groups.
    """
    for role, column in (("group", group), ("timestamp", timestamp)):
        if column is None:
            continue
        if column not in frame.columns:
            raise DeriveError(f"derive: {role} column {column!r} is not in the table")
        if frame[column].isna().any():
            raise DeriveError(f"derive: {role} column {column!r} has missing values")
    if group is None:
        for i, derivation in enumerate(spec.root):
            if getattr(derivation, "baseline", None) == "first":
                raise DeriveError(f"derive[{i}].baseline: {FIRST_NEEDS_A_GROUP}")


def _series_positions(
    frame: pd.DataFrame, *, group: str | None, timestamp: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows' order by group and time, and each ordered row's series start and place in it.

    Raises:
        DeriveError: A time repeats within a series.
    """
    roles = pd.DataFrame(
        {
            "group": frame[group].to_numpy() if group else np.zeros(len(frame), dtype=int),
            "time": frame[timestamp].to_numpy(),
        }
    )
    ordered = roles.sort_values(["group", "time"], kind="stable")
    order = ordered.index.to_numpy()
    keys, times = ordered["group"].to_numpy(), ordered["time"].to_numpy()
    starts = np.r_[True, keys[1:] != keys[:-1]]
    if (~starts & np.r_[False, times[1:] == times[:-1]]).any():
        where = f"within a {group!r} group" if group else "(the table is one series: no group)"
        raise DeriveError(f"derive: {timestamp!r} repeats a time {where}")
    start_of = np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))
    position = np.arange(len(keys)) - start_of
    return order, start_of, position


def _select(selector: Selector, numeric: list[str], *, key: str) -> list[str]:
    """Return the numeric features the patterns match, in declared order."""
    patterns = [selector] if isinstance(selector, str) else selector
    chosen: set[str] = set()
    for pattern in patterns:
        matched = fnmatch.filter(numeric, pattern)
        if not matched:
            raise DeriveError(f"{key}.columns: {pattern!r} matches no numeric feature")
        chosen.update(matched)
    return [name for name in numeric if name in chosen]


def _check_history(derivation: Derivation, *, key: str, longest: int, group: str | None) -> None:
    """Refuse a derivation that no row of any group has enough history for."""
    if isinstance(derivation, Diff):
        needs = {"steps": derivation.steps}
    elif isinstance(derivation, Rolling):
        needs = {"window": derivation.window - 1}
    elif derivation.baseline == "trailing":
        needs = {"days": derivation.days * derivation.lag_step, "window": derivation.lookback}
    else:
        seasons = derivation.periods - (derivation.baseline == "first")
        needs = {
            "period": derivation.period - 1,
            "periods": seasons * derivation.period,
            "window": seasons * derivation.period + derivation.window - 1,
        }
    series = f"the longest {group!r} group" if group else "the table (one series)"
    for name, rows in needs.items():
        if rows >= longest:
            raise DeriveError(
                f"{key}.{name}: {getattr(derivation, name)} needs {rows} earlier rows, "
                f"but {series} has {longest} rows"
            )


def _lag(values: np.ndarray, position: np.ndarray, steps: int) -> np.ndarray:
    """Return the value ``steps`` rows earlier in the same group, NaN before the group has it."""
    out = np.full_like(values, np.nan)
    ok = position >= steps
    out[ok] = values[np.flatnonzero(ok) - steps]
    return out


def _trailing(values: np.ndarray, position: np.ndarray, window: int, stat: str) -> np.ndarray:
    """Return a statistic over the last ``window`` rows of the same group (NaN when short)."""
    out = np.full_like(values, np.nan)
    if window > len(values):
        return out
    windows = sliding_window_view(values, window)  # windows[i] ends at row i + window - 1
    result = windows.std(axis=1, ddof=1) if stat == "std" else getattr(windows, stat)(axis=1)
    ends = np.arange(window - 1, len(values))
    ok = position[ends] >= window - 1
    out[ends[ok]] = result[ok]
    return out


def _compute(
    derivation: Derivation,
    column: str,
    values: np.ndarray,
    start_of: np.ndarray,
    position: np.ndarray,
) -> list[tuple[str, np.ndarray]]:
    """Return (name, values in sorted order) for each column one derivation adds."""
    if isinstance(derivation, Diff):
        steps = derivation.steps
        return [(f"{column}__diff{steps}", values - _lag(values, position, steps))]
    if isinstance(derivation, Rolling):
        w = derivation.window
        return [(f"{column}__{s}{w}", _trailing(values, position, w, s)) for s in derivation.stats]
    period, periods = derivation.period, derivation.periods
    if derivation.baseline == "trailing":
        baseline = _trailing_median(values, position, derivation.lag_step, derivation.days)
        name = f"{column}__tdev{period}x{derivation.days}" + (
            "wk" if derivation.same_weekday else ""
        )
        return [_smoothed(values - baseline, position, derivation.window, name)]
    if derivation.baseline == "previous":
        lags = [_lag(values, position, k * period) for k in range(1, periods + 1)]
        name = f"{column}__sdev{period}x{periods}"
    else:
        phase = start_of + position % period
        lags = []
        for k in range(periods):
            rows = phase + k * period
            seen = rows <= start_of + position  # that row of the first periods is not later
            lag = np.full_like(values, np.nan)
            lag[seen] = values[rows[seen]]
            lags.append(lag)
        name = f"{column}__fdev{period}x{periods}"
    baseline = lags[0] if periods == 1 else np.mean(lags, axis=0)
    return [_smoothed(values - baseline, position, derivation.window, name)]


def _smoothed(
    deviation: np.ndarray, position: np.ndarray, window: int, name: str
) -> tuple[str, np.ndarray]:
    """Return the deviation's trailing mean over ``window`` rows, named with ``w<window>``."""
    if window == 1:
        return name, deviation
    return f"{name}w{window}", _trailing(deviation, position, window, "mean")


def _trailing_median(values: np.ndarray, position: np.ndarray, step: int, count: int) -> np.ndarray:
    """Return the median of the ``count`` values ``step``, ``2 step``, ... rows earlier in the group.

    NaN until the group has all ``count`` of them; a missing value among them (a sensor gap)
    is left out of the median. The lags are ``count`` shifted views of one padded array,
    sorted together along the short axis, so the cost is one small sort per row whatever the
    period (0.2 s for 70,080 rows x 37 sensors and 7 days; benchmarks/bench_derive.py).
    """
    n = len(values)
    reach = step * count
    padded = np.concatenate([np.full(reach, np.nan), values])
    lags = sliding_window_view(padded, n)[reach - step :: -step][:count]  # k * step rows back
    ranked = np.sort(lags, axis=0)  # NaN sort last
    middle = count // 2
    median = ranked[middle] if count % 2 else (ranked[middle - 1] + ranked[middle]) / 2
    ok = position >= reach  # every lag lies in the row's own group
    gaps = ok & np.isnan(ranked[-1])
    if gaps.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # every one of them missing: NaN
            median[gaps] = np.nanmedian(lags[:, gaps], axis=0)
    return np.where(ok, median, np.nan)


def derive_dataset(
    frame: pd.DataFrame, dataset: DatasetSpec
) -> tuple[pd.DataFrame, dict[str, FeatureSpec]]:
    """Apply a dataset's ``derive`` block to a validated table (see :func:`derive_features`)."""
    return derive_features(
        frame,
        spec=dataset.derive,
        group=dataset.group,
        timestamp=dataset.timestamp,
        features=dataset.features,
    )


def model_features(dataset: DatasetSpec, derived: list[str] | None) -> dict[str, FeatureSpec]:
    """Return the columns a model is fitted on: the declared features, then the derived ones."""
    return {**dataset.features, **{name: FeatureSpec(type="numeric") for name in derived or []}}


def strongest(frame: pd.DataFrame, derived: list[str], *, target: str) -> tuple[str, str] | None:
    """Return (source column, derived column) whose leak/no-leak means differ the most.

    The difference is in units of the derived column's spread; None without derived columns.
    """
    if not derived:
        return None
    by_class = frame.groupby(target)[derived].mean()
    spread = frame[derived].std().replace(0, np.nan)
    score = ((by_class.loc[1] - by_class.loc[0]).abs() / spread).fillna(0)
    best = str(score.idxmax())
    return best.split("__", 1)[0], best
