"""The scrape fast path answers only what the full app would allow, and builds the API
lazily."""

from __future__ import annotations

from typing import Any

import pytest

from fastmango.agent.exporter import Exporter
from fastmango.agent.front import Front
from fastmango.agent.selfmetrics import INDEX, SPECS
from fastmango.series import SampleBuilder


class FullApp:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"from the full app"})


async def request(front: Front, path: str, headers: dict[str, str], method: str = "GET"):  # type: ignore[no-untyped-def]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await front(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


def exporter() -> Exporter:
    e = Exporter({s.name: s for s in SPECS})
    b = SampleBuilder(INDEX, 0.0)
    b.add("fastmango_build_info", 1, version="x")
    e.update("fastmango", b.samples)
    e.render_pending()
    return e


@pytest.mark.parametrize(
    ("token", "public", "headers", "fast"),
    [
        (None, False, {"Host": "127.0.0.1:9871"}, True),
        (None, False, {"Host": "localhost"}, True),
        (None, False, {"Host": "[::1]:9871"}, True),
        (None, False, {"Host": "evil.example:9871"}, False),  # DNS rebinding
        ("t0k", False, {"Host": "10.0.0.5:9871"}, False),
        ("t0k", False, {"Host": "10.0.0.5", "Authorization": "Bearer t0k"}, True),
        ("t0k", False, {"Host": "10.0.0.5", "Authorization": "Bearer t0kX"}, False),
        ("t0k", True, {"Host": "10.0.0.5"}, True),
    ],
)  # fmt: skip
async def test_metrics_fast_path_follows_the_auth_rules(
    token: str | None, public: bool, headers: dict[str, str], fast: bool
) -> None:
    full = FullApp()
    front = Front(exporter(), lambda: full, token, public)
    status, _, body = await request(front, "/metrics", headers)
    if fast:
        assert status == 200 and b"fastmango_build_info" in body
        assert full.calls == 0
    else:
        assert status == 401 and full.calls == 1


async def test_api_app_is_built_once_on_first_use_and_healthz_needs_nothing() -> None:
    built: list[FullApp] = []

    def build() -> FullApp:
        built.append(FullApp())
        return built[-1]

    front = Front(exporter(), build, "t0k")
    status, headers, body = await request(front, "/healthz", {"Host": "x"})
    assert status == 200 and b'"status": "ok"' in body
    gzipped = {"Authorization": "Bearer t0k", "Accept-Encoding": "gzip"}
    status, headers, body = await request(front, "/metrics", gzipped)
    assert headers[b"content-encoding"] == b"gzip"
    assert built == []  # scrapes never build the API
    await request(front, "/api/status", {})
    await request(front, "/api/status", {})
    assert len(built) == 1 and built[0].calls == 2
    status, _, body = await request(front, "/metrics", {"Authorization": "Bearer t0k"}, "HEAD")
    assert status == 200 and body == b""
