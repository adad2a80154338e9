"""Speed and memory of the extract path, as ratios against plain pandas in the same run.

    .venv/bin/python benchmarks/bench_io.py [--source data/l-town-leaks.parquet] [--repeats 5]
    .venv/bin/python benchmarks/bench_io.py --scales 1 4 16 [--repeats 3] [--work DIR]

Without ``--scales``: the operations one at a time, in this process. Baselines (measured here,
same data): ``pd.read_parquet`` for reading and ``DataFrame.to_parquet`` for writing; for
memory, the table's own size in memory (Arrow's allocations are invisible to tracemalloc, so
a read_parquet baseline would be meaningless). Reported: median time ratio and peak
Python-heap ratio of validate_table, canonical_bytes + SHA-256, and load_snapshot.

With ``--scales``: the extract at 1x/4x/16x rows (the default table replicated with new group
ids by ``bench_pipeline.scaled_table``, row groups as the source's), each measurement in a
fresh interpreter so its peak RSS is its own: ``pd.read_parquet`` of the whole file (the
baseline), the extract of the whole table (``sources.extract_source``, ``validate_table``,
canonical bytes and SHA-256: what ``01_extract`` does before derived features and plots) and
the same with ``dataset.sample: {fraction: 0.0625}``. Interleaved, ``--repeats`` rounds;
reported: median seconds and peak RSS, and their ratios to the baseline.

No absolute seconds are judged: the machines are shared and noisy, ratios much less so.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from bench_pipeline import REPO, scaled_table

from leaklib import params as P
from leaklib.paths import resolve
from leaklib.schema import validate_table
from leaklib.snapshots import (
    LocalSnapshotStore,
    canonical_bytes,
    load_snapshot,
    sha256_hex,
    snapshot_table,
)

SAMPLE = "{fraction: 0.0625}"
MODES = ("read_parquet", "extract whole", f"extract, sample {SAMPLE}")
# one measurement in a fresh interpreter: seconds, peak RSS, RSS after the imports, rows.
# VmHWM is this process's own peak (ru_maxrss carries the parent's peak across exec on Linux)
_CHILD = """
import json, re, sys, time
from pathlib import Path
import pandas as pd
from leaklib import params as P, schema, sources
from leaklib.snapshots import canonical_bytes, sha256_hex
mode, path, sample = sys.argv[1], sys.argv[2], sys.argv[3]
overrides = [("dataset.source", path)]
if mode.startswith("extract, sample"):
    overrides.append(("dataset.sample", sample))
params = P.load(overrides=overrides)

def peak_kib():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))

imports = peak_kib()
start = time.perf_counter()
if mode == "read_parquet":
    rows = len(pd.read_parquet(path))
else:
    table, _ = schema.validate_table(sources.extract_source(params), params=params)
    sha256_hex(canonical_bytes(table))
    rows = len(table)
seconds = time.perf_counter() - start
peak = peak_kib()
print(json.dumps({"seconds": seconds, "peak_mib": peak / 1024, "imports_mib": imports / 1024,
                  "rows": rows}))
"""


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


def operations(source: str | None, repeats: int) -> None:
    """Print the in-process ratios of validation, hashing and snapshot loading."""
    params = P.load(overrides=[("dataset.source", source)] if source else [])
    path = resolve(params.dataset.source)
    raw = pd.read_parquet(path)
    clean, _ = validate_table(raw, params=params)

    read_base = measure(lambda: pd.read_parquet(path), repeats)
    write_base = measure(lambda: clean.to_parquet(io.BytesIO()), repeats)
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalSnapshotStore(tmp)
        snap = snapshot_table(clean, store=store)
        rows = {
            "validate_table (vs read_parquet)": (
                measure(lambda: validate_table(raw, params=params), repeats),
                read_base,
            ),
            "canonical_bytes + sha256 (vs to_parquet)": (
                measure(lambda: sha256_hex(canonical_bytes(clean)), repeats),
                write_base,
            ),
            "load_snapshot, verified (vs read_parquet)": (
                measure(lambda: load_snapshot(snap.sha256, store=store), repeats),
                read_base,
            ),
        }
    table_bytes = raw.memory_usage(deep=True).sum()
    print(
        f"table: {len(clean):,} rows x {clean.shape[1]} columns, "
        f"{table_bytes / 1e6:.1f} MB in memory; median of {repeats}"
    )
    print(f"{'operation':<44} {'time ratio':>10} {'peak heap / table':>18}")
    for name, ((secs, peak), (base_secs, _)) in rows.items():
        print(f"{name:<44} {secs / base_secs:>10.2f} {peak / table_bytes:>18.2f}")


def _child(mode: str, path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(path), SAMPLE],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} on {path} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def scaling(scales: list[int], repeats: int, work: Path, row_group_rows: int | None) -> dict:
    """Measure each mode at each scale, interleaved, in fresh interpreters; return medians."""
    results: dict = {}
    for factor in scales:
        name = scaled_table(work, factor, row_group_rows=row_group_rows)
        path = REPO / name if name.startswith("data/") else work / name
        runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
        for _ in range(repeats):
            for mode in MODES:
                runs[mode].append(_child(mode, path))
        results[factor] = {
            mode: {
                key: statistics.median(run[key] for run in measured)
                for key in ("seconds", "peak_mib", "imports_mib", "rows")
            }
            for mode, measured in runs.items()
        }
        results[factor]["file_mib"] = path.stat().st_size / 2**20
        print(json.dumps({factor: results[factor]}), file=sys.stderr)
    return results


def report(results: dict) -> str:
    """Return the Markdown table of the scaling results."""
    lines = [
        "| scale | file | what | rows out | wall | time ratio | peak RSS | above imports | RSS ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for factor, figures in results.items():
        base = figures["read_parquet"]
        base_above = base["peak_mib"] - base["imports_mib"]
        for mode in MODES:
            got = figures[mode]
            above = got["peak_mib"] - got["imports_mib"]
            lines.append(
                f"| {factor}x | {figures['file_mib']:.0f} MiB | {mode} | {got['rows']:,.0f} "
                f"| {got['seconds']:.2f} s | {got['seconds'] / base['seconds']:.2f} "
                f"| {got['peak_mib']:.0f} MiB | {above:.0f} MiB | {above / base_above:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--source", default=None, help="table to use (default: the embedded dataset)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scales", type=int, nargs="*", help="measure the extract at these")
    parser.add_argument("--row-group-rows", type=int, help="row groups of the scaled files")
    parser.add_argument("--work", help="folder for the scaled files (default: a temporary one)")
    args = parser.parse_args()
    if not args.scales:
        operations(args.source, args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(report(scaling(args.scales, args.repeats, work, args.row_group_rows)))


if __name__ == "__main__":
    main()
