"""The simulation's knobs and L-TOWN itself: the recipe, the sensors, the network file.

``SimulationRecipe`` holds every physical knob (perturbation spreads, leak sizes, sensors,
noise, windows); its defaults are the embedded default dataset's recipe. The network is
``L-TOWN.inp`` from the ``epyt`` package, found without importing it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_SEED = 2020


NETWORK_FILE = "L-TOWN.inp"  # in epyt's networks/ folder


STEP_S = 300  # solver and sampling step, seconds (L-TOWN's hydraulic and pattern step)


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


def _check_ready(recipe: SimulationRecipe) -> None:
    """Fail early, with a clear message, if the simulation cannot run."""
    ok, why = simulation_available()
    if not ok:
        raise ModuleNotFoundError(
            f"cannot simulate: {why}; install the simulate extra (pip install 'leaklib[simulate]')"
        )
    recipe._check_sensors()
