"""The dataset group: one input table, its declared features, sample, period and derive block."""

from __future__ import annotations

import fnmatch
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    RootModel,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from leaklib.params.fields import ID_RE, FeatureType, Strict, parse_duration


class FeatureSpec(Strict):
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


class SampleSpec(Strict):
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


class PeriodSpec(Strict):
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


# --- derived features (computed by leaklib.features) ---------------------------------

Selector = str | list[str]
Stat = Literal["mean", "std", "min", "max"]


class _Derivation(Strict):
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


class DatasetSpec(Strict):
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
        if value is not None and not ID_RE.match(value):
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
