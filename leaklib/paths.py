"""Where the project lives, so relative paths mean the same from the CLI and from JupyterLab."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from leaklib.errors import LeakError

ENV_PROJECT_DIR = "LEAK_PROJECT_DIR"


class ProjectNotFound(LeakError, FileNotFoundError):  # noqa: N818 - reads as what happened
    """No project folder: ``leak`` runs outside the repository and without the variable."""


def project_root() -> Path:
    """Return the project folder: ``$LEAK_PROJECT_DIR``, else the nearest parent with parameters/."""
    explicit = os.environ.get(ENV_PROJECT_DIR)
    if explicit:
        return Path(explicit).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "parameters" / "default.yaml").is_file():
            return folder
    raise ProjectNotFound(
        f"no project found from {here}: run inside the repository or set {ENV_PROJECT_DIR}"
    )


def resolve(path: str | Path) -> Path:
    """Resolve a local path (or ``file://`` URI) against the project folder."""
    text = str(path)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    candidate = Path(text).expanduser()
    return candidate if candidate.is_absolute() else project_root() / candidate


def is_local_path(uri: str) -> bool:
    """Return True for a plain path or ``file://`` URI, False for a cloud URI."""
    return "://" not in uri or uri.startswith("file://")


def write_atomic(path: str | Path, data: bytes | str, *, mode: int | None = None) -> Path:
    """Write a file whole or not at all: a temporary file beside it, synced, then renamed.

    A full disk or a crash leaves the previous file (or none) under ``path``, never part of
    the new one; the temporary file is removed on failure.

    Args:
        path: The final name.
        data: Bytes, or text written as UTF-8.
        mode: Permissions for the new file (``0o444`` for write-once objects); default 0o644.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644 if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def writable_folder(folder: Path, *, parameter: str, error: type[Exception]) -> None:
    """Create a store's folder if needed; ``error`` naming ``parameter`` unless it is writable."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"{parameter} {str(folder)!r} cannot be created: {exc}") from exc
    if not os.access(folder, os.W_OK):
        raise error(f"{parameter} {str(folder)!r} is not writable")
