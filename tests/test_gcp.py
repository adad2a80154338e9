"""The rules and messages the Google Cloud backends share."""

import pytest
from google.auth.exceptions import DefaultCredentialsError

from leaklib.gcp import build_client, is_project_id
from leaklib.snapshots import SnapshotError


@pytest.mark.parametrize("project", ["leak-test", "example.com:my-project", "a12345"])
def test_valid_project_ids_are_accepted(project):
    assert is_project_id(project)


@pytest.mark.parametrize("project", ["Leak_Test", "short", "ends-", "1abcdef", "x; DROP", "a`b-cd"])
def test_invalid_project_ids_are_refused(project):
    assert not is_project_id(project)


def test_missing_credentials_become_the_backends_error_naming_the_parameter():
    def make():
        raise DefaultCredentialsError("nothing here")

    with pytest.raises(
        SnapshotError, match=r"^snapshot_store 'gs://b': no Google credentials found; set GOOGLE_"
    ):
        build_client(make, subject="snapshot_store 'gs://b'", error=SnapshotError)


def test_a_built_client_is_returned():
    assert build_client(lambda: "client", subject="x", error=SnapshotError) == "client"
