"""What the Google Cloud backends share: the project-id rule and building a client.

Cloud Storage snapshots, Firestore run records and the BigQuery source each raise their own
error type; the rules and messages they have in common live here once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

Client = TypeVar("Client")

# Project ids: 6-30 lowercase letters, digits and hyphens, starting with a letter and not
# ending with a hyphen; legacy domain-scoped ids ("example.com:my-project") too.
_PROJECT_ID = re.compile(r"^(?:[a-z][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
PROJECT_ID_RULE = "6-30 lowercase letters, digits or hyphens, starting with a letter"


def is_project_id(text: str) -> bool:
    """Return True when ``text`` is a valid Google Cloud project id."""
    return bool(_PROJECT_ID.match(text))


def no_credentials_message(subject: str, cause: Exception) -> str:
    """Return the message for a client that found no Application Default Credentials."""
    return (
        f"{subject}: no Google credentials found; set GOOGLE_APPLICATION_CREDENTIALS to a "
        f"service-account key file or run `gcloud auth application-default login` ({cause})"
    )


def build_client(make: Callable[[], Client], *, subject: str, error: type[Exception]) -> Client:
    """Call ``make`` and turn missing credentials into ``error`` naming ``subject``.

    Args:
        make: Builds the Google client (storage, Firestore, BigQuery).
        subject: What needs the client, as the user names it (``snapshot_store 'gs://b'``).
        error: The backend's own error type.
    """
    # heavy: google.auth is loaded only when a Google backend builds its client
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return make()
    except DefaultCredentialsError as exc:
        raise error(no_credentials_message(subject, exc)) from exc
