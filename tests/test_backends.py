"""The scheme table: which backend a parameter's URI opens, and what an unknown one says."""

import subprocess
import sys

import pytest

from leaklib import backends
from leaklib.metadata import LocalMetadataStore, MetadataError, open_metadata_store
from leaklib.snapshots import LocalSnapshotStore, SnapshotError, open_snapshot_store
from leaklib.sources import SourceError, read_source
from leaklib.sources.files import FileReader
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("open_", "error", "message"),
    [
        (
            open_snapshot_store,
            SnapshotError,
            "snapshot_store 's3://b' is not supported: use a local folder or gs://BUCKET/PREFIX",
        ),
        (
            open_metadata_store,
            MetadataError,
            "metadata_store 's3://b' is not supported: use a local folder or "
            "firestore://PROJECT/DATABASE[/COLLECTION]",
        ),
    ],
)
def test_unknown_store_scheme_names_the_parameter_and_the_supported_forms(open_, error, message):
    with pytest.raises(error) as caught:
        open_("s3://b")
    assert str(caught.value) == message


def test_unknown_source_scheme_names_the_parameter_and_the_supported_forms(params):
    with pytest.raises(SourceError) as caught:
        read_source(
            params.model_copy(
                update={"dataset": params.dataset.model_copy(update={"source": "s3://b/t.parquet"})}
            )
        )
    assert str(caught.value) == (
        "source 's3://b/t.parquet' is not supported: use a .parquet/.csv path, a file:// URI, "
        "bigquery://PROJECT.DATASET.TABLE, snapshot:SHA256 or "
        "gs://BUCKET/PREFIX/SHA256.parquet (a snapshot)"
    )


@pytest.mark.parametrize("form", ["plain", "file"])
def test_a_path_or_file_uri_opens_the_local_backends(tmp_path, form):
    uri = str(tmp_path / "s") if form == "plain" else (tmp_path / "s").as_uri()

    assert isinstance(open_snapshot_store(uri), LocalSnapshotStore)
    assert isinstance(open_metadata_store(uri), LocalMetadataStore)
    assert isinstance(backends.open_backend("sources", uri, error=SourceError), FileReader)
    assert open_snapshot_store(uri).folder == tmp_path / "s"


def test_every_kind_has_a_local_backend_and_every_entry_names_a_class():
    kinds = {kind for kind, _ in backends.BACKENDS}
    assert kinds == set(backends.PARAMETERS)
    for kind in kinds:
        assert (kind, backends.LOCAL) in backends.BACKENDS
    for (kind, scheme), _ in backends.BACKENDS.items():
        uri = "x" if scheme == backends.LOCAL else f"{scheme}://x"
        assert hasattr(backends.backend_class(kind, uri, error=ValueError), "from_uri")


def test_cloud_backends_are_imported_only_when_their_scheme_is_used():
    """Importing the packages and opening local stores loads no cloud backend or Google client."""
    script = """
import sys
from leaklib import metadata, snapshots, sources
snapshots.open_snapshot_store("/tmp/x")
metadata.open_metadata_store("/tmp/x")
cloud = ("leaklib.snapshots.gcs", "leaklib.metadata.firestore", "leaklib.sources.bigquery")
print(sorted(m for m in sys.modules if m in cloud or m.startswith("google.cloud")))
snapshots.open_snapshot_store("gs://bucket/prefix")
print("leaklib.snapshots.gcs" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[:2] == ["[]", "True"]
