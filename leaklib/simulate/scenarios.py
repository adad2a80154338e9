"""The scenario dataset: independent one-week scenarios, each with at most one leak.

One scenario is a perturbed copy of the town (demand scale, per-node base demand, per-pipe
roughness, noisy demand patterns), optionally one leak, one warm-up day that is discarded and
``observed_days`` observed days sampled every 5 minutes at the official sensor locations, then
averaged into ``window_minutes`` rows. Every scenario draws its randomness from
``numpy.random.SeedSequence([seed, scenario_id])``, so a dataset is byte-identical whatever the
number of worker processes or the order they finish in.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
    NETWORK_FILE,
    STEP_S,
    SimulationRecipe,
    _check_int,
    _check_ready,
)

log = logging.getLogger(__name__)


DEFAULT_SCENARIOS = 150


DEFAULT_OUT = Path("data/l-town-leaks.parquet")


# Day 0 of L-TOWN's one-week demand patterns is a Tuesday (its two low, late-rising days are
# days 4 and 5, i.e. Saturday and Sunday; BattLeDIM's historical year also began on Tuesday
# 2019-01-01). The synthetic calendar therefore starts on Tuesday 2019-01-01, so that
# `day_of_week` (Monday = 0) agrees with the weekends in the demand.
CALENDAR_ORIGIN = pd.Timestamp("2019-01-01")


_LEAK_NODE = "leak_node"


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
    n_sim = n_warm + recipe.observed_days * steps_per_day
    leak_nodes = _perturb(wn, recipe, draws, n_steps=n_sim, rng=rng_patterns)
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
    frame, leaks, first = _observed(
        samples[n_warm:], recipe, draws, scenario_id=scenario_id, rng=rng_sensors
    )
    return frame, _scenario_meta(draws, scenario_id, first, leak_flow[n_warm:, :], leaks)


def _perturb(
    wn: Any, recipe: SimulationRecipe, draws: _Draws, *, n_steps: int, rng: np.random.Generator
) -> list[str]:
    """Scale the network by the draws, give it noisy demand patterns, and place the leak.

    Returns the leak's nodes (none without a leak).
    """
    steps_per_day = 86_400 // STEP_S
    pattern_offset = (draws.start_weekday_offset - recipe.warmup_days) * steps_per_day

    def patterns(nominal: np.ndarray) -> np.ndarray:
        values = nominal[(pattern_offset + np.arange(n_steps)) % len(nominal)]
        noise = rng.standard_normal(n_steps)
        return np.clip(values * (1 + recipe.pattern_noise * noise), 0, None)

    leak_nodes = [_LEAK_NODE] if draws.leak_pipe is not None else []
    perturb_network(
        wn,
        demand_scale=draws.demand_scale,
        node_factors=draws.node_factors,
        pipe_factors=draws.pipe_factors,
        patterns=patterns,
        n_steps=n_steps,
        leak_pipes=[draws.leak_pipe] if draws.leak_pipe is not None else [],
        leak_nodes=leak_nodes,
    )
    return leak_nodes


def _observed(
    samples: np.ndarray,
    recipe: SimulationRecipe,
    draws: _Draws,
    *,
    scenario_id: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray, pd.Timestamp]:
    """The observed samples as sensor rows; also each window's leak flag and the first time."""
    n_obs = recipe.observed_days * (86_400 // STEP_S)
    values = observe(samples, recipe, rng=rng)
    leaks = windows_any(np.array([draws.fraction(k * STEP_S) > 0 for k in range(n_obs)]), recipe)
    first = CALENDAR_ORIGIN + pd.Timedelta(days=draws.start_weekday_offset)
    stamps = pd.DatetimeIndex(
        first + pd.to_timedelta(np.arange(len(values)) * recipe.window_minutes, unit="min")
    )
    frame = sensor_table(stamps, values, leaks, recipe)
    frame.insert(0, "scenario_id", np.full(len(frame), scenario_id, dtype=np.int64))
    return frame, leaks, first


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
