"""The parameter contract: one typed model, named YAML sets, and command-line overrides.

Defaults live in ``parameters/default.yaml`` (the embedded default); types, bounds and
descriptions live in :class:`Params`. Every notebook's ``parameters`` cell holds the same
defaults for the keys that step uses (checked by the tests, rewritten by
``leak params --sync-notebooks``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pandas as pd
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from leaklib import estimators, metrics
from leaklib.errors import LeakError
from leaklib.paths import project_root, resolve

FeatureType = Literal["numeric", "categorical", "boolean"]
ModelName = Literal[estimators.NAMES]  # type: ignore[valid-type]
PrimaryMetric = Literal[metrics.PRIMARY]  # type: ignore[valid-type]
AUTO_STREAM_METRIC = "event_economic_share"  # promotion.primary_metric: auto, on a stream
AUTO_TABLE_METRIC = "roc_auc"  # promotion.primary_metric: auto, otherwise


class ParameterError(LeakError, ValueError):
    """A parameter set is invalid; the message names the key and what was expected.

    Attributes:
        by_key: ``(key, problem)`` for each bad key, the problem naming its key; empty when
            the error is not about one key (an unreadable file).
    """

    def __init__(self, message: str, *, by_key: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message, problems=[problem for _, problem in by_key])
        self.by_key = list(by_key)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: str) -> str:
    """Refuse a text that is not a duration of zero or more (``"30min"``, ``"2h"``, ``"1D"``)."""
    try:
        parsed = pd.Timedelta(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a duration (e.g. '30min', '2h', '1D')") from None
    if pd.isna(parsed) or parsed < pd.Timedelta(0):
        raise ValueError(f"{value!r} must be a duration of zero or more")
    return value


DurationText = Annotated[str, AfterValidator(_duration)]


class FeatureSpec(_Strict):
    """How one declared column is typed and, for numbers, bounded."""

    type: FeatureType
    min: float | None = None
    max: float | None = None
    # more distinct values than this refuses the table (an id declared as a category, say)
    max_categories: Annotated[int, Field(ge=2)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> FeatureSpec:
        if (self.min is not None or self.max is not None) and self.type != "numeric":
            raise ValueError(f"min/max apply to numeric features only, not {self.type}")
        if self.max_categories is not None and self.type != "categorical":
            raise ValueError(
                f"max_categories applies to categorical features only, not {self.type}"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class SearchSpec(_Strict):
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


class ModelSpec(_Strict):
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


class BigQuerySpec(_Strict):
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


class SampleSpec(_Strict):
    """A deterministic sample of whole groups: ``{groups: N}`` or ``{fraction: f}``.

    Which groups is decided by :mod:`leaklib.sampling` (a hash of the group value).
    """

    groups: Annotated[int, Field(gt=0, strict=True)] | None = Field(
        default=None, description="Keep this many groups (not with fraction)."
    )
    fraction: Annotated[float, Field(gt=0.0, le=1.0, strict=True)] | None = Field(
        default=None, description="Keep about this share of the groups (not with groups)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SampleSpec:
        if (self.groups is None) == (self.fraction is None):
            raise ValueError(SAMPLE_FORM)
        return self

    @model_serializer(mode="wrap")
    def _only_the_rule(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class PeriodSpec(_Strict):
    """A stretch of time: the rows with ``start <= timestamp < end`` (either may be open)."""

    start: datetime | None = Field(
        default=None, description="The first time kept, an ISO date or date-time (null: open)."
    )
    end: datetime | None = Field(
        default=None, description="The first time no longer kept (null: open)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> PeriodSpec:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be before end ({self.end})")
        return self


SAMPLE_FORM = (
    "give exactly one of groups (a number of groups, > 0) or fraction (a share of the groups, "
    "0 < f <= 1): {groups: 24} or {fraction: 0.1}, or null for every group"
)


class AlarmSpec(_Strict):
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


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> Any:
    """Turn ``"2h"``, ``"90min"``, ``"1.5d"`` or ``"30s"`` into a timedelta (else pass through).

    A number alone is refused: it would not say its unit.
    """
    if isinstance(value, bool | int | float):
        raise ValueError(f"give a duration with its unit, such as '2h' or '45min' (got {value!r})")
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])
    return value  # a timedelta, or an ISO 8601 duration (PT2H) that pydantic reads


class SensorChecks(_Strict):
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


class SplitSpec(_Strict):
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


class PromotionSpec(_Strict):
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


class EventsSpec(_Strict):
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


class LocalisationSpec(_Strict):
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


# --- derived features (computed by leaklib.features) ---------------------------------

Selector = str | list[str]
Stat = Literal["mean", "std", "min", "max"]


class _Derivation(_Strict):
    @field_validator("columns", check_fields=False)
    @classmethod
    def _columns_not_empty(cls, value: Selector) -> Selector:
        if not value:
            raise ValueError("select at least one column (a pattern or a list of them)")
        return value


class Diff(_Derivation):
    """Change against the row ``steps`` rows earlier: ``x[t] - x[t - steps]``."""

    kind: Literal["diff"]
    columns: Selector
    steps: Annotated[int, Field(gt=0)]

    @property
    def lookback(self) -> int:
        """Earlier rows of its series a value needs: ``steps``."""
        return self.steps


class SeasonalDeviation(_Derivation):
    """Deviation from the same phase of earlier periods (the same time of day, for a day).

    ``baseline: previous`` averages the previous ``periods`` periods (a rolling seasonal
    baseline); ``baseline: first`` averages the group's first ``periods`` periods (a reference
    taken when monitoring starts; it needs a group, since a stream's first day lies ever further
    back); ``baseline: trailing`` takes the median of the same phase over the previous ``days``
    periods, or with ``same_weekday`` over the same phase of the previous ``days`` weeks
    (7 periods apart), robust to a leak or a fault on one of them. ``window`` > 1 then smooths
    the deviation with a trailing mean over that many rows.
    """

    kind: Literal["seasonal_deviation"]
    columns: Selector
    period: Annotated[int, Field(gt=0)]
    periods: Annotated[int, Field(gt=0)] = 1
    baseline: Literal["previous", "first", "trailing"] = "previous"
    window: Annotated[int, Field(gt=0)] = 1
    days: Annotated[int, Field(gt=0)] = 7
    same_weekday: bool = False

    @model_validator(mode="after")
    def _keys_of_the_baseline(self) -> SeasonalDeviation:
        # a key at its default is allowed anywhere: recorded parameters (a dump) carry them all
        changed = {
            k
            for k in self.model_fields_set
            if getattr(self, k) != type(self).model_fields[k].default
        }
        if self.baseline == "trailing" and "periods" in changed:
            raise ValueError("baseline trailing counts its periods in days (days: N), not periods")
        if self.baseline != "trailing" and changed & {"days", "same_weekday"}:
            key = sorted(changed & {"days", "same_weekday"})[0]
            raise ValueError(f"{key} applies to baseline trailing only, not {self.baseline}")
        return self

    @property
    def lag_step(self) -> int:
        """Rows between two values of a trailing baseline: a period, or a week of them."""
        return self.period * (7 if self.same_weekday else 1)

    @property
    def lookback(self) -> int | None:
        """Earlier rows of its series a value needs; None for ``first`` (the series' start)."""
        if self.baseline == "first":
            return None
        seasons = (
            self.days * self.lag_step if self.baseline == "trailing" else self.periods * self.period
        )
        return seasons + self.window - 1


class Rolling(_Derivation):
    """Trailing statistics over the last ``window`` rows (the current one included)."""

    kind: Literal["rolling"]
    columns: Selector
    window: Annotated[int, Field(gt=1)]
    stats: Annotated[list[Stat], Field(min_length=1)] = ["mean"]

    @field_validator("stats")
    @classmethod
    def _unique(cls, value: list[Stat]) -> list[Stat]:
        if len(set(value)) != len(value):
            raise ValueError("each statistic at most once")
        return value

    @property
    def lookback(self) -> int:
        """Earlier rows of its series a value needs: ``window - 1``."""
        return self.window - 1


FIRST_NEEDS_A_GROUP = (
    "first needs a group: without one the table is one series, whose first period lies ever "
    "further back on a stream (a reference that never moves); use baseline: trailing"
)

Derivation = Annotated[Diff | SeasonalDeviation | Rolling, Field(discriminator="kind")]


class DeriveSpec(RootModel[list[Derivation]]):
    """The derive block: derivations applied in order, each adding columns."""

    model_config = ConfigDict(frozen=True)
    root: list[Derivation] = Field(default_factory=list)

    @property
    def lookback(self) -> int | None:
        """Earlier rows of a series every derivation needs (the most of them; 0 without any).

        None when a derivation needs its series from the start (``baseline: first``).
        """
        needs = [derivation.lookback for derivation in self.root]
        return None if None in needs else max(needs, default=0)


# the one rule for a run id and a model name: they become paths, URLs and document ids
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID = re.compile(ID_PATTERN)


class DatasetSpec(_Strict):
    """One input table and everything that describes it; given again, it is replaced whole."""

    source: str = Field(
        description="Input table: a .parquet/.csv path, file:// URI, "
        "bigquery://PROJECT.DATASET.TABLE, or a recorded snapshot (snapshot:SHA256)."
    )
    target: str = Field(description="Binary label column (0/1 or bool).")
    features: dict[str, FeatureSpec] = Field(
        description="Declared feature columns: name -> numeric | categorical | boolean "
        "(or {type, min, max})."
    )
    group: str | None = Field(
        default=None, description="Column whose rows stay together in splits (null: no grouping)."
    )
    timestamp: str | None = Field(
        default=None,
        description="Time column used for alarms per day and detection delay (null: none).",
    )
    max_groups: Annotated[int, Field(gt=0)] | None = Field(
        default=None,
        description="Keep only the first N groups of the table (quick iterations; null: all).",
    )
    sample: SampleSpec | None = Field(
        default=None,
        description="A deterministic sample of whole groups, chosen by a hash of the group "
        "value: {groups: N} keeps N groups, {fraction: f} about that share of them (null: "
        "all). Pushed into the query for BigQuery; a Parquet file is read in batches, so "
        "memory follows the sample. Needs group; not with max_groups.",
    )
    period: PeriodSpec | None = Field(
        default=None,
        description="Keep only the rows of this stretch of time, {start: T, end: U} (ISO "
        "times; start included, end excluded, either may be null): a short stretch of a long "
        "stream. Pushed into the query for BigQuery. Needs timestamp (null: every row).",
    )
    row_spacing: timedelta | None = Field(
        default=None,
        description="The time between two rows of a series ('15min'): `leak score --since T` "
        "reads its source from T minus the lookback (the derive block's and the sensor checks' "
        "earlier rows) times this spacing. Null: measured, as the median step between the "
        "times of the source's first day from T (or of the rows read, without --since).",
    )
    model_name: str | None = Field(
        default=None,
        description="Name the dataset's models and champion are kept under "
        "(null: derived from the source's table or file name).",
    )
    leak_table: str | None = Field(
        default=None,
        description="Leak table (.csv or .parquet path), one row per leak: leak_id, start, end "
        "(empty: lasts past the end of the data), kind (abrupt | incipient), and optionally "
        "pipe; the evaluation's leak events (null: runs of the target column). Needs timestamp.",
    )
    leak_volumes: str | None = Field(
        default=None,
        description="Leak volume per window (.csv or .parquet path): leak_id, timestamp, "
        "volume_m3; gives the water saved and the economic score (null: those are not "
        "computed). Needs leak_table.",
    )
    derive: DeriveSpec = Field(
        default_factory=DeriveSpec,
        description="Derived time features computed from past rows of each group: a list of "
        "{kind: diff | seasonal_deviation | rolling, columns: pattern(s), ...} (needs a "
        "timestamp; without a group the table is one series).",
    )

    @field_validator("features", mode="before")
    @classmethod
    def _feature_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("features")
    @classmethod
    def _features_not_empty(cls, value: dict[str, FeatureSpec]) -> dict[str, FeatureSpec]:
        if not value:
            raise ValueError("declare at least one feature column")
        return value

    @field_validator("sample", mode="before")
    @classmethod
    def _sample_form(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, dict | SampleSpec):
            raise ValueError(f"expected a mapping: {SAMPLE_FORM}")
        return value

    @field_validator("row_spacing", mode="before")
    @classmethod
    def _spacing(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("row_spacing")
    @classmethod
    def _spacing_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError(f"must be a positive duration, got {value}")
        return value

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        if value is not None and not _ID.match(value):
            raise ValueError("must be letters, digits, '.', '_' or '-' (at most 64)")
        return value

    @model_validator(mode="after")
    def _roles_do_not_overlap(self) -> DatasetSpec:
        for role in ("target", "group", "timestamp"):
            column = getattr(self, role)
            if column is not None and column in self.features:
                raise ValueError(f"column {column!r} is the {role} and cannot also be a feature")
        if self.max_groups is not None and self.group is None:
            raise ValueError("max_groups needs a group column")
        if self.sample is not None:
            if self.group is None:
                raise ValueError("dataset.sample needs dataset.group: whole groups are sampled")
            if self.max_groups is not None:
                raise ValueError(
                    "dataset.sample and dataset.max_groups cannot both be set: max_groups keeps the first "
                    "groups in sorted order, sample keeps groups chosen by a hash; set one "
                    "to null"
                )
        if self.period is not None and self.timestamp is None:
            raise ValueError("dataset.period needs dataset.timestamp: rows are kept by their time")
        if self.leak_table is not None and self.timestamp is None:
            raise ValueError(
                "dataset.leak_table needs dataset.timestamp: leaks are matched in time"
            )
        if self.leak_volumes is not None and self.leak_table is None:
            raise ValueError(
                "dataset.leak_volumes needs dataset.leak_table: volumes are given per leak_id"
            )
        self._check_derive()
        if self.model_name is None:
            object.__setattr__(self, "model_name", default_model_name(self.source))
        return self

    def _check_derive(self) -> None:
        """Refuse a derive block that cannot apply to this dataset, naming the key."""
        if self.derive.root and self.timestamp is None:
            raise ValueError(
                "derive needs a timestamp column to order each series; timestamp is null"
            )
        numeric = [name for name, spec in self.features.items() if spec.type == "numeric"]
        for i, derivation in enumerate(self.derive.root):
            if self.group is None and getattr(derivation, "baseline", None) == "first":
                raise ValueError(f"derive[{i}].baseline: {FIRST_NEEDS_A_GROUP}")
            patterns = derivation.columns
            for pattern in [patterns] if isinstance(patterns, str) else patterns:
                if not fnmatch.filter(numeric, pattern):
                    raise ValueError(f"derive[{i}].columns: {pattern!r} matches no numeric feature")

    def columns(self) -> list[str]:
        """Return the columns a run reads: features, target, then group and timestamp if set."""
        columns = [*self.features, self.target]
        columns += [c for c in (self.group, self.timestamp) if c and c not in columns]
        return columns

    @property
    def is_stream(self) -> bool:
        """Whether the table is one time-ordered series (a timestamp, no group): events apply."""
        return self.timestamp is not None and self.group is None

    def role_of(self, column: str) -> str:
        """Return what a declared column is for: target, group, timestamp or feature."""
        roles = {self.target: "target", self.group: "group", self.timestamp: "timestamp"}
        return roles.get(column, "feature")


def default_model_name(source: str) -> str:
    """Return the model name a dataset gets when it names none: its table or file stem."""
    stem = re.split(r"[/.:]", source.rstrip("/"))
    stem = [part for part in stem if part and part not in ("parquet", "csv")]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem[-1] if stem else "dataset").strip("-.")
    return (name or "dataset")[:64]


class Params(_Strict):
    """Every parameter of a run. Field descriptions are what ``leak params`` prints."""

    run_id: str | None = Field(
        description="Run id; a new one is made when empty (set by `leak run`)."
    )
    dataset: DatasetSpec = Field(
        description="The input table: source, target, features, group, timestamp, max_groups, "
        "sample, model_name. A later file that gives dataset replaces it whole. "
        "Also leak_table, leak_volumes and derive (see each below)."
    )
    snapshot_store: str = Field(
        description="Where validated snapshots go: a local folder or gs://BUCKET/PREFIX."
    )
    metadata_store: str = Field(
        description="Where run records go: a local folder or firestore://PROJECT/DATABASE[/COLLECTION]."
    )
    bigquery: BigQuerySpec = Field(description="Options for a bigquery:// source.")
    model: ModelSpec = Field(
        description=f"The estimator and how it is trained. name ({' | '.join(estimators.NAMES)}), "
        "params (any of the "
        "estimator's, e.g. early_stopping or class_weight for hist_gradient_boosting) and "
        "search (null: off; {space: {param: [values]}, n_candidates, budget_s}: a random search "
        "scored by the same grouped CV, within a time budget) and leak_onset (a duration such as "
        "72h: train on the first this-long of each leak only, leaving its later rows out of "
        "training, since a leak older than the trailing baseline looks normal; null: every row)."
    )
    test_size: Annotated[float, Field(gt=0.0, lt=0.9)] = Field(
        description="Share of groups (or rows) held out as the frozen holdout. A group is held "
        "out when the SHA-256 of 'holdout:' + its text falls below test_size (a row without "
        "groups: of its declared feature and target values), so membership does not depend on "
        "the seed or on other groups; per class by lowest hash if that leaves a class on one "
        "side."
    )
    split: SplitSpec = Field(
        description="How the holdout is chosen. by: auto (time on a stream: a timestamp and no "
        "group; group otherwise), group (by the hash of each group, or of "
        "each row without groups; see test_size) or time (the holdout is the last test_size of "
        "the time span, or every row from holdout_start on; the cross-validation folds then go "
        "forward in time with a gap of the derivations' lookback). Needs dataset.timestamp for "
        "time."
    )
    cv_folds: Annotated[int, Field(ge=2, le=20)] = Field(
        description="Folds of the cross-validation on the training part (grouped, or forward "
        "in time for split.by: time)."
    )
    # 0 to 2**32 - 1: what numpy's generators and scikit-learn's random_state accept
    seed: Annotated[int, Field(ge=0, lt=2**32)] = Field(
        description="Seed for the estimator, the cross-validation folds and the bootstrap. "
        "The holdout does not depend on it: it is chosen by hash."
    )
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] | None = Field(
        description="Alarm threshold on the predicted leak probability (null: chosen in "
        "training by alarm). A value overrides the choice made by "
        "alarm.max_false_alarm_rate on out-of-fold predictions."
    )
    alarm: AlarmSpec = Field(
        description="How the alarm threshold is chosen when threshold is null. "
        "max_false_alarm_rate is the share of quiet rows allowed to raise an alarm, met on the "
        "training part's out-of-fold predictions (never the holdout); on a stream, "
        "max_false_alarms_per_30d instead counts false alarm events (the events rules) on those "
        "predictions and keeps them at or below this many per 30 days (null: off)."
    )
    permutation_repeats: Annotated[int, Field(ge=1)] = Field(
        description="Repeats of the permutation importance on the holdout."
    )
    mlflow_experiment: str = Field(description="MLflow experiment name.")
    step_timeout_s: Annotated[int, Field(ge=10)] = Field(
        description="Longest a single notebook cell may run, in seconds; a cell over it fails "
        "its step (papermill's execution timeout)."
    )
    pages_keep_reports: Annotated[int, Field(ge=1)] = Field(
        description="How many of the newest runs carry their full reports on the site built by "
        "`leak pages`; the index always lists every run."
    )
    promotion: PromotionSpec = Field(
        description="The promotion gate, which decides whether the model becomes the champion. "
        "Keys: primary_metric (auto: event_economic_share on a stream, "
        "roc_auc otherwise), min_improvement, confidence, "
        "n_bootstrap, floors, min_unseen_rows (the fewest holdout rows the champion never "
        "trained on that the gate compares on; rows it trained on are always left out), block "
        "(an event metric's bootstrap resamples blocks of time this long)."
    )
    events: EventsSpec = Field(
        description="Alarm events and their scores (leaklib.leak_events). min_duration is the "
        "shortest alarm event that counts; join_gap, the longest quiet time that still joins "
        "two alarms; grace, how long after a leak's end an alarm that starts still detects it "
        "(durations as '30min', '2h', '1D'); water_price_eur_m3 and false_alarm_cost_eur, the "
        "economic score's price of water saved and cost of a false alarm."
    )
    serve_allowed_locations: list[str] = Field(
        description="Where parameters sent to `leak serve` (POST /runs) may point "
        "dataset.source, dataset.leak_table, dataset.leak_volumes, snapshot_store and "
        "metadata_store: local folders (relative to the "
        "project) or URI prefixes (gs://BUCKET/PREFIX/, bigquery://PROJECT.DATASET., "
        "firestore://PROJECT/DATABASE, snapshot:). The command line is not limited by it, and "
        "it cannot be set over HTTP."
    )
    sensor_checks: SensorChecks | None = Field(
        default=None,
        description="Checks of each sensor's readings before scoring: a stuck value, a gap, a "
        "value outside the declared min/max, and a jump or a drift no other sensor of its kind "
        "shows (keys below); a row whose features depend on a faulty reading is marked "
        "sensor_fault. Null turns every check off.",
    )

    localisation: LocalisationSpec | None = Field(
        default=None,
        description="Where each detected leak is (leaklib.leak_location); null turns it off. "
        "Keys: network (ltown or an "
        ".inp path), candidates (all or a list of junctions), top_k, leak_diameter_cm and hours "
        "(the standard leak and the demand levels of the signatures), method (correlation, "
        "nnls, weighted), deviation (the derived column read per pressure sensor), window (how "
        "long from the first alarm it is averaged) and workers. It applies to a stream (a "
        "timestamp, no group), whose sensors must all be in the network model; a table of "
        "groups is not located.",
    )

    @model_validator(mode="after")
    def _time_split_needs_a_timestamp(self) -> Params:
        if self.split.by == "auto":
            by = "time" if self.dataset.is_stream else "group"
            if by == "group" and self.split.holdout_start is not None:
                raise ValueError(
                    "split.holdout_start applies to a time split; split.by: auto splits this "
                    "table by group (it has a group or no timestamp): set holdout_start: null"
                )
            object.__setattr__(self, "split", self.split.model_copy(update={"by": by}))
        if self.split.by == "time" and self.dataset.timestamp is None:
            raise ValueError("split.by: time needs dataset.timestamp (the column that orders rows)")
        return self

    @model_validator(mode="after")
    def _event_metrics_need_a_stream(self) -> Params:
        if self.promotion.primary_metric == "auto":
            primary = AUTO_STREAM_METRIC if self.dataset.is_stream else AUTO_TABLE_METRIC
            promotion = self.promotion.model_copy(update={"primary_metric": primary})
            object.__setattr__(self, "promotion", promotion)
        chosen = [self.promotion.primary_metric, *self.promotion.floors]
        event = [name for name in chosen if metrics.CATALOGUE[name].kind == "event"]
        if event and not self.dataset.is_stream:
            raise ValueError(
                f"promotion: {event[0]} is an event metric, scored on one time-ordered series: "
                "it needs dataset.timestamp and no dataset.group (promotion.primary_metric: "
                f"auto chooses {AUTO_TABLE_METRIC} for a table of groups)"
            )
        return self

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        if value is not None and not _ID.match(value):
            raise ValueError("must be letters, digits, '.', '_' or '-' (at most 64)")
        return value

    def to_plain(self) -> dict[str, Any]:
        """Return the parameters as plain YAML/JSON values, features in long form."""
        return self.model_dump(mode="json")


def field_names() -> list[str]:
    """Return every parameter name, in the order ``leak params`` shows them."""
    return list(Params.model_fields)


def default_file() -> Path:
    """Return the path of the embedded default parameter set."""
    return project_root() / "parameters" / "default.yaml"


DATASET_KEYS = tuple(DatasetSpec.model_fields)


def _check_key(key: str, where: str) -> None:
    """Refuse a key the contract does not know, saying where a moved dataset key went."""
    top = key.split(".", 1)[0]
    if top in field_names():
        return
    if top in DATASET_KEYS:
        moved = (
            f"parameter {top!r}{where} has moved: it is now dataset.{top} (a dataset is one "
            f"mapping of {', '.join(DATASET_KEYS)}; see parameters/default.yaml)"
        )
        raise ParameterError(moved, by_key=[(key, moved)])
    unknown = f"unknown parameter {key!r}{where}; known: {', '.join(field_names())}"
    raise ParameterError(unknown, by_key=[(key, unknown)])


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read one parameter file and refuse keys the contract does not know.

    A key may be dotted (``dataset.max_groups: 24``) to set one nested value instead of
    replacing the whole mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"parameter file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"parameter file {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"parameter file {str(path)!r} must hold a mapping of keys")
    for key in data:
        _check_key(str(key), f" in {str(path)!r}")
    return data


def parse_override(key: str, text: str) -> tuple[str, Any]:
    """Turn one ``-p KEY VALUE`` pair into a key and a typed value.

    ``KEY`` may be dotted (``model.name``, ``dataset.source``) to set a nested value;
    ``VALUE`` is read as YAML, so ``null``, numbers, booleans and mappings work.
    """
    _check_key(key, "")
    try:
        value = yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError as exc:
        raise ParameterError(f"value for {key!r} is not valid YAML: {exc}") from exc
    return key, value


def merge(layers: list[dict[str, Any]], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """Merge parameter layers: later keys replace earlier ones whole; dotted keys nest.

    Dotted keys, in a file or an override, set one nested value. Overriding ``model.name``
    with another estimator clears ``model.params`` (they belong to the previous estimator);
    give ``-p model.params.X`` after it to tune the new one.
    """
    merged: dict[str, Any] = {}
    pairs = [(str(k), v) for layer in layers for k, v in layer.items()] + list(overrides)
    for key, value in pairs:
        _set(merged, key, value)
    return merged


def _set(merged: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    current_model = merged.get("model") if isinstance(merged.get("model"), dict) else {}
    if key == "model.name" and value != current_model.get("name"):
        # hyper-parameters belong to one estimator: a new estimator starts from its own defaults
        merged["model"] = {"name": value, "params": {}}
        return
    node = merged
    for part in parts[:-1]:
        child = node.get(part)
        child = dict(child) if isinstance(child, dict) else {}
        node[part] = child
        node = child
    node[parts[-1]] = value


Check = Callable[[dict[str, Any]], list[str]]
"""A further check of a merged parameter mapping: its problems, each ``key: what is wrong``."""


def estimator_problems(values: dict[str, Any]) -> list[str]:
    """Return what the chosen estimator refuses in ``model.params`` and ``model.search.space``.

    Parameter names and values are checked by scikit-learn's own declared constraints
    (:func:`leaklib.estimators.check_params`); a model mapping that is itself malformed is
    left to the contract, which names it.
    """
    model = values.get("model")
    name = model.get("name") if isinstance(model, dict) else None
    if not isinstance(name, str) or name not in estimators.CATALOGUE:
        return []
    problems = []
    given = model.get("params")
    if isinstance(given, dict):
        for param, problem in estimators.check_params(name, given):
            problems.append(f"model.params.{param}: {problem}")
    search = model.get("search")
    space = search.get("space") if isinstance(search, dict) else None
    if isinstance(space, dict):
        for param, tried in space.items():
            for value in tried if isinstance(tried, list) else []:
                found = estimators.check_params(name, {param: value})
                if found:
                    problems.append(f"model.search.space.{param}: {found[0][1]}")
                    break
    return problems


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested parameters to dotted keys (``dataset.sample.groups``), values kept."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def validate(values: dict[str, Any], *, checks: Sequence[Check] = ()) -> Params:
    """Validate a merged parameter mapping, raising one error that names every bad key.

    The contract (:class:`Params`), the estimator's own parameter constraints and each of
    ``checks`` (such as whether the source exists) all run, so every problem is listed at once.
    """
    problems = []
    params = None
    try:
        params = Params.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "parameters"
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            problems.append((where, f"{where}: {err['msg']}{shown}"))
    problems += [(line.split(":", 1)[0], line) for line in estimator_problems(values)]
    for check in checks:
        problems += [(line.split(":", 1)[0], line) for line in check(values)]
    if problems or params is None:
        message = "invalid parameters:\n  " + "\n  ".join(line for _, line in problems)
        raise ParameterError(message, by_key=problems) from None
    return params


def load(
    files: list[str | Path] | None = None,
    overrides: list[tuple[str, str]] | None = None,
    *,
    base: str | Path | None = None,
    checks: Sequence[Check] = (),
) -> Params:
    """Load the embedded default, then each file, then each ``-p`` override, and validate.

    Args:
        files: Parameter files applied in order after the default.
        overrides: ``(key, yaml_text)`` pairs from the command line, applied last.
        base: The base set (``parameters/default.yaml`` when omitted).
        checks: Further checks of the merged mapping (see :func:`validate`).
    """
    layers = [read_yaml(base or default_file())]
    layers += [read_yaml(f) for f in files or []]
    parsed = [parse_override(k, v) for k, v in overrides or []]
    return validate(merge(layers, parsed), checks=checks)


def defaults() -> dict[str, Any]:
    """Return the embedded default parameters as plain values (short feature form)."""
    return read_yaml(default_file())


_BASIC_TYPES = {
    int: "integer",
    float: "number",
    str: "text",
    bool: "boolean",
    type(None): "null",
    Any: "any value",
}
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _bounds(metadata: Sequence[Any]) -> str:
    """Return ``>= 2, <= 20`` from a field's constraints (pydantic's or annotated-types')."""
    shown = []
    for item in metadata:
        for constraint in getattr(item, "metadata", None) or [item]:
            for attribute, sign in _BOUNDS:
                value = getattr(constraint, attribute, None)
                if value is not None and not callable(value):
                    shown.append(f"{sign} {value}")
    return ", ".join(shown)


def type_text(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """Return a parameter's whole type in words: ``integer > 0 or null``, ``list of text``.

    Args:
        annotation: The field's annotation.
        metadata: Constraints pydantic moved out of a top-level ``Annotated`` (``FieldInfo.metadata``).
    """
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_text(args[0], [*args[1:], *metadata])
    if origin in (Union, UnionType):
        parts = [type_text(arg) for arg in args if arg is not type(None)]
        if type(None) in args:
            parts.append("null")
        text = " or ".join(parts)
    elif origin is Literal:
        text = "one of " + " | ".join(str(arg) for arg in args)
    elif origin is list:
        text = f"list of {type_text(args[0])}"
    elif origin is dict:
        text = f"mapping of {type_text(args[0])} to {type_text(args[1])}"
    elif isinstance(annotation, type) and issubclass(annotation, RootModel):
        text = "list of mappings"
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        text = "mapping"
    else:
        text = _BASIC_TYPES.get(annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = _bounds(metadata)
    return f"{text} ({bounds})" if bounds else text


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """Return the mapping model a field holds (also when it may be null), else None."""
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    for arg in (annotation, *members):
        if isinstance(arg, type) and issubclass(arg, BaseModel) and not issubclass(arg, RootModel):
            return arg
    return None


def _shown(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("\n...")


def _describe(model: type[BaseModel], prefix: str, values: Any) -> list[dict[str, str]]:
    values = values if isinstance(values, dict) else {}
    rows = []
    for name, info in model.model_fields.items():
        rows.append(
            {
                "name": f"{prefix}{name}",
                "type": type_text(info.annotation, info.metadata),
                "default": _shown(values.get(name)),
                "description": info.description or "",
            }
        )
        nested = nested_model(info.annotation)
        if nested is not None:
            rows += _describe(nested, f"{prefix}{name}.", values.get(name))
    return rows


def describe() -> list[dict[str, str]]:
    """Return name, type, default and description of every parameter, for ``leak params``.

    The keys of each mapping are listed one by one after it (``dataset.source``, ...,
    ``promotion.confidence``), with their whole types (``integer > 0 or null``).
    """
    return _describe(Params, "", defaults())
