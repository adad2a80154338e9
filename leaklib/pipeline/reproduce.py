"""Run a past run again on its own recorded snapshot and parameters, and compare the metrics.

The snapshot is read by hash from the snapshot store (``snapshot:<sha256>``), so the source
table may have changed since. What cannot be pinned by the record itself (the code at the
current commit, the installed lock) is compared and reported.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from leaklib import lineage
from leaklib.errors import LeakError
from leaklib.params import Params, validate
from leaklib.run_record import RunRecord


class ReproduceError(LeakError, RuntimeError):
    """A run cannot be reproduced; the message says what is missing or different."""


def reproduction_params(record: RunRecord) -> Params:
    """Return the recorded parameters with the source pinned to the recorded snapshot."""
    snapshot = record.snapshot
    if not (snapshot and snapshot.sha256):
        raise ReproduceError(
            f"run {record.run_id!r} has no snapshot: its extract step did not succeed"
        )
    values = record.recorded_params()
    values["dataset"] = {**values["dataset"], "source": f"snapshot:{snapshot.sha256}"}
    for key, entry in (record.leaks or {}).items():  # the leak files, as snapshotted
        values["dataset"][f"leak_{key}"] = f"snapshot:{entry['sha256']}"
    values["run_id"] = None
    return validate(values)


def reproduction_files(record: RunRecord) -> list[str]:
    """Return the parameter files the run was made from: the reproduction's label in reports.

    The parameters themselves come from the record (:func:`reproduction_params`); the files
    only name the set, so a reproduction of a smoke run is not shown as the embedded default.
    """
    return [str(name) for name in record.param_files or []]


def drift(record: RunRecord) -> list[str]:
    """Return what differs between the recorded environment and this one (commit, lock)."""
    found = []
    recorded = record.git_commit
    current = lineage.git_info().get("commit")
    if recorded != current:
        found.append(
            f"git commit {str(current)[:12]} differs from the recorded {str(recorded)[:12]}"
        )
    if record.lock_hash != lineage.lock_hash():
        found.append("requirements/main.lock differs from the recorded one")
    return found


def _same(before: Any, after: Any) -> bool:
    """Whether two recorded values are the same, a missing figure (NaN, null) equal to itself."""
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (before, after)]
    return all(missing) if any(missing) else before == after


def compare_metrics(recorded: dict[str, Any], reproduced: dict[str, Any]) -> pd.DataFrame:
    """Return recorded | reproduced | identical for every metric either run has."""
    rows = {}
    for key in sorted(set(recorded) | set(reproduced)):
        before, after = recorded.get(key), reproduced.get(key)
        rows[key] = {"recorded": before, "reproduced": after, "identical": _same(before, after)}
    frame = pd.DataFrame.from_dict(
        rows, orient="index", columns=["recorded", "reproduced", "identical"]
    )
    frame.index.name = "metric"
    return frame
