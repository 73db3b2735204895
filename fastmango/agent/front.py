"""The agent's ASGI entry point: scrapes answered from ready bytes, the rest by the API.

``GET /metrics`` and ``GET /healthz`` are what a sidecar serves all day, so they are
answered here, in a few lines of plain ASGI, from the exporter's rendered bytes: no
routing, no middleware stack, no request objects. Everything else (the JSON API, the
dashboard, login) goes to the FastAPI app, which is built — and FastAPI imported — on
the first request that needs it. A sidecar that only Prometheus scrapes never loads it,
which keeps its memory and start-up small.

The fast path only answers requests the full app would allow: ``/metrics`` needs the
bearer token when one is set (unless ``server.public_metrics``), and without a token a
loopback ``Host`` header (as :mod:`fastmango.agent.auth` requires, against DNS
rebinding). Anything else falls through to the full app, which says why not.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastmango import __version__
from fastmango.agent.exporter import Exporter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = frozenset({b"localhost", b"127.0.0.1", b"[::1]", b"::1"})
HEALTHZ = json.dumps({"status": "ok", "version": __version__}).encode()


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return b""


def _host_is_loopback(host: bytes) -> bool:
    if host.startswith(b"["):  # [::1]:9871
        return host.partition(b"]")[0] + b"]" in LOOPBACK_HOSTS
    return host.rpartition(b":")[0] in LOOPBACK_HOSTS if b":" in host else host in LOOPBACK_HOSTS


class Front:
    """Serve the scrape fast path; hand the rest to the API app, built on first use."""

    def __init__(
        self,
        exporter: Exporter,
        build_app: Callable[[], ASGIApp],
        token: str | None = None,
        public_metrics: bool = False,
    ) -> None:
        self.exporter = exporter
        self._build_app = build_app
        self._bearer = f"Bearer {token}".encode() if token else None
        self._public_metrics = public_metrics
        self._app: ASGIApp | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            if path == "/healthz":
                return await self._send(scope, send, HEALTHZ, "application/json")
            if path == "/metrics" and self._may_scrape(scope):
                body, content_type, gz = self.exporter.body(
                    _header(scope, b"accept").decode("latin-1"),
                    _header(scope, b"accept-encoding").decode("latin-1"),
                )
                return await self._send(scope, send, body, content_type, gz)
        app = self._app or await self.app()
        await app(scope, receive, send)

    async def app(self) -> ASGIApp:
        """The full API app, built once (in a thread, so scrapes go on meanwhile)."""
        async with self._lock:
            if self._app is None:
                self._app = await asyncio.to_thread(self._build_app)
        return self._app

    def _may_scrape(self, scope: Scope) -> bool:
        if self._public_metrics:
            return True
        if self._bearer is not None:
            return hmac.compare_digest(_header(scope, b"authorization"), self._bearer)
        return _host_is_loopback(_header(scope, b"host"))

    @staticmethod
    async def _send(
        scope: Scope, send: Send, body: bytes, content_type: str, gz: bool = False
    ) -> None:
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"vary", b"Accept, Accept-Encoding"),
        ]
        if gz:
            headers.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )
