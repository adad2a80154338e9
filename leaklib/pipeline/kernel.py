"""The one notebook kernel of a ``leak run``: started early, warmed once, reset between notebooks.

Light on purpose (jupyter_client, no pandas or papermill): ``leak`` starts the kernel of a run
before it loads the rest of the library, so the two overlap.
"""

from __future__ import annotations

import ast
import json
import logging
import threading
from typing import Any

from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from leaklib.errors import LeakError
from leaklib.kernelspec import KERNEL
from leaklib.paths import project_root
from leaklib.steps import STEPS, notebook_path

log = logging.getLogger(__name__)


class KernelError(LeakError, RuntimeError):
    """The run's kernel did not answer, or code the runner sent it failed."""


def warm_up_code() -> str:
    """Return every notebook's import cells (code cells of import statements only), for the kernel.

    A cell counts when each of its statements is an import (one written over several lines, as
    ruff formats a long one, included). MLflow is added when a notebook imports
    ``leaklib.tracking``, which loads it on first use.
    """
    lines: list[str] = []
    for notebook in (notebook_path(step) for step in STEPS):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if cell["cell_type"] == "code":
                lines += [line for line in _imports_only(source) if line not in lines]
    if any("tracking" in line for line in lines):
        lines.append("import mlflow")
    return "\n".join(lines)


def _imports_only(source: str) -> list[str]:
    """The cell's statements, one line each, when every one is an import (else none)."""
    try:
        statements = ast.parse(source).body
    except SyntaxError:  # a cell magic or shell escape: not an import cell
        return []
    if not statements or not all(isinstance(s, ast.Import | ast.ImportFrom) for s in statements):
        return []
    return [ast.unparse(statement) for statement in statements]


# Run in the run's kernel between two notebooks: what a notebook defined is gone (names, the
# output history, open figures; the execution counter and the input history start anew, as
# in a fresh kernel), what was imported stays imported, and the memory the notebook's data
# held goes back to the system (glibc's malloc keeps freed heap pages otherwise: 130 MiB of
# the default run's extract stayed in the kernel through train).
RESET_CODE = """\
get_ipython().reset(new_session=True)
import gc as _gc, matplotlib.pyplot as _plt
_plt.close("all")
del _plt
_gc.collect()
del _gc
import ctypes as _ctypes
try:  # glibc keeps freed heap pages; give them back before the next notebook loads its data
    _ctypes.CDLL("libc.so.6").malloc_trim(0)
except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
    pass
del _ctypes
"""


class RunKernel:
    """The one kernel a run's notebooks execute in, one after the other.

    ``leak run`` starts it before loading the library, so the kernel's start and every
    notebook's imports (pandas, scikit-learn, matplotlib, MLflow: seconds) overlap the
    runner's own start; otherwise it starts with the first step that is not cached. Either
    way they are paid once per run, not once per step. Between two notebooks the kernel's
    namespace is reset (:data:`RESET_CODE`): a notebook sees none of the names the one before
    it defined, as in a fresh kernel, and still runs every cell itself, imports included. One
    kernel means one process holding a step's data, not two.
    """

    def __init__(self) -> None:
        self.km: _KernelManager | None = None
        self._used = False
        self._closed = False
        self._ready: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self.km is not None

    def start(self) -> RunKernel:
        """Start the kernel and, in the background, run every notebook's imports in it."""
        if self.km is not None:
            return self
        self.km = _KernelManager(kernel_name=KERNEL)
        run_sync(self.km.start_kernel)(cwd=str(project_root()))
        self._ready = threading.Thread(
            target=self._warm_up,
            args=(warm_up_code(),),
            daemon=True,
            name="warm-kernel",
        )
        self._ready.start()
        return self

    def execute(self, code: str) -> None:
        """Run code in the kernel, quietly; raise KernelError if it did not succeed."""
        if self.km is None:
            raise KernelError("the run's kernel was never started")
        if not run_sync(self.km.is_alive)():  # killed by a signal or out of memory
            raise KernelError("the run's kernel is not running")
        client = BlockingKernelClient()
        client.load_connection_info(self.km.get_connection_info())
        try:
            client.start_channels()
            client.wait_for_ready(timeout=120)
            reply = client.execute_interactive(
                code,
                store_history=False,
                timeout=300,
                output_hook=lambda message: None,  # the runner's own code prints nothing useful
            )
        except Exception as exc:
            raise KernelError(f"the run's kernel did not answer: {exc}") from exc
        finally:
            client.stop_channels()
        if reply["content"]["status"] != "ok":
            content = reply["content"]
            raise KernelError(f"{content.get('ename')}: {content.get('evalue')}")

    def _warm_up(self, code: str) -> None:
        try:
            self.execute(code)
        except KernelError:  # the notebook's own import cell will fail and say why
            log.info("the run's kernel could not be warmed", exc_info=True)

    def ready(self) -> AsyncKernelManager:
        """Return the kernel's manager for papermill, clean for the next notebook.

        Raises:
            KernelError: the namespace could not be reset (the step then fails, saying so).
        """
        self.start()
        self._ready.join()
        if self._used:
            self.execute(RESET_CODE)
        self._used = True
        return self.km

    def close(self) -> None:
        """Stop the kernel in the background (papermill leaves a kernel it did not start)."""
        if self.km is not None and not self._closed:
            self._closed = True
            threading.Thread(target=self.km.stop, daemon=True).start()


class _KernelManager(AsyncKernelManager):
    """A kernel manager that also closes the clients papermill opened on it."""

    def client(self, **kwargs: Any) -> Any:
        client = super().client(**kwargs)
        self.__dict__.setdefault("opened", []).append(client)
        return client

    def stop(self) -> None:
        """Close the clients' channels and shut the kernel down."""
        for client in self.__dict__.get("opened", []):
            client.stop_channels()
        run_sync(self.shutdown_kernel)()
