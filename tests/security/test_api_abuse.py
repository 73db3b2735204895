"""Abuse resistance of the agent's API, against a real agent process: schemathesis finds
no server error and no answer outside the OpenAPI document; oversized bodies get 413 and
floods get 429 with Retry-After; the limiter itself is table-tested."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmango.agent.limits import RateLimiter

#: endpoints that stream until the client leaves (SSE) are exercised by their own tests
STREAMING = r"/api/(stream|logs/tail|deploys/.*/progress)$"


@pytest.mark.integration
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    start_agent: Callable[..., Any], tmp_path: Path
) -> None:
    agent = start_agent()
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is missing from the virtualenv (pip install -e '.[test]')"
    res = subprocess.run(
        [st, "run", f"{agent.url}/api/openapi.json",
         "--checks", "not_a_server_error,response_schema_conformance,"
                     "status_code_conformance,content_type_conformance",
         "--max-examples", "25", "--exclude-path-regex", STREAMING,
         "--request-timeout", "10", "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    assert "Traceback" not in agent.output()


@pytest.mark.integration
def test_oversized_bodies_and_floods_are_refused(
    start_agent: Callable[..., Any], agent_env: dict[str, str]
) -> None:
    agent_env.update(FASTMANGO_SERVER__RATE_LIMIT="5", FASTMANGO_SERVER__RATE_BURST="10",
                     FASTMANGO_SERVER__MAX_BODY="2kB")  # fmt: skip
    agent = start_agent()
    with httpx.Client(base_url=agent.url, timeout=10) as c:
        big = c.post("/login", content=b"token=" + b"x" * 5000,
                     headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert big.status_code == 413 and "2000 bytes" in big.json()["detail"]

        def chunks() -> Any:
            for _ in range(10):
                yield b"y" * 1000

        streamed = c.post("/api/events", content=chunks())  # no Content-Length: counted as read
        assert streamed.status_code in (405, 413)
        codes = [c.get("/api/status").status_code for _ in range(30)]
        assert codes.count(200) <= 12 and 429 in codes
        limited = c.get("/api/status")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        # scrapes never count against the limit
        assert all(c.get("/metrics").status_code == 200 for _ in range(30))


@pytest.mark.parametrize(
    ("rate", "burst", "calls", "expect"),
    [
        (1.0, 3, [0, 0, 0, 0], [0, 0, 0, 1.0]),  # a burst of 3, then wait a second
        (2.0, 1, [0, 0.25, 0.5], [0, 0.25, 0]),  # refills at 2/s
        (10.0, 5, [0] * 5 + [1.0], [0] * 6),  # a second later the bucket is full again
    ],
)
def test_rate_limiter_table(
    rate: float, burst: int, calls: list[float], expect: list[float]
) -> None:
    now = [0.0]
    limiter = RateLimiter(rate, burst, clock=lambda: now[0])
    got = []
    for t in calls:
        now[0] = t
        got.append(round(limiter.take("10.0.0.1"), 3))
    assert got == expect
    assert limiter.take("10.0.0.2") == 0  # per client


def test_rate_limiter_forgets_idle_clients() -> None:
    limiter = RateLimiter(1, 1, clock=lambda: 0.0, max_clients=3)
    for i in range(10):
        limiter.take(f"10.0.0.{i}")
    assert len(limiter._buckets) == 3
