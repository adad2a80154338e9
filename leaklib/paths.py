"""Where the project lives, so relative paths mean the same from the CLI and from JupyterLab."""

from __future__ import annotations

import os
from pathlib import Path

ENV_PROJECT_DIR = "LEAK_PROJECT_DIR"


def project_root() -> Path:
    """Return the project folder: ``$LEAK_PROJECT_DIR``, else the nearest parent with parameters/."""
    explicit = os.environ.get(ENV_PROJECT_DIR)
    if explicit:
        return Path(explicit).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "parameters" / "default.yaml").is_file():
            return folder
    raise FileNotFoundError(
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
