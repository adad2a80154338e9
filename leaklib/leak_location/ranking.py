"""Ranking: candidate nodes scored by how well their signature explains an event's deviations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from leaklib.leak_location.matrix import Signatures
from leaklib.leak_location.network import (
    LocalisationError,
    Network,
    node_distance,
    pipe_distance,
    pressure_sensors,
    walk_length,
)
from leaklib.params import LocalisationSpec

RADIUS_M = 300.0  # BattLeDIM: a location counts when within 300 m of the true pipe
METHODS = ("correlation", "nnls", "weighted")


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
