"""The step cache: a step whose inputs are unchanged is taken from the run that produced it.

Each step's key is the SHA-256 of its inputs (:class:`StepKey`):

- ``notebook``: the notebook's cells, type and source only (no outputs, counts or metadata);
- ``params``: each parameter the notebook declares, after merging (``run_id`` left out);
- ``inputs``: what the step reads. Extract: the source's identity (a local file's content
  hash, the hash of ``snapshot:<sha256>``; a BigQuery table has none, so its extract is never
  cached). Train: the snapshot's hash. Evaluate: the snapshot, holdout and model hashes;
- ``lock``: the hash of ``requirements/main.lock``;
- ``leaklib``: the hash of the package's files (``.py`` and report templates).

The cache is the collection ``cache`` of the metadata store, so it works the same on a local
folder and on Firestore, and across CI pipelines: one document per key holding the run whose
step succeeded with it, the key's components (for ``leak run --explain``) and which fields
of the run record the step wrote. A hit is reused by reference: the new run record gets the
earlier run's values of those fields (through :func:`leaklib.runs.reuse_step`), which name
the content-addressed snapshot, holdout, model and archived reports.

The champion is deliberately not an input: a cached evaluate carries over the earlier
decision, marked ``cached_from``, and does not run the gate again (``leak run --no-cache``
judges the model against the current champion).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import leaklib
from leaklib import run_record, runs
from leaklib.leak_events import leak_file_hashes
from leaklib.lineage import lock_hash
from leaklib.metadata import CACHE, MetadataStore
from leaklib.params import Params
from leaklib.run_record import RunRecord
from leaklib.sources import source_identity
from leaklib.steps import READS

log = logging.getLogger(__name__)

# fields of the run record that are bookkeeping, never a step's output
_BOOKKEEPING = frozenset(
    {
        "run_id",
        "status",
        "steps",
        "created_at",
        "updated_at",
        "finished_at",
        "heartbeat_at",
        "error",
        "params",
        "reports",
        "reports_archive",
    }
)
_PACKAGE_SUFFIXES = (".py", ".j2", ".css", ".json")


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def notebook_hash(path: Path) -> str:
    """Return the hash of a notebook's cells (type and source), ignoring outputs and metadata."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    return _digest(
        [
            [
                cell["cell_type"],
                "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"],
            ]
            for cell in cells
        ]
    )


_package: dict[str, str] = {}


def package_hash() -> str:
    """Return the hash of the ``leaklib`` package's source files (computed once per process)."""
    root = Path(leaklib.__file__).parent
    if str(root) not in _package:
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*")):
            if path.suffix in _PACKAGE_SUFFIXES and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
        _package[str(root)] = digest.hexdigest()
    return _package[str(root)]


@dataclass(frozen=True)
class StepKey:
    """A step's cache key and the components it is the hash of."""

    step: str
    components: dict[str, Any]
    uncacheable_reason: str | None = None  # why the step cannot be cached, when it cannot

    @property
    def key(self) -> str:
        """The SHA-256 of the components (the document id in the ``cache`` collection)."""
        return _digest({"step": self.step, **self.components})


def step_key(
    step: str,
    *,
    notebook: Path,
    declared: dict[str, Any],
    run: RunRecord,
    params: Params,
) -> StepKey:
    """Return the cache key of ``step`` for a run whose earlier steps are in ``run``.

    Args:
        step: ``extract``, ``train`` or ``evaluate``.
        notebook: The step's source notebook.
        declared: The parameters the notebook declares, as the runner injects them.
        run: The run record as it stands before the step (earlier steps done or reused).
        params: The run's validated parameters (for the source's identity).
    """
    inputs: dict[str, Any] = {}
    reason = None
    if step == runs.STEPS[0]:
        identity = source_identity(params)
        inputs["source"] = identity
        inputs["leaks"] = leak_file_hashes(params.dataset)  # snapshotted by the extract too
        if identity is None:
            reason = (
                f"source {params.dataset.source!r} has no content version to key on; "
                "use source snapshot:<sha256> to cache its extract"
            )
    for name, field_name in READS[step]:
        inputs[name] = (run.get(field_name) or {}).get("sha256")
        if inputs[name] is None:
            reason = reason or f"the run has no {name} hash yet"
    components = {
        "notebook": notebook_hash(notebook),
        "params": {k: _digest(v) for k, v in sorted(declared.items()) if k != "run_id"},
        "inputs": inputs,
        "lock": lock_hash(),
        "leaklib": package_hash(),
    }
    return StepKey(step=step, components=components, uncacheable_reason=reason)


@dataclass
class Lookup:
    """What the cache holds for a step key: the run to reuse, or why the step must run."""

    key: StepKey
    entry: dict[str, Any] | None = None  # the cache document of a hit
    source: RunRecord | None = None  # the earlier run record of a hit
    changed: list[str] = field(default_factory=list)  # inputs that differ from the last entry

    @property
    def hit(self) -> bool:
        """True when the step can be taken from an earlier run."""
        return self.entry is not None and self.source is not None

    @property
    def run_id(self) -> str | None:
        """The run whose step is reused, on a hit."""
        return self.entry["run_id"] if self.entry else None

    def explain(self) -> str:
        """Say, in one line, whether the step comes from the cache and, if not, why."""
        if self.hit:
            return f"cached from run {self.run_id}"
        if self.key.uncacheable_reason:
            return f"runs: {self.key.uncacheable_reason}"
        if self.changed:
            return "runs: changed " + ", ".join(self.changed)
        return "runs: no earlier run of this step with these inputs"


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Name the components that differ (a parameter or an input by name)."""
    names = []
    for part in ("notebook", "lock", "leaklib"):
        if old.get(part) != new.get(part):
            names.append(
                {"lock": "requirements/main.lock", "leaklib": "leaklib sources"}.get(
                    part, "notebook"
                )
            )
    for part, label in (("params", "parameter"), ("inputs", "input")):
        before, after = old.get(part) or {}, new.get(part) or {}
        names += [
            f"{label} {k}"
            for k in sorted(set(before) | set(after))
            if before.get(k) != after.get(k)
        ]
    return names


def lookup(store: MetadataStore, key: StepKey) -> Lookup:
    """Find an earlier run whose step succeeded with this key.

    A miss says which inputs differ from the newest entry of the same step, for ``--explain``.
    """
    if key.uncacheable_reason:
        return Lookup(key=key)
    entry = store.get(CACHE, key.key)
    if entry is not None:
        source = run_record.get_run_or_none(store, entry["run_id"])
        if source is not None and source.succeeded(key.step):
            return Lookup(key=key, entry=entry, source=source)
        log.info(
            "cache entry %s names run %s, whose %s did not succeed",
            key.key[:12],
            entry["run_id"],
            key.step,
        )
    same_step = [e for e in store.list(CACHE) if e.get("step") == key.step]
    if not same_step:
        return Lookup(key=key)
    newest = max(same_step, key=lambda e: e.get("created_at") or "")
    return Lookup(key=key, changed=_changes(newest.get("components") or {}, key.components))


def step_outputs(before: RunRecord, after: RunRecord) -> dict[str, list[str] | None]:
    """Return the fields a step wrote to the run record: a field, or the keys of a merged dict.

    ``None`` means the whole field; a list names the keys the step added to a mapping that
    several steps fill (``metrics``). Compared as stored documents: the field names are data.
    """
    before, after = before.to_doc(), after.to_doc()
    outputs: dict[str, list[str] | None] = {}
    for name, value in after.items():
        if name in _BOOKKEEPING or before.get(name) == value:
            continue
        old = before.get(name)
        if isinstance(old, dict) and old and isinstance(value, dict):
            outputs[name] = sorted(k for k in value if old.get(k) != value[k])
        else:
            outputs[name] = None
    return outputs


def remember(
    store: MetadataStore, key: StepKey, *, run_id: str, outputs: dict[str, list[str] | None]
) -> None:
    """Record that ``run_id``'s step succeeded with ``key`` (a newer run replaces an older one)."""
    if key.uncacheable_reason:
        return
    entry = {
        "key": key.key,
        "step": key.step,
        "run_id": run_id,
        "created_at": runs.now(),
        "components": key.components,
        "outputs": outputs,
    }
    store.transact(CACHE, key.key, lambda current: entry)
