"""MLflow tracking helpers that need no server: the dataset input's schema."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from leaklib import tracking


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    """Every column kind a snapshot may hold, with and without missing values."""
    return pd.DataFrame(
        {
            "pressure": [1.0, np.nan, 3.0, 4.0],
            "flow": [0.5, 0.25, 0.125, 1.0],
            "scenario_id": [1, 1, 2, 2],
            "zone": ["a", None, "c", "d"],
            "kind": ["p", "q", "r", "s"],
            "timestamp": pd.to_datetime(["2024-01-01", None, "2024-01-03", "2024-01-04"]),
            "pump_on": [True, False, True, True],
            "empty": [np.nan] * 4,
        }
    )


@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer")
def test_frame_schema_equals_mlflows_own_inference(mixed_frame):
    theirs = mlflow.data.from_pandas(mixed_frame).schema

    assert tracking.frame_schema(mixed_frame).to_dict() == theirs.to_dict()


@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer")
def test_frame_schema_marks_a_column_with_a_late_missing_value_optional(mixed_frame):
    late = pd.concat([mixed_frame.dropna(subset=["pressure"])] * 3, ignore_index=True)
    late.loc[len(late) - 1, "flow"] = np.nan  # only the last row is missing: not in head(1)

    required = {col.name: col.required for col in tracking.frame_schema(late).inputs}

    assert required["flow"] is False
    assert required["kind"] is True
