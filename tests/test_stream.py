"""leaklib.stream: the stream's knobs, its schedule, the committed stream and `leak simulate --stream`."""

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
from leaklib.simulate import LeakKind, SimulationRecipe, file_sha256, simulation_available
from leaklib.stream import (
    FaultKind,
    Part,
    SensorFault,
    StreamRecipe,
    apply_faults,
    check_stream_recipe,
    draw_schedule,
    simulate_stream,
    simulate_stream_frames,
    stream_companion_paths,
)

ROOT = Path(__file__).resolve().parents[1]
PATHS = stream_companion_paths(ROOT / "data" / "l-town-stream.parquet")

_available, _why = simulation_available()
needs_solver = pytest.mark.skipif(not _available, reason=f"needs the simulate extra: {_why}")


def _provenance() -> dict[str, str]:
    metadata = pq.read_schema(PATHS.table).metadata or {}
    return {k.decode(): v.decode() for k, v in metadata.items() if k.startswith(b"leaklib.")}


def _leak_table() -> pd.DataFrame:
    return pd.read_csv(PATHS.leaks, parse_dates=["start", "end"])


def _schedule(seed: int = 2020, stream: StreamRecipe | None = None):
    from leaklib.simulate import load_network

    wn = load_network()
    return draw_schedule(
        SimulationRecipe(),
        stream or StreamRecipe(),
        seed=seed,
        n_junctions=len(wn.junction_name_list),
        pipes=wn.pipe_name_list,
    )


# --- the knobs ------------------------------------------------------------------------------


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


def test_importing_the_module_does_not_import_the_solver() -> None:
    code = "import sys, leaklib.stream; print(sorted({'wntr', 'epyt'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


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


def test_committed_sha256_lists_every_file() -> None:
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
    provenance = _provenance()
    assert json.loads(provenance["leaklib.simulate.recipe"]) == recipe.to_dict()
    assert json.loads(provenance["leaklib.simulate.stream"]) == StreamRecipe().to_dict()


def test_committed_labels_are_the_leak_table_and_not_the_faults() -> None:
    frame = pd.read_parquet(PATHS.table)
    leaks = _leak_table()
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


def test_committed_volumes_agree_with_the_leak_table() -> None:
    volumes = pd.read_parquet(PATHS.volumes)
    leaks = _leak_table().set_index("leak_id")
    assert list(volumes.columns) == ["leak_id", "timestamp", "volume_m3"]
    assert (volumes["volume_m3"] > 0).all()
    totals = volumes.groupby("leak_id")["volume_m3"].sum()
    assert np.allclose(totals, leaks.loc[totals.index, "volume_m3"], atol=0.01)
    joined = volumes.join(leaks[["start", "end"]], on="leak_id")
    assert (joined["timestamp"] + pd.Timedelta(minutes=15) > joined["start"]).all()
    assert ((joined["timestamp"] < joined["end"]) | joined["end"].isna()).all()


@needs_solver
def test_regenerating_the_first_two_chunks_gives_the_committed_rows() -> None:
    seed = int(_provenance()["leaklib.simulate.seed"])
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
