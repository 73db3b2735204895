"""Roll-ups of the fleet's signals, and the fleet's sums and averages over them (pure).

Every agent folds its samples into buckets ``rollup_interval`` wide (10 s by default):
per (signal, bucket) the sum, count and maximum of the values, so buckets written in
several parts merge exactly. The leader reads the buckets of a window and asks
:func:`aggregate` for the fleet's figures: each instance's mean over the window first,
then their sum (requests per second of the whole fleet), their mean (p95 latency, error
ratio, CPU utilisation of a typical instance) and the largest value seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from fastmango.series import Sample


@dataclass(frozen=True, slots=True)
class Bucket:
    """One signal of one instance over [start, start + width)."""

    name: str
    start: float
    sum: float
    count: int
    max: float

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan


@dataclass(frozen=True, slots=True)
class FleetSignal:
    """One signal over the fleet in a window.

    ``sum``: the instances' means added up (fleet load); ``avg``: the mean of the
    instances' means; ``max``: the largest value any instance saw; ``instances``: how
    many instances reported it; ``per_instance``: instance id → its mean.
    """

    name: str
    sum: float
    avg: float
    max: float
    instances: int
    per_instance: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "sum": self.sum,
            "avg": self.avg,
            "max": self.max,
            "instances": self.instances,
            "per_instance": dict(self.per_instance),
        }


def bucket_start(ts: float, width: float) -> float:
    """The start of the bucket holding ``ts``."""
    return math.floor(ts / width) * width


def bucketize(samples: Iterable[Sample], width: float) -> list[Bucket]:
    """Fold samples into buckets per (name, bucket start); labels are not kept, NaN and
    infinite values are dropped. Sorted by name, then start."""
    acc: dict[tuple[str, float], list[float]] = {}
    for s in samples:
        if not math.isfinite(s.value):
            continue
        key = (s.name, bucket_start(s.timestamp, width))
        cur = acc.get(key)
        if cur is None:
            acc[key] = [s.value, 1.0, s.value]
        else:
            cur[0] += s.value
            cur[1] += 1
            cur[2] = max(cur[2], s.value)
    return [
        Bucket(name, start, total, int(n), top)
        for (name, start), (total, n, top) in sorted(acc.items())
    ]


def merge(a: Bucket, b: Bucket) -> Bucket:
    """Two parts of one bucket as one."""
    return Bucket(a.name, a.start, a.sum + b.sum, a.count + b.count, max(a.max, b.max))


def aggregate(
    rows: Iterable[tuple[str, Bucket]], names: Iterable[str] | None = None
) -> dict[str, FleetSignal]:
    """The fleet's figures per signal from (instance, bucket) rows of one window.

    Only ``names`` are kept when given; a signal no instance reported is absent.
    """
    wanted = set(names) if names is not None else None
    per: dict[str, dict[str, list[float]]] = {}
    for instance, b in rows:
        if wanted is not None and b.name not in wanted:
            continue
        if b.count <= 0:
            continue
        cur = per.setdefault(b.name, {}).get(instance)
        if cur is None:
            per[b.name][instance] = [b.sum, float(b.count), b.max]
        else:
            cur[0] += b.sum
            cur[1] += b.count
            cur[2] = max(cur[2], b.max)
    out: dict[str, FleetSignal] = {}
    for name, by_instance in sorted(per.items()):
        means = {inst: total / n for inst, (total, n, _top) in sorted(by_instance.items())}
        total = sum(means.values())
        out[name] = FleetSignal(
            name=name,
            sum=total,
            avg=total / len(means),
            max=max(top for _t, _n, top in by_instance.values()),
            instances=len(means),
            per_instance=means,
        )
    return out
