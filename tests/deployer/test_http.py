"""The shared platform client: retries with backoff honouring each platform's throttling
shape, timeouts, metering, and no token in any repr, log line or error."""

from __future__ import annotations

import logging
import time
from email.utils import formatdate

import httpx
import pytest

from fastmango.deployer.errors import PlatformError
from fastmango.deployer.http import RetryPolicy, TokenAuth, make_client, retry_after

SECRET = "sekret-token-abcdef123456"
NOW = 1_800_000_000
FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.02, max_wait=2.0)


def scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return httpx.MockTransport(handle), seen


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Retry-After": "3"}, None, 3.0),
        ({"Retry-After": formatdate(NOW + 10, usegmt=True)}, None, 10.0),
        ({"Ratelimit-Reset": "45"}, None, 45.0),  # Render: seconds from now
        ({"X-RateLimit-Reset": str(NOW + 7)}, None, 7.0),  # Railway: a Unix time
        (
            {},
            {"kind": "Status", "reason": "TooManyRequests", "details": {"retryAfterSeconds": 2}},
            2.0,
        ),  # Kubernetes
        ({}, {"error": "rate limit exceeded"}, None),
    ],
)
def test_retry_after_shapes(headers: dict[str, str], body: object, expected: float | None) -> None:
    resp = httpx.Response(429, headers=headers, json=body)
    got = retry_after(resp, now=NOW)
    assert got == (pytest.approx(expected, abs=0.01) if expected is not None else None)


async def test_429_waits_as_told_then_succeeds() -> None:
    transport, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200, json={"ok": True})
    )
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    client = make_client(
        "render",
        "https://api.render.com/v1",
        transport=transport,
        auth=TokenAuth(lambda: SECRET),
        retry=FAST,
        sleep=sleep,
    )
    async with client:
        resp = await client.post("/services/x/deploys", json={})  # 429 is safe even for POST
    assert resp.status_code == 200 and len(seen) == 2 and waits == [1.0]
    assert client.meter.retries == 1 and client.meter.statuses == {429: 1, 200: 1}


async def test_5xx_retried_for_get_not_for_post() -> None:
    transport, seen = scripted(httpx.Response(503), httpx.Response(503), httpx.Response(200))
    async with make_client("fly", "https://x/v1", transport=transport, retry=FAST) as client:
        assert (await client.get("/apps/a/machines")).status_code == 200
        assert len(seen) == 3
        transport2, seen2 = scripted(httpx.Response(502))
        async with make_client("fly", "https://x/v1", transport=transport2, retry=FAST) as c2:
            assert (await c2.post("/apps/a/machines", json={})).status_code == 502
        assert len(seen2) == 1  # creating a machine twice would be worse than failing
        # unless the request says it is safe (a GraphQL query)
        transport3, seen3 = scripted(httpx.Response(502), httpx.Response(200, json={}))
        async with make_client("fly", "https://x/v1", transport=transport3, retry=FAST) as c3:
            r = await c3.post("/graphql", json={}, extensions={"retry": True})
        assert r.status_code == 200 and len(seen3) == 2


async def test_gives_up_after_attempts_and_returns_last_answer() -> None:
    transport, seen = scripted(httpx.Response(429, headers={"Retry-After": "0"}))
    async with make_client("railway", "https://x", transport=transport, retry=FAST) as client:
        resp = await client.get("/")
    assert resp.status_code == 429 and len(seen) == FAST.attempts


async def test_unreachable_platform_is_a_platform_error_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.conftest import free_port

    caplog.set_level(logging.DEBUG)
    client = make_client(
        "render",
        f"http://127.0.0.1:{free_port()}/v1?api_key={SECRET}",
        auth=TokenAuth(lambda: SECRET),
        retry=FAST,
    )
    async with client:
        with pytest.raises(PlatformError) as info:
            await client.get("/services")
    assert "cannot reach" in str(info.value) and SECRET not in str(info.value)
    assert SECRET not in caplog.text and SECRET not in repr(client)
    assert client.meter.requests == FAST.attempts


def test_no_token_in_reprs() -> None:
    auth = TokenAuth(lambda: SECRET)
    client = make_client("fly", "https://api.machines.dev/v1", auth=auth)
    assert SECRET not in repr(auth) and SECRET not in repr(client)
    err = PlatformError(
        "fly", f"401 with Authorization: Bearer {SECRET}", 401, f"GET https://x/?token={SECRET}"
    )
    assert SECRET not in str(err) and SECRET not in repr(err) and SECRET not in err.request


async def test_real_socket_throttle_slow_answer_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Over a real socket: a 429 in Render's shape and an answer slower than the read
    timeout are both retried; the log lines name the request but never the token."""
    from tests.fakes.render import FakeRender

    caplog.set_level(logging.DEBUG, logger="fastmango.deployer.http")
    with FakeRender(token=SECRET) as fake:
        fake.throttle(1, retry_after=1)
        fake.inject(0, delay=1.0, method="GET")  # slower than the 0.5 s read timeout
        client = make_client(
            "render",
            fake.url + "/v1",
            auth=TokenAuth(lambda: SECRET),
            retry=FAST,
            timeout=httpx.Timeout(0.5, connect=2.0),
        )
        async with client:
            t0 = time.monotonic()
            resp = await client.get("/services/srv-abc123/deploys", params={"limit": 5})
            took = time.monotonic() - t0
    assert resp.status_code == 200 and len(resp.json()) == 3
    assert 1.0 <= took < 5, took  # waited the Retry-After, then gave up on the slow one
    assert client.meter.retries == 2
    assert "-> 429" in caplog.text and "ReadTimeout" in caplog.text
    assert SECRET not in caplog.text
    assert all(s.headers.get("authorization") == f"Bearer {SECRET}" for s in fake.seen)


def test_tls_context_is_made_once_and_plain_http_reads_no_ca_bundle() -> None:
    import ssl

    from fastmango.deployer.http import tls_context

    a = tls_context("https://api.render.com/v1")
    assert a is tls_context("https://backboard.railway.com/graphql/v2")  # shared
    assert a.verify_mode == ssl.CERT_REQUIRED and a.cert_store_stats()["x509_ca"] > 0
    plain = tls_context("http://127.0.0.1:8080")
    # nothing read; an https request on it would fail verification, never pass unchecked
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0
    off = tls_context("https://10.0.0.1:6443", verify=False)
    assert off is False
