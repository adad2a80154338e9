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


def series_records(project: Path, *, rows: int = 100, group: int | None = None) -> list[dict]:
    """The first ``rows`` readings of one series of the smoke set, as POST /predict records.

    A series from its start: the default dataset's derivations compare each reading with the
    same time on the series' first day.
    """
    dataset = P.load(smoke_files(project)).dataset
    table = pd.read_parquet(project / dataset.source)
    chosen = group if group is not None else sorted(table[dataset.group].unique())[0]
    series = table[table[dataset.group] == chosen].sort_values(dataset.timestamp).head(rows)
    columns = [dataset.group, dataset.timestamp, *dataset.features]
    return json.loads(series[columns].to_json(orient="records", date_format="iso"))


def predict_body(project: Path, **kwargs: Any) -> dict[str, list[dict]]:
    return {"records": series_records(project, **kwargs)}
