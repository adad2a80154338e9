"""read_bigquery against a real local BigQuery emulator (bqemulator, REST + Storage gRPC)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import pandas as pd
import pytest

from leaklib import params as P
from leaklib.sampling import SampleError, chosen_groups
from leaklib.sources import SourceError, extract_source, read_source, source_problems
from leaklib.sources.bigquery import build_query, make_client, parse_table, read_bigquery

pytestmark = pytest.mark.emulators

ROWS = [
    # scenario_id, timestamp, p_a, zone, valve_open, leaks, note
    (3, "2024-01-01 00:00:00", 40.5, "north", True, 0, "x"),
    (3, "2024-01-01 00:15:00", 39.0, "north", False, 1, "x"),
    (1, "2024-01-01 00:00:00", 41.0, "south", True, 0, "y"),
    (1, "2024-01-01 00:15:00", 38.5, "south", True, 1, "y"),
    (2, "2024-01-01 00:00:00", 40.0, "north", False, 0, "z"),
    (7, "2024-01-01 00:00:00", 42.0, "south", None, 0, "z"),
]


@pytest.fixture(scope="module")
def dataset(bigquery_emulator) -> str:
    """A dataset with table ``readings`` seeded by DDL and DML (the emulator's uploads fail)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    project = bigquery_emulator.extra["project"]
    client = bigquery.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": bigquery_emulator.host},
    )
    name = f"ds_{uuid.uuid4().hex[:8]}"
    client.create_dataset(f"{project}.{name}")
    client.query(
        f"CREATE TABLE `{project}.{name}.readings` (scenario_id INT64, timestamp TIMESTAMP, "
        "p_a FLOAT64, zone STRING, valve_open BOOL, leaks INT64, note STRING)"
    ).result()
    values = ", ".join(
        f"({s}, TIMESTAMP '{t}+00', {p}, '{z}', {'NULL' if v is None else str(v).upper()}, {y}, '{n}')"
        for s, t, p, z, v, y, n in ROWS
    )
    client.query(f"INSERT INTO `{project}.{name}.readings` VALUES {values}").result()
    return f"{project}.{name}"


def make_params(source: str, **bigquery) -> P.Params:
    values = P.defaults()
    values.update(
        dataset={
            "source": source,
            "target": "leaks",
            "features": {"p_a": "numeric", "zone": "categorical", "valve_open": "boolean"},
            "group": "scenario_id",
            "timestamp": "timestamp",
        },
        bigquery={**values["bigquery"], **bigquery},
    )
    return P.validate(values)


@pytest.fixture
def source(dataset, bigquery_client) -> str:
    return f"bigquery://{dataset}.readings"


def test_reads_only_the_declared_columns(source):
    frame = read_bigquery(make_params(source))

    assert list(frame.columns) == ["p_a", "zone", "valve_open", "leaks", "scenario_id", "timestamp"]
    frame = frame.sort_values(["scenario_id", "timestamp"]).reset_index(drop=True)
    assert frame["scenario_id"].tolist() == [1, 1, 2, 3, 3, 7]
    assert frame["leaks"].tolist() == [0, 1, 0, 0, 1, 0]
    assert frame["p_a"].tolist() == [41.0, 38.5, 40.0, 40.5, 39.0, 42.0]
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 00:00:00", tz="UTC")
    assert frame["valve_open"].isna().sum() == 1


def test_read_source_dispatches_bigquery_uris(source):
    assert len(read_source(make_params(source))) == len(ROWS)


def test_where_filter_takes_its_values_as_query_parameters(source):
    params = make_params(
        source,
        where="zone = @zone AND scenario_id IN UNNEST(@ids) AND timestamp >= @since",
        where_params={
            "zone": "north",
            "ids": [2, 3],
            "since": dt.datetime(2024, 1, 1, 0, 10, tzinfo=dt.UTC),
        },
    )

    frame = read_bigquery(params)

    assert frame[["scenario_id", "leaks"]].values.tolist() == [[3, 1]]


def test_the_filter_from_docs_gcp_md_works(source):
    params = make_params(
        source,
        where="timestamp >= TIMESTAMP(@since) AND zone IN UNNEST(@zones)",
        where_params={"since": "2024-01-01 00:10:00+00", "zones": ["north", "south"]},
    )

    assert sorted(read_bigquery(params)["scenario_id"].tolist()) == [1, 3]


def test_a_value_that_looks_like_sql_is_only_a_value(source):
    params = make_params(
        source, where="zone = @zone", where_params={"zone": "x'; DROP TABLE t; --"}
    )

    assert read_bigquery(params).empty
    assert len(read_bigquery(make_params(source))) == len(ROWS)  # nothing was dropped


def test_limit_caps_the_rows(source):
    assert len(read_bigquery(make_params(source, limit=2))) == 2


def test_max_groups_keeps_the_first_groups_in_sorted_order(source):
    values = make_params(source).to_plain()
    values["dataset"]["max_groups"] = 2

    frame = read_bigquery(P.validate(values))

    assert sorted(frame["scenario_id"].unique().tolist()) == [1, 2]
    assert len(frame) == 3


def test_period_keeps_the_stretch_of_time_in_the_query(source):
    values = make_params(source).to_plain()
    values["dataset"]["period"] = {"start": "2024-01-01 00:15:00", "end": None}

    frame = read_bigquery(P.validate(values))

    assert sorted(frame["scenario_id"].tolist()) == [1, 3]  # the two rows at 00:15


def test_billing_project_is_where_the_query_job_runs(source, dataset):
    params = make_params(source, billing_project="leak-billing")

    assert make_client("leak-billing").project == "leak-billing"
    assert len(read_bigquery(params)) == len(ROWS)


def test_storage_api_is_not_used_against_an_emulator_without_its_grpc_endpoint(source, caplog):
    with caplog.at_level(logging.INFO, logger="leaklib.sources.bigquery"):
        frame = read_bigquery(make_params(source, use_storage_api=True))

    assert len(frame) == len(ROWS)
    assert "Storage Read API not used" in caplog.text


@pytest.mark.xfail(
    strict=True,
    raises=SourceError,
    reason="bqemulator 1.4.0 cannot serve query results over the Storage Read API (it looks "
    "for the anonymous result table in a schema it never created); this test turns green "
    "when it can",
)
def test_storage_api_reads_large_results_from_the_emulator_grpc_port(
    dataset, bigquery_emulator, bigquery_client, monkeypatch
):
    bigquery_client.query(
        f"CREATE TABLE `{dataset}.wide` AS SELECT x AS scenario_id, x AS p_a, 'n' AS zone, "
        "TRUE AS valve_open, MOD(x, 2) AS leaks, CURRENT_TIMESTAMP() AS timestamp "
        "FROM UNNEST(GENERATE_ARRAY(1, 30000)) AS x"
    ).result()
    monkeypatch.setenv("BIGQUERY_STORAGE_EMULATOR_HOST", bigquery_emulator.extra["grpc"])

    frame = read_bigquery(make_params(f"bigquery://{dataset}.wide", use_storage_api=True))

    assert len(frame) == 30000


def test_missing_table_is_a_clear_error(dataset, bigquery_client):
    with pytest.raises(SourceError, match=rf"BigQuery table {dataset}\.nope does not exist"):
        read_bigquery(make_params(f"bigquery://{dataset}.nope"))


def test_missing_dataset_is_a_clear_error(bigquery_emulator, bigquery_client):
    project = bigquery_emulator.extra["project"]
    with pytest.raises(
        SourceError, match=rf"BigQuery table {project}\.no_such_ds\.t does not exist"
    ):
        read_bigquery(make_params(f"bigquery://{project}.no_such_ds.t"))


def test_missing_column_is_named(source):
    values = make_params(source).to_plain()
    values["dataset"]["features"]["pressure_x"] = {"type": "numeric"}

    with pytest.raises(SourceError, match=r"has no column\(s\) pressure_x \(it has: "):
        read_bigquery(P.validate(values))


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("bigquery://leak-test.ds.t; DROP TABLE x", "table name 't; DROP TABLE x' is not valid"),
        ("bigquery://leak-test.ds.`t`", "table name '`t`' is not valid"),
        ("bigquery://leak-test.ds.my table", "table name 'my table' is not valid"),
        ("bigquery://leak-test.d s.t", "dataset name 'd s' is not valid"),
        ("bigquery://leak-test.`ds`.t", "dataset name '`ds`' is not valid"),
        ("bigquery://Leak_Test.ds.t", "project id 'Leak_Test' is not valid"),
        ("bigquery://proj`.ds.t", "project id 'proj`' is not valid"),
        ("bigquery://leak-test.t", "must name a table as bigquery://PROJECT.DATASET.TABLE"),
    ],
)
def test_bad_table_identifiers_are_refused_naming_them(uri, message):
    with pytest.raises(SourceError, match=message):
        parse_table(uri)
    with pytest.raises(SourceError, match=message):
        read_bigquery(make_params(uri))  # before any request is sent


@pytest.mark.parametrize("column", ["p_a`; DROP TABLE x; --", "p a", "p-a", "1p", "p_a` FROM x --"])
def test_bad_column_names_are_refused_naming_them(column):
    values = make_params("bigquery://leak-test.ds.t").to_plain()
    values["dataset"]["features"] = {column: {"type": "numeric"}}

    with pytest.raises(SourceError, match=f"column name {column!r} is not valid"):
        build_query(P.validate(values), parse_table("bigquery://leak-test.ds.t"))


def test_bad_billing_project_is_refused():
    params = make_params("bigquery://leak-test.ds.t", billing_project="x; DROP")

    with pytest.raises(SourceError, match="project id 'x; DROP' is not valid"):
        read_bigquery(params)


@pytest.mark.parametrize(
    ("where", "where_params", "message"),
    [
        ("zone = 'a'; DROP TABLE x", {}, "may not contain ';'"),
        ("zone = 'a' -- comment", {}, "may not contain '--'"),
        ("zone = 'a' /* c */", {}, r"may not contain '/\*'"),
        ("zone = @zone", {}, "uses @zone, which bigquery.where_params does not define"),
        ("zone = 'a'", {"zone": "a"}, "where_params.zone is not used"),
        ("zone = @zone", {"zone": None}, "where_params.zone: None is a NoneType"),
        ("zone IN UNNEST(@z)", {"z": [1, "a"]}, "the list mixes INT64, STRING"),
        ("zone = @leak_limit", {"leak_limit": 1}, "'leak_limit' is reserved"),
        ("zone = @leak_sample_below", {"leak_sample_below": "a"}, "is reserved"),
        ("zone = @`x`", {"`x`": 1}, "parameter name '`x`' is not valid"),
        (None, {"zone": "a"}, "where_params is set but bigquery.where is empty"),
    ],
)
def test_bad_filters_are_refused(where, where_params, message):
    params = make_params("bigquery://leak-test.ds.t", where=where, where_params=where_params)

    with pytest.raises(SourceError, match=message):
        build_query(params, parse_table(params.dataset.source))


def test_query_quotes_every_identifier_and_parameterises_values():
    values = make_params(
        "bigquery://leak-test.ds.t", where="zone = @zone", where_params={"zone": "n"}, limit=5
    ).to_plain()
    values["dataset"]["max_groups"] = 3

    sql, parameters = build_query(P.validate(values), parse_table(values["dataset"]["source"]))

    assert sql == (
        "SELECT `p_a`, `zone`, `valve_open`, `leaks`, `scenario_id`, `timestamp` "
        "FROM `leak-test.ds.t` WHERE (zone = @zone) AND `scenario_id` IN (SELECT DISTINCT "
        "`scenario_id` FROM `leak-test.ds.t` WHERE (zone = @zone) AND `scenario_id` IS NOT NULL "
        "ORDER BY `scenario_id` LIMIT @leak_max_groups) LIMIT @leak_limit"
    )
    assert [(p.name, p.value) for p in parameters] == [
        ("zone", "n"),
        ("leak_max_groups", 3),
        ("leak_limit", 5),
    ]


# --- dataset.sample pushed into the query: the same groups as a local file -------------------

GROUPS = range(-5, 35)  # negative ids too: their text form must match Python's


@pytest.fixture(scope="module")
def groups_table(dataset, bigquery_emulator) -> str:
    """Forty groups of three rows, with an integer and a text group column."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project=bigquery_emulator.extra["project"],
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": bigquery_emulator.host},
    )
    client.query(
        f"CREATE TABLE `{dataset}.groups` AS SELECT g AS scenario_id, "
        "CONCAT('sc-', CAST(g AS STRING)) AS name, CAST(g AS FLOAT64) AS score, "
        "TIMESTAMP_ADD(TIMESTAMP '2024-01-01 00:00:00+00', INTERVAL r * 15 MINUTE) AS timestamp, "
        "40.0 + r AS p_a, IF(MOD(g, 2) = 0, 'north', 'south') AS zone, "
        "MOD(r, 2) = 0 AS valve_open, IF(r = 2, 1, 0) AS leaks "
        f"FROM UNNEST(GENERATE_ARRAY({GROUPS[0]}, {GROUPS[-1]})) AS g, "
        "UNNEST(GENERATE_ARRAY(0, 2)) AS r"
    ).result()
    return f"bigquery://{dataset}.groups"


def sample_params(source: str, *, group: str, **sample) -> P.Params:
    values = make_params(source).to_plain()
    values["dataset"].update(group=group, sample=sample)
    return P.validate(values)


@pytest.mark.parametrize("group", ["scenario_id", "name"])
@pytest.mark.parametrize("sample", [{"groups": 7}, {"fraction": 0.3}])
def test_a_sample_keeps_the_same_groups_from_bigquery_and_from_a_local_file(
    groups_table, bigquery_client, tmp_path, group, sample
):
    params = sample_params(groups_table, group=group, **sample)
    whole = read_bigquery(params)  # read_source: the same table, every row, no sample
    assert len(whole) == 3 * len(GROUPS)
    whole.to_parquet(tmp_path / "groups.parquet")

    remote = extract_source(params)
    local = extract_source(sample_params(str(tmp_path / "groups.parquet"), group=group, **sample))

    kept = set(remote.frame[group])
    assert kept == set(local.frame[group])
    assert kept == chosen_groups(set(whole[group]), P.SampleSpec(**sample))
    assert 0 < len(kept) < len(GROUPS)
    assert remote.sample == local.sample
    assert remote.sample.of_groups == len(GROUPS) and remote.sample.rows == 3 * len(kept)


def test_the_sample_query_hashes_the_group_and_takes_its_rule_as_a_parameter():
    table = parse_table("bigquery://leak-test.ds.t")
    params = sample_params("bigquery://leak-test.ds.t", group="scenario_id", fraction=0.25)

    sql, parameters = build_query(params, table, sample=True)

    assert sql.endswith(
        "WHERE SUBSTR(TO_HEX(SHA256(CAST(`scenario_id` AS STRING))), 1, 16) < @leak_sample_below"
    )
    assert [(p.name, p.value) for p in parameters] == [("leak_sample_below", "4000000000000000")]
    assert "SHA256" not in build_query(params, table)[0]  # read_source reads every group


def test_a_float_group_column_is_refused_for_a_sample(groups_table, bigquery_client):
    with pytest.raises(SampleError, match="group column 'score' is of type FLOAT"):
        extract_source(sample_params(groups_table, group="score", groups=3))


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("bigquery://leak-test.readings", "must name a table"),
        ("bigquery://leak-test.readings.pre ssure", "table name 'pre ssure' is not valid"),
        ("bigquery://Leak Test.readings.pressure", "project id 'Leak Test' is not valid"),
    ],
)
def test_a_bad_table_identifier_is_a_parameter_problem_before_any_request(source, problem):
    problems = source_problems({"dataset": {"source": source}})
    assert len(problems) == 1 and problems[0].startswith("dataset.source: ")
    assert problem in problems[0]


def test_a_valid_table_identifier_has_no_problem():
    assert source_problems({"dataset": {"source": "bigquery://leak-test.readings.pressure"}}) == []
