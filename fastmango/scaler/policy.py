"""A scaling policy: bounds, targets, behavior, schedule, predictive settings.

Stored as JSON in the agent's state (:meth:`Policy.to_dict` / :meth:`Policy.from_dict`)
and set with ``fastmango scale``. Targets: ``cpu`` and ``gpu`` in percent of one instance,
``rps`` requests per second per instance, ``p95`` latency in seconds. Several targets →
the largest proposal wins. No target at all → CPU at 80 %, the HPA's default.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fastmango.scaler import hpa
from fastmango.scaler.schedule import Schedule, ScheduleError
from fastmango.scaler.schedule import parse as parse_schedule

DEFAULT_CPU = 80.0


class PolicyError(ValueError):
    """A policy value that cannot be used; the message names the field."""


def parse_percent(text: str | float, name: str = "value") -> float:
    """``"70%"``, ``"70"`` or ``0.7``-style fractions below 1 → percent (70.0)."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", text)
        if not m:
            raise PolicyError(f"{name}: {text!r} is not a percentage such as 70%")
        value = float(m.group(1))
    if not 0 < value <= 1000:
        raise PolicyError(f"{name}: {text!r} must be above 0%")
    return value


def parse_latency(text: str | float, name: str = "p95") -> float:
    """``"200ms"``, ``"0.2s"``, ``"0.2"`` → seconds."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text)
        if not m:
            raise PolicyError(f"{name}: {text!r} is not a latency such as 200ms")
        value = float(m.group(1)) * (0.001 if m.group(2) == "ms" else 1.0)
    if value <= 0:
        raise PolicyError(f"{name}: {text!r} must be above 0")
    return value


@dataclass(frozen=True)
class Targets:
    cpu: float | None = None  # percent
    rps: float | None = None  # req/s per instance
    p95: float | None = None  # seconds
    gpu: float | None = None  # percent

    def any(self) -> bool:
        return any(v is not None for v in (self.cpu, self.rps, self.p95, self.gpu))


@dataclass(frozen=True)
class Predictive:
    """How the forecast enters. ``utilization`` sizes the forecast peak at this share of
    one instance's capacity (None = the reactive target); the forecast is trusted only
    with ``min_history`` seconds of history and a recent error under ``max_error``."""

    enabled: bool = False
    quantile: float = 0.9
    utilization: float | None = None
    min_history: float = 86400.0
    max_error: float = 0.5
    horizon: float | None = None  # seconds; None = start-up time + one period
    #: scale-down stabilization while the forecast is not trusted (the HPA's 300 s): a
    #: short window is only safe with the forecast's floor under it
    fallback_window: float = 300.0


@dataclass(frozen=True)
class Policy:
    min: int = 1
    max: int = 10
    targets: Targets = field(default_factory=Targets)
    behavior: hpa.Behavior = field(default_factory=hpa.Behavior)
    schedule: str | None = None
    predictive: Predictive = field(default_factory=Predictive)
    dry_run: bool = False
    startup: float = 60.0  # seconds from a scale call to a serving instance

    def __post_init__(self) -> None:
        if self.min < 0:
            raise PolicyError(f"min: {self.min} is below 0")
        if self.max < 1:
            raise PolicyError(f"max: {self.max} must be at least 1")
        if self.min > self.max:
            raise PolicyError(f"min ({self.min}) is above max ({self.max})")
        if not 0 < self.predictive.quantile < 1:
            raise PolicyError("predictive.quantile must be between 0 and 1")
        if self.schedule:
            try:
                parse_schedule(self.schedule)
            except ScheduleError as exc:
                raise PolicyError(f"schedule: {exc}") from None

    @property
    def effective_targets(self) -> Targets:
        return self.targets if self.targets.any() else Targets(cpu=DEFAULT_CPU)

    def parsed_schedule(self) -> Schedule | None:
        return parse_schedule(self.schedule) if self.schedule else None

    def horizon(self, period: float = 15.0) -> float:
        """Seconds ahead the forecast must cover: at least the start-up time."""
        if self.predictive.horizon is not None:
            return max(self.predictive.horizon, self.startup)
        return math.ceil((self.startup + period) / 60) * 60 + 60

    def with_(self, **changes: Any) -> Policy:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """The inverse of :meth:`to_dict`; unknown keys are errors."""
        data = dict(data)
        try:
            targets = Targets(**data.pop("targets", {}) or {})
            predictive = Predictive(**data.pop("predictive", {}) or {})
            beh = data.pop("behavior", None)
            behavior = hpa.Behavior() if beh is None else hpa.Behavior(
                scale_up=_rules(beh.get("scale_up"), hpa.default_scale_up()),
                scale_down=_rules(beh.get("scale_down"), hpa.default_scale_down()),
            )  # fmt: skip
            return cls(targets=targets, predictive=predictive, behavior=behavior, **data)
        except TypeError as exc:
            raise PolicyError(f"policy: {exc}") from None


def _rules(data: dict[str, Any] | None, default: hpa.Rules) -> hpa.Rules:
    if data is None:
        return default
    data = dict(data)
    policies = data.pop("policies", None)
    pol = default.policies if policies is None else tuple(hpa.RatePolicy(**p) for p in policies)
    return hpa.Rules(policies=pol, **data)
