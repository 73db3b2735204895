"""``/metrics``: the latest snapshot of every collector, from a private registry.

A scrape does no collection work: collectors publish their samples here on their own
schedule, the exposition is rendered once per change (off the request path, in
:meth:`Exporter.render_pending`), and a scrape sends ready bytes. OpenMetrics is served
when the scraper asks for it in ``Accept``, the classic text format otherwise, and gzip
when ``Accept-Encoding`` allows it.
"""

from __future__ import annotations

import gzip
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Metric
from prometheus_client import exposition as text_exposition
from prometheus_client.openmetrics import exposition as om_exposition

from fastmango.series import MetricSpec, Sample

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = om_exposition.CONTENT_TYPE_LATEST


def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept


def wants_gzip(accept_encoding: str) -> bool:
    return any(p.split(";")[0].strip() == "gzip" for p in accept_encoding.split(","))


class Exporter:
    """Holds the latest samples per collector and their rendered exposition."""

    def __init__(self, specs: Mapping[str, MetricSpec]) -> None:
        self._specs = specs
        self._snapshots: dict[str, list[Sample]] = {}
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)
        self._lock = threading.Lock()
        self._generation = 0
        self._rendered_generation = -1
        self._cache: dict[tuple[bool, bool], bytes] = {}
        self._formats: set[tuple[bool, bool]] = {(False, False)}

    def update(self, source: str, samples: list[Sample]) -> None:
        """Replace the snapshot of one collector."""
        with self._lock:
            self._snapshots[source] = samples
            self._generation += 1

    def drop(self, source: str) -> None:
        with self._lock:
            self._snapshots.pop(source, None)
            self._generation += 1

    # prometheus_client custom-collector protocol
    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshots = list(self._snapshots.values())
        by_name: dict[str, list[Sample]] = defaultdict(list)
        for samples in snapshots:
            for s in samples:
                by_name[s.name].append(s)
        for name in sorted(by_name):
            spec = self._specs[name]
            family = name.removesuffix("_total") if spec.kind == "counter" else name
            metric = Metric(family, spec.help, spec.kind, spec.unit)
            sample_name = name
            for s in by_name[name]:
                metric.add_sample(sample_name, dict(s.labels), s.value)
            yield metric

    def render_pending(self) -> None:
        """Render every format asked for so far, if anything changed. Call off the loop."""
        with self._lock:
            generation = self._generation
        if generation == self._rendered_generation:
            return
        cache = {fmt: self._render(*fmt) for fmt in list(self._formats)}
        with self._lock:
            self._cache = cache
            self._rendered_generation = generation

    def _render(self, openmetrics: bool, compressed: bool) -> bytes:
        if openmetrics:
            body: bytes = om_exposition.generate_latest(self._registry)  # type: ignore[no-untyped-call]
        else:
            body = text_exposition.generate_latest(self._registry)
        return gzip.compress(body, compresslevel=5) if compressed else body

    def body(self, accept: str = "", accept_encoding: str = "") -> tuple[bytes, str, bool]:
        """(bytes, content type, gzipped) for a scrape with these headers."""
        fmt = (wants_openmetrics(accept), wants_gzip(accept_encoding))
        body = self._cache.get(fmt)
        if body is None:  # first scrape in this format: render once, then keep it fresh
            self._formats.add(fmt)
            body = self._render(*fmt)
        return body, OPENMETRICS if fmt[0] else TEXT, fmt[1]
