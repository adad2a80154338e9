"""Simulate one continuous sensor stream on L-TOWN, in seeded chunks, and write its files.

The stream is solved in chunks of ``chunk_days`` observed days, each after its own discarded
warm-up, with the randomness of chunk ``c`` (pattern and sensor noise) from
``SeedSequence([seed, c])``; the output is byte-identical whatever the number of workers.
Demand follows L-TOWN's pattern week on the calendar (its day 0 is a Tuesday), a yearly
sinusoid and holidays on the Sunday pattern. Several simultaneous leaks are several emitters.
Sensor faults are applied to the assembled windows; they never set the ``leaks`` target.
``wntr`` and ``epyt`` are imported inside functions only.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from leaklib.simulate.files import file_sha256, run_in_workers, write_parquet
from leaklib.simulate.hydraulics import (
    LeakKind,
    emitter_coefficient,
    load_network,
    observe,
    perturb_network,
    sensor_table,
    solve,
    windows_any,
)
from leaklib.simulate.recipe import (
    DEFAULT_SEED,
    NETWORK_FILE,
    STEP_S,
    SimulationRecipe,
    _check_int,
    _check_ready,
)
from leaklib.simulate.schedule import (
    _STEPS_PER_DAY,
    FaultKind,
    SensorFault,
    StreamLeak,
    StreamRecipe,
    StreamSchedule,
    check_stream_recipe,
    draw_schedule,
)

log = logging.getLogger(__name__)


DEFAULT_STREAM_OUT = Path("data/l-town-stream.parquet")


_PATTERN_SUNDAY = 5  # L-TOWN's pattern day 0 is a Tuesday, so Sunday is day 5


_CSV_DATES = "%Y-%m-%d %H:%M:%S"


def _demand_calendar(stream: StreamRecipe, first_step: int, n_steps: int) -> tuple[Any, Any]:
    """Return each step's index into the pattern week and its seasonal demand factor."""
    steps = first_step + np.arange(n_steps)
    stamps = stream.first + pd.to_timedelta(steps * STEP_S, unit="s")
    pattern_day = (stamps.day_of_week.to_numpy() - 1) % 7  # Monday 0 -> pattern day 6
    holidays = pd.DatetimeIndex([pd.Timestamp(d) for d in stream.holidays])
    pattern_day[stamps.normalize().isin(holidays)] = _PATTERN_SUNDAY
    index = pattern_day * _STEPS_PER_DAY + (steps % _STEPS_PER_DAY)
    day_of_year = stamps.day_of_year.to_numpy() + (steps % _STEPS_PER_DAY) / _STEPS_PER_DAY
    season = 1 + stream.seasonal_amplitude * np.cos(
        2 * np.pi * (day_of_year - stream.seasonal_peak_day) / 365.25
    )
    return index, season


class ChunkResult(NamedTuple):
    """One solved chunk: its windows and the leak outflow of each leak open in it."""

    chunk: int
    values: np.ndarray  # (windows, sensors), noisy and rounded
    leak_volume_m3: dict[int, np.ndarray]  # leak_id -> volume per window
    leak_peak_lps: dict[int, float]  # leak_id -> largest 5-minute outflow


def simulate_chunk(
    recipe: SimulationRecipe,
    stream: StreamRecipe,
    schedule: StreamSchedule,
    chunk: int,
    *,
    seed: int,
) -> ChunkResult:
    """Solve one chunk of the stream (its warm-up, then ``chunk_days`` observed days)."""
    _check_int("chunk", chunk, low=0, high=stream.n_chunks - 1, expected="a chunk of the stream")
    rng_patterns, rng_sensors = (
        np.random.default_rng(child) for child in np.random.SeedSequence([seed, chunk]).spawn(2)
    )
    chunk_steps = stream.chunk_days * _STEPS_PER_DAY
    first = chunk * chunk_steps
    n_obs = min(chunk_steps, stream.n_steps - first)
    n_warm = recipe.warmup_days * _STEPS_PER_DAY
    sim_first, n_sim = first - n_warm, n_warm + n_obs
    leaks = [leak for leak in schedule.leaks if leak.overlaps(sim_first, first + n_obs)]
    index, season = _demand_calendar(stream, sim_first, n_sim)

    def patterns(nominal: np.ndarray) -> np.ndarray:
        noise = rng_patterns.standard_normal(n_sim)
        values = nominal[index % len(nominal)] * season
        return np.clip(values * (1 + recipe.pattern_noise * noise), 0, None)

    wn = load_network()
    nodes = [f"leak_{leak.leak_id}" for leak in leaks]
    perturb_network(
        wn,
        demand_scale=schedule.demand_scale,
        node_factors=schedule.node_factors,
        pipe_factors=schedule.pipe_factors,
        patterns=patterns,
        n_steps=n_sim,
        leak_pipes=[leak.pipe for leak in leaks],
        leak_nodes=nodes,
    )
    full = [emitter_coefficient(recipe, leak.diameter_cm) for leak in leaks]
    offset_s = sim_first * STEP_S
    try:
        samples, flow = solve(
            wn,
            recipe,
            n_steps=n_sim,
            leak_nodes=nodes,
            emitters=lambda t: [
                c * leak.fraction(offset_s + t) for c, leak in zip(full, leaks, strict=True)
            ],
        )
    except RuntimeError as exc:
        raise RuntimeError(f"chunk {chunk}: {exc}") from exc
    values = observe(samples[n_warm:], recipe, rng=rng_sensors)
    return _chunk_result(chunk, values, flow[n_warm:], leaks, recipe)


def _chunk_result(
    chunk: int,
    values: np.ndarray,
    flow: np.ndarray,
    leaks: list[StreamLeak],
    recipe: SimulationRecipe,
) -> ChunkResult:
    """Return a chunk's windows with each leak's volume per window and its peak outflow."""
    per_window = recipe.window_minutes * 60 // STEP_S
    volumes = flow.reshape(len(values), per_window, -1).sum(axis=1) * STEP_S / 1000
    return ChunkResult(
        chunk=chunk,
        values=values,
        leak_volume_m3={leak.leak_id: volumes[:, j] for j, leak in enumerate(leaks)},
        leak_peak_lps={leak.leak_id: float(flow[:, j].max()) for j, leak in enumerate(leaks)},
    )


def _simulate_chunk_job(
    job: tuple[SimulationRecipe, StreamRecipe, StreamSchedule, int, int],
) -> ChunkResult:
    recipe, stream, schedule, chunk, seed = job
    return simulate_chunk(recipe, stream, schedule, chunk, seed=seed)


def stream_labels(schedule: StreamSchedule, recipe: SimulationRecipe, n_steps: int) -> np.ndarray:
    """Return the ``leaks`` target per window: 1 while any leak is open in any of its samples."""
    active = np.zeros(n_steps, dtype=bool)
    for leak in schedule.leaks:
        end = n_steps if leak.end_step is None else min(leak.end_step, n_steps)
        active[min(leak.start_step, n_steps) : end] = True
    return windows_any(active, recipe)


def apply_faults(
    values: np.ndarray, faults: tuple[SensorFault, ...], recipe: SimulationRecipe
) -> None:
    """Apply sensor faults in place to the windows ``values`` (the stream's first rows).

    A stuck sensor repeats its last reading before the fault, a gap is NaN, a drift multiplies
    the reading by ``1 + drift * elapsed share`` (rounded again). Faults past the rows are cut.
    """
    columns = recipe.sensor_columns
    for fault in faults:
        first, end = fault.first_row, min(fault.end_row, len(values))
        if first >= end:
            continue
        j = columns.index(fault.column)
        if fault.kind is FaultKind.GAP:
            values[first:end, j] = np.nan
        elif fault.kind is FaultKind.STUCK:
            values[first:end, j] = values[max(first - 1, 0), j]
        else:
            share = (np.arange(first, end) - fault.first_row + 1) / (
                fault.end_row - fault.first_row
            )
            values[first:end, j] = np.round(
                values[first:end, j] * (1 + fault.drift * share), recipe.decimals
            )


class StreamFrames(NamedTuple):
    """A simulated stream: the wide table and its companion tables."""

    table: pd.DataFrame  # one row per window
    leaks: pd.DataFrame  # one row per leak
    volumes: pd.DataFrame  # leak_id, timestamp, volume_m3 for every window a leak is open
    faults: pd.DataFrame  # one row per sensor fault


def simulate_stream_frames(
    *,
    recipe: SimulationRecipe | None = None,
    stream: StreamRecipe | None = None,
    seed: int = DEFAULT_SEED,
    workers: int = 1,
    chunks: int | None = None,
    progress: bool = True,
) -> StreamFrames:
    """Simulate the stream's first ``chunks`` chunks (all if None) in worker processes.

    A prefix of the stream is value-for-value the start of the whole stream. The leak table's
    peak flows and volumes cover the simulated chunks only.
    """
    recipe = SimulationRecipe() if recipe is None else recipe
    stream = StreamRecipe() if stream is None else stream
    check_stream_recipe(recipe)
    _check_int("workers", workers, low=1, expected="an integer >= 1")
    _check_int("seed", seed, low=0, expected="an integer >= 0")
    n_chunks = stream.n_chunks if chunks is None else chunks
    _check_int(
        "chunks",
        n_chunks,
        low=1,
        high=stream.n_chunks,
        expected=f"a number of chunks in [1, {stream.n_chunks}]",
    )
    _check_ready(recipe)
    wn = load_network()
    schedule = draw_schedule(
        recipe, stream, seed=seed, n_junctions=len(wn.junction_name_list), pipes=wn.pipe_name_list
    )
    jobs = [(recipe, stream, schedule, c, seed) for c in range(n_chunks)]
    results = run_in_workers(
        _simulate_chunk_job, jobs, workers=workers, progress=progress, unit="chunk"
    )
    values = np.concatenate([r.values for r in results])
    apply_faults(values, schedule.faults, recipe)
    per_window = recipe.window_minutes * 60 // STEP_S
    stamps = pd.DatetimeIndex(
        stream.first + pd.to_timedelta(np.arange(len(values)) * recipe.window_minutes, unit="min")
    )
    labels = stream_labels(schedule, recipe, len(values) * per_window)
    table = sensor_table(stamps, values, labels, recipe)
    volumes = _volume_table(results, stamps, stream, recipe)
    return StreamFrames(
        table=table,
        leaks=_leak_table(schedule, results, volumes, stream),
        volumes=volumes,
        faults=_fault_table(schedule.faults, stream, recipe),
    )


def _volume_table(
    results: list[ChunkResult],
    stamps: pd.DatetimeIndex,
    stream: StreamRecipe,
    recipe: SimulationRecipe,
) -> pd.DataFrame:
    windows_per_chunk = stream.chunk_days * 86_400 // (recipe.window_minutes * 60)
    parts = []
    for result in results:
        first = result.chunk * windows_per_chunk
        for leak_id, volume in result.leak_volume_m3.items():
            rows = np.flatnonzero(volume > 0)
            parts.append(
                pd.DataFrame(
                    {
                        "leak_id": np.full(len(rows), leak_id, dtype=np.int64),
                        "timestamp": stamps[first + rows],
                        "volume_m3": np.round(volume[rows], 4),
                    }
                )
            )
    frame = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(
            {"leak_id": np.array([], dtype=np.int64), "timestamp": stamps[:0], "volume_m3": []}
        )
    )
    return frame.sort_values(["leak_id", "timestamp"], kind="stable", ignore_index=True)


def _stamp(stream: StreamRecipe, step: int | None) -> pd.Timestamp:
    return pd.NaT if step is None else stream.first + pd.Timedelta(seconds=step * STEP_S)


def _leak_table(
    schedule: StreamSchedule,
    results: list[ChunkResult],
    volumes: pd.DataFrame,
    stream: StreamRecipe,
) -> pd.DataFrame:
    peaks: dict[int, float] = {}
    for result in results:
        for leak_id, peak in result.leak_peak_lps.items():
            peaks[leak_id] = max(peaks.get(leak_id, 0.0), peak)
    totals = volumes.groupby("leak_id")["volume_m3"].sum()
    rows = [
        {
            "leak_id": leak.leak_id,
            "part": str(leak.part),
            "pipe": leak.pipe,
            "kind": str(leak.kind),
            "start": _stamp(stream, leak.start_step),
            "end": _stamp(stream, leak.end_step),
            "unrepaired": leak.unrepaired,
            "diameter_cm": round(leak.diameter_cm, 4),
            "ramp_hours": round(leak.ramp_s / 3600, 2)
            if leak.kind is LeakKind.INCIPIENT
            else math.nan,
            "peak_flow_lps": round(peaks[leak.leak_id], 3) if leak.leak_id in peaks else math.nan,
            "volume_m3": round(float(totals.get(leak.leak_id, 0.0)), 3),
        }
        for leak in schedule.leaks
    ]
    return pd.DataFrame(rows)


def _fault_table(
    faults: tuple[SensorFault, ...], stream: StreamRecipe, recipe: SimulationRecipe
) -> pd.DataFrame:
    window = pd.Timedelta(minutes=recipe.window_minutes)
    return pd.DataFrame(
        [
            {
                "fault_id": f.fault_id,
                "part": str(f.part),
                "column": f.column,
                "kind": str(f.kind),
                "start": stream.first + f.first_row * window,
                "end": stream.first + f.end_row * window,
                "drift_relative": round(f.drift, 4) if f.kind is FaultKind.DRIFT else math.nan,
            }
            for f in faults
        ]
    )


class StreamPaths(NamedTuple):
    """The files of a stream dataset, next to its Parquet table."""

    table: Path
    leaks: Path
    volumes: Path
    faults: Path
    sha256: Path


def stream_companion_paths(out: Path) -> StreamPaths:
    """Return the stream's files: ``<stem>.leaks.csv``, ``.leak-volumes.parquet`` and so on."""
    return StreamPaths(
        table=out,
        leaks=out.with_name(out.stem + ".leaks.csv"),
        volumes=out.with_name(out.stem + ".leak-volumes.parquet"),
        faults=out.with_name(out.stem + ".faults.csv"),
        sha256=out.with_name(out.name + ".sha256"),
    )


def simulate_stream(
    *,
    recipe: SimulationRecipe | None = None,
    stream: StreamRecipe | None = None,
    seed: int = DEFAULT_SEED,
    workers: int = 1,
    out: str | Path = DEFAULT_STREAM_OUT,
    progress: bool = True,
) -> StreamPaths:
    """Simulate the stream and write its table, leak, volume and fault tables and SHA-256s.

    The bytes depend only on the recipes and ``seed`` (and the solver's and pyarrow's versions),
    not on ``workers``. The ``.sha256`` file lists all four data files (``sha256sum -c``).

    Args:
        recipe: The physics; the default recipe if None.
        stream: The stream's knobs; the default stream if None.
        seed: Seed of the whole stream.
        workers: Worker processes.
        out: Where the Parquet table goes (must end in .parquet).
        progress: Show a tqdm progress bar.
    """
    out = Path(out)
    if out.suffix != ".parquet":
        raise ValueError(f"out must be a path ending in .parquet, got {str(out)!r}")
    recipe = SimulationRecipe() if recipe is None else recipe
    stream = StreamRecipe() if stream is None else stream
    started = time.perf_counter()
    frames = simulate_stream_frames(
        recipe=recipe, stream=stream, seed=seed, workers=workers, progress=progress
    )
    provenance = {
        "leaklib.simulate.recipe": json.dumps(recipe.to_dict(), sort_keys=True),
        "leaklib.simulate.stream": json.dumps(stream.to_dict(), sort_keys=True),
        "leaklib.simulate.seed": str(seed),
        "leaklib.simulate.network": f"{NETWORK_FILE} (BattLeDIM 2020, via epyt)",
    }
    paths = stream_companion_paths(out)
    write_parquet(frames.table, paths.table, metadata=provenance)
    write_parquet(frames.volumes, paths.volumes, metadata=provenance)
    for frame, path in ((frames.leaks, paths.leaks), (frames.faults, paths.faults)):
        frame.to_csv(path, index=False, lineterminator="\n", date_format=_CSV_DATES)
    listed = (paths.table, paths.leaks, paths.volumes, paths.faults)
    paths.sha256.write_text(
        "".join(f"{file_sha256(p)}  {p.name}\n" for p in listed), encoding="utf-8"
    )
    log.info(
        "simulated a %d-day stream (%d rows, %d leaks, %.1f%% leak rows) in %.1f s with %d "
        "worker(s); wrote %s (%d bytes)",
        stream.days,
        len(frames.table),
        len(frames.leaks),
        100 * frames.table["leaks"].mean(),
        time.perf_counter() - started,
        workers,
        out,
        out.stat().st_size,
    )
    return paths
