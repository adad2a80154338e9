"""Scored rows appended to a BigQuery table, once per scoring id."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from leaklib.errors import LeakError
from leaklib.sinks.base import EVENT_KEY, MODEL_SHA, SCORING_ID, WRITTEN_AT, SinkError
from leaklib.sources.bigquery import make_client, parse_table, query_parameters, quote_column

log = logging.getLogger(__name__)


class BigQuerySink:
    """``bigquery://PROJECT.DATASET.TABLE``; the table is created on the first append."""

    def __init__(self, uri: str, *, client: Any = None) -> None:
        try:
            self.table = parse_table(uri)
        except LeakError as exc:  # SourceError: the same identifier rules as a source
            raise SinkError(str(exc).replace("source", "--out", 1)) from exc
        self.uri = uri
        self._client = client

    @classmethod
    def from_uri(cls, uri: str) -> BigQuerySink:
        """Open the sink a ``bigquery://`` ``--out`` names."""
        return cls(uri)

    @property
    def client(self) -> Any:
        """The BigQuery client (the emulator's when one is configured)."""
        if self._client is None:
            self._client = make_client(self.table.project)
        return self._client

    def _already(self, scoring_id: str) -> bool:
        # heavy: a Google client library, loaded only when this backend is used
        from google.api_core import exceptions as gex

        # heavy: a Google client library, loaded only when this backend is used
        from google.cloud import bigquery

        sql = f"SELECT COUNT(*) AS n FROM {self.table.sql} WHERE {SCORING_ID} = @scoring_id"
        config = bigquery.QueryJobConfig(
            query_parameters=query_parameters({"scoring_id": scoring_id})
        )
        try:
            return next(iter(self.client.query(sql, job_config=config).result()))["n"] > 0
        except gex.NotFound:
            return False

    def _table(self, rows: pd.DataFrame) -> Any:
        """Return the destination table, created with the rows' schema when it is missing.

        Columns of ``rows`` the table lacks are added to it (nullable), as the file sinks do.
        """
        # heavy: a Google client library, loaded only when this backend is used
        from google.api_core import exceptions as gex

        # heavy: a Google client library, loaded only when this backend is used
        from google.cloud import bigquery

        # heavy: pandas-gbq loads only when writing to BigQuery
        from pandas_gbq.gbq import generate_bq_schema

        try:
            table = self.client.get_table(str(self.table))
        except gex.NotFound:
            fields = generate_bq_schema(rows)["fields"]
            schema = [bigquery.SchemaField(f["name"], f["type"]) for f in fields]
            return self.client.create_table(bigquery.Table(str(self.table), schema=schema))
        known = {f.name for f in table.schema}
        missing = [c for c in rows.columns if c not in known]
        if not missing:
            return table
        # a table written before some columns existed (events' location): they are added,
        # nullable, so its earlier rows read as having none
        fields = generate_bq_schema(rows[missing])["fields"]
        table.schema = [
            *table.schema,
            *(bigquery.SchemaField(f["name"], f["type"]) for f in fields),
        ]
        log.info("added columns %s to %s", ", ".join(missing), self.table)
        return self.client.update_table(table, ["schema"])

    def append(self, rows: pd.DataFrame, *, scoring_id: str) -> int:
        """Stream the rows into the table unless it holds this scoring already.

        Streaming inserts rather than pandas-gbq's load jobs: a load job's multipart upload is
        refused by the local BigQuery emulator the tests run against, and streaming behaves
        the same on both. The table's schema comes from pandas-gbq's mapping of the frame.
        """
        # heavy: a Google client library, loaded only when this backend is used
        from google.api_core import exceptions as gex

        if self._already(scoring_id):
            return 0
        try:
            errors = self.client.insert_rows_from_dataframe(self._table(rows), rows)
        except gex.GoogleAPIError as exc:
            raise SinkError(f"writing {len(rows)} rows to {self.table} failed: {exc}") from exc
        failed = [e for chunk in errors for e in chunk]
        if failed:
            raise SinkError(
                f"writing rows to {self.table} failed for {len(failed)} rows: {failed[:3]}"
            )
        log.info("appended %d scored rows to %s", len(rows), self.table)
        return len(rows)

    def _query(self, sql: str, values: dict[str, Any]) -> pd.DataFrame | None:
        """Run a parameterised query on the table; None when the table does not exist yet."""
        # heavy: a Google client library, loaded only when this backend is used
        from google.api_core import exceptions as gex

        # heavy: a Google client library, loaded only when this backend is used
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=query_parameters(values))
        try:
            rows = self.client.query(sql, job_config=config).result()
            return rows.to_dataframe(create_bqstorage_client=False)  # small: no Storage API
        except gex.NotFound:
            return None

    def scored_until(
        self, *, model_sha256: str, timestamp: str, group: str | None
    ) -> dict[Any, Any]:
        """Return the last time this model scored, per group (key None without a group)."""
        stamp = quote_column(timestamp)
        keys = f"{quote_column(group)} AS g, " if group else ""
        sql = (
            f"SELECT {keys}MAX({stamp}) AS t FROM {self.table.sql} "
            f"WHERE {MODEL_SHA} = @model_sha256" + (" GROUP BY g" if group else "")
        )
        found = self._query(sql, {"model_sha256": model_sha256})
        if found is None or found.empty or found["t"].isna().all():
            return {}
        if group is None:
            return {None: pd.Timestamp(found["t"].iloc[0])}
        return dict(zip(found["g"], pd.to_datetime(found["t"]), strict=True))

    def events(self) -> BigQueryEvents:
        """The events kept in this table (the ``_events`` table beside the rows')."""
        return BigQueryEvents(self)


class BigQueryEvents:
    """Events in a BigQuery table, appended; each key's latest ``written_at`` is its event."""

    def __init__(self, sink: BigQuerySink) -> None:
        self.sink = sink
        self.uri = sink.uri

    def read(self, *, model_sha256: str) -> pd.DataFrame:
        """Return the latest version of every event this model raised (empty: none yet)."""
        key = ", ".join(EVENT_KEY)
        sql = (
            f"SELECT * FROM {self.sink.table.sql} WHERE {MODEL_SHA} = @model_sha256 "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {WRITTEN_AT} DESC) = 1"
        )
        found = self.sink._query(sql, {"model_sha256": model_sha256})
        if found is None:
            return pd.DataFrame()
        void = found["closed"].astype(bool) & ~found["counts"].astype(bool)  # removed
        return found[~void.to_numpy()].reset_index(drop=True)

    def upsert(self, events: pd.DataFrame) -> int:
        """Append the events' new versions (streaming inserts, as the rows are written)."""
        # heavy: a Google client library, loaded only when this backend is used
        from google.api_core import exceptions as gex

        if events.empty:
            return 0
        try:
            errors = self.sink.client.insert_rows_from_dataframe(self.sink._table(events), events)
        except gex.GoogleAPIError as exc:
            raise SinkError(
                f"writing {len(events)} events to {self.sink.table} failed: {exc}"
            ) from exc
        failed = [e for chunk in errors for e in chunk]
        if failed:
            raise SinkError(f"writing events to {self.sink.table} failed: {failed[:3]}")
        return len(events)
