"""leaklib.simulate: the knobs, the committed dataset, and byte-reproducibility (`leak simulate`: test_cli)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from leaklib.simulate import (
    SimulationRecipe,
    companion_paths,
    file_sha256,
    simulate_dataset,
    simulate_frames,
    simulate_scenario,
    simulation_available,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "l-town-leaks.parquet"
SCENARIOS_CSV, SHA_FILE = companion_paths(DATA)

_available, _why = simulation_available()
needs_solver = pytest.mark.skipif(not _available, reason=f"needs the simulate extra: {_why}")


def _committed_provenance() -> dict[str, str]:
    metadata = pq.read_schema(DATA).metadata or {}
    return {k.decode(): v.decode() for k, v in metadata.items() if k.startswith(b"leaklib.")}


# --- the knobs ------------------------------------------------------------------------------


def test_default_recipe_is_the_issue_recipe() -> None:
    recipe = SimulationRecipe()
    assert recipe.leak_probability == 0.75
    assert recipe.leak_diameter_cm == (0.8, 2.5)
    assert recipe.incipient_ramp_hours == (12.0, 96.0)
    assert (recipe.warmup_days, recipe.observed_days, recipe.window_minutes) == (1, 7, 15)
    assert len(recipe.pressure_sensors) == 33
    assert recipe.sensor_columns[-4:] == ["q_p227", "q_p235", "q_pump_1", "h_t1"]
    assert recipe.columns()[:3] == ["scenario_id", "timestamp", "p_n1"]
    assert recipe.columns()[-4:] == ["hour_sin", "hour_cos", "day_of_week", "leaks"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"leak_diameter_cm": (2.5, 0.8)}, r"leak_diameter_cm must be \(min, max\).*reversed"),
        ({"leak_diameter_cm": (0.0, 1.0)}, r"leak_diameter_cm must be \(min, max\) in cm"),
        ({"incipient_ramp_hours": (96.0, 12.0)}, r"incipient_ramp_hours .*reversed"),
        ({"leak_probability": 1.5}, r"leak_probability must be a probability in \[0, 1\], got 1.5"),
        ({"repair_probability": -0.1}, r"repair_probability must be a probability in \[0, 1\]"),
        ({"incipient_probability": float("nan")}, r"incipient_probability must be a probability"),
        (
            {"demand_scale_spread": 1.0},
            r"demand_scale_spread must be a relative spread in \[0, 1\)",
        ),
        ({"pressure_noise_m": -0.1}, r"pressure_noise_m must be a number >= 0"),
        ({"observed_days": 0}, r"observed_days must be a whole number of days >= 1"),
        ({"window_minutes": 7}, r"window_minutes must be a multiple of 5 minutes"),
        ({"pressure_sensors": ("n54", "n54")}, r"pressure_sensors lists a sensor twice"),
        ({"pressure_sensors": (), "flow_sensors": (), "level_sensors": ()}, r"all empty"),
    ],
)
def test_bad_knobs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulationRecipe(**changes)


@needs_solver
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"pressure_sensors": ("n9999",)},
            r"pressure_sensors has unknown junction name\(s\) \['n9999'\]",
        ),
        ({"flow_sensors": ("n54",)}, r"flow_sensors has unknown link name\(s\) \['n54'\]"),
        (
            {"level_sensors": ("R1",)},
            r"level_sensors has unknown tank name\(s\) \['R1'\]; expected tank IDs",
        ),
    ],
)
def test_unknown_sensor_names_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulationRecipe(**changes)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scenarios": 0}, r"scenarios must be an integer >= 1, got 0"),
        ({"scenarios": -5}, r"scenarios must be an integer >= 1, got -5"),
        ({"workers": 0}, r"workers must be an integer >= 1, got 0"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
        ({"out": "table.csv"}, r"out must be a path ending in .parquet"),
    ],
)
def test_simulate_dataset_refuses_bad_options(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    options = {"out": tmp_path / "x.parquet", "progress": False, **options}
    with pytest.raises(ValueError, match=message):
        simulate_dataset(**options)
    assert not list(tmp_path.iterdir())


def test_simulate_frames_refuses_bad_first_scenario() -> None:
    with pytest.raises(ValueError, match=r"first_scenario must be an integer >= 0"):
        simulate_frames(scenarios=1, first_scenario=-1, progress=False)


def test_simulate_scenario_refuses_a_negative_id() -> None:
    with pytest.raises(ValueError, match=r"scenario_id must be an integer >= 0, got -1"):
        simulate_scenario(SimulationRecipe(), -1)


def test_importing_the_module_does_not_import_the_solver() -> None:
    code = "import sys, leaklib.simulate; print(sorted({'wntr', 'epyt'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


# --- the committed dataset ------------------------------------------------------------------


def test_committed_sha256_matches_the_file() -> None:
    expected = SHA_FILE.read_text(encoding="utf-8").split()
    assert expected == [file_sha256(DATA), DATA.name]


def test_committed_dataset_has_the_documented_schema() -> None:
    frame = pd.read_parquet(DATA)
    recipe = SimulationRecipe()
    assert list(frame.columns) == recipe.columns()
    assert str(frame["timestamp"].dtype) == "datetime64[ns]"
    assert frame["leaks"].dtype == "int8" and set(frame["leaks"].unique()) == {0, 1}
    assert frame["scenario_id"].dtype == "int64" and frame["day_of_week"].dtype == "int64"
    assert all(frame[c].dtype == "float64" for c in recipe.sensor_columns)
    assert frame["day_of_week"].between(0, 6).all()
    assert frame.groupby("scenario_id").size().eq(7 * 96).all()
    assert frame[["scenario_id", "timestamp"]].equals(
        frame[["scenario_id", "timestamp"]].sort_values(["scenario_id", "timestamp"])
    )
    provenance = _committed_provenance()
    assert json.loads(provenance["leaklib.simulate.recipe"]) == recipe.to_dict()


def test_committed_labels_agree_with_the_scenario_table() -> None:
    frame = pd.read_parquet(DATA, columns=["scenario_id", "timestamp", "leaks"])
    scenarios = pd.read_csv(SCENARIOS_CSV, parse_dates=["leak_start", "leak_end"])
    assert len(scenarios) == frame["scenario_id"].nunique()
    for row in scenarios.itertuples():
        rows = frame[frame["scenario_id"] == row.scenario_id]
        labelled = rows["leaks"] == 1
        assert labelled.sum() == row.leak_rows
        if row.leak_kind == "none":
            continue
        window_end = rows["timestamp"] + pd.Timedelta(minutes=15)
        expected = window_end > row.leak_start
        if pd.notna(row.leak_end):
            expected &= rows["timestamp"] < row.leak_end
        assert labelled.equals(expected), f"scenario {row.scenario_id}"


@needs_solver
def test_regenerating_the_first_scenarios_gives_the_committed_rows() -> None:
    seed = int(_committed_provenance()["leaklib.simulate.seed"])
    frame, meta = simulate_frames(scenarios=3, seed=seed, workers=2, progress=False)
    committed = pd.read_parquet(DATA, filters=[("scenario_id", "<", 3)])
    pd.testing.assert_frame_equal(frame, committed, check_exact=True)
    committed_meta = SCENARIOS_CSV.read_text(encoding="utf-8").splitlines()[1:4]
    regenerated = meta.to_csv(index=False, lineterminator="\n", date_format="%Y-%m-%d %H:%M:%S")
    assert regenerated.splitlines()[1:] == committed_meta


@needs_solver
def test_output_bytes_do_not_depend_on_the_worker_count(tmp_path: Path) -> None:
    recipe = SimulationRecipe(warmup_days=1, observed_days=1)  # short weeks keep the test fast
    options = {"recipe": recipe, "scenarios": 2, "seed": 7, "progress": False}
    one = simulate_dataset(workers=1, out=tmp_path / "one" / "d.parquet", **options)
    two = simulate_dataset(workers=2, out=tmp_path / "two" / "d.parquet", **options)
    assert one.read_bytes() == two.read_bytes()
    assert pd.read_parquet(one)["scenario_id"].value_counts().to_dict() == {0: 96, 1: 96}
    for first, second in zip(companion_paths(one), companion_paths(two), strict=True):
        assert first.read_text(encoding="utf-8") == second.read_text(encoding="utf-8")
