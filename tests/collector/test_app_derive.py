"""The derivation, tables over expositions recorded from real apps (tests/fixtures/app).

Between ``<lib>_0.txt`` and ``<lib>_1.txt`` each app got the same requests (see
``generate.py``): 100 to ``/slow`` (40 × 20 ms, 40 × 120 ms, 20 × 260 ms), 20 to
``/items/{item_id}``, 5 to ``/boom`` (500) and 5 to ``/nope`` (no route); the fastmango
app also 1 ``POST /ai`` with 10 inference calls of ``m1`` and 2 failing ones of ``m2``.
``<lib>_2_restarted.txt`` is the app after a restart: 4 requests to ``/items/{item_id}``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fastmango.collector.app_derive import (
    INF,
    OTHER,
    PRESETS,
    Scrape,
    Window,
    active_requests,
    counter_deltas,
    derive,
    histogram_deltas,
    histogram_quantile,
    names_for,
    parse_exposition,
    window,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "app"
LIBS = ("fastmango", "instrumentator", "starlette_exporter")
SECONDS = 10.0


def scrape(name: str) -> Scrape:
    return parse_exposition((FIXTURES / f"{name}.txt").read_text())


def traffic(lib: str) -> Window:
    return window(scrape(f"{lib}_0"), scrape(f"{lib}_1"), SECONDS, PRESETS[lib], ["/metrics"])


def as_dict(rows: list[tuple[str, dict[str, str], float]]) -> dict[tuple[str, str], float]:
    return {(name, ",".join(f"{k}={v}" for k, v in sorted(labels.items()))): value
            for name, labels, value in rows}  # fmt: skip


# -- requests and errors per route ---------------------------------------------------------
ROUTES = {"/slow": 100.0, "/items/{item_id}": 20.0, "/boom": 5.0}


@pytest.mark.parametrize(
    ("lib", "requests"),
    [
        ("fastmango", {**ROUTES, "": 5.0, "/ai": 1.0}),
        ("instrumentator", {**ROUTES, "": 5.0}),  # handler="none" is unmatched
        ("starlette_exporter", ROUTES),  # drops unmatched requests by default
    ],
)
def test_window_counts_requests_and_5xx_by_route(lib: str, requests: dict[str, float]) -> None:
    w = traffic(lib)
    assert w.requests == requests  # /metrics scrapes left out
    assert w.errors == {"/boom": 5.0}


# -- the derived series: whole app and per route --------------------------------------------
TABLE = [
    # fastmango: 131 requests; whole-app cumulative buckets ≤0.25: 111, ≤0.3: 131
    ("fastmango", "http_requests_per_second", "", 13.1),
    ("fastmango", "http_error_ratio", "", 5 / 131),
    # rank 0.95 × 131 = 124.45 → 0.25 + 0.05 × (124.45 − 111) / (131 − 111)
    ("fastmango", "http_request_duration_p95_seconds", "", 0.25 + 0.05 * 13.45 / 20),
    ("fastmango", "http_route_requests_per_second", "route=/slow", 10.0),
    # /slow: ≤0.1: 40, ≤0.15: 80 → rank 50 → 0.1 + 0.05 × 10/40
    ("fastmango", "http_route_request_duration_p50_seconds", "route=/slow", 0.1125),
    # ≤0.25: 80, ≤0.3: 100 → rank 95 → 0.25 + 0.05 × 15/20 (the 260 ms ones, resolved)
    ("fastmango", "http_route_request_duration_p95_seconds", "route=/slow", 0.2875),
    ("fastmango", "http_route_error_ratio", "route=/boom", 1.0),
    ("fastmango", "http_route_error_ratio", "route=/slow", 0.0),
    ("fastmango", "http_route_requests_per_second", "route=", 0.5),
    ("fastmango", "http_server_active_requests", "", 0.0),
    # instrumentator: 130 requests; whole-app quantiles from the "highr" histogram (131 with
    # the one scrape it cannot tell apart); ≤0.25: 111, ≤0.5: 131 → rank 124.45
    ("instrumentator", "http_requests_per_second", "", 13.0),
    ("instrumentator", "http_error_ratio", "", 5 / 130),
    ("instrumentator", "http_request_duration_p95_seconds", "", 0.25 + 0.25 * 13.45 / 20),
    # per handler: only buckets 0.1, 0.5, 1 → ≤0.1: 40, ≤0.5: 100 → rank 95
    ("instrumentator", "http_route_request_duration_p95_seconds", "route=/slow",
     0.1 + 0.4 * 55 / 60),
    ("instrumentator", "http_route_requests_per_second", "route=", 0.5),
    # starlette-exporter: 125 requests; ≤0.25: 105, ≤0.5: 125 → rank 118.75
    ("starlette_exporter", "http_requests_per_second", "", 12.5),
    ("starlette_exporter", "http_error_ratio", "", 0.04),
    ("starlette_exporter", "http_request_duration_p95_seconds", "", 0.25 + 0.25 * 13.75 / 20),
    ("starlette_exporter", "http_route_request_duration_p99_seconds", "route=/slow",
     0.25 + 0.25 * 19 / 20),
    # its in-progress gauge counts the scrape reading it: 1 − 1
    ("starlette_exporter", "http_server_active_requests", "", 0.0),
]  # fmt: skip


@pytest.mark.parametrize(("lib", "name", "labels", "expected"), TABLE)
def test_derived_series(lib: str, name: str, labels: str, expected: float) -> None:
    cur = scrape(f"{lib}_1")
    got = as_dict(derive([traffic(lib)], [active_requests(cur, PRESETS[lib])]))
    assert got[name, labels] == pytest.approx(expected)


def test_ai_series_by_model() -> None:
    got = as_dict(derive([traffic("fastmango")]))
    assert got["ai_inference_requests_per_second", "model=m1"] == 1.0
    assert got["ai_inference_requests_per_second", "model=m2"] == 0.2
    assert got["ai_inference_error_ratio", "model=m1"] == 0.0
    assert got["ai_inference_error_ratio", "model=m2"] == 1.0
    assert got["ai_tokens_per_second", "model=m1,type=input"] == 7.0
    assert got["ai_tokens_per_second", "model=m1,type=output"] == 11.0
    # 10 calls of 20 ms: all in (0.02, 0.04] → 0.02 + 0.02 × 9.5/10
    assert got["ai_inference_duration_p95_seconds", "model=m1"] == pytest.approx(0.039)
    # first tokens after 5 ms: all in (0.005, 0.01] → 0.005 + 0.005 × 9.5/10
    assert got["ai_time_to_first_token_p95_seconds", "model=m1"] == pytest.approx(0.00975)
    assert ("ai_time_to_first_token_p95_seconds", "model=m2") not in got  # never streamed


# -- resets, no traffic, first scrape --------------------------------------------------------
@pytest.mark.parametrize("lib", LIBS)
def test_a_restarted_app_counts_from_zero(lib: str) -> None:
    w = window(scrape(f"{lib}_1"), scrape(f"{lib}_2_restarted"), SECONDS, PRESETS[lib],
               ["/metrics"])  # fmt: skip
    assert w.requests == {"/items/{item_id}": 4.0}  # 3 + the start-up probe, not negative
    got = as_dict(derive([w]))
    assert got["http_requests_per_second", ""] == 0.4
    assert got["http_error_ratio", ""] == 0.0
    assert got["http_request_duration_p99_seconds", ""] > 0


@pytest.mark.parametrize("lib", LIBS)
def test_no_traffic_gives_zero_rate_and_no_quantile_or_ratio(lib: str) -> None:
    cur = scrape(f"{lib}_1")
    w = window(cur, cur, SECONDS, PRESETS[lib], ["/metrics"])
    names = {name for name, _, _ in derive([w])}
    got = as_dict(derive([w]))
    assert got["http_requests_per_second", ""] == 0.0
    assert "http_error_ratio" not in names  # "no data" is not "no errors"
    assert not any(n.startswith("http_request_duration_") for n in names)
    assert not any(n.startswith("http_route_") for n in names)


def test_without_windows_only_the_gauge_is_derived() -> None:
    assert derive([], [2.0, None, 1.0]) == [("http_server_active_requests", {}, 3.0)]
    assert derive([]) == []


# -- several URLs, top routes -------------------------------------------------------------
def test_several_urls_add_rates_and_merge_buckets() -> None:
    one, two = traffic("fastmango"), traffic("fastmango")
    two.seconds = 5.0  # the second URL's scrapes were 5 s apart
    got = as_dict(derive([one, two], [1.0, 2.0]))
    assert got["http_requests_per_second", ""] == pytest.approx(13.1 + 26.2)
    assert got["http_error_ratio", ""] == pytest.approx(10 / 262)
    assert got["http_server_active_requests", ""] == 3.0
    assert got["http_route_request_duration_p50_seconds", "route=/slow"] == pytest.approx(0.1125)


def test_routes_past_the_top_n_fold_into_other() -> None:
    got = as_dict(derive([traffic("fastmango")], top_routes=2))
    routes = {labels for name, labels in got if name == "http_route_requests_per_second"}
    assert routes == {"route=/slow", "route=/items/{item_id}", f"route={OTHER}"}
    # other = /boom 5 + unmatched 5 + /ai 1
    assert got["http_route_requests_per_second", f"route={OTHER}"] == pytest.approx(1.1)
    assert got["http_route_error_ratio", f"route={OTHER}"] == pytest.approx(5 / 11)


# -- names -------------------------------------------------------------------------------
def test_overridden_names_read_a_renamed_exposition() -> None:
    def renamed(name: str) -> Scrape:
        text = (FIXTURES / f"{name}.txt").read_text().replace("starlette_", "shop_")
        return parse_exposition(text)

    names = names_for(
        "starlette_exporter",
        duration="shop_request_duration_seconds",
        requests="shop_requests_total",
        active="shop_requests_in_progress",
    )
    w = window(renamed("starlette_exporter_0"), renamed("starlette_exporter_1"), SECONDS, names,
               ["/metrics"])  # fmt: skip
    assert w.requests == ROUTES
    with pytest.raises(TypeError):
        names_for("fastmango", bogus="x")


def test_a_malformed_exposition_raises() -> None:
    with pytest.raises(ValueError):
        parse_exposition("this is { not prometheus\n")


# -- the pieces ----------------------------------------------------------------------------
L1, L2 = (("a", "1"),), (("a", "2"),)


@pytest.mark.parametrize(
    ("prev", "cur", "expected"),
    [
        ({L1: 5.0}, {L1: 8.0}, {L1: 3.0}),  # growth
        ({L1: 5.0}, {L1: 2.0}, {L1: 2.0}),  # reset: counts from zero
        ({}, {L1: 4.0}, {L1: 4.0}),  # new series: all of it is new
        ({L1: 5.0, L2: 1.0}, {L1: 5.0}, {L1: 0.0}),  # gone: contributes nothing
    ],
)
def test_counter_deltas(
    prev: dict[tuple[tuple[str, str], ...], float],
    cur: dict[tuple[tuple[str, str], ...], float],
    expected: dict[tuple[tuple[str, str], ...], float],
) -> None:
    assert counter_deltas(prev, cur) == expected


def hist(*counts: float, bounds: tuple[float, ...] = (0.1, 0.2, INF)) -> Scrape:
    buckets = {
        (("le", str(b) if b != INF else "+Inf"),): c for b, c in zip(bounds, counts, strict=True)
    }
    return {"h_bucket": buckets, "h_count": {(): counts[-1]}}


@pytest.mark.parametrize(
    ("prev", "cur", "expected"),
    [
        (hist(1, 2, 3), hist(2, 4, 6), {0.1: 1, 0.2: 2, INF: 3}),
        # one bucket went down: the whole series was reset
        (hist(5, 6, 7), hist(1, 6, 8), {0.1: 1, 0.2: 6, INF: 8}),
        # the count went down: reset, even if a bucket did not
        (hist(0, 6, 7), hist(0, 6, 6), {0.1: 0, 0.2: 6, INF: 6}),
        ({}, hist(1, 1, 2), {0.1: 1, 0.2: 1, INF: 2}),
    ],
)
def test_histogram_deltas(prev: Scrape, cur: Scrape, expected: dict[float, float]) -> None:
    assert histogram_deltas(prev, cur, "h") == {(): expected}


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, {0.1: 50, 0.2: 100, INF: 100}, 0.1),  # at a bound
        (0.75, {0.1: 50, 0.2: 100, INF: 100}, 0.15),  # halfway into (0.1, 0.2]
        (0.5, {0.1: 100, INF: 100}, 0.05),  # first bucket: from 0
        (0.99, {0.1: 10, 0.2: 20, INF: 30}, 0.2),  # in +Inf: the highest finite bound
        (0.5, {0.1: 0, INF: 0}, None),  # no observations
        (0.5, {0.1: 3, 0.2: 5}, None),  # no +Inf bucket
        (0.5, {INF: 7}, None),  # only +Inf: nothing to say
        (0.95, {0.2: 95, 0.3: 100, INF: 100}, 0.2),  # exactly the SLO bound
        (0.96, {0.2: 95, 0.3: 100, INF: 100}, 0.22),
        (0.5, {0.1: 4, 0.2: 3, INF: 10}, 0.2),  # non-monotonic input kept monotonic
    ],
)
def test_histogram_quantile(q: float, buckets: dict[float, float], expected: float | None) -> None:
    got = histogram_quantile(q, buckets)
    if expected is None:
        assert got is None
    else:
        assert got is not None and math.isclose(got, expected)
