"""Leak localisation on a small grid network built here with wntr (5 x 6 junctions, 100 m pipes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leaklib import leak_location as L
from leaklib import metrics
from leaklib import params as P
from leaklib.metadata import open_metadata_store
from leaklib.snapshots import open_snapshot_store

pytest.importorskip("wntr")

ROWS, COLS = 5, 6
SENSORS = ["j0_0", "j0_5", "j2_2", "j2_4", "j4_0", "j4_5", "j1_3", "j3_1"]


def _grid_inp(folder: Path) -> Path:
    """Write a grid network: a reservoir feeding junction j0_0, 100 m pipes between neighbours."""
    import wntr

    wn = wntr.network.WaterNetworkModel()
    wn.options.time.duration = 24 * 3600
    wn.options.time.hydraulic_timestep = 3600
    wn.options.time.pattern_timestep = 3600
    wn.add_pattern("daily", [0.6 + 0.8 * np.sin(np.pi * h / 24) for h in range(24)])
    for r in range(ROWS):
        for c in range(COLS):
            wn.add_junction(
                f"j{r}_{c}",
                base_demand=0.0004,
                demand_pattern="daily",
                elevation=2.0 * r,
                coordinates=(100.0 * c, -100.0 * r),
            )
    wn.add_reservoir("R", base_head=60.0, coordinates=(-100.0, 0.0))
    wn.add_pipe("feed", "R", "j0_0", length=50.0, diameter=0.3, roughness=120)
    for r in range(ROWS):
        for c in range(COLS):
            if c + 1 < COLS:
                wn.add_pipe(f"h{r}_{c}", f"j{r}_{c}", f"j{r}_{c + 1}", length=100.0,
                            diameter=0.15, roughness=100)  # fmt: skip
            if r + 1 < ROWS:
                wn.add_pipe(f"v{r}_{c}", f"j{r}_{c}", f"j{r + 1}_{c}", length=100.0,
                            diameter=0.15, roughness=100)  # fmt: skip
    path = folder / "grid.inp"
    wntr.network.write_inpfile(wn, str(path), units="LPS")
    return path


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    return _grid_inp(tmp_path_factory.mktemp("grid"))


@pytest.fixture(scope="module")
def network(grid) -> L.Network:
    return L.read_network(grid)


def _spec(grid: Path, **changes) -> P.LocalisationSpec:
    return P.LocalisationSpec(network=str(grid), workers=1, **changes)


def _stores(folder: Path):
    return (
        open_snapshot_store(str(folder / "snapshots")),
        open_metadata_store(str(folder / "metadata")),
    )


COLUMNS = ["timestamp", *(f"p_{s}" for s in SENSORS), "leaks"]


# --- pipe distance ----------------------------------------------------------------------------


def test_pipe_distance_follows_the_pipes(network):
    # j0_0 to the pipe j2_3 - j2_4: 2 down and 3 across to its nearer end j2_3
    assert L.pipe_distance(network, "j0_0", "h2_3") == pytest.approx(500.0)
    assert L.pipe_distance(network, "j2_3", "h2_3") == 0.0  # a node of the pipe
    assert L.node_distance(network, "j4_5", "j0_0") == pytest.approx(900.0)
    # the reservoir is 50 m from j0_0 along the feed pipe
    assert L.node_distance(network, "R", "j1_0") == pytest.approx(150.0)


def test_pipe_distance_refuses_an_unknown_pipe(network):
    with pytest.raises(L.LocalisationError, match="pipe 'nope' is not in the network model"):
        L.pipe_distance(network, "j0_0", "nope")


def test_walk_length_covers_the_nodes_along_the_pipes(network):
    assert L.walk_length(network, ["j0_0", "j0_3"]) == pytest.approx(300.0)
    # an L of three corners: 200 m across and 200 m down
    assert L.walk_length(network, ["j0_0", "j0_2", "j2_2"]) == pytest.approx(400.0)
    assert L.walk_length(network, ["j1_1"]) == 0.0
    with pytest.raises(L.LocalisationError, match="node 'nope'"):
        L.walk_length(network, ["j0_0", "nope"])


# --- the parameter group and the model's sensors -----------------------------------------------


def test_a_sensor_the_model_lacks_is_refused_naming_it(network):
    with pytest.raises(P.ParameterError, match=r"sensor 'p_n54' is not in the network model"):
        L.sensor_elements(["timestamp", "p_j0_0", "p_n54", "hour_sin"], network)
    with pytest.raises(P.ParameterError, match=r"sensor 'q_p227'.*no link 'p227'"):
        L.sensor_elements(["q_p227"], network)
    # derived columns and non-sensors are left out; names match without case
    assert L.sensor_elements(["p_J0_0", "p_j0_0__tdev96x7w16", "hour_sin", "q_feed"], network) == {
        "p_J0_0": "j0_0",
        "q_feed": "feed",
    }


def test_the_parameter_group_is_on_in_the_default_only_and_refuses_a_missing_model():
    assert P.load().localisation.network == "ltown"
    assert P.load([P.default_file().parent / "scenarios.yaml"]).localisation is None
    with pytest.raises(P.ParameterError, match=r"localisation.network.*'nets/missing.inp'"):
        P.validate(P.merge([P.defaults()], [("localisation", {"network": "nets/missing.inp"})]))
    with pytest.raises(P.ParameterError, match="localisation.top_k"):
        P.validate(P.merge([P.defaults()], [("localisation", {"top_k": 0})]))
    on = P.validate(P.merge([P.defaults()], [("localisation", {})]))
    assert on.localisation.network == "ltown" and on.localisation.top_k == 5


def test_a_model_that_does_not_match_the_tables_sensors_is_refused(grid):
    # the embedded default's table has L-TOWN's sensors; the grid has none of them
    wrong = P.validate(P.merge([P.defaults()], [("localisation", {"network": str(grid)})]))
    with pytest.raises(P.ParameterError, match=r"sensor 'p_n1' is not in the network model grid"):
        L.check(wrong)
    assert L.check(P.load([P.default_file().parent / "scenarios.yaml"])) is None  # off


def test_the_embedded_default_matches_l_town():
    pytest.importorskip("epyt")
    on = P.validate(P.merge([P.defaults()], [("localisation", {})]))
    network = L.check(on)
    assert len(network.junctions) == 782 and len(network.links) == 909
    assert len(L.pressure_sensors(list(on.dataset.features), network)) == 33


def test_candidates_outside_the_model_are_refused(tmp_path, grid):
    store, index = _stores(tmp_path)
    spec = _spec(grid, candidates=["j0_1", "n999"])
    with pytest.raises(P.ParameterError, match="localisation.candidates: 'n999' not junctions"):
        L.signatures(spec, columns=COLUMNS, store=store, index=index, progress=False)


# --- signatures, their cache, and the ranking --------------------------------------------------


def test_signatures_are_built_once_then_reused_from_the_stores(tmp_path, grid, monkeypatch):
    store, index = _stores(tmp_path)
    spec = _spec(grid)
    first = L.signatures(spec, columns=COLUMNS, store=store, index=index, progress=False)
    assert not first.reused and first.build_s is not None
    assert first.levels.shape == (3, ROWS * COLS, len(SENSORS))
    assert first.sensors == tuple(f"p_{s}" for s in SENSORS)
    stored = list((tmp_path / "snapshots" / "signatures").glob("*.npz"))
    assert [p.stem for p in stored] == [first.sha256]

    def no_solving(*args, **kwargs):
        raise AssertionError("the signatures were solved again")

    monkeypatch.setattr(L.matrix, "solve_signatures", no_solving)  # where signatures() calls it
    again = L.signatures(spec, columns=COLUMNS, store=store, index=index, progress=False)
    assert again.reused and again.sha256 == first.sha256
    np.testing.assert_array_equal(again.levels, first.levels)
    # other settings are another key: solved anew
    with pytest.raises(AssertionError, match="solved again"):
        L.signatures(_spec(grid, leak_diameter_cm=2.0), columns=COLUMNS, store=store, index=index)


def test_signatures_in_parallel_equal_those_in_one_process(tmp_path, grid):
    path, sensors = grid, list(SENSORS)
    candidates = [f"j{r}_{c}" for r in range(ROWS) for c in range(COLS)]
    args = dict(sensors=sensors, candidates=candidates, coefficient=0.2, hours=[3.0, 12.0])
    one = L.solve_signatures(path, workers=1, progress=False, **args)
    two = L.solve_signatures(path, workers=2, progress=False, **args)
    # EPANET iterates to its accuracy (about 1e-8 relative) from each process's own state
    np.testing.assert_allclose(one, two, rtol=1e-6)
    # a leak lowers the pressure everywhere, most at its own node
    assert (one <= 1e-9).all()
    assert one[0, candidates.index("j2_2"), sensors.index("j2_2")] == one[0, :, 2].min()


@pytest.mark.parametrize("node", ["j3_4", "j1_1", "j4_2"])
def test_a_leak_at_a_known_node_ranks_first(tmp_path, grid, network, node):
    store, index = _stores(tmp_path)
    sigs = L.signatures(_spec(grid), columns=COLUMNS, store=store, index=index, progress=False)
    # the 'observed' leak: another size, at a demand level the signatures did not use, with noise
    observed = L.solve_signatures(
        grid, sensors=SENSORS, candidates=[node], coefficient=0.35, hours=[7.5],
        workers=1, progress=False,
    )[0, 0]  # fmt: skip
    noisy = observed + np.random.default_rng(0).normal(
        0, 0.02 * np.abs(observed).max(), len(SENSORS)
    )
    for method in L.METHODS:
        located = L.locate(noisy, sigs, network, top_k=5, method=method)
        assert located.best == node, method
    table = located.candidates
    assert list(table.columns) == ["rank", "node", "score", "pipes", "distance_m"]
    assert list(table["rank"]) == [1, 2, 3, 4, 5] and table["distance_m"].iloc[0] == 0.0
    assert table["score"].is_monotonic_decreasing
    assert set(table["pipes"].iloc[0].split(", ")) == set(network.incident_pipes(node))
    assert located.walk_m >= table["distance_m"].max()
    plain = located.to_dict()
    assert plain["candidates"][0]["node"] == node and plain["candidates"][0]["distance_m"] == 0.0
    assert set(plain["candidates"][0]["pipes"]) == set(network.incident_pipes(node))


def test_locate_leaks_ranks_each_detected_leak_from_its_alarm(tmp_path, grid, network):
    store, index = _stores(tmp_path)
    spec = _spec(grid, window="30min", top_k=3)
    sigs = L.signatures(spec, columns=COLUMNS, store=store, index=index, progress=False)
    observed = L.solve_signatures(
        grid, sensors=SENSORS, candidates=["j3_4"], coefficient=0.3, hours=[14.0],
        workers=1, progress=False,
    )[0, 0]  # fmt: skip
    times = pd.date_range("2019-05-01", periods=12, freq="15min")
    leaking = (times >= times[4])[:, None]
    frame = pd.DataFrame(
        np.where(leaking, observed, 0.0), columns=[f"{c}__{spec.deviation}" for c in sigs.sensors]
    )
    frame.insert(0, "timestamp", times)
    leaks = pd.DataFrame(
        {
            "leak_id": ["7", "8"],
            "kind": ["abrupt", "incipient"],
            "pipe": ["h3_4", "v0_0"],
            "detected": [True, False],
            "detection_time": [times[5], pd.NaT],
        }
    )
    table, found = L.locate_leaks(
        frame, leaks, sigs=sigs, network=network, spec=spec, timestamp="timestamp"
    )
    assert list(table["leak_id"]) == ["7"] and list(found) == ["7"]
    row = table.iloc[0]
    assert row["top_node"] == "j3_4" and row["distance_m"] == 0.0 and row["within_top1"]
    assert len(found["7"].candidates) == 3
    with pytest.raises(L.LocalisationError, match="no row of the table falls in"):
        late = leaks.assign(detection_time=[times[-1] + pd.Timedelta("1D"), pd.NaT])
        L.locate_leaks(frame, late, sigs=sigs, network=network, spec=spec, timestamp="timestamp")


def test_candidate_scores_refuse_a_bad_method_or_length():
    matrix = np.array([[-1.0, -0.5, 0.0], [0.0, -0.5, -1.0]])
    deviation = np.array([-0.9, -0.4, 0.1])
    assert np.argmax(L.candidate_scores(deviation, matrix)) == 0
    assert np.argmax(L.candidate_scores(deviation, matrix, method="nnls")) == 0
    with pytest.raises(L.LocalisationError, match="unknown method 'median'"):
        L.candidate_scores(deviation, matrix, method="median")
    with pytest.raises(L.LocalisationError, match="deviation vector has 2 sensors"):
        L.candidate_scores(deviation[:2], matrix)


def test_event_deviation_averages_the_window_and_needs_the_derived_columns():
    times = pd.date_range("2019-01-01", periods=8, freq="15min")
    frame = pd.DataFrame(
        {"timestamp": times, "p_a__tdev": np.arange(8.0), "p_b__tdev": -np.arange(8.0)}
    )
    got = L.event_deviation(frame, sensors=["p_a", "p_b"], deviation="tdev",
                            timestamp="timestamp", start=times[2], window="30min")  # fmt: skip
    np.testing.assert_allclose(got, [3.0, -3.0])  # rows 2, 3 and 4
    with pytest.raises(L.LocalisationError, match="no derived column 'p_a__tdev96x7w16'"):
        L.event_deviation(frame, sensors=["p_a"], deviation="tdev96x7w16",
                          timestamp="timestamp", start=times[0], window="1h")  # fmt: skip


def test_largest_drop_names_the_sensor_with_the_lowest_deviation(network):
    assert L.largest_drop(np.array([-0.1, -0.9, 0.2]), ["p_j0_0", "p_j2_2", "p_j4_5"], network) == (
        "j2_2"
    )


# --- scores -------------------------------------------------------------------------------------


def test_location_scores_follow_battledims_300_m_rule():
    located = pd.DataFrame(
        {
            "distance_m": [0.0, 150.0, 600.0, 300.0],
            "within_top1": [True, True, False, True],
            "within_topk": [True, True, True, True],
            "walk_m": [100.0, 200.0, 300.0, 400.0],
        }
    )
    scores = L.location_scores(located, economic_eur=10_000.0, perfect_eur=20_000.0)
    assert scores["location_within_300m_top1"] == 0.75
    assert scores["location_within_300m_topk"] == 1.0
    assert scores["location_distance_m_median"] == 225.0
    # EUR 500 per 300 m: 0 + 250 + 1000 + 500
    assert scores["location_penalty_eur"] == pytest.approx(1750.0)
    assert scores["location_economic_eur"] == pytest.approx(8250.0)
    assert scores["location_economic_share"] == pytest.approx(0.4125)
    assert set(scores) <= set(metrics.LOCATION)
    assert metrics.label("location_within_300m_top1").startswith("located within 300 m")
    with pytest.raises(L.LocalisationError, match="no detected leak"):
        L.location_scores(located.iloc[:0])


def test_located_leak_measures_from_the_top_candidate_to_the_true_pipe(network):
    location = L.Location(
        candidates=pd.DataFrame({"rank": [1, 2], "node": ["j0_0", "j2_3"]}), walk_m=500.0
    )
    row = L.located_leak(network, location, "h2_3")
    assert row["distance_m"] == pytest.approx(500.0) and row["nearest_k_m"] == 0.0
    assert not row["within_top1"] and row["within_topk"]


def test_location_metrics_are_not_scored_row_by_row():
    with pytest.raises(metrics.MetricError, match="is a location metric"):
        metrics.score("location_within_300m_top1", np.array([0, 1]), np.array([0.1, 0.9]))


# --- a scoring's events -------------------------------------------------------------------------


def _stream() -> P.DatasetSpec:
    """A stream whose features are the grid's pressure sensors."""
    return P.DatasetSpec(
        source="data/l-town-stream.parquet",
        target="leaks",
        timestamp="timestamp",
        features={f"p_{s}": "numeric" for s in SENSORS},
    )


def test_the_event_locator_ranks_an_event_as_evaluate_ranks_a_leak(tmp_path, grid, network):
    store, index = _stores(tmp_path)
    spec = _spec(grid, window="30min", top_k=3)
    locator = L.event_locator(spec, dataset=_stream(), snapshots=store, store=index)
    assert not locator.sigs.reused and locator.sensors == SENSORS
    observed = L.solve_signatures(
        grid, sensors=SENSORS, candidates=["j1_4"], coefficient=0.3, hours=[14.0],
        workers=1, progress=False,
    )[0, 0]  # fmt: skip
    times = pd.date_range("2019-05-01", periods=12, freq="15min")
    frame = pd.DataFrame(
        np.where((times >= times[4])[:, None], observed, 0.0),
        columns=[f"{c}__{spec.deviation}" for c in locator.sigs.sensors],
    ).assign(timestamp=times)
    found = locator.locate_event(frame, start=times[5])
    leaks = pd.DataFrame(
        {"leak_id": ["1"], "kind": ["abrupt"], "pipe": ["h1_4"], "detected": [True],
         "detection_time": [times[5]]}
    )  # fmt: skip
    _, evaluated = L.locate_leaks(
        frame, leaks, sigs=locator.sigs, network=network, spec=spec, timestamp="timestamp"
    )
    assert found.best == "j1_4"
    pd.testing.assert_frame_equal(found.candidates, evaluated["1"].candidates)
    # a second locator reads the signatures from the stores
    again = L.event_locator(spec, dataset=_stream(), snapshots=store, store=index)
    assert again.sigs.reused and again.sigs.sha256 == locator.sigs.sha256
    # off, or not a stream: no locator
    assert L.event_locator(None, dataset=_stream(), snapshots=store, store=index) is None


def test_a_recorded_localisation_whose_model_file_is_gone_is_refused_naming_it(tmp_path, grid):
    gone = tmp_path / "gone.inp"
    gone.write_bytes(grid.read_bytes())
    values = {"localisation": {"network": str(gone), "workers": 1}}
    assert L.recorded_localisation(values).network == str(gone)
    assert L.recorded_localisation({"localisation": None}) is None
    assert L.recorded_localisation({}) is None  # a run recorded before localisation existed
    gone.unlink()
    with pytest.raises(P.ParameterError, match=r"localisation.network: .*gone.inp"):
        L.recorded_localisation(values)
