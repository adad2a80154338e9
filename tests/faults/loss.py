"""The loss check every fault test ends with: walk the stores and prove nothing was lost.

- no run record is left ``running``;
- every snapshot hash a record names (its snapshot, its holdout) exists and verifies;
- every succeeded run has its model (``<snapshot_store>/models/<sha256>.skops``) and its
  archived reports (``reports_archive``), each verified by hash;
- every object under a final, content-addressed name in a local store or a bucket verifies
  (a half-written file would not), and no temporary file is left in a local store;
- each champion pointer's history has no gap: every entry's ``previous_run_id`` is the entry
  before it, and the champion is a succeeded run whose model exists.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from leaklib import models, reports
from leaklib.metadata import CHAMPION, RUNS, MetadataStore
from leaklib.paths import ENV_PROJECT_DIR, is_local_path, resolve
from leaklib.snapshots import SnapshotStore, open_snapshot_store

_CONTENT_ADDRESSED = re.compile(r"^([0-9a-f]{64})\.(parquet|skops|html)$")


@dataclass
class Walked:
    """What the check looked at; ``problems`` is empty when nothing was lost."""

    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    objects_verified: int = 0
    problems: list[str] = field(default_factory=list)


@contextmanager
def _project(project: Path | None) -> Iterator[None]:
    """Resolve relative store paths against ``project`` while the check runs."""
    before = os.environ.get(ENV_PROJECT_DIR)
    if project is not None:
        os.environ[ENV_PROJECT_DIR] = str(project)
    try:
        yield
    finally:
        if project is not None:
            if before is None:
                os.environ.pop(ENV_PROJECT_DIR, None)
            else:
                os.environ[ENV_PROJECT_DIR] = before


def _verify(store: SnapshotStore, sha256: str, what: str, found: Walked) -> None:
    try:
        store.get(sha256)
        found.objects_verified += 1
    except Exception as exc:  # any failure to read back is a loss
        found.problems.append(f"{what} {sha256[:12]} in {store.uri}: {exc}")


def _walk_local(folder: Path, found: Walked) -> None:
    for path in folder.rglob("*"):
        if not path.is_file() or path.name == ".lock":
            continue
        if path.name.startswith("."):
            found.problems.append(f"temporary file left in a store: {path}")
            continue
        name = _CONTENT_ADDRESSED.match(path.name)
        if name and hashlib.sha256(path.read_bytes()).hexdigest() != name.group(1):
            found.problems.append(f"{path} does not match its name's SHA-256")


def _walk_bucket(uri: str, found: Walked) -> None:
    from google.cloud import storage

    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    for blob in storage.Client().list_blobs(bucket, prefix=prefix or None):
        name = _CONTENT_ADDRESSED.match(blob.name.rpartition("/")[2])
        if name and hashlib.sha256(blob.download_as_bytes()).hexdigest() != name.group(1):
            found.problems.append(f"gs://{bucket}/{blob.name} does not match its SHA-256")


def check_no_loss(store: MetadataStore, *, project: Path | None = None) -> Walked:
    """Walk the run records and the stores they name; return what was checked and any loss."""
    found = Walked()
    stores: dict[str, SnapshotStore] = {}
    with _project(project):
        records = store.list(RUNS)
        for record in records:
            found.runs += 1
            run_id, status = record["run_id"], record.get("status")
            if status == "running":
                found.problems.append(f"run {run_id} is left running")
            found.succeeded += status == "succeeded"
            found.failed += status == "failed"
            location = (record.get("params") or {}).get("snapshot_store")
            if location not in stores:
                stores[location] = open_snapshot_store(location)
            snapshots = stores[location]
            for key in ("snapshot", "holdout"):
                sha256 = (record.get(key) or {}).get("sha256")
                if sha256:
                    _verify(snapshots, sha256, f"run {run_id}: {key}", found)
            if status != "succeeded":
                continue
            model = (record.get("model") or {}).get("sha256")
            if not model:
                found.problems.append(f"succeeded run {run_id} has no model hash")
            else:
                _verify(models.model_store(snapshots), model, f"run {run_id}: model", found)
            archived = record.get("reports_archive") or {}
            if set(archived) != set(record.get("steps") or {}):
                found.problems.append(f"succeeded run {run_id} lacks archived reports")
            for entry in archived.values():
                _verify(
                    reports.archive_store(snapshots, run_id),
                    entry["sha256"],
                    f"run {run_id}: report {entry['file']}",
                    found,
                )
        by_id = {r["run_id"]: r for r in records}
        for pointer in store.list(CHAMPION):
            check_pointer(pointer, by_id, found)
        for location in stores:
            if is_local_path(location):
                if resolve(location).is_dir():
                    _walk_local(resolve(location), found)
            elif location.startswith("gs://"):
                _walk_bucket(location, found)
    return found


def check_pointer(pointer: dict, by_id: dict[str, dict], found: Walked) -> None:
    """Note a gap in a champion pointer's history, or a champion that is not a succeeded run."""
    history = pointer.get("history") or []
    previous = None
    for entry in history:
        if entry.get("previous_run_id") != previous:
            found.problems.append(
                f"champion {pointer['model_name']}: history gap before {entry['run_id']} "
                f"(says previous {entry.get('previous_run_id')}, history has {previous})"
            )
        previous = entry["run_id"]
    if history and history[-1]["run_id"] != pointer["run_id"]:
        found.problems.append(f"champion {pointer['model_name']}: pointer is not its last entry")
    holder = by_id.get(pointer["run_id"])
    if holder is not None and holder.get("status") != "succeeded":
        found.problems.append(
            f"champion {pointer['model_name']} is run {holder['run_id']}, "
            f"which is {holder.get('status')}"
        )


def assert_no_loss(store: MetadataStore, *, project: Path | None = None) -> Walked:
    """Run :func:`check_no_loss` and fail the test naming every loss found."""
    found = check_no_loss(store, project=project)
    assert not found.problems, "data lost or left inconsistent:\n  " + "\n  ".join(found.problems)
    return found
