"""The network model of localisation: its junctions, pipes and sensors, and distances along its pipes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra, minimum_spanning_tree

from leaklib.errors import LeakError
from leaklib.params import LocalisationSpec, ParameterError, Params
from leaklib.paths import resolve
from leaklib.simulate.recipe import network_path
from leaklib.snapshots.base import sha256_hex


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
