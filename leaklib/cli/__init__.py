"""The ``leak`` command. Its parsers and handlers are in :mod:`leaklib.cli.commands`.

This entry point is light on purpose: for ``leak run`` it starts the run's notebook kernel
(:class:`leaklib.pipeline.kernel.RunKernel`), then loads the library, so the kernel's start and
its imports overlap the 2 to 3 s the library takes to load.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# jsonschema (loaded by nbformat, so by papermill, nbconvert and the runner) imports
# rfc3987-syntax when it is installed, and that module compiles a grammar on import: 1.1 s of
# every `leak` command, for IRI format checks that no notebook or schema here uses. Marking it
# absent, at the edge and before anything loads jsonschema, makes jsonschema skip them.
sys.modules.setdefault("rfc3987_syntax", None)

from leaklib.pipeline.kernel import RunKernel  # noqa: E402 - after the line above

_NO_RUN = {"-h", "--help", "--explain"}  # `leak run` options that run no notebook


def early_kernel(argv: Sequence[str]) -> RunKernel | None:
    """Start the run's kernel when the command line asks for a run; None otherwise."""
    if not argv or argv[0] != "run" or _NO_RUN.intersection(argv[1:]):
        return None
    try:
        return RunKernel().start()
    except Exception:  # e.g. the kernel is not registered: the run itself says so
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``leak`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    kernel = early_kernel(argv)
    # the library (pandas, scikit-learn, papermill, MLflow's helpers): loaded once the kernel
    # is starting, so the two overlap
    from leaklib.cli import commands

    try:
        code = commands.main(argv, kernel=kernel)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return closed_pipe()


SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what the shell reports for `yes | head`


def closed_pipe() -> int:
    """Stop quietly when the reader of our output went away (``leak params | head``).

    Standard output is pointed at /dev/null so that Python's own flush at exit does not
    raise again; the exit code is the one a process ended by SIGPIPE has.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return SIGPIPE_EXIT


if __name__ == "__main__":
    sys.exit(main())
