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
  below ``jump_peers_below``. A change the network shows at more than one sensor (a demand
  step, a pump switching, a leak felt by the nearest sensor most and by its neighbours too) is
  not a jump of one sensor.

A sensor's robust standard deviation is ``1.4826 x`` the median, over the previous
``jump_scale_days`` calendar days, of each day's median absolute change (``1.2533 x`` the mean
absolute change where that median is 0). Rows of a series' first calendar day have no earlier
day and are not checked for jumps.

**Drift is not flagged.** A slow drift moves one sensor away from the others over days; so does
a small leak close to that sensor (the others, farther away, see less of it), and a growing
leak is what the model is there to find. Without the network's topology, a per-row rule that
flags a drifting sensor would also flag incipient leaks near a sensor, so drift is left to the
model and to the operator, and this module does not report it.

Derived features use trailing windows, so a faulty reading at row ``t`` also affects rows
``t + 1 .. t + lookback``: :meth:`SensorFaults.spread` marks those rows too, naming the sensor.

The faults come back as a :class:`SensorFaults`: :meth:`~SensorFaults.rows` gives the per-row
``sensor_fault`` and ``fault_sensors`` columns, :meth:`~SensorFaults.events` one row per run of
consecutive faulty rows of one sensor and kind (first, last, rows), the same notion of a
contiguous run as alarm events have.
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

from leaklib.params import DatasetSpec, SensorChecks

log = logging.getLogger(__name__)

#: The fault kinds, in the order they are checked and reported, and what each means.
FAULT_KINDS: dict[str, str] = {
    "gap": "no reading (a missing value)",
    "stuck": "the same value repeated for longer than sensor_checks.stuck_after",
    "out_of_range": "a value outside the feature's declared min/max",
    "jump": "a change from the previous row that no other sensor of its kind shows",
}

#: The per-row columns :meth:`SensorFaults.rows` returns.
FAULT_COLUMN = "sensor_fault"
SENSORS_COLUMN = "fault_sensors"

_MAD_TO_SD = 1.4826  # standard deviation of a normal variable per median absolute deviation
_MEAN_ABS_TO_SD = 1.2533  # ... per mean absolute deviation (sqrt(pi / 2))

Bounds = Mapping[str, tuple[float | None, float | None]]


class SensorCheckError(ValueError):
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
    """Find the gaps, stuck values, values out of range and lone jumps of each sensor.

    Every check at a row reads that row and earlier rows of its group only.

    Args:
        frame: The readings, one row per time (per group); any row order.
        sensors: The columns to check, each with its kind; a jump is judged against the other
            sensors of the same kind.
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

    values = frame[names].to_numpy(dtype=float, na_value=np.nan)[order]
    previous = np.vstack([np.full((1, len(names)), np.nan), values[:-1]])
    previous[starts] = np.nan
    flags = {
        "gap": np.isnan(values),
        "stuck": _stuck(values, previous, times, checks),
        "out_of_range": _out_of_range(values, names, bounds or {}),
        "jump": _jumps(values - previous, names, sensors, times, starts, group_values, checks),
    }
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


def lookback_rows(checks: SensorChecks, *, step: timedelta) -> int:
    """Return how many earlier rows the checks read to mark a row as one call over all would.

    A stuck value needs the rows back to ``stuck_after`` ago; a jump needs the previous
    ``jump_scale_days`` calendar days whole, which from a row late in its day is up to
    ``jump_scale_days + 1`` days back. Spreading over the features' lookback adds that
    lookback on top (a mark at a scored row may come from a fault that many rows earlier).

    Args:
        checks: The thresholds (``sensor_checks``).
        step: The time between two rows (15 minutes for the stream).

    Raises:
        SensorCheckError: A step that is not positive.
    """
    if step <= timedelta(0):
        raise SensorCheckError(f"step must be a positive duration, got {step}")
    rows = 0
    if checks.stuck_after is not None:
        rows = math.floor(checks.stuck_after / step) + 1
    if checks.jump_k is not None:
        rows = max(rows, math.ceil(timedelta(days=checks.jump_scale_days + 1) / step))
    return rows


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
    limit = checks.stuck_after // timedelta(microseconds=1) * 1000  # in nanoseconds
    return (clock[:, None] - clock[since]) > limit


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


def _scale(
    change: np.ndarray, times: np.ndarray, groups: np.ndarray | None, days: int
) -> np.ndarray:
    """Return each row's robust standard deviation of each sensor's change, from earlier days.

    Per group and calendar day, the median and mean absolute change of each sensor; a row's
    scale is 1.4826 x the median of the daily medians of the previous ``days`` days (1.2533 x
    the mean of the daily means where that is 0); NaN on a series' first day.
    """
    size = np.abs(change)
    day = times.astype("datetime64[D]")
    keys = [groups if groups is not None else np.zeros(len(day), dtype=np.int8), day]
    by_day = pd.DataFrame(size).groupby(keys, sort=True)
    medians, means = by_day.median(), by_day.mean()
    window = f"{days}D"
    rolled = []
    for daily in (medians, means):
        parts = []
        for _, part in daily.groupby(level=0, sort=False):
            part = part.droplevel(0)
            stat = "median" if daily is medians else "mean"
            parts.append(getattr(part.rolling(window, closed="left"), stat)())
        rolled.append(np.vstack([p.to_numpy() for p in parts]))
    scale = _MAD_TO_SD * rolled[0]
    fallback = _MEAN_ABS_TO_SD * rolled[1]
    scale = np.where(scale > 0, scale, fallback)
    scale[~(scale > 0)] = np.nan  # a sensor that never changed has no scale to judge by
    # map each row to its (group, day) row of the daily table, which is sorted the same way
    first_of_day = np.r_[True, (day[1:] != day[:-1])]
    if groups is not None:
        first_of_day[1:] |= groups[1:] != groups[:-1]
    return scale[np.cumsum(first_of_day) - 1]


def _jumps(
    change: np.ndarray,
    names: list[str],
    sensors: Mapping[str, str],
    times: np.ndarray,
    starts: np.ndarray,
    groups: np.ndarray | None,
    checks: SensorChecks,
) -> np.ndarray:
    """Flag changes over ``jump_k`` robust SDs that no other sensor of the kind shows."""
    out = np.zeros(change.shape, dtype=bool)
    if checks.jump_k is None:
        return out
    eligible = [
        j
        for j, name in enumerate(names)
        if not any(fnmatch.fnmatch(name, p) for p in checks.jump_exclude)
    ]
    members: dict[str, list[int]] = {}
    for j in eligible:
        members.setdefault(sensors[names[j]], []).append(j)
    members = {k: v for k, v in members.items() if len(v) > checks.jump_min_peers}
    if not members:
        return out
    used = sorted(j for js in members.values() for j in js)
    z = np.full(change.shape, np.nan)
    z[:, used] = np.abs(change[:, used]) / _scale(
        change[:, used], times, groups, checks.jump_scale_days
    )
    for columns in members.values():
        columns = np.array(columns)
        size = z[:, columns]
        with np.errstate(invalid="ignore"):
            rows, which = np.nonzero(size > checks.jump_k)
        if not len(rows):
            continue
        peers = size[rows]
        peers[np.arange(len(rows)), which] = np.nan
        enough = (~np.isnan(peers)).sum(axis=1) >= checks.jump_min_peers
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a row whose peers are all NaN
            largest = np.nanmax(peers, axis=1)
        alone = enough & (largest < checks.jump_peers_below)
        out[rows[alone], columns[which[alone]]] = True
    return out


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
