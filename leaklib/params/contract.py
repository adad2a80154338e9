"""The parameter contract: :class:`Params`, every parameter of a run with its type and bounds.

Its field descriptions are what ``leak params`` prints and what the notebooks' parameters cells
say; the groups are in :mod:`leaklib.params.groups` and :mod:`leaklib.params.dataset`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from leaklib import estimators, metrics
from leaklib.params.dataset import DatasetSpec
from leaklib.params.fields import ID_RE, Strict
from leaklib.params.groups import (
    AlarmSpec,
    BigQuerySpec,
    EventsSpec,
    LocalisationSpec,
    ModelSpec,
    PromotionSpec,
    SensorChecks,
    SplitSpec,
)

AUTO_STREAM_METRIC = "event_economic_share"  # promotion.primary_metric: auto, on a stream
AUTO_TABLE_METRIC = "roc_auc"  # promotion.primary_metric: auto, otherwise


class Params(Strict):
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
        if value is not None and not ID_RE.match(value):
            raise ValueError("must be letters, digits, '.', '_' or '-' (at most 64)")
        return value

    def to_plain(self) -> dict[str, Any]:
        """Return the parameters as plain YAML/JSON values, features in long form."""
        return self.model_dump(mode="json")


def field_names() -> list[str]:
    """Return every parameter name, in the order ``leak params`` shows them."""
    return list(Params.model_fields)
