"""Simulate leak scenarios on the L-TOWN network: the embedded default dataset.

No package reachable from this project ships measured leak data, so the default input table is a
documented, seeded physics simulation on a real benchmark network: L-TOWN from BattLeDIM 2020
(KIOS Research and Innovation Center of Excellence, University of Cyprus), as shipped by the
``epyt`` package, solved with EPANET 2.2 through ``wntr``'s toolkit bindings.

One scenario is a perturbed copy of the town (demand scale, per-node base demand, per-pipe
roughness, noisy demand patterns), optionally one leak, one warm-up day that is discarded and
``observed_days`` observed days sampled every 5 minutes at the official sensor locations, then
averaged into ``window_minutes`` rows. A leak is an EPANET emitter on a node made by splitting
the leaking pipe at its midpoint, with coefficient ``C = Cd * A * sqrt(2 g)``; the solver is
stepped every 5 minutes so that the leak area can follow a ramp or stop at a repair.

Every scenario draws its randomness from ``numpy.random.SeedSequence([seed, scenario_id])``, so a
dataset is byte-identical whatever the number of worker processes or the order they finish in.

``wntr`` and ``epyt`` are the optional ``simulate`` extra: they are imported inside functions only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

DEFAULT_SEED = 2020
DEFAULT_SCENARIOS = 150
DEFAULT_OUT = Path("data/l-town-leaks.parquet")
NETWORK_FILE = "L-TOWN.inp"  # in epyt's networks/ folder

# Day 0 of L-TOWN's one-week demand patterns is a Tuesday (its two low, late-rising days are
# days 4 and 5, i.e. Saturday and Sunday; BattLeDIM's historical year also began on Tuesday
# 2019-01-01). The synthetic calendar therefore starts on Tuesday 2019-01-01, so that
# `day_of_week` (Monday = 0) agrees with the weekends in the demand.
CALENDAR_ORIGIN = pd.Timestamp("2019-01-01")
STEP_S = 300  # solver and sampling step, seconds (L-TOWN's hydraulic and pattern step)
GRAVITY = 9.81  # m/s2
ROW_GROUP_SIZE = 65_536
ZSTD_LEVEL = 9

# The official BattLeDIM 2020 sensors, as marked in the comments of L-TOWN.inp.
LTOWN_PRESSURE_SENSORS: tuple[str, ...] = (
    "n1",
    "n4",
    "n31",
    "n54",
    "n105",
    "n114",
    "n163",
    "n188",
    "n215",
    "n229",
    "n288",
    "n296",
    "n332",
    "n342",
    "n410",
    "n415",
    "n429",
    "n458",
    "n469",
    "n495",
    "n506",
    "n516",
    "n519",
    "n549",
    "n613",
    "n636",
    "n644",
    "n679",
    "n722",
    "n726",
    "n740",
    "n752",
    "n769",
)
LTOWN_FLOW_SENSORS: tuple[str, ...] = ("p227", "p235", "PUMP_1")
LTOWN_LEVEL_SENSORS: tuple[str, ...] = ("T1",)

# EPANET 2.2 toolkit codes (epanet2_enums.h).
_EN_ELEVATION, _EN_EMITTER, _EN_DEMAND, _EN_HEAD, _EN_PRESSURE = 0, 3, 9, 10, 11
_EN_FLOW = 8
_LEAK_NODE = "leak_node"


@dataclass(frozen=True)
class SimulationRecipe:
    """Every knob of the simulation; the defaults are the embedded default dataset's recipe.

    Spreads are relative half-widths of a uniform draw (``0.1`` means a factor in
    ``[0.9, 1.1]``). Ranges are ``(min, max)`` with ``min <= max``. Sensor names are L-TOWN
    element IDs: junctions for pressure, links (pipes or pumps) for flow, tanks for level.
    """

    demand_scale_spread: float = 0.10  # whole-town demand multiplier, 1 +- spread per scenario
    base_demand_spread: float = 0.10  # each junction's base demands, 1 +- spread
    roughness_spread: float = 0.10  # each pipe's Hazen-Williams C, 1 +- spread
    pattern_noise: float = 0.05  # relative Gaussian noise on every 5-minute pattern value
    leak_probability: float = 0.75  # chance that a scenario has one leak
    leak_diameter_cm: tuple[float, float] = (0.8, 2.5)  # equivalent hole diameter (BattLeDIM)
    discharge_coefficient: float = 0.75  # Cd in C = Cd * A * sqrt(2 g)
    incipient_probability: float = 0.5  # chance a leak grows linearly instead of appearing whole
    incipient_ramp_hours: tuple[float, float] = (12.0, 96.0)  # time an incipient leak takes to grow
    repair_probability: float = 0.3  # chance a leak is repaired before the window ends
    warmup_days: int = 1  # simulated, then discarded (tanks and flows settle)
    observed_days: int = 7  # simulated and kept
    random_start_weekday: bool = True  # start the observed window on a random weekday
    window_minutes: int = 15  # one row per window: the mean of its 5-minute samples
    pressure_sensors: tuple[str, ...] = LTOWN_PRESSURE_SENSORS  # junctions, pressure in m
    flow_sensors: tuple[str, ...] = LTOWN_FLOW_SENSORS  # links, flow in L/s
    level_sensors: tuple[str, ...] = LTOWN_LEVEL_SENSORS  # tanks, water level in m
    pressure_noise_m: float = 0.1  # Gaussian sensor noise on each 5-minute pressure sample
    flow_noise_relative: float = 0.01  # relative Gaussian noise on each flow sample
    level_noise_m: float = 0.01  # Gaussian sensor noise on each level sample
    decimals: int = 3  # sensor values are rounded to this many decimals (mm, mL/s)

    def __post_init__(self) -> None:
        for name in ("demand_scale_spread", "base_demand_spread", "roughness_spread"):
            _check_number(
                name,
                getattr(self, name),
                low=0.0,
                high=1.0,
                high_open=True,
                expected="a relative spread in [0, 1)",
            )
        _check_number(
            "pattern_noise",
            self.pattern_noise,
            low=0.0,
            high=1.0,
            expected="a relative standard deviation in [0, 1]",
        )
        for name in ("leak_probability", "incipient_probability", "repair_probability"):
            _check_number(
                name, getattr(self, name), low=0.0, high=1.0, expected="a probability in [0, 1]"
            )
        _check_range("leak_diameter_cm", self.leak_diameter_cm, unit="cm")
        _check_range("incipient_ramp_hours", self.incipient_ramp_hours, unit="h")
        _check_number(
            "discharge_coefficient",
            self.discharge_coefficient,
            low=0.0,
            high=1.0,
            low_open=True,
            expected="a discharge coefficient in (0, 1]",
        )
        for name in ("pressure_noise_m", "flow_noise_relative", "level_noise_m"):
            _check_number(name, getattr(self, name), low=0.0, expected="a number >= 0")
        _check_int("warmup_days", self.warmup_days, low=0, expected="a whole number of days >= 0")
        _check_int(
            "observed_days", self.observed_days, low=1, expected="a whole number of days >= 1"
        )
        _check_int("decimals", self.decimals, low=0, high=12, expected="an integer in [0, 12]")
        if not isinstance(self.random_start_weekday, bool):
            raise ValueError(
                f"random_start_weekday must be true or false, got {self.random_start_weekday!r}"
            )
        _check_int(
            "window_minutes",
            self.window_minutes,
            low=STEP_S // 60,
            expected="a multiple of 5 minutes that divides a day (5, 15, 30, 60, ...)",
        )
        if (self.window_minutes * 60) % STEP_S or (24 * 60) % self.window_minutes:
            raise ValueError(
                "window_minutes must be a multiple of 5 minutes that divides a day "
                f"(5, 15, 30, 60, ...), got {self.window_minutes!r}"
            )
        self._check_sensors()

    def _check_sensors(self) -> None:
        kinds = (
            ("pressure_sensors", self.pressure_sensors, "junction"),
            ("flow_sensors", self.flow_sensors, "link"),
            ("level_sensors", self.level_sensors, "tank"),
        )
        for name, sensors, _ in kinds:
            if isinstance(sensors, str) or not all(isinstance(s, str) for s in sensors):
                raise ValueError(f"{name} must be a tuple of element IDs, got {sensors!r}")
            if len(set(sensors)) != len(sensors):
                raise ValueError(f"{name} lists a sensor twice: {sensors!r}")
        if not (self.pressure_sensors or self.flow_sensors or self.level_sensors):
            raise ValueError(
                "pressure_sensors, flow_sensors and level_sensors are all empty; "
                "expected at least one sensor"
            )
        ids = _network_ids()
        if ids is None:  # the simulate extra is not installed; checked again when simulating
            return
        for name, sensors, kind in kinds:
            unknown = [s for s in sensors if s not in ids[kind]]
            if unknown:
                example = sorted(ids[kind])[0]
                raise ValueError(
                    f"{name} has unknown {kind} name(s) {unknown!r}; expected {kind} IDs of "
                    f"L-TOWN such as {example!r}"
                )

    @property
    def sensor_columns(self) -> list[str]:
        """Return the sensor column names, in table order."""
        return [
            *(f"p_{s.lower()}" for s in self.pressure_sensors),
            *(f"q_{s.lower()}" for s in self.flow_sensors),
            *(f"h_{s.lower()}" for s in self.level_sensors),
        ]

    def columns(self) -> list[str]:
        """Return every column of a simulated table, in order."""
        return [
            "scenario_id",
            "timestamp",
            *self.sensor_columns,
            "hour_sin",
            "hour_cos",
            "day_of_week",
            "leaks",
        ]

    def to_dict(self) -> dict[str, Any]:
        """Return the knobs as plain JSON values."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def _check_number(
    name: str,
    value: Any,
    *,
    expected: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _check_int(name: str, value: Any, *, expected: str, low: int, high: int | None = None) -> None:
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= low
    if not ok or (high is not None and value > high):
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _check_range(name: str, value: Any, *, unit: str) -> None:
    expected = f"(min, max) in {unit} with 0 < min <= max"
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    low, high = value
    for v in value:
        _check_number(name, v, low=0.0, low_open=True, expected=expected)
    if low > high:
        raise ValueError(f"{name} must be {expected}; the range is reversed: {value!r}")


def network_path() -> Path:
    """Return the path of ``L-TOWN.inp`` inside the installed ``epyt`` package.

    Raises:
        ModuleNotFoundError: ``epyt`` (the ``simulate`` extra) is not installed.
    """
    spec = importlib.util.find_spec("epyt")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the L-TOWN network comes from the 'epyt' package: install the simulate extra "
            "(pip install 'leaklib[simulate]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "networks" / NETWORK_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{NETWORK_FILE} is missing from the epyt package (looked at {path})"
        )
    return path


@cache
def _network_ids() -> dict[str, frozenset[str]] | None:
    """Return L-TOWN's junction, link and tank IDs read from the .inp file, or None if absent."""
    try:
        path = network_path()
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    sections: dict[str, set[str]] = {}
    current = ""
    for line in path.read_text(encoding="latin-1").splitlines():
        text = line.split(";", 1)[0].strip()
        if not text:
            continue
        if text.startswith("["):
            current = text.upper()
            continue
        sections.setdefault(current, set()).add(text.split()[0])
    links = (
        sections.get("[PIPES]", set())
        | sections.get("[PUMPS]", set())
        | sections.get("[VALVES]", set())
    )
    return {
        "junction": frozenset(sections.get("[JUNCTIONS]", set())),
        "link": frozenset(links),
        "tank": frozenset(sections.get("[TANKS]", set())),
    }


def simulation_available() -> tuple[bool, str]:
    """Return whether ``wntr`` and ``epyt`` can be used, and why not if they cannot."""
    for module in ("wntr", "epyt"):
        if importlib.util.find_spec(module) is None:
            return False, f"{module} is not installed (the simulate extra)"
    try:
        # the simulate extra may be installed and still fail to import
        import wntr  # noqa: F401
    except Exception as exc:  # wntr fails to import without `six`, for one
        return False, f"wntr cannot be imported: {exc}"
    return True, ""


class LeakKind(StrEnum):
    """How a leak's hole opens: all at once, or growing linearly over a ramp."""

    ABRUPT = "abrupt"
    INCIPIENT = "incipient"


def open_fraction(
    t_s: float, *, kind: LeakKind, start_s: float, end_s: float | None, ramp_s: float
) -> float:
    """Return the share of a leak's full hole area open at ``t_s`` seconds.

    The leak is closed before ``start_s`` and from ``end_s`` (its repair) on. An incipient leak
    opens ``STEP_S / ramp_s`` of its area in its first 5-minute step and grows linearly after
    that, so every sample labelled as leaking has some leak flow.
    """
    if t_s < start_s or (end_s is not None and t_s >= end_s):
        return 0.0
    if kind is LeakKind.ABRUPT:
        return 1.0
    return min(1.0, (t_s - start_s + STEP_S) / ramp_s)


def emitter_coefficient(recipe: SimulationRecipe, diameter_cm: float) -> float:
    """Return the emitter coefficient ``Cd * A * sqrt(2 g)`` of a hole, in L/s per m^0.5."""
    area_m2 = math.pi * (diameter_cm / 100 / 2) ** 2
    return recipe.discharge_coefficient * area_m2 * math.sqrt(2 * GRAVITY) * 1000


@dataclass(frozen=True)
class _Draws:
    """What one scenario's seed decides before the solver runs."""

    demand_scale: float
    start_weekday_offset: int  # days after CALENDAR_ORIGIN that the observed window starts
    node_factors: np.ndarray
    pipe_factors: np.ndarray
    leak_pipe: str | None
    leak_kind: LeakKind | None  # None: no leak
    leak_diameter_cm: float
    ramp_s: float
    leak_start_step: int  # 5-minute step of the observed window at which the leak starts
    repair_step: int | None  # 5-minute step at which it is repaired, if it is

    def fraction(self, t_obs: float) -> float:
        """Return the share of the leak area open at ``t_obs`` seconds into the observed window."""
        if self.leak_kind is None:
            return 0.0
        return open_fraction(
            t_obs,
            kind=self.leak_kind,
            start_s=self.leak_start_step * STEP_S,
            end_s=None if self.repair_step is None else self.repair_step * STEP_S,
            ramp_s=self.ramp_s,
        )


def _draw(
    recipe: SimulationRecipe, rng: np.random.Generator, *, n_junctions: int, pipes: Sequence[str]
) -> _Draws:
    """Draw every random choice of a scenario, always in the same order and number."""
    s = recipe.demand_scale_spread
    demand_scale = float(rng.uniform(1 - s, 1 + s))
    weekday = int(rng.integers(7))
    node_factors = rng.uniform(
        1 - recipe.base_demand_spread, 1 + recipe.base_demand_spread, n_junctions
    )
    pipe_factors = rng.uniform(1 - recipe.roughness_spread, 1 + recipe.roughness_spread, len(pipes))
    u_leak, u_kind, u_repair, u_repair_time = rng.random(4)
    pipe_index = int(rng.integers(len(pipes)))
    diameter = float(rng.uniform(*recipe.leak_diameter_cm))
    ramp_h = float(rng.uniform(*recipe.incipient_ramp_hours))
    n_obs = recipe.observed_days * 86_400 // STEP_S
    start = int(rng.integers(n_obs))
    has_leak = u_leak < recipe.leak_probability
    repair: int | None = None
    if has_leak and u_repair < recipe.repair_probability and start + 1 < n_obs:
        repair = start + 1 + int(u_repair_time * (n_obs - start - 1))
    kind = (
        None
        if not has_leak
        else (LeakKind.INCIPIENT if u_kind < recipe.incipient_probability else LeakKind.ABRUPT)
    )
    return _Draws(
        demand_scale=demand_scale,
        start_weekday_offset=weekday if recipe.random_start_weekday else 0,
        node_factors=node_factors,
        pipe_factors=pipe_factors,
        leak_pipe=pipes[pipe_index] if has_leak else None,
        leak_kind=kind,
        leak_diameter_cm=diameter,
        ramp_s=ramp_h * 3600.0,
        leak_start_step=start,
        repair_step=repair,
    )


@dataclass(frozen=True)
class ScenarioMeta:
    """What one scenario drew and what its leak did: one row of the scenario table."""

    scenario_id: int
    leak_pipe: str | None
    leak_kind: LeakKind | None
    leak_diameter_cm: float  # NaN without a leak
    leak_ramp_hours: float  # NaN unless incipient
    leak_start: pd.Timestamp  # NaT without a leak
    leak_end: pd.Timestamp  # the repair; NaT if not repaired in the window
    leak_peak_flow_lps: float  # largest leak outflow during the observed window
    leak_rows: int  # rows labelled 1
    demand_scale: float
    start_weekday: int  # 0 = Monday, of the first observed day
    first_timestamp: pd.Timestamp

    def to_row(self) -> dict[str, Any]:
        """Return the scenario table's row: plain values, ``""`` and ``"none"`` for no leak."""
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        row["leak_pipe"] = self.leak_pipe or ""
        row["leak_kind"] = str(self.leak_kind) if self.leak_kind else "none"
        return row


def _check_seed_and_id(*, seed: Any, scenario_id: Any) -> None:
    _check_int("seed", seed, low=0, expected="an integer >= 0")
    _check_int("scenario_id", scenario_id, low=0, expected="an integer >= 0")


def load_network() -> Any:
    """Return a fresh ``wntr`` model of L-TOWN, checked for its 5-minute steps."""
    # the optional simulate extra: imported only when a network is solved
    import wntr

    wn = wntr.network.WaterNetworkModel(str(network_path()))
    if wn.options.time.hydraulic_timestep != STEP_S or wn.options.time.pattern_timestep != STEP_S:
        raise ValueError(f"{NETWORK_FILE} must have 5-minute hydraulic and pattern steps")
    return wn


def perturb_network(
    wn: Any,
    *,
    demand_scale: float,
    node_factors: np.ndarray,
    pipe_factors: np.ndarray,
    patterns: Callable[[np.ndarray], np.ndarray],
    n_steps: int,
    leak_pipes: Sequence[str] = (),
    leak_nodes: Sequence[str] = (),
) -> None:
    """Perturb the network in place and split each leaking pipe at its midpoint.

    Args:
        wn: The ``wntr`` model (from ``load_network``).
        demand_scale: Whole-town demand multiplier.
        node_factors: One factor per junction on its base demands (``wn.junction_name_list``).
        pipe_factors: One factor per pipe on its roughness (``wn.pipe_name_list``).
        patterns: Maps a pattern's nominal multipliers to its ``n_steps`` simulated values;
            called once per pattern, in ``wn.pattern_name_list`` order.
        n_steps: 5-minute steps to simulate.
        leak_pipes: Pipes that leak; each gets a node ``leak_nodes[i]`` at its midpoint.
        leak_nodes: Names of those nodes.
    """
    # the optional simulate extra: imported only when a network is solved
    import wntr

    wn.options.hydraulic.demand_multiplier = demand_scale
    for name, factor in zip(wn.junction_name_list, node_factors, strict=True):
        for demand in wn.get_node(name).demand_timeseries_list:
            demand.base_value = demand.base_value * float(factor)
    for name, factor in zip(wn.pipe_name_list, pipe_factors, strict=True):
        pipe = wn.get_link(name)
        pipe.roughness = pipe.roughness * float(factor)
    for name in list(wn.pattern_name_list):
        pattern = wn.get_pattern(name)
        pattern.multipliers = patterns(np.asarray(pattern.multipliers, dtype=float))
    wn.options.time.duration = n_steps * STEP_S
    wn.options.time.pattern_start = 0
    wn.options.time.report_start = 0
    for pipe_name, node in zip(leak_pipes, leak_nodes, strict=True):
        wntr.morph.split_pipe(
            wn,
            pipe_name,
            f"{pipe_name}_leak_half",
            node,
            add_pipe_at_end=True,
            split_at_point=0.5,
            return_copy=False,
        )


def solve(
    wn: Any,
    recipe: SimulationRecipe,
    *,
    n_steps: int,
    leak_nodes: Sequence[str] = (),
    emitters: Callable[[int], Sequence[float]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve the network with EPANET, stepping every 5 minutes, and sample the sensors.

    Args:
        wn: The perturbed model.
        recipe: Which sensors to sample.
        n_steps: 5-minute samples to take.
        leak_nodes: The leak nodes, whose emitter coefficients follow ``emitters``.
        emitters: Maps a simulation time (s) to one emitter coefficient (L/s/m^0.5) per leak
            node; it is asked before each solver step, so coefficients follow ramps and repairs.

    Returns:
        The raw samples, ``(n_steps, sensors)`` in ``recipe.sensor_columns`` order, and the
        leak outflow of each leak node at each sample, ``(n_steps, len(leak_nodes))`` in L/s.

    Raises:
        RuntimeError: The solver skipped a 5-minute sample.
    """
    # the optional simulate extra: imported only when a network is solved
    import wntr
    from wntr.epanet.toolkit import ENepanet  # the same optional extra

    n_p, n_q = len(recipe.pressure_sensors), len(recipe.flow_sensors)
    samples = np.full((n_steps, n_p + n_q + len(recipe.level_sensors)), np.nan)
    leak_flow = np.zeros((n_steps, len(leak_nodes)))
    with tempfile.TemporaryDirectory(prefix="leak-sim-") as tmp:
        inp = os.path.join(tmp, "network.inp")
        wntr.network.write_inpfile(wn, inp, units="LPS")  # flows in L/s, pressures in m
        en = ENepanet()
        en.ENopen(inp, os.path.join(tmp, "network.rpt"), "")
        try:
            p_idx = [en.ENgetnodeindex(s) for s in recipe.pressure_sensors]
            q_idx = [en.ENgetlinkindex(s) for s in recipe.flow_sensors]
            h_idx = [en.ENgetnodeindex(s) for s in recipe.level_sensors]
            h_elev = [en.ENgetnodevalue(i, _EN_ELEVATION) for i in h_idx]
            leak_idx = [en.ENgetnodeindex(node) for node in leak_nodes]
            current = [0.0] * len(leak_idx)
            en.ENopenH()
            en.ENinitH(0)
            t_next = 0
            while True:
                if leak_idx and emitters is not None:
                    for j, wanted in enumerate(emitters(t_next)):
                        if wanted != current[j]:
                            en.ENsetnodevalue(leak_idx[j], _EN_EMITTER, wanted)
                            current[j] = wanted
                t = en.ENrunH()
                if t % STEP_S == 0 and t // STEP_S < n_steps:
                    k = t // STEP_S
                    row = samples[k]
                    for j, i in enumerate(p_idx):
                        row[j] = en.ENgetnodevalue(i, _EN_PRESSURE)
                    for j, i in enumerate(q_idx):
                        row[n_p + j] = en.ENgetlinkvalue(i, _EN_FLOW)
                    for j, (i, z) in enumerate(zip(h_idx, h_elev, strict=True)):
                        row[n_p + n_q + j] = en.ENgetnodevalue(i, _EN_HEAD) - z
                    for j, i in enumerate(leak_idx):
                        # EPANET keeps reporting a closed emitter's last flow (its hydraulics
                        # do drop it), so a closed leak's outflow is taken as 0
                        if current[j] > 0:
                            leak_flow[k, j] = en.ENgetnodevalue(i, _EN_DEMAND)
                step = en.ENnextH()
                if step <= 0:
                    break
                t_next = t + step
            en.ENcloseH()
        finally:
            en.ENclose()
    if np.isnan(samples).any():
        raise RuntimeError("the solver skipped 5-minute samples")
    return samples, leak_flow


def observe(
    samples: np.ndarray, recipe: SimulationRecipe, *, rng: np.random.Generator
) -> np.ndarray:
    """Add sensor noise to 5-minute samples, average them into windows and round.

    ``samples`` is changed in place. Returns one row per ``recipe.window_minutes`` window.
    """
    n_p, n_q = len(recipe.pressure_sensors), len(recipe.flow_sensors)
    noise = rng.standard_normal(samples.shape)
    samples[:, :n_p] += recipe.pressure_noise_m * noise[:, :n_p]
    samples[:, n_p : n_p + n_q] *= 1 + recipe.flow_noise_relative * noise[:, n_p : n_p + n_q]
    samples[:, n_p + n_q :] += recipe.level_noise_m * noise[:, n_p + n_q :]
    per_window = recipe.window_minutes * 60 // STEP_S
    n_rows = len(samples) // per_window
    return np.round(samples.reshape(n_rows, per_window, -1).mean(axis=1), recipe.decimals)


def windows_any(active: np.ndarray, recipe: SimulationRecipe) -> np.ndarray:
    """Return, per window, whether any of its 5-minute samples is true."""
    per_window = recipe.window_minutes * 60 // STEP_S
    return active.reshape(len(active) // per_window, per_window).any(axis=1)


def sensor_table(
    stamps: pd.DatetimeIndex, values: np.ndarray, leaks: np.ndarray, recipe: SimulationRecipe
) -> pd.DataFrame:
    """Return ``timestamp``, the sensor columns, the clock features and the ``leaks`` target."""
    stamps = stamps.as_unit("ns")
    hour = stamps.hour.to_numpy() + stamps.minute.to_numpy() / 60
    frame = pd.DataFrame({"timestamp": stamps})
    sensor_frame = pd.DataFrame(values, columns=recipe.sensor_columns, dtype=np.float64)
    frame = pd.concat([frame, sensor_frame], axis=1)
    frame["hour_sin"] = np.sin(2 * np.pi * hour / 24)
    frame["hour_cos"] = np.cos(2 * np.pi * hour / 24)
    frame["day_of_week"] = stamps.day_of_week.to_numpy().astype(np.int64)
    frame["leaks"] = leaks.astype(np.int8)
    return frame


def simulate_scenario(
    recipe: SimulationRecipe, scenario_id: int, *, seed: int = DEFAULT_SEED
) -> tuple[pd.DataFrame, ScenarioMeta]:
    """Simulate one scenario and return its rows and what was drawn.

    Args:
        recipe: The knobs.
        scenario_id: Which scenario; with ``seed`` it fixes every random draw.
        seed: The dataset's seed.

    Returns:
        The rows (columns ``recipe.columns()``) and the scenario's metadata.
    """
    _check_seed_and_id(seed=seed, scenario_id=scenario_id)
    rng_params, rng_patterns, rng_sensors = (
        np.random.default_rng(child)
        for child in np.random.SeedSequence([seed, scenario_id]).spawn(3)
    )
    wn = load_network()
    draws = _draw(
        recipe, rng_params, n_junctions=len(wn.junction_name_list), pipes=wn.pipe_name_list
    )
    steps_per_day = 86_400 // STEP_S
    n_warm = recipe.warmup_days * steps_per_day
    n_obs = recipe.observed_days * steps_per_day
    n_sim = n_warm + n_obs
    pattern_offset = (draws.start_weekday_offset - recipe.warmup_days) * steps_per_day

    def patterns(nominal: np.ndarray) -> np.ndarray:
        values = nominal[(pattern_offset + np.arange(n_sim)) % len(nominal)]
        noise = rng_patterns.standard_normal(n_sim)
        return np.clip(values * (1 + recipe.pattern_noise * noise), 0, None)

    leak_nodes = [_LEAK_NODE] if draws.leak_pipe is not None else []
    perturb_network(
        wn,
        demand_scale=draws.demand_scale,
        node_factors=draws.node_factors,
        pipe_factors=draws.pipe_factors,
        patterns=patterns,
        n_steps=n_sim,
        leak_pipes=[draws.leak_pipe] if draws.leak_pipe is not None else [],
        leak_nodes=leak_nodes,
    )
    full_emitter = emitter_coefficient(recipe, draws.leak_diameter_cm)
    try:
        samples, leak_flow = solve(
            wn,
            recipe,
            n_steps=n_sim,
            leak_nodes=leak_nodes,
            emitters=lambda t: [full_emitter * draws.fraction(t - n_warm * STEP_S)],
        )
    except RuntimeError as exc:
        raise RuntimeError(f"scenario {scenario_id}: {exc}") from exc

    values = observe(samples[n_warm:], recipe, rng=rng_sensors)
    leaks = windows_any(np.array([draws.fraction(k * STEP_S) > 0 for k in range(n_obs)]), recipe)
    first = CALENDAR_ORIGIN + pd.Timedelta(days=draws.start_weekday_offset)
    stamps = pd.DatetimeIndex(
        first + pd.to_timedelta(np.arange(len(values)) * recipe.window_minutes, unit="min")
    )
    frame = sensor_table(stamps, values, leaks, recipe)
    frame.insert(0, "scenario_id", np.full(len(frame), scenario_id, dtype=np.int64))
    return frame, _scenario_meta(draws, scenario_id, first, leak_flow[n_warm:, :], leaks)


def _scenario_meta(
    draws: _Draws,
    scenario_id: int,
    first: pd.Timestamp,
    leak_flow: np.ndarray,
    leaks: np.ndarray,
) -> ScenarioMeta:
    has_leak = draws.leak_kind is not None
    return ScenarioMeta(
        scenario_id=scenario_id,
        leak_pipe=draws.leak_pipe,
        leak_kind=draws.leak_kind,
        leak_diameter_cm=round(draws.leak_diameter_cm, 4) if has_leak else math.nan,
        leak_ramp_hours=round(draws.ramp_s / 3600, 2)
        if draws.leak_kind is LeakKind.INCIPIENT
        else math.nan,
        leak_start=first + pd.Timedelta(seconds=draws.leak_start_step * STEP_S)
        if has_leak
        else pd.NaT,
        leak_end=first + pd.Timedelta(seconds=draws.repair_step * STEP_S)
        if has_leak and draws.repair_step is not None
        else pd.NaT,
        leak_peak_flow_lps=round(float(leak_flow.max()), 3) if has_leak else math.nan,
        leak_rows=int(leaks.sum()),
        demand_scale=round(draws.demand_scale, 4),
        start_weekday=int(first.day_of_week),
        first_timestamp=first,
    )


def _simulate_one(
    job: tuple[SimulationRecipe, int, int],
) -> tuple[int, pd.DataFrame, ScenarioMeta]:
    recipe, scenario_id, seed = job
    frame, meta = simulate_scenario(recipe, scenario_id, seed=seed)
    return scenario_id, frame, meta


def _check_ready(recipe: SimulationRecipe) -> None:
    """Fail early, with a clear message, if the simulation cannot run."""
    ok, why = simulation_available()
    if not ok:
        raise ModuleNotFoundError(
            f"cannot simulate: {why}; install the simulate extra (pip install 'leaklib[simulate]')"
        )
    recipe._check_sensors()


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


def simulate_frames(
    *,
    recipe: SimulationRecipe | None = None,
    scenarios: int = DEFAULT_SCENARIOS,
    seed: int = DEFAULT_SEED,
    workers: int = 1,
    first_scenario: int = 0,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate scenarios ``first_scenario .. first_scenario + scenarios - 1`` in worker processes.

    Returns:
        The rows sorted by ``scenario_id, timestamp``, and one metadata row per scenario.
    """
    recipe = SimulationRecipe() if recipe is None else recipe
    _check_int("scenarios", scenarios, low=1, expected="an integer >= 1")
    _check_int("workers", workers, low=1, expected="an integer >= 1")
    _check_int("first_scenario", first_scenario, low=0, expected="an integer >= 0")
    _check_int("seed", seed, low=0, expected="an integer >= 0")
    _check_ready(recipe)
    jobs = [(recipe, sid, seed) for sid in range(first_scenario, first_scenario + scenarios)]
    results = run_in_workers(
        _simulate_one, jobs, workers=workers, progress=progress, unit="scenario"
    )
    frame = pd.concat([frame for _, frame, _ in results], ignore_index=True)
    frame = frame.sort_values(["scenario_id", "timestamp"], kind="stable", ignore_index=True)
    meta = pd.DataFrame([meta.to_row() for _, _, meta in results])
    return frame, meta


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


def companion_paths(out: Path) -> tuple[Path, Path]:
    """Return the scenario table and SHA-256 file written next to a dataset."""
    return out.with_name(out.stem + ".scenarios.csv"), out.with_name(out.name + ".sha256")


def simulate_dataset(
    *,
    recipe: SimulationRecipe | None = None,
    scenarios: int = DEFAULT_SCENARIOS,
    seed: int = DEFAULT_SEED,
    workers: int = 1,
    out: str | Path = DEFAULT_OUT,
    progress: bool = True,
) -> Path:
    """Simulate a dataset and write it, its scenario table and its SHA-256.

    Writes ``out`` (Parquet), ``<stem>.scenarios.csv`` and ``<name>.sha256`` (sha256sum format)
    next to it. The bytes depend only on the recipe, ``scenarios`` and ``seed`` (and the versions
    of the solver and pyarrow), not on ``workers``.

    Args:
        recipe: The knobs; the default dataset's recipe if None.
        scenarios: How many scenarios (ids 0 .. scenarios - 1).
        seed: Seed of the whole dataset.
        workers: Worker processes.
        out: Where the Parquet file goes (must end in .parquet).
        progress: Show a tqdm progress bar.

    Returns:
        The path of the Parquet file.
    """
    out = Path(out)
    if out.suffix != ".parquet":
        raise ValueError(f"out must be a path ending in .parquet, got {str(out)!r}")
    recipe = SimulationRecipe() if recipe is None else recipe
    started = time.perf_counter()
    frame, meta = simulate_frames(
        recipe=recipe, scenarios=scenarios, seed=seed, workers=workers, progress=progress
    )
    provenance = {
        "leaklib.simulate.recipe": json.dumps(recipe.to_dict(), sort_keys=True),
        "leaklib.simulate.seed": str(seed),
        "leaklib.simulate.scenarios": str(scenarios),
        "leaklib.simulate.network": f"{NETWORK_FILE} (BattLeDIM 2020, via epyt)",
    }
    write_parquet(frame, out, metadata=provenance)
    scenarios_csv, sha_file = companion_paths(out)
    meta.to_csv(scenarios_csv, index=False, lineterminator="\n", date_format="%Y-%m-%d %H:%M:%S")
    sha = file_sha256(out)
    sha_file.write_text(f"{sha}  {out.name}\n", encoding="utf-8")
    log.info(
        "simulated %d scenarios (%d rows, %.1f%% leak rows) in %.1f s with %d worker(s); "
        "wrote %s (%d bytes, sha256 %s)",
        scenarios,
        len(frame),
        100 * frame["leaks"].mean(),
        time.perf_counter() - started,
        workers,
        out,
        out.stat().st_size,
        sha,
    )
    return out
