"""The history a request's newest readings need: from the request, else the run's recorded source.

``POST /predict`` may send only the newest readings of a stream. Their derived features and
sensor checks need :func:`leaklib.scoring.lookback_rows` earlier rows. They are taken from the
request's ``history`` first, then from the scoring run's recorded ``dataset.source``, read with a
``dataset.period`` that ends at the first new reading (a BigQuery query parameter, a filtered
Parquet read), when that source lies within the allowed locations. When fewer are found,
:class:`HistoryMissing` says exactly how many earlier rows are missing. (The scorings written so
far are not searched: a sink holds scores, not readings.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pandas as pd

from leaklib.errors import LeakError
from leaklib.leak_events import row_spacing
from leaklib.params import DatasetSpec, Params, PeriodSpec
from leaklib.run_record import RunRecord
from leaklib.scoring import (
    Scored,
    lookback_rows,
    measured_spacing,
    recorded_dataset,
    score_frame,
    selected_rows,
)

EXAMPLE_HOUR = timedelta(hours=1)  # the OpenAPI example: the newest hour of readings


def newest_readings(params: Params, *, within: timedelta = EXAMPLE_HOUR) -> list[dict] | None:
    """Return the source's newest readings (its last ``within`` of time) as request records.

    For the API document's example, a real call; None when the source is no local file or
    cannot be read (the example then shows made-up values).
    """
    dataset = params.dataset
    if dataset.timestamp is None or dataset.group is not None or "://" in dataset.source:
        return None
    try:
        frame = selected_rows(params)
    except LeakError:
        return None
    if frame.empty:
        return None
    times = pd.to_datetime(frame[dataset.timestamp])
    newest = frame[times > times.max() - within]
    columns = [dataset.timestamp, *dataset.features]
    return json.loads(newest[columns].to_json(orient="records", date_format="iso"))


class HistoryMissing(LeakError, ValueError):
    """The newest readings lack the earlier rows their features need; the message counts them."""


def history_for(
    first: pd.Timestamp,
    *,
    rows: int,
    spacing: timedelta,
    params: Params,
    allowed: Callable[[str], bool],
) -> pd.DataFrame:
    """Return the ``rows`` readings before ``first`` in the run's source, as far as it has them.

    Args:
        first: The time of the first new reading.
        rows: How many earlier rows are needed.
        spacing: The row spacing.
        params: Parameters whose ``dataset`` is the run's recorded one.
        allowed: Whether a source location may be read.
    """
    source = params.dataset.source
    if rows == 0 or not allowed(source):
        return pd.DataFrame()
    try:
        window = PeriodSpec(start=first - rows * spacing, end=first)
    except (OverflowError, ValueError):  # before the earliest time a table holds
        return pd.DataFrame()
    dataset = params.dataset.model_copy(update={"period": window})
    try:
        return selected_rows(params.model_copy(update={"dataset": dataset}))
    except LeakError:
        return pd.DataFrame()  # the source is gone or unreadable: the history is missing


def _ns_times(frame: pd.DataFrame, stamp: str) -> pd.Series | None:
    """The frame's times, or None when one is missing or outside 1677 to 2262 (a table's)."""
    try:
        times = pd.to_datetime(frame[stamp], errors="coerce").astype("datetime64[ns]")
    except (OverflowError, ValueError, TypeError):
        return None
    return None if times.isna().any() else times


def _spacing(records: pd.DataFrame, history: pd.DataFrame | None, *, stamp: str) -> Any:
    """The median step between the request's times (None with fewer than two)."""
    times = pd.to_datetime(records[stamp], errors="coerce")
    if history is not None and len(history):
        times = pd.concat([pd.to_datetime(history[stamp], errors="coerce"), times])
    times = times.dropna().drop_duplicates().sort_values()
    try:
        return row_spacing(times).to_pytimedelta() if len(times) >= 2 else None
    except LeakError:  # a history time no table can hold: the schema check names it
        return None


def score_newest(
    records: pd.DataFrame,
    *,
    history: pd.DataFrame | None,
    run: RunRecord,
    params: Params,
    scored_at: str,
    model: Any,
    allowed: Callable[[str], bool],
) -> Scored:
    """Score the newest readings of a stream, their lookback found in the request or the source.

    Args:
        records: The newest readings, each answered.
        history: Earlier readings the request carries (None: none).
        run: The run record whose model scores.
        params: The server's parameters (sensor checks, row spacing).
        scored_at: When, as an ISO-8601 string.
        model: The run's fitted model.
        allowed: Whether the run's recorded source may be read (the allow-list).

    Raises:
        HistoryMissing: Naming how many earlier rows, before which time, are missing.
    """
    dataset = recorded_dataset(run)
    checks = params.sensor_checks
    if dataset.group is not None or dataset.timestamp is None:  # whole series are sent
        return score_frame(records, run=run, scored_at=scored_at, model=model, checks=checks)
    stamp = dataset.timestamp
    sent = records if history is None else pd.concat([history, records], ignore_index=True)
    times = _ns_times(records, stamp)
    if times is None or (history is not None and _ns_times(history, stamp) is None):
        # a time no table of readings holds: scored as sent, the checks name it
        return score_frame(sent, run=run, scored_at=scored_at, model=model, checks=checks)
    first = pd.Timestamp(times.min())
    spacing = _request_spacing(
        records, history, first=first, dataset=dataset, params=params, allowed=allowed
    )
    need = lookback_rows(dataset, checks=checks, spacing=spacing)
    earlier = _earlier_rows(
        records, history, first=first, need=need, spacing=spacing, dataset=dataset,
        params=params, allowed=allowed,
    )  # fmt: skip
    table = pd.concat([earlier, records], ignore_index=True)
    done = score_frame(table, run=run, scored_at=scored_at, model=model, checks=checks, since=first)
    return replace(done, spacing=spacing)


def _request_spacing(
    records: pd.DataFrame,
    history: pd.DataFrame | None,
    *,
    first: pd.Timestamp,
    dataset: DatasetSpec,
    params: Params,
    allowed: Callable[[str], bool],
) -> timedelta:
    """The row spacing: given, else the request's, else measured in the run's source.

    Raises:
        HistoryMissing: None of them tells it.
    """
    spacing = params.dataset.row_spacing or dataset.row_spacing
    if spacing is None:
        spacing = _spacing(records, history, stamp=dataset.timestamp)
    if spacing is None and allowed(dataset.source):
        try:
            spacing = measured_spacing(
                params.model_copy(update={"dataset": dataset}),
                since=(first - timedelta(days=1)).to_pydatetime(),
                until=first.to_pydatetime(),
            )
        except (LeakError, OverflowError, ValueError):  # before the earliest time a table holds
            spacing = None
    if spacing is None:
        raise HistoryMissing(
            "send two readings or more (or set dataset.row_spacing): the row spacing tells "
            "how far back the history goes"
        )
    return spacing


def _earlier_rows(
    records: pd.DataFrame,
    history: pd.DataFrame | None,
    *,
    first: pd.Timestamp,
    need: int,
    spacing: timedelta,
    dataset: DatasetSpec,
    params: Params,
    allowed: Callable[[str], bool],
) -> pd.DataFrame:
    """The ``need`` rows before ``first``: the request's history, then the run's source.

    Raises:
        HistoryMissing: Fewer are found; the message counts the missing rows and says where
            they were looked for.
    """
    stamp = dataset.timestamp
    earlier = pd.DataFrame() if history is None else history
    if len(earlier):
        at = pd.to_datetime(earlier[stamp])
        try:
            keep = (at < first) & (at >= first - need * spacing)  # the lookback only
        except (OverflowError, ValueError):  # reaches before any time a table holds
            keep = at < first
        earlier = earlier[keep]
    from_request = len(earlier)
    if from_request < need:
        found = history_for(
            first,
            rows=need,
            spacing=spacing,
            params=params.model_copy(update={"dataset": dataset}),
            allowed=allowed,
        )
        if len(found):
            found = found[[c for c in records.columns if c in found.columns]]
            times = set(pd.to_datetime(earlier[stamp])) if from_request else set()
            found = found[~pd.to_datetime(found[stamp]).isin(times)]
            earlier = pd.concat([found, earlier], ignore_index=True) if from_request else found
    have = len(earlier)
    if have < need:
        raise HistoryMissing(
            f"the readings from {first.isoformat()} need {need} earlier rows of history (the "
            f"derived features' and the sensor checks' lookback); {need - have} are missing "
            f"({from_request} in the request's history, {have - from_request} in the run's "
            f"source {dataset.source!r}): send them as history"
        )
    return earlier
