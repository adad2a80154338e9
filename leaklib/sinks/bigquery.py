"""Scored rows appended to a BigQuery table with pandas-gbq, once per scoring id."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from leaklib.sinks.base import SCORING_ID, SinkError
from leaklib.sources.bigquery import make_client, parse_table, query_parameters

log = logging.getLogger(__name__)


class BigQuerySink:
    """``bigquery://PROJECT.DATASET.TABLE``; the table is created on the first append."""

    def __init__(self, uri: str, *, client: Any = None) -> None:
        try:
            self.table = parse_table(uri)
        except RuntimeError as exc:  # SourceError: the same identifier rules as a source
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

    def append(self, rows: pd.DataFrame, *, scoring_id: str) -> int:
        """Append the rows with pandas-gbq unless the table holds this scoring already."""
        # heavy: pandas-gbq and the Google client load only when writing to BigQuery
        import pandas_gbq

        if self._already(scoring_id):
            return 0
        try:
            pandas_gbq.to_gbq(
                rows,
                f"{self.table.dataset}.{self.table.table}",
                project_id=self.table.project,
                if_exists="append",
                progress_bar=False,
                bigquery_client=self.client,
            )
        except Exception as exc:  # pandas-gbq wraps the client's errors in its own types
            raise SinkError(f"writing {len(rows)} rows to {self.table} failed: {exc}") from exc
        log.info("appended %d scored rows to %s", len(rows), self.table)
        return len(rows)
