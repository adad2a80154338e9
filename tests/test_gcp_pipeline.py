"""End to end on the emulators: `leak run` reads BigQuery, writes Cloud Storage and Firestore.

The BigQuery table is seeded with the smoke data, read from the local smoke source; then the
unchanged command switches all three backends with ``-p`` overrides, and the plain Google
clients find what the run recorded.
"""

from __future__ import annotations

import hashlib
import io
import uuid

import pandas as pd
import pyarrow.parquet as pq
import pytest

from leaklib import params as P
from leaklib.params import PeriodSpec
from leaklib.schema import within_period
from leaklib.sources import read_source
from tests.conftest import leak, make_project

pytestmark = [pytest.mark.emulators, pytest.mark.slow]

DATABASE = "leak-db"


def _bigquery_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "BOOL"
    if pd.api.types.is_integer_dtype(series):
        return "INT64"
    if pd.api.types.is_float_dtype(series):
        return "FLOAT64"
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return "TIMESTAMP"
    if pd.api.types.is_datetime64_dtype(series):
        return "DATETIME"
    return "STRING"


def seed_table(client, table: str, frame: pd.DataFrame) -> None:
    """Create ``table`` from the frame's types and load its rows as Parquet.

    The load goes through a resumable upload (no size given): bqemulator's multipart uploads fail.
    """
    from google.cloud import bigquery

    columns = ", ".join(f"`{c}` {_bigquery_type(frame[c])}" for c in frame.columns)
    client.query(f"CREATE TABLE `{table}` ({columns})").result()
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].dt.as_unit("us")
    data = io.BytesIO()
    frame.to_parquet(data, index=False)
    data.seek(0)
    config = bigquery.LoadJobConfig(source_format="PARQUET", write_disposition="WRITE_APPEND")
    client.load_table_from_file(data, table, job_config=config).result()


def test_leak_run_on_bigquery_cloud_storage_and_firestore(
    tmp_path,
    monkeypatch,
    bigquery_emulator,
    bigquery_client,
    storage_client,
    gcs_bucket,
    firestore_emulator,
    firestore_project,
    gcs_emulator,
):
    project = make_project(tmp_path / "project")
    monkeypatch.setenv("LEAK_PROJECT_DIR", str(project))

    # the smoke data, from the local stream: its stretch plus a day on each side, so the run
    # has to apply dataset.period to the BigQuery table too
    smoke = P.load([project / "parameters" / "smoke.yaml"])
    local = read_source(smoke)[smoke.dataset.columns()]
    period, day = smoke.dataset.period, pd.Timedelta(days=1)
    wider = PeriodSpec(start=period.start - day, end=period.end + day)
    seeded = within_period(local, timestamp=smoke.dataset.timestamp, period=wider)
    kept = within_period(local, timestamp=smoke.dataset.timestamp, period=period)
    dataset = f"{bigquery_emulator.extra['project']}.smoke_{uuid.uuid4().hex[:8]}"
    bigquery_client.create_dataset(dataset)
    seed_table(bigquery_client, f"{dataset}.readings", seeded)

    finished = leak(
        project,
        "run",
        "-f",
        "parameters/smoke.yaml",
        "-p",
        "dataset.source",
        f"bigquery://{dataset}.readings",
        "-p",
        "snapshot_store",
        f"gs://{gcs_bucket}/snapshots",
        "-p",
        "metadata_store",
        f"firestore://{firestore_project}/{DATABASE}",
        env={
            **bigquery_emulator.env,
            **gcs_emulator.env,
            **firestore_emulator.env,
            "GOOGLE_APPLICATION_CREDENTIALS": "",
        },
    )
    assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-4000:]

    # the run record, read back with the plain Firestore client
    from google.cloud import firestore

    documents = list(
        firestore.Client(project=firestore_project, database=DATABASE).collection("runs").stream()
    )
    assert len(documents) == 1
    record = documents[0].to_dict()
    assert record["status"] == "succeeded"
    assert {s["status"] for s in record["steps"].values()} == {"succeeded"}
    assert record["params"]["dataset"]["source"] == f"bigquery://{dataset}.readings"
    sha256 = record["snapshot"]["sha256"]
    assert record["snapshot"]["uri"] == f"gs://{gcs_bucket}/snapshots/{sha256}.parquet"
    assert record["snapshot"]["rows"] == len(kept)

    # the snapshots (the validated table, the leak files and the holdout), listed with
    # the plain Cloud Storage client under the hashes the run recorded
    recorded = {sha256, record["holdout"]["sha256"]}
    recorded |= {entry["sha256"] for entry in record["leaks"].values()}  # the leak table, volumes
    blobs = {b.name: b for b in storage_client.list_blobs(gcs_bucket, prefix="snapshots/")}
    tables = sorted(name for name in blobs if name.count("/") == 1)
    assert tables == sorted(f"snapshots/{h}.parquet" for h in recorded)
    # beside them, the model file and the archived reports, under the hashes recorded too
    assert f"snapshots/models/{record['model']['sha256']}.skops" in blobs
    archived = {
        f"snapshots/reports/{record['run_id']}/{e['sha256']}.html"
        for e in record["reports_archive"].values()
    }
    assert len(archived) == 3 and archived <= set(blobs)
    for digest in recorded:
        blob = blobs[f"snapshots/{digest}.parquet"]
        assert blob.metadata == {"sha256": digest}
        assert hashlib.sha256(blob.download_as_bytes()).hexdigest() == digest
    snapshot = pq.read_table(io.BytesIO(blobs[f"snapshots/{sha256}.parquet"].download_as_bytes()))
    times = snapshot.column(smoke.dataset.timestamp).to_pandas()
    assert (times.min(), times.max()) == (kept["timestamp"].min(), kept["timestamp"].max())
