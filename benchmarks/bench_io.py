"""Speed and memory of the extract path, as ratios against plain pandas in the same run.

    .venv/bin/python benchmarks/bench_io.py [--source data/l-town-leaks.parquet] [--repeats 5]

Baselines (measured here, same data, same process): ``pd.read_parquet`` for reading and
``DataFrame.to_parquet`` for writing; for memory, the table's own size in memory (Arrow's
allocations are invisible to tracemalloc, so a read_parquet baseline would be meaningless).
Reported: median time ratio and peak Python-heap ratio of validate_table, canonical_bytes +
SHA-256, and load_snapshot. No absolute
seconds are judged: the machines are shared and noisy, ratios much less so.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable

import pandas as pd

from leaklib import params as P
from leaklib.paths import project_root
from leaklib.schema import validate_table
from leaklib.snapshots import (
    LocalSnapshotStore,
    canonical_bytes,
    load_snapshot,
    sha256_hex,
    snapshot_table,
)


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Return the median seconds and the peak traced memory (bytes) of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--source", default=None, help="table to use (default: the embedded dataset)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    overrides = [("source", args.source)] if args.source else []
    params = P.load(overrides=overrides)
    path = project_root() / params.source if not args.source else args.source
    raw = pd.read_parquet(path)
    clean, _ = validate_table(raw, params=params)

    read_base = measure(lambda: pd.read_parquet(path), args.repeats)
    write_base = measure(lambda: clean.to_parquet(io.BytesIO()), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalSnapshotStore(tmp)
        snap = snapshot_table(clean, store=store)
        rows = {
            "validate_table (vs read_parquet)": (
                measure(lambda: validate_table(raw, params=params), args.repeats),
                read_base,
            ),
            "canonical_bytes + sha256 (vs to_parquet)": (
                measure(lambda: sha256_hex(canonical_bytes(clean)), args.repeats),
                write_base,
            ),
            "load_snapshot, verified (vs read_parquet)": (
                measure(lambda: load_snapshot(snap.sha256, store=store), args.repeats),
                read_base,
            ),
        }
    table_bytes = raw.memory_usage(deep=True).sum()
    print(
        f"table: {len(clean):,} rows x {clean.shape[1]} columns, {table_bytes / 1e6:.1f} MB in memory; median of {args.repeats}"
    )
    print(f"{'operation':<44} {'time ratio':>10} {'peak heap / table':>18}")
    for name, ((secs, peak), (base_secs, _)) in rows.items():
        print(f"{name:<44} {secs / base_secs:>10.2f} {peak / table_bytes:>18.2f}")


if __name__ == "__main__":
    main()
