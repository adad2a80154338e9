"""Simulate leaks on the L-TOWN network: the scenario dataset and the continuous stream.

No package reachable from this project ships measured leak data, so the default input tables are
documented, seeded physics simulations on a real benchmark network: L-TOWN from BattLeDIM 2020
(KIOS Research and Innovation Center of Excellence, University of Cyprus), as shipped by the
``epyt`` package, solved with EPANET 2.2 through ``wntr``'s toolkit bindings.

- ``recipe``: the physical knobs (``SimulationRecipe``), the sensors and the network file;
- ``hydraulics``: one solver run in phases (perturb the network, solve, observe the sensors);
- ``files``: byte-reproducible Parquet, SHA-256, ordered worker processes;
- ``scenarios``: independent one-week scenarios (``data/l-town-leaks.parquet``);
- ``schedule`` and ``stream``: one continuous stream, BattLeDIM-style years of scheduled leaks
  and sensor faults (``data/l-town-stream.parquet``).

This package re-exports their public names. ``wntr`` and ``epyt`` are the optional ``simulate``
extra: they are imported inside functions only.
"""

from leaklib.simulate.files import file_sha256, run_in_workers, write_parquet
from leaklib.simulate.hydraulics import (
    LeakKind,
    emitter_coefficient,
    load_network,
    observe,
    open_fraction,
    perturb_network,
    sensor_table,
    solve,
    windows_any,
)
from leaklib.simulate.recipe import (
    DEFAULT_SEED,
    LTOWN_FLOW_SENSORS,
    LTOWN_LEVEL_SENSORS,
    LTOWN_PRESSURE_SENSORS,
    NETWORK_FILE,
    STEP_S,
    SimulationRecipe,
    network_path,
    simulation_available,
)
from leaklib.simulate.scenarios import (
    CALENDAR_ORIGIN,
    DEFAULT_OUT,
    DEFAULT_SCENARIOS,
    ScenarioMeta,
    companion_paths,
    simulate_dataset,
    simulate_frames,
    simulate_scenario,
)
from leaklib.simulate.schedule import (
    CYPRUS_HOLIDAYS,
    SCHEDULE_KEY,
    FaultKind,
    Part,
    SensorFault,
    StreamLeak,
    StreamRecipe,
    StreamSchedule,
    check_stream_recipe,
    draw_schedule,
)
from leaklib.simulate.stream import (
    DEFAULT_STREAM_OUT,
    ChunkResult,
    StreamFrames,
    StreamPaths,
    apply_faults,
    simulate_chunk,
    simulate_stream,
    simulate_stream_frames,
    stream_companion_paths,
    stream_labels,
)

__all__ = [
    "CALENDAR_ORIGIN",
    "CYPRUS_HOLIDAYS",
    "DEFAULT_OUT",
    "DEFAULT_SCENARIOS",
    "DEFAULT_SEED",
    "DEFAULT_STREAM_OUT",
    "LTOWN_FLOW_SENSORS",
    "LTOWN_LEVEL_SENSORS",
    "LTOWN_PRESSURE_SENSORS",
    "NETWORK_FILE",
    "SCHEDULE_KEY",
    "STEP_S",
    "ChunkResult",
    "FaultKind",
    "LeakKind",
    "Part",
    "ScenarioMeta",
    "SensorFault",
    "SimulationRecipe",
    "StreamFrames",
    "StreamLeak",
    "StreamPaths",
    "StreamRecipe",
    "StreamSchedule",
    "apply_faults",
    "check_stream_recipe",
    "companion_paths",
    "draw_schedule",
    "emitter_coefficient",
    "file_sha256",
    "load_network",
    "network_path",
    "observe",
    "open_fraction",
    "perturb_network",
    "run_in_workers",
    "sensor_table",
    "simulate_chunk",
    "simulate_dataset",
    "simulate_frames",
    "simulate_scenario",
    "simulate_stream",
    "simulate_stream_frames",
    "simulation_available",
    "solve",
    "stream_companion_paths",
    "stream_labels",
    "windows_any",
    "write_parquet",
]
