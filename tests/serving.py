"""Helpers for the `leak serve` tests: the app on a finished smoke run, and request bodies."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from leaklib import params as P

TOKEN = "serve-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]  # a run that keeps going


def smoke_files(project: Path) -> list[str]:
    return [str(project / "parameters" / "smoke.yaml")]


NEWEST = "2019-02-15T08:00:00"  # the smoke holdout: an alarm event opens at 07:00 that day


def series_records(
    project: Path, *, rows: int = 100, end: str = NEWEST, group: int | None = None
) -> list[dict]:
    """The newest ``rows`` readings before ``end`` of the smoke stream, as POST /predict records.

    Only the newest readings: the server finds their history (the derivations' lookback) in the
    run's recorded source. On a table of groups (``group``), the first rows of that series.
    """
    dataset = P.load(smoke_files(project)).dataset
    table = pd.read_parquet(project / dataset.source)
    if dataset.group is None:
        series = table[table[dataset.timestamp] < pd.Timestamp(end)].tail(rows)
    else:
        chosen = group if group is not None else sorted(table[dataset.group].unique())[0]
        series = table[table[dataset.group] == chosen].sort_values(dataset.timestamp).head(rows)
    columns = [c for c in (dataset.group, dataset.timestamp) if c] + list(dataset.features)
    return json.loads(series[columns].to_json(orient="records", date_format="iso"))


def predict_body(project: Path, **kwargs: Any) -> dict[str, list[dict]]:
    return {"records": series_records(project, **kwargs)}
