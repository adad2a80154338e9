"""The stream's knobs and its schedule: the leaks and sensor faults its seed decides up front.

Two parts (years by default): history, then evaluation. Each part gets a fixed number of leaks
(abrupt or incipient, sizes from the recipe, log-uniform durations, some unrepaired) and, per
kind, stuck, gap and drift faults on sensor columns. The schedule is drawn once from
``SeedSequence([seed, SCHEDULE_KEY])``, before any chunk is solved.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from leaklib.simulate.hydraulics import (
    LeakKind,
    open_fraction,
)
from leaklib.simulate.recipe import (
    STEP_S,
    SimulationRecipe,
    _check_int,
    _check_number,
    _check_range,
)

# The schedule's seed sequence is [seed, SCHEDULE_KEY]; chunk c's is [seed, c] (c < SCHEDULE_KEY).
SCHEDULE_KEY = 2**32 - 1


_STEPS_PER_DAY = 86_400 // STEP_S


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
    leak_days: tuple[float, float] = (1.0, 30.0)  # time from start to repair, log-uniform, days
    unrepaired_probability: float = 0.1  # chance a leak runs to its part's end (unrepaired)
    incipient_ramp_days: tuple[float, float] = (1.0, 14.0)  # time an incipient leak takes to grow
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

    Leaks sit on distinct pipes. A leak lasts a log-uniform ``leak_days``; its start is uniform
    over its part, except that with ``unrepaired_probability`` it is placed so that the leak runs
    to the part's end. A leak that reaches its part's end is unrepaired: it is repaired at the
    part's end, or never if the part ends the stream. An incipient leak's ramp
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
            start, kind, diameter, ramp_s, repair, unrepaired = _draw_leak(
                recipe, stream, rng, first=first, end=end
            )
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


def _draw_leak(
    recipe: SimulationRecipe,
    stream: StreamRecipe,
    rng: np.random.Generator,
    *,
    first: int,
    end: int,
) -> tuple[int, LeakKind, float, float, int | None, bool]:
    """Draw one leak of the part ``[first, end)``: start, kind, diameter, ramp, repair, unrepaired."""
    start = int(rng.integers(first, end))
    u_kind, u_open = rng.random(2)
    diameter = float(rng.uniform(*recipe.leak_diameter_cm))
    ramp_s = float(rng.uniform(*stream.incipient_ramp_days)) * 86_400
    low, high = (math.log(d) for d in stream.leak_days)
    duration = int(round(math.exp(rng.uniform(low, high)) * _STEPS_PER_DAY))
    if u_open < stream.unrepaired_probability:  # found too late: it runs to the end
        start = max(first, end - duration)
    unrepaired = bool(start + duration >= end)
    repair: int | None = start + max(duration, 1)
    if unrepaired:
        repair = end if end < stream.n_steps else None
    kind = LeakKind.INCIPIENT if u_kind < recipe.incipient_probability else LeakKind.ABRUPT
    # an incipient leak reaches its full size by its repair at the latest
    open_s = ((stream.n_steps if repair is None else repair) - start) * STEP_S
    return start, kind, diameter, min(ramp_s, float(open_s)), repair, unrepaired


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
