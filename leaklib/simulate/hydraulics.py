"""One solver run in three phases: perturb the network, solve it with EPANET, observe the sensors.

A leak is an EPANET emitter on a node made by splitting the leaking pipe at its midpoint, with
coefficient ``C = Cd * A * sqrt(2 g)``; the solver is stepped every 5 minutes so that each
emitter follows its leak's ramp and repair. Both the scenarios and the stream use these phases.
``wntr`` is imported inside functions only.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from leaklib.simulate.recipe import (
    NETWORK_FILE,
    STEP_S,
    SimulationRecipe,
    network_path,
)

GRAVITY = 9.81  # m/s2


# EPANET 2.2 toolkit codes (epanet2_enums.h).
_EN_ELEVATION, _EN_EMITTER, _EN_DEMAND, _EN_HEAD, _EN_PRESSURE = 0, 3, 9, 10, 11


_EN_FLOW = 8


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
    if len(leak_pipes) != len(leak_nodes):
        raise ValueError(
            f"leak_pipes and leak_nodes must pair up, got {len(leak_pipes)} pipes and "
            f"{len(leak_nodes)} nodes"
        )
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

    samples = np.full((n_steps, len(recipe.sensor_columns)), np.nan)
    leak_flow = np.zeros((n_steps, len(leak_nodes)))
    with tempfile.TemporaryDirectory(prefix="leak-sim-") as tmp:
        inp = os.path.join(tmp, "network.inp")
        wntr.network.write_inpfile(wn, inp, units="LPS")  # flows in L/s, pressures in m
        en = ENepanet()
        en.ENopen(inp, os.path.join(tmp, "network.rpt"), "")
        try:
            _run_hydraulics(
                en,
                read=_sensor_reader(en, recipe),
                leak_idx=[en.ENgetnodeindex(node) for node in leak_nodes],
                emitters=emitters,
                samples=samples,
                leak_flow=leak_flow,
            )
        finally:
            en.ENclose()
    if np.isnan(samples).any():
        raise RuntimeError("the solver skipped 5-minute samples")
    return samples, leak_flow


def _sensor_reader(en: Any, recipe: SimulationRecipe) -> Callable[[], list[float]]:
    """Return a function that reads every sensor now, in ``recipe.sensor_columns`` order."""
    p_idx = [en.ENgetnodeindex(s) for s in recipe.pressure_sensors]
    q_idx = [en.ENgetlinkindex(s) for s in recipe.flow_sensors]
    h_idx = [en.ENgetnodeindex(s) for s in recipe.level_sensors]
    h_elev = [en.ENgetnodevalue(i, _EN_ELEVATION) for i in h_idx]

    def read() -> list[float]:
        return [
            *(en.ENgetnodevalue(i, _EN_PRESSURE) for i in p_idx),
            *(en.ENgetlinkvalue(i, _EN_FLOW) for i in q_idx),
            *(en.ENgetnodevalue(i, _EN_HEAD) - z for i, z in zip(h_idx, h_elev, strict=True)),
        ]

    return read


def _run_hydraulics(
    en: Any,
    *,
    read: Callable[[], list[float]],
    leak_idx: list[int],
    emitters: Callable[[int], Sequence[float]] | None,
    samples: np.ndarray,
    leak_flow: np.ndarray,
) -> None:
    """Run EPANET's hydraulics to the end: emitters set before each step, sensors every 5 min."""
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
        if t % STEP_S == 0 and t // STEP_S < len(samples):
            k = t // STEP_S
            samples[k] = read()
            for j, i in enumerate(leak_idx):
                # EPANET keeps reporting a closed emitter's last flow (its hydraulics do drop
                # it), so a closed leak's outflow is taken as 0
                if current[j] > 0:
                    leak_flow[k, j] = en.ENgetnodevalue(i, _EN_DEMAND)
        step = en.ENnextH()
        if step <= 0:
            break
        t_next = t + step
    en.ENcloseH()


def observe(
    samples: np.ndarray, recipe: SimulationRecipe, *, rng: np.random.Generator
) -> np.ndarray:
    """Add sensor noise to 5-minute samples, average them into windows and round.

    ``samples`` is changed in place. Returns one row per ``recipe.window_minutes`` window.

    Raises:
        ValueError: The samples do not fill whole windows.
    """
    per_window = recipe.window_minutes * 60 // STEP_S
    if len(samples) % per_window:
        raise ValueError(
            f"samples must fill whole {recipe.window_minutes}-minute windows "
            f"({per_window} samples each), got {len(samples)} samples"
        )
    n_p, n_q = len(recipe.pressure_sensors), len(recipe.flow_sensors)
    noise = rng.standard_normal(samples.shape)
    samples[:, :n_p] += recipe.pressure_noise_m * noise[:, :n_p]
    samples[:, n_p : n_p + n_q] *= 1 + recipe.flow_noise_relative * noise[:, n_p : n_p + n_q]
    samples[:, n_p + n_q :] += recipe.level_noise_m * noise[:, n_p + n_q :]
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
