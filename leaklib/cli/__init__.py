"""The ``leak`` command: run the pipeline, list parameters, simulate data, publish reports.

Light on purpose. The commands are listed once, in :data:`COMMANDS`: each name with its
one-line help and the ``"module:function"`` that adds its options and handler, loaded only
when that command is called (as :mod:`leaklib.backends` lists the storage backends). So
``leak --help`` loads no command, ``leak params`` only the parameter model, and only
``leak serve`` the web stack. For ``leak run`` the run's notebook kernel
(:class:`leaklib.pipeline.kernel.RunKernel`) starts before the command's module loads, so its
start overlaps the seconds the library takes to load.

Every parser, handler and ``print`` of the project lives in this package; the library returns
values or raises. One error convention: a leaklib error is printed as
``leak COMMAND: error: MESSAGE`` on stderr with exit code 2; a run that ends ``failed``
exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# jsonschema (loaded by nbformat, so by papermill, nbconvert and the runner) imports
# rfc3987-syntax when it is installed, and that module compiles a grammar on import: 1.1 s of
# every `leak` command, for IRI format checks that no notebook or schema here uses. Marking it
# absent, at the edge and before anything loads jsonschema, makes jsonschema skip them.
sys.modules.setdefault("rfc3987_syntax", None)

from leaklib.errors import LeakError  # noqa: E402 - after the line above
from leaklib.pipeline.kernel import RunKernel  # noqa: E402


@dataclass(frozen=True)
class Command:
    """A ``leak`` subcommand: its one-line help, and where its options and handler are."""

    help: str
    setup: str  # "module:function" taking the command's parser; loaded when the command is called


COMMANDS: dict[str, Command] = {
    "run": Command(
        "run extract -> train -> evaluate and render the reports",
        "leaklib.cli.run_command:configure_run",
    ),
    "reproduce": Command(
        "run a past run again on its recorded snapshot and parameters; compare metrics",
        "leaklib.cli.run_command:configure_reproduce",
    ),
    "score": Command(
        "score a table with the champion (or --run) and write its alarms to --out",
        "leaklib.cli.score_command:configure",
    ),
    "params": Command(
        "list every parameter, or print a merged set with -f/-p",
        "leaklib.cli.params_command:configure",
    ),
    "simulate": Command(
        "simulate leak scenarios on L-TOWN (regenerates the embedded default dataset)",
        "leaklib.cli.simulate:configure",
    ),
    "pages": Command(
        "build the static report site (index, trend chart, every run's reports)",
        "leaklib.cli.pages_command:configure",
    ),
    "champion": Command(
        "show the current champion model and its history",
        "leaklib.cli.champion_command:configure_champion",
    ),
    "promote": Command(
        "make a run's registered model the champion by hand (recorded with a reason)",
        "leaklib.cli.champion_command:configure_promote",
    ),
    "serve": Command(
        "serve the HTTP API: start and follow runs, read reports, score with the champion",
        "leaklib.cli.serve_command:configure",
    ),
}
_NO_RUN = {"-h", "--help", "--explain"}  # `leak run` options that run no notebook


def load_setup(command: str) -> Callable[[argparse.ArgumentParser], None]:
    """Import the module of ``command``'s setup function and return that function."""
    module, _, function = COMMANDS[command].setup.partition(":")
    # the one import chosen at run time: only the called command's module loads
    return getattr(importlib.import_module(module), function)


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand the command line names (its first word that is not an option)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the ``leak`` parser: every subcommand listed, ``command``'s options loaded."""
    parser = argparse.ArgumentParser(prog="leak", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log leaklib's progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, listed in COMMANDS.items():
        parser_of_command = sub.add_parser(name, help=listed.help)
        if name == command:
            load_setup(name)(parser_of_command)
    return parser


def early_kernel(argv: Sequence[str]) -> RunKernel | None:
    """Start the run's kernel when the command line asks for a run; None otherwise."""
    if not argv or argv[0] != "run" or _NO_RUN.intersection(argv[1:]):
        return None
    try:
        return RunKernel().start()
    except Exception:  # e.g. the kernel is not registered: the run itself says so
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``leak`` console script: parse, run the command, its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    kernel = early_kernel(argv)  # before the command's module (the library) loads: overlap
    try:
        args = build_parser(chosen_command(argv)).parse_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        args.kernel = kernel
        try:
            code = args.func(args)
            sys.stdout.flush()  # inside the try: a closed pipe shows here, not at interpreter exit
            return code
        except LeakError as exc:
            # a user's error names what is wrong, and a traceback would hide it; anything
            # else is a bug, and shows its traceback
            print(f"leak {args.command}: error: {exc}", file=sys.stderr)
            return 2
    except BrokenPipeError:
        return closed_pipe()
    finally:
        if kernel is not None:
            kernel.close()  # a run closes it itself; a refused one leaves it to us


SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what the shell reports for `yes | head`


def closed_pipe() -> int:
    """Stop quietly when the reader of our output went away (``leak params | head``).

    Standard output is pointed at /dev/null so that Python's own flush at exit does not
    raise again; the exit code is the one a process ended by SIGPIPE has.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return SIGPIPE_EXIT
