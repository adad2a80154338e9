"""Writing simulated tables byte-reproducibly, and running jobs in worker processes in order."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

ROW_GROUP_SIZE = 65_536


ZSTD_LEVEL = 9


def run_in_workers(
    func: Callable[[Any], Any], jobs: Sequence[Any], *, workers: int, progress: bool, unit: str
) -> list[Any]:
    """Return ``[func(job) for job in jobs]``, computed in ``workers`` processes, in job order."""
    results: dict[int, Any] = {}
    with tqdm(total=len(jobs), desc="simulate", unit=unit, disable=not progress) as bar:
        if workers == 1:
            for i, job in enumerate(jobs):
                results[i] = func(job)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
                futures = {pool.submit(func, job): i for i, job in enumerate(jobs)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
    return [results[i] for i in range(len(jobs))]


def write_parquet(
    frame: pd.DataFrame, path: Path, *, metadata: dict[str, str] | None = None
) -> None:
    """Write a table to Parquet byte-reproducibly (zstd, fixed row groups, no pandas metadata)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(
        {k.encode(): v.encode() for k, v in sorted((metadata or {}).items())}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(
        table,
        partial,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        row_group_size=ROW_GROUP_SIZE,
        version="2.6",
        use_dictionary=True,
        write_statistics=True,
    )
    partial.replace(path)


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
