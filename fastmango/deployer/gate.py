"""The health gate's verdict: the new release against the previous one (Flagger-style).

Pure: windows of samples in, a verdict with its reasons out. The agent's deploys service
queries the store and acts on the verdict.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Thresholds:
    max_error_ratio: float = 0.05
    max_error_ratio_increase: float = 0.01
    max_p95_ratio: float = 1.5
    min_p95_increase: float = 0.05
    min_samples: int = 2


@dataclass(frozen=True)
class Check:
    """One check of the new release: each metric's figure before and after."""

    verdict: Verdict
    reasons: tuple[str, ...]
    figures: dict[str, dict[str, float | None]] = field(default_factory=dict)


def _median(values: Sequence[float], need: int) -> float | None:
    return statistics.median(values) if len(values) >= need else None


def check(
    before_errors: Sequence[float],
    after_errors: Sequence[float],
    before_p95: Sequence[float],
    after_p95: Sequence[float],
    t: Thresholds,
) -> Check:
    """Compare the windows' medians (robust against one slow scrape)."""
    be, ae = _median(before_errors, 1), _median(after_errors, t.min_samples)
    bp, ap = _median(before_p95, 1), _median(after_p95, t.min_samples)
    figures = {
        "http_error_ratio": {"before": be, "after": ae},
        "http_request_duration_p95_seconds": {"before": bp, "after": ap},
    }
    fails: list[str] = []
    notes: list[str] = []
    if ae is None:
        notes.append(f"error ratio: fewer than {t.min_samples} samples since the rollout")
    else:
        base = be if be is not None else 0.0
        if ae > t.max_error_ratio and ae > base + t.max_error_ratio_increase:
            fails.append(
                f"error ratio {ae:.2%} > {t.max_error_ratio:.2%} (previous release {base:.2%})"
            )
    if ap is None:
        notes.append(f"p95: fewer than {t.min_samples} samples since the rollout")
    elif bp is not None and ap > bp * t.max_p95_ratio and ap - bp > t.min_p95_increase:
        fails.append(
            f"p95 latency {ap * 1000:.0f} ms > {t.max_p95_ratio:g}× the previous "
            f"release's {bp * 1000:.0f} ms"
        )
    if fails:
        return Check("fail", tuple(fails), figures)
    if ae is None and ap is None:
        return Check("inconclusive", tuple(notes), figures)
    return Check("pass", tuple(notes) or ("error ratio and p95 within thresholds",), figures)


@dataclass
class GateState:
    """Failed checks in a row; the gate trips at ``threshold``."""

    threshold: int
    failed: int = 0
    checks: int = 0

    def add(self, c: Check) -> bool:
        """Record one check; True when the gate trips (roll back)."""
        self.checks += 1
        if c.verdict == "fail":
            self.failed += 1
        elif c.verdict == "pass":
            self.failed = 0
        return self.failed >= self.threshold
