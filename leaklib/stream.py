"""Simulate one continuous sensor stream on L-TOWN: BattLeDIM-style years of scheduled leaks.

Where ``leaklib.simulate`` makes independent one-week scenarios, this module makes one stream,
by default two years of 15-minute windows from Monday 2018-01-01: the first year is history with
its leaks labelled (BattLeDIM's 2018), the second the evaluation year (its 2019, 23 leaks).

- **Schedule**, drawn once from ``SeedSequence([seed, SCHEDULE_KEY])``: the town's demand scale,
  per-junction base-demand and per-pipe roughness factors; each part's leaks (pipe, kind, size,
  start, repair) and its sensor faults (stuck, gap, drift).
- **Demand**: L-TOWN's pattern week on the calendar (its day 0 is a Tuesday), a yearly sinusoid,
  public holidays that follow the Sunday pattern, and Gaussian pattern noise.
- **Chunks**: the stream is solved in chunks of ``chunk_days`` observed days, each after its own
  discarded warm-up, with the randomness of chunk ``c`` (pattern and sensor noise) from
  ``SeedSequence([seed, c])``; the output is byte-identical whatever the number of workers.
  Several simultaneous leaks are several emitters, each on a node splitting its pipe.
- **Faults** are applied to the assembled windows; they never set the ``leaks`` target.

``wntr`` and ``epyt`` are the optional ``simulate`` extra: they are imported inside functions only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from leaklib.simulate import (
    DEFAULT_SEED,
    NETWORK_FILE,
    STEP_S,
    LeakKind,
    SimulationRecipe,
    _check_int,
    _check_number,
    _check_range,
    _check_ready,
    emitter_coefficient,
    file_sha256,
    load_network,
    observe,
    open_fraction,
    perturb_network,
    run_in_workers,
    sensor_table,
    solve,
    windows_any,
    write_parquet,
)

log = logging.getLogger(__name__)

DEFAULT_STREAM_OUT = Path("data/l-town-stream.parquet")
# The schedule's seed sequence is [seed, SCHEDULE_KEY]; chunk c's is [seed, c] (c < SCHEDULE_KEY).
SCHEDULE_KEY = 2**32 - 1
_STEPS_PER_DAY = 86_400 // STEP_S
_PATTERN_SUNDAY = 5  # L-TOWN's pattern day 0 is a Tuesday, so Sunday is day 5
_CSV_DATES = "%Y-%m-%d %H:%M:%S"

# Public holidays of Cyprus (L-TOWN is modelled on a Cypriot town) in 2018 and 2019: New Year,
# Epiphany, Green Monday, Greek Independence Day, Cyprus National Day, Orthodox Good Friday and
# Easter Monday, Labour Day, Kataklysmos, the Assumption, Cyprus Independence Day, Ochi Day and
# Christmas Eve, Day and Boxing Day. Their demand follows the pattern week's Sunday.
CYPRUS_HOLIDAYS: tuple[str, ...] = (
    *(
        f"{year}-{day}"
        for year in (2018, 2019)
        for day in ("01-01", "01-06", "03-25", "04-01", "05-01", "08-15", "10-01", "10-28")
    ),
    *("2018-12-24", "2018-12-25", "2018-12-26", "2019-12-24", "2019-12-25", "2019-12-26"),
    *("2018-02-19", "2018-04-06", "2018-04-09", "2018-05-28"),  # moveable feasts, 2018
    *("2019-03-11", "2019-04-26", "2019-04-29", "2019-06-17"),  # moveable feasts, 2019
)

# Scenario knobs that a stream does not use (it has its own schedule, calendar and ramps).
_SCENARIO_ONLY = (
    "leak_probability",
    "repair_probability",
    "incipient_ramp_hours",
    "observed_days",
    "random_start_weekday",
)


class Part(StrEnum):
    """Which year a leak or fault belongs to."""

    HISTORY = "history"
    EVALUATION = "evaluation"


class FaultKind(StrEnum):
    """How a sensor misbehaves: frozen at its last reading, silent (NaN), or drifting."""

    STUCK = "stuck"
    GAP = "gap"
    DRIFT = "drift"


@dataclass(frozen=True)
class StreamRecipe:
    """The knobs of a stream; the defaults are the committed stream's recipe.

    The physics (perturbation spreads, pattern noise, leak sizes, sensors, noise, windows,
    warm-up) comes from a ``SimulationRecipe``; the scenario-only knobs of that recipe
    (``leak_probability``, ``repair_probability``, ``incipient_ramp_hours``, ``observed_days``,
    ``random_start_weekday``) must keep their defaults. Ranges are ``(min, max)``.
    """

    start: str = "2018-01-01"  # first day of the stream, ISO date (00:00); 2018-01-01 is a Monday
    days: int = 730  # length of the stream in days
    evaluation_start: str = "2019-01-01"  # first day of the evaluation part; before it: history
    history_leaks: int = 14  # leaks starting in the history part (BattLeDIM 2018 had 14)
    evaluation_leaks: int = 23  # leaks starting in the evaluation part (BattLeDIM 2019 had 23)
    leak_days: tuple[float, float] = (2.0, 120.0)  # time from start to repair, log-uniform, days
    unrepaired_probability: float = 0.15  # chance a leak is not repaired within its part
    incipient_ramp_days: tuple[float, float] = (3.0, 45.0)  # time an incipient leak takes to grow
    seasonal_amplitude: float = 0.05  # yearly sinusoid on all demand, relative half-amplitude
    seasonal_peak_day: int = 196  # day of the year of the demand peak (196: mid-July)
    holidays: tuple[str, ...] = CYPRUS_HOLIDAYS  # ISO dates whose demand follows a Sunday
    faults_per_kind: int = 1  # stuck, gap and drift faults in each part
    fault_days: tuple[float, float] = (0.5, 5.0)  # length of a stuck or gap fault, days
    drift_days: tuple[float, float] = (14.0, 45.0)  # length of a drift fault, days
    drift_relative: tuple[float, float] = (0.03, 0.08)  # a drift's size at its end, relative
    chunk_days: int = 7  # observed days solved per chunk (each after its own warm-up)

    def __post_init__(self) -> None:
        start = _date("start", self.start)
        evaluation = _date("evaluation_start", self.evaluation_start)
        _check_int("days", self.days, low=2, expected="a whole number of days >= 2")
        if not start < evaluation < start + pd.Timedelta(days=self.days):
            raise ValueError(
                f"evaluation_start must fall after start and before the stream's end "
                f"({start.date()} + {self.days} days), got {self.evaluation_start!r}"
            )
        for name in ("history_leaks", "evaluation_leaks", "faults_per_kind"):
            _check_int(name, getattr(self, name), low=0, expected="an integer >= 0")
        _check_int("chunk_days", self.chunk_days, low=1, expected="a whole number of days >= 1")
        for name in ("leak_days", "incipient_ramp_days", "fault_days", "drift_days"):
            _check_range(name, getattr(self, name), unit="days")
        _check_range("drift_relative", self.drift_relative, unit="relative units")
        if self.drift_relative[1] >= 1:
            raise ValueError(f"drift_relative must stay below 1, got {self.drift_relative!r}")
        _check_number(
            "unrepaired_probability",
            self.unrepaired_probability,
            low=0.0,
            high=1.0,
            expected="a probability in [0, 1]",
        )
        _check_number(
            "seasonal_amplitude",
            self.seasonal_amplitude,
            low=0.0,
            high=1.0,
            high_open=True,
            expected="a relative amplitude in [0, 1)",
        )
        _check_int(
            "seasonal_peak_day",
            self.seasonal_peak_day,
            low=1,
            high=366,
            expected="a day of the year in [1, 366]",
        )
        if isinstance(self.holidays, str):
            raise ValueError(f"holidays must be a tuple of ISO dates, got {self.holidays!r}")
        for day in self.holidays:
            _date("holidays", day)

    @property
    def first(self) -> pd.Timestamp:
        """Return the stream's first timestamp."""
        return pd.Timestamp(self.start)

    @property
    def n_steps(self) -> int:
        """Return the stream's length in 5-minute steps."""
        return self.days * _STEPS_PER_DAY

    @property
    def n_chunks(self) -> int:
        """Return how many chunks the stream is solved in."""
        return -(-self.days // self.chunk_days)

    def part_steps(self) -> dict[Part, tuple[int, int]]:
        """Return each part's 5-minute steps ``[first, end)`` from the stream's start."""
        split = int((pd.Timestamp(self.evaluation_start) - self.first).days) * _STEPS_PER_DAY
        return {Part.HISTORY: (0, split), Part.EVALUATION: (split, self.n_steps)}

    def to_dict(self) -> dict[str, Any]:
        """Return the knobs as plain JSON values."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def _date(name: str, value: Any) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value) if isinstance(value, str) else None
    except ValueError:
        stamp = None
    if stamp is None or stamp.tz is not None or stamp != stamp.normalize():
        what = "ISO dates" if name == "holidays" else "an ISO date"
        raise ValueError(f"{name} must be {what} such as '2018-01-01' (no time), got {value!r}")
    return stamp


def check_stream_recipe(recipe: SimulationRecipe) -> None:
    """Refuse a recipe whose scenario-only knobs were changed: a stream would ignore them.

    Raises:
        ValueError: Naming the knob.
    """
    default = SimulationRecipe()
    for name in _SCENARIO_ONLY:
        if getattr(recipe, name) != getattr(default, name):
            raise ValueError(
                f"{name} is a knob of the scenario dataset; a stream has its own schedule "
                f"(see StreamRecipe), so leave {name} at its default"
            )


@dataclass(frozen=True)
class StreamLeak:
    """One leak of the schedule; steps are 5-minute steps from the stream's start."""

    leak_id: int
    part: Part
    pipe: str
    kind: LeakKind
    diameter_cm: float
    ramp_s: float  # incipient: time to full size
    start_step: int
    end_step: int | None  # the repair; None if the leak lasts past the stream's end
    unrepaired: bool  # not repaired within its part (repaired at the part's end, or never)

    def fraction(self, t_s: float) -> float:
        """Return the share of the hole open at ``t_s`` seconds from the stream's start."""
        return open_fraction(
            t_s,
            kind=self.kind,
            start_s=self.start_step * STEP_S,
            end_s=None if self.end_step is None else self.end_step * STEP_S,
            ramp_s=self.ramp_s,
        )

    def overlaps(self, first_step: int, end_step: int) -> bool:
        """Return whether the leak is open during any step in ``[first_step, end_step)``."""
        return self.start_step < end_step and (self.end_step is None or self.end_step > first_step)


@dataclass(frozen=True)
class SensorFault:
    """One sensor fault; rows are 15-minute windows from the stream's start, ``[first, end)``."""

    fault_id: int
    part: Part
    column: str
    kind: FaultKind
    first_row: int
    end_row: int
    drift: float  # drift: the relative offset reached at the end; else 0


@dataclass(frozen=True)
class StreamSchedule:
    """Everything the stream's seed decides before any chunk is solved."""

    demand_scale: float
    node_factors: np.ndarray
    pipe_factors: np.ndarray
    leaks: tuple[StreamLeak, ...]
    faults: tuple[SensorFault, ...]


def draw_schedule(
    recipe: SimulationRecipe,
    stream: StreamRecipe,
    *,
    seed: int,
    n_junctions: int,
    pipes: list[str],
) -> StreamSchedule:
    """Draw the stream's perturbation, leaks and faults, always in the same order and number.

    Leaks sit on distinct pipes. A leak's start is uniform over its part, its repair comes after
    a log-uniform ``leak_days``; one not repaired within its part (drawn, or by running past it)
    is repaired at the part's end, or never if the part ends the stream. An incipient leak's ramp
    is cut to the time it is open, so it reaches its full size. Leak ids follow the start.
    """
    _check_int("seed", seed, low=0, expected="an integer >= 0")
    rng = np.random.default_rng(np.random.SeedSequence([seed, SCHEDULE_KEY]))
    s = recipe.demand_scale_spread
    demand_scale = float(rng.uniform(1 - s, 1 + s))
    node_factors = rng.uniform(
        1 - recipe.base_demand_spread, 1 + recipe.base_demand_spread, n_junctions
    )
    pipe_factors = rng.uniform(1 - recipe.roughness_spread, 1 + recipe.roughness_spread, len(pipes))
    counts = {Part.HISTORY: stream.history_leaks, Part.EVALUATION: stream.evaluation_leaks}
    total = sum(counts.values())
    if total > len(pipes):
        raise ValueError(f"history_leaks + evaluation_leaks must be at most {len(pipes)} pipes")
    pipe_index = rng.choice(len(pipes), size=total, replace=False)
    drawn: list[tuple[int, Part, int, LeakKind, float, float, int | None, bool]] = []
    for part, (first, end) in stream.part_steps().items():
        for _ in range(counts[part]):
            start = int(rng.integers(first, end))
            u_kind, u_open = rng.random(2)
            diameter = float(rng.uniform(*recipe.leak_diameter_cm))
            ramp_s = float(rng.uniform(*stream.incipient_ramp_days)) * 86_400
            low, high = (math.log(d) for d in stream.leak_days)
            duration = int(round(math.exp(rng.uniform(low, high)) * _STEPS_PER_DAY))
            unrepaired = bool(u_open < stream.unrepaired_probability or start + duration >= end)
            repair: int | None = start + max(duration, 1)
            if unrepaired:
                repair = end if end < stream.n_steps else None
            kind = LeakKind.INCIPIENT if u_kind < recipe.incipient_probability else LeakKind.ABRUPT
            # an incipient leak reaches its full size by its repair at the latest
            open_s = ((stream.n_steps if repair is None else repair) - start) * STEP_S
            ramp_s = min(ramp_s, float(open_s))
            drawn.append((start, part, len(drawn), kind, diameter, ramp_s, repair, unrepaired))
    leaks = tuple(
        StreamLeak(
            leak_id=i + 1,
            part=part,
            pipe=pipes[int(pipe_index[order])],
            kind=kind,
            diameter_cm=diameter,
            ramp_s=ramp_s,
            start_step=start,
            end_step=repair,
            unrepaired=unrepaired,
        )
        for i, (start, part, order, kind, diameter, ramp_s, repair, unrepaired) in enumerate(
            sorted(drawn)
        )
    )
    return StreamSchedule(
        demand_scale=demand_scale,
        node_factors=node_factors,
        pipe_factors=pipe_factors,
        leaks=leaks,
        faults=_draw_faults(recipe, stream, rng),
    )


def _draw_faults(
    recipe: SimulationRecipe, stream: StreamRecipe, rng: np.random.Generator
) -> tuple[SensorFault, ...]:
    per_window = recipe.window_minutes * 60 // STEP_S
    columns = recipe.sensor_columns
    kinds = [kind for kind in FaultKind for _ in range(stream.faults_per_kind)]
    faults: list[SensorFault] = []
    for part, (first, end) in stream.part_steps().items():
        first_row, end_row = first // per_window, end // per_window
        for kind in kinds:
            days = stream.drift_days if kind is FaultKind.DRIFT else stream.fault_days
            rows = int(round(float(rng.uniform(*days)) * _STEPS_PER_DAY / per_window))
            rows = max(1, min(rows, end_row - first_row))
            start = int(rng.integers(first_row, end_row - rows + 1))
            size = float(rng.uniform(*stream.drift_relative)) * (1 if rng.random() < 0.5 else -1)
            faults.append(
                SensorFault(
                    fault_id=len(faults) + 1,
                    part=part,
                    column=columns[int(rng.integers(len(columns)))],
                    kind=kind,
                    first_row=start,
                    end_row=start + rows,
                    drift=size if kind is FaultKind.DRIFT else 0.0,
                )
            )
    return tuple(faults)


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
    per_window = recipe.window_minutes * 60 // STEP_S
    observed = flow[n_warm:]
    volumes = observed.reshape(len(values), per_window, -1).sum(axis=1) * STEP_S / 1000
    return ChunkResult(
        chunk=chunk,
        values=values,
        leak_volume_m3={leak.leak_id: volumes[:, j] for j, leak in enumerate(leaks)},
        leak_peak_lps={leak.leak_id: float(observed[:, j].max()) for j, leak in enumerate(leaks)},
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
