"""Scored rows appended to a BigQuery table, once per scoring id."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from leaklib.errors import LeakError
from leaklib.sinks.base import SCORING_ID, SinkError
from leaklib.sources.bigquery import make_client, parse_table, query_parameters

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
        """Return the destination table, created with the rows' schema when it is missing."""
        # heavy: a Google client library, loaded only when this backend is used
        from google.api_core import exceptions as gex

        # heavy: a Google client library, loaded only when this backend is used
        from google.cloud import bigquery

        # heavy: pandas-gbq loads only when writing to BigQuery
        from pandas_gbq.gbq import generate_bq_schema

        try:
            return self.client.get_table(str(self.table))
        except gex.NotFound:
            fields = generate_bq_schema(rows)["fields"]
            schema = [bigquery.SchemaField(f["name"], f["type"]) for f in fields]
            return self.client.create_table(bigquery.Table(str(self.table), schema=schema))

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
