"""Bad tables beyond the eight kinds of tests/test_pipeline.py: each refused naming its column.

Most are shown through ``schema.validate_table`` and ``sources.read_source``, which the extract
step calls before anything is written; one ``leak run`` per category (a table that does not
fit its schema, a source that cannot be read) proves the failed record, the rendered report
and that no snapshot appears.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from leaklib import modelling
from leaklib import params as P
from leaklib.metadata import LocalMetadataStore
from leaklib.schema import SchemaError, validate_table
from leaklib.snapshots import canonical_bytes
from leaklib.sources import SourceError, read_source
from leaklib.sources import bigquery as bq
from leaklib.sources.base import ENV_MAX_TABLE_BYTES, check_fits
from tests.conftest import leak, make_project, make_table, table_dataset
from tests.faults.loss import assert_no_loss

pytestmark = pytest.mark.faults


def with_dataset(params: P.Params, **changes) -> P.Params:
    values = params.to_plain()
    values["dataset"].update(changes)
    return P.validate(values)


def refused(table: pd.DataFrame, params: P.Params) -> str:
    with pytest.raises(SchemaError) as caught:
        validate_table(table, params=params)
    return str(caught.value)


# --- the table itself (schema.validate_table) -----------------------------------------------


def test_duplicate_column_names_are_refused_naming_the_column(table, params):
    doubled = pd.concat([table, table[["p_a"]]], axis=1)
    assert "column 'p_a' appears 2 times in the table" in refused(doubled, params)


def test_duplicate_names_in_a_parquet_file_are_refused_before_loading(tmp_path, params):
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([[1.0], [2.0]], names=["p_a", "p_a"]), path)
    with pytest.raises(SourceError, match=r"column 'p_a' \(2 times\) appears more than once"):
        read_source(with_dataset(params, source=str(path)))


def test_duplicate_names_in_a_csv_header_are_refused(tmp_path, params):
    # pandas would silently rename the second one to p_a.1
    path = tmp_path / "dup.csv"
    path.write_text("p_a,p_b,p_a\n1,2,3\n")
    with pytest.raises(SourceError, match=r"column 'p_a' \(2 times\)"):
        read_source(with_dataset(params, source=str(path)))


def test_numbers_mixed_with_text_in_a_numeric_column_are_refused(table, params):
    mixed = table.assign(p_a=table["p_a"].astype(object))
    mixed.loc[[3, 9], "p_a"] = ["n/a", "12,5"]
    message = refused(mixed, params)
    assert "column 'p_a' (numeric): non-numeric values 'n/a', '12,5' in 2 row(s)" in message
    assert "expected numbers only" in message


@pytest.mark.parametrize(
    "spelling",
    [
        ("yes", "no"),
        ("Yes", "No"),
        ("True", "False"),
        ("true", "false"),
        (" YES ", "no"),
        ("1", "0"),
    ],
    ids=lambda s: "/".join(s),
)
def test_a_text_target_in_an_obvious_spelling_is_accepted(table, params, spelling):
    positive, negative = spelling
    text = table.assign(leaks=table["leaks"].map({1: positive, 0: negative}))
    clean, _ = validate_table(text, params=params)
    assert clean["leaks"].dtype == "int8"
    assert clean["leaks"].tolist() == table["leaks"].tolist()


def test_a_text_target_with_other_words_is_refused_listing_them(table, params):
    text = table.assign(leaks=table["leaks"].map({1: "yes", 0: "maybe"}))
    assert (
        "column 'leaks' (target): must be binary 0/1 or true/false, found the values 'maybe', 'yes'"
        in refused(text, params)
    )


def test_unparsable_times_are_refused_naming_the_column(table, params):
    broken = table.assign(timestamp=table["timestamp"].astype(str))
    broken.loc[5, "timestamp"] = "31/02/2024 25:00"
    assert (
        "column 'timestamp' (timestamp): values that are not times: '31/02/2024 25:00'"
        in refused(broken, params)
    )


def test_times_with_and_without_a_utc_offset_are_refused(table, params):
    stamps = table["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S+01:00")
    stamps.iloc[7] = "2024-01-01 01:45:00"
    message = refused(table.assign(timestamp=stamps), params)
    assert "column 'timestamp' (timestamp): mixes times with a UTC offset" in message
    assert "'2024-01-01 01:45:00'" in message


def test_times_across_a_daylight_saving_change_are_converted_to_utc_with_a_note(table, params):
    local = table["timestamp"].dt.tz_localize("Europe/Berlin").dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    local.iloc[: len(local) // 2] = local.iloc[: len(local) // 2].str.replace("+0100", "+0200")
    clean, report = validate_table(table.assign(timestamp=local), params=params)
    assert str(clean["timestamp"].dt.tz) == "UTC"
    assert report.notes == [
        "column 'timestamp': times with several UTC offsets were converted to UTC"
    ]
    assert report.to_dict()["notes"] == report.notes


def test_missing_group_values_are_refused_naming_the_group_column(table, params):
    holed = table.assign(scenario_id=table["scenario_id"].astype(float))
    holed.loc[[0, 50, 51], "scenario_id"] = np.nan
    assert "column 'scenario_id' (group): 3 missing value(s)" in refused(holed, params)


def test_a_categorical_over_its_stated_cap_is_refused(table, params):
    capped = params.to_plain()
    capped["dataset"]["features"]["zone"] = {"type": "categorical", "max_categories": 5}
    ids = table.assign(zone=[f"meter-{i}" for i in range(len(table))])
    message = refused(ids, P.validate(capped))
    assert (
        f"column 'zone' (categorical): {len(table):,} distinct values, more than its max_categories 5"
        in message
    )
    validate_table(table, params=P.validate(capped))  # two zones: within the cap


def test_a_cap_on_a_non_categorical_column_is_a_parameter_error(params):
    capped = params.to_plain()
    capped["dataset"]["features"]["p_a"] = {"type": "numeric", "max_categories": 5}
    with pytest.raises(
        P.ParameterError, match=r"dataset\.features\.p_a.*max_categories applies to categorical"
    ):
        P.validate(capped)


def test_columns_with_spaces_and_non_ascii_names_are_accepted_and_trained_on(table, params):
    """Policy: a name is a name; only the BigQuery source refuses them (its naming rules)."""
    renamed = table.rename(columns={"p_a": "Druck Zone Ä (m)", "zone": "zone näme"})
    spec = params.to_plain()
    features = spec["dataset"]["features"]
    features["Druck Zone Ä (m)"] = features.pop("p_a")
    features["zone näme"] = features.pop("zone")
    named = P.validate(spec)
    clean, _ = validate_table(renamed, params=named)
    assert pq.read_table(pa.BufferReader(canonical_bytes(clean))).column_names == list(
        clean.columns
    )
    fitted = modelling.build_pipeline(named.dataset.features, model=named.model, seed=0)
    fitted.fit(modelling.feature_frame(clean, named.dataset.features), clean["leaks"])


def test_a_declared_name_that_differs_in_spacing_or_case_says_which_column_is_close(table, params):
    near = table.rename(columns={"p_a": "P_A "})
    assert (
        "column 'p_a' (feature) is declared but not in the table; the table has 'P_A ', which "
        "differs only in case, spaces or Unicode form"
    ) in refused(near, params)


# --- reading the source (sources.read_source) -----------------------------------------------


def test_a_parquet_table_too_large_for_memory_is_refused_from_its_metadata(
    tmp_path, params, monkeypatch
):
    path = tmp_path / "big.parquet"
    make_table().to_parquet(path)
    monkeypatch.setenv(ENV_MAX_TABLE_BYTES, "20000")
    read = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: pytest.fail("the table was loaded"))
    with pytest.raises(SourceError) as caught:
        read_source(with_dataset(params, source=str(path)))
    message = str(caught.value)
    assert "would take about" in message and "1,152 rows x 8 columns" in message
    assert "more than the limit of 19.5 KB (LEAK_MAX_TABLE_BYTES=20000)" in message
    monkeypatch.setattr(pd, "read_parquet", read)
    monkeypatch.delenv(ENV_MAX_TABLE_BYTES)
    assert len(read_source(with_dataset(params, source=str(path)))) == 1152  # fits this machine


def test_without_an_override_the_limit_is_half_the_available_memory(monkeypatch):
    monkeypatch.delenv(ENV_MAX_TABLE_BYTES, raising=False)
    with pytest.raises(
        SourceError, match=r"more than the limit of .* \(50% of the .* of memory available now\)"
    ):
        check_fits(10**15, source="huge.parquet", what="a petabyte")


def test_a_csv_too_large_for_memory_is_refused_from_its_size(tmp_path, params, monkeypatch):
    path = tmp_path / "big.csv"
    make_table().to_csv(path, index=False)
    monkeypatch.setenv(ENV_MAX_TABLE_BYTES, "1000")
    with pytest.raises(SourceError, match=r"big\.csv' would take about .* \(its size on disk\)"):
        read_source(with_dataset(params, source=str(path)))


def test_a_bigquery_table_too_large_is_refused_from_a_dry_run_before_downloading(
    params, monkeypatch
):
    """bqemulator accepts dry runs but reports 0 bytes, so a stub client stands in for it."""
    calls = []

    class Client:
        def get_table(self, name):
            return SimpleNamespace(
                schema=[SimpleNamespace(name=c) for c in params.dataset.columns()]
            )

        def query(self, sql, job_config):
            calls.append(job_config.dry_run)
            return SimpleNamespace(total_bytes_processed=3 * 2**30)

    monkeypatch.setenv(ENV_MAX_TABLE_BYTES, str(2**30))
    monkeypatch.setattr(bq, "_download", lambda *a, **k: pytest.fail("the table was downloaded"))
    source = with_dataset(params, source="bigquery://leak-test.readings.pressure")
    with pytest.raises(SourceError) as caught:
        bq.read_bigquery(source, client=Client())
    assert calls == [True]
    assert "bigquery://leak-test.readings.pressure' would take about 3.0 GB in memory" in str(
        caught.value
    )
    assert "the bytes a dry run of the query reads" in str(caught.value)
    assert "limit of 1.0 GB" in str(caught.value)


@pytest.mark.parametrize(
    ("separator", "shown"),
    [(";", "';'"), ("\t", "tab"), ("|", "'|'")],
    ids=["semicolon", "tab", "pipe"],
)
def test_a_csv_with_another_delimiter_is_explained(tmp_path, params, separator, shown):
    path = tmp_path / "t.csv"
    make_table(scenarios=2).to_csv(path, index=False, sep=separator)
    with pytest.raises(SourceError) as caught:
        read_source(with_dataset(params, source=str(path)))
    header = separator.join(make_table(scenarios=1).columns)
    assert f"column {header!r} looks like a {shown}-separated header" in str(caught.value)
    assert "expected comma-separated values" in str(caught.value)


def test_a_csv_in_another_encoding_is_explained(tmp_path, params):
    path = tmp_path / "t.csv"
    make_table(scenarios=2).assign(zone="Süd").to_csv(path, index=False, encoding="latin-1")
    with pytest.raises(
        SourceError, match=r"t\.csv' is not UTF-8 text: byte b'\\xfc' at offset \d+"
    ):
        read_source(with_dataset(params, source=str(path)))


def test_a_utf8_csv_with_a_byte_order_mark_is_read(tmp_path, params):
    path = tmp_path / "t.csv"
    make_table(scenarios=2).assign(zone="Süd").to_csv(path, index=False, encoding="utf-8-sig")
    frame = read_source(with_dataset(params, source=str(path)))
    assert frame.columns[0] == "scenario_id" and set(frame["zone"]) == {"Süd"}


# --- one `leak run` per category: the failed record, the report, nothing written -------------


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("badtables") / "project")
    dataset = table_dataset(source="replaced.parquet", timestamp="timestamp")
    (project / "mine.yaml").write_text(yaml.safe_dump({"dataset": dataset, "cv_folds": 3}))
    return project


def failed_run(project, source: str, *, env=None):
    finished = leak(project, "run", "-f", "mine.yaml", "-p", "dataset.source", source, env=env)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    record = next(
        r
        for r in map(finished.record, finished.run_ids())
        if r["params"]["dataset"]["source"] == source
    )
    assert record["status"] == "failed" and record["steps"]["extract"]["status"] == "failed"
    assert record["snapshot"] is None
    assert not list((project / "stores/snapshots").glob("*.parquet"))
    html = (project / record["reports"]["extract"]).read_text()
    assert_no_loss(LocalMetadataStore(project / "stores/metadata"), project=project)
    return finished, record, html


@pytest.mark.slow
def test_leak_run_on_a_table_that_mixes_time_zones_fails_naming_the_column(project):
    stamps = make_table()["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S+00:00")
    stamps.iloc[3] = "2024-01-01 00:45:00"
    make_table().assign(timestamp=stamps).to_parquet(project / "zones.parquet")
    finished, record, html = failed_run(project, "zones.parquet")
    assert "column 'timestamp' (timestamp): mixes times with a UTC offset" in record["error"]
    assert "'timestamp'" in finished.stdout
    assert "SchemaError" in html


@pytest.mark.slow
def test_leak_run_on_a_table_too_large_for_memory_fails_before_loading_it(project):
    make_table().to_parquet(project / "large.parquet")
    finished, record, html = failed_run(
        project, "large.parquet", env={ENV_MAX_TABLE_BYTES: "20000"}
    )
    assert "SourceError: source 'large.parquet' would take about" in record["error"]
    assert "LEAK_MAX_TABLE_BYTES=20000" in record["error"]
    assert "SourceError" in html
