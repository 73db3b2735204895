"""The one HTTP client every platform adapter shares: timeouts, retries, redaction.

Adapters build requests and parse answers; this module sends them. Use it as::

    from fastmango.deployer.http import TokenAuth, make_client

    client = make_client(
        "render",                                   # platform name (logs, errors, metrics)
        "https://api.render.com/v1",
        auth=TokenAuth(lambda: token),              # Authorization: Bearer <token>
    )
    resp = await client.get("/services/srv-1/deploys")   # retried on 429/5xx
    await client.pause(2.0)                         # a poll wait, counted as platform time
    await client.aclose()

What it does for every request:

* **Timeouts**: 5 s to connect, 30 s to read (``timeout=`` overrides).
* **Retries with backoff**: a throttled answer (429, or what the platform's ``throttle``
  function recognises, e.g. ECS' HTTP 400 ``ThrottlingException`` or a GraphQL error
  inside a 200) is retried for every method; a 5xx, 408 or a connection failure only for
  idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) or when the request says it is safe
  with ``extensions={"retry": True}`` (a GraphQL query, a POST the platform dedups). The
  wait is the server's ``Retry-After`` (seconds or an HTTP date), else
  ``RateLimit-Reset``/``X-RateLimit-Reset`` (seconds, or a Unix time), else a Kubernetes
  Status' ``details.retryAfterSeconds``, else exponential backoff with jitter; capped by
  :attr:`RetryPolicy.max_wait`. After the last attempt the answer is returned as it is,
  and the adapter turns it into a :class:`~fastmango.deployer.errors.PlatformError`.
  A connection that cannot be made (after the retries a safe request gets) raises
  :class:`~fastmango.deployer.errors.PlatformError` too.
* **Redaction**: the credential lives in :class:`TokenAuth` (its ``repr`` shows no
  token) and is added to the request at send time. The client's log lines (logger
  ``fastmango.deployer.http``) name method, URL (secrets in it masked), status and
  time, never a header. :func:`describe` gives the same one-line, safe text for errors.
* **Metering**: :attr:`PlatformClient.meter` adds up the requests, retries and seconds
  spent waiting on the platform (in requests, in backoff and in :meth:`PlatformClient.pause`),
  so a command can report its own overhead apart from the platform's time.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from fastmango.deployer.errors import PlatformError
from fastmango.redact import redact_secrets

log = logging.getLogger("fastmango.deployer.http")

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: a function that says an answer is the platform's "slow down" even if it is no 429
Throttle = Callable[[httpx.Response], bool]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry."""

    attempts: int = 5  # in all, the first try included
    backoff: float = 0.5  # first wait without a server hint; doubles each time
    max_backoff: float = 8.0
    max_wait: float = 30.0  # longest single wait, also when the server asks for more
    statuses: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})

    def backoff_for(self, attempt: int) -> float:
        """Exponential backoff with full jitter for retry ``attempt`` (1, 2, …)."""
        top = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return float(top / 2 + random.uniform(0, top / 2))


class TokenAuth(httpx.Auth):
    """A credential header added at send time; its ``repr`` never shows the token.

    ``token`` is a function so a rotating token (a Kubernetes projected service account
    token) is re-read for each request.
    """

    def __init__(
        self, token: Callable[[], str], header: str = "Authorization", scheme: str = "Bearer"
    ) -> None:
        self._token = token
        self.header = header
        self.scheme = scheme

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        value = self._token()
        request.headers[self.header] = f"{self.scheme} {value}" if self.scheme else value
        yield request

    def __repr__(self) -> str:
        return f"TokenAuth(header={self.header!r}, scheme={self.scheme!r}, token=****)"


@dataclass
class Meter:
    """What talking to the platform cost: requests, retries, and the wall-clock seconds
    during which at least one request, backoff wait or pause was in progress (requests
    sent in parallel count once)."""

    requests: int = 0
    retries: int = 0
    waited: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    _busy: int = 0
    _since: float = 0.0

    def begin(self, now: float) -> None:
        if self._busy == 0:
            self._since = now
        self._busy += 1

    def end(self, now: float) -> None:
        self._busy -= 1
        if self._busy == 0:
            self.waited += now - self._since


def describe(request: httpx.Request) -> str:
    """``GET https://host/path`` with anything secret in the URL masked."""
    return f"{request.method} {redact_secrets(str(request.url))}"


def retry_after(resp: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, from its headers or a Kubernetes Status body."""
    value = resp.headers.get("retry-after")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when - (time.time() if now is None else now))
    for name in ("ratelimit-reset", "x-ratelimit-reset"):
        value = resp.headers.get(name)
        if value:
            try:
                reset = float(value)
            except ValueError:
                continue
            # Render documents "UTC epoch seconds" but its example is 45: big = a time
            if reset > 1e9:
                reset -= time.time() if now is None else now
            return max(0.0, reset)
    if "json" in resp.headers.get("content-type", "") and resp.content:
        try:
            body = resp.json()
        except ValueError:
            return None
        if isinstance(body, dict) and body.get("kind") == "Status":
            seconds = (body.get("details") or {}).get("retryAfterSeconds")
            if isinstance(seconds, int | float):
                return float(seconds)
    return None


class RetryTransport(httpx.AsyncBaseTransport):
    """Sends through ``inner`` and retries as :class:`RetryPolicy` says."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        platform: str,
        policy: RetryPolicy,
        meter: Meter,
        throttle: Throttle | None,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        self.inner = inner
        self.platform = platform
        self.policy = policy
        self.meter = meter
        self.throttle = throttle
        self.sleep = sleep
        self.clock = clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.meter.begin(self.clock())
        try:
            return await self._send(request)
        finally:
            self.meter.end(self.clock())

    async def _send(self, request: httpx.Request) -> httpx.Response:
        safe = request.method in IDEMPOTENT or bool(request.extensions.get("retry"))
        attempt = 0
        while True:
            attempt += 1
            t0 = self.clock()
            try:
                resp = await self.inner.handle_async_request(request)
                await resp.aread()
            except httpx.TransportError as exc:
                self.meter.requests += 1
                transient = isinstance(exc, httpx.TimeoutException | httpx.NetworkError)
                if not (safe and transient) or attempt >= self.policy.attempts:
                    raise PlatformError(
                        self.platform,
                        f"cannot reach its API ({type(exc).__name__}: {exc or 'no detail'})",
                        request=describe(request),
                    ) from None
                wait = self.policy.backoff_for(attempt)
                log.warning(
                    "%s %s: %s; retry %d in %.1fs",
                    self.platform,
                    describe(request),
                    type(exc).__name__,
                    attempt,
                    wait,
                )
            else:
                took = self.clock() - t0
                self.meter.requests += 1
                self.meter.statuses[resp.status_code] = (
                    self.meter.statuses.get(resp.status_code, 0) + 1
                )
                log.debug(
                    "%s %s -> %d in %.0f ms",
                    self.platform,
                    describe(request),
                    resp.status_code,
                    took * 1000,
                )
                throttled = resp.status_code == 429 or bool(self.throttle and self.throttle(resp))
                retryable = throttled or (safe and resp.status_code in self.policy.statuses)
                if not retryable or attempt >= self.policy.attempts:
                    return resp
                hint = retry_after(resp)
                wait = hint if hint is not None else self.policy.backoff_for(attempt)
                wait = min(wait, self.policy.max_wait)
                log.warning(
                    "%s %s -> %d; retry %d in %.1fs",
                    self.platform,
                    describe(request),
                    resp.status_code,
                    attempt,
                    wait,
                )
                await resp.aclose()
            self.meter.retries += 1
            await self.sleep(wait)

    async def aclose(self) -> None:
        await self.inner.aclose()


class PlatformClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` with a :class:`Meter`, a platform name and a safe repr."""

    platform: str
    meter: Meter
    _sleep: Callable[[float], Awaitable[None]]
    _clock: Callable[[], float]

    async def pause(self, seconds: float) -> None:
        """Wait between polls; counted as time spent waiting on the platform."""
        if seconds <= 0:
            return
        self.meter.begin(self._clock())
        try:
            await self._sleep(seconds)
        finally:
            self.meter.end(self._clock())

    def __repr__(self) -> str:
        url = redact_secrets(str(self.base_url))
        return f"PlatformClient(platform={self.platform!r}, base_url={url!r})"


_TLS: dict[tuple[Any, Any], ssl.SSLContext] = {}
_TLS_KEEP = 8


def tls_context(base_url: str, verify: Any = True, cert: Any = None) -> Any:
    """The TLS context for a client of ``base_url``, made once and shared.

    Building a verifying context reads the CA bundle (about 40 ms, the largest part of
    creating a client), so every client of a process with the same ``verify``/``cert``
    shares one (a context is safe to share). A plain ``http://`` base URL (a local
    proxy, a test fake) gets a context that trusts no CA at all: nothing to read, and a
    request that ends up on https fails verification rather than going unchecked.
    """
    if isinstance(verify, ssl.SSLContext) or verify is False:
        return verify
    if verify is True and cert is None and base_url.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname + cert required, no CAs
    key = (verify, cert if not isinstance(cert, list) else tuple(cert))
    ctx = _TLS.get(key)
    if ctx is None:
        if verify is True:
            ctx = httpx.create_ssl_context()  # certifi's bundle, or SSL_CERT_FILE/DIR
        elif os.path.isdir(verify):
            ctx = ssl.create_default_context(capath=verify)
        else:
            ctx = ssl.create_default_context(cafile=verify)
        if cert:  # a client certificate (kubeconfig), also with a CA file of its own
            ctx.load_cert_chain(*((cert,) if isinstance(cert, str) else cert))
        if len(_TLS) >= _TLS_KEEP:  # e.g. kubeconfig CA data in a new temp file each time
            _TLS.pop(next(iter(_TLS)))
        _TLS[key] = ctx
    return ctx


def make_client(
    platform: str,
    base_url: str,
    *,
    auth: httpx.Auth | None = None,
    headers: dict[str, str] | None = None,
    timeout: httpx.Timeout | float | None = None,
    retry: RetryPolicy | None = None,
    throttle: Throttle | None = None,
    verify: Any = True,
    cert: Any = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> PlatformClient:
    """The shared client for one platform's API at ``base_url``.

    ``auth`` carries the credential (use :class:`TokenAuth`); ``headers`` are fixed,
    non-secret headers (a User-Agent, a content type). ``throttle`` recognises the
    platform's own "slow down" answers besides 429. ``transport`` replaces the network
    (``httpx.MockTransport`` in unit tests); ``sleep``/``clock`` are injectable too.
    """
    meter = Meter()
    inner = transport or httpx.AsyncHTTPTransport(verify=tls_context(base_url, verify, cert))
    client = PlatformClient(
        base_url=base_url,
        auth=auth,
        headers={"User-Agent": "fastmango-deployer", **(headers or {})},
        timeout=timeout if timeout is not None else httpx.Timeout(30.0, connect=5.0),
        transport=RetryTransport(
            inner, platform, retry or RetryPolicy(), meter, throttle, sleep, clock
        ),
    )
    client.platform = platform
    client.meter = meter
    client._sleep = sleep
    client._clock = clock
    return client


def graphql_throttled(resp: httpx.Response) -> bool:
    """A GraphQL answer (HTTP 200) whose errors say "rate limit"."""
    if resp.status_code != 200 or "json" not in resp.headers.get("content-type", ""):
        return False
    try:
        body = resp.json()
    except (ValueError, json.JSONDecodeError):
        return False
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return False
    for err in errors:
        text = str(err.get("message", "")).lower() if isinstance(err, dict) else ""
        code = str(((err.get("extensions") or {}) if isinstance(err, dict) else {}).get("code"))
        if "rate limit" in text or code.upper() in ("RATELIMITED", "RATE_LIMITED"):
            return True
    return False
