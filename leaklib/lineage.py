"""What a run needs to be reproduced: the git commit, the locked environment, the platform."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys

from leaklib.paths import project_root

LOCK_FILE = "requirements/main.lock"


def git_info() -> dict[str, object]:
    """Return the commit and whether tracked files differ from it (None outside a git checkout)."""
    root = project_root()

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def lock_hash() -> str | None:
    """Return the SHA-256 of the runtime lock file every install uses."""
    path = project_root() / LOCK_FILE
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def environment_info() -> dict[str, str]:
    """Return the interpreter and platform a run used."""
    return {"python": sys.version.split()[0], "platform": platform.platform()}
