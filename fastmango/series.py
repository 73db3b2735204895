"""The shared data types: a sample, and the declaration of a metric family.

A sample is (name, labels, value, timestamp). Collectors return samples; every family
they may return is declared once as a :class:`MetricSpec` next to the collector, and the
catalogue (:mod:`fastmango.agent.catalogue`) gathers the declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Labels = tuple[tuple[str, str], ...]
#: "histogram" only declares families an app exposes (FastmangoMiddleware); the agent's
#: own samples are counters, gauges and infos
Kind = Literal["counter", "gauge", "info", "histogram"]


def labels_of(mapping: Mapping[str, str] | None = None, /, **kw: str) -> Labels:
    """A canonical (sorted) label tuple from a mapping and/or keywords."""
    items = dict(mapping or {})
    items.update(kw)
    return tuple(sorted(items.items()))


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one series at one time (Unix seconds)."""

    name: str
    labels: Labels
    value: float
    timestamp: float

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


BASE_UNITS = ("bytes", "seconds")


def unit_of(name: str) -> str:
    """The base unit a family's name ends with (``node_cpu_seconds_total`` → seconds)."""
    stem = name.removesuffix("_total")
    return next((u for u in BASE_UNITS if stem.endswith("_" + u)), "")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """The declaration of one metric family, as the catalogue and /metrics show it.

    ``name`` is the series name as it appears in the text exposition (counters keep their
    ``_total`` suffix). ``unit`` is set only when the name ends with it (OpenMetrics rule).
    """

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    source: str = field(default="", compare=False)  # the anchor whose name we follow

    def __post_init__(self) -> None:
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name} must end with _total")
        if self.kind != "counter" and self.name.endswith("_total"):
            raise ValueError(f"only counters may end with _total: {self.name}")
        if self.unit:
            stem = self.name.removesuffix("_total")
            if not stem.endswith("_" + self.unit):
                raise ValueError(f"{self.name}: unit {self.unit} must end the name")


class SampleBuilder:
    """Collects samples of one collection with one timestamp and checked names.

    ``add`` refuses a name its collector did not declare, so the catalogue can't drift
    from what is exposed.
    """

    __slots__ = ("_specs", "samples", "timestamp")

    def __init__(self, specs: Mapping[str, MetricSpec], timestamp: float) -> None:
        self._specs = specs
        self.timestamp = timestamp
        self.samples: list[Sample] = []

    def add(self, name: str, value: float, /, **labels: str) -> None:
        spec = self._specs.get(name)
        if spec is None:
            raise KeyError(f"undeclared metric {name}")
        if len(labels) != len(spec.labels):
            raise KeyError(f"{name}: labels {sorted(labels)} != declared {list(spec.labels)}")
        self.samples.append(
            Sample(name, tuple(sorted(labels.items())), float(value), self.timestamp)
        )


def spec_index(specs: list[MetricSpec]) -> dict[str, MetricSpec]:
    """Index specs by name, refusing duplicates."""
    out: dict[str, MetricSpec] = {}
    for s in specs:
        if s.name in out:
            raise ValueError(f"metric {s.name} declared twice")
        out[s.name] = s
    return out
