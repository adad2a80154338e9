"""The run record as a type: :class:`RunRecord`, its statuses and typed parts, and its reads.

Document (collection ``runs``, id = run id)::

    run_id, status (running | succeeded | failed), created_at, updated_at, finished_at,
    heartbeat_at, origin, params, feature_order, param_files, git {commit, dirty}, lock_hash,
    environment {python, platform}, seeds {seed}, steps {extract|train|evaluate: {status,
    started_at, finished_at, duration_s, error, notebook, report, cached_from}},
    snapshot {uri, sha256, rows, columns, size_bytes}, validation {...}, derived_features,
    leaks {table, volumes}, split {...}, holdout {like snapshot}, metrics {...}, alarm {...},
    model {...}, mlflow {...}, promotion {decision, reason, ...}, reports, reports_archive, error

A run's document in the metadata store (collection ``runs``) is a plain mapping, so that any
store (JSON files, Firestore) and any reader (``leak runs --json``, the API) keeps it as it
is. :meth:`RunRecord.from_doc` reads such a document into typed parts, and
:meth:`RunRecord.to_doc` writes it back to the same keys, enums as their string values. A
field this module does not know (an older or newer writer's) is kept in ``extra`` and written
back; a field a document did not have is not added. Only :mod:`leaklib.runs` changes a record.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from leaklib.errors import NotFoundError
from leaklib.metadata import RUNS, MetadataError, MetadataStore

ABANDONED_AFTER_S = 600.0  # a running record whose heartbeat is older than this was abandoned
LEGACY_THRESHOLD = 0.5  # records made before thresholds were chosen per model


class RunStatus(enum.StrEnum):
    """Where a run stands; ``abandoned`` is shown, never stored (see :meth:`RunRecord.shown`)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"


class StepStatus(enum.StrEnum):
    """Where one step of a run stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Verdict(enum.StrEnum):
    """What the gate (or an operator) decided."""

    PROMOTED = "promoted"
    NOT_PROMOTED = "not promoted"


class RunRecordError(MetadataError):
    """A stored run document holds a value the record cannot read (an unknown status)."""


def _enum(kind: type[enum.StrEnum], value: Any, *, what: str) -> Any:
    """Return ``value`` as a member of ``kind`` (None stays None); a clear error otherwise."""
    if value is None or isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise RunRecordError(f"unknown {what} {value!r}; known: {known}") from None


def plain(value: Any) -> Any:
    """Return a part, an enum or a mapping of parts as a document stores it."""
    if isinstance(value, _Part):
        return value.to_doc()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class _Part:
    """A typed mapping of a run document: known fields as attributes, the rest in ``extra``.

    ``keys`` keeps the document's own keys in their order, so :meth:`to_doc` writes back the
    same keys in the same order, and adds a known field only once it holds a value.
    """

    ENUMS: ClassVar[dict[str, tuple[type[enum.StrEnum], str]]] = {}  # field -> (enum, what)

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)
    keys: tuple[str, ...] = field(default=(), kw_only=True, repr=False, compare=False)

    @classmethod
    def _known(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in ("extra", "keys"))

    @classmethod
    def _load(cls, name: str, value: Any) -> Any:
        """Turn one stored value into its typed form (enums here; parts in subclasses)."""
        if name in cls.ENUMS:
            kind, what = cls.ENUMS[name]
            return _enum(kind, value, what=what)
        return value

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | Self | None) -> Self | None:
        """Read a stored mapping (None stays None; a part is returned as it is)."""
        if doc is None or isinstance(doc, cls):
            return doc
        known = cls._known()
        values = {name: cls._load(name, doc[name]) for name in known if name in doc}
        extra = {key: value for key, value in doc.items() if key not in known}
        return cls(**values, extra=extra, keys=tuple(doc))

    def to_doc(self) -> dict[str, Any]:
        """Return the part as the plain mapping a store keeps, with the keys it was read with."""
        values = {name: plain(getattr(self, name)) for name in self._known()}
        values.update(self.extra)
        order = [key for key in self.keys if key in values]
        order += [k for k in values if k not in self.keys and values[k] not in (None, {})]
        return {key: values[key] for key in order}

    def __bool__(self) -> bool:
        """Whether the part holds anything (an empty stored mapping reads as false, as it did)."""
        return bool(self.extra) or any(getattr(self, n) is not None for n in self._known())

    def get(self, name: str, default: Any = None) -> Any:
        """Return a field or an extra value named by data (a step's outputs), else ``default``."""
        if name in self._known():
            value = getattr(self, name)
            return default if value is None else value
        return self.extra.get(name, default)


@dataclass(frozen=True)
class StepRecord(_Part):
    """One step of a run: its status, times, error, notebook, and the run it was reused from."""

    ENUMS: ClassVar = {"status": (StepStatus, "step status")}

    status: StepStatus | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    error: str | None = None
    notebook: str | None = None
    report: str | None = None
    cached_from: str | None = None


@dataclass(frozen=True)
class SnapshotRef(_Part):
    """Where a recorded table (the snapshot, the holdout) is, and what it holds."""

    uri: str | None = None
    sha256: str | None = None
    rows: int | None = None
    columns: int | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class ModelRecord(_Part):
    """The trained model: its file in the snapshot store, MLflow's run and registry version."""

    sha256: str | None = None
    uri: str | None = None
    store: str | None = None
    format: str | None = None
    size_bytes: int | None = None
    params: dict[str, Any] | None = None
    threshold: float | None = None
    run_uri: str | None = None
    mlflow_run_id: str | None = None
    name: str | None = None
    version: str | None = None
    registry_uri: str | None = None


@dataclass(frozen=True)
class AlarmRecord(_Part):
    """The alarm threshold the train step chose, and how it was chosen."""

    threshold: float | None = None
    chosen_by: str | None = None
    max_false_alarm_rate: float | None = None
    max_false_alarms_per_30d: float | None = None
    cv_false_alarm_rate: float | None = None
    cv_recall: float | None = None


@dataclass(frozen=True)
class MlflowRun(_Part):
    """The MLflow run of the train step."""

    run_id: str | None = None
    experiment_id: str | None = None
    tracking_uri: str | None = None
    run_url: str | None = None


@dataclass(frozen=True)
class Promotion(_Part):
    """The gate's (or an operator's) decision on the run's model."""

    ENUMS: ClassVar = {"decision": (Verdict, "promotion decision")}

    decision: Verdict | None = None
    reason: str | None = None
    decided_at: str | None = None
    primary_metric: str | None = None
    manual: bool | None = None
    cached_from: str | None = None
    superseded: dict[str, Any] | None = None

    @property
    def promoted(self) -> bool:
        """Whether the model was promoted."""
        return self.decision is Verdict.PROMOTED


@dataclass(frozen=True)
class RunRecord(_Part):
    """One run's record. Read with :meth:`from_doc`; changed only by :mod:`leaklib.runs`."""

    ENUMS: ClassVar = {"status": (RunStatus, "run status")}
    PARTS: ClassVar[dict[str, type[_Part]]] = {
        "snapshot": SnapshotRef,
        "holdout": SnapshotRef,
        "model": ModelRecord,
        "alarm": AlarmRecord,
        "mlflow": MlflowRun,
        "promotion": Promotion,
    }

    run_id: str = ""
    status: RunStatus = RunStatus.RUNNING
    created_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    heartbeat_at: str | None = None
    origin: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    feature_order: list[str] | None = None
    param_files: list[str] | None = None
    git: dict[str, Any] | None = None
    lock_hash: str | None = None
    environment: dict[str, Any] | None = None
    seeds: dict[str, Any] | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)
    snapshot: SnapshotRef | None = None
    validation: dict[str, Any] | None = None
    derived_features: list[str] | None = None
    leaks: dict[str, Any] | None = None
    split: dict[str, Any] | None = None
    holdout: SnapshotRef | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    alarm: AlarmRecord | None = None
    model: ModelRecord | None = None
    mlflow: MlflowRun | None = None
    promotion: Promotion | None = None
    reports: dict[str, str] = field(default_factory=dict)
    reports_archive: dict[str, dict[str, str]] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def _load(cls, name: str, value: Any) -> Any:
        if name in cls.PARTS:
            return cls.PARTS[name].from_doc(value)
        if name == "steps":
            return {step: StepRecord.from_doc(entry) for step, entry in (value or {}).items()}
        if name in ("metrics", "reports", "reports_archive"):
            return value or {}  # a stored null reads as empty, and is written back as stored
        return super()._load(name, value)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | Self | None) -> Self:
        """Read a run document; RunRecordError (naming the run) for a value it cannot read."""
        if doc is None:
            raise RunRecordError("no run document to read")
        try:
            return super().from_doc(doc)
        except RunRecordError as error:
            raise RunRecordError(f"run {doc.get('run_id')!r}: {error}") from None

    def step(self, name: str) -> StepRecord:
        """Return a step's record (an empty one when the run never opened it)."""
        return self.steps.get(name) or StepRecord()

    def succeeded(self, step: str) -> bool:
        """Whether ``step`` of this run succeeded."""
        return self.step(step).status is StepStatus.SUCCEEDED

    @property
    def mlflow_run_id(self) -> str | None:
        """The train step's MLflow run id, if it has one."""
        return self.mlflow.run_id if self.mlflow else None

    @property
    def git_commit(self) -> str | None:
        """The commit the run's code was at, if known."""
        return (self.git or {}).get("commit")

    @property
    def seed(self) -> Any:
        """The run's random seed, as recorded."""
        return (self.seeds or {}).get("seed")

    def shown(self, *, at: datetime | None = None) -> RunStatus:
        """Return the status a reader should see: ``abandoned`` for a running run gone silent.

        A run is abandoned when it is still ``running`` but its last sign of life (heartbeat,
        else last update, else creation) is older than :data:`ABANDONED_AFTER_S`.
        """
        if self.status is not RunStatus.RUNNING:
            return self.status
        last = self.heartbeat_at or self.updated_at or self.created_at
        try:
            moment = datetime.fromisoformat(str(last))
        except ValueError:
            return self.status
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        silent = ((at or datetime.now(UTC)) - moment).total_seconds()
        return RunStatus.ABANDONED if silent > ABANDONED_AFTER_S else self.status

    def reached_a_step(self, *, at: datetime | None = None) -> bool:
        """Whether a run is a pipeline run to list: it opened a step, or is still starting.

        A run that ended before its first step ran nothing and has no report.
        """
        return bool(self.steps) or self.shown(at=at) is RunStatus.RUNNING

    def recorded_params(self) -> dict[str, Any]:
        """Return the run's parameters as recorded, the features back in their declared order.

        Stores may sort a mapping's keys (JSON files, Firestore), and a model's columns follow
        the declared order; ``feature_order`` keeps it.
        """
        values = dict(self.params)
        features = values["dataset"]["features"]
        order = self.feature_order or list(features)
        values["dataset"] = {**values["dataset"], "features": {n: features[n] for n in order}}
        return values

    @property
    def threshold(self) -> float:
        """The alarm threshold the run's model was given (chosen on CV, or the parameter)."""
        if self.alarm is not None and self.alarm.threshold is not None:
            return float(self.alarm.threshold)
        given = self.params.get("threshold")
        return float(given) if given is not None else LEGACY_THRESHOLD


class RunNotFound(MetadataError, NotFoundError):
    """No run of this id in the metadata store."""

    def __init__(self, run_id: str, *, store_uri: str | None = None) -> None:
        where = f" in {store_uri}" if store_uri else ""
        super().__init__(f"run {run_id!r} not found{where}")
        self.run_id = run_id


def get_run(store: MetadataStore, run_id: str) -> RunRecord:
    """Return a run's record; RunNotFound (a MetadataError) when it does not exist."""
    record = store.get(RUNS, run_id)
    if record is None:
        raise RunNotFound(run_id, store_uri=store.uri)
    return RunRecord.from_doc(record)


def get_run_or_none(store: MetadataStore, run_id: str) -> RunRecord | None:
    """Return a run's record, or None when it does not exist."""
    record = store.get(RUNS, run_id)
    return None if record is None else RunRecord.from_doc(record)


def list_runs(store: MetadataStore) -> list[RunRecord]:
    """Return every run, newest first."""
    records = [RunRecord.from_doc(doc) for doc in store.list(RUNS)]
    return sorted(records, key=lambda r: r.created_at or "", reverse=True)


def latest_run(store: MetadataStore, *, with_step: str | None = None) -> RunRecord:
    """Return the newest run, or the newest whose ``with_step`` succeeded."""
    for record in list_runs(store):
        if with_step is None or record.succeeded(with_step):
            return record
    wanted = f" with a succeeded {with_step!r} step" if with_step else ""
    raise MetadataError(f"no run{wanted} in {store.uri}: run the earlier notebook first")
