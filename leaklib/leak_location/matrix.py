"""Leak signatures: a standard leak solved at every candidate node, cached by content."""

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
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from leaklib.leak_location.network import (
    LocalisationError,
    Network,
    candidate_nodes,
    network_file,
    pressure_sensors,
    read_network,
)
from leaklib.metadata import MetadataStore
from leaklib.params import LocalisationSpec
from leaklib.simulate import hydraulics
from leaklib.simulate.recipe import SimulationRecipe
from leaklib.snapshots import SnapshotStore
from leaklib.snapshots.base import sha256_hex

log = logging.getLogger(__name__)

FOLDER = "signatures"  # the matrices' folder in the snapshot store
SUFFIX = ".npz"
CONTENT_TYPE = "application/octet-stream"
INDEX = "signatures"  # the metadata collection: key -> the matrix's sha256
SOLVER_VERSION = 1  # bump when the way signatures are solved changes

# EPANET 2.2 toolkit codes (epanet2_enums.h)
_EN_EMITTER, _EN_PRESSURE = 3, 11


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


def signatures(
    spec: LocalisationSpec,
    *,
    columns: Sequence[str],
    store: SnapshotStore,
    index: MetadataStore,
    network: Network | None = None,
    progress: bool = True,
) -> Signatures:
    """Return the signature matrix for a table's pressure sensors, solved once and then reused.

    Args:
        spec: The localisation parameters.
        columns: The table's columns; its sensor columns must all be in the model.
        store: The snapshot store, whose ``signatures`` folder keeps the matrices.
        index: The metadata store, whose ``signatures`` collection maps a key to its matrix.
        network: The model file of ``spec`` already read (None: read here).
        progress: Show a tqdm progress bar while solving.

    Raises:
        ParameterError: The model file is missing, or a sensor or candidate is not in it.
    """
    network = network if network is not None else read_network(network_file(spec))
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
