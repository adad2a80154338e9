"""The pieces every parameter group shares: the error, the strict base model, durations, ids.

Imported by the group modules and by :mod:`leaklib.params`, which re-exports what callers use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict

from leaklib import estimators, metrics
from leaklib.errors import LeakError

FeatureType = Literal["numeric", "categorical", "boolean"]
ModelName = Literal[estimators.NAMES]  # type: ignore[valid-type]
PrimaryMetric = Literal[metrics.PRIMARY]  # type: ignore[valid-type]


class ParameterError(LeakError, ValueError):
    """A parameter set is invalid; the message names the key and what was expected.

    Attributes:
        by_key: ``(key, problem)`` for each bad key, the problem naming its key; empty when
            the error is not about one key (an unreadable file).
    """

    def __init__(self, message: str, *, by_key: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message, problems=[problem for _, problem in by_key])
        self.by_key = list(by_key)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: str) -> str:
    """Refuse a text that is not a duration of zero or more (``"30min"``, ``"2h"``, ``"1D"``)."""
    try:
        parsed = pd.Timedelta(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a duration (e.g. '30min', '2h', '1D')") from None
    if pd.isna(parsed) or parsed < pd.Timedelta(0):
        raise ValueError(f"{value!r} must be a duration of zero or more")
    return value


DurationText = Annotated[str, AfterValidator(_duration)]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> Any:
    """Turn ``"2h"``, ``"90min"``, ``"1.5d"`` or ``"30s"`` into a timedelta (else pass through).

    A number alone is refused: it would not say its unit.
    """
    if isinstance(value, bool | int | float):
        raise ValueError(f"give a duration with its unit, such as '2h' or '45min' (got {value!r})")
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])
    return value  # a timedelta, or an ISO 8601 duration (PT2H) that pydantic reads


# the one rule for a run id and a model name: they become paths, URLs and document ids
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ID_RE = re.compile(ID_PATTERN)
