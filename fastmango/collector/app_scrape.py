"""The agent's view of the app: scrape its metrics endpoint(s), derive RED and AI signals.

:class:`AppCollector` (an :class:`~fastmango.collector.base.AsyncCollector`, name
``app``) GETs every configured URL with one ``httpx.AsyncClient`` (injected, or its own
with ``timeout``), parses each exposition, and derives, for the interval since its last
scrape of that URL, what the scaler, the alerts and the dashboard read
(:mod:`fastmango.collector.app_derive` holds the pure derivation and its rules):

- whole app: ``http_requests_per_second``, ``http_request_duration_p50/p95/p99_seconds``,
  ``http_error_ratio`` (5xx ÷ all; absent when there were no requests),
  ``http_server_active_requests`` (summed over URLs);
- per route, the top ``top_routes`` by requests and the rest as ``route="other"``:
  ``http_route_requests_per_second``, ``http_route_request_duration_p50/p95/p99_seconds``,
  ``http_route_error_ratio``; ``route=""`` holds requests no route matched;
- per model: ``ai_inference_requests_per_second``, ``ai_inference_duration_p95_seconds``,
  ``ai_time_to_first_token_p95_seconds``, ``ai_tokens_per_second{type=input|output}``,
  ``ai_inference_error_ratio``.

Several URLs (several app instances) are one app: rates add up, quantiles come from the
summed bucket deltas. A URL that fails is counted in ``fastmango_app_scrape_errors_total``
and shown by ``fastmango_app_scrape_up``; the collection fails (the agent marks the
collector down and backs off) only when every URL failed. The first scrape of a URL only
sets its baseline; so does the first after the URL's previous scrape was lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # imported in start(): the catalogue imports this module for its specs
    import httpx

from fastmango.collector.app_derive import (
    Names,
    Scrape,
    Window,
    active_requests,
    derive,
    names_for,
    parse_exposition,
    window,
)
from fastmango.collector.base import Clock
from fastmango.errors import CollectorError
from fastmango.redact import redact_secrets
from fastmango.series import Kind, MetricSpec, Sample, SampleBuilder, spec_index, unit_of

__all__ = ["SPECS", "AppCollector", "Names", "names_for"]


def _spec(name: str, kind: Kind, help: str, *labels: str) -> MetricSpec:
    source = "fastmango" if name.startswith("fastmango_") else "fastmango (derived)"
    return MetricSpec(name, kind, help, labels, unit_of(name), source=source)


_Q = (("p50", "Median"), ("p95", "95th percentile of"), ("p99", "99th percentile of"))
_INTERVAL = "over the collection interval"
SPECS: list[MetricSpec] = [
    _spec("http_requests_per_second", "gauge", f"Requests per second to the app, {_INTERVAL}."),
    *(_spec(f"http_request_duration_{tag}_seconds", "gauge",
            f"{what} request duration, {_INTERVAL} (absent without requests).")
      for tag, what in _Q),
    _spec("http_error_ratio", "gauge",
          f"Share of requests answered 5xx, {_INTERVAL} (absent without requests)."),
    _spec("http_server_active_requests", "gauge",
          "Requests in flight at the last scrape, summed over the app's workers and URLs."),
    _spec("http_route_requests_per_second", "gauge",
          f"Requests per second by route template (top routes, the rest as route=\"other\"; "
          f"route=\"\" matched no route), {_INTERVAL}.", "route"),
    *(_spec(f"http_route_request_duration_{tag}_seconds", "gauge",
            f"{what} request duration by route, {_INTERVAL}.", "route")
      for tag, what in _Q),
    _spec("http_route_error_ratio", "gauge", f"Share of 5xx by route, {_INTERVAL}.", "route"),
    _spec("ai_inference_requests_per_second", "gauge",
          f"Inference calls per second by model, {_INTERVAL}.", "model"),
    _spec("ai_inference_duration_p95_seconds", "gauge",
          f"95th percentile of inference call duration by model, {_INTERVAL}.", "model"),
    _spec("ai_time_to_first_token_p95_seconds", "gauge",
          f"95th percentile of time to first token of streamed calls, {_INTERVAL}.", "model"),
    _spec("ai_tokens_per_second", "gauge",
          f"Tokens per second by model and type (input or output), {_INTERVAL}.",
          "model", "type"),
    _spec("ai_inference_error_ratio", "gauge",
          f"Share of inference calls that raised, {_INTERVAL} (absent without calls).",
          "model"),
    _spec("fastmango_app_scrape_up", "gauge",
          "1 if the last scrape of the app's metrics URL succeeded, 0 if it failed.", "url"),
    _spec("fastmango_app_scrape_errors_total", "counter",
          "Failed scrapes of the app's metrics URL.", "url"),
]  # fmt: skip
_INDEX = spec_index(SPECS)


def url_label(url: str) -> str:
    """The URL without credentials or query, for a label."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return redact_secrets(urlunsplit((parts.scheme, netloc, parts.path, "", "")))


class AppCollector:
    """Scrapes the app's metrics URLs; see the module docstring."""

    name: ClassVar[str] = "app"
    specs: ClassVar[list[MetricSpec]] = SPECS

    def __init__(
        self,
        urls: Sequence[str],
        names: Names | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 2.0,
        top_routes: int = 20,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("AppCollector needs at least one metrics URL")
        self.urls = list(urls)
        self.names = names or names_for("fastmango")
        self.timeout = timeout
        self.top_routes = top_routes
        self.clock = clock
        self.monotonic = monotonic
        self._client = client
        self._own_client = client is None
        self._last: dict[str, tuple[Scrape, float]] = {}  # url → (scrape, monotonic time)
        self._errors = dict.fromkeys(self.urls, 0)
        self._up = dict.fromkeys(self.urls, 0)
        self._labels = {u: url_label(u) for u in self.urls}
        self._own_paths = {u: urlsplit(u).path or "/" for u in self.urls}

    async def start(self) -> None:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=self.timeout)

    async def _fetch(self, url: str) -> tuple[Scrape, float]:
        assert self._client is not None
        response = await self._client.get(
            url, headers={"Accept": "text/plain;version=0.0.4"}, timeout=self.timeout
        )
        response.raise_for_status()
        arrived = self.monotonic()
        return parse_exposition(response.text), arrived

    async def collect(self) -> list[Sample]:
        if self._client is None:
            await self.start()
        results = await asyncio.gather(*(self._fetch(u) for u in self.urls),
                                       return_exceptions=True)  # fmt: skip
        windows: list[Window] = []
        actives: list[float | None] = []
        failures: list[str] = []
        for url, result in zip(self.urls, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancelled: the agent's timeout
                self._errors[url] += 1
                self._up[url] = 0
                failures.append(f"{self._labels[url]}: {type(result).__name__}: {result}")
                continue
            scrape, arrived = result
            self._up[url] = 1
            previous = self._last.get(url)
            self._last[url] = (scrape, arrived)
            actives.append(active_requests(scrape, self.names))
            if previous is not None:
                seconds = arrived - previous[1]
                windows.append(window(previous[0], scrape, seconds, self.names,
                                      exclude_routes=(self._own_paths[url],)))  # fmt: skip
        if len(failures) == len(self.urls):
            raise CollectorError(redact_secrets("every app metrics URL failed: "
                                                + "; ".join(failures)))  # fmt: skip
        b = SampleBuilder(_INDEX, self.clock())
        for name, labels, value in derive(windows, actives, self.top_routes):
            b.add(name, value, **labels)
        for url in self.urls:
            b.add("fastmango_app_scrape_up", self._up[url], url=self._labels[url])
            b.add("fastmango_app_scrape_errors_total", self._errors[url], url=self._labels[url])
        return b.samples

    async def close(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None
