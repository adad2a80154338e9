"""Validate an input table against the declared feature schema, before anything is written.

Replaces a hand-written datamodel: the schema is the ``features`` mapping of the parameters,
so adapting the pipeline to another table means editing YAML only.
"""

from __future__ import annotations

import contextlib
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leaklib.errors import LeakError
from leaklib.params import DatasetSpec, FeatureSpec, Params, PeriodSpec
from leaklib.sampling import SampleReport, sample_frame
from leaklib.sources.base import SourceTable

log = logging.getLogger(__name__)

# True == 1 == 1.0 in a set: one entry covers bools, ints and floats
_TRUE = {True, "true", "True", "TRUE", "1", "yes"}
_FALSE = {False, "false", "False", "FALSE", "0", "no"}
# the spellings a text target may use, compared after stripping and lower-casing
TARGET_SPELLINGS = {"1": 1, "true": 1, "yes": 1, "0": 0, "false": 0, "no": 0}
_OFFSET = re.compile(r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")


class SchemaError(LeakError, ValueError):
    """The table does not fit the declared schema; the message lists every problem by column."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "the input table does not fit the declared schema:\n  - " + "\n  - ".join(problems),
            problems=problems,
        )


@dataclass
class ValidationReport:
    """What validation found: sizes, class balance, missing values, ignored columns, sample."""

    rows: int
    groups: int | None
    positives: int
    positive_rate: float
    missing: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sample: SampleReport | None = None

    def summary(self) -> pd.Series:
        """Return the headline figures as a one-column table for the notebook."""
        sample = self.sample
        return pd.Series(
            {
                "rows": f"{self.rows:,}" + (f" of {sample.of_rows:,}" if sample else ""),
                "groups": "-"
                if self.groups is None
                else f"{self.groups:,}" + (f" of {sample.of_groups:,}" if sample else ""),
                "leak rows": f"{self.positives:,} ({self.positive_rate:.1%})",
                "columns with missing values": len(self.missing),
                "undeclared columns ignored": ", ".join(self.ignored_columns) or "none",
                "sample": sample.rule if sample else "none: every group",
                "notes": "; ".join(self.notes) or "none",
            },
            name="value",
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain values for the run record."""
        return {
            "rows": self.rows,
            "groups": self.groups,
            "positives": self.positives,
            "positive_rate": round(self.positive_rate, 6),
            "missing": self.missing,
            "ignored_columns": self.ignored_columns,
            "notes": self.notes,
            "sample": self.sample.to_dict() if self.sample else None,
        }


def _examples(values: pd.Series, limit: int = 3) -> str:
    shown = ", ".join(repr(v) for v in values.drop_duplicates().head(limit).tolist())
    return f"{shown}{', ...' if values.nunique() > limit else ''}"


def _distinct(values: pd.Series, limit: int = 8) -> str:
    """Return the distinct values of a column, sorted where they can be: ``0, 1, 2``."""
    found = values.dropna().unique().tolist()
    with contextlib.suppress(TypeError):  # mixed types: keep the order of appearance
        found = sorted(found)
    shown = ", ".join(str(v) if isinstance(v, int | float) else repr(v) for v in found[:limit])
    return f"{shown}{', ...' if len(found) > limit else ''}"


def _coerce_target(series: pd.Series, name: str, problems: list[str]) -> pd.Series | None:
    if series.isna().any():
        problems.append(
            f"column {name!r} (target): {int(series.isna().sum())} missing value(s); the target must be 0/1 on every row"
        )
        return None
    if pd.api.types.is_float_dtype(series) and np.isinf(series.to_numpy()).any():
        problems.append(f"column {name!r} (target): infinite values; the target must be 0/1")
        return None
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        # "yes"/"no", "True"/"False", "1"/"0" in any case: the obvious spellings of a label
        spelled = series.map(
            lambda v: TARGET_SPELLINGS.get(v.strip().lower()) if isinstance(v, str) else v
        )
        if spelled.notna().all():
            series = spelled
    bad = series[~series.isin([0, 1, True, False])]
    if len(bad):
        problems.append(
            f"column {name!r} (target): must be binary 0/1 or true/false, "
            f"found the values {_distinct(series)}"
        )
        return None
    target = series.astype("int8")
    if target.nunique() < 2:
        problems.append(
            f"column {name!r} (target): only class {int(target.iloc[0])} present; both 0 and 1 are needed"
        )
        return None
    return target


def _coerce_feature(
    series: pd.Series, name: str, spec: FeatureSpec, problems: list[str]
) -> pd.Series | None:
    if spec.type == "numeric":
        if pd.api.types.is_bool_dtype(series):
            series = series.astype("float64")
        numeric = pd.to_numeric(series, errors="coerce")
        bad = series[numeric.isna() & series.notna()]
        if len(bad):
            problems.append(
                f"column {name!r} (numeric): non-numeric values {_examples(bad)} in "
                f"{len(bad)} row(s); expected numbers only"
            )
            return None
        numeric = numeric.astype("float64")
        if np.isinf(numeric.to_numpy()).any():
            problems.append(
                f"column {name!r} (numeric): {int(np.isinf(numeric).sum())} infinite value(s)"
            )
            return None
        if spec.min is not None and (numeric < spec.min).any():
            low = numeric[numeric < spec.min]
            problems.append(
                f"column {name!r} (numeric): {len(low)} value(s) below the declared min {spec.min}, e.g. {low.min()}"
            )
        if spec.max is not None and (numeric > spec.max).any():
            high = numeric[numeric > spec.max]
            problems.append(
                f"column {name!r} (numeric): {len(high)} value(s) above the declared max {spec.max}, e.g. {high.max()}"
            )
        return numeric
    if spec.type == "boolean":
        present = series.dropna()
        bad = present[~present.isin(_TRUE | _FALSE)]
        if len(bad):
            problems.append(
                f"column {name!r} (boolean): values that are not true/false or 0/1: {_examples(bad)}"
            )
            return None
        return series.map(lambda v: np.nan if pd.isna(v) else float(v in _TRUE)).astype("float64")
    # categorical: any value, kept as text so 1 and "1" are one category
    text = series.map(lambda v: np.nan if pd.isna(v) else str(v)).astype("object")
    distinct = text.nunique()
    if spec.max_categories is not None and distinct > spec.max_categories:
        problems.append(
            f"column {name!r} (categorical): {distinct:,} distinct values, more than its "
            f"max_categories {spec.max_categories} (an id or a measurement declared as a "
            "category?); raise the cap or declare the column numeric"
        )
        return None
    return text


def _times(values: pd.Series, name: str, problems: list[str], notes: list[str]) -> pd.Series:
    """Parse a timestamp column: explicit UTC offsets that differ are converted to UTC."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    present = values.dropna()
    text = present[present.map(lambda v: isinstance(v, str))].str.strip()
    with_offset = text.str.contains(_OFFSET)
    if with_offset.any() and not with_offset.all():
        problems.append(
            f"column {name!r} (timestamp): mixes times with a UTC offset "
            f"({text[with_offset].iloc[0]!r}) and without one ({text[~with_offset].iloc[0]!r}); "
            "expected every value with an offset, or none"
        )
        return pd.Series(pd.NaT, index=values.index)
    try:
        return pd.to_datetime(values, errors="coerce")
    except ValueError as exc:
        if "Mixed timezones" not in str(exc):
            problems.append(f"column {name!r} (timestamp): cannot be read as times: {exc}")
            return pd.Series(pd.NaT, index=values.index)
    # several offsets, as a local clock gives across a daylight-saving change: unambiguous
    notes.append(f"column {name!r}: times with several UTC offsets were converted to UTC")
    log.warning("column %r: times with several UTC offsets converted to UTC", name)
    return pd.to_datetime(values, errors="coerce", utc=True)


def _fold(name: str) -> str:
    """Return a column name without case, Unicode-form and spacing differences."""
    return " ".join(unicodedata.normalize("NFKC", str(name)).casefold().split())


def _near_miss(column: str, present: pd.Index) -> str:
    """Return a hint naming a table column that differs from ``column`` only in spelling."""
    close = [c for c in present if _fold(c) == _fold(column) and c != column]
    if not close:
        return ""
    return f"; the table has {close[0]!r}, which differs only in case, spaces or Unicode form"


def _check_split(frame: pd.DataFrame, params: Params, problems: list[str]) -> None:
    need = params.cv_folds + 1
    unit = f"groups of {params.dataset.group!r}" if params.dataset.group else "rows"
    for cls in (0, 1):
        if params.dataset.group:
            count = frame.loc[frame[params.dataset.target] == cls, params.dataset.group].nunique()
        else:
            count = int((frame[params.dataset.target] == cls).sum())
        if count < need:
            problems.append(
                f"column {params.dataset.target!r}: class {cls} appears in only {count} {unit}; "
                f"need at least {need} (cv_folds + 1) to split into training folds and a holdout"
            )


def _check_columns(
    frame: pd.DataFrame,
    dataset: DatasetSpec,
    problems: list[str],
    notes: list[str],
    *,
    target: bool = True,
    present: Sequence[str] | None = None,
) -> dict[str, pd.Series]:
    """Type every declared column that is present; note every problem, missing ones too.

    With ``target=False`` (scoring new readings) the target may be absent; when present it is
    checked like any other column. ``present`` names every column of the source when the
    frame holds only the declared ones (for the hint that names a near miss).
    """
    present = pd.Index(frame.columns if present is None else present)
    for column in dataset.columns():
        if column == dataset.target and not target:
            continue
        if column not in frame.columns:
            problems.append(
                f"column {column!r} ({dataset.role_of(column)}) is declared but not in the "
                f"table{_near_miss(column, present)}"
            )
    out: dict[str, pd.Series] = {}
    if dataset.group in frame.columns:
        groups = frame[dataset.group]
        if groups.isna().any():
            problems.append(
                f"column {dataset.group!r} (group): {int(groups.isna().sum())} missing value(s)"
            )
        out[dataset.group] = groups
    if dataset.timestamp in frame.columns:
        before = len(problems)
        stamps = _times(frame[dataset.timestamp], dataset.timestamp, problems, notes)
        bad = frame[dataset.timestamp][stamps.isna()]
        if len(bad) and len(problems) == before:
            problems.append(
                f"column {dataset.timestamp!r} (timestamp): values that are not times: {_examples(bad)}"
            )
        out[dataset.timestamp] = stamps
    for name, spec in dataset.features.items():
        if name in frame.columns:
            coerced = _coerce_feature(frame[name], name, spec, problems)
            if coerced is not None:
                out[name] = coerced
    if dataset.target in frame.columns:
        target = _coerce_target(frame[dataset.target], dataset.target, problems)
        if target is not None:
            out[dataset.target] = target
    return out


def _sample_notes(sample: SampleReport, group: str, problems: list[str], notes: list[str]) -> None:
    """Say what a sample left unchecked, and name rows that no sample can hold."""
    if sample.rows_without_group:
        problems.append(
            f"column {group!r} (group): {sample.rows_without_group:,} missing value(s) in the "
            "source; a row without a group is in no sample"
        )
    if sample.kept_groups < sample.of_groups:
        notes.append("rows of unsampled groups were not validated")


def validate_table(
    raw: pd.DataFrame | SourceTable, *, params: Params
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check a table against the declared schema and return it typed, with a report.

    The returned frame holds, in order, the group and timestamp columns (if set), the
    declared features and the target (int8). Undeclared columns are dropped and listed.
    ``dataset.sample`` keeps whole groups before anything is checked, so only the kept rows
    are validated (the report says so); ``dataset.max_groups`` likewise.

    Args:
        raw: The table, or what :func:`leaklib.sources.extract_source` read: sampled at the
            source, with the names of the source's other columns. A plain table is sampled
            here when ``dataset.sample`` is set.
        params: The run's parameters.

    Raises:
        SchemaError: Naming every column that is missing, mistyped, out of bounds or
            unusable as a target, or a table too small to split, all at once.
    """
    dataset = params.dataset
    problems: list[str] = []
    if isinstance(raw, SourceTable):
        frame, present, sample = raw.frame, list(raw.columns), raw.sample
    else:
        frame, present, sample = raw, None, None
    if frame.empty and sample is None:
        raise SchemaError([f"the table from {dataset.source!r} has no rows"])
    repeated = frame.columns[frame.columns.duplicated()].unique()
    if len(repeated):
        raise SchemaError(
            [
                f"column {c!r} appears {int((frame.columns == c).sum())} times in the table; "
                "expected unique column names"
                for c in repeated
            ]
        )
    frame, present, sample = _kept_rows(frame, dataset, present=present, sample=sample)
    notes: list[str] = []
    if sample is not None:
        _sample_notes(sample, dataset.group, problems, notes)
    out = _check_columns(frame, dataset, problems, notes, present=present)
    if problems:
        raise SchemaError(problems)
    clean = pd.DataFrame(out)
    _check_split(clean, params, problems)
    if problems:
        raise SchemaError(problems)
    ignored = [c for c in (frame.columns if present is None else present) if c not in clean.columns]
    log.info("validated %d rows; %d ignored column(s)", len(clean), len(ignored))
    return clean, _report(clean, dataset, ignored=ignored, notes=notes, sample=sample)


def _kept_rows(
    frame: pd.DataFrame,
    dataset: DatasetSpec,
    *,
    present: list[str] | None,
    sample: SampleReport | None,
) -> tuple[pd.DataFrame, list[str] | None, SampleReport | None]:
    """The rows ``dataset.max_groups``, ``dataset.period`` and ``dataset.sample`` keep.

    Returns them, with the source's columns (noted before a sample here drops nothing) and the
    sample drawn (at the source, or here).

    Raises:
        SchemaError: The sample kept no group.
    """
    if dataset.max_groups and dataset.group in frame.columns:
        frame = limit_groups(frame, group=dataset.group, max_groups=dataset.max_groups)
    if dataset.period is not None and dataset.timestamp in frame.columns:
        frame = within_period(frame, timestamp=dataset.timestamp, period=dataset.period)
    if sample is None and dataset.sample and dataset.group in frame.columns:
        present = list(frame.columns) if present is None else present
        frame, sample = sample_frame(frame, group=dataset.group, spec=dataset.sample)
    if sample is not None and frame.empty:
        raise SchemaError(
            [
                f"dataset.sample {sample.rule} kept no group of the {sample.of_groups:,} in "
                f"{dataset.source!r}; choose more groups or a larger fraction"
            ]
        )
    return frame, present, sample


def _report(
    clean: pd.DataFrame,
    dataset: DatasetSpec,
    *,
    ignored: list[str],
    notes: list[str],
    sample: SampleReport | None,
) -> ValidationReport:
    """What validation found in the clean table: its size, positives and missing values."""
    missing_counts = {c: int(n) for c, n in clean[list(dataset.features)].isna().sum().items() if n}
    positives = int(clean[dataset.target].sum())
    return ValidationReport(
        rows=len(clean),
        groups=int(clean[dataset.group].nunique()) if dataset.group else None,
        positives=positives,
        positive_rate=positives / len(clean),
        missing=missing_counts,
        ignored_columns=ignored,
        notes=notes,
        sample=sample,
    )


def validate_for_scoring(frame: pd.DataFrame, *, dataset: DatasetSpec) -> pd.DataFrame:
    """Check new readings against a model's recorded schema; the target is optional.

    Raises:
        SchemaError: Naming every column that is missing, mistyped or out of bounds.
    """
    problems: list[str] = []
    if frame.empty:
        raise SchemaError([f"the table from {dataset.source!r} has no rows"])
    out = _check_columns(frame, dataset, problems, [], target=False)
    if problems:
        raise SchemaError(problems)
    return pd.DataFrame(out)


def within_period(frame: pd.DataFrame, *, timestamp: str, period: PeriodSpec) -> pd.DataFrame:
    """Keep the rows with ``period.start <= timestamp < period.end`` (a short stretch)."""
    times = pd.to_datetime(frame[timestamp], errors="coerce")
    keep = pd.Series(True, index=frame.index)
    if period.start is not None:
        keep &= times >= pd.Timestamp(period.start)
    if period.end is not None:
        keep &= times < pd.Timestamp(period.end)
    return frame[keep.to_numpy()].reset_index(drop=True)


def limit_groups(frame: pd.DataFrame, *, group: str, max_groups: int) -> pd.DataFrame:
    """Keep the rows of the first ``max_groups`` groups in sorted order (quick iterations)."""
    keep = sorted(frame[group].dropna().unique())[:max_groups]
    return frame[frame[group].isin(keep)].reset_index(drop=True)


def profile(frame: pd.DataFrame, *, params: Params) -> pd.DataFrame:
    """Return a per-column summary: type, missing share, distinct values, min, mean, max."""
    rows = []
    for name, spec in params.dataset.features.items():
        column = frame[name]
        numeric = spec.type != "categorical"
        rows.append(
            {
                "column": name,
                "type": spec.type,
                "missing %": round(100 * column.isna().mean(), 2),
                "distinct": int(column.nunique()),
                "min": round(float(column.min()), 3) if numeric else None,
                "mean": round(float(column.mean()), 3) if numeric else None,
                "max": round(float(column.max()), 3) if numeric else None,
            }
        )
    return pd.DataFrame(rows).set_index("column")


def most_separating(frame: pd.DataFrame, *, params: Params, n: int = 3) -> list[str]:
    """Return the ``n`` numeric features whose class means differ most (in standard deviations)."""
    numeric = [c for c, s in params.dataset.features.items() if s.type == "numeric"]
    by_class = frame.groupby(params.dataset.target)[numeric].mean()
    spread = frame[numeric].std().replace(0, np.nan)
    gap = ((by_class.loc[1] - by_class.loc[0]).abs() / spread).dropna()
    return gap.sort_values(ascending=False).head(n).index.tolist()
