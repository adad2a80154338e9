"""Scored rows in a local Parquet or CSV file: appended once per scoring, replaced atomically."""

from __future__ import annotations

import pandas as pd
import pytest

from leaklib.sinks import SinkError, write_scores


def rows(scoring_id: str, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "probability": [0.1 * i for i in range(n)],
            "scored_at": pd.Timestamp("2026-01-01", tz="UTC"),
            "scoring_id": scoring_id,
        }
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_scorings_append_once_each(tmp_path, suffix):
    out = str(tmp_path / f"alarms{suffix}")
    assert write_scores(rows("a"), destination=out, scoring_id="a") == 3
    assert write_scores(rows("b", 2), destination=out, scoring_id="b") == 2
    assert write_scores(rows("a"), destination=out, scoring_id="a") == 0
    kept = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert kept["scoring_id"].tolist() == ["a", "a", "a", "b", "b"]


def test_an_unknown_file_type_is_refused(tmp_path):
    with pytest.raises(SinkError, match=r"--out .*alarms.json' must end in .parquet or .csv"):
        write_scores(rows("a"), destination=str(tmp_path / "alarms.json"), scoring_id="a")


def test_an_unknown_scheme_is_named():
    with pytest.raises(SinkError, match="--out 's3://b/a.parquet' is not supported"):
        write_scores(rows("a"), destination="s3://b/a.parquet", scoring_id="a")
