"""Local Parquet and CSV sources, read through read_source and extract_source."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from leaklib.params import SampleSpec
from leaklib.sampling import SampleError, sample_frame
from leaklib.sources import SourceError, extract_source, read_source, source_problems
from tests.conftest import REPO, make_table


def with_source(params, source):
    return params.model_copy(
        update={"dataset": params.dataset.model_copy(update={"source": str(source)})}
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_reads_parquet_and_csv(tmp_path, params, suffix):
    frame = pd.DataFrame({"p_a": [1.5, 2.5], "leaks": [0, 1]})
    path = tmp_path / f"t{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)

    pd.testing.assert_frame_equal(read_source(with_source(params, path)), frame)


def test_file_uri_is_read_like_a_path(tmp_path, params):
    frame = pd.DataFrame({"p_a": [1.5], "leaks": [1]})
    frame.to_parquet(tmp_path / "t.parquet")

    assert len(read_source(with_source(params, (tmp_path / "t.parquet").as_uri()))) == 1


def test_missing_file_is_named(tmp_path, params):
    with pytest.raises(SourceError, match=r"nope\.parquet' does not exist"):
        read_source(with_source(params, tmp_path / "nope.parquet"))


def test_other_suffix_is_refused(tmp_path, params):
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(SourceError, match=r"must end in \.parquet or \.csv"):
        read_source(with_source(params, tmp_path / "t.json"))


def test_broken_file_is_a_source_error(tmp_path, params):
    (tmp_path / "t.parquet").write_bytes(b"not parquet")
    with pytest.raises(SourceError, match="cannot be read"):
        read_source(with_source(params, tmp_path / "t.parquet"))


# --- extract_source: what the extract step reads ---------------------------------------------


def with_sample(params, source, sample):
    dataset = params.dataset.model_copy(update={"source": str(source), "sample": sample})
    return params.model_copy(update={"dataset": dataset})


def test_extract_reads_only_the_declared_columns_and_names_the_others(tmp_path, params, table):
    table.to_parquet(tmp_path / "t.parquet")

    raw = extract_source(with_source(params, tmp_path / "t.parquet"))

    assert sorted(raw.frame.columns) == sorted(params.dataset.columns())
    assert raw.columns == tuple(table.columns) and raw.sample is None
    pd.testing.assert_frame_equal(raw.frame, table[raw.frame.columns.tolist()])


@pytest.mark.parametrize("spec", [SampleSpec(groups=5), SampleSpec(fraction=0.3)])
def test_a_streamed_parquet_sample_equals_the_sample_of_the_whole_table(tmp_path, params, spec):
    table = make_table(scenarios=60, rows_per=20).astype({"scenario_id": "int32"})
    table.to_parquet(tmp_path / "t.parquet", row_group_size=100)  # 12 row groups, groups split

    raw = extract_source(with_sample(params, tmp_path / "t.parquet", spec))

    whole, report = sample_frame(table, group="scenario_id", spec=spec)
    pd.testing.assert_frame_equal(raw.frame, whole[raw.frame.columns.tolist()])
    assert raw.sample == report and report.of_groups == 60
    assert 0 < report.kept_groups < 60


def test_the_same_sample_twice_keeps_the_same_groups(tmp_path, params, table):
    table.to_parquet(tmp_path / "t.parquet")
    sampled = with_sample(params, tmp_path / "t.parquet", SampleSpec(fraction=0.5))

    first, second = extract_source(sampled), extract_source(sampled)

    assert set(first.frame["scenario_id"]) == set(second.frame["scenario_id"])
    pd.testing.assert_frame_equal(first.frame, second.frame)


def test_text_groups_and_rows_without_a_group_are_counted(tmp_path, params, table):
    table["scenario_id"] = "sc-" + table["scenario_id"].astype(str)
    table.loc[:2, "scenario_id"] = None
    table.to_parquet(tmp_path / "t.parquet")

    raw = extract_source(with_sample(params, tmp_path / "t.parquet", SampleSpec(groups=4)))

    assert raw.sample.rows_without_group == 3 and raw.sample.kept_groups == 4
    assert raw.frame["scenario_id"].notna().all()


def test_a_csv_is_read_whole_and_then_sampled(tmp_path, params, table):
    table.to_csv(tmp_path / "t.csv", index=False)

    raw = extract_source(with_sample(params, tmp_path / "t.csv", SampleSpec(groups=3)))

    assert raw.sample.kept_groups == 3 and raw.sample.of_groups == 24
    assert "note" in raw.frame.columns  # read whole: the schema check drops it


def test_a_float_group_column_is_refused_before_the_rows_are_read(tmp_path, params, table):
    table.astype({"scenario_id": "float64"}).to_parquet(tmp_path / "t.parquet")

    with pytest.raises(SampleError, match="group column 'scenario_id' is of type double"):
        extract_source(with_sample(params, tmp_path / "t.parquet", SampleSpec(groups=3)))


def test_a_sample_that_keeps_no_group_reaches_validation_empty(tmp_path, params, table):
    table.to_parquet(tmp_path / "t.parquet")

    raw = extract_source(with_sample(params, tmp_path / "t.parquet", SampleSpec(fraction=1e-9)))

    assert raw.frame.empty and list(raw.frame.columns) == params.dataset.columns()
    assert raw.sample.kept_groups == 0 and raw.sample.of_groups == 24


_PEAK = """
import sys
import pyarrow as pa
from leaklib import params as P
from leaklib.sources import extract_source
values = P.defaults()
values["dataset"] = {
    "source": sys.argv[1], "target": "y", "group": "g", "sample": {"groups": 16},
    "features": {f"x{i}": "numeric" for i in range(16)},
}
raw = extract_source(P.validate(values))
print(pa.default_memory_pool().max_memory(), len(raw.frame))
"""


def _write_groups(path, groups: int, per: int = 256) -> int:
    """Write ``groups`` groups of random readings in row groups of 8,192 rows; their Arrow size."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=groups * per) for i in range(16)})
    frame.insert(0, "g", np.repeat(np.arange(groups), per))
    frame["y"] = rng.integers(0, 2, size=len(frame))
    frame["undeclared"] = rng.normal(size=len(frame))
    frame.to_parquet(path, row_group_size=8192)  # as a writer in batches makes them
    return pq.read_table(path).nbytes


def _streamed_peak(path) -> tuple[int, int]:
    """Peak Arrow memory (bytes) and rows of a sampled extract, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    peak, rows = done.stdout.split()
    return int(peak), int(rows)


@pytest.mark.slow
def test_streaming_memory_follows_the_sample_not_the_file(tmp_path):
    small_file = _write_groups(tmp_path / "small.parquet", groups=64)
    large_file = _write_groups(tmp_path / "large.parquet", groups=512)

    small_peak, small_rows = _streamed_peak(tmp_path / "small.parquet")
    large_peak, large_rows = _streamed_peak(tmp_path / "large.parquet")

    # the same 16 groups' rows out of a file 8 times larger: Arrow's peak (about two row
    # groups of the declared columns, plus the kept rows) stays put; reading whole would not
    assert small_rows == large_rows == 16 * 256
    assert large_file > 7 * small_file
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak, small_file, large_file)
    assert large_peak < large_file / 2


def test_a_readable_local_source_has_no_problem(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"p_a": [1.5]}).to_parquet(path)
    assert source_problems({"dataset": {"source": str(path)}}) == []
    assert source_problems({"dataset": {"source": path.as_uri()}}) == []


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("missing.parquet", "does not exist"),
        ("folder", "is not a file"),
        ("table.txt", "must end in .parquet or .csv"),
    ],
)
def test_a_local_source_that_cannot_be_read_is_a_parameter_problem(tmp_path, name, problem):
    (tmp_path / "folder").mkdir()
    (tmp_path / "table.txt").write_text("a,b\n")
    source = str(tmp_path / name)
    assert source_problems({"dataset": {"source": source}}) == [
        f"dataset.source: source {source!r} {problem}"
        + (f" (looked at {tmp_path / name})" if problem != "must end in .parquet or .csv" else "")
    ]


def test_a_source_of_the_wrong_type_is_left_to_the_contract():
    assert source_problems({"dataset": {"source": 3}}) == []
    assert source_problems({"dataset": "not a mapping"}) == []
