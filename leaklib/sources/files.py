"""Read the input table from a local Parquet or CSV file (a path or ``file://`` URI).

Before a byte of data is loaded the file's size in memory is estimated (the Parquet metadata,
or the CSV's size on disk) and a table larger than this machine can hold is refused. A CSV
must be UTF-8 (a byte-order mark is fine) and comma-separated; a file that is not says so.

The extract step (:meth:`FileReader.extract`) reads a Parquet file in record batches, only the
declared columns, and keeps from each batch the rows of the groups ``dataset.sample`` chooses
(:mod:`leaklib.sampling`), so its memory follows the sample, not the file. ``{groups: N}``
first reads the group column alone to know every group. A CSV file is read whole, then sampled.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from leaklib import sampling
from leaklib.params import DatasetSpec, Params, SampleSpec
from leaklib.paths import resolve
from leaklib.sources.base import SourceError, SourceTable, check_fits, sampled

log = logging.getLogger(__name__)

ENCODING = "utf-8-sig"  # UTF-8, with or without a byte-order mark
_OTHER_DELIMITERS = (";", "\t", "|")
_OBJECT_BYTES = 8  # a pointer per value at least; Parquet's own sizes cover the values
BATCH_ROWS = 8_192  # rows per record batch when a Parquet file is streamed (below a row group)
# read column chunks through a 1 MiB buffer, not a whole row group at once (pre_buffer): the
# reader then holds about two row groups of the declared columns; a file written as one huge
# row group cannot be streamed in less than that
_STREAM = {"pre_buffer": False, "buffer_size": 1 << 20}


def _repeated(names: list[str], source: str) -> None:
    counts = collections.Counter(names)
    repeated = [f"{name!r} ({n} times)" for name, n in counts.items() if n > 1]
    if repeated:
        raise SourceError(
            f"source {source!r}: column {', '.join(repeated)} appears more than once; "
            "expected unique column names"
        )


def _check_parquet(path: Path, source: str) -> None:
    """Refuse repeated column names and a table too large for memory, from the metadata."""
    try:
        metadata = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise SourceError(f"source {source!r} cannot be read: {exc}") from exc
    _repeated(metadata.schema.to_arrow_schema().names, source)
    check_fits(
        _estimate(metadata, list(range(metadata.num_columns))),
        source=source,
        what=f"{metadata.num_rows:,} rows x {metadata.num_columns} columns, from its Parquet metadata",
    )


def _estimate(metadata: pq.FileMetaData, columns: list[int]) -> int:
    """Return the bytes these columns of a Parquet file take in memory, from its metadata."""
    stored = sum(
        metadata.row_group(g).column(c).total_uncompressed_size
        for g in range(metadata.num_row_groups)
        for c in columns
    )
    return max(stored, metadata.num_rows * len(columns) * _OBJECT_BYTES)


def _distinct_groups(file: pq.ParquetFile, group: str) -> set:
    """Return every group of the file, reading the group column alone, batch by batch."""
    found: set = set()
    for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=[group]):
        found.update(pc.unique(batch.column(0)).drop_null().to_pylist())
    return found


def _stream_parquet(path: Path, source: str, dataset: DatasetSpec) -> SourceTable:
    """Read the declared columns of a Parquet file in batches, keeping the sampled groups."""
    try:
        file = pq.ParquetFile(path, **_STREAM)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise SourceError(f"source {source!r} cannot be read: {exc}") from exc
    schema = file.schema_arrow
    _repeated(schema.names, source)
    wanted = [name for name in dataset.columns() if name in schema.names]
    metadata = file.metadata
    estimate = _estimate(metadata, [schema.get_field_index(name) for name in wanted])
    what = f"{metadata.num_rows:,} rows x {len(wanted)} declared columns, from its Parquet metadata"
    spec, group = dataset.sample, dataset.group
    if spec is None or group not in schema.names:
        check_fits(estimate, source=source, what=what)
        # no sample (or no group column, which validation names): the declared columns, whole,
        # or only the rows of dataset.period
        filters = period_filters(dataset, schema.names)
        if filters:
            frame = pq.read_table(path, columns=wanted, filters=filters).to_pandas()
        else:
            frame = file.read(columns=wanted).to_pandas()
        return SourceTable(frame, tuple(schema.names))
    return _read_sampled(
        file,
        path=path,
        source=source,
        wanted=wanted,
        spec=spec,
        group=group,
        estimate=estimate,
        what=what,
    )


def _read_sampled(
    file: pq.ParquetFile,
    *,
    path: Path,
    source: str,
    wanted: list[str],
    spec: SampleSpec,
    group: str,
    estimate: int,
    what: str,
) -> SourceTable:
    """Read the file's wanted columns in batches, keeping only the groups the sample draws."""
    schema, metadata = file.schema_arrow, file.metadata
    kind = schema.field(group).type
    sampling.check_group_type(
        str(kind),
        group=group,
        integer=pa.types.is_integer(kind),
        text=pa.types.is_string(kind) or pa.types.is_large_string(kind),
    )
    if spec.groups is not None:
        every = _distinct_groups(file, group)
        chosen = sampling.chosen_groups(every, spec)
        share = len(chosen) / max(len(every), 1)
        value_set = pa.array(list(chosen), type=kind)
    else:
        chooser = sampling.FractionChooser(spec)
        share = spec.fraction
    check_fits(int(estimate * share), source=source, what=f"{what}, times the sample's share")
    kept: list[pa.RecordBatch] = []
    without_group = 0
    column = wanted.index(group)
    for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
        groups = batch.column(column)
        without_group += groups.null_count
        if spec.groups is None:
            chosen = chooser.kept(pc.unique(groups).drop_null().to_pylist())
            value_set = pa.array(chosen, type=kind)
        kept.append(batch.filter(pc.is_in(groups, value_set=value_set)))
    table = pa.Table.from_batches(kept) if kept else schema.empty_table().select(wanted)
    frame = table.to_pandas()
    report = sampling.SampleReport(
        rule=sampling.describe_rule(spec),
        kept_groups=len(chosen) if spec.groups is not None else frame[group].nunique(),
        of_groups=len(every) if spec.groups is not None else chooser.seen,
        rows=len(frame),
        of_rows=metadata.num_rows,
        rows_without_group=without_group,
    )
    log.info("sampled %s from %s", report.summary(), path)
    return SourceTable(frame, tuple(schema.names), report)


def period_filters(dataset: DatasetSpec, names: list[str]) -> list[tuple] | None:
    """Return the Parquet row filters that keep ``dataset.period`` (None: keep every row).

    The same stretch :func:`leaklib.schema.within_period` keeps, start included, end excluded,
    read by pyarrow without loading the rows outside it.
    """
    period, stamp = dataset.period, dataset.timestamp
    if period is None or stamp is None or stamp not in names:
        return None
    filters = []
    if period.start is not None:
        filters.append((stamp, ">=", pd.Timestamp(period.start)))
    if period.end is not None:
        filters.append((stamp, "<", pd.Timestamp(period.end)))
    return filters or None


def _check_csv(path: Path, source: str) -> list[str]:
    """Refuse a CSV too large for memory, not UTF-8, or with repeated names; return its header."""
    check_fits(path.stat().st_size, source=source, what="its size on disk")
    try:
        with open(path, encoding=ENCODING, newline="") as handle:
            header = next(csv.reader(handle), [])
            for _ in handle:  # decode it all now, so a bad byte is found before pandas runs
                pass
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"source {source!r} is not UTF-8 text: byte {exc.object[exc.start : exc.start + 1]!r} "
            f"at offset {exc.start} (a Windows or Latin-1 export?); save it as UTF-8 "
            '("CSV UTF-8" in Excel)'
        ) from None
    _repeated(header, source)
    return header


def _check_delimiter(header: list[str], source: str) -> None:
    if len(header) != 1:
        return
    for delimiter in _OTHER_DELIMITERS:
        if delimiter in header[0]:
            shown = "tab" if delimiter == "\t" else repr(delimiter)
            raise SourceError(
                f"source {source!r}: column {header[0]!r} looks like a {shown}-separated "
                "header; expected comma-separated values (save the file with commas)"
            )


class FileReader:
    """Reads a whole ``.parquet`` or ``.csv`` file, resolved against the project folder."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @classmethod
    def from_uri(cls, uri: str) -> FileReader:
        """Open the reader a local ``source`` parameter names."""
        return cls(uri)

    def check(self) -> None:
        """Refuse a file that does not exist, is not a file, or is not .parquet or .csv."""
        path = resolve(self.uri)
        if not path.exists():
            raise SourceError(f"source {self.uri!r} does not exist (looked at {path})")
        if not path.is_file():
            raise SourceError(f"source {self.uri!r} is not a file (looked at {path})")
        if path.suffix.lower() not in (".parquet", ".csv"):
            raise SourceError(f"source {self.uri!r} must end in .parquet or .csv")

    def identity(self) -> str:
        """Return ``sha256:<hex>`` of the file's bytes, read in 1 MiB blocks."""
        path = resolve(self.uri)
        if not path.is_file():
            raise SourceError(f"source {self.uri!r} does not exist (looked at {path})")
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        return f"sha256:{digest.hexdigest()}"

    def read(self, params: Params) -> pd.DataFrame:
        """Read every column of the file (the schema check picks the declared ones)."""
        source = self.uri
        path = resolve(source)
        if not path.is_file():
            raise SourceError(f"source {source!r} does not exist (looked at {path})")
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise SourceError(f"source {source!r} must end in .parquet or .csv")
        try:
            if suffix == ".parquet":
                _check_parquet(path, source)
                names = pq.ParquetFile(path).schema_arrow.names
                frame = pd.read_parquet(path, filters=period_filters(params.dataset, names))
            else:
                _check_delimiter(_check_csv(path, source), source)
                frame = pd.read_csv(path, encoding=ENCODING)
        except SourceError:
            raise
        except Exception as exc:  # pyarrow/pandas raise many types for a broken file
            raise SourceError(f"source {source!r} cannot be read: {exc}") from exc
        log.info("read %d rows x %d columns from %s", len(frame), frame.shape[1], path)
        return frame

    def extract(self, params: Params) -> SourceTable:
        """Read what a run trains on: a Parquet file streamed in batches, a CSV file whole.

        A Parquet file gives only its declared columns (the others are listed, for the
        schema check's report) and only the rows of the sampled groups; a CSV file is read
        whole, then sampled.
        """
        path = resolve(self.uri)
        if path.is_file() and path.suffix.lower() == ".parquet":
            try:
                return _stream_parquet(path, self.uri, params.dataset)
            except (SourceError, sampling.SampleError):
                raise
            except Exception as exc:  # pyarrow raises many types for a broken file
                raise SourceError(f"source {self.uri!r} cannot be read: {exc}") from exc
        return sampled(self.read(params), params)
