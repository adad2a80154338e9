"""Which groups ``dataset.sample`` keeps: one rule, written once in Python and once in SQL.

A group is chosen by the SHA-256 of its value's text form, as lowercase hex:
``hashlib.sha256(str(value).encode()).hexdigest()`` here and
``TO_HEX(SHA256(CAST(value AS STRING)))`` in BigQuery (:func:`sql_group_hash`). The two agree
for whole numbers and text, the group types a sample accepts (:func:`check_group_type`);
floats, times and booleans are refused because their text forms differ (``1.0`` against
``1``, ``True`` against ``true``).

- ``{groups: N}`` keeps the N groups with the smallest hashes (all of them when there are
  fewer);
- ``{fraction: f}`` keeps the groups whose hash, read as a number, is below ``f`` times its
  range: the first :data:`HEX_DIGITS` hex digits compared as text with
  :func:`fraction_bound`, which both sides can do.

Whole groups are kept, so the grouped holdout and cross-validation stay honest; the same table
and parameter give the same groups on every run and every backend. Rows whose group is
missing belong to no group and are in no sample; they are counted, and validation reports them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from leaklib.errors import LeakError
from leaklib.params import SampleSpec

HEX_DIGITS = 16  # 64 bits of the hash: fraction bounds to 2^-64


class SampleError(LeakError, ValueError):
    """``dataset.sample`` cannot apply to this table; the message says why."""


def group_hash(value: Any) -> str:
    """Return the hex SHA-256 of a group value's text form (what BigQuery computes in SQL)."""
    return hashlib.sha256(str(value).encode("utf-8")).hexdigest()


def sql_group_hash(column_sql: str) -> str:
    """Return the BigQuery SQL expression of :func:`group_hash` for a quoted column."""
    return f"TO_HEX(SHA256(CAST({column_sql} AS STRING)))"


def fraction_bound(fraction: float) -> str | None:
    """Return the hash prefix a group's must be below to be kept, or None when all are kept."""
    if fraction >= 1:
        return None
    return format(int(fraction * 2 ** (4 * HEX_DIGITS)), f"0{HEX_DIGITS}x")


def describe_rule(spec: SampleSpec) -> str:
    """Return the rule as a parameter would write it: ``{groups: 24}``, ``{fraction: 0.1}``."""
    return (
        f"{{groups: {spec.groups}}}"
        if spec.groups is not None
        else f"{{fraction: {spec.fraction}}}"
    )


def chosen_groups(values: Iterable[Any], spec: SampleSpec) -> set[Any]:
    """Return the groups the rule keeps out of these distinct, non-missing group values."""
    if spec.groups is not None:
        return set(sorted(values, key=group_hash)[: spec.groups])
    bound = fraction_bound(spec.fraction)
    if bound is None:
        return set(values)
    return {value for value in values if group_hash(value)[:HEX_DIGITS] < bound}


class FractionChooser:
    """Decides group by group for ``{fraction: f}``, remembering each group's hash once."""

    def __init__(self, spec: SampleSpec) -> None:
        self._bound = fraction_bound(spec.fraction)
        self._kept: dict[Any, bool] = {}

    def kept(self, values: Iterable[Any]) -> list[Any]:
        """Return which of these distinct group values are kept."""
        for value in values:
            if value not in self._kept:
                prefix = group_hash(value)[:HEX_DIGITS]
                self._kept[value] = self._bound is None or prefix < self._bound
        return [value for value in values if self._kept[value]]

    @property
    def seen(self) -> int:
        """How many distinct groups were decided so far."""
        return len(self._kept)


def check_group_type(kind: str, *, group: str, integer: bool, text: bool) -> None:
    """Refuse a group column whose values are neither whole numbers nor text.

    Args:
        kind: The column's type as its backend names it (``double``, ``FLOAT64``).
        group: The group column's name.
        integer: Whether the column holds whole numbers.
        text: Whether it holds text.
    """
    if not (integer or text):
        raise SampleError(
            f"dataset.sample: the group column {group!r} is of type {kind}; sampling needs "
            "whole numbers or text in it (groups are chosen by a hash of their text form, "
            "which BigQuery and Python write alike only for those). A CSV integer column "
            "with a missing value is read as float"
        )


@dataclass(frozen=True)
class SampleReport:
    """What a sample kept, of how much, for the run record and the extract report."""

    rule: str  # as the parameter writes it: {groups: 24} or {fraction: 0.1}
    kept_groups: int
    of_groups: int
    rows: int
    of_rows: int
    rows_without_group: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain values for the run record."""
        return asdict(self)

    def summary(self) -> str:
        """Return one line: what was kept, of how much."""
        return (
            f"{self.rule}: {self.kept_groups:,} of {self.of_groups:,} groups, "
            f"{self.rows:,} of {self.of_rows:,} rows"
        )


def sample_frame(
    frame: pd.DataFrame, *, group: str, spec: SampleSpec
) -> tuple[pd.DataFrame, SampleReport]:
    """Keep the rows of the groups the rule chooses, from a table already in memory.

    Raises:
        SampleError: The group column is absent, or neither whole numbers nor text.
    """
    if group not in frame.columns:
        raise SampleError(f"dataset.sample: the group column {group!r} is not in the table")
    values = frame[group]
    check_group_type(
        str(values.dtype),
        group=group,
        integer=pd.api.types.is_integer_dtype(values),
        text=pd.api.types.is_string_dtype(values),
    )
    distinct = values.dropna().unique().tolist()
    kept = chosen_groups(distinct, spec)
    sampled = frame[values.isin(kept)].reset_index(drop=True)
    report = SampleReport(
        rule=describe_rule(spec),
        kept_groups=len(kept),
        of_groups=len(distinct),
        rows=len(sampled),
        of_rows=len(frame),
        rows_without_group=int(values.isna().sum()),
    )
    return sampled, report
