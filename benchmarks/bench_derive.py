"""Speed of the trailing seasonal baseline on a stream the size of the issue's: 70,080 rows x 37.

    .venv/bin/python benchmarks/bench_derive.py [--repeats 3]

Two years of 15-minute rows, 37 sensors, no group: ``derive_features`` with a trailing
median of the same time of day over the previous 7 days (and the same weekday over 4 weeks),
beside the ``previous`` baseline (a mean of lags) and a plain pandas reference for one column
(``groupby(time of day).shift(1).rolling(7).median()``), whose values the derivation must equal.
Reported: the best of ``--repeats`` times. The machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from leaklib import params as P
from leaklib.features import DeriveSpec, derive_features

ROWS, SENSORS, PERIOD = 70_080, 37, 96


def _best(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    rng = np.random.default_rng(0)
    columns = {f"s{i}": rng.normal(50, 1, ROWS) for i in range(SENSORS)}
    times = pd.date_range("2018-01-01", periods=ROWS, freq="15min")
    frame = pd.DataFrame({"timestamp": times, **columns})
    features = {name: P.FeatureSpec(type="numeric") for name in columns}
    trailing = {"kind": "seasonal_deviation", "columns": "s*", "period": PERIOD}
    cases = {
        "trailing, 7 days": [{**trailing, "baseline": "trailing", "days": 7}],
        "trailing, 7 days, windows 8 and 48": [
            {**trailing, "baseline": "trailing", "days": 7, "window": w} for w in (8, 48)
        ],
        "trailing, same weekday, 4 weeks": [
            {**trailing, "baseline": "trailing", "days": 4, "same_weekday": True}
        ],
        "previous, 7 periods (a mean)": [{**trailing, "periods": 7}],
    }
    for label, blocks in cases.items():
        spec = DeriveSpec.model_validate(blocks)
        seconds = _best(
            lambda spec=spec: derive_features(
                frame, spec=spec, group=None, timestamp="timestamp", features=features
            ),
            repeats,
        )
        print(f"{label:38s} {seconds:6.2f} s  ({SENSORS * len(blocks)} columns)")

    phase = np.arange(ROWS) % PERIOD
    column = frame["s0"]
    reference = None

    def pandas_one_column() -> None:
        nonlocal reference
        reference = column.groupby(phase).transform(lambda s: s.shift(1).rolling(7).median())

    seconds = _best(pandas_one_column, repeats)
    print(f"{'pandas groupby-rolling, ONE column':38s} {seconds:6.2f} s")
    spec = DeriveSpec.model_validate([{**trailing, "columns": "s0", "baseline": "trailing"}])
    out, _ = derive_features(
        frame, spec=spec, group=None, timestamp="timestamp", features={"s0": features["s0"]}
    )
    np.testing.assert_allclose(out["s0__tdev96x7"], column - reference)
    print("the derivation equals the pandas reference")


if __name__ == "__main__":
    main()
