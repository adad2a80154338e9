"""Where is the leak, measured: every detected 2019 leak of the stream default located.

Run from the project root (about a minute, once the signatures are cached: seconds)::

    python -m benchmarks.localisation_figures [--detections CSV] [--store DIR]

``--detections`` is a CSV of ``leak_id, detected, detection_time`` (a run's per-leak table);
without it each leak is 'detected' 3 h after its start. Prints the per-leak table, the scores
per method and the largest-drop baseline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from leaklib import features, params
from leaklib import leak_location as L
from leaklib.metadata import open_metadata_store
from leaklib.snapshots import open_snapshot_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--detections", type=Path)
    parser.add_argument("--store", default="/tmp/loc/stores")
    parser.add_argument("--window", default="2h")
    parser.add_argument("--deviation", default="tdev96x7w16")
    parser.add_argument("--economic", type=float, help="the run's event_economic_eur")
    parser.add_argument("--perfect", type=float, help="the run's event_economic_perfect_eur")
    parser.add_argument("--map", type=Path, help="draw the first leak's map to this PNG")
    args = parser.parse_args()
    p = params.load()
    spec = params.LocalisationSpec(window=args.window, deviation=args.deviation)
    frame = pd.read_parquet(p.dataset.source)
    started = time.perf_counter()
    frame, _ = features.derive_dataset(frame, p.dataset)
    print(f"derived in {time.perf_counter() - started:.1f} s")
    store = open_snapshot_store(f"{args.store}/snapshots")
    index = open_metadata_store(f"{args.store}/metadata")
    started = time.perf_counter()
    sigs = L.signatures(spec, columns=list(frame.columns), store=store, index=index)
    first = time.perf_counter() - started
    print(
        f"signatures: {sigs.levels.shape}, reused={sigs.reused}, first call {first:.1f} s "
        f"(solving {sigs.build_s} s)"
    )
    started = time.perf_counter()
    again = L.signatures(spec, columns=list(frame.columns), store=store, index=index)
    print(f"second call: reused={again.reused}, {time.perf_counter() - started:.2f} s")
    network = L.read_network(L.network_file(spec))
    leaks = pd.read_csv(p.dataset.leak_table, parse_dates=["start", "end"])
    leaks = leaks[leaks["start"].dt.year == 2019]
    if args.detections:
        det = pd.read_csv(args.detections, parse_dates=["detection_time"])
        leaks = leaks.merge(det[["leak_id", "detected", "detection_time"]], on="leak_id")
        leaks = leaks[leaks["detected"]]
    else:
        leaks = leaks.assign(detection_time=leaks["start"] + pd.Timedelta("3h"))
    history = frame[pd.to_datetime(frame["timestamp"]) < "2019-01-01"]
    scale = L.deviation_scale(history, sensors=sigs.sensors, deviation=spec.deviation)
    results: dict[str, list[dict]] = {m: [] for m in (*L.METHODS, "largest_drop")}
    per_event = []
    maps = []
    for _, leak in leaks.iterrows():
        t0 = time.perf_counter()
        dev = L.event_deviation(
            frame,
            sensors=sigs.sensors,
            deviation=spec.deviation,
            timestamp="timestamp",
            start=leak["detection_time"],
            window=spec.window,
        )
        for method in L.METHODS:
            loc = L.locate(dev, sigs, network, top_k=spec.top_k, method=method, scale=scale)
            row = L.located_leak(network, loc, leak["pipe"])
            results[method].append(
                {
                    "leak_id": leak["leak_id"],
                    "kind": leak["kind"],
                    "d_cm": leak["diameter_cm"],
                    **row,
                }
            )
            if method == "correlation":
                per_event.append(time.perf_counter() - t0)
                maps.append((loc, leak["pipe"], leak["leak_id"]))
        node = L.largest_drop(dev, sigs.sensors, network)
        d = L.pipe_distance(network, node, leak["pipe"])
        results["largest_drop"].append(
            {
                "leak_id": leak["leak_id"],
                "kind": leak["kind"],
                "pipe": leak["pipe"],
                "top_node": node,
                "distance_m": d,
                "nearest_k_m": d,
                "within_top1": d <= 300,
                "within_topk": d <= 300,
                "walk_m": 0.0,
            }
        )
    pd.set_option("display.width", 200)
    for method, rows in results.items():
        table = pd.DataFrame(rows)
        print(f"\n== {method}")
        print(table.round(1).to_string(index=False))
        scores = L.location_scores(table, economic_eur=args.economic, perfect_eur=args.perfect)
        print({k: round(v, 3) for k, v in scores.items()})
    print(
        f"\ntime per event (deviation + correlation ranking + walk): "
        f"median {np.median(per_event) * 1000:.0f} ms"
    )
    if args.map:
        from leaklib import plots

        loc, pipe, leak_id = maps[0]
        nodes = [n for c, n in L.pressure_sensors(list(sigs.sensors), network).items()]
        fig = plots.plot_location_map(
            network, loc, sensors=nodes, true_pipe=pipe, title=f"Where is leak {leak_id}"
        )
        fig.savefig(args.map, dpi=90)


if __name__ == "__main__":
    main()
