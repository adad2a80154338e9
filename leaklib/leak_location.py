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

import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra, minimum_spanning_tree
from tqdm.auto import tqdm

from leaklib import metrics
from leaklib.errors import LeakError
from leaklib.metadata import MetadataStore
from leaklib.params import DatasetSpec, LocalisationSpec, ParameterError, Params
from leaklib.paths import resolve
from leaklib.simulate import hydraulics
from leaklib.simulate.recipe import SimulationRecipe, network_path
from leaklib.snapshots import SnapshotStore
from leaklib.snapshots.base import sha256_hex

log = logging.getLogger(__name__)

RADIUS_M = 300.0  # BattLeDIM: a location counts when within 300 m of the true pipe
PENALTY_EUR = 500.0  # BattLeDIM: EUR 500 per 300 m between the named and the true pipe
FOLDER = "signatures"  # the matrices' folder in the snapshot store
SUFFIX = ".npz"
CONTENT_TYPE = "application/octet-stream"
INDEX = "signatures"  # the metadata collection: key -> the matrix's sha256
SOLVER_VERSION = 1  # bump when the way signatures are solved changes
METHODS = ("correlation", "nnls", "weighted")

# EPANET 2.2 toolkit codes (epanet2_enums.h)
_EN_EMITTER, _EN_PRESSURE = 3, 11


class LocalisationError(LeakError, ValueError):
    """Leaks cannot be located with what was given (an unknown node, pipe or method)."""


@dataclass(frozen=True)
class Network:
    """What localisation needs of a hydraulic model: its nodes, links, lengths and places."""

    path: Path
    sha256: str  # of the model file's bytes
    nodes: tuple[str, ...]  # every node, junctions first (wntr's order)
    junctions: tuple[str, ...]
    links: pd.DataFrame  # name, start, end, length_m, is_pipe; indexed by name
    coordinates: pd.DataFrame  # x, y per node; indexed by node
    tanks: tuple[str, ...]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {node: i for i, node in enumerate(self.nodes)}

    @cached_property
    def graph(self) -> csr_matrix:
        """The links as a symmetric sparse matrix of lengths, the shorter of parallel links."""
        lengths: dict[tuple[int, int], float] = {}
        for start, end, length in zip(
            self.links["start"], self.links["end"], self.links["length_m"], strict=True
        ):
            i, j = self._index[start], self._index[end]
            # a zero weight is no edge to scipy: pumps and valves get a nanometre
            key, length = (min(i, j), max(i, j)), max(float(length), 1e-9)
            lengths[key] = min(length, lengths.get(key, length))
        rows, cols = zip(*lengths, strict=True) if lengths else ((), ())
        weights = list(lengths.values())
        n = len(self.nodes)
        return coo_matrix(
            (weights + weights, (list(rows) + list(cols), list(cols) + list(rows))), shape=(n, n)
        ).tocsr()

    @cached_property
    def distances(self) -> np.ndarray:
        """Shortest path lengths along the links between every two nodes, in m."""
        return dijkstra(self.graph, directed=False)

    def node_position(self, node: str) -> int:
        """Return a node's row in :attr:`distances`; LocalisationError for an unknown node."""
        if node not in self._index:
            raise LocalisationError(f"node {node!r} is not in the network model {self.path.name}")
        return self._index[node]

    def pipe_ends(self, pipe: str) -> tuple[str, str]:
        """Return a link's two end nodes; LocalisationError for an unknown link."""
        if pipe not in self.links.index:
            raise LocalisationError(f"pipe {pipe!r} is not in the network model {self.path.name}")
        row = self.links.loc[pipe]
        return str(row["start"]), str(row["end"])

    def incident_pipes(self, node: str) -> list[str]:
        """Return the pipes (not pumps or valves) that end at a node, by name."""
        pipes = self.links[self.links["is_pipe"]]
        return sorted(pipes.index[(pipes["start"] == node) | (pipes["end"] == node)])


def network_file(spec: LocalisationSpec) -> Path:
    """Return the model file ``localisation.network`` names (``ltown``: the one epyt ships)."""
    return network_path() if spec.network == "ltown" else resolve(spec.network)


def read_network(path: str | Path) -> Network:
    """Read an EPANET ``.inp`` file into what localisation needs.

    Raises:
        ParameterError: The file is missing or is not a network wntr can read.
    """
    # the optional simulate extra: imported only when a network is read
    import wntr

    path = Path(path)
    if not path.is_file():
        raise ParameterError(
            f"localisation.network: the network model file {str(path)!r} does not exist",
            by_key=[("localisation.network", f"{str(path)!r} does not exist")],
        )
    data = path.read_bytes()
    try:
        wn = wntr.network.WaterNetworkModel(str(path))
    except Exception as exc:  # wntr raises many kinds on a malformed file
        problem = f"{path.name} is not an EPANET network wntr can read: {exc}"
        raise ParameterError(
            f"localisation.network: {problem}", by_key=[("localisation.network", problem)]
        ) from exc
    rows = []
    for name in wn.link_name_list:
        link = wn.get_link(name)
        is_pipe = name in wn.pipe_name_list
        length = float(link.length) if is_pipe else 0.0
        rows.append((name, link.start_node_name, link.end_node_name, length, is_pipe))
    links = pd.DataFrame(rows, columns=["name", "start", "end", "length_m", "is_pipe"])
    coordinates = pd.DataFrame(
        [(n, *(wn.get_node(n).coordinates or (np.nan, np.nan))) for n in wn.node_name_list],
        columns=["node", "x", "y"],
    ).set_index("node")
    return Network(
        path=path,
        sha256=sha256_hex(data),
        nodes=tuple(wn.node_name_list),
        junctions=tuple(wn.junction_name_list),
        links=links.set_index("name"),
        coordinates=coordinates,
        tanks=tuple(wn.tank_name_list),
    )


def sensor_elements(columns: Sequence[str], network: Network) -> dict[str, str]:
    """Map each sensor column (``p_<junction>``, ``q_<link>``, ``h_<tank>``) to its model ID.

    Other columns are left out. Names are matched without case (``q_pump_1`` is ``PUMP_1``).

    Raises:
        ParameterError: A sensor column names no element of the model; the message names it.
    """
    by_kind = {
        "p": {n.lower(): n for n in network.nodes},
        "q": {n.lower(): n for n in network.links.index},
        "h": {n.lower(): n for n in network.tanks},
    }
    what = {"p": "node", "q": "link", "h": "tank"}
    found, problems = {}, []
    for column in columns:
        kind, sep, element = column.partition("_")
        if not sep or kind not in by_kind or "__" in column:
            continue
        if element.lower() in by_kind[kind]:
            found[column] = by_kind[kind][element.lower()]
        else:
            problems.append(
                f"sensor {column!r} is not in the network model {network.path.name}: it has "
                f"no {what[kind]} {element!r}"
            )
    if problems:
        raise ParameterError(
            "localisation.network: " + "; ".join(problems),
            by_key=[("localisation.network", p) for p in problems],
        )
    return found


def check(params: Params) -> Network | None:
    """Check ``localisation`` against the dataset: the model file, and every sensor column in it.

    Returns the network read, or None when localisation is off.

    Raises:
        ParameterError: The model file is missing or unreadable, a declared sensor column
            (``p_<junction>``, ``q_<link>``, ``h_<tank>``) is not in it, or a listed candidate
            is not one of its junctions; the message names it.
    """
    if params.localisation is None or not params.dataset.is_stream:
        return None  # a table of groups (a user's own, say) is not located
    network = read_network(network_file(params.localisation))
    sensors = sensor_elements(list(params.dataset.features), network)
    if not any(column.startswith("p_") for column in sensors):
        problem = "the dataset declares no pressure sensor column (p_<junction>) to locate by"
        raise ParameterError(f"localisation: {problem}", by_key=[("localisation", problem)])
    candidate_nodes(params.localisation, network)
    return network


def pressure_sensors(columns: Sequence[str], network: Network) -> dict[str, str]:
    """Return the pressure sensor columns (``p_<node>``) and their nodes, checked as above."""
    return {c: n for c, n in sensor_elements(columns, network).items() if c.startswith("p_")}


def pipe_distance(network: Network, node: str, pipe: str) -> float:
    """Return the walk along the network from ``node`` to ``pipe`` (its nearer end), in m."""
    i = network.node_position(node)
    return float(
        min(network.distances[i, network.node_position(e)] for e in network.pipe_ends(pipe))
    )


def node_distance(network: Network, a: str, b: str) -> float:
    """Return the shortest walk along the network's links between two nodes, in m."""
    return float(network.distances[network.node_position(a), network.node_position(b)])


def walk_length(network: Network, nodes: Sequence[str]) -> float:
    """Return the length of main joining ``nodes``: a Steiner tree by Kou et al.'s method, in m.

    The minimum spanning tree of the nodes' shortest-path distances, each of its edges
    expanded to its path along the links, the union's spanning tree, and leaves that are not
    among ``nodes`` pruned: at most twice the shortest possible tree.

    Raises:
        LocalisationError: A node is not in the network.
    """
    terminals = sorted({network.node_position(node) for node in nodes})
    if len(terminals) < 2:
        return 0.0
    dist, pred = dijkstra(network.graph, directed=False, indices=terminals,
                          return_predecessors=True)  # fmt: skip
    closure = minimum_spanning_tree(dist[:, terminals]).tocoo()
    edges: set[tuple[int, int]] = set()
    for a, b in zip(closure.row, closure.col, strict=True):
        node, source = terminals[b], a  # walk back from terminal b to terminal a
        while node != terminals[a]:
            step = pred[source, node]
            edges.add((min(step, node), max(step, node)))
            node = step
    rows, cols = zip(*edges, strict=True)
    weights = np.asarray(network.graph[list(rows), list(cols)]).ravel()
    n = len(network.nodes)
    tree = minimum_spanning_tree(coo_matrix((weights, (rows, cols)), shape=(n, n))).tocoo()
    kept = {
        (int(u), int(v)): float(w) for u, v, w in zip(tree.row, tree.col, tree.data, strict=True)
    }
    wanted = set(terminals)
    while True:
        degree: dict[int, int] = {}
        for u, v in kept:
            degree[u] = degree.get(u, 0) + 1
            degree[v] = degree.get(v, 0) + 1
        leaves = {node for node, d in degree.items() if d == 1 and node not in wanted}
        if not leaves:
            break
        kept = {e: w for e, w in kept.items() if e[0] not in leaves and e[1] not in leaves}
    return float(sum(w for w in kept.values() if w > 1e-6))


# --- signatures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signatures:
    """The sensitivity matrix: how each pressure sensor moves when a candidate leaks.

    ``levels`` is ``(len(hours), candidates, sensors)``, in m (the leak's pressure less the
    leak-free pressure); ``matrix`` is their mean over the demand levels.
    """

    key: str  # SHA-256 of the model file's bytes and the settings
    sha256: str  # of the stored .npz
    candidates: tuple[str, ...]
    sensors: tuple[str, ...]  # pressure sensor columns, p_<node>
    hours: tuple[float, ...]
    levels: np.ndarray
    reused: bool = False  # True when read from the store rather than solved
    build_s: float | None = None  # how long solving it took (when it was solved now)

    @property
    def matrix(self) -> np.ndarray:
        """Candidates x sensors: the mean pressure change over the demand levels (m)."""
        return self.levels.mean(axis=0)

    def to_bytes(self) -> bytes:
        """Return the matrix as ``.npz`` bytes that depend only on its content."""
        sink = io.BytesIO()
        np.savez(
            sink,
            levels=self.levels.astype(np.float64),
            candidates=np.array(self.candidates, dtype=str),
            sensors=np.array(self.sensors, dtype=str),
            hours=np.array(self.hours, dtype=float),
            key=np.array(self.key),
        )
        return sink.getvalue()


def _settings(
    spec: LocalisationSpec, sensors: dict[str, str], candidates: Sequence[str]
) -> dict[str, Any]:
    return {
        "solver_version": SOLVER_VERSION,
        "sensors": sensors,
        "candidates": list(candidates),
        "leak_diameter_cm": spec.leak_diameter_cm,
        "discharge_coefficient": SimulationRecipe().discharge_coefficient,
        "hours": list(spec.hours),
    }


def signature_key(network: Network, settings: dict[str, Any]) -> str:
    """Return the cache key: SHA-256 of the model file's bytes and the settings' JSON."""
    digest = hashlib.sha256()
    digest.update(network.path.read_bytes())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def candidate_nodes(spec: LocalisationSpec, network: Network) -> list[str]:
    """Return the candidate nodes: every junction, or the listed ones (each checked)."""
    if spec.candidates == "all":
        return list(network.junctions)
    unknown = [n for n in spec.candidates if n not in network.junctions]
    if unknown:
        problem = f"{', '.join(map(repr, unknown))} not junctions of {network.path.name}"
        raise ParameterError(
            f"localisation.candidates: {problem}",
            by_key=[("localisation.candidates", problem)],
        )
    return list(spec.candidates)


def signatures(
    spec: LocalisationSpec,
    *,
    columns: Sequence[str],
    store: SnapshotStore,
    index: MetadataStore,
    progress: bool = True,
) -> Signatures:
    """Return the signature matrix for a table's pressure sensors, solved once and then reused.

    Args:
        spec: The localisation parameters.
        columns: The table's columns; its sensor columns must all be in the model.
        store: The snapshot store, whose ``signatures`` folder keeps the matrices.
        index: The metadata store, whose ``signatures`` collection maps a key to its matrix.
        progress: Show a tqdm progress bar while solving.

    Raises:
        ParameterError: The model file is missing, or a sensor or candidate is not in it.
    """
    network = read_network(network_file(spec))
    sensors = pressure_sensors(columns, network)
    if not sensors:
        raise LocalisationError("the table has no pressure sensor column (p_<node>) to locate by")
    candidates = candidate_nodes(spec, network)
    settings = _settings(spec, sensors, candidates)
    key = signature_key(network, settings)
    matrices = store.within(FOLDER, suffix=SUFFIX, content_type=CONTENT_TYPE)
    entry = index.get(INDEX, key)
    if entry is not None and matrices.exists(entry["sha256"]):
        log.info("signatures %s reused from %s", key[:12], matrices.uri)
        return _from_bytes(matrices.get(entry["sha256"]), sha256=entry["sha256"])
    started = time.perf_counter()
    levels = solve_signatures(
        network.path,
        sensors=list(sensors.values()),
        candidates=candidates,
        coefficient=emitter_coefficient(spec.leak_diameter_cm),
        hours=spec.hours,
        workers=spec.workers,
        progress=progress,
    )
    build_s = time.perf_counter() - started
    built = Signatures(
        key=key,
        sha256="",
        candidates=tuple(candidates),
        sensors=tuple(sensors),
        hours=tuple(spec.hours),
        levels=levels,
    )
    return _stored(built, matrices=matrices, index=index, network=network, build_s=build_s)


def _stored(
    built: Signatures,
    *,
    matrices: SnapshotStore,
    index: MetadataStore,
    network: Network,
    build_s: float,
) -> Signatures:
    """Keep a solved matrix under its hash and index it by its key; return it with its hash."""
    data = built.to_bytes()
    sha = sha256_hex(data)
    matrices.put(data, sha256=sha)
    index.transact(
        INDEX,
        built.key,
        lambda _: {
            "key": built.key,
            "sha256": sha,
            "network": network.path.name,
            "network_sha256": network.sha256,
            "candidates": len(built.candidates),
            "sensors": len(built.sensors),
            "build_s": round(build_s, 3),
        },
    )
    log.info(
        "signatures %s: %d candidates solved in %.1f s",
        built.key[:12],
        len(built.candidates),
        build_s,
    )
    return Signatures(**{**built.__dict__, "sha256": sha, "build_s": build_s})


def _from_bytes(data: bytes, *, sha256: str) -> Signatures:
    with np.load(io.BytesIO(data)) as npz:
        return Signatures(
            key=str(npz["key"]),
            sha256=sha256,
            candidates=tuple(str(c) for c in npz["candidates"]),
            sensors=tuple(str(s) for s in npz["sensors"]),
            hours=tuple(float(h) for h in npz["hours"]),
            levels=npz["levels"],
            reused=True,
        )


def emitter_coefficient(diameter_cm: float) -> float:
    """Return the standard leak's emitter coefficient (the simulation's rule), L/s per m^0.5."""
    return hydraulics.emitter_coefficient(SimulationRecipe(), diameter_cm)


def solve_signatures(
    path: Path,
    *,
    sensors: list[str],
    candidates: list[str],
    coefficient: float,
    hours: Sequence[float],
    workers: int = 2,
    progress: bool = True,
) -> np.ndarray:
    """Solve a standard leak at every candidate and demand level; return the pressure changes.

    Returns:
        ``(len(hours), len(candidates), len(sensors))``: pressure with the leak less without, m.
    """
    chunks = [candidates[i : i + 16] for i in range(0, len(candidates), 16)]
    out: list[np.ndarray] = []
    bar = tqdm(total=len(candidates), desc="leak signatures", unit="node", disable=not progress)
    try:
        if workers <= 1 or len(chunks) == 1:
            solver = _Solver(str(path), sensors, list(hours))
            try:
                for chunk in chunks:
                    out.append(solver.solve(chunk, coefficient))
                    bar.update(len(chunk))
            finally:
                solver.close()
        else:
            with ProcessPoolExecutor(
                max_workers=workers,
                initializer=_init_worker,
                initargs=(str(path), sensors, list(hours)),
            ) as pool:
                for chunk, result in zip(
                    chunks, pool.map(_solve_chunk, chunks, [coefficient] * len(chunks)), strict=True
                ):
                    out.append(result)
                    bar.update(len(chunk))
    finally:
        bar.close()
    return np.concatenate(out, axis=1)


class _Solver:
    """EPANET opened once per demand level, solving one steady state per leak."""

    def __init__(self, path: str, sensors: list[str], hours: list[float]) -> None:
        # the optional simulate extra: imported only when a network is solved
        import wntr
        from wntr.epanet.toolkit import ENepanet  # the same optional extra

        self._tmp = tempfile.TemporaryDirectory(prefix="leak-sig-")
        self._ens: list[Any] = []
        self.base: list[np.ndarray] = []
        for k, hour in enumerate(hours):
            wn = wntr.network.WaterNetworkModel(path)
            wn.options.time.duration = 0
            wn.options.time.pattern_start = int(round(hour * 3600))
            inp = os.path.join(self._tmp.name, f"level{k}.inp")
            wntr.network.write_inpfile(wn, inp, units="LPS")  # pressures in m
            en = ENepanet()
            en.ENopen(inp, os.path.join(self._tmp.name, f"level{k}.rpt"), "")
            en.ENopenH()
            self._ens.append(en)
        self._sensors = [[en.ENgetnodeindex(s) for s in sensors] for en in self._ens]
        self.base = [self._pressures(k) for k in range(len(self._ens))]

    def _pressures(self, k: int) -> np.ndarray:
        en = self._ens[k]
        en.ENinitH(0)
        en.ENrunH()
        return np.array([en.ENgetnodevalue(i, _EN_PRESSURE) for i in self._sensors[k]])

    def solve(self, candidates: list[str], coefficient: float) -> np.ndarray:
        """Return ``(levels, len(candidates), sensors)`` pressure changes for these leaks."""
        out = np.empty((len(self._ens), len(candidates), len(self._sensors[0])))
        for k, en in enumerate(self._ens):
            for j, node in enumerate(candidates):
                i = en.ENgetnodeindex(node)
                before = en.ENgetnodevalue(i, _EN_EMITTER)
                en.ENsetnodevalue(i, _EN_EMITTER, before + coefficient)
                try:
                    out[k, j] = self._pressures(k) - self.base[k]
                finally:
                    en.ENsetnodevalue(i, _EN_EMITTER, before)
        return out

    def close(self) -> None:
        """Close every EPANET project and remove the files."""
        for en in self._ens:
            en.ENcloseH()
            en.ENclose()
        self._tmp.cleanup()


_WORKER: dict[str, _Solver] = {}


def _init_worker(path: str, sensors: list[str], hours: list[float]) -> None:
    _WORKER["solver"] = _Solver(path, sensors, hours)


def _solve_chunk(candidates: list[str], coefficient: float) -> np.ndarray:
    return _WORKER["solver"].solve(candidates, coefficient)


# --- ranking ---------------------------------------------------------------------------------


def event_deviation(
    frame: pd.DataFrame,
    *,
    sensors: Sequence[str],
    deviation: str,
    timestamp: str,
    start: pd.Timestamp,
    window: str | pd.Timedelta,
) -> np.ndarray:
    """Return each sensor's derived deviation averaged over ``[start, start + window]``.

    Args:
        frame: The table with the derived columns ``<sensor>__<deviation>``.
        sensors: The pressure sensor columns, in the signatures' order.
        deviation: The derived column's name after ``__`` (``tdev96x7w16``).
        timestamp: The time column.
        start: The first alarm's time.
        window: How long from ``start`` to average (``'0min'``: that row only).

    Raises:
        LocalisationError: A derived column is missing, or no row falls in the window.
    """
    columns = [f"{s}__{deviation}" for s in sensors]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LocalisationError(
            f"the table has no derived column {missing[0]!r}: localisation.deviation must be "
            "one of the dataset's derive block"
        )
    times = pd.to_datetime(frame[timestamp])
    start = pd.Timestamp(start)
    rows = (times >= start) & (times <= start + pd.Timedelta(window))
    if not rows.any():
        raise LocalisationError(f"no row of the table falls in {start} + {window}")
    return frame.loc[rows, columns].mean(axis=0).to_numpy(dtype=float)


def deviation_scale(frame: pd.DataFrame, *, sensors: Sequence[str], deviation: str) -> np.ndarray:
    """Return each sensor's usual deviation: the median absolute ``<sensor>__<deviation>``.

    Give it rows the model trained on (the history), not the events being located.
    """
    columns = [f"{s}__{deviation}" for s in sensors]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LocalisationError(f"the table has no derived column {missing[0]!r}")
    return frame[columns].abs().median(axis=0).to_numpy(dtype=float)


def _standardised(values: np.ndarray) -> np.ndarray:
    centred = values - values.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(centred, axis=-1, keepdims=True)
    return np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 0)


def candidate_scores(
    deviation: np.ndarray,
    matrix: np.ndarray,
    *,
    method: str = "correlation",
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """Return one score per candidate (row of ``matrix``): higher explains ``deviation`` better.

    Args:
        deviation: One value per sensor (an event's deviations).
        matrix: Candidates x sensors (the signatures).
        method: correlation, nnls or weighted (see the module docstring).
        scale: For weighted, each sensor's usual deviation (ones when not given).

    Raises:
        LocalisationError: An unknown method, or the vector and matrix disagree in length.
    """
    deviation = np.asarray(deviation, dtype=float)
    if matrix.shape[1] != deviation.shape[0]:
        raise LocalisationError(
            f"the deviation vector has {deviation.shape[0]} sensors, the signatures "
            f"{matrix.shape[1]}"
        )
    if method not in METHODS:
        raise LocalisationError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    deviation = np.nan_to_num(deviation)
    if method == "weighted":
        s = np.ones_like(deviation) if scale is None else np.asarray(scale, dtype=float)
        s = np.where(s > 0, s, 1.0)
        deviation, matrix = deviation / s, matrix / s
    if method in ("correlation", "weighted"):
        return _standardised(matrix) @ _standardised(deviation)
    energy = float(deviation @ deviation)
    norms = np.einsum("ij,ij->i", matrix, matrix)
    fit = np.maximum(matrix @ deviation, 0.0)
    explained = np.divide(fit**2, norms, out=np.zeros_like(fit), where=norms > 0)
    return explained / energy if energy > 0 else explained


@dataclass(frozen=True)
class Location:
    """The ranked candidates of one event and the main a crew would walk to cover them."""

    candidates: pd.DataFrame  # rank, node, score, pipes, distance_m (to the best candidate)
    walk_m: float  # a Steiner tree over the top-k nodes (Kou et al., see walk_length)
    method: str = "correlation"

    def to_dict(self) -> dict[str, Any]:
        """Return the ranking as plain JSON values (for a response or a run record)."""
        return {
            "method": self.method,
            "walk_m": round(self.walk_m, 1),
            "candidates": [
                {
                    "rank": int(row["rank"]),
                    "node": str(row["node"]),
                    "score": round(float(row["score"]), 4),
                    "pipes": str(row["pipes"]).split(", ") if row["pipes"] else [],
                    "distance_m": round(float(row["distance_m"]), 1),
                }
                for _, row in self.candidates.iterrows()
            ],
        }

    @property
    def best(self) -> str:
        """The top candidate node."""
        return str(self.candidates["node"].iloc[0])


def locate(
    deviation: np.ndarray,
    sigs: Signatures,
    network: Network,
    *,
    top_k: int = 5,
    method: str = "correlation",
    scale: np.ndarray | None = None,
) -> Location:
    """Rank the candidates for one event's deviation vector; return the top ``top_k``.

    Raises:
        LocalisationError: As :func:`candidate_scores`, or ``top_k`` below 1.
    """
    if top_k < 1:
        raise LocalisationError(f"top_k must be 1 or more, got {top_k}")
    scores = candidate_scores(deviation, sigs.matrix, method=method, scale=scale)
    order = np.argsort(-scores, kind="stable")[:top_k]
    nodes = [sigs.candidates[i] for i in order]
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(nodes) + 1),
            "node": nodes,
            "score": scores[order],
            "pipes": [", ".join(network.incident_pipes(n)) for n in nodes],
            "distance_m": [node_distance(network, nodes[0], n) for n in nodes],
        }
    )
    return Location(candidates=table, walk_m=walk_length(network, nodes), method=method)


def largest_drop(deviation: np.ndarray, sensors: Sequence[str], network: Network) -> str:
    """The baseline: the node of the pressure sensor whose deviation is lowest (largest drop)."""
    column = sensors[int(np.nanargmin(np.asarray(deviation, dtype=float)))]
    return pressure_sensors([column], network)[column]


def locate_leaks(
    frame: pd.DataFrame,
    leaks: pd.DataFrame,
    *,
    sigs: Signatures,
    network: Network,
    spec: LocalisationSpec,
    timestamp: str,
    scale: np.ndarray | None = None,
) -> tuple[pd.DataFrame, dict[str, Location]]:
    """Locate every detected leak of an evaluation: one row per leak, and each one's ranking.

    Args:
        frame: The evaluated rows with the derived deviation columns.
        leaks: The per-leak table (:attr:`leaklib.leak_events.EventResult.leaks`: ``leak_id``,
            ``kind``, ``pipe``, ``detected``, ``detection_time``); undetected leaks are left out.
        sigs: The signatures (:func:`signatures`).
        network: The model they were solved on.
        spec: The localisation parameters (``deviation``, ``window``, ``top_k``, ``method``).
        timestamp: The time column of ``frame``.
        scale: Each sensor's usual deviation, for ``method: weighted``
            (:func:`deviation_scale` over the training rows).

    Returns:
        The rows of :func:`located_leak` with ``leak_id`` and ``kind`` first, and the
        :class:`Location` of each leak by its id.
    """
    rows, found = [], {}
    for _, leak in leaks[leaks["detected"].astype(bool)].iterrows():
        deviation = event_deviation(
            frame,
            sensors=sigs.sensors,
            deviation=spec.deviation,
            timestamp=timestamp,
            start=leak["detection_time"],
            window=spec.window,
        )
        location = locate(
            deviation, sigs, network, top_k=spec.top_k, method=spec.method, scale=scale
        )
        found[str(leak["leak_id"])] = location
        rows.append(
            {
                "leak_id": leak["leak_id"],
                "kind": leak.get("kind"),
                **located_leak(network, location, str(leak["pipe"])),
            }
        )
    columns = ["leak_id", "kind", "pipe", "top_node", "distance_m", "nearest_k_m"]
    columns += ["within_top1", "within_topk", "walk_m"]
    return pd.DataFrame(rows, columns=columns), found


# --- scores ----------------------------------------------------------------------------------


def located_leak(network: Network, location: Location, pipe: str) -> dict[str, Any]:
    """Return one leak's row: its top node, distance to the true pipe, within 300 m at 1 and k."""
    distances = [pipe_distance(network, n, pipe) for n in location.candidates["node"]]
    return {
        "pipe": pipe,
        "top_node": location.best,
        "distance_m": distances[0],
        "nearest_k_m": min(distances),
        "within_top1": distances[0] <= RADIUS_M,
        "within_topk": min(distances) <= RADIUS_M,
        "walk_m": location.walk_m,
    }


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
    sigs = signatures(spec, columns=list(frame.columns), store=snapshots, index=store)
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
    sigs = signatures(
        spec, columns=list(dataset.features), store=snapshots, index=store, progress=False
    )
    network = read_network(network_file(spec))
    return Locator(network=network, sigs=sigs, spec=spec, timestamp=str(dataset.timestamp))
