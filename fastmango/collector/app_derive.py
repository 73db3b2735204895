"""From two scrapes of an app's Prometheus endpoint to req/s, latency quantiles, errors.

Pure functions, no I/O: :func:`parse_exposition` turns the text into a :data:`Scrape`;
:func:`window` takes the previous and the current scrape of one URL and the seconds
between them and returns what happened in between (:class:`Window`: counter and
histogram-bucket *deltas*); :func:`derive` merges the windows of every URL and returns
the whole-app, per-route and per-model series.

Deltas follow Prometheus' ``increase()``: a counter lower than before was reset (the app
restarted) and counts from zero, so its delta is its current value; a histogram series
(one label set) is reset as a whole when any of its buckets or its count went down; a
series that did not exist in the previous scrape counts in full (it was born since).
The first scrape of a URL has no previous one: it gives no window, hence no rates.

Quantiles follow ``histogram_quantile()``: linear interpolation inside the bucket that
holds the rank, over the window's bucket deltas summed across routes and URLs; the lower
bound of the first bucket is 0; a rank in the ``+Inf`` bucket gives the highest finite
bound. **No requests in a window gives no quantile and no error ratio** (absent, not 0:
"no data" must not read as "no errors" or "0 s"); req/s is then 0, a real measurement.

Names are per library (:data:`PRESETS`): fastmango's own OTel names, those of
prometheus-fastapi-instrumentator and of starlette-exporter; each can be overridden.
Requests on the scraped URL's own path (``/metrics``) are not app traffic and are left
out wherever the route label tells them apart.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
#: sample name → label set (sorted pairs) → value
Scrape = dict[str, dict[Labels, float]]
INF = math.inf

#: the route label value of requests no route matched (as the middleware writes it)
UNMATCHED = ""
#: the route (or model) that requests past the top N fold into
OTHER = "other"
MAX_MODELS = 20
QUANTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))

AI_DURATION = "gen_ai_client_operation_duration_seconds"
AI_TTFT = "gen_ai_server_time_to_first_token_seconds"
AI_TOKENS = "gen_ai_client_token_usage_total"
AI_ERRORS = "gen_ai_client_operation_errors_total"


@dataclass(frozen=True)
class Names:
    """Where one library keeps what the agent derives from."""

    #: histogram (base name) of request durations, with the route label
    duration: str
    route_label: str
    status_label: str
    #: counter of requests (sample name, with ``_total``); None: the duration's ``_count``
    requests: str | None = None
    #: histogram for the whole app's quantiles; None: ``duration`` summed over routes
    whole_duration: str | None = None
    #: gauge of requests in flight; None: not derived
    active: str | None = None
    #: does ``active`` count the scrape that reads it (then 1 per URL is taken off)
    active_counts_scrape: bool = False
    #: route label values meaning "no route matched"
    unmatched: tuple[str, ...] = (UNMATCHED,)


PRESETS: dict[str, Names] = {
    "fastmango": Names(
        "http_server_request_duration_seconds", "http_route", "http_response_status_code",
        active="http_server_active_requests",
    ),
    # labels handler, method, status ("2xx" grouped by default); the per-handler histogram
    # has 3 buckets (0.1, 0.5, 1), so whole-app quantiles come from the finer "highr" one
    "instrumentator": Names(
        "http_request_duration_seconds", "handler", "status",
        requests="http_requests_total", whole_duration="http_request_duration_highr_seconds",
        active="http_requests_inprogress", active_counts_scrape=True, unmatched=("none",),
    ),
    "starlette_exporter": Names(
        "starlette_request_duration_seconds", "path", "status_code",
        requests="starlette_requests_total", active="starlette_requests_in_progress",
        active_counts_scrape=True, unmatched=("__unknown__",),
    ),
}  # fmt: skip


def names_for(preset: str, **overrides: str | None) -> Names:
    """The preset's names with the given (non-None) string fields replaced."""
    allowed = {"duration", "route_label", "status_label", "requests", "whole_duration", "active"}
    if unknown := set(overrides) - allowed:
        raise TypeError(f"unknown name fields: {sorted(unknown)}")
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[preset], **given)


def parse_exposition(text: str) -> Scrape:
    """Parse the Prometheus text format; raises ValueError on a malformed exposition."""
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = float(s.value)
    return out


# -- deltas ------------------------------------------------------------------------------
def counter_deltas(
    prev: Mapping[Labels, float], cur: Mapping[Labels, float]
) -> dict[Labels, float]:
    """Per label set: cur − prev, or cur after a reset or for a new series."""
    out: dict[Labels, float] = {}
    for labels, value in cur.items():
        before = prev.get(labels)
        out[labels] = value if before is None or value < before else value - before
    return out


def _without(labels: Labels, name: str) -> Labels:
    return tuple(p for p in labels if p[0] != name)


def histogram_deltas(prev: Scrape, cur: Scrape, base: str) -> dict[Labels, dict[float, float]]:
    """Per label set (without ``le``): upper bound → cumulative count delta."""
    groups: dict[Labels, dict[float, tuple[float, float | None]]] = defaultdict(dict)
    before = prev.get(base + "_bucket", {})
    for labels, value in cur.get(base + "_bucket", {}).items():
        le = dict(labels).get("le")
        if le is None:
            continue
        groups[_without(labels, "le")][float(le)] = (value, before.get(labels))
    counts_now, counts_before = cur.get(base + "_count", {}), prev.get(base + "_count", {})
    out: dict[Labels, dict[float, float]] = {}
    for key, buckets in groups.items():
        count_before = counts_before.get(key)
        reset = any(b is None or v < b for v, b in buckets.values()) or (
            count_before is not None and counts_now.get(key, 0.0) < count_before
        )
        out[key] = {le: v if reset else v - (b or 0.0) for le, (v, b) in buckets.items()}
    return out


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """``histogram_quantile(q, …)`` of cumulative ``buckets`` (le → count); None if empty."""
    if INF not in buckets:
        return None
    ordered = sorted(buckets.items())
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower, below, running = 0.0, 0.0, 0.0
    for i, (le, count) in enumerate(ordered):
        running = max(running, count)  # deltas summed across sets: keep it monotonic
        if running >= rank:
            if le == INF:
                return lower if i > 0 else None
            if i == 0 and le <= 0:
                return le
            return lower + (le - lower) * (rank - below) / (running - below)
        lower, below = le, running
    return None  # pragma: no cover (the +Inf bucket holds the total)


# -- one URL's window ----------------------------------------------------------------------
@dataclass
class Window:
    """What happened at one URL between two scrapes ``seconds`` apart."""

    seconds: float
    requests: dict[str, float] = field(default_factory=dict)  # route → requests
    errors: dict[str, float] = field(default_factory=dict)  # route → 5xx requests
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)  # route → le → Δ
    whole_buckets: dict[float, float] = field(default_factory=dict)  # le → Δ (whole app)
    ai_requests: dict[str, float] = field(default_factory=dict)  # model → calls
    ai_errors: dict[str, float] = field(default_factory=dict)  # model → failed calls
    ai_buckets: dict[str, dict[float, float]] = field(default_factory=dict)
    ttft_buckets: dict[str, dict[float, float]] = field(default_factory=dict)
    ai_tokens: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, type)


def _add_buckets(into: dict[float, float], buckets: Mapping[float, float]) -> None:
    for le, v in buckets.items():
        into[le] = into.get(le, 0.0) + v


def window(
    prev: Scrape, cur: Scrape, seconds: float, names: Names, exclude_routes: Iterable[str] = ()
) -> Window:
    """The window between two scrapes of one URL; see the module docstring."""
    w = Window(seconds)
    skip = set(exclude_routes)
    unmatched = set(names.unmatched)

    def route_of(labels: Labels) -> str | None:
        route = dict(labels).get(names.route_label, UNMATCHED)
        if route in skip:
            return None
        return UNMATCHED if route in unmatched else route

    by_route = histogram_deltas(prev, cur, names.duration)
    for labels, buckets in by_route.items():
        route = route_of(labels)
        if route is not None:
            _add_buckets(w.buckets.setdefault(route, {}), buckets)
    if names.requests is not None:
        counts: Iterable[tuple[Labels, float]] = counter_deltas(
            prev.get(names.requests, {}), cur.get(names.requests, {})
        ).items()
    else:
        counts = ((labels, b.get(INF, 0.0)) for labels, b in by_route.items())
    for labels, n in counts:
        route = route_of(labels)
        if route is None:
            continue
        w.requests[route] = w.requests.get(route, 0.0) + n
        if dict(labels).get(names.status_label, "").startswith("5"):
            w.errors[route] = w.errors.get(route, 0.0) + n
    if names.whole_duration is not None:
        for buckets in histogram_deltas(prev, cur, names.whole_duration).values():
            _add_buckets(w.whole_buckets, buckets)
    else:
        for buckets in w.buckets.values():
            _add_buckets(w.whole_buckets, buckets)

    def model_of(labels: Labels) -> str:
        return dict(labels).get("gen_ai_request_model", "")

    for labels, buckets in histogram_deltas(prev, cur, AI_DURATION).items():
        model = model_of(labels)
        _add_buckets(w.ai_buckets.setdefault(model, {}), buckets)
        w.ai_requests[model] = w.ai_requests.get(model, 0.0) + buckets.get(INF, 0.0)
    for labels, buckets in histogram_deltas(prev, cur, AI_TTFT).items():
        _add_buckets(w.ttft_buckets.setdefault(model_of(labels), {}), buckets)
    for labels, n in counter_deltas(prev.get(AI_TOKENS, {}), cur.get(AI_TOKENS, {})).items():
        key = (model_of(labels), dict(labels).get("gen_ai_token_type", ""))
        w.ai_tokens[key] = w.ai_tokens.get(key, 0.0) + n
    for labels, n in counter_deltas(prev.get(AI_ERRORS, {}), cur.get(AI_ERRORS, {})).items():
        model = model_of(labels)
        w.ai_errors[model] = w.ai_errors.get(model, 0.0) + n
    return w


def active_requests(cur: Scrape, names: Names) -> float | None:
    """Requests in flight at the scrape (the scrape itself not counted), or None."""
    if names.active is None or names.active not in cur:
        return None
    total = sum(cur[names.active].values())
    return max(0.0, total - 1) if names.active_counts_scrape else total


# -- all URLs: the derived series ----------------------------------------------------------
Derived = list[tuple[str, dict[str, str], float]]


def _top(counts: Mapping[str, float], n: int) -> dict[str, str]:
    """Key → itself for the top ``n`` by count (ties by name), → OTHER for the rest."""
    ranked = sorted(counts, key=lambda k: (-counts[k], k))
    return {k: (k if i < n else OTHER) for i, k in enumerate(ranked)}


def _rates(windows: Sequence[Window], attr: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for w in windows:
        for key, n in getattr(w, attr).items():
            out[key] += n / w.seconds
    return out


def derive(
    windows: Sequence[Window], actives: Sequence[float | None] = (), top_routes: int = 20
) -> Derived:
    """The series of the interval: whole app, top routes (+ OTHER), models."""
    out: Derived = []
    present = [a for a in actives if a is not None]
    if present:
        out.append(("http_server_active_requests", {}, sum(present)))
    windows = [w for w in windows if w.seconds > 0]
    if not windows:
        return out
    # whole app
    requests = sum(sum(w.requests.values()) for w in windows)
    errors = sum(sum(w.errors.values()) for w in windows)
    out.append(("http_requests_per_second", {}, sum(sum(w.requests.values()) / w.seconds
                                                    for w in windows)))  # fmt: skip
    whole: dict[float, float] = {}
    for w in windows:
        _add_buckets(whole, w.whole_buckets)
    for q, tag in QUANTILES:
        value = histogram_quantile(q, whole)
        if value is not None:
            out.append((f"http_request_duration_{tag}_seconds", {}, value))
    if requests > 0:
        out.append(("http_error_ratio", {}, errors / requests))
    # per route: the top N by requests in the interval, the rest as OTHER
    route_counts: dict[str, float] = defaultdict(float)
    for w in windows:
        for route, n in w.requests.items():
            if n > 0:
                route_counts[route] += n
    fold = _top(route_counts, top_routes)
    rps: dict[str, float] = defaultdict(float)
    reqs: dict[str, float] = defaultdict(float)
    errs: dict[str, float] = defaultdict(float)
    hist: dict[str, dict[float, float]] = defaultdict(dict)
    for w in windows:
        for route, n in w.requests.items():
            if route in fold:
                rps[fold[route]] += n / w.seconds
                reqs[fold[route]] += n
        for route, n in w.errors.items():
            if route in fold:
                errs[fold[route]] += n
        for route, buckets in w.buckets.items():
            if route in fold:
                _add_buckets(hist[fold[route]], buckets)
    for route in sorted(rps):
        labels = {"route": route}
        out.append(("http_route_requests_per_second", labels, rps[route]))
        for q, tag in QUANTILES:
            value = histogram_quantile(q, hist.get(route, {}))
            if value is not None:
                out.append((f"http_route_request_duration_{tag}_seconds", labels, value))
        out.append(("http_route_error_ratio", labels, errs[route] / reqs[route]))
    out.extend(_derive_ai(windows))
    return out


def _derive_ai(windows: Sequence[Window]) -> Derived:
    out: Derived = []
    calls: dict[str, float] = defaultdict(float)
    for w in windows:
        for model, n in w.ai_requests.items():
            calls[model] += n
    for w in windows:
        for model, _ in w.ai_tokens:
            calls.setdefault(model, 0.0)
    fold = _top(calls, MAX_MODELS)

    def folded(per_window: Iterable[Mapping[str, float]]) -> dict[str, float]:
        acc: dict[str, float] = defaultdict(float)
        for d in per_window:
            for k, v in d.items():
                acc[fold.get(k, OTHER)] += v
        return acc

    rps = folded({k: v / w.seconds for k, v in w.ai_requests.items()} for w in windows)
    calls_in = folded(w.ai_requests for w in windows)
    errors = folded(w.ai_errors for w in windows)
    durations: dict[str, dict[float, float]] = defaultdict(dict)
    ttfts: dict[str, dict[float, float]] = defaultdict(dict)
    tokens: dict[tuple[str, str], float] = defaultdict(float)
    for w in windows:
        for model, buckets in w.ai_buckets.items():
            _add_buckets(durations[fold.get(model, OTHER)], buckets)
        for model, buckets in w.ttft_buckets.items():
            _add_buckets(ttfts[fold.get(model, OTHER)], buckets)
        for (model, kind), v in w.ai_tokens.items():
            tokens[fold.get(model, OTHER), kind] += v / w.seconds
    for model in sorted(set(fold.values())):
        labels = {"model": model}
        out.append(("ai_inference_requests_per_second", labels, rps.get(model, 0.0)))
        p95 = histogram_quantile(0.95, durations.get(model, {}))
        if p95 is not None:
            out.append(("ai_inference_duration_p95_seconds", labels, p95))
        ttft = histogram_quantile(0.95, ttfts.get(model, {}))
        if ttft is not None:
            out.append(("ai_time_to_first_token_p95_seconds", labels, ttft))
        if calls_in.get(model, 0.0) > 0:
            ratio = errors.get(model, 0.0) / calls_in[model]
            out.append(("ai_inference_error_ratio", labels, ratio))
    for (model, kind), v in sorted(tokens.items()):
        if kind in ("input", "output"):
            out.append(("ai_tokens_per_second", {"model": model, "type": kind}, v))
    return out
