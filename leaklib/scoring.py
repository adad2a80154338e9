"""Score new readings with a recorded model (the champion, or a given run's), as they arrive.

The table is checked against the model's recorded dataset (its declared features; the target
is optional; a value outside a declared range is marked by the sensor checks, not refused), the
same derivations are applied, and each row gets its leak probability and an alarm at the
model's own threshold, unless a sensor fault marks the row (:mod:`leaklib.sensor_faults`; the
alarm it would have raised is counted as ``suppressed``).

``--since T`` reads the source from ``T`` less :func:`lookback_rows` rows (the derive block's
lookback plus the sensor checks', times ``dataset.row_spacing``) through ``dataset.period``, and
writes the rows from ``T`` on; without it, each series' first lookback rows are read for their
history only. Rows go to a sink (:mod:`leaklib.sinks`), never a model's row twice (only rows
after the last one it scored there), and their leak and sensor-fault events beside them
(:mod:`leaklib.score_events`), an open event continued. Each scoring is recorded in the
metadata store (collection ``scorings``): which model, which input, how many rows, alarms,
suppressed alarms and events, and where the events went. The same input scored with the same
model into the same destination again adds nothing: its scoring id is the hash of the three.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from leaklib import (
    champion,
    leak_events,
    models,
    plots,
    run_record,
    score_events,
    sensor_faults,
    sinks,
)
from leaklib.errors import LeakError
from leaklib.features import derive_dataset, model_features
from leaklib.leak_location import Locator
from leaklib.metadata import ConflictError, MetadataStore
from leaklib.modelling import feature_frame
from leaklib.params import DatasetSpec, Params, PeriodSpec, SensorChecks
from leaklib.run_record import RunRecord
from leaklib.schema import limit_groups, validate_for_scoring, within_period
from leaklib.score_events import FAULT, LEAK
from leaklib.sinks import SCORING_ID, write_scores
from leaklib.snapshots import canonical_bytes, open_snapshot_store, sha256_hex
from leaklib.sources import extract_source

log = logging.getLogger(__name__)

SCORINGS = "scorings"


class ScoringError(LeakError, RuntimeError):
    """A table cannot be scored; the message says what is missing."""


@dataclass(frozen=True)
class Scoring:
    """One scoring: which model scored which input, and what it found."""

    scoring_id: str
    run_id: str
    model_sha256: str
    input_sha256: str
    rows: int
    alarms: int
    threshold: float
    destination: str
    scored_at: str
    added: int  # rows written this time (0: this scoring was there already)
    events_destination: str = ""  # where its events went (beside the rows)
    leak_events: int = 0  # leak alarm events it opened, extended or closed
    fault_events: int = 0  # sensor-fault events it opened, extended or closed
    event_ids: list[str] = field(default_factory=list)  # the ids of those events
    suppressed_alarms: int = 0  # rows whose alarm a sensor fault suppressed
    skipped: int = 0  # leading rows read for their history only (without --since)
    since: str | None = None
    until: str | None = None
    run_dataset: DatasetSpec | None = None  # the scoring model's dataset (keys, target)
    scored: pd.DataFrame | None = field(default=None, repr=False, compare=False)  # the rows
    events: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    spacing: pd.Timedelta | None = field(default=None, repr=False, compare=False)
    located_events: int = 0  # leak events it ranked (new or extended; localisation on)
    locator: Locator | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the scoring as plain values for the ``scorings`` collection."""
        skip = ("added", "run_dataset", "scored", "events", "spacing", "locator")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


@dataclass(frozen=True)
class Scored:
    """Scored rows, with what their events need."""

    rows: pd.DataFrame  # one row per scored row, sorted by group and time
    deviation: pd.DataFrame  # each sensor's relative deviation at those rows
    faults: sensor_faults.SensorFaults | None  # the faults found at those rows (not spread)
    history: int  # rows read before them for their history only
    spacing: timedelta | None = None  # the row spacing, when the caller knows it
    derived: pd.DataFrame | None = None  # the rows read with their derived columns (to locate)


def model_run(store: MetadataStore, *, model_name: str, run_id: str | None) -> RunRecord:
    """Return the run whose model scores: ``run_id``'s, else the champion's of ``model_name``."""
    if run_id is None:
        pointer = champion.current_champion(store, model_name=model_name)
        if pointer is None:
            raise ScoringError(
                f"no champion yet for model {model_name!r} in {store.uri}: train one with "
                "`leak run`, or name a run with --run"
            )
        run_id = pointer["run_id"]
    run = run_record.get_run(store, run_id)
    if not (run.model and run.model.sha256):
        raise ScoringError(f"run {run_id!r} has no stored model file to score with")
    return run


def recorded_dataset(run: RunRecord) -> DatasetSpec:
    """Return the dataset a run's model was trained on (its keys, features, derivations)."""
    return DatasetSpec.model_validate(run.recorded_params()["dataset"])


def lookback_rows(dataset: DatasetSpec, *, checks: SensorChecks | None, spacing: timedelta) -> int:
    """Return how many earlier rows of a series scoring a row needs: derivations, then checks.

    The derive block's lookback, plus the sensor checks' (:func:`sensor_faults.lookback_rows`,
    which already counts the spreading of a fault over the features' rows).

    Raises:
        ScoringError: A derivation needs its series from the start (``baseline: first``).
    """
    derive = dataset.derive.lookback
    if derive is None:
        raise ScoringError(
            "--since: a derivation of the model's dataset needs each series from its start "
            "(baseline: first); score whole series without --since"
        )
    return derive + (sensor_faults.lookback_rows(checks, step=spacing) if checks else 0)


def _unbounded(dataset: DatasetSpec) -> DatasetSpec:
    """The dataset with no declared min/max: a value out of range is marked, not refused."""
    features = {
        name: spec.model_copy(update={"min": None, "max": None})
        for name, spec in dataset.features.items()
    }
    return dataset.model_copy(update={"features": features})


def _position(table: pd.DataFrame, group: str | None) -> np.ndarray:
    """Each row's place in its series (the table sorted by group and time)."""
    if group is None:
        return np.arange(len(table))
    return table.groupby(group, sort=False).cumcount().to_numpy()


def score_frame(
    raw: pd.DataFrame,
    *,
    run: RunRecord,
    scored_at: str,
    model: Any = None,
    checks: SensorChecks | None = None,
    since: datetime | None = None,
    skip: int = 0,
) -> Scored:
    """Return one row per scored input row: keys, probability, alarm, fault, and the model's ids.

    The rows come back sorted by group and time. Rows before ``since`` (or the first ``skip``
    rows of each series) are read for their history only and left out. With ``checks``, a row
    whose features depend on a faulty reading (:mod:`leaklib.sensor_faults`) is marked
    ``sensor_fault`` (``fault_sensors`` names them) and raises no alarm; ``suppressed`` says
    that it would have.

    Args:
        raw: The readings, in the model's recorded schema (the target is optional); values
            outside a feature's declared range are scored and marked, not refused.
        run: The run record whose model scores.
        scored_at: When, as an ISO-8601 string.
        model: That run's fitted model when the caller holds it already (a server scoring
            many requests); read from the model store, verified by hash, when omitted.
        checks: The sensor checks (``sensor_checks``; None: no checks).
        since: The first time to keep.
        skip: Leading rows of each series to leave out (their history is too short).
    """
    dataset = recorded_dataset(run)
    table = _prepared_table(raw, dataset)
    if model is None:
        model = load_run_model(run)
    features = model_features(dataset, run.derived_features)
    proba = model.predict_proba(feature_frame(table, features))[:, 1]
    found, marks = _fault_marks(table, dataset=dataset, checks=checks)
    out = _alarm_rows(table, proba, marks, dataset=dataset, run=run, scored_at=scored_at)
    keep = _position(table, dataset.group) >= skip
    if since is not None:
        keep &= (pd.to_datetime(table[dataset.timestamp]) >= pd.Timestamp(since)).to_numpy()
    sensors = list(found.sensors) if found is not None else list(dataset.features)
    deviation = score_events.deviations(table, sensors=sensors, derived=run.derived_features or [])
    return Scored(
        rows=out[keep].reset_index(drop=True),
        deviation=deviation[keep].reset_index(drop=True),
        faults=None if found is None else score_events.kept_faults(found, keep),
        history=int((~keep).sum()),
        derived=table,
    )


def _prepared_table(raw: pd.DataFrame, dataset: DatasetSpec) -> pd.DataFrame:
    """The readings checked against the model's schema, sorted by group and time, derived."""
    target = dataset.target
    table = validate_for_scoring(
        raw.drop(columns=[target], errors="ignore"), dataset=_unbounded(dataset)
    )
    if target in raw:  # known leaks come along as they are (a day may have none)
        table[target] = pd.to_numeric(raw[target], errors="coerce").to_numpy()
    keys = [c for c in (dataset.group, dataset.timestamp) if c]
    if keys:
        table = table.sort_values(keys, kind="stable").reset_index(drop=True)
    table, _ = derive_dataset(table, dataset)
    return table


def _fault_marks(
    table: pd.DataFrame, *, dataset: DatasetSpec, checks: SensorChecks | None
) -> tuple[sensor_faults.SensorFaults | None, pd.DataFrame | None]:
    """The sensor faults found in the table, and each row's marks (spread over its features).

    Without checks, neither: no row is marked.
    """
    if checks is None:
        return None, None
    found = sensor_faults.check_dataset(table, dataset=dataset, checks=checks)
    spread = checks.spread_rows
    return found, found.spread(dataset.derive.lookback or 0 if spread is None else spread).rows()


def _alarm_rows(
    table: pd.DataFrame,
    proba: np.ndarray,
    marks: pd.DataFrame | None,
    *,
    dataset: DatasetSpec,
    run: RunRecord,
    scored_at: str,
) -> pd.DataFrame:
    """Each row's keys, probability, fault marks, alarm (or suppressed alarm) and model ids."""
    threshold = run.threshold
    columns = [c for c in (dataset.group, dataset.timestamp, dataset.target) if c in table]
    out = table[columns].copy()
    out["probability"] = proba.round(6)
    raised = out["probability"].to_numpy() >= threshold
    faulty = np.zeros(len(out), dtype=bool)
    out[sensor_faults.FAULT_COLUMN] = False
    out[sensor_faults.SENSORS_COLUMN] = ""
    if marks is not None:
        faulty = marks[sensor_faults.FAULT_COLUMN].to_numpy(dtype=bool)
        out[sensor_faults.FAULT_COLUMN] = faulty
        out[sensor_faults.SENSORS_COLUMN] = marks[sensor_faults.SENSORS_COLUMN].to_numpy()
    out["alarm"] = raised & ~faulty
    out["suppressed"] = raised & faulty
    out["threshold"] = threshold
    out["model_sha256"] = run.model.sha256
    out["run_id"] = run.run_id
    out["scored_at"] = pd.Timestamp(scored_at)
    return out


def load_run_model(run: RunRecord) -> Any:
    """Return a run's fitted model, read from its model store and verified by hash."""
    return models.load_model_file(run.model.sha256, store=open_snapshot_store(run.model.store))


def operator_view(done: Scoring, *, params: Params) -> Any:
    """Return the operator's timeline of a scoring's rows: probability, events, faults, leaks.

    True leaks are shaded when the parameters name a leak table (``dataset.leak_table``).
    """
    events = done.events if done.events is not None else pd.DataFrame(columns=["kind"])
    return plots.plot_event_timeline(
        _matched(done, params=params),
        times=done.scored[done.run_dataset.timestamp],
        proba=done.scored["probability"].to_numpy(),
        threshold=done.threshold,
        faults=events[events["kind"] == FAULT],
    )


def _matched(done: Scoring, *, params: Params) -> leak_events.EventResult:
    """A scoring's counted leak events matched to the true leaks (none without a leak table)."""
    times = done.scored[done.run_dataset.timestamp]
    leaks: list[leak_events.LeakEvent] = []
    if params.dataset.leak_table:
        leaks = leak_events.leaks_from_table(leak_events.load_leaks(params.dataset).table)
    events = done.events if done.events is not None else pd.DataFrame(columns=["kind"])
    mine = events[(events["kind"] == LEAK) & events.get("counts", True)]
    return leak_events.match_events(
        [_event(e, done.spacing) for _, e in mine.iterrows()],
        leaks,
        start=pd.Timestamp(times.min()),
        end=pd.Timestamp(times.max()) + done.spacing,
        grace=params.events.grace,
        spacing=done.spacing,
        water_price_eur_m3=params.events.water_price_eur_m3,
        false_alarm_cost_eur=params.events.false_alarm_cost_eur,
    )


def _event(row: pd.Series, spacing: pd.Timedelta) -> leak_events.AlarmEvent:
    return leak_events.AlarmEvent(
        event_id=str(row["event_id"]),
        first_alarm=pd.Timestamp(row["first"]),
        last_alarm=pd.Timestamp(row["last"]),
        rows=int(row["rows"]),
        closed=bool(row["closed"]),
        spacing=spacing,
        peak=float(row["peak_probability"]),
    )


def selected_rows(params: Params) -> pd.DataFrame:
    """Return the rows of ``params.dataset.source`` its parameters select, as a run keeps them.

    ``dataset.sample``, ``dataset.max_groups`` and ``dataset.period`` apply (the period at the
    source: a query parameter for BigQuery, a filtered read for a Parquet file); a Parquet file
    or a BigQuery table gives its declared columns only.
    """
    frame = extract_source(params).frame
    dataset = params.dataset
    if dataset.max_groups is not None and dataset.group in frame.columns:
        frame = limit_groups(frame, group=dataset.group, max_groups=dataset.max_groups)
    if dataset.period is not None and dataset.timestamp in frame.columns:
        frame = within_period(frame, timestamp=dataset.timestamp, period=dataset.period)
    return frame


def measured_spacing(params: Params, *, since: datetime, until: datetime | None) -> timedelta:
    """Return the median step between the times of the source's first day from ``since``.

    Raises:
        ScoringError: Fewer than two rows there: the spacing must then be given.
    """
    end = since + timedelta(days=1) if until is None else min(until, since + timedelta(days=1))
    probe = read_window(params, since=None, until=None, lookback=0, spacing=None)
    window = probe.dataset.model_copy(update={"period": PeriodSpec(start=since, end=end)})
    rows = selected_rows(probe.model_copy(update={"dataset": window}))
    stamp = params.dataset.timestamp
    if stamp is None or stamp not in rows or len(rows) < 2:
        raise ScoringError(
            f"--since {since}: fewer than two rows of {params.dataset.source!r} in the day from "
            "it to measure the row spacing; give dataset.row_spacing (e.g. 15min)"
        )
    return leak_events.row_spacing(pd.to_datetime(rows[stamp]).sort_values())


def read_window(
    params: Params,
    *,
    since: datetime | None,
    until: datetime | None,
    lookback: int,
    spacing: timedelta | None,
) -> Params:
    """Return the parameters whose ``dataset.period`` reads ``since - lookback`` to ``until``.

    Without ``since`` the period's start stays (the first rows are then skipped); ``until``
    replaces its end when given.

    Raises:
        ScoringError: ``--until`` not after ``--since``.
    """
    if since is not None and until is not None and until <= since:
        raise ScoringError(f"--until {until} must be after --since {since}")
    if since is None and until is None:
        return params
    if params.dataset.timestamp is None:
        raise ScoringError("--since/--until need dataset.timestamp: rows are read by their time")
    period = params.dataset.period or PeriodSpec()
    start = period.start
    if since is not None:
        start = since - lookback * spacing
    window = PeriodSpec(start=start, end=until if until is not None else period.end)
    dataset = params.dataset.model_copy(update={"period": window})
    return params.model_copy(update={"dataset": dataset})


def score(
    params: Params,
    *,
    store: MetadataStore,
    destination: str,
    run_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Scoring:
    """Score ``params.dataset.source`` with the champion (or ``run_id``'s model) into ``destination``.

    The champion is that of ``params.dataset.model_name``. With ``since``, the source is read
    from ``since`` less the lookback (:func:`lookback_rows` rows of ``dataset.row_spacing``) to
    ``until``, and the rows from ``since`` on are scored; without it, the rows the parameters
    select (:func:`selected_rows`), less each series' first lookback rows. Rows at or before the
    last time this model scored in ``destination`` are not written again. The alarm events and
    sensor-fault events go beside the rows (:func:`leaklib.sinks.events_destination`), an
    open event extended. Nothing is written when the table does not fit the model's schema.
    """
    run = model_run(store, model_name=params.dataset.model_name, run_id=run_id)
    dataset = recorded_dataset(run)
    raw, spacing, skip = _read_rows(params, dataset=dataset, since=since, until=until)
    scored_at = datetime.now(UTC).isoformat(timespec="seconds")
    done = score_frame(
        raw, run=run, scored_at=scored_at, checks=params.sensor_checks, since=since, skip=skip
    )
    input_sha, scoring_id = _scoring_ids(raw, run=run, destination=destination)
    locator = score_events.scoring_locator(run, store=store)  # before anything is written
    rows, added, events = _write_new_rows(
        done,
        run=run,
        dataset=dataset,
        params=params,
        destination=destination,
        scoring_id=scoring_id,
        scored_at=scored_at,
        spacing=spacing,
        locator=locator,
    )
    scoring = Scoring(
        scoring_id=scoring_id,
        **_model_fields(run),
        input_sha256=input_sha,
        rows=len(rows),
        alarms=int(rows["alarm"].sum()),
        destination=destination,
        scored_at=scored_at,
        added=added,
        events_destination=sinks.events_destination(destination),
        **_event_counts(events, scoring_id=scoring_id),
        suppressed_alarms=int(rows["suppressed"].sum()),
        skipped=done.history if since is None else 0,
        **_window(since, until),
        run_dataset=dataset,
        scored=rows,
        events=events,
        spacing=pd.Timedelta(spacing),
        locator=locator,
    )
    return _recorded(store, scoring)


def _read_rows(
    params: Params, *, dataset: DatasetSpec, since: datetime | None, until: datetime | None
) -> tuple[pd.DataFrame, timedelta, int]:
    """Read the rows to score with their lookback; return them, their spacing and rows to skip.

    The rows to skip are each series' first lookback rows, read for their history only (none
    with ``since``: the rows before it are left out by time).

    Raises:
        ScoringError: ``until`` not after ``since``, or no rows in the period read.
    """
    checks = params.sensor_checks
    if since is not None and until is not None and until <= since:
        raise ScoringError(f"--until {until} must be after --since {since}")
    spacing = params.dataset.row_spacing
    if spacing is None and since is not None:
        spacing = measured_spacing(params, since=since, until=until)
    lookback = lookback_rows(dataset, checks=checks, spacing=spacing) if spacing else 0
    raw = selected_rows(
        read_window(params, since=since, until=until, lookback=lookback, spacing=spacing)
    )
    if raw.empty:
        raise ScoringError(
            f"no rows of {params.dataset.source!r} in the period read "
            f"(--since {since}, --until {until})"
        )
    if spacing is None:
        spacing = _series_spacing(raw, dataset)
        # a derivation that needs whole series (baseline: first): they are read whole
        whole = dataset.derive.lookback is None
        lookback = 0 if whole else lookback_rows(dataset, checks=checks, spacing=spacing)
    return raw, spacing, 0 if since is not None else lookback


def _write_new_rows(
    done: Scored,
    *,
    run: RunRecord,
    dataset: DatasetSpec,
    params: Params,
    destination: str,
    scoring_id: str,
    scored_at: str,
    spacing: timedelta,
    locator: Locator | None,
) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """Write the scored rows this model has not scored in ``destination`` yet, then their events.

    Returns the new rows, how many were added, and the events written beside them.
    """
    before = sinks.scored_until(
        destination,
        model_sha256=run.model.sha256,
        timestamp=dataset.timestamp,
        group=dataset.group,
    )
    fresh = _after(done.rows, before, timestamp=dataset.timestamp, group=dataset.group)
    rows = done.rows[fresh].reset_index(drop=True)
    rows[SCORING_ID] = scoring_id
    events = pd.DataFrame(columns=list(score_events.EVENT_COLUMNS))
    added = 0
    if len(rows):
        added = write_scores(rows, destination=destination, scoring_id=scoring_id)
    if added:
        events = score_events.write_events(
            rows,
            deviation=done.deviation[fresh].reset_index(drop=True),
            faults=None if done.faults is None else score_events.kept_faults(done.faults, fresh),
            run=run,
            dataset=dataset,
            spacing=pd.Timedelta(spacing),
            rules=params.events,
            destination=destination,
            scoring_id=scoring_id,
            written_at=scored_at,
            derived=done.derived,
            locator=locator,
        )
    return rows, added, events


def _event_counts(events: pd.DataFrame, *, scoring_id: str) -> dict[str, Any]:
    """The scoring's fields that count its events: leak, fault and located events, their ids."""
    located = score_events.located_count(events, scoring_id=scoring_id)
    if not len(events):
        return {"leak_events": 0, "fault_events": 0, "event_ids": [], "located_events": located}
    return {
        "leak_events": int((events["kind"] == LEAK).sum()),
        "fault_events": int((events["kind"] == FAULT).sum()),
        "event_ids": sorted(events["event_id"].astype(str)),
        "located_events": located,
    }


def _model_fields(run: RunRecord) -> dict[str, Any]:
    """The scoring's fields that name the model: its run, its file's hash, its threshold."""
    return {
        "run_id": run.run_id,
        "model_sha256": run.model.sha256,
        "threshold": run.threshold,
    }


def _window(since: datetime | None, until: datetime | None) -> dict[str, str | None]:
    """The scoring's ``since`` and ``until`` as ISO texts (None when open)."""
    return {
        "since": None if since is None else pd.Timestamp(since).isoformat(),
        "until": None if until is None else pd.Timestamp(until).isoformat(),
    }


def _scoring_ids(raw: pd.DataFrame, *, run: RunRecord, destination: str) -> tuple[str, str]:
    """The input's hash, and the scoring's id: one per input, model and destination.

    The same input scored with the same model into the same destination again adds nothing.
    """
    input_sha = sha256_hex(canonical_bytes(raw))
    scoring_id = sha256_hex(f"{input_sha}:{run.model.sha256}:{destination}".encode())[:32]
    return input_sha, scoring_id


def _recorded(store: MetadataStore, scoring: Scoring) -> Scoring:
    """Record a scoring in the ``scorings`` collection, once: a repeat leaves the first."""
    try:
        store.create(SCORINGS, scoring.scoring_id, scoring.to_dict())
    except ConflictError:  # scored before: the first record stays, as the rows did
        log.info("scoring %s was recorded before; nothing new", scoring.scoring_id)
    return scoring


def _series_spacing(raw: pd.DataFrame, dataset: DatasetSpec) -> timedelta:
    """The median step between the times of the first series read (the table, without groups)."""
    frame = raw
    if dataset.group is not None and dataset.group in raw:
        frame = raw[raw[dataset.group] == raw[dataset.group].iloc[0]]
    times = pd.to_datetime(frame[dataset.timestamp], errors="coerce").dropna().drop_duplicates()
    if len(times) < 2:
        raise ScoringError(
            f"fewer than two times in a series of {dataset.source!r}: give dataset.row_spacing"
        )
    return leak_events.row_spacing(times.sort_values()).to_pytimedelta()


def _after(
    rows: pd.DataFrame, before: dict[Any, Any], *, timestamp: str, group: str | None
) -> np.ndarray:
    """Return which rows come after the last time their series was scored."""
    if not before:
        return np.ones(len(rows), dtype=bool)
    times = pd.to_datetime(rows[timestamp])
    if group is None:
        return (times > pd.Timestamp(before[None])).to_numpy()
    last = rows[group].map(before)
    return (last.isna() | (times > pd.to_datetime(last))).to_numpy()


def event_maps(done: Scoring, *, params: Params) -> dict[str, Any]:
    """Return a map per leak event the scoring ranked: the network, sensors and candidates.

    The true leak's pipe is drawn when the parameters name a leak table with pipes and the
    event detected (or repeats) one of its leaks. Empty when nothing was ranked.
    """
    events = done.events if done.events is not None else pd.DataFrame()
    if done.locator is None or events.empty or not done.located_events:
        return {}
    pipes = _true_pipes(done, params=params)
    figures = {}
    for _, row in events[events["located_by"] == done.scoring_id].iterrows():
        event_id = str(row["event_id"])
        figures[event_id] = plots.plot_location_map(
            done.locator.network,
            score_events.location_of(row),
            sensors=done.locator.sensors,
            true_pipe=pipes.get(event_id),
            title=f"Where is the leak of event {event_id}",
        )
    return figures


def _true_pipes(done: Scoring, *, params: Params) -> dict[str, str]:
    """The true leak's pipe of each event that matched a leak (empty without a leak table)."""
    if not params.dataset.leak_table:
        return {}
    table = leak_events.load_leaks(params.dataset).table
    if "pipe" not in table:
        return {}
    pipe_of = dict(zip(table["leak_id"].astype(str), table["pipe"].astype(str), strict=True))
    alarms = _matched(done, params=params).alarms
    found = alarms[alarms["leak_id"].notna()]
    return {
        str(e): pipe_of[str(k)]
        for e, k in zip(found["event_id"], found["leak_id"], strict=True)
        if str(k) in pipe_of
    }
