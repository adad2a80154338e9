"""The run's parameter groups other than the dataset: model, alarm, split, promotion, events,
sensor checks, localisation, BigQuery options.

Each is a strict pydantic model whose field descriptions are what ``leak params`` prints.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from leaklib.params.fields import DurationText, ModelName, PrimaryMetric, Strict, parse_duration
from leaklib.paths import resolve


class SearchSpec(Strict):
    """A bounded random search over declared hyper-parameter values, scored by the grouped CV."""

    space: dict[str, list[Any]] = Field(
        min_length=1,
        description="The values to try, per parameter of the estimator: {param: [values]}.",
    )
    n_candidates: Annotated[int, Field(ge=1, le=200)] = Field(
        8, description="How many candidates are drawn (with the run's seed) and scored."
    )
    budget_s: Annotated[float, Field(gt=0)] = Field(
        900.0, description="Seconds the search may take; it keeps the best scored by then."
    )

    @field_validator("space")
    @classmethod
    def _values(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [name for name, values in value.items() if not values]
        if empty:
            raise ValueError(f"space.{empty[0]}: give at least one value to try")
        return value


class ModelSpec(Strict):
    """Which scikit-learn estimator to fit, its hyper-parameters, and an optional search."""

    name: ModelName = Field(description="Which estimator (leaklib/estimators.py).")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The estimator's own parameters, checked against scikit-learn's "
        "declared constraints (e.g. max_iter, learning_rate, early_stopping, class_weight).",
    )
    search: SearchSpec | None = Field(
        default=None, description="A random search over model.params values (null: off)."
    )
    leak_onset: DurationText | None = Field(
        default=None,
        description="On a stream: train on the first this-long of each leak only (e.g. 72h); "
        "its later rows are left out of training, since a leak older than the trailing "
        "baseline looks normal (null: every row; a table of groups always learns from every "
        "row). Uses dataset.leak_table when set, else runs of the target.",
    )


class BigQuerySpec(Strict):
    """Options for a ``bigquery://`` source."""

    billing_project: str | None = Field(
        default=None, description="Project billed for the queries (null: the table's project)."
    )
    where: str | None = Field(
        default=None,
        description="One SQL filter expression; its values go in bigquery.where_params (@name).",
    )
    where_params: dict[str, Any] = Field(
        default_factory=dict,
        description="The filter's values, sent as typed query parameters: {name: value}.",
    )
    limit: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="Read at most this many rows (null: all)."
    )
    use_storage_api: bool = Field(
        default=True,
        description="Read large results through the BigQuery Storage Read API (falls back to "
        "REST when the account may not use it).",
    )


class AlarmSpec(Strict):
    """The alarm threshold's target, in the operator's terms."""

    max_false_alarm_rate: Annotated[float, Field(gt=0.0, lt=0.5)] = Field(
        0.01,
        description="Share of quiet rows allowed to raise an alarm, met on the training "
        "part's out-of-fold predictions.",
    )
    max_false_alarms_per_30d: Annotated[float, Field(ge=0.0)] | None = Field(
        default=None,
        description="On a stream: the most false alarm events per 30 days (the events rules) "
        "the training part's out-of-fold predictions may make; the threshold is chosen by it "
        "instead of max_false_alarm_rate (null: off).",
    )


class SensorChecks(Strict):
    """Checks of each sensor's readings before scoring (computed by leaklib.sensor_faults)."""

    sensors: list[str] | None = Field(
        default=None,
        description="Column patterns of the sensors to check, one pattern per kind of sensor "
        "(a jump or a drift is compared with the other sensors of the same kind), e.g. ['p_*', 'q_*', "
        "'h_*']. When null, the patterns the dataset's derive block selects are used, or, when "
        "nothing is derived, every numeric feature, grouped by its name up to the first '_'.",
    )
    exclude: list[str] = Field(
        default=["hour_*", "day_*", "*_sin", "*_cos"],
        description="Column patterns that are never checked as sensors, such as clock features "
        "that repeat or jump by design.",
    )
    stuck_after: timedelta | None = Field(
        default=timedelta(hours=2),
        description="A sensor whose value has repeated exactly for longer than this duration "
        "('2h', '90min', '1d') is stuck from then on; null turns the check off.",
    )
    stuck_allowed: list[float] = Field(
        default=[0.0],
        description="Values a working sensor may hold for hours, which are never called stuck "
        "(a stopped pump's flow reads exactly 0).",
    )
    jump_k: float | None = Field(
        default=8.0,
        gt=0,
        description="A change from the previous row larger than jump_k robust standard "
        "deviations of the sensor's own changes is a jump, when no other sensor of its kind "
        "moves with it (see peers_below); null turns the check off.",
    )
    drift_k: float | None = Field(
        default=6.0,
        gt=0,
        description="A sensor drifts when its deviation from the same time of day drift_days "
        "earlier, averaged over drift_window and less the median deviation of its kind, stays "
        "beyond drift_k robust standard deviations, with no other sensor of its kind beyond "
        "peers_below, for longer than drift_after; null turns the check off.",
    )
    drift_days: Annotated[int, Field(ge=1)] = Field(
        default=1,
        description="How many days earlier the reading a drift is measured against was taken "
        "(more days see a slower drift, and need more history).",
    )
    drift_window: timedelta = Field(
        default=timedelta(hours=4),
        description="The trailing window over which a sensor's deviation is averaged before "
        "it is judged a drift ('4h').",
    )
    drift_after: timedelta = Field(
        default=timedelta(hours=4),
        description="How long a deviation must last before it is a drift ('4h'); it is "
        "flagged from then on.",
    )
    peers_below: Annotated[float, Field(gt=0)] = Field(
        default=3.0,
        description="A jump or a drift is one sensor's alone when every other sensor of its "
        "kind stays below this many of its own robust standard deviations (a leak is felt by "
        "the sensors near it, not by one alone).",
    )
    min_peers: Annotated[int, Field(ge=1)] = Field(
        default=1,
        description="The fewest other sensors of its kind a sensor needs to be checked for a "
        "jump or a drift; a sensor with fewer is never flagged for either.",
    )
    scale_days: Annotated[int, Field(ge=1)] = Field(
        default=7,
        description="How many previous calendar days give a sensor's robust standard "
        "deviation for the jump and drift checks (the median of each day's median absolute "
        "value); rows without an earlier day to judge by are not checked.",
    )
    peer_exclude: list[str] = Field(
        default=[],
        description="Column patterns of sensors that move alone by design (a pump's flow, "
        "which switches on and off): never flagged for a jump or a drift, nor compared with.",
    )
    spread_rows: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="How many rows after a faulty reading are marked sensor_fault too, in "
        "scoring (their derived features read it). Null: the derive block's whole lookback, "
        "every row whose features could read it (a single jump then silences alarms for the "
        "baseline's days); the longest derivation window (48 on the stream) marks the rows "
        "whose trailing mean reads it, and leaves the robust median baseline be.",
    )

    @field_validator("stuck_after", "drift_window", "drift_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("stuck_after", "drift_window", "drift_after")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration, such as '2h'")
        return value

    @field_validator("sensors", "exclude", "peer_exclude")
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not pattern.strip() for pattern in value):
            raise ValueError("a column pattern cannot be empty")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each column pattern at most once")
        return value


class SplitSpec(Strict):
    """How the holdout is chosen: by the hash of each group (or row), or by time."""

    by: Literal["auto", "group", "time"] = Field(
        default="auto",
        description="auto: time on a stream (a timestamp and no group), group otherwise; group: "
        "by the hash of each group (or row); time: the holdout is the latest rows.",
    )
    holdout_start: datetime | None = Field(
        default=None,
        description="A time split's holdout is every row from this time on, an ISO date or "
        "date-time (null: the last test_size of the time span).",
    )

    @model_validator(mode="after")
    def _start_needs_time(self) -> SplitSpec:
        if self.holdout_start is not None and self.by == "group":
            raise ValueError("holdout_start applies to split.by: time (or auto on a stream) only")
        return self


class PromotionSpec(Strict):
    """When a challenger replaces the champion."""

    primary_metric: PrimaryMetric | Literal["auto"] = Field(
        description="The holdout metric the gate compares (auto: event_economic_share on a "
        "stream, roc_auc otherwise)."
    )
    min_improvement: float = Field(
        0.0, description="How much the challenger must beat the champion by."
    )
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = Field(
        0.95, description="Confidence of the bootstrap comparison on the holdout."
    )
    n_bootstrap: Annotated[int, Field(ge=100)] = Field(
        1000, description="Bootstrap draws of the holdout for that comparison."
    )
    floors: dict[PrimaryMetric, float] = Field(
        default_factory=dict,
        description="Least value of each metric a model needs to be promoted: {metric: value}.",
    )
    min_unseen_rows: Annotated[int, Field(ge=1)] = Field(
        1000,
        description="The fewest holdout rows the champion never trained on that the gate "
        "compares on; below it the gate does not compare and does not promote.",
    )
    block: DurationText = Field(
        "7D",
        description="An event metric's bootstrap resamples blocks of time this long (each leak "
        "and alarm event stays in the block it starts in).",
    )


class EventsSpec(Strict):
    """How per-row alarms become alarm events and are scored against leak events.

    The rules are those of :mod:`leaklib.leak_events`; durations are pandas time texts ("30min",
    "2h", "1D"), measured on the rows' times with the data's row spacing.
    """

    min_duration: DurationText = Field(
        default="30min",
        description="The shortest alarm event that counts: from its first alarm's window start "
        "to its last alarm's window end (one 15-minute row lasts 15min).",
    )
    join_gap: DurationText = Field(
        default="2h",
        description="The longest quiet time between two alarms that still joins them into one "
        "event (0min: only consecutive rows join).",
    )
    grace: DurationText = Field(
        default="1h",
        description="How long after a leak's end an alarm event that starts still detects it.",
    )
    water_price_eur_m3: Annotated[float, Field(ge=0)] = Field(
        default=0.80,
        description="What a cubic metre of water saved is worth in the economic score (EUR).",
    )
    false_alarm_cost_eur: Annotated[float, Field(ge=0)] = Field(
        default=500.0,
        description="What each false alarm costs in the economic score (EUR).",
    )


class LocalisationSpec(Strict):
    """Where an alarm's leak is: candidate nodes ranked by their simulated leak signatures.

    Computed by :mod:`leaklib.leak_location`; a sensor column of the table (``p_<junction>``,
    ``q_<link>``, ``h_<tank>``) that the network model does not hold is refused there, naming it.
    """

    network: str = Field(
        default="ltown",
        description="The network's hydraulic model: ltown (L-TOWN.inp as shipped by the epyt "
        "package, the network of the embedded data) or the path of an EPANET .inp file "
        "(relative to the project).",
    )
    candidates: Annotated[list[str], Field(min_length=1)] | Literal["all"] = Field(
        default="all",
        description="Where a leak may be: all (every junction of the model) or a list of "
        "junction IDs.",
    )
    top_k: Annotated[int, Field(ge=1, le=50)] = Field(
        default=5, description="How many ranked candidate nodes each alarm event gets."
    )
    leak_diameter_cm: Annotated[float, Field(gt=0, le=20)] = Field(
        default=1.5,
        description="The hole of the standard leak simulated at each candidate (an emitter, "
        "C = Cd * A * sqrt(2 g) with the simulation's Cd), in cm.",
    )
    hours: Annotated[list[Annotated[float, Field(ge=0, lt=24)]], Field(min_length=1)] = Field(
        default=[3.0, 10.0, 19.0],
        description="Times of day (h) of the demand patterns at which each standard leak is "
        "solved; a signature is the mean pressure change over these demand levels.",
    )
    method: Literal["correlation", "nnls", "weighted"] = Field(
        default="correlation",
        description="How a signature is scored against an event's deviations: correlation "
        "(Pearson, over the pressure sensors), nnls (least squares with a scale of zero or "
        "more: the share of the deviations' energy explained) or weighted (correlation with "
        "each sensor divided by its usual deviation).",
    )
    deviation: str = Field(
        default="tdev96x7w16",
        description="Which derived deviation of each pressure sensor an event is read from: "
        "the name after the sensor's '__' (p_n1__tdev96x7w16: from the 7-day trailing "
        "baseline, averaged over 4 h), one of the dataset's derive block.",
    )
    window: DurationText = Field(
        default="2h",
        description="How long from an alarm event's first alarm its deviations are averaged "
        "('2h'; '0min': the first alarm's row only).",
    )
    workers: Annotated[int, Field(ge=1, le=32)] = Field(
        default=2, description="Processes that solve the signatures in parallel."
    )

    @field_validator("network")
    @classmethod
    def _network_file(cls, value: str) -> str:
        if value == "ltown":
            return value
        if not value.endswith(".inp"):
            raise ValueError(f"{value!r} is neither ltown nor the path of an EPANET .inp file")
        if not resolve(value).is_file():
            raise ValueError(f"the network model file {value!r} does not exist")
        return value

    @field_validator("candidates")
    @classmethod
    def _distinct(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("each candidate node at most once")
        return value

    @field_validator("hours")
    @classmethod
    def _distinct_hours(cls, value: list[float]) -> list[float]:
        if len(set(value)) != len(value):
            raise ValueError("each hour at most once")
        return value
