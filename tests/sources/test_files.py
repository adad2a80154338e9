"""Local Parquet and CSV sources, read through read_source."""

import pandas as pd
import pytest

from leaklib.sources import SourceError, read_source


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
