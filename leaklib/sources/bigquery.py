"""Read the input table from BigQuery: ``source: bigquery://PROJECT.DATASET.TABLE``.

Only the columns a run uses are selected (:meth:`leaklib.params.Params.columns`), so a wide
table costs what those columns cost. Every identifier is checked against BigQuery's naming
rules and quoted; the optional ``bigquery.where`` filter is SQL whose values come from
``bigquery.where_params`` as query parameters, never pasted into the text; ``bigquery.limit``
and ``max_groups`` are query parameters too.

The extract step (:meth:`BigQueryReader.extract`) pushes ``dataset.sample`` into the query:
whole groups chosen by a hash of the group value (:mod:`leaklib.sampling`, the same groups a
local file gives), with the rule's number as a query parameter. The query still scans the
selected columns of every row (BigQuery bills the bytes scanned), but only the sample is
downloaded. A second, small query counts the groups and rows the sample was taken from.

Credentials are Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, a workload
identity, or ``gcloud auth application-default login``); the query is billed to
``bigquery.billing_project``, else to the table's project. Results are downloaded with the
BigQuery Storage Read API when ``bigquery.use_storage_api`` is true and the result is large
enough to need it; a Storage API permission error falls back to the REST API.

Emulators: ``BIGQUERY_EMULATOR_HOST`` (``http://host:port``) sends the REST calls there with
anonymous credentials; ``BIGQUERY_STORAGE_EMULATOR_HOST`` (``host:port``) sends the Storage
Read API there over plain gRPC. With only the first set, the Storage Read API is not used.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from leaklib import sampling
from leaklib.gcp import PROJECT_ID_RULE, build_client, is_project_id
from leaklib.params import Params
from leaklib.sources.base import SourceError, SourceTable, check_fits

if TYPE_CHECKING:
    from google.cloud import bigquery

log = logging.getLogger(__name__)

SCHEME = "bigquery://"
ENV_EMULATOR = "BIGQUERY_EMULATOR_HOST"
ENV_STORAGE_EMULATOR = "BIGQUERY_STORAGE_EMULATOR_HOST"

# BigQuery's naming rules (project ids: leaklib.gcp), kept to their plain ASCII core where the rules allow more (table
# names may hold spaces and other Unicode; we refuse those rather than quote them).
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_TABLE = re.compile(r"^[A-Za-z0-9_-]{1,1024}$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_PARAM_USE = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")
_WHERE_FORBIDDEN = (";", "--", "/*", "*/", "#")
_RESERVED_PARAMS = (
    "leak_limit",
    "leak_max_groups",
    "leak_sample_groups",
    "leak_sample_below",
    "leak_period_start",
    "leak_period_end",
)


@dataclass(frozen=True)
class TableRef:
    """A checked ``PROJECT.DATASET.TABLE``."""

    project: str
    dataset: str
    table: str

    def __str__(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    @property
    def sql(self) -> str:
        """The table as a quoted SQL identifier."""
        return f"`{self.project}.{self.dataset}.{self.table}`"


def check_project(project: str) -> str:
    """Refuse a project id that breaks BigQuery's rules; return it unchanged."""
    if not is_project_id(project):
        raise SourceError(f"BigQuery project id {project!r} is not valid: {PROJECT_ID_RULE}")
    return project


def check_column(name: str, *, role: str = "column") -> str:
    """Refuse a column name that breaks BigQuery's rules; return it unchanged."""
    if not isinstance(name, str) or not _COLUMN.match(name):
        raise SourceError(
            f"BigQuery {role} name {name!r} is not valid: letters, digits and underscores, "
            "starting with a letter or underscore, at most 300 characters"
        )
    return name


def quote_column(name: str) -> str:
    """Return a checked column name quoted for SQL."""
    return f"`{check_column(name)}`"


def parse_table(source: str) -> TableRef:
    """Split ``bigquery://PROJECT.DATASET.TABLE`` into checked parts."""
    if not source.startswith(SCHEME):
        raise SourceError(f"source {source!r} is not a bigquery://PROJECT.DATASET.TABLE URI")
    body = source.removeprefix(SCHEME)
    parts = body.rsplit(".", 2)
    if len(parts) != 3 or not all(parts):
        raise SourceError(
            f"source {source!r} must name a table as bigquery://PROJECT.DATASET.TABLE"
        )
    project, dataset, table = parts
    check_project(project)
    if not _DATASET.match(dataset):
        raise SourceError(
            f"BigQuery dataset name {dataset!r} is not valid: letters, digits and underscores"
        )
    if not _TABLE.match(table):
        raise SourceError(
            f"BigQuery table name {table!r} is not valid: letters, digits, underscores and "
            "hyphens (no spaces, quotes or other characters)"
        )
    return TableRef(project, dataset, table)


def _scalar_type(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo is not None else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    raise SourceError(
        f"bigquery.where_params.{name}: {value!r} is a {type(value).__name__}; use a string, "
        "number, boolean, date, date-time or a list of one of these (for NULL write IS NULL)"
    )


def query_parameters(values: dict[str, Any]) -> list[Any]:
    """Turn ``bigquery.where_params`` into typed BigQuery query parameters."""
    # heavy: Google client loaded only when a bigquery:// source is read
    from google.cloud import bigquery

    parameters: list[Any] = []
    for name, value in values.items():
        if not isinstance(name, str) or not _PARAM.match(name):
            raise SourceError(
                f"bigquery.where_params: parameter name {name!r} is not valid (letters, digits "
                "and underscores, starting with a letter or underscore)"
            )
        if name in _RESERVED_PARAMS:
            raise SourceError(f"bigquery.where_params: {name!r} is reserved; choose another name")
        if isinstance(value, list | tuple):
            kinds = {_scalar_type(item, name) for item in value}
            if len(kinds) > 1:
                raise SourceError(
                    f"bigquery.where_params.{name}: the list mixes {', '.join(sorted(kinds))}"
                )
            if not kinds:
                raise SourceError(f"bigquery.where_params.{name}: an empty list has no type")
            parameters.append(bigquery.ArrayQueryParameter(name, kinds.pop(), list(value)))
        else:
            parameters.append(bigquery.ScalarQueryParameter(name, _scalar_type(value, name), value))
    return parameters


def check_where(where: str, names: set[str]) -> str:
    """Refuse a filter that could end the statement or hide text, or uses unknown parameters."""
    for token in _WHERE_FORBIDDEN:
        if token in where:
            raise SourceError(
                f"bigquery.where may not contain {token!r} (one filter expression, no "
                "statements or comments); pass values through bigquery.where_params"
            )
    used = set(_PARAM_USE.findall(where))
    missing = sorted(used - names)
    if missing:
        raise SourceError(
            f"bigquery.where uses @{missing[0]}, which bigquery.where_params does not define"
        )
    unused = sorted(names - used)
    if unused:
        raise SourceError(f"bigquery.where_params.{unused[0]} is not used in bigquery.where")
    return where


def _sample_condition(
    params: Params, table: TableRef, conditions: list[str]
) -> tuple[str, Any] | None:
    """Return the condition that keeps ``dataset.sample``'s groups and its query parameter;
    None when every group is kept (``fraction: 1``)."""
    # heavy: Google client loaded only when a bigquery:// source is read
    from google.cloud import bigquery

    spec = params.dataset.sample
    group = quote_column(params.dataset.group)
    hashed = sampling.sql_group_hash(group)
    if spec.groups is not None:
        # the N groups with the smallest hashes (those the filter lets through), as
        # leaklib.sampling.chosen_groups keeps them; the subquery reads the group column only
        inner = " AND ".join([*conditions, f"{group} IS NOT NULL"])
        distinct = f"SELECT DISTINCT {group} FROM {table.sql} WHERE {inner}"
        return (
            f"{group} IN (SELECT {group} FROM ({distinct}) "
            f"ORDER BY {hashed} LIMIT @leak_sample_groups)",
            bigquery.ScalarQueryParameter("leak_sample_groups", "INT64", spec.groups),
        )
    bound = sampling.fraction_bound(spec.fraction)
    if bound is None:
        return None
    return (
        f"SUBSTR({hashed}, 1, {sampling.HEX_DIGITS}) < @leak_sample_below",
        bigquery.ScalarQueryParameter("leak_sample_below", "STRING", bound),
    )


def build_query(params: Params, table: TableRef, *, sample: bool = False) -> tuple[str, list[Any]]:
    """Return the SELECT for a run and its query parameters.

    Args:
        params: The run's parameters.
        table: The table to read.
        sample: Keep only the groups ``dataset.sample`` chooses (the extract step).
    """
    # heavy: Google client loaded only when a bigquery:// source is read
    from google.cloud import bigquery

    spec = params.bigquery
    columns = params.dataset.columns()
    for name in columns:
        check_column(name)
    where = spec.where.strip() if spec.where else ""
    if spec.where_params and not where:
        raise SourceError("bigquery.where_params is set but bigquery.where is empty")
    parameters = query_parameters(spec.where_params)
    conditions = [f"({check_where(where, set(spec.where_params))})"] if where else []
    if params.dataset.max_groups is not None and params.dataset.group:
        # the first N groups in sorted order, as leaklib.schema.limit_groups keeps them; the
        # subquery reads only the group column (and those of the filter)
        group = quote_column(params.dataset.group)
        inner = " AND ".join([*conditions, f"{group} IS NOT NULL"])
        conditions.append(
            f"{group} IN (SELECT DISTINCT {group} FROM {table.sql} WHERE {inner} "
            f"ORDER BY {group} LIMIT @leak_max_groups)"
        )
        parameters.append(
            bigquery.ScalarQueryParameter("leak_max_groups", "INT64", params.dataset.max_groups)
        )
    period = params.dataset.period
    if period is not None and params.dataset.timestamp:
        # the same stretch leaklib.schema.within_period keeps: start included, end excluded
        stamp = quote_column(params.dataset.timestamp)
        for name, op, value in (
            ("leak_period_start", ">=", period.start),
            ("leak_period_end", "<", period.end),
        ):
            if value is not None:
                conditions.append(f"CAST({stamp} AS DATETIME) {op} @{name}")
                parameters.append(bigquery.ScalarQueryParameter(name, "DATETIME", value))
    if sample and params.dataset.sample is not None and params.dataset.group:
        sampled = _sample_condition(params, table, conditions)
        if sampled is not None:
            conditions.append(sampled[0])
            parameters.append(sampled[1])
    sql = f"SELECT {', '.join(quote_column(c) for c in columns)} FROM {table.sql}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    if spec.limit is not None:
        sql += " LIMIT @leak_limit"
        parameters.append(bigquery.ScalarQueryParameter("leak_limit", "INT64", spec.limit))
    return sql, parameters


def _storage_client_factory(host: str):
    """Return a BigQueryReadClient factory that talks plain gRPC to an emulator at ``host``."""

    def make():
        # heavy: gRPC and the Storage Read client loaded only when an emulator serves it
        import grpc

        # heavy: a Google client library, loaded only when this backend is used
        from google.cloud.bigquery_storage_v1 import BigQueryReadClient

        # heavy: a Google client library, loaded only when this backend is used
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
            BigQueryReadGrpcTransport,
        )

        channel = grpc.insecure_channel(host)
        return BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))

    return make


def make_client(project: str) -> bigquery.Client:
    """Build a BigQuery client billed to ``project`` (the emulator's when one is configured)."""
    # heavy: Google client loaded only when a bigquery:// source is read
    from google.auth.credentials import AnonymousCredentials

    # heavy: a Google client library, loaded only when this backend is used
    from google.cloud import bigquery

    credentials = None
    client_class = bigquery.Client
    if os.environ.get(ENV_EMULATOR):
        credentials = AnonymousCredentials()
        storage_host = os.environ.get(ENV_STORAGE_EMULATOR)
        if storage_host:
            make_read_client = _storage_client_factory(storage_host)

            class EmulatorClient(bigquery.Client):
                """Points the Storage Read API at the emulator's gRPC port."""

                def _ensure_bqstorage_client(self, bqstorage_client=None, *args, **kwargs):
                    return bqstorage_client or make_read_client()

            client_class = EmulatorClient
    return build_client(
        lambda: client_class(project=project, credentials=credentials),
        subject=f"BigQuery source billed to project {project!r}",
        error=SourceError,
    )


def _explain(exc: Exception, table: TableRef, billing: str) -> SourceError:
    # heavy: Google client loaded only when a bigquery:// source is read
    from google.api_core import exceptions as gex

    if isinstance(exc, gex.NotFound):
        return SourceError(
            f"BigQuery table {table} does not exist (or these credentials cannot see it)"
        )
    if isinstance(exc, gex.Forbidden | gex.Unauthorized):
        return SourceError(
            f"no permission to read BigQuery table {table} billed to project {billing!r}: the "
            "account needs roles/bigquery.dataViewer on the table and roles/bigquery.jobUser "
            f"on the billing project ({exc})"
        )
    return SourceError(f"reading BigQuery table {table} failed: {exc}")


def _require_columns(
    client: bigquery.Client, table: TableRef, billing: str, params: Params
) -> list[str]:
    """Fail naming every column the run needs that the table lacks (before any query runs).

    Returns every column of the table. A sample's group column must hold whole numbers or text.
    """
    # heavy: Google client loaded only when a bigquery:// source is read
    from google.api_core import exceptions as gex

    try:
        schema = client.get_table(str(table)).schema
    except gex.GoogleAPIError as exc:
        raise _explain(exc, table, billing) from exc
    except Exception as exc:  # transport errors: endpoint unreachable
        raise SourceError(f"BigQuery is unreachable while reading {table}: {exc}") from exc
    present = {field.name for field in schema}
    missing = [c for c in params.dataset.columns() if c not in present]
    if missing:
        raise SourceError(
            f"BigQuery table {table} has no column(s) {', '.join(missing)} "
            f"(it has: {', '.join(sorted(present))})"
        )
    if params.dataset.sample is not None:
        kind = next(f.field_type for f in schema if f.name == params.dataset.group)
        # whole numbers and text only: their text form is Python's (leaklib.sampling)
        sampling.check_group_type(
            kind,
            group=params.dataset.group,
            integer=kind in ("INTEGER", "INT64"),
            text=kind == "STRING",
        )
    return [field.name for field in schema]


def _storage_api_usable(wanted: bool) -> bool:
    """Return whether to download through the Storage Read API (an emulator may lack it)."""
    if wanted and os.environ.get(ENV_EMULATOR) and not os.environ.get(ENV_STORAGE_EMULATOR):
        log.info("BigQuery emulator without %s: Storage Read API not used", ENV_STORAGE_EMULATOR)
        return False
    return wanted


def _run_query(
    client: bigquery.Client, sql: str, parameters: list[Any], *, use_storage: bool
) -> pd.DataFrame:
    """Run the query and download its result (pandas-gbq's warnings about itself silenced)."""
    # heavy: pandas-gbq loaded only when a bigquery:// source is read
    import pandas_gbq

    configuration = {
        "query": {
            "parameterMode": "NAMED",
            "queryParameters": [p.to_api_repr() for p in parameters],
        }
    }
    with warnings.catch_warnings():
        # pandas-gbq warns about its own internals (user-agent format, to_dataframe)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        return pandas_gbq.read_gbq(
            sql,
            bigquery_client=client,
            configuration=configuration,
            use_bqstorage_api=use_storage,
            progress_bar_type=None,
        )


def _download(
    client: bigquery.Client,
    sql: str,
    parameters: list[Any],
    *,
    use_storage: bool,
    table: TableRef,
    billing: str,
) -> pd.DataFrame:
    """Run the query; when the Storage Read API is refused, read through the REST API."""
    # heavy: Google client and pandas-gbq loaded only when a bigquery:// source is read
    from google.api_core import exceptions as gex

    # heavy: a Google client library, loaded only when this backend is used
    from pandas_gbq.exceptions import GenericGBQException

    try:
        try:
            return _run_query(client, sql, parameters, use_storage=use_storage)
        except (GenericGBQException, gex.Forbidden, gex.PermissionDenied) as exc:
            forbidden = isinstance(exc, gex.Forbidden) or isinstance(exc.__cause__, gex.Forbidden)
            if not (use_storage and forbidden):
                raise
            log.warning("Storage Read API refused (%s); reading through the REST API", exc)
            return _run_query(client, sql, parameters, use_storage=False)
    except GenericGBQException as exc:
        raise _explain(exc.__cause__ or exc, table, billing) from exc
    except gex.GoogleAPIError as exc:
        raise _explain(exc, table, billing) from exc


def estimate_bytes(
    client: bigquery.Client, sql: str, parameters: list[Any], *, table: TableRef, billing: str
) -> int:
    """Return the bytes the query would read, from a dry run (free: nothing is run or billed)."""
    # heavy: Google client loaded only when a bigquery:// source is read
    from google.api_core import exceptions as gex

    # heavy: a Google client library, loaded only when this backend is used
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(
        dry_run=True, use_query_cache=False, query_parameters=parameters
    )
    try:
        job = client.query(sql, job_config=config)
    except gex.GoogleAPIError as exc:
        raise _explain(exc, table, billing) from exc
    return int(job.total_bytes_processed or 0)


def _sample_counts(
    client: bigquery.Client, params: Params, table: TableRef, billing: str
) -> dict[str, int]:
    """Count the groups and rows a sample is taken from (those the filter lets through)."""
    # heavy: Google client loaded only when a bigquery:// source is read
    from google.api_core import exceptions as gex

    # heavy: a Google client library, loaded only when this backend is used
    from google.cloud import bigquery

    spec = params.bigquery
    group = quote_column(params.dataset.group)
    sql = (
        f"SELECT COUNT(DISTINCT {group}) AS of_groups, COUNT(*) AS of_rows, "
        f"COUNTIF({group} IS NULL) AS without_group FROM {table.sql}"
    )
    if spec.where:
        sql += f" WHERE ({check_where(spec.where.strip(), set(spec.where_params))})"
    config = bigquery.QueryJobConfig(query_parameters=query_parameters(spec.where_params))
    try:
        row = next(iter(client.query(sql, job_config=config).result()))
    except gex.GoogleAPIError as exc:
        raise _explain(exc, table, billing) from exc
    return {key: int(row[key] or 0) for key in ("of_groups", "of_rows", "without_group")}


def read_bigquery(
    params: Params, *, client: bigquery.Client | None = None, sample: bool = False
) -> pd.DataFrame:
    """Read the columns a run uses from the table ``params.dataset.source`` names.

    Args:
        params: The run's parameters (``source``, the columns, ``bigquery``, ``max_groups``).
        client: A BigQuery client; built from the environment, billed to
            ``bigquery.billing_project`` or the table's project, when omitted.
        sample: Keep only the groups ``dataset.sample`` chooses, in the query.
    """
    return _read(params, client=client, sample=sample)[0]


def _read(
    params: Params, *, client: bigquery.Client | None, sample: bool
) -> tuple[pd.DataFrame, list[str], dict[str, int] | None]:
    """Run the query; return the rows, every column of the table and, for a sample, the
    counts of groups and rows it was taken from."""
    table = parse_table(params.dataset.source)
    billing = params.bigquery.billing_project or table.project
    check_project(billing)
    sql, parameters = build_query(params, table, sample=sample)
    client = client or make_client(billing)
    columns = _require_columns(client, table, billing, params)
    # BigQuery's logical bytes (8 per number, the text of strings) are close to pandas' own
    estimate = estimate_bytes(client, sql, parameters, table=table, billing=billing)
    what = "the bytes a dry run of the query reads"
    counts = None
    spec = params.dataset.sample
    if sample and spec is not None:
        # the scan reads every row of the columns; only the sample's share is downloaded
        counts = _sample_counts(client, params, table, billing)
        share = spec.fraction or min(1.0, spec.groups / max(counts["of_groups"], 1))
        estimate, what = int(estimate * share), f"{what}, times the sample's share of groups"
    check_fits(estimate, source=params.dataset.source, what=what)
    use_storage = _storage_api_usable(params.bigquery.use_storage_api)
    log.info("reading %s billed to %s: %s", table, billing, sql)
    frame = _download(
        client, sql, parameters, use_storage=use_storage, table=table, billing=billing
    )
    log.info("read %d rows x %d columns from %s", len(frame), frame.shape[1], table)
    return frame, columns, counts


def extract_bigquery(params: Params, *, client: bigquery.Client | None = None) -> SourceTable:
    """Read the rows a run trains on: ``dataset.sample`` pushed into the query, and counted."""
    frame, columns, counts = _read(params, client=client, sample=True)
    spec, group = params.dataset.sample, params.dataset.group
    if spec is None or group is None or counts is None:
        return SourceTable(frame, tuple(columns))
    report = sampling.SampleReport(
        rule=sampling.describe_rule(spec),
        kept_groups=int(frame[group].nunique()),
        of_groups=counts["of_groups"],
        rows=len(frame),
        of_rows=counts["of_rows"],
        rows_without_group=counts["without_group"],
    )
    log.info("sampled %s from %s", report.summary(), params.dataset.source)
    return SourceTable(frame, tuple(columns), report)


class BigQueryReader:
    """Reads the columns a run uses from ``bigquery://PROJECT.DATASET.TABLE``.

    Args:
        uri: The ``source`` parameter.
        client: A BigQuery client; built from the environment when omitted.
    """

    def __init__(self, uri: str, *, client: bigquery.Client | None = None) -> None:
        self.uri = uri
        self._client = client

    @classmethod
    def from_uri(cls, uri: str, *, client: bigquery.Client | None = None) -> BigQueryReader:
        """Open the reader a ``bigquery://`` source parameter names."""
        return cls(uri, client=client)

    def check(self) -> None:
        """Refuse a table identifier that breaks BigQuery's naming rules (no request is sent)."""
        parse_table(self.uri)

    def identity(self) -> None:
        """Return None: a table has no content version this reader can pin.

        BigQuery's time travel (``FOR SYSTEM_TIME AS OF``) is a moment, not a content hash, and
        a table can change under the same name, so an extract from BigQuery is never taken from
        the step cache; pin the data with ``source: snapshot:<sha256>`` to cache it.
        """
        return None

    def read(self, params: Params) -> pd.DataFrame:
        """Read the table (see :func:`read_bigquery`)."""
        return read_bigquery(params, client=self._client)

    def extract(self, params: Params) -> SourceTable:
        """Read the sampled rows a run trains on (see :func:`extract_bigquery`)."""
        return extract_bigquery(params, client=self._client)
