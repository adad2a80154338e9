"""Sensor faults told apart from leaks: per sensor and per row, checks of the readings themselves.

A broken sensor must not page the night crew as a leak. Before scoring, each sensor's readings
are checked, row by row, from the current and earlier rows only (so scoring a stream call by
call gives the same marks as one call over all of it, given :func:`lookback_rows` earlier rows):

- ``gap``: no reading (a missing value);
- ``stuck``: the same value, exactly, for longer than ``stuck_after`` (a frozen transmitter);
  values in ``stuck_allowed`` (a stopped pump's flow of 0) are never called stuck;
- ``out_of_range``: a value outside the feature's declared ``min``/``max``;
- ``jump``: a change from the previous row of more than ``jump_k`` robust standard deviations of
  the sensor's own changes, while no other sensor of its kind (pressures with pressures) moves
  beyond its usual: each of their absolute changes, in its own robust standard deviations, is
  below ``peers_below``. A change the network shows at more than one sensor (a demand step, a
  pump switching, a leak felt by the nearest sensor most and by its neighbours too) is not a
  jump of one sensor;
- ``drift``: a sensor that slowly leaves its own pattern. Its deviation from the reading
  ``drift_days`` days earlier at the same time, averaged over ``drift_window``, less the median
  deviation of its kind (demand that changed since is felt by every sensor), stays beyond
  ``drift_k`` robust standard deviations, with every other sensor of its kind below
  ``peers_below``, for longer than ``drift_after``; it is flagged from then on.

A sensor's robust standard deviation (of its changes for a jump, of its deviation for a
drift) is ``1.4826 x`` the median, over the previous ``scale_days`` calendar days, of each
day's median absolute value (``1.2533 x`` the mean absolute value where that median is 0).
Rows with no earlier calendar day to judge by are not checked for either. Sensors matching
``peer_exclude`` (a pump's flow switches on and off by design) are not checked for jumps or
drifts nor compared with, and a sensor with fewer than ``min_peers`` others of its kind is not
checked for either.

What a drift check cannot do: a small leak close to one sensor also moves that sensor more than
the others. The drift is flagged only while no other sensor of the kind moves beyond
``peers_below``; a leak felt by a neighbour too is left to the model. On the 150 one-week
scenarios of ``data/l-town-leaks.parquet``, the default thresholds flagged no leak as a
drift and found about 6 in 10 injected drifts of 1 m over 2 days (see docs/sensor-faults.md).

Derived features use trailing windows, so a faulty reading at row ``t`` also affects rows
``t + 1 .. t + lookback``: :meth:`SensorFaults.spread` marks those rows too, naming the sensor.

The faults come back as a :class:`SensorFaults`: :meth:`~SensorFaults.rows` gives the per-row
``sensor_fault`` and ``fault_sensors`` columns, :meth:`~SensorFaults.events` one row per run of
consecutive faulty rows of one sensor and kind (first, last, rows), the same notion of a
contiguous run as alarm events have, without their joining of short gaps or shortest length:
a fault run is its faulty rows, back to back.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from leaklib.errors import LeakError
from leaklib.params import DatasetSpec, SensorChecks

log = logging.getLogger(__name__)

#: The fault kinds, in the order they are checked and reported, and what each means.
FAULT_KINDS: dict[str, str] = {
    "gap": "no reading (a missing value)",
    "stuck": "the same value repeated for longer than sensor_checks.stuck_after",
    "out_of_range": "a value outside the feature's declared min/max",
    "jump": "a change from the previous row that no other sensor of its kind shows",
    "drift": "a lasting departure from the sensor's own earlier days that no other sensor of "
    "its kind shows",
}

#: The per-row columns :meth:`SensorFaults.rows` returns.
FAULT_COLUMN = "sensor_fault"
SENSORS_COLUMN = "fault_sensors"

_MAD_TO_SD = 1.4826  # standard deviation of a normal variable per median absolute deviation
_MEAN_ABS_TO_SD = 1.2533  # ... per mean absolute deviation (sqrt(pi / 2))

Bounds = Mapping[str, tuple[float | None, float | None]]


class SensorCheckError(LeakError, ValueError):
    """The sensor checks cannot run on this table; the message names the key or column."""


@dataclass(frozen=True)
class SensorFaults:
    """Which sensor was faulty at which row, and why, for one table.

    Arrays are in time order (by group, then timestamp); ``order`` maps them back to the
    table's own row order.

    Attributes:
        sensors: The checked columns, in declared order.
        flags: For each fault kind of :data:`FAULT_KINDS`, a (rows, sensors) boolean array.
        times: Each row's time (``datetime64[ns]``, UTC when the table's times had a zone).
        group_starts: True at the first row of each group (only the first row without groups).
        order: Positions in the table of the rows in time order.
        index: The table's index, in the table's own order.
        group: The group column's name (None without groups) and ``groups`` its values.
        tz: The time zone of the table's times, given back in :meth:`events`.
    """

    sensors: tuple[str, ...]
    flags: dict[str, np.ndarray]
    times: np.ndarray = field(repr=False)
    group_starts: np.ndarray = field(repr=False)
    order: np.ndarray = field(repr=False)
    index: pd.Index = field(repr=False)
    group: str | None = None
    groups: np.ndarray | None = field(default=None, repr=False)
    tz: str | None = None

    def faulty(self) -> np.ndarray:
        """Return the (rows, sensors) array of readings with a fault of any kind, in time order."""
        out = np.zeros((len(self.times), len(self.sensors)), dtype=bool)
        for flags in self.flags.values():
            out |= flags
        return out

    def counts(self) -> dict[str, int]:
        """Return how many readings (row x sensor) each fault kind flagged."""
        return {kind: int(flags.sum()) for kind, flags in self.flags.items()}

    def rows(self) -> pd.DataFrame:
        """Return ``sensor_fault`` and ``fault_sensors`` per row, on the table's index and order.

        ``fault_sensors`` names the faulty sensors, comma-separated in declared order, and is
        ``""`` on a row without a fault.
        """
        faulty = self.faulty()
        marked = faulty.any(axis=1)
        names = np.full(len(marked), "", dtype=object)
        if marked.any():
            patterns, inverse = np.unique(
                np.packbits(faulty[marked], axis=1), axis=0, return_inverse=True
            )
            sensors = np.array(self.sensors, dtype=object)
            joined = [
                ",".join(sensors[np.unpackbits(p, count=len(self.sensors)).astype(bool)])
                for p in patterns
            ]
            names[marked] = np.array(joined, dtype=object)[inverse.ravel()]
        unsorted = np.empty_like(self.order)
        unsorted[self.order] = np.arange(len(self.order))
        return pd.DataFrame(
            {FAULT_COLUMN: marked[unsorted], SENSORS_COLUMN: names[unsorted]}, index=self.index
        )

    def events(self) -> pd.DataFrame:
        """Return one row per run of consecutive faulty rows of one sensor and kind.

        Columns: the group (when there is one), ``sensor``, ``kind``, ``first`` and ``last``
        (the times of the run's first and last faulty row) and ``rows`` (how many rows).
        A run never crosses from one group to the next. Sorted by first time, then sensor.
        Call it on the faults as found, not on their :meth:`spread`.
        """
        ends = np.r_[self.group_starts[1:], True]
        parts = []
        for kind, flags in self.flags.items():
            if not flags.any():
                continue
            before = np.vstack([np.zeros((1, flags.shape[1]), dtype=bool), flags[:-1]])
            after = np.vstack([flags[1:], np.zeros((1, flags.shape[1]), dtype=bool)])
            starts = flags & (~before | self.group_starts[:, None])
            stops = flags & (~after | ends[:, None])
            sensor, first = np.nonzero(starts.T)  # by sensor, then time: runs pair in order
            _, last = np.nonzero(stops.T)
            part = {
                "sensor": np.array(self.sensors, dtype=object)[sensor],
                "kind": kind,
                "first": first,
                "last": last,
            }
            if self.group is not None:
                part = {self.group: self.groups[first], **part}
            parts.append(pd.DataFrame(part))
        columns = [*([self.group] if self.group else []), "sensor", "kind", "first", "last"]
        if not parts:
            empty = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
            for c in ("first", "last"):
                empty[c] = self._times(np.array([], dtype=np.int64))
            empty["rows"] = pd.Series(dtype="int64")
            return empty
        runs = pd.concat(parts, ignore_index=True)
        runs["rows"] = (runs["last"] - runs["first"] + 1).astype("int64")
        kinds = {kind: i for i, kind in enumerate(FAULT_KINDS)}
        runs = runs.sort_values(
            ["first", "sensor", "kind"], key=lambda s: s.map(kinds) if s.name == "kind" else s
        ).reset_index(drop=True)
        runs["first"] = self._times(runs["first"].to_numpy())
        runs["last"] = self._times(runs["last"].to_numpy())
        return runs[[*columns, "rows"]]

    def spread(self, lookback: int | Mapping[str, int]) -> SensorFaults:
        """Return the faults with each mark carried forward over the rows that depend on it.

        A derived feature at row ``u`` reads its sensor's rows ``u - lookback .. u``, so a
        faulty reading at row ``t`` marks rows ``t .. t + lookback`` of its group, under the
        same sensor and kind.

        Args:
            lookback: Earlier rows the features of each sensor read: one number for every
                sensor, or a mapping from sensor to rows (a sensor it does not name: 0, only
                its own row).

        Raises:
            SensorCheckError: A negative lookback, or a sensor that was not checked.
        """
        rows = _lookbacks(lookback, self.sensors)
        if not rows.any():
            return self
        n = len(self.times)
        start = np.maximum.accumulate(np.where(self.group_starts, np.arange(n), 0))
        low = np.maximum(np.arange(n)[:, None] - rows[None, :], start[:, None])
        spread = {}
        for kind, flags in self.flags.items():
            total = np.vstack([np.zeros((1, flags.shape[1]), dtype=np.int64), flags.cumsum(0)])
            seen = total[1:] - np.take_along_axis(total, low, axis=0)
            spread[kind] = seen > 0
        return SensorFaults(**{**self.__dict__, "flags": spread})

    def _times(self, positions: np.ndarray) -> pd.Series:
        times = pd.Series(pd.to_datetime(self.times[positions]))
        return times.dt.tz_localize("UTC").dt.tz_convert(self.tz) if self.tz else times


def sensor_kinds(dataset: DatasetSpec, *, checks: SensorChecks) -> dict[str, str]:
    """Return the sensors to check, each with its kind (the pattern that selected it).

    ``checks.sensors`` lists one pattern per kind; when null, the patterns the dataset's
    derive block selects are the kinds, or, when nothing is derived, every numeric feature is
    a sensor whose kind is its name up to the first ``_``. Columns matching
    ``checks.exclude`` (clock features) are never sensors.

    Raises:
        SensorCheckError: A pattern of ``sensor_checks.sensors`` that matches no numeric
            feature, or no sensor left to check.
    """
    numeric = [name for name, spec in dataset.features.items() if spec.type == "numeric"]
    candidates = [n for n in numeric if not any(fnmatch.fnmatch(n, p) for p in checks.exclude)]
    if checks.sensors is not None:
        patterns = checks.sensors
        for pattern in patterns:
            if not fnmatch.filter(candidates, pattern):
                raise SensorCheckError(
                    f"sensor_checks.sensors: {pattern!r} matches no numeric feature "
                    "(clock features matching sensor_checks.exclude are left out)"
                )
    elif dataset.derive.root:
        patterns = []
        for derivation in dataset.derive.root:
            chosen = derivation.columns
            for pattern in [chosen] if isinstance(chosen, str) else chosen:
                if pattern not in patterns:
                    patterns.append(pattern)
    else:
        return {name: name.split("_", 1)[0] for name in candidates} or _none_left()
    kinds = {}
    for name in candidates:
        kind = next((p for p in patterns if fnmatch.fnmatch(name, p)), None)
        if kind is not None:
            kinds[name] = kind
    return kinds or _none_left()


def _none_left() -> dict[str, str]:
    raise SensorCheckError(
        "sensor_checks: no numeric feature is left to check as a sensor; name the sensor "
        "columns in sensor_checks.sensors, or turn the checks off with sensor_checks: null"
    )


def declared_bounds(dataset: DatasetSpec) -> dict[str, tuple[float | None, float | None]]:
    """Return each numeric feature's declared (min, max), for the features that declare one."""
    return {
        name: (spec.min, spec.max)
        for name, spec in dataset.features.items()
        if spec.type == "numeric" and (spec.min is not None or spec.max is not None)
    }


def check_dataset(
    frame: pd.DataFrame, *, dataset: DatasetSpec, checks: SensorChecks
) -> SensorFaults:
    """Check the sensors of a validated table as its dataset declares them.

    The sensors and their kinds come from :func:`sensor_kinds`, the physical ranges from the
    features' ``min``/``max``, the order from the dataset's group and timestamp.

    Raises:
        SensorCheckError: Without a timestamp column, or as :func:`check_sensors` does.
    """
    if dataset.timestamp is None:
        raise SensorCheckError(
            "sensor_checks need dataset.timestamp: a stuck value is judged by how long it lasts"
        )
    return check_sensors(
        frame,
        sensors=sensor_kinds(dataset, checks=checks),
        timestamp=dataset.timestamp,
        group=dataset.group,
        bounds=declared_bounds(dataset),
        checks=checks,
    )


def check_sensors(
    frame: pd.DataFrame,
    *,
    sensors: Mapping[str, str],
    timestamp: str,
    group: str | None = None,
    bounds: Bounds | None = None,
    checks: SensorChecks,
) -> SensorFaults:
    """Find the gaps, stuck values, values out of range, lone jumps and drifts of each sensor.

    Every check at a row reads that row and earlier rows of its group only.

    Args:
        frame: The readings, one row per time (per group); any row order.
        sensors: The columns to check, each with its kind; a jump or a drift is judged against
            the other sensors of the same kind.
        timestamp: The column that orders the rows and times a stuck value.
        group: A column whose rows form separate series (None: one series).
        bounds: Physical (min, max) per sensor, either may be None; sensors it does not name
            are not range-checked.
        checks: The thresholds (``sensor_checks``).

    Raises:
        SensorCheckError: A column missing, a timestamp missing or repeated within a group,
            a repeated index, or no sensor.
    """
    names = list(sensors)
    _check_table(frame, names, timestamp=timestamp, group=group)
    order, times, starts, group_values, tz = _series_order(frame, timestamp=timestamp, group=group)

    values = frame[names].to_numpy(dtype=float, na_value=np.nan)[order]
    previous = np.vstack([np.full((1, len(names)), np.nan), values[:-1]])
    previous[starts] = np.nan
    flags = {
        "gap": np.isnan(values),
        "stuck": _stuck(values, previous, times, checks),
        "out_of_range": _out_of_range(values, names, bounds or {}),
    }
    peers = _peer_groups(names, sensors, checks)
    flags["jump"] = _jumps(values - previous, peers, times, starts, checks)
    found_so_far = flags["gap"] | flags["stuck"] | flags["out_of_range"] | flags["jump"]
    flags["drift"] = _drifts(values, found_so_far, peers, times, starts, checks)
    found = SensorFaults(
        sensors=tuple(names),
        flags=flags,
        times=times,
        group_starts=starts,
        order=order,
        index=frame.index,
        group=group,
        groups=group_values,
        tz=tz,
    )
    log.info("sensor checks over %d rows x %d sensors: %s", len(order), len(names), found.counts())
    return found


def _series_order(
    frame: pd.DataFrame, *, timestamp: str, group: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, str | None]:
    """The rows in series order, and what the checks read of that order.

    Returns the order (by group, then time), the times in it (naive UTC), where each group
    starts, the group of each row (None without groups) and the times' zone.

    Raises:
        SensorCheckError: A time repeats within a group.
    """
    stamps = frame[timestamp]
    tz = None
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        tz = str(stamps.dt.tz)
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    stamps = pd.to_datetime(stamps).astype("datetime64[ns]")
    keys = pd.DataFrame({"t": stamps.to_numpy()})
    if group is not None:
        keys.insert(0, "g", frame[group].to_numpy())
    order = keys.sort_values(list(keys.columns), kind="stable").index.to_numpy()
    times = keys["t"].to_numpy()[order]
    group_values = frame[group].to_numpy()[order] if group is not None else None
    starts = np.zeros(len(order), dtype=bool)
    starts[0] = True
    if group_values is not None:
        starts[1:] = group_values[1:] != group_values[:-1]
    if (~starts[1:] & (times[1:] == times[:-1])).any():
        where = f"within a {group!r} group" if group else "in the table"
        raise SensorCheckError(f"sensor checks: {timestamp!r} repeats a time {where}")
    return order, times, starts, group_values, tz


def lookback_rows(checks: SensorChecks, *, step: timedelta) -> int:
    """Return how many earlier rows the checks read to mark a row as one call over all would.

    A stuck value needs the rows back to ``stuck_after`` ago. A jump needs the previous
    ``scale_days`` calendar days whole, which from a row late in its day is up to
    ``scale_days + 1`` days back. A drift needs those days of deviations, each of which reads
    ``drift_window`` and ``drift_days`` further back, and ``drift_after`` before the row.
    Spreading over the features' lookback adds that lookback on top (a mark at a scored row may
    come from a fault that many rows earlier).

    Args:
        checks: The thresholds (``sensor_checks``).
        step: The time between two rows (15 minutes for the stream).

    Raises:
        SensorCheckError: A step that is not positive.
    """
    if step <= timedelta(0):
        raise SensorCheckError(f"step must be a positive duration, got {step}")
    needs = [timedelta(0)]
    if checks.stuck_after is not None:
        needs.append(checks.stuck_after)
    scale = timedelta(days=checks.scale_days + 1)
    if checks.jump_k is not None:
        needs.append(scale)
    if checks.drift_k is not None:
        lag = timedelta(days=checks.drift_days)
        needs.append(checks.drift_after + scale + checks.drift_window + lag)
    return math.floor(max(needs) / step) + 1


# --- the checks, on arrays in time order --------------------------------------------------


def _check_table(frame: pd.DataFrame, names: list[str], *, timestamp: str, group: str | None):
    """Refuse a table the checks cannot read, naming the column."""
    if not names:
        raise SensorCheckError("sensor checks: no sensor to check")
    if frame.empty:
        raise SensorCheckError("sensor checks: the table has no rows")
    for role, column in (("timestamp", timestamp), ("group", group)):
        if column is not None and column not in frame.columns:
            raise SensorCheckError(f"sensor checks: {role} column {column!r} is not in the table")
        if column is not None and frame[column].isna().any():
            raise SensorCheckError(f"sensor checks: {role} column {column!r} has missing values")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise SensorCheckError(f"sensor checks: sensor column(s) not in the table: {missing}")
    if not frame.index.is_unique:
        raise SensorCheckError("sensor checks: the table's index repeats a label")
    if not pd.api.types.is_datetime64_any_dtype(frame[timestamp]):
        raise SensorCheckError(f"sensor checks: {timestamp!r} does not hold times")


def _stuck(
    values: np.ndarray, previous: np.ndarray, times: np.ndarray, checks: SensorChecks
) -> np.ndarray:
    """Flag readings equal to every reading since more than ``stuck_after`` earlier."""
    if checks.stuck_after is None:
        return np.zeros(values.shape, dtype=bool)
    same = values == previous  # NaN never equals, and previous is NaN at a group's start
    if checks.stuck_allowed:
        same &= ~np.isin(values, checks.stuck_allowed)
    position = np.arange(len(values))[:, None]
    since = np.maximum.accumulate(np.where(same, 0, position), axis=0)
    clock = times.astype(np.int64)
    return (clock[:, None] - clock[since]) > _ns(checks.stuck_after)


def _out_of_range(values: np.ndarray, names: list[str], bounds: Bounds) -> np.ndarray:
    """Flag readings below their sensor's declared min or above its max."""
    out = np.zeros(values.shape, dtype=bool)
    for j, name in enumerate(names):
        low, high = bounds.get(name, (None, None))
        with np.errstate(invalid="ignore"):
            if low is not None:
                out[:, j] |= values[:, j] < low
            if high is not None:
                out[:, j] |= values[:, j] > high
    return out


def _scale(values: np.ndarray, times: np.ndarray, starts: np.ndarray, days: int) -> np.ndarray:
    """Return each row's robust standard deviation of each column, from earlier calendar days.

    Per group and calendar day, the median and the mean of each column's absolute values; a
    row's scale is 1.4826 x the median of the daily medians of the previous ``days`` calendar
    days of its group (1.2533 x the mean of the daily means where that is 0); NaN on a
    series' first day, or where the column never moved.
    """
    code = np.cumsum(starts) - 1  # the group of each row, 0, 1, ...
    day = times.astype("datetime64[D]").astype(np.int64)
    relative = day - day[starts][code]  # calendar days since the group's first day
    span = int(relative.max()) + 1
    key = code * span + relative
    by_day = pd.DataFrame(np.abs(values)).groupby(key, sort=True)
    dense = []
    for daily in (by_day.median(), by_day.mean()):
        table = np.full((int(code[-1]) + 1) * span, np.nan)[:, None].repeat(values.shape[1], 1)
        table[daily.index.to_numpy()] = daily.to_numpy()
        table = table.reshape(-1, span, values.shape[1])
        padded = np.concatenate([np.full((len(table), days, values.shape[1]), np.nan), table], 1)
        dense.append(sliding_window_view(padded, days, axis=1)[:, :span])  # days d-N .. d-1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a day with no earlier day
        scale = _MAD_TO_SD * np.nanmedian(dense[0], axis=-1)
        fallback = _MEAN_ABS_TO_SD * np.nanmean(dense[1], axis=-1)
    scale = np.where(scale > 0, scale, fallback)
    scale[~(scale > 0)] = np.nan  # a column that never moved has no scale to judge by
    return scale.reshape(-1, values.shape[1])[key]


def _peer_groups(
    names: list[str], sensors: Mapping[str, str], checks: SensorChecks
) -> list[np.ndarray]:
    """Return, per kind, the columns compared with each other (enough of them, not excluded)."""
    members: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        if not any(fnmatch.fnmatch(name, p) for p in checks.peer_exclude):
            members.setdefault(sensors[name], []).append(j)
    return [np.array(js) for js in members.values() if len(js) > checks.min_peers]


def _alone(size: np.ndarray, *, bound: float, min_peers: int) -> np.ndarray:
    """Return where every other column of the row (at least ``min_peers``) is below ``bound``.

    ``size`` is (rows, sensors of one kind), each in its own robust standard deviations;
    NaN is a peer that cannot be judged and does not count.
    """
    known = ~np.isnan(size)
    filled = np.where(known, size, -np.inf)
    top = np.partition(filled, size.shape[1] - 2, axis=1)[:, -2:]  # [second largest, largest]
    largest_at = np.argmax(filled, axis=1)
    own = np.arange(size.shape[1])[None, :]
    others_max = np.where(own == largest_at[:, None], top[:, :1], top[:, 1:])
    peers = known.sum(axis=1, keepdims=True) - known
    return (peers >= min_peers) & (others_max < bound)


def _jumps(
    change: np.ndarray,
    groups_of_peers: list[np.ndarray],
    times: np.ndarray,
    starts: np.ndarray,
    checks: SensorChecks,
) -> np.ndarray:
    """Flag changes over ``jump_k`` robust SDs that no other sensor of the kind shows."""
    out = np.zeros(change.shape, dtype=bool)
    if checks.jump_k is None:
        return out
    for columns in groups_of_peers:
        size = np.abs(change[:, columns]) / _scale(
            change[:, columns], times, starts, checks.scale_days
        )
        with np.errstate(invalid="ignore"):
            big = size > checks.jump_k
        out[:, columns] = big & _alone(size, bound=checks.peers_below, min_peers=checks.min_peers)
    return out


def _drifts(
    values: np.ndarray,
    faulty: np.ndarray,
    groups_of_peers: list[np.ndarray],
    times: np.ndarray,
    starts: np.ndarray,
    checks: SensorChecks,
) -> np.ndarray:
    """Flag a sensor whose deviation from its own earlier days alone stays too large too long.

    The deviation is from the reading ``drift_days`` days earlier at the same time, averaged
    over ``drift_window``; the kind's median deviation (demand that changed since, felt by
    every sensor) is taken off, and what is left is judged in its own robust SDs. An earlier
    reading that was itself faulty (``faulty``) is no baseline.
    """
    out = np.zeros(values.shape, dtype=bool)
    if checks.drift_k is None or not groups_of_peers:
        return out
    clock = times.astype(np.int64)
    if starts.sum() > 1:  # one increasing clock: each group after the last, days apart
        apart = clock.max() - clock.min() + _ns(timedelta(days=2 * checks.drift_days))
        clock = clock + (np.cumsum(starts) - 1) * apart
    target = clock - _ns(timedelta(days=checks.drift_days))
    earlier = np.searchsorted(clock, target)
    found = earlier < len(clock)
    found[found] = clock[earlier[found]] == target[found]
    deviation = np.full(values.shape, np.nan)
    deviation[found] = values[found] - values[earlier[found]]
    deviation[found] = np.where(faulty[earlier[found]], np.nan, deviation[found])
    steps = np.diff(times.astype(np.int64))[~starts[1:]]
    step = int(np.median(steps)) if len(steps) else 1
    window = max(1, round(_ns(checks.drift_window) / step))
    smooth = _trailing_mean(deviation, window, starts)
    for columns in groups_of_peers:
        part = smooth[:, columns]
        part = part - _median_of_others(part)
        size = np.abs(part) / _scale(part, times, starts, checks.scale_days)
        with np.errstate(invalid="ignore"):
            big = size > checks.drift_k
        lone = big & _alone(size, bound=checks.peers_below, min_peers=checks.min_peers)
        out[:, columns] = _lasting(lone, clock, checks.drift_after)
    return out


def _median_of_others(values: np.ndarray) -> np.ndarray:
    """Return, for each cell, the median of the other non-NaN cells of its row (else NaN).

    Only the middle of each sorted row is read: leaving one cell out moves the middle by one
    place up when the cell is at or below it, so one sort per row serves every cell.
    """
    ranked = np.sort(values, axis=1)  # NaN sort last
    last = values.shape[1] - 1
    others = (~np.isnan(values)).sum(axis=1, keepdims=True) - 1
    middle = []
    for place in ((others - 1) // 2, others // 2):  # the middle places among the others
        place = np.clip(place, 0, last)
        here = np.take_along_axis(ranked, place, axis=1)
        above = np.take_along_axis(ranked, np.minimum(place + 1, last), axis=1)
        middle.append(np.where(values <= here, above, here))
    median = (middle[0] + middle[1]) / 2
    return np.where((others >= 1) & ~np.isnan(values), median, np.nan)


def _trailing_mean(values: np.ndarray, window: int, starts: np.ndarray) -> np.ndarray:
    """Return the mean of each column over the last ``window`` rows of the same group.

    NaN when the window holds a NaN or reaches before the group's first row.
    """
    if window == 1:
        return values
    n = len(values)
    missing = np.isnan(values)
    total = np.vstack([np.zeros((1, values.shape[1])), np.nan_to_num(values).cumsum(axis=0)])
    holes = np.vstack([np.zeros((1, values.shape[1])), missing.cumsum(axis=0)])
    low = np.arange(n) - window + 1
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    ok = low >= first
    low = np.clip(low, 0, None)
    mean = (total[1:] - total[low]) / window
    mean[(holes[1:] - holes[low]) > 0] = np.nan
    mean[~ok] = np.nan
    return mean


def _lasting(condition: np.ndarray, clock: np.ndarray, longer_than: timedelta) -> np.ndarray:
    """Flag where ``condition`` has held at every row since more than ``longer_than`` ago."""
    position = np.arange(len(condition))[:, None]
    since = np.maximum.accumulate(np.where(condition, 0, position + 1), axis=0)
    since = np.minimum(since, len(condition) - 1)
    return condition & ((clock[:, None] - clock[since]) > _ns(longer_than))


def _ns(duration: timedelta) -> int:
    """Return a duration in whole nanoseconds."""
    return duration // timedelta(microseconds=1) * 1000


def _lookbacks(lookback: int | Mapping[str, int], sensors: tuple[str, ...]) -> np.ndarray:
    """Return the lookback of each sensor, in rows, refusing negative or unknown ones."""
    if isinstance(lookback, Mapping):
        unknown = [name for name in lookback if name not in sensors]
        if unknown:
            raise SensorCheckError(f"lookback: sensor(s) that were not checked: {unknown}")
        rows = [lookback.get(name, 0) for name in sensors]
    else:
        rows = [lookback] * len(sensors)
    for name, value in zip(sensors, rows, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise SensorCheckError(
                f"lookback of {name!r}: expected a whole number of rows >= 0, got {value!r}"
            )
    return np.array(rows, dtype=np.int64)
