"""Load on ``POST /predict`` of a running ``leak serve``: latency percentiles and throughput.

    LEAK_API_TOKEN=... .venv/bin/python benchmarks/bench_serve.py --url http://127.0.0.1:8000 \\
        [--requests 200] [--records 100] [--concurrency 8]

Sends ``--requests`` batches of ``--records`` readings (on a stream the newest readings, with no
history in the body: the server reads their lookback from the run's source; with groups the
first readings of one series), ``--concurrency`` at a
time, over one keep-alive connection pool, and reports p50/p95/max latency and requests and
records per second. Every answer must be a 200 with one prediction per record, all identical
(the same batch, the same champion). The figures depend on the machine and its load; nothing
here judges them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

from leaklib import params as P
from leaklib.paths import project_root


@dataclass
class Load:
    """What a load run measured."""

    latencies_s: list[float]
    wall_s: float
    records: int
    answers: list[dict]

    def figures(self) -> dict[str, float]:
        ordered = sorted(self.latencies_s)
        cut = statistics.quantiles(ordered, n=100, method="inclusive")
        return {
            "requests": len(ordered),
            "p50_ms": 1000 * statistics.median(ordered),
            "p95_ms": 1000 * cut[94],
            "max_ms": 1000 * ordered[-1],
            "requests_per_s": len(ordered) / self.wall_s,
            "records_per_s": len(ordered) * self.records / self.wall_s,
        }


def series_body(
    project: Path, *, records: int, files: list[str] | None = None, end: str | None = None
) -> dict:
    """A POST /predict body: on a stream the newest ``records`` readings (before ``end``), with
    no history (the server reads it); with groups the first readings of the first series."""
    dataset = P.load(files or []).dataset
    table = pd.read_parquet(project / dataset.source)
    if dataset.group is None:
        ordered = table.sort_values(dataset.timestamp)
        if end is not None:
            ordered = ordered[ordered[dataset.timestamp] < pd.Timestamp(end)]
        series = ordered.tail(records)
    else:
        first = table[dataset.group].min()
        series = table[table[dataset.group] == first].sort_values(dataset.timestamp).head(records)
    columns = [c for c in (dataset.group, dataset.timestamp) if c] + list(dataset.features)
    return {"records": json.loads(series[columns].to_json(orient="records", date_format="iso"))}


def run_load(
    url: str, *, token: str, body: dict, requests: int = 200, concurrency: int = 8
) -> Load:
    """Send ``requests`` copies of ``body`` to ``url``/predict, ``concurrency`` at a time."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    payload = json.dumps(body).encode()
    with httpx.Client(base_url=url, headers=headers, limits=limits, timeout=120) as client:

        def one(_: int) -> tuple[float, dict]:
            started = time.perf_counter()
            answer = client.post(
                "/predict", content=payload, headers={"Content-Type": "application/json"}
            )
            elapsed = time.perf_counter() - started
            return elapsed, {"status": answer.status_code, **answer.json()}

        client.get("/health")  # connect once before the clock starts
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            done = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - started
    return Load(
        latencies_s=[d[0] for d in done],
        wall_s=wall,
        records=len(body["records"]),
        answers=[d[1] for d in done],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("-f", dest="files", action="append", default=[], help="parameter file")
    parser.add_argument(
        "--end", help="on a stream: the readings before this time (default: newest)"
    )
    args = parser.parse_args()
    body = series_body(project_root(), records=args.records, files=args.files, end=args.end)
    load = run_load(
        args.url,
        token=os.environ.get("LEAK_API_TOKEN", ""),
        body=body,
        requests=args.requests,
        concurrency=args.concurrency,
    )
    bad = [a for a in load.answers if a["status"] != 200]
    if bad:
        raise SystemExit(f"{len(bad)} answers were not 200, e.g. {bad[0]}")
    shown = load.figures()
    print(
        f"{shown['requests']} POST /predict x {args.records} records, {args.concurrency} at a "
        f"time: p50 {shown['p50_ms']:.0f} ms, p95 {shown['p95_ms']:.0f} ms, max "
        f"{shown['max_ms']:.0f} ms; {shown['requests_per_s']:.1f} requests/s, "
        f"{shown['records_per_s']:.0f} records/s"
    )


if __name__ == "__main__":
    main()
