"""Shared fixtures: small tables, parameter sets and throw-away stores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaklib import params as P


@pytest.fixture(autouse=True)
def _quiet_mlflow(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def make_table(*, scenarios: int = 24, rows_per: int = 48, seed: int = 0) -> pd.DataFrame:
    """A table of the default dataset's shape with a weak, learnable leak signal."""
    rng = np.random.default_rng(seed)
    frames = []
    for sid in range(scenarios):
        stamps = pd.date_range("2024-01-01", periods=rows_per, freq="15min")
        leak = np.zeros(rows_per, dtype=int)
        if sid % 4 != 3:
            leak[rng.integers(4, rows_per - 4):] = 1
        frames.append(
            pd.DataFrame(
                {
                    "scenario_id": sid,
                    "timestamp": stamps,
                    "p_a": rng.normal(40, 1, rows_per) - 1.5 * leak,
                    "p_b": rng.normal(30, 1, rows_per),
                    "zone": rng.choice(["north", "south"], rows_per),
                    "valve_open": rng.choice([True, False], rows_per),
                    "leaks": leak,
                    "note": "undeclared",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture
def params(tmp_path) -> P.Params:
    """Parameters for ``make_table`` with stores under the test's temporary folder."""
    values = P.defaults()
    values.update(
        source=str(tmp_path / "table.parquet"),
        features={"p_a": "numeric", "p_b": {"type": "numeric", "min": 0}, "zone": "categorical",
                  "valve_open": "boolean"},
        snapshot_store=str(tmp_path / "snapshots"),
        metadata_store=str(tmp_path / "metadata"),
        cv_folds=3,
        model={"name": "hist_gradient_boosting", "params": {"max_iter": 20}},
    )
    return P.validate(values)
