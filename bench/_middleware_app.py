"""The apps ``bench/middleware.py`` compares: one minimal FastAPI app, instrumented four ways.

Each function builds the app afresh (``uvicorn --factory _middleware_app:<name>``):
``bare``; ``fastmango`` (``FastmangoMiddleware``); ``instrumentator``
(prometheus-fastapi-instrumentator's defaults, ``/metrics`` exposed);
``prometheus_multiprocess``: the same series as fastmango's, recorded with
prometheus_client in multiprocess mode (needs ``PROMETHEUS_MULTIPROC_DIR`` set before
prometheus_client is imported), the other way to serve every worker's counts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

from fastapi import FastAPI

Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Any, Any], Awaitable[None]]


def bare() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


def fastmango() -> FastAPI:
    from fastmango.collector.app import FastmangoMiddleware

    app = bare()
    app.add_middleware(FastmangoMiddleware)
    return app


def instrumentator() -> FastAPI:
    from prometheus_fastapi_instrumentator import Instrumentator

    app = bare()
    Instrumentator().instrument(app).expose(app)
    return app


class PrometheusMultiprocessMiddleware:
    """FastmangoMiddleware's series and request path, written with prometheus_client."""

    def __init__(self, app: ASGI) -> None:
        from prometheus_client import Gauge, Histogram

        from fastmango.collector.app_registry import DURATION_BUCKETS, SIZE_BUCKETS

        labels = ("http_request_method", "http_route", "http_response_status_code")
        self.app = app
        self.duration = Histogram("http_server_request_duration_seconds", "d", labels,
                                  buckets=DURATION_BUCKETS)  # fmt: skip
        self.req = Histogram("http_server_request_body_size_bytes", "r", labels,
                             buckets=SIZE_BUCKETS)  # fmt: skip
        self.resp = Histogram("http_server_response_body_size_bytes", "s", labels,
                              buckets=SIZE_BUCKETS)  # fmt: skip
        self.active = Gauge("http_server_active_requests", "a", ("http_request_method",),
                            multiprocess_mode="livesum")  # fmt: skip

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        active = self.active.labels(method)
        active.inc()
        status, received, sent = 500, 0, 0

        async def receive_counting() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def send_watching(message: Any) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = perf_counter()
        try:
            await self.app(scope, receive_counting, send_watching)
        finally:
            route = getattr(scope.get("route"), "path_format", "")
            labels = (method, route, str(status))
            self.duration.labels(*labels).observe(perf_counter() - start)
            self.req.labels(*labels).observe(received)
            self.resp.labels(*labels).observe(sent)
            active.dec()


def prometheus_multiprocess() -> FastAPI:
    app = bare()
    app.add_middleware(PrometheusMultiprocessMiddleware)
    return app
