"""The true leaks: leak events from the leak table (or the target), and the leak files read, hashed and snapshotted."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leaklib.leak_events.alarms import Duration, EventError, checked_times, row_spacing
from leaklib.metrics import LEAK_KINDS
from leaklib.params import DatasetSpec
from leaklib.paths import resolve
from leaklib.snapshots import SnapshotStore, load_snapshot, snapshot_table

LEAK_TABLE_COLUMNS = ("leak_id", "start", "end", "kind")
VOLUME_COLUMNS = ("leak_id", "timestamp", "volume_m3")
UNKNOWN_KIND = "unknown"  # a leak read from runs of the target column


# --- leak events -------------------------------------------------------------------------


@dataclass(frozen=True)
class LeakEvent:
    """One leak: it leaks over ``[start, end)``; ``end`` None lasts past the end of the data."""

    leak_id: str
    start: pd.Timestamp
    end: pd.Timestamp | None
    kind: str  # one of metrics.LEAK_KINDS, or "unknown" for a run of the target
    pipe: str | None = None


def leaks_from_table(table: pd.DataFrame) -> list[LeakEvent]:
    """Return the leaks of a leak table (``leak_id``, ``start``, ``end``, ``kind``; ``pipe`` if any).

    An empty ``end`` is a leak lasting past the end of the data.
    """
    missing = [c for c in LEAK_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise EventError(
            f"leak table: missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(LEAK_TABLE_COLUMNS)}"
        )
    ids = table["leak_id"].astype(str)
    if ids.duplicated().any():
        raise EventError(f"leak table: leak_id {ids[ids.duplicated()].iloc[0]!r} repeats")
    kinds = table["kind"].astype(str)
    wrong = sorted(set(kinds) - set(LEAK_KINDS))
    if wrong:
        raise EventError(f"leak table: kind {wrong[0]!r} is not one of {', '.join(LEAK_KINDS)}")
    try:
        starts = pd.to_datetime(table["start"])
        ends = pd.to_datetime(table["end"])
    except (TypeError, ValueError) as exc:
        raise EventError(f"leak table: start and end must be times ({exc})") from exc
    if starts.isna().any():
        raise EventError(f"leak table: leak {ids[starts.isna()].iloc[0]!r} has no start")
    early = ends.notna() & (ends <= starts)
    if early.any():
        raise EventError(f"leak table: leak {ids[early].iloc[0]!r} ends before it starts")
    pipes = table["pipe"].astype(str) if "pipe" in table.columns else None
    return [
        LeakEvent(
            leak_id=ids.iloc[i],
            start=pd.Timestamp(starts.iloc[i]),
            end=None if pd.isna(ends.iloc[i]) else pd.Timestamp(ends.iloc[i]),
            kind=kinds.iloc[i],
            pipe=None if pipes is None else pipes.iloc[i],
        )
        for i in np.argsort(starts.to_numpy(), kind="stable")
    ]


def leaks_from_target(
    times: Any, target: Any, *, spacing: Duration | None = None
) -> list[LeakEvent]:
    """Return each run of target rows as a leak of unknown kind, named by its start.

    A run covers its rows' windows; one that reaches the last row lasts past the data.
    """
    index = checked_times(times)
    flags = np.asarray(target)
    if flags.shape != (len(index),):
        raise EventError(f"target: {flags.shape} values for {len(index)} times")
    if not np.isin(flags, (0, 1)).all():
        raise EventError("target: expected 0/1 or booleans")
    if not len(index):
        return []
    step = row_spacing(index, spacing=spacing)
    leaking = flags.astype(bool)
    edges = np.diff(np.r_[0, leaking.astype(int), 0])
    firsts, lasts = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [
        LeakEvent(
            leak_id=f"leak-{index[a].isoformat()}",
            start=index[a],
            end=None if b == len(index) - 1 else index[b] + step,
            kind=UNKNOWN_KIND,
        )
        for a, b in zip(firsts, lasts, strict=True)
    ]


def volumes_of_leaks(volumes: pd.DataFrame, leaks: Sequence[LeakEvent]) -> pd.DataFrame:
    """Return the volume table checked against the leaks, with times parsed."""
    missing = [c for c in VOLUME_COLUMNS if c not in volumes.columns]
    if missing:
        raise EventError(
            f"leak volumes: missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(VOLUME_COLUMNS)}"
        )
    frame = pd.DataFrame(
        {
            "leak_id": volumes["leak_id"].astype(str).to_numpy(),
            "timestamp": pd.to_datetime(volumes["timestamp"]).to_numpy(),
            "volume_m3": pd.to_numeric(volumes["volume_m3"], errors="coerce").to_numpy(),
        }
    )
    if frame["volume_m3"].isna().any() or (frame["volume_m3"] < 0).any():
        raise EventError("leak volumes: volume_m3 must be numbers of zero or more")
    unknown = sorted(set(frame["leak_id"]) - {leak.leak_id for leak in leaks})
    if unknown:
        raise EventError(f"leak volumes: leak_id {unknown[0]!r} is not in the leak table")
    return frame


# --- from a scored table ----------------------------------------------------------------------


def read_table(path: str, *, parameter: str) -> pd.DataFrame:
    """Read a leak table or volume table (.csv or .parquet; relative to the project)."""
    file = resolve(path)
    if file.suffix not in (".csv", ".parquet"):
        raise EventError(f"{parameter}: {path!r} must be a .csv or .parquet file")
    if not file.is_file():
        raise EventError(f"{parameter}: {path!r} does not exist")
    return pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)


@dataclass(frozen=True)
class Leaks:
    """The true leaks of a stream: the leak table and its volumes (either may be absent)."""

    table: pd.DataFrame | None = None
    volumes: pd.DataFrame | None = None
    sha256: dict[str, str] = field(default_factory=dict)  # file -> content hash, for the record


SNAPSHOT_PREFIX = "snapshot:"  # a leak file pinned to a snapshot (a reproduction's)


def leak_file_hashes(dataset: DatasetSpec) -> dict[str, str | None]:
    """Return the SHA-256 of the leak table and volume files (None: not set or missing)."""
    hashes = {}
    for key in ("leak_table", "leak_volumes"):
        path = getattr(dataset, key)
        if path and path.startswith(SNAPSHOT_PREFIX):
            hashes[key] = path.removeprefix(SNAPSHOT_PREFIX)
            continue
        file = resolve(path) if path else None
        hashes[key] = (
            hashlib.sha256(file.read_bytes()).hexdigest() if file and file.is_file() else None
        )
    return hashes


def _read_leak_file(path: str, *, key: str, store: SnapshotStore | None) -> pd.DataFrame:
    if not path.startswith(SNAPSHOT_PREFIX):
        return read_table(path, parameter=f"dataset.{key}")
    if store is None:
        raise EventError(f"dataset.{key}: {path!r} is a snapshot; reading it needs the store")
    return load_snapshot(path.removeprefix(SNAPSHOT_PREFIX), store=store)


def load_leaks(dataset: DatasetSpec, *, store: SnapshotStore | None = None) -> Leaks:
    """Read ``dataset.leak_table`` and ``dataset.leak_volumes`` (None where not set).

    Either may be ``snapshot:<sha256>`` (a reproduction pins them so), read from ``store``.
    """
    files = {"leak_table": dataset.leak_table, "leak_volumes": dataset.leak_volumes}
    frames = {
        key: _read_leak_file(path, key=key, store=store) if path else None
        for key, path in files.items()
    }
    hashes = {
        path: digest
        for path, digest in zip(files.values(), leak_file_hashes(dataset).values(), strict=True)
        if path and digest
    }
    return Leaks(table=frames["leak_table"], volumes=frames["leak_volumes"], sha256=hashes)


def snapshot_leaks(dataset: DatasetSpec, *, store: SnapshotStore) -> dict[str, Any]:
    """Write the leak table and volumes as snapshots; return their records (empty: none set).

    A run then reads them by hash, as it reads its table, so a reproduction finds them after
    the files changed.
    """
    leaks = load_leaks(dataset, store=store)
    written = {}
    for key, frame in (("table", leaks.table), ("volumes", leaks.volumes)):
        if frame is not None:
            written[key] = snapshot_table(frame, store=store).to_dict()
    return written


def leaks_from_record(recorded: dict[str, Any], *, store: SnapshotStore) -> Leaks:
    """Read the leak table and volumes a run recorded (:func:`snapshot_leaks`) by hash."""
    frames = {
        key: load_snapshot(entry["sha256"], store=store) if entry else None
        for key, entry in ((k, recorded.get(k)) for k in ("table", "volumes"))
    }
    hashes = {key: entry["sha256"] for key, entry in recorded.items() if entry}
    return Leaks(table=frames["table"], volumes=frames["volumes"], sha256=hashes)
