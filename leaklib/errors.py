"""The one family of errors a user can cause, and fix: :class:`LeakError` and its kinds.

Every error of leaklib that a bad parameter, table, store address or command line can
cause subclasses :class:`LeakError` (keeping its old built-in base, ``ValueError`` or
``RuntimeError``, for callers that catch those). The command line prints a LeakError as
``leak COMMAND: error: MESSAGE`` (exit 2) and the API answers it with the status
:mod:`leaklib.serve.errors` maps its type to; anything else is a bug, and shows its traceback.
Imports nothing of leaklib, so any module can raise these.
"""

from __future__ import annotations

from collections.abc import Sequence


class LeakError(Exception):
    """An error a user can cause; the message says what is wrong and what to change.

    Attributes:
        problems: Every problem, each a sentence naming its key or column; one entry, the
            message, unless the raiser lists several.
    """

    def __init__(self, message: str = "", *, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) or [message]


class NotFoundError(LeakError):
    """Something named (a run, a model, a champion) does not exist."""
