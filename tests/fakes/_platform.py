"""What the platform fakes share: a Starlette app under uvicorn in a thread, request
log, auth check, injected faults (429 with the platform's headers, 5xx, slow answers),
a per-request latency, and rollouts that progress over polls and time.

Typical latencies (``latency=`` per request, ``step=`` per rollout step) are documented
in each fake's ``TYPICAL``; tests use zero, the rollback benchmark uses TYPICAL.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.conftest import free_port


@dataclass
class Fault:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    method: str | None = None
    path: str | None = None  # a substring of the path
    delay: float = 0.0  # seconds before answering (a slow answer); status 0 = answer normally


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class Steps:
    """A rollout's position in a list of steps: it moves at most one step per poll, and
    only once ``step`` seconds have passed since the last move."""

    def __init__(self, steps: list[str], step: float, clock: Callable[[], float]) -> None:
        self.steps = steps
        self.step = step
        self.clock = clock
        self.i = 0
        self.t = clock()

    def poll(self) -> str:
        if self.i < len(self.steps) - 1 and self.clock() - self.t >= self.step:
            self.i += 1
            self.t = self.clock()
        return self.steps[self.i]

    @property
    def now(self) -> str:
        return self.steps[self.i]

    @property
    def done(self) -> bool:
        return self.i == len(self.steps) - 1


class FakePlatform:
    """Base of the fakes. Subclasses give ``routes()``, ``authorized(request)`` and
    ``throttle_answer(fault)`` (their own 429 shape)."""

    name = "platform"
    TYPICAL: ClassVar[dict[str, float]] = {"latency": 0.0, "step": 0.0}

    def __init__(self, latency: float = 0.0, step: float = 0.0) -> None:
        self.latency = latency
        self.step = step
        self.clock = time.monotonic
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=self.routes())

    # -- to override ---------------------------------------------------------------
    def routes(self) -> list[Route]:
        return []

    def authorized(self, request: Request) -> Response | None:
        """None when the request carries valid credentials, else the refusal."""
        return None

    def throttle_headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}

    def throttle_body(self) -> Any:
        return {"error": "rate limit exceeded"}

    # -- faults --------------------------------------------------------------------
    def inject(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (0 = normally,
        after ``delay``)."""
        self.faults.append(Fault(status, body, headers or {}, times, method, path, delay))

    def throttle(self, times: int = 1, retry_after: float = 1, **match: Any) -> None:
        """429 in this platform's own shape, with Retry-After."""
        headers = {**self.throttle_headers(), "Retry-After": str(int(retry_after))}
        self.inject(429, self.throttle_body(), headers, times, **match)

    def calls(self, method: str | None = None, contains: str = "") -> list[Seen]:
        return [
            s for s in self.seen if (method is None or s.method == method) and contains in s.path
        ]

    # -- serving -------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope, receive)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(Seen(request.method, request.url.path, request.url.query, headers, body))

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(request)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status:
                resp: Response = JSONResponse(fault.body, fault.status, fault.headers)
                return await resp(scope, replay, send)
        refusal = self.authorized(request)
        if refusal is not None:
            return await refusal(scope, replay, send)
        await self.app(scope, replay, send)

    def _take_fault(self, request: Request) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.method and f.method != request.method:
                    continue
                if f.path and f.path not in request.url.path:
                    continue
                f.times -= 1
                if f.times <= 0:
                    self.faults.remove(f)
                return f
        return None

    def start(self) -> FakePlatform:
        config = uvicorn.Config(
            self,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            ws="none",
            http="h11",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name=f"fake-{self.name}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fake {self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakePlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"
