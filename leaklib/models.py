"""Fitted models as files of their own: skops bytes, content-addressed, beside the snapshots.

Every run's model is written once to ``<snapshot_store>/models/<sha256>.skops`` and its hash
goes into the run record, so the champion of an earlier CI pipeline can be loaded and
verified from durable storage whatever happened to that pipeline's MLflow store (MLflow's
registry mirrors it). skops, not pickle: loading refuses any type outside scikit-learn,
numpy and Python's builtins.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from dataclasses import asdict, dataclass
from typing import Any

from leaklib.errors import LeakError
from leaklib.snapshots import SnapshotStore, sha256_hex

log = logging.getLogger(__name__)

FOLDER = "models"
SUFFIX = ".skops"
CONTENT_TYPE = "application/octet-stream"
FORMAT = "skops"
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.")


class ModelFileError(LeakError, RuntimeError):
    """A model file cannot be written, found, verified or trusted; the message says which."""


@dataclass(frozen=True)
class ModelFile:
    """Where a model file is and what it is."""

    uri: str
    sha256: str
    size_bytes: int
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        """Return the model file as plain values for the run record."""
        return asdict(self)


def model_store(store: SnapshotStore) -> SnapshotStore:
    """Return where model files live: the ``models`` folder of the snapshot store."""
    return store.within(FOLDER, suffix=SUFFIX, content_type=CONTENT_TYPE)


def trusted_types(data: bytes) -> list[str]:
    """Return the types skops must be told to trust to load these bytes; refuse foreign ones.

    skops refuses types that can crash a process when a file is forged (e.g. the tree arrays
    of gradient boosting). Only scikit-learn's, numpy's and Python's builtin types are
    trusted, and only in a file whose hash matches the one recorded when it was written.
    """
    import skops.io  # heavy (15 MiB, pytest with it), and the runner needs none

    found = skops.io.get_untrusted_types(data=data)
    foreign = [t for t in found if not t.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise ModelFileError(f"the model holds types that cannot be trusted: {', '.join(foreign)}")
    return found


_MEMO_ID = re.compile(r'"__id__": (\d+)')
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def canonical_bytes(pipeline: Any) -> bytes:
    """Return skops bytes that depend only on the model, so equal models hash equal.

    skops names its array files and memo entries after ``id()`` of the objects and stamps
    the zip entries with the current time; both are replaced by their order of appearance
    and a fixed time.
    """
    import skops.io  # heavy (15 MiB, pytest with it), and the runner needs none

    raw = zipfile.ZipFile(io.BytesIO(skops.io.dumps(pipeline)))
    schema = raw.read("schema.json").decode("utf-8")
    ids = dict.fromkeys(_MEMO_ID.findall(schema))
    ids.update(dict.fromkeys(n.split(".")[0] for n in raw.namelist() if n[0].isdigit()))
    number = {old: str(new) for new, old in enumerate(ids, start=1)}
    rename = re.compile(r"\b(" + "|".join(map(re.escape, number)) + r")\b") if number else None

    def renamed(text: str) -> str:
        return rename.sub(lambda m: number[m.group(1)], text) if rename else text

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in sorted(raw.infolist(), key=lambda i: renamed(i.filename)):
            entry = zipfile.ZipInfo(renamed(info.filename), date_time=_FIXED_TIME)
            entry.compress_type = info.compress_type
            data = raw.read(info.filename)
            target.writestr(
                entry, renamed(data.decode()).encode() if info.filename == "schema.json" else data
            )
    return out.getvalue()


def save_model(pipeline: Any, *, store: SnapshotStore) -> ModelFile:
    """Write a fitted pipeline once, content-addressed, and return where it went.

    Args:
        pipeline: The fitted scikit-learn pipeline.
        store: The run's snapshot store; the file goes to its ``models`` folder.
    """
    data = canonical_bytes(pipeline)
    trusted_types(data)  # refuse now what could not be loaded later
    digest = sha256_hex(data)
    uri, created = model_store(store).put(data, sha256=digest)
    log.info("model %s %s (%d bytes)", digest[:12], "written" if created else "reused", len(data))
    return ModelFile(uri=uri, sha256=digest, size_bytes=len(data))


def load_model_file(sha256: str, *, store: SnapshotStore) -> Any:
    """Read a model file by hash, verify it, and return the fitted pipeline."""
    try:
        data = model_store(store).get(sha256)
    except LeakError as exc:  # SnapshotError: missing, unreachable or altered
        raise ModelFileError(f"model {sha256}: {exc}") from exc
    import skops.io  # heavy (15 MiB, pytest with it), and the runner needs none

    return skops.io.loads(data, trusted=trusted_types(data))
