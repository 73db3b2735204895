"""The app side: a pure ASGI middleware and AI-inference tracking, OTel names.

::

    from fastmango.collector.app import FastmangoMiddleware, track_inference, record_tokens

    app.add_middleware(FastmangoMiddleware)          # FastAPI, Starlette, any ASGI app
    # the agent: collectors.app.metrics_urls = ["http://127.0.0.1:8000/metrics"]

    @track_inference(model="llama-3-8b")             # sync, async, generators
    async def answer(prompt: str) -> str: ...

    with track_inference(model="gpt-4o") as call:   # or `async with`
        for chunk in stream:
            call.first_token()                       # time to first token (once)
        call.tokens(input=120, output=380)

    record_tokens("gpt-4o", input=120, output=380)

Per request the middleware records, under ``http_request_method``, ``http_route`` and
``http_response_status_code``: the duration (``http_server_request_duration_seconds``,
buckets resolving a 200 ms SLO), the request and response body sizes (histograms of
the body bytes the app read and sent; a GET or HEAD body, which has no defined meaning,
is not read for counting) and, by method, the requests in flight. It
answers ``GET metrics_path`` itself with the exposition of the whole app, every worker
merged (see :mod:`fastmango.collector.app_workers`); that request is not counted.

- **Route**: the template the router matched, read from the ASGI scope after the app
  ran: ``scope["route"].path_format`` (Starlette and FastAPI), FastAPI's effective route
  context for nested ``include_router`` prefixes, and the templates of the ``Mount``\\ s
  the request went through. A request no route matched gets ``http_route=""``
  (:data:`~fastmango.collector.app_registry.UNMATCHED`): never the raw path.
- **Status**: the status the app sent. An exception in the app counts as a 500 and is
  re-raised; so does an app that returns, or is cancelled, before it started a response.
- **Methods** outside the nine of RFC 9110 (+PATCH) are ``_OTHER``, as OTel says.
- Inference: ``gen_ai_client_operation_duration_seconds{gen_ai_request_model}`` for every
  call (failed ones too), ``gen_ai_server_time_to_first_token_seconds`` for streamed
  ones, ``gen_ai_client_token_usage_total{gen_ai_token_type=input|output}``, and
  ``gen_ai_client_operation_errors_total{error_type=<exception class>}``. A decorated
  generator or async generator marks its first item as the first token and ends when
  it is exhausted; a consumer that stops early (``GeneratorExit``) is not an error.

The request path takes no lock and creates two small closures; its cost is measured by
``bench/middleware.py``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from time import perf_counter
from types import TracebackType
from typing import Any, TypeVar, cast

from fastmango.collector.app_registry import (
    AI_DURATION_BUCKETS,
    AI_SUM,
    DUR_SUM,
    DURATION_BUCKETS,
    MAX_SERIES,
    OTHER,
    REQ_OFF,
    REQ_SUM,
    RESP_OFF,
    RESP_SUM,
    SIZE_BUCKETS,
    SPECS,
    TTFT_BUCKETS,
    TTFT_SUM,
    UNMATCHED,
)
from fastmango.collector.app_workers import ProcessMetrics, default_process_metrics

__all__ = ["SPECS", "FastmangoMiddleware", "Inference", "record_tokens", "track_inference"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Any])

METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
MOUNT_CACHE = 1024


class FastmangoMiddleware:
    """Pure ASGI middleware recording OTel HTTP server metrics; see the module docstring.

    ``metrics_path``: where it answers GET with the whole app's exposition (None: never).
    ``metrics_dir``: the folder the workers share (default ``$FASTMANGO_METRICS_DIR``, else
    one under the temp dir per master process and port). ``environ`` and ``process`` are
    for tests: the environment read, and the per-process state written.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics_path: str | None = "/metrics",
        *,
        metrics_dir: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        process: ProcessMetrics | None = None,
    ) -> None:
        self.app = app
        self.metrics_path = metrics_path or None
        self.metrics_dir = Path(metrics_dir) if metrics_dir is not None else None
        self.environ = os.environ if environ is None else environ
        self.process = process or default_process_metrics()
        self._mounts: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, self._lifespan_send(send))
            else:
                await self.app(scope, receive, send)
            return
        process = self.process
        if not process.bound:
            self._bind(scope)
        method = scope["method"]
        received = 0
        if method == "GET" or method == "HEAD":  # no request body to count
            if scope["path"] == self.metrics_path:
                await self._serve_metrics(method, send)
                return
            receive_app = receive
        else:
            if method not in METHODS:
                method = "_OTHER"

            async def receive_counting() -> Message:
                nonlocal received
                message = await receive()
                body = message.get("body")
                if body:
                    received += len(body)
                return message

            receive_app = receive_counting
        metrics = process.metrics
        active = metrics.active
        active[method] = active.get(method, 0) + 1
        root = scope.get("root_path", "")
        status = 0
        sent = 0

        async def send_watching(message: Message) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.body":
                body = message.get("body")
                if body:
                    sent += len(body)
            elif kind == "http.response.start":
                status = message["status"]
            await send(message)

        start = perf_counter()
        try:
            await self.app(scope, receive_app, send_watching)
        except Exception:
            status = 500
            raise
        finally:
            duration = perf_counter() - start
            active[method] -= 1
            key = (method, self._route(scope, root), status or 500)
            rec = metrics.http.get(key) or metrics.new_http_record(key)
            rec[bisect_left(DURATION_BUCKETS, duration)] += 1
            rec[DUR_SUM] += duration
            if received:
                rec[REQ_OFF + bisect_left(SIZE_BUCKETS, received)] += 1
                rec[REQ_SUM] += received
            else:
                rec[REQ_OFF] += 1
            if sent:
                rec[RESP_OFF + bisect_left(SIZE_BUCKETS, sent)] += 1
                rec[RESP_SUM] += sent
            else:
                rec[RESP_OFF] += 1

    # -- route templates ---------------------------------------------------------------
    def _route(self, scope: Scope, root: str) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        template = None
        fastapi = scope.get("fastapi")
        if fastapi is not None:  # FastAPI's nested include_router prefixes
            ctx = fastapi.get("effective_route_context")
            if ctx is not None and getattr(ctx, "original_route", None) is route:
                template = (
                    getattr(getattr(ctx, "starlette_route", None), "path_format", None)
                    or getattr(ctx, "path_format", None)
                )  # fmt: skip
        if template is None:
            template = getattr(route, "path_format", None)
        if not isinstance(template, str):
            return UNMATCHED
        mounted = scope.get("root_path", "")
        if mounted != root:  # under a Mount: its template, not the raw prefix
            prefix = self._mounts.get(mounted)
            if prefix is None:
                prefix = self._mount_template(scope, root, mounted)
            template = prefix + template
        return template

    def _mount_template(self, scope: Scope, root: str, mounted: str) -> str:
        raw = mounted[len(root) :] if mounted.startswith(root) else mounted
        path: str = scope.get("path", "")
        if path.startswith(root):
            path = path[len(root) :]
        router = scope.get("router")
        found = _walk_mounts(getattr(router, "routes", None) or [], path, raw)
        # a template never holds a raw value; the raw prefix only when no Mount explains it
        prefix = found if found is not None else raw
        if len(self._mounts) < MOUNT_CACHE:
            self._mounts[mounted] = prefix
        return prefix

    # -- the rest ----------------------------------------------------------------------
    def _bind(self, scope: Scope) -> None:
        if self.metrics_dir is not None:
            self.process.bind(self.metrics_dir, check_owner=False)
        else:
            self.process.bind_default(self.environ, scope.get("server"))

    def _lifespan_send(self, send: Send) -> Send:
        async def send_flushing(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown"):
                # spawned workers end with os._exit(): atexit would not run
                self.process.flush()
            await send(message)

        return send_flushing

    async def _serve_metrics(self, method: str, send: Send) -> None:
        text = await asyncio.to_thread(self.process.exposition)  # file I/O off the loop
        body = text.encode()
        headers = [(b"content-type", CONTENT_TYPE), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body if method == "GET" else b""})


def _walk_mounts(routes: list[Any], path: str, raw: str) -> str | None:
    """The template of the Mount chain whose matched prefix of ``path`` is ``raw``."""
    for r in routes:
        regex = getattr(r, "path_regex", None)
        template = getattr(r, "path", None)
        if regex is None or not isinstance(template, str) or "path" not in regex.groupindex:
            continue
        if not getattr(r, "path_format", "").endswith("/{path}"):
            continue  # a Route whose last parameter happens to be named "path"
        m = regex.match(path)
        if m is None:
            continue
        rest = "/" + m.group("path")
        consumed = path[: len(path) - len(rest)]
        if consumed == raw:
            return template
        if raw.startswith(consumed):
            inner = _walk_mounts(getattr(r, "routes", None) or [], rest, raw[len(consumed) :])
            if inner is not None:
                return template + inner
    return None


# -- inference ---------------------------------------------------------------------------
class Inference:
    """One tracked inference call: a context manager (sync or async) and a decorator.

    As a decorator each call is tracked afresh; as a context manager use a new
    ``track_inference(...)`` per ``with``.
    """

    __slots__ = ("_first", "_process", "_start", "model")

    def __init__(self, model: str, process: ProcessMetrics | None = None) -> None:
        self.model = str(model)
        self._process = process or default_process_metrics()
        self._start = 0.0
        self._first = 0.0

    def __enter__(self) -> Inference:
        self._first = 0.0
        self._start = perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.finish(exc_type)

    async def __aenter__(self) -> Inference:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.finish(exc_type)

    def first_token(self) -> None:
        """Mark the first token of a streamed answer (later calls are ignored)."""
        if not self._first:
            self._first = perf_counter()

    def tokens(self, input: int = 0, output: int = 0) -> None:
        """Count this call's tokens (same as :func:`record_tokens` for its model)."""
        record_tokens(self.model, input=input, output=output, process=self._process)

    def finish(self, exc_type: type[BaseException] | None = None) -> None:
        """Record the call as ended now (``__exit__`` does it)."""
        end = perf_counter()
        duration = end - self._start
        process = self._process
        with process.lock:
            m = process.metrics
            model = m.model(self.model)
            rec = m.ai_duration.get(model)
            if rec is None:
                rec = m.ai_duration[model] = [0.0] * (AI_SUM + 1)
            rec[bisect_left(AI_DURATION_BUCKETS, duration)] += 1
            rec[AI_SUM] += duration
            if self._first:
                ttft = self._first - self._start
                rec = m.ai_ttft.get(model)
                if rec is None:
                    rec = m.ai_ttft[model] = [0.0] * (TTFT_SUM + 1)
                rec[bisect_left(TTFT_BUCKETS, ttft)] += 1
                rec[TTFT_SUM] += ttft
            if exc_type is not None and exc_type is not GeneratorExit:
                key = (model, exc_type.__name__)
                if key not in m.ai_errors and len(m.ai_errors) >= MAX_SERIES:
                    key = (model, OTHER)
                m.ai_errors[key] = m.ai_errors.get(key, 0.0) + 1
        if not process.bound:
            process.bind_environ(os.environ)

    def __call__(self, fn: F) -> F:
        """Decorate ``fn`` (function, coroutine function, generator, async generator)."""
        model, process = self.model, self._process
        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(fn):

            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = Inference(model, process).__enter__()
                error: type[BaseException] | None = None
                agen = fn(*args, **kwargs)
                try:
                    async for item in agen:
                        call.first_token()
                        yield item
                except BaseException as exc:
                    error = type(exc)
                    raise
                finally:
                    await agen.aclose()
                    call.finish(error)

            wrapper = agen_wrapper
        elif inspect.isgeneratorfunction(fn):

            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = Inference(model, process).__enter__()
                error: type[BaseException] | None = None
                gen = fn(*args, **kwargs)
                try:
                    for item in gen:
                        call.first_token()
                        yield item
                except BaseException as exc:
                    error = type(exc)
                    raise
                finally:
                    gen.close()
                    call.finish(error)

            wrapper = gen_wrapper
        elif inspect.iscoroutinefunction(fn):

            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with Inference(model, process):
                    return await fn(*args, **kwargs)

            wrapper = async_wrapper
        else:

            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                with Inference(model, process):
                    return fn(*args, **kwargs)

            wrapper = sync_wrapper
        return cast(F, functools.wraps(fn)(wrapper))


def track_inference(model: str, *, process: ProcessMetrics | None = None) -> Inference:
    """Track one inference call of ``model``: ``with``, ``async with`` or ``@decorator``."""
    return Inference(model, process)


def record_tokens(
    model: str, *, input: int = 0, output: int = 0, process: ProcessMetrics | None = None
) -> None:
    """Count tokens of ``model``: ``input`` (prompt) and ``output`` (completion)."""
    process = process or default_process_metrics()
    with process.lock:
        m = process.metrics
        name = m.model(str(model))
        for kind, n in (("input", input), ("output", output)):
            if n:
                m.ai_tokens[name, kind] = m.ai_tokens.get((name, kind), 0.0) + n
    if not process.bound:
        process.bind_environ(os.environ)
