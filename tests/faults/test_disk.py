"""A full disk and a corrupted snapshot: nothing half-written under a final name, runs fail cleanly.

A full disk is a real one: a small tmpfs mounted for the test (root only; skipped with the
reason where ``mount`` is not permitted) and unmounted after it.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import nbformat
import pytest

from leaklib import models, reports
from leaklib import params as P
from leaklib.features import derive_dataset
from leaklib.metadata import LocalMetadataStore, MetadataError
from leaklib.run_record import RunRecord
from leaklib.schema import validate_table
from leaklib.snapshots import LocalSnapshotStore, SnapshotError, canonical_bytes, sha256_hex
from leaklib.sources import read_source
from tests.conftest import leak, make_project
from tests.faults.loss import assert_no_loss

pytestmark = pytest.mark.faults


def _mount(folder: Path, size: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill ({done.stderr.strip() or 'not permitted'})")
    return folder


@pytest.fixture
def small_disk(tmp_path):
    """Mount tmpfs disks of a given size under the test's folder; unmount them after."""
    mounted: list[Path] = []

    def make(name: str, size: str) -> Path:
        mounted.append(_mount(tmp_path / name, size))
        return mounted[-1]

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_a_snapshot_that_does_not_fit_leaves_nothing_under_its_hash(small_disk):
    disk = small_disk("snapshots", "256k")
    data = bytes(range(256)) * 4096  # 1 MiB
    store = LocalSnapshotStore(disk)
    with pytest.raises(
        SnapshotError, match=r"cannot write [0-9a-f]{64}\.parquet to .*No space left"
    ):
        store.put(data, sha256=sha256_hex(data))
    assert _files(disk) == []  # neither the snapshot nor its temporary file
    small = b"fits"
    assert store.put(small, sha256=sha256_hex(small))[1]  # the store still works once there is room


def test_a_model_that_does_not_fit_leaves_nothing_under_its_hash(small_disk):
    disk = small_disk("store", "128k")
    from sklearn.ensemble import RandomForestClassifier

    fitted = RandomForestClassifier(n_estimators=60, random_state=0).fit(
        [[i, i % 7] for i in range(400)], [i % 2 for i in range(400)]
    )
    with pytest.raises(SnapshotError, match="No space left"):
        models.save_model(fitted, store=LocalSnapshotStore(disk))
    assert _files(disk / "models") == []


def test_a_run_record_that_does_not_fit_keeps_its_previous_version_whole(small_disk):
    disk = small_disk("metadata", "64k")
    store = LocalMetadataStore(disk)
    store.create("runs", "r1", {"run_id": "r1", "status": "running"})
    with pytest.raises(MetadataError, match=r"cannot write .*r1\.json.*No space left"):
        store.transact("runs", "r1", lambda cur: {**cur, "blob": "x" * 200_000})
    assert store.get("runs", "r1") == {"run_id": "r1", "status": "running"}
    assert _files(disk) == [".lock", "r1.json"]


def test_a_report_that_does_not_fit_is_not_left_half_written(small_disk):
    disk = small_disk("reports", "48k")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Extract\n" + "A why. " * 20)]
    nb.cells += [nbformat.v4.new_code_cell(f"x{i} = {i}", execution_count=i + 1) for i in range(3)]
    notebook = disk / "01_extract.ipynb"
    nbformat.write(nb, notebook)  # fits; its HTML (styles, template) does not
    run = {"run_id": "r1", "status": "succeeded", "params": {}, "steps": {}}
    with pytest.raises(OSError, match="No space left"):
        reports.render_report(notebook, run=RunRecord.from_doc(run), step="extract")
    assert _files(disk) == ["01_extract.ipynb"]


def test_an_index_that_does_not_fit_keeps_the_previous_one_whole(small_disk, tmp_path):
    disk = small_disk("site", "256k")
    run = {
        "run_id": "r1",
        "status": "failed",
        "params": {},
        "steps": {"extract": {"status": "failed"}},  # failed in a step: listed in the index
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    index = reports.write_index([RunRecord.from_doc(run)], out_dir=disk, reports_root=disk)
    before = index.read_bytes()
    (disk / "filler").write_bytes(b"\0" * (256 * 1024 - len(before) - 8 * 1024))
    many = [RunRecord.from_doc({**run, "run_id": f"r{i}", "error": "x" * 2000}) for i in range(200)]
    with pytest.raises(OSError, match="No space left"):
        reports.write_index(many, out_dir=disk, reports_root=disk)
    assert index.read_bytes() == before
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "index.html"]


# --- whole runs: the snapshot store fills up; a snapshot was altered on disk ----------------


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("disk") / "project")


def _failed(finished, project: Path):
    assert finished.returncode == 1, finished.stdout + finished.stderr
    record = finished.record()
    assert record["status"] == "failed" and record["steps"]["extract"]["status"] == "failed"
    assert record["snapshot"] is None
    assert "SnapshotError" in (project / record["reports"]["extract"]).read_text()
    return record


@pytest.mark.slow
def test_leak_run_with_a_full_snapshot_store_fails_and_writes_no_snapshot(project, small_disk):
    disk = small_disk("full-store", "512k")  # the smoke snapshot is about 1 MB
    finished = leak(
        project, "run", "-f", "parameters/smoke.yaml", "-p", "snapshot_store", str(disk)
    )
    record = _failed(finished, project)
    assert "No space left on device" in record["error"]
    # no snapshot; the failed step's report fitted and is archived (verified by the check)
    assert not list(disk.glob("*.parquet")) and not list(disk.glob(".*"))
    assert list(record["reports_archive"]) == ["extract"]
    assert_no_loss(LocalMetadataStore(project / "stores/metadata"), project=project)


@pytest.mark.slow
def test_leak_run_on_a_snapshot_altered_on_disk_fails_naming_the_object(project):
    smoke = P.load([project / "parameters/smoke.yaml"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEAK_PROJECT_DIR", str(project))
        clean, _ = validate_table(read_source(smoke), params=smoke)
        clean, _ = derive_dataset(clean, smoke.dataset)  # the snapshot holds derived columns
    digest = hashlib.sha256(canonical_bytes(clean)).hexdigest()
    store = project / "stores/snapshots"
    store.mkdir(parents=True, exist_ok=True)
    # the snapshot this run will write, already there but altered since it was written
    (store / f"{digest}.parquet").write_bytes(canonical_bytes(clean.head(10)))

    finished = leak(project, "run", "-f", "parameters/smoke.yaml")

    record = _failed(finished, project)
    assert f"snapshot {store / digest}.parquet is corrupt: its SHA-256 is " in record["error"]
    assert f"expected {digest}" in record["error"]
    (store / f"{digest}.parquet").unlink()  # the operator removes the altered file
    assert_no_loss(LocalMetadataStore(project / "stores/metadata"), project=project)
