"""Which rows are held out, and which rows a model was trained on: one rule for both.

The holdout is chosen so that its membership never moves when the table grows or the seed
changes; the promotion gate relies on that, and on :class:`TrainedOn`, to score the champion
only on rows it never saw.

- **Groups** (``dataset.group`` set): a group is in the holdout when the SHA-256 of
  ``"holdout:" + str(value)`` (the text form, as :mod:`leaklib.sampling` hashes a group),
  read as a number in [0, 1), is below ``test_size``. The prefix keeps the holdout
  independent of ``dataset.sample``, which hashes the bare value: without it a
  ``{fraction: 0.1}`` sample would keep only groups that are all in a 0.2 holdout.
- **Rows** (no group): the same rule on a 64-bit hash of each row's declared feature and
  target values (pandas' ``hash_pandas_object`` with the fixed key :data:`ROW_HASH_KEY`:
  vectorised, 0.1 s for 100,000 rows where SHA-256 of each row's text took 8 s), so a row
  that stays unchanged in a grown table keeps its side.
- **Time** (``split.by: time``): the holdout is every row from ``split.holdout_start`` on, or
  the last ``test_size`` of the time span (from ``first + (1 - test_size) * span``). The
  record keeps the training period, and a later gate leaves out holdout rows inside it.
- **Both classes on both sides**: when the plain threshold holds out no unit of a class
  (units with and without a leak), that class's lowest-hash unit is held out; when it holds
  out every unit of a class, the highest-hash one is kept for training. The split's ``rule``
  says when this happened. A grown table can then only move such a unit back to its plain
  side, so no unit a model trained on ever enters a later holdout through the first case.

The seed does not enter the split; it still drives the model and the folds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from leaklib.errors import LeakError
from leaklib.params import DatasetSpec, SplitSpec
from leaklib.run_record import RunRecord, SnapshotRef

log = logging.getLogger(__name__)

HOLDOUT_SALT = "holdout:"
RULE_GROUP = "group hash < test_size"
RULE_ROW = "row hash < test_size"
ADJUSTED = "; adjusted so both classes are on both sides: "
MAX_RECORDED_GROUPS = 20_000  # a run record names its training groups up to this many
ROW_HASH_KEY = "leaklib:holdout:"  # 16 bytes, the key of pandas' row hash

Units = Literal["group", "row", "time"]


class SplitError(LeakError, ValueError):
    """The table cannot be split as the parameters ask; the message names the parameter."""


def holdout_position(text: str) -> float:
    """Return where a unit's text falls in [0, 1): the first 64 bits of its salted SHA-256."""
    digest = hashlib.sha256((HOLDOUT_SALT + text).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def row_hashes(frame: pd.DataFrame, columns: Iterable[str]) -> pd.Series:
    """Return each row's 64-bit hash of its values of ``columns``: a row split's identity."""
    columns = list(columns)
    if not columns:
        raise SplitError("a row split needs at least one declared column to identify a row")
    hashed = pd.util.hash_pandas_object(frame[columns], index=False, hash_key=ROW_HASH_KEY)
    return hashed.reset_index(drop=True).set_axis(frame.index)


def identity_columns(features: Iterable[str], target: str) -> list[str]:
    """Return the columns whose values identify a row: the declared features and the target."""
    return [*features, target]


def unit_keys(frame: pd.DataFrame, *, group: str | None, columns: Iterable[str]) -> pd.Series:
    """Return the unit each row belongs to: its group's text, or its own values' hash."""
    if group:
        codes, uniques = pd.factorize(frame[group])
        texts = np.array([str(v) for v in uniques], dtype=object)
        return pd.Series(np.where(codes >= 0, texts[codes], "nan"), index=frame.index)
    return row_hashes(frame, columns)


def _positions(names: np.ndarray, *, units: str) -> np.ndarray:
    """Return each unit's place in [0, 1): salted SHA-256 of a group, or a row's hash."""
    if units == "row":
        return names.astype(np.uint64) / 2.0**64
    return np.array([holdout_position(k) for k in names])


@dataclass(frozen=True)
class HoldoutSplit:
    """Train and holdout row positions, and how the holdout was chosen."""

    train: np.ndarray
    holdout: np.ndarray
    units: Units
    rule: str
    test_size: float
    train_groups: list[Any] = field(default_factory=list)
    train_period: tuple[str, str] | None = None  # first and last training timestamp (time)
    holdout_start: str | None = None  # time: the holdout's first timestamp

    def describe(self) -> str:
        """Return one sentence on how the holdout was chosen, for the train report."""
        if self.units == "time":
            return (
                f"Holdout: every row from {self.holdout_start} on ({self.rule}); the model "
                f"trains on {self.train_period[0]} to {self.train_period[1]}, never on the future."
            )
        what = "groups" if self.units == "group" else "rows"
        return (
            f"Holdout: {what} whose salted SHA-256 falls below test_size {self.test_size:g} "
            f"({self.rule}); membership does not depend on the seed or on other {what}."
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the split as the run record keeps it (``split``), without row positions."""
        plain = asdict(self)
        del plain["train"], plain["holdout"]
        plain["train_groups"] = (
            self.train_groups if len(self.train_groups) <= MAX_RECORDED_GROUPS else None
        )
        plain["train_rows"], plain["holdout_rows"] = len(self.train), len(self.holdout)
        return plain


def split_holdout(
    frame: pd.DataFrame,
    *,
    target: str,
    group: str | None,
    columns: list[str],
    test_size: float,
) -> HoldoutSplit:
    """Split rows into train and holdout by the hash of each unit (group or row).

    Args:
        frame: The snapshot.
        target: The binary target column.
        group: The column whose rows stay together, or None to split single rows.
        columns: The columns that identify a row when there is no group
            (:func:`identity_columns`).
        test_size: The share of units held out.

    Raises:
        SplitError: A class has too few units to be on both sides.
    """
    units: Units = "group" if group else "row"
    keys = unit_keys(frame, group=group, columns=columns)
    has_positive = frame[target].groupby(keys.to_numpy()).max()
    names = has_positive.index.to_numpy()
    position = _positions(names, units=units)
    classes = has_positive.to_numpy()
    chosen = position < test_size
    moved = _both_sides(chosen, position, classes, test_size=test_size, units=units)
    rule = (RULE_GROUP if group else RULE_ROW) + (ADJUSTED + "; ".join(moved) if moved else "")
    held = set(names[chosen].tolist())
    in_holdout = keys.isin(held).to_numpy()
    train_groups = sorted(frame[group][~in_holdout].unique().tolist(), key=str) if group else []
    log.info("holdout: %d of %d %ss (%s)", chosen.sum(), len(names), units, rule)
    return HoldoutSplit(
        train=np.flatnonzero(~in_holdout),
        holdout=np.flatnonzero(in_holdout),
        units=units,
        rule=rule,
        test_size=test_size,
        train_groups=train_groups,
    )


def choose_holdout(
    frame: pd.DataFrame,
    *,
    dataset: DatasetSpec,
    split: SplitSpec,
    test_size: float,
) -> HoldoutSplit:
    """Return the run's holdout as the ``split`` parameters say (by hash, or by time)."""
    if split.by == "time":
        return split_by_time(
            frame,
            target=dataset.target,
            timestamp=dataset.timestamp,
            test_size=test_size,
            holdout_start=split.holdout_start,
        )
    return split_holdout(
        frame,
        target=dataset.target,
        group=dataset.group,
        columns=identity_columns(dataset.features, dataset.target),
        test_size=test_size,
    )


def split_by_time(
    frame: pd.DataFrame,
    *,
    target: str,
    timestamp: str,
    test_size: float,
    holdout_start: Any = None,
) -> HoldoutSplit:
    """Hold out every row from ``holdout_start`` on, or the last ``test_size`` of the span.

    Raises:
        SplitError: The timestamp is missing, or a part would hold no row or a single class.
    """
    if timestamp not in frame.columns:
        raise SplitError(f"split.by: time: the timestamp column {timestamp!r} is not in the table")
    times = pd.to_datetime(frame[timestamp])
    if times.isna().any():
        raise SplitError(f"split.by: time: the timestamp column {timestamp!r} has missing values")
    first, last = times.min(), times.max()
    if holdout_start is not None:
        start, rule = pd.Timestamp(holdout_start), "time >= split.holdout_start"
    else:
        start = first + (1 - test_size) * (last - first)
        start, rule = times[times >= start].min(), f"the last {test_size:g} of the time span"
    in_holdout = (times >= start).to_numpy()
    for part, mask in (("training part", ~in_holdout), ("holdout", in_holdout)):
        classes = frame[target].to_numpy()[mask]
        if len(np.unique(classes)) < 2:
            raise SplitError(
                f"split.by: time with holdout start {start}: the {part} holds "
                f"{'no rows' if not len(classes) else 'a single class'} (table: {first} to "
                f"{last}); move split.holdout_start or change test_size"
            )
    trained = times[~in_holdout]
    return HoldoutSplit(
        train=np.flatnonzero(~in_holdout),
        holdout=np.flatnonzero(in_holdout),
        units="time",
        rule=rule,
        test_size=test_size,
        train_period=(str(trained.min()), str(trained.max())),
        holdout_start=str(start),
    )


def _both_sides(
    chosen: np.ndarray, position: np.ndarray, classes: np.ndarray, *, test_size: float, units: str
) -> list[str]:
    """Move the fewest units so that each class has units on both sides; say which moved."""
    moved = []
    for cls in np.unique(classes):
        members = np.flatnonzero(classes == cls)
        if len(members) < 2:
            raise SplitError(
                f"test_size {test_size} leaves no training {units}s with class {cls} "
                f"(only {len(members)} {units} of that class; both parts need one)"
            )
        if not chosen[members].any():
            chosen[members[np.argmin(position[members])]] = True
            moved.append(f"class {cls}'s lowest-hash {units} held out")
        elif chosen[members].all():
            chosen[members[np.argmax(position[members])]] = False
            moved.append(f"class {cls}'s highest-hash {units} kept for training")
    return moved


# ---------------------------------------------------------------- what a champion saw


@dataclass(frozen=True)
class TrainedOn:
    """The rows a model was trained on, as far as its record and snapshots tell."""

    units: Units | None  # None: unknown
    keys: frozenset[str] = frozenset()
    source: str = "unknown"  # "record", "snapshots" or "unknown"
    note: str = ""
    period: tuple[str, str] | None = None  # units "time": first and last training timestamp

    @property
    def known(self) -> bool:
        """Whether the training rows could be established at all."""
        return self.units is not None

    def seen(
        self,
        frame: pd.DataFrame,
        *,
        group: str | None,
        columns: Iterable[str],
        timestamp: str | None = None,
    ) -> np.ndarray:
        """Return a mask of the rows of ``frame`` that the model was trained on."""
        if not self.known:
            return np.zeros(len(frame), dtype=bool)
        if self.units == "time":
            if not timestamp:
                raise SplitError("the champion was split by time, but this table has no timestamp")
            times = pd.to_datetime(frame[timestamp])
            first, last = (pd.Timestamp(t) for t in self.period)
            return ((times >= first) & (times <= last)).to_numpy()
        if self.units == "group" and not group:
            raise SplitError("the champion was split by group, but this table has no group")
        keys = unit_keys(frame, group=group if self.units == "group" else None, columns=columns)
        return keys.isin(self.keys).to_numpy()


UNKNOWN_NOTE = (
    "what the champion was trained on cannot be established ({why}); it is compared on the "
    "whole holdout, which may favour it"
)


def trained_on(
    run: RunRecord,
    *,
    group: str | None,
    columns: list[str],
    load_snapshot: Callable[[str], pd.DataFrame],
    timestamp: str | None = None,
) -> TrainedOn:
    """Return what a run's model was trained on: from its record, else from its snapshots.

    Args:
        run: The champion's run record (``split``, ``snapshot`` and ``holdout``).
        group: The challenger's group column (units are compared by it).
        columns: The challenger's declared feature and target columns (a row's identity
            when there is no group).
        load_snapshot: Returns a snapshot frame from its SHA-256.
        timestamp: The challenger's timestamp column (a time split's period is compared by it).
    """
    split = run.split or {}
    if timestamp and split.get("units") == "time" and split.get("train_period"):
        return TrainedOn(units="time", source="record", period=tuple(split["train_period"]))
    if group and split.get("units") == "group" and split.get("train_groups") is not None:
        keys = frozenset(str(v) for v in split["train_groups"])
        return TrainedOn(units="group", keys=keys, source="record")
    snapshot, holdout = run.snapshot or SnapshotRef(), run.holdout or SnapshotRef()
    if not (snapshot.sha256 and holdout.sha256):
        return TrainedOn(None, note=UNKNOWN_NOTE.format(why="its record names no snapshots"))
    try:
        table = load_snapshot(snapshot.sha256)
        held = load_snapshot(holdout.sha256)
    except Exception as exc:  # noqa: BLE001 - any store error means: cannot tell
        why = f"its snapshots cannot be read: {type(exc).__name__}: {exc}"
        return TrainedOn(None, note=UNKNOWN_NOTE.format(why=why))
    use_group = group if group and group in table.columns and group in held.columns else None
    missing = [c for c in columns if c not in table.columns or c not in held.columns]
    if not use_group and missing:
        why = f"its snapshot lacks {', '.join(missing[:3])}"
        return TrainedOn(None, note=UNKNOWN_NOTE.format(why=why))
    all_keys = unit_keys(table, group=use_group, columns=columns)
    held_keys = set(unit_keys(held, group=use_group, columns=columns))
    keys = frozenset(k for k in all_keys.unique() if k not in held_keys)
    return TrainedOn(units="group" if use_group else "row", keys=keys, source="snapshots")


@dataclass(frozen=True)
class Comparison:
    """Which holdout rows the gate compares on, and how many it left out and why."""

    rows: int
    groups: int | None
    left_out_rows: int
    left_out_groups: int | None
    source: str
    why: str
    enough: bool
    min_rows: int

    def to_dict(self) -> dict[str, Any]:
        """Return the comparison as plain values for the decision."""
        return asdict(self)

    def summary(self) -> str:
        """Return one sentence for the report and the decision text."""
        groups = f" ({self.left_out_groups} groups)" if self.left_out_groups is not None else ""
        return f"{self.left_out_rows:,} holdout rows{groups} left out: {self.why}"


def comparison_rows(
    holdout: pd.DataFrame,
    seen: TrainedOn,
    *,
    group: str | None,
    columns: list[str],
    min_rows: int,
    timestamp: str | None = None,
) -> tuple[np.ndarray, Comparison]:
    """Return the mask of holdout rows the champion never saw, and what was left out."""
    mask = ~seen.seen(holdout, group=group, columns=columns, timestamp=timestamp)
    left = int((~mask).sum())
    if not seen.known:
        why = seen.note
    elif left:
        inside = (
            f" (its training period {seen.period[0]} to {seen.period[1]})"
            if seen.units == "time"
            else ""
        )
        why = (
            f"the champion was trained on them{inside} (established from its {seen.source}); "
            "they are left out of the comparison and the bootstrap"
        )
    else:
        why = f"none: the champion never saw these rows (established from its {seen.source})"
    groups = left_groups = None
    if group:
        groups = int(holdout.loc[mask, group].nunique())
        left_groups = int(holdout.loc[~mask, group].nunique())
    return mask, Comparison(
        rows=int(mask.sum()),
        groups=groups,
        left_out_rows=left,
        left_out_groups=left_groups,
        source=seen.source,
        why=why,
        enough=bool(mask.sum() >= min_rows),
        min_rows=min_rows,
    )
