"""The ``leak`` command. Its parsers and handlers are in :mod:`leaklib.cli.commands`.

This entry point is light on purpose: for ``leak run`` it starts the run's notebook kernel
(:class:`leaklib.pipeline.kernel.RunKernel`), then loads the library, so the kernel's start and
its imports overlap the 2 to 3 s the library takes to load.
"""

from __future__ import annotations

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

    return commands.main(argv, kernel=kernel)


if __name__ == "__main__":
    sys.exit(main())
