"""Scored rows appended to a BigQuery table (the local BigQuery emulator), once per scoring."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from leaklib.sinks import SinkError, open_events, scored_until, write_scores

pytestmark = pytest.mark.emulators


def rows(scoring_id: str, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scenario_id": list(range(n)),
            "probability": [0.25 * i for i in range(n)],
            "alarm": [i > 1 for i in range(n)],
            "scoring_id": scoring_id,
        }
    )


def test_a_scoring_is_appended_once(bigquery_client, bigquery_emulator):
    project = bigquery_emulator.extra["project"]
    dataset = f"scores_{uuid.uuid4().hex[:8]}"
    bigquery_client.create_dataset(f"{project}.{dataset}")
    out = f"bigquery://{project}.{dataset}.alarms"

    assert write_scores(rows("first"), destination=out, scoring_id="first") == 3
    assert write_scores(rows("first"), destination=out, scoring_id="first") == 0
    assert write_scores(rows("second", 2), destination=out, scoring_id="second") == 2

    found = bigquery_client.query(
        f"SELECT scoring_id, COUNT(*) AS n FROM `{project}.{dataset}.alarms` GROUP BY scoring_id"
    ).result()
    assert {row["scoring_id"]: row["n"] for row in found} == {"first": 3, "second": 2}


def test_a_bad_table_name_is_refused_before_any_request():
    with pytest.raises(SinkError, match="table name 't; DROP' is not valid"):
        write_scores(rows("a"), destination="bigquery://leak-test.ds.t; DROP", scoring_id="a")


def test_the_last_scored_time_and_the_latest_event_versions(bigquery_client, bigquery_emulator):
    project = bigquery_emulator.extra["project"]
    dataset = f"scores_{uuid.uuid4().hex[:8]}"
    bigquery_client.create_dataset(f"{project}.{dataset}")
    out = f"bigquery://{project}.{dataset}.alarms"
    times = pd.date_range("2019-01-01", periods=3, freq="15min")
    scored = rows("first").assign(timestamp=times, model_sha256="m")
    assert scored_until(out, model_sha256="m", timestamp="timestamp", group=None) == {}
    write_scores(scored, destination=out, scoring_id="first")
    assert scored_until(out, model_sha256="m", timestamp="timestamp", group=None) == {
        None: times[-1]
    }

    events = open_events(out)
    assert events.uri == f"{out}_events"
    event = {
        "event_id": "2019-01-01T00:15:00", "kind": "leak", "closed": False, "counts": True,
        "rows": 2, "model_sha256": "m",
        "written_at": pd.Timestamp("2019-01-01 00:30"),
    }  # fmt: skip
    events.upsert(pd.DataFrame([event]))
    events.upsert(pd.DataFrame([{**event, "closed": True, "rows": 3,
                                 "written_at": pd.Timestamp("2019-01-01 01:00")}]))  # fmt: skip
    (latest,) = events.read(model_sha256="m").to_dict(orient="records")
    assert (latest["closed"], latest["rows"]) == (True, 3)


def test_an_events_table_written_before_the_location_columns_gets_them(
    bigquery_client, bigquery_emulator
):
    project = bigquery_emulator.extra["project"]
    dataset = f"scores_{uuid.uuid4().hex[:8]}"
    bigquery_client.create_dataset(f"{project}.{dataset}")
    events = open_events(f"bigquery://{project}.{dataset}.alarms")
    old = {
        "event_id": "2019-01-01T00:15:00", "kind": "leak", "closed": False, "counts": True,
        "rows": 2, "model_sha256": "m", "written_at": pd.Timestamp("2019-01-01 00:30"),
    }  # fmt: skip
    events.upsert(pd.DataFrame([old]))  # the table, made without the location columns
    located = {
        **old, "top_node": "n1", "top_pipes": "p1,p2", "walk_m": 120.5,
        "candidates": '[{"rank": 1, "node": "n1"}]', "located_by": "s2",
    }  # fmt: skip

    events.sink._table(pd.DataFrame([located]))  # what upsert does before inserting

    table = bigquery_client.get_table(f"{project}.{dataset}.alarms_events")
    types = {f.name: f.field_type for f in table.schema}
    assert {k: types.get(k) for k in ("top_node", "walk_m", "candidates", "located_by")} == {
        "top_node": "STRING", "walk_m": "FLOAT", "candidates": "STRING", "located_by": "STRING",
    }  # fmt: skip
    assert list(types)[: len(old)] == list(old)  # the earlier columns stay, in their order
    # (inserting into the widened table is left out: bqemulator 1.4.0 records the new schema
    # but not in its DuckDB table, and answers 500; BigQuery adds nullable columns this way)
