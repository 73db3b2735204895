"""Building blocks of the settings model: durations, sizes and the strict base model.

Each section of the settings lives in its own module (``settings_logs``, ``settings_alerts``…)
built from these; :mod:`fastmango.agent.settings` assembles them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10,
               "mib": 2**20, "gib": 2**30}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$", re.IGNORECASE)


def parse_duration(value: Any) -> Any:
    """``"10s"``, ``"1.5m"``, ``"2h"``, ``"30d"``, ``"250ms"`` or a number of seconds."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError("a duration such as 10s, 5m, 2h or 30d")
        return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    return value


def parse_size(value: Any) -> Any:
    """``"200MB"``, ``"1GiB"`` or a number of bytes."""
    if isinstance(value, str):
        m = _SIZE.match(value)
        if not m:
            raise ValueError("a size such as 200MB or 1GiB")
        return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class Model(BaseModel):
    """Base of every settings section: unknown keys are errors, defaults are validated."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
