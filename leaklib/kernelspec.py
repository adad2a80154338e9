"""Register the Jupyter kernel papermill and JupyterLab use for the notebooks."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

KERNEL = "leaklib"


def install_kernel() -> str:
    """Install the ``leaklib`` kernel spec into this environment and return its folder.

    The kernel runs this interpreter and logs only critical messages, so the kernel's own
    start-up chatter never reaches a terminal, a CI log or a report.
    """
    spec = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--IPKernelApp.log_level=CRITICAL",
        ],
        "display_name": "Python (leaklib)",
        "language": "python",
        "metadata": {"debugger": True},
        # OpenMP threads (gradient boosting) that spin while waiting slow down twenty-fold
        # on a shared, busy machine; passive waiting costs nothing when the machine is idle
        "env": {"OMP_WAIT_POLICY": "PASSIVE"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / KERNEL
        folder.mkdir()
        (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
        return KernelSpecManager().install_kernel_spec(str(folder), KERNEL, prefix=sys.prefix)


if __name__ == "__main__":
    print(install_kernel())  # noqa: T201
