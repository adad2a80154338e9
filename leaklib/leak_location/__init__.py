"""Where is the leak: candidate nodes ranked by how well their leak signature explains an alarm.

The rules, defined here once:

- **Signatures.** For each candidate junction a standard leak (an EPANET emitter of
  ``C = Cd * A * sqrt(2 g)``, ``A`` the hole of ``localisation.leak_diameter_cm``, ``Cd`` the
  simulation's) is solved at each demand level (the patterns at ``localisation.hours``), with
  EPANET's toolkit as ``leak simulate`` solves (one hydraulic solve per level, tanks at their
  initial level). A signature is the pressure at each pressure sensor with the leak less the
  pressure without it, in m, averaged over the levels: a matrix of candidates x sensors.
- **Cache.** The matrix is built once per network and settings: its key is the SHA-256 of the
  model file's bytes and the settings (sensors, candidates, leak size, hours, solver version).
  The matrix itself is a content-addressed ``.npz`` in the snapshot store
  (``signatures/<sha256>.npz``); the metadata store's ``signatures`` collection maps the key to
  that hash (written only here), so every run and CI pipeline sharing the stores reuses it.
- **Ranking.** An event's deviation vector is each pressure sensor's derived deviation
  (``p_<node>__<localisation.deviation>``) averaged from the first alarm over
  ``localisation.window``. ``correlation`` scores a candidate by the Pearson correlation of
  its signature with that vector; ``nnls`` by the share of the vector's energy explained by
  the signature times a scale of zero or more; ``weighted`` is correlation after dividing
  each sensor by its usual deviation (the median absolute value of its deviation over the
  training rows). Correlation is the default: on the stream's evaluation year the others did
  not win consistently (see ``benchmarks/localisation_figures.py``). Each of the top-k nodes
  is returned with its score, its pipes (those ending at it) and its pipe distance to the
  top candidate.
- **Pipe distance.** The shortest path along the network's links, each pipe weighted by its
  length (pumps and valves count 0 m). A node's distance to a pipe is the smaller of its
  distances to the pipe's two end nodes: 0 for a node of the pipe, and the walk to the nearest
  point of the pipe otherwise, as in BattLeDIM's rule "within 300 m of the true pipe".
- **The walk.** The length of main a crew walks to cover the top-k nodes: the total length of
  a Steiner tree joining them along the links, by Kou, Markowsky and Berman's
  2-approximation (the spanning tree of their shortest paths, pruned), computed with scipy.
- **Scores** (names and labels in :data:`leaklib.metrics.LOCATION`), over the detected leaks:
  the share whose true pipe is within 300 m of the top candidate, and of any of the top k;
  the median distance from the top candidate to the true pipe; and BattLeDIM's distance
  penalty, EUR 500 x distance / 300 m per detected leak (not capped), subtracted from the
  event economic score when one is given (and shown as a share of the perfect score).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from leaklib import metrics
from leaklib.leak_location.matrix import (
    Signatures,
    emitter_coefficient,
    signature_key,
    signatures,
    solve_signatures,
)
from leaklib.leak_location.network import (
    LocalisationError,
    Network,
    candidate_nodes,
    check,
    network_file,
    node_distance,
    pipe_distance,
    pressure_sensors,
    read_network,
    sensor_elements,
    walk_length,
)
from leaklib.leak_location.ranking import (
    METHODS,
    RADIUS_M,
    Location,
    candidate_scores,
    deviation_scale,
    event_deviation,
    largest_drop,
    locate,
    locate_leaks,
    located_leak,
)
from leaklib.metadata import MetadataStore
from leaklib.params import DatasetSpec, LocalisationSpec, ParameterError, Params
from leaklib.snapshots import SnapshotStore

# the network, the signatures and the ranking live in their modules; callers import from here
__all__ = [
    "METHODS",
    "PENALTY_EUR",
    "RADIUS_M",
    "LocalisationError",
    "Located",
    "Location",
    "Locator",
    "Network",
    "Signatures",
    "candidate_nodes",
    "candidate_scores",
    "check",
    "deviation_scale",
    "emitter_coefficient",
    "event_deviation",
    "event_locator",
    "largest_drop",
    "localisation_problems",
    "locate",
    "locate_evaluation",
    "locate_leaks",
    "located_leak",
    "location_scores",
    "log",
    "network_file",
    "node_distance",
    "pipe_distance",
    "pressure_sensors",
    "read_network",
    "recorded_localisation",
    "score_table",
    "sensor_elements",
    "signature_key",
    "signatures",
    "solve_signatures",
    "walk_length",
]


PENALTY_EUR = 500.0  # BattLeDIM: EUR 500 per 300 m between the named and the true pipe


# --- scores ----------------------------------------------------------------------------------


def location_scores(
    located: pd.DataFrame,
    *,
    economic_eur: float | None = None,
    perfect_eur: float | None = None,
) -> dict[str, float]:
    """Return the location metrics (:data:`leaklib.metrics.LOCATION`) over the detected leaks.

    Args:
        located: One row per detected leak, as :func:`located_leak` returns.
        economic_eur: The event economic score, from which the distance penalty is taken.
        perfect_eur: The perfect economic score, for the share.

    Raises:
        LocalisationError: ``located`` has no rows.
    """
    if located.empty:
        raise LocalisationError("no detected leak to score the locations of")
    distance = located["distance_m"].to_numpy(dtype=float)
    penalty = float(np.sum(PENALTY_EUR * distance / RADIUS_M))
    scores = {
        "location_leaks": float(len(located)),
        "location_within_300m_top1": float(located["within_top1"].mean()),
        "location_within_300m_topk": float(located["within_topk"].mean()),
        "location_distance_m_median": float(np.median(distance)),
        "location_walk_m_median": float(located["walk_m"].median()),
        "location_penalty_eur": penalty,
    }
    if economic_eur is not None:
        scores["location_economic_eur"] = economic_eur - penalty
        if perfect_eur:
            scores["location_economic_share"] = (economic_eur - penalty) / perfect_eur
    return {name: round(value, 6) for name, value in scores.items()}  # as the other metrics


# --- one evaluation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Located:
    """Where each detected leak of an evaluation is: the table, each ranking, the scores."""

    network: Network
    table: pd.DataFrame  # one row per detected leak (locate_leaks)
    rankings: dict[str, Location]
    scores: dict[str, float]
    sensors: list[str]  # the junctions of the pressure sensors, for the map

    def first(self) -> tuple[str, Location]:
        """Return the first detected leak's true pipe and its ranking (for the report's map)."""
        row = self.table.iloc[0]
        return str(row["pipe"]), self.rankings[str(row["leak_id"])]

    def panels(self) -> list[tuple[str, Location, str]]:
        """One map per detected leak, titled as the table names it: title, ranking, true pipe."""
        return [
            (
                f"leak {row['leak_id']}: {row['distance_m']:.0f} m"
                + (" (within 300 m)" if row["within_top1"] else ""),
                self.rankings[str(row["leak_id"])],
                str(row["pipe"]),
            )
            for _, row in self.table.iterrows()
        ]


def locate_evaluation(
    frame: pd.DataFrame,
    leaks: pd.DataFrame,
    *,
    params: Params,
    snapshots: SnapshotStore,
    store: MetadataStore,
    event_scores: dict[str, float],
) -> Located | None:
    """Locate the detected leaks of an evaluation; None when localisation is off or none was found.

    Args:
        frame: The evaluated rows with their derived deviation columns.
        leaks: The evaluation's per-leak table (``EventResult.leaks``).
        params: The run's parameters (``localisation``, ``dataset.timestamp``).
        snapshots: The snapshot store the signatures are kept in.
        store: The metadata store that indexes them.
        event_scores: The event scores (the economic score the distance penalty comes from).
    """
    spec = params.localisation
    if spec is None or not params.dataset.is_stream or not leaks["detected"].astype(bool).any():
        return None
    network = check(params)
    sigs = signatures(
        spec, columns=list(frame.columns), store=snapshots, index=store, network=network
    )
    table, rankings = locate_leaks(
        frame, leaks, sigs=sigs, network=network, spec=spec, timestamp=params.dataset.timestamp
    )
    scores = location_scores(
        table,
        economic_eur=event_scores.get("event_economic_eur"),
        perfect_eur=event_scores.get("event_economic_perfect_eur"),
    )
    nodes = pressure_sensors(list(sigs.sensors), network)  # column -> the junction it reads
    return Located(network, table, rankings, scores, [nodes[c] for c in sigs.sensors])


def score_table(scores: dict[str, float]) -> pd.DataFrame:
    """Return the location scores as a table with their catalogue labels."""
    rows = {metrics.CATALOGUE[name].label: value for name, value in scores.items()}
    return pd.Series(rows, name="over the detected leaks", dtype=float).to_frame()


def localisation_problems(values: dict[str, Any]) -> list[str]:
    """A run check: the network model file and the table's sensors in it (``key: problem``)."""
    localisation = values.get("localisation")
    if not localisation:
        return []
    try:
        params = Params.model_validate(values)
    except ValidationError:
        return []  # the contract names those problems itself
    try:
        check(params)
    except ParameterError as exc:
        return [line for _, line in exc.by_key] or [str(exc)]
    return []


# --- one scoring's events --------------------------------------------------------------------


@dataclass(frozen=True)
class Locator:
    """What ranking an alarm event needs, read once: the network, its signatures, the settings.

    Built by :func:`event_locator` for a scoring (``leak score``, ``/predict``); each event is
    then ranked as evaluate ranks a detected leak (:func:`event_deviation`, :func:`locate`).
    """

    network: Network
    sigs: Signatures
    spec: LocalisationSpec
    timestamp: str  # the table's time column

    @cached_property
    def sensors(self) -> list[str]:
        """The junctions of the pressure sensors, in the signatures' order (for the map)."""
        nodes = pressure_sensors(list(self.sigs.sensors), self.network)
        return [nodes[c] for c in self.sigs.sensors]

    def locate_event(self, frame: pd.DataFrame, *, start: pd.Timestamp) -> Location:
        """Rank the candidates for the event whose first alarm is ``start`` (as evaluate does).

        Args:
            frame: Rows with the derived deviation columns, covering ``start`` on.
            start: The event's first alarm.

        Raises:
            LocalisationError: A derived column is missing, or no row falls in the window.
        """
        deviation = event_deviation(
            frame,
            sensors=self.sigs.sensors,
            deviation=self.spec.deviation,
            timestamp=self.timestamp,
            start=start,
            window=self.spec.window,
        )
        return locate(
            deviation, self.sigs, self.network, top_k=self.spec.top_k, method=self.spec.method
        )


def recorded_localisation(values: dict[str, Any]) -> LocalisationSpec | None:
    """Return a run's recorded ``localisation`` group, checked (None: off, or not recorded).

    Raises:
        ParameterError: It no longer validates (its network model file is gone, say); the
            message names the key and the file.
    """
    given = values.get("localisation")
    if not given:
        return None
    try:
        return LocalisationSpec.model_validate(given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(["localisation", *(str(p) for p in err["loc"])])
            problems.append((where, f"{where}: {err['msg']}"))
        lines = "\n  ".join(line for _, line in problems)
        raise ParameterError(
            f"the scoring run's localisation parameters are invalid:\n  {lines}", by_key=problems
        ) from None


def event_locator(
    spec: LocalisationSpec | None,
    *,
    dataset: DatasetSpec,
    snapshots: SnapshotStore,
    store: MetadataStore,
) -> Locator | None:
    """Return the locator of a scoring's events; None when localisation is off or not a stream.

    The signatures come from the stores (:func:`signatures`: solved only when no run built
    them for this network and these settings before).

    Args:
        spec: The scoring run's ``localisation`` (:func:`recorded_localisation`).
        dataset: The run's dataset (its features are the sensors).
        snapshots: The snapshot store that keeps the signatures (the run's).
        store: The metadata store that indexes them.

    Raises:
        ParameterError: The network model file is missing, or a sensor is not in it.
    """
    if spec is None or not dataset.is_stream:
        return None
    network = read_network(network_file(spec))
    sigs = signatures(
        spec,
        columns=list(dataset.features),
        store=snapshots,
        index=store,
        network=network,
        progress=False,
    )
    return Locator(network=network, sigs=sigs, spec=spec, timestamp=str(dataset.timestamp))
