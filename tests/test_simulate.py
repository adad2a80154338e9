"""leaklib.simulate: the knobs, the committed scenario dataset and stream, their byte-reproducibility,
the stream's schedule, and `leak simulate --stream` (the rest of `leak simulate`: test_cli)."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from leaklib import cli
from leaklib.simulate import (
    FaultKind,
    LeakKind,
    Part,
    SensorFault,
    SimulationRecipe,
    StreamRecipe,
    apply_faults,
    check_stream_recipe,
    companion_paths,
    draw_schedule,
    emitter_coefficient,
    file_sha256,
    load_network,
    observe,
    open_fraction,
    perturb_network,
    simulate_dataset,
    simulate_frames,
    simulate_scenario,
    simulate_stream,
    simulate_stream_frames,
    simulation_available,
    solve,
    stream_companion_paths,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "l-town-leaks.parquet"
SCENARIOS_CSV, SHA_FILE = companion_paths(DATA)
PATHS = stream_companion_paths(ROOT / "data" / "l-town-stream.parquet")

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


# --- the phases of a solver run -------------------------------------------------------------


def test_open_fraction_follows_start_ramp_and_repair() -> None:
    incipient = {"kind": LeakKind.INCIPIENT, "start_s": 600.0, "end_s": 6000.0, "ramp_s": 3000.0}
    assert open_fraction(300.0, **incipient) == 0.0
    assert open_fraction(600.0, **incipient) == 0.1  # one step of the ramp at once
    assert open_fraction(5000.0, **incipient) == 1.0
    assert open_fraction(6000.0, **incipient) == 0.0  # repaired
    assert open_fraction(700.0, **{**incipient, "kind": LeakKind.ABRUPT}) == 1.0


def test_observe_refuses_samples_that_do_not_fill_windows() -> None:
    recipe = SimulationRecipe()
    samples = np.zeros((4, len(recipe.sensor_columns)))
    with pytest.raises(ValueError, match=r"samples must fill whole 15-minute windows .*got 4"):
        observe(samples, recipe, rng=np.random.default_rng(0))


@needs_solver
def test_perturb_network_refuses_unpaired_leak_nodes() -> None:
    with pytest.raises(ValueError, match=r"leak_pipes and leak_nodes must pair up, got 1 pipes"):
        perturb_network(
            load_network(),
            demand_scale=1.0,
            node_factors=np.ones(1),
            pipe_factors=np.ones(1),
            patterns=lambda nominal: nominal,
            n_steps=1,
            leak_pipes=["p354"],
        )


@needs_solver
def test_a_repaired_leak_stops_leaking_in_the_hydraulics_and_the_reported_flow() -> None:
    recipe = SimulationRecipe()
    coefficient = emitter_coefficient(recipe, 2.0)

    def run(opening: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        wn = load_network()
        n = 72  # six hours
        perturb_network(
            wn,
            demand_scale=1.0,
            node_factors=np.ones(len(wn.junction_name_list)),
            pipe_factors=np.ones(len(wn.pipe_name_list)),
            patterns=lambda nominal: nominal[np.arange(n) % len(nominal)],
            n_steps=n,
            leak_pipes=["p354"],
            leak_nodes=["leak_1"],
        )
        first, end = opening
        return solve(
            wn,
            recipe,
            n_steps=n,
            leak_nodes=["leak_1"],
            emitters=lambda t: [coefficient if first <= t < end else 0.0],
        )

    never, repaired = run((0.0, 0.0)), run((3600.0, 7200.0))
    inflow = recipe.sensor_columns.index("q_p227"), recipe.sensor_columns.index("q_p235")
    during, after = 18, 40  # 5-minute samples: 1.5 h (open) and 3.3 h (repaired)
    assert repaired[1][during, 0] > 5  # L/s
    assert repaired[0][during, inflow].sum() > never[0][during, inflow].sum() + 5
    assert repaired[1][after, 0] == 0.0  # EPANET would report the last flow
    # back to the leak-free state, but for the water the tank did not get meanwhile (< 1 mm)
    np.testing.assert_allclose(repaired[0][after], never[0][after], atol=1e-3)


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


# === the stream ==============================================================================


def _stream_provenance() -> dict[str, str]:
    metadata = pq.read_schema(PATHS.table).metadata or {}
    return {k.decode(): v.decode() for k, v in metadata.items() if k.startswith(b"leaklib.")}


def _stream_leak_table() -> pd.DataFrame:
    return pd.read_csv(PATHS.leaks, parse_dates=["start", "end"])


def _schedule(seed: int = 2020, stream: StreamRecipe | None = None):
    wn = load_network()
    return draw_schedule(
        SimulationRecipe(),
        stream or StreamRecipe(),
        seed=seed,
        n_junctions=len(wn.junction_name_list),
        pipes=wn.pipe_name_list,
    )


# --- the stream's knobs --------------------------------------------------------------------


def test_default_stream_is_two_battledim_years_from_a_monday() -> None:
    stream = StreamRecipe()
    assert stream.first == pd.Timestamp("2018-01-01") and stream.first.day_name() == "Monday"
    assert (stream.days, stream.history_leaks, stream.evaluation_leaks) == (730, 14, 23)
    assert stream.part_steps() == {
        Part.HISTORY: (0, 365 * 288),
        Part.EVALUATION: (365 * 288, 730 * 288),
    }
    assert stream.n_chunks == 105  # 104 weeks and 2 days
    assert "2019-04-26" in stream.holidays and len(set(stream.holidays)) == len(stream.holidays)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"days": 1}, r"days must be a whole number of days >= 2, got 1"),
        ({"start": "2018-01-01 06:00"}, r"start must be an ISO date such as '2018-01-01'"),
        ({"start": "someday"}, r"start must be an ISO date"),
        ({"evaluation_start": "2021-01-01"}, r"evaluation_start must fall after start and before"),
        ({"evaluation_start": "2018-01-01"}, r"evaluation_start must fall after start"),
        ({"history_leaks": -1}, r"history_leaks must be an integer >= 0, got -1"),
        ({"leak_days": (120.0, 2.0)}, r"leak_days must be \(min, max\) in days.*reversed"),
        ({"incipient_ramp_days": (0.0, 3.0)}, r"incipient_ramp_days must be \(min, max\)"),
        ({"unrepaired_probability": 1.5}, r"unrepaired_probability must be a probability"),
        (
            {"seasonal_amplitude": 1.0},
            r"seasonal_amplitude must be a relative amplitude in \[0, 1\)",
        ),
        ({"seasonal_peak_day": 400}, r"seasonal_peak_day must be a day of the year in \[1, 366\]"),
        ({"holidays": ("2018-12-25", "xmas")}, r"holidays must be ISO dates .*got 'xmas'"),
        ({"holidays": "2018-12-25"}, r"holidays must be a tuple of ISO dates"),
        ({"drift_relative": (0.5, 1.5)}, r"drift_relative must stay below 1"),
        ({"chunk_days": 0}, r"chunk_days must be a whole number of days >= 1, got 0"),
    ],
)
def test_bad_stream_knobs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamRecipe(**changes)


@pytest.mark.parametrize(
    "changes",
    [{"leak_probability": 0.5}, {"observed_days": 3}, {"random_start_weekday": False}],
)
def test_scenario_only_knobs_are_refused_on_a_stream(changes: dict[str, object]) -> None:
    (name,) = changes
    with pytest.raises(ValueError, match=rf"{name} is a knob of the scenario dataset"):
        check_stream_recipe(SimulationRecipe(**changes))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"out": "stream.csv"}, r"out must be a path ending in .parquet"),
        ({"workers": 0}, r"workers must be an integer >= 1, got 0"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
    ],
)
def test_simulate_stream_refuses_bad_options(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    options = {"out": tmp_path / "s.parquet", "progress": False, **options}
    with pytest.raises(ValueError, match=message):
        simulate_stream(**options)
    assert not list(tmp_path.iterdir())


def test_simulate_stream_frames_refuses_too_many_chunks() -> None:
    with pytest.raises(
        ValueError, match=r"chunks must be a number of chunks in \[1, 105\], got 106"
    ):
        simulate_stream_frames(chunks=106, progress=False)


# --- the schedule ---------------------------------------------------------------------------


@needs_solver
def test_schedule_is_battledim_like() -> None:
    recipe, stream = SimulationRecipe(), StreamRecipe()
    schedule = _schedule()
    parts = stream.part_steps()
    assert [leak.leak_id for leak in schedule.leaks] == list(range(1, 38))
    assert [leak.start_step for leak in schedule.leaks] == sorted(
        leak.start_step for leak in schedule.leaks
    )
    assert len({leak.pipe for leak in schedule.leaks}) == 37  # distinct pipes
    for part, count in ((Part.HISTORY, 14), (Part.EVALUATION, 23)):
        leaks = [leak for leak in schedule.leaks if leak.part is part]
        first, end = parts[part]
        assert len(leaks) == count
        assert {leak.kind for leak in leaks} == set(LeakKind)
        assert all(first <= leak.start_step < end for leak in leaks)
        assert all(
            recipe.leak_diameter_cm[0] <= leak.diameter_cm <= recipe.leak_diameter_cm[1]
            for leak in leaks
        )
        repaired = [leak for leak in leaks if not leak.unrepaired]
        assert repaired and all(leak.start_step < leak.end_step < end for leak in repaired)
        assert any(a.overlaps(b.start_step, b.end_step or end) for a, b in combinations(leaks, 2))
        unrepaired = [leak for leak in leaks if leak.unrepaired]
        expected_end = None if end == stream.n_steps else end
        assert all(leak.end_step == expected_end for leak in unrepaired)
    assert any(leak.end_step is None for leak in schedule.leaks)  # some last past the end


@needs_solver
def test_schedule_depends_on_the_seed_only() -> None:
    first, again, other = _schedule(), _schedule(), _schedule(seed=7)
    assert first.leaks == again.leaks and first.faults == again.faults
    assert np.array_equal(first.pipe_factors, again.pipe_factors)
    assert first.leaks != other.leaks


@needs_solver
def test_schedule_has_each_fault_kind_in_each_part() -> None:
    stream = StreamRecipe()
    schedule = _schedule()
    for part, (first, end) in stream.part_steps().items():
        faults = [f for f in schedule.faults if f.part is part]
        assert sorted(f.kind for f in faults) == sorted(FaultKind)
        assert all(first // 3 <= f.first_row < f.end_row <= end // 3 for f in faults)


def test_apply_faults_freezes_blanks_and_drifts_only_their_sensor() -> None:
    recipe = SimulationRecipe()
    values = np.arange(10 * len(recipe.sensor_columns), dtype=float).reshape(10, -1) + 100
    before = values.copy()
    faults = (
        SensorFault(1, Part.HISTORY, "p_n1", FaultKind.STUCK, 2, 5, 0.0),
        SensorFault(2, Part.HISTORY, "p_n4", FaultKind.GAP, 3, 4, 0.0),
        SensorFault(3, Part.HISTORY, "h_t1", FaultKind.DRIFT, 6, 8, 0.1),
        SensorFault(4, Part.HISTORY, "q_p227", FaultKind.GAP, 9, 40, 0.0),  # cut at the end
    )
    apply_faults(values, faults, recipe)
    cols = recipe.sensor_columns
    p1, p4, t1, q = (cols.index(c) for c in ("p_n1", "p_n4", "h_t1", "q_p227"))
    assert (values[2:5, p1] == before[1, p1]).all() and values[5, p1] == before[5, p1]
    assert np.isnan(values[3, p4]) and not np.isnan(values[[2, 4], p4]).any()
    assert values[6, t1] == round(before[6, t1] * 1.05, 3)
    assert values[7, t1] == round(before[7, t1] * 1.1, 3) and values[8, t1] == before[8, t1]
    assert np.isnan(values[9, q])
    untouched = [j for j in range(len(cols)) if j not in (p1, p4, t1, q)]
    assert np.array_equal(values[:, untouched], before[:, untouched])


# --- the committed stream -------------------------------------------------------------------


def test_committed_stream_sha256_lists_every_file() -> None:
    lines = PATHS.sha256.read_text(encoding="utf-8").splitlines()
    files = (PATHS.table, PATHS.leaks, PATHS.volumes, PATHS.faults)
    assert lines == [f"{file_sha256(p)}  {p.name}" for p in files]
    assert sum(p.stat().st_size for p in files) < 20_000_000


def test_committed_stream_has_the_documented_schema() -> None:
    frame = pd.read_parquet(PATHS.table)
    recipe = SimulationRecipe()
    assert list(frame.columns) == recipe.columns()[1:]  # no scenario_id: one stream
    assert len(frame) == 730 * 96
    expected = pd.date_range("2018-01-01", periods=730 * 96, freq="15min")
    assert (frame["timestamp"].to_numpy() == expected.to_numpy()).all()
    assert frame["leaks"].dtype == "int8" and frame["day_of_week"].iloc[0] == 0  # a Monday
    provenance = _stream_provenance()
    assert json.loads(provenance["leaklib.simulate.recipe"]) == recipe.to_dict()
    assert json.loads(provenance["leaklib.simulate.stream"]) == StreamRecipe().to_dict()


def test_committed_stream_labels_are_the_leak_table_and_not_the_faults() -> None:
    frame = pd.read_parquet(PATHS.table)
    leaks = _stream_leak_table()
    window_end = frame["timestamp"] + pd.Timedelta(minutes=15)
    expected = pd.Series(False, index=frame.index)
    for row in leaks.itertuples():
        open_ = window_end > row.start
        if pd.notna(row.end):
            open_ &= frame["timestamp"] < row.end
        expected |= open_
    assert (frame["leaks"] == 1).equals(expected)
    faults = pd.read_csv(PATHS.faults, parse_dates=["start", "end"])
    assert sorted(faults["kind"]) == sorted(["stuck", "gap", "drift"] * 2)
    for row in faults.itertuples():
        during = (frame["timestamp"] >= row.start) & (frame["timestamp"] < row.end)
        values = frame.loc[during, row.column]
        if row.kind == "gap":
            assert values.isna().all()
        elif row.kind == "stuck":
            assert values.nunique() == 1
    assert frame.drop(columns=faults["column"]).notna().all().all()


def test_committed_stream_volumes_agree_with_the_leak_table() -> None:
    volumes = pd.read_parquet(PATHS.volumes)
    leaks = _stream_leak_table().set_index("leak_id")
    assert list(volumes.columns) == ["leak_id", "timestamp", "volume_m3"]
    assert (volumes["volume_m3"] > 0).all()
    totals = volumes.groupby("leak_id")["volume_m3"].sum()
    assert np.allclose(totals, leaks.loc[totals.index, "volume_m3"], atol=0.01)
    joined = volumes.join(leaks[["start", "end"]], on="leak_id")
    assert (joined["timestamp"] + pd.Timedelta(minutes=15) > joined["start"]).all()
    assert ((joined["timestamp"] < joined["end"]) | joined["end"].isna()).all()


@needs_solver
def test_regenerating_the_first_two_chunks_gives_the_committed_rows() -> None:
    seed = int(_stream_provenance()["leaklib.simulate.seed"])
    frames = simulate_stream_frames(seed=seed, chunks=2, workers=2, progress=False)
    committed = pd.read_parquet(PATHS.table).iloc[: 2 * 7 * 96]
    pd.testing.assert_frame_equal(frames.table, committed, check_exact=True)
    volumes = pd.read_parquet(PATHS.volumes)
    volumes = volumes[volumes["timestamp"] < pd.Timestamp("2018-01-15")].reset_index(drop=True)
    pd.testing.assert_frame_equal(frames.volumes, volumes, check_exact=True)


@needs_solver
def test_stream_bytes_do_not_depend_on_the_worker_count(tmp_path: Path) -> None:
    stream = StreamRecipe(
        days=2, evaluation_start="2018-01-02", history_leaks=1, evaluation_leaks=1, chunk_days=1
    )
    options = {"stream": stream, "seed": 7, "progress": False}
    one = simulate_stream(workers=1, out=tmp_path / "one" / "s.parquet", **options)
    two = simulate_stream(workers=2, out=tmp_path / "two" / "s.parquet", **options)
    for first, second in zip(one, two, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name
    assert len(pd.read_csv(one.leaks)) == 2


# --- leak simulate --stream ----------------------------------------------------------------


def test_simulate_help_shows_the_stream_options(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["simulate", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--stream" in shown and "--evaluation-leaks INT" in shown
    assert "leaks starting in the evaluation part (BattLeDIM 2019 had 23) (default: 23)" in shown


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--days", "10"], "--days is a stream knob: it needs --stream"),
        (["--stream", "--scenarios", "3"], "--scenarios makes independent scenarios"),
        (["--stream", "--days", "1"], "days must be a whole number of days >= 2, got 1"),
        (["--stream", "--leak-probability", "0.5"], "leak_probability is a knob of the scenario"),
    ],
)
def test_simulate_refuses_bad_stream_options(tmp_path, capsys, argv, message) -> None:
    out = tmp_path / "s.parquet"
    assert cli.main(["simulate", *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@needs_solver
def test_simulate_stream_writes_the_stream_files(tmp_path) -> None:
    out = tmp_path / "s.parquet"
    argv = ["simulate", "--stream", "--days", "2", "--evaluation-start", "2018-01-02"]
    argv += ["--history-leaks", "1", "--evaluation-leaks", "1", "--chunk-days", "1"]
    argv += ["--workers", "1", "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0
    written = stream_companion_paths(out)
    assert all(path.is_file() for path in written)
    assert len(pd.read_parquet(out)) == 2 * 96
    assert json.loads(pq.read_schema(out).metadata[b"leaklib.simulate.stream"])["days"] == 2


@needs_solver
def test_the_committed_leak_and_fault_tables_are_the_seeds_schedule() -> None:
    schedule = _schedule(seed=int(_stream_provenance()["leaklib.simulate.seed"]))
    leaks = _stream_leak_table()
    first = StreamRecipe().first
    assert list(leaks["pipe"]) == [leak.pipe for leak in schedule.leaks]
    assert list(leaks["kind"]) == [str(leak.kind) for leak in schedule.leaks]
    assert list(leaks["start"]) == [
        first + pd.Timedelta(minutes=5 * leak.start_step) for leak in schedule.leaks
    ]
    assert leaks["diameter_cm"].tolist() == [round(leak.diameter_cm, 4) for leak in schedule.leaks]
    faults = pd.read_csv(PATHS.faults)
    assert list(faults["column"]) == [fault.column for fault in schedule.faults]
