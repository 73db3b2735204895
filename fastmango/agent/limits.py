"""Abuse limits of the agent's API: request body size and a per-client rate limit.

Both sit in front of authentication (pure ASGI, so streamed answers pass untouched): a
flood of requests, authenticated or not, is answered ``429`` with ``Retry-After`` before
any work is done, and a body over the limit ``413`` before it is read whole. Scrapes of
``/metrics`` and ``/healthz`` never reach here (see :mod:`fastmango.agent.front`).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastmango.agent.front import ASGIApp, Message, Receive, Scope, Send


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets per client address: ``rate`` requests a second, bursts of ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when the request may pass, else the seconds until it would."""
        now = self.clock()
        b = self._buckets.pop(client, None) or _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
        b.at = now
        self._buckets[client] = b
        while len(self._buckets) > self.max_clients:  # forget the longest idle
            self._buckets.popitem(last=False)
        if b.tokens >= 1:
            b.tokens -= 1
            return 0.0
        return (1 - b.tokens) / self.rate


class BodyTooLarge(Exception):
    pass


async def _refuse(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, max_body: int, limiter: RateLimiter | None) -> None:
        self.app = app
        self.max_body = max_body
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.limiter is not None and not scope["path"].startswith("/static/"):
            client = scope.get("client")
            wait = self.limiter.take(str(client[0]) if client else "unknown")
            if wait:
                retry = str(max(1, int(wait + 0.999))).encode()
                await _refuse(send, 429, "too many requests; slow down",
                              [(b"retry-after", retry)])  # fmt: skip
                return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _refuse(send, 400, "invalid Content-Length", [])
                    return
                if declared > self.max_body:
                    await _refuse(send, 413, f"request body over {self.max_body} bytes", [])
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, 413, f"request body over {self.max_body} bytes", [])
