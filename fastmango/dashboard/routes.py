"""The dashboard's routes: the UI shell, its static files, the overview and the stream."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from fastmango import __version__
from fastmango.agent.auth import PAGE_HEADERS, browser_session
from fastmango.dashboard import overview as ov

if TYPE_CHECKING:
    from fastmango.agent.api import AgentView

STATIC = Path(__file__).resolve().parent / "static"
Range = Literal["15m", "1h", "24h", "7d"]


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def _url(static: Path, f: Path) -> str:
    return f"/static/{f.relative_to(static).as_posix()}?v={_fingerprint(f)}"


def page_scripts(static: Path = STATIC) -> list[str]:
    """Script URLs the shell loads up front: uPlot and app.js. Page files are loaded when
    a page is first opened (see :func:`page_manifest`)."""
    return [_url(static, static / "vendor" / "uPlot.iife.min.js"), _url(static, static / "app.js")]


_REGISTER = re.compile(r"FM\.register\(\{(?P<body>.*?)\bmount\b", re.DOTALL)
_FIELD = re.compile(
    r"^\s*(id|title|icon):\s*'((?:[^'\\]|\\.)*)',?\s*$"
    r"|^\s*(order):\s*(\d+),?\s*$|^\s*(ranged):\s*(true|false),?\s*$",
    re.M,
)


def page_manifest(static: Path = STATIC) -> list[dict[str, Any]]:
    """Every page file's navigation entry (id, title, order, ranged, icon) and its URL,
    read from the literal fields of its ``FM.register({...})`` call, so the navigation is
    drawn at once while each page's code loads only when the page is opened."""
    pages = []
    for f in sorted((static / "pages").glob("*.js")):
        m = _REGISTER.search(f.read_text())
        if m is None:
            raise ValueError(f"{f.name}: no FM.register({{..., mount}}) call")
        entry: dict[str, Any] = {"order": 100, "ranged": False, "icon": "", "src": _url(static, f)}
        for fm in _FIELD.finditer(m.group("body")):
            if fm.group(1):
                entry[fm.group(1)] = fm.group(2).replace("\\'", "'")
            elif fm.group(3):
                entry["order"] = int(fm.group(4))
            else:
                entry["ranged"] = fm.group(6) == "true"
        if "id" not in entry or "title" not in entry:
            raise ValueError(f"{f.name}: FM.register needs literal id: '...' and title: '...'")
        pages.append(entry)
    return sorted(pages, key=lambda e: (e["order"], e["id"]))


def render_shell(static: Path = STATIC) -> str:
    """index.html with its scripts, page manifest and stylesheets filled in (the CSRF token
    goes in per request)."""
    scripts = "\n".join(f'<script src="{html.escape(s)}" defer></script>'
                        for s in page_scripts(static))  # fmt: skip
    manifest = json.dumps(page_manifest(static)).replace("</", "<\\/")
    scripts += f'\n<script id="fm-pages" type="application/json">{manifest}</script>'
    css = static / "style.css"
    uplot_css = static / "vendor" / "uPlot.min.css"
    return (
        (static / "index.html")
        .read_text()
        .replace("{{scripts}}", scripts)
        .replace("{{style}}", f"/static/style.css?v={_fingerprint(css)}")
        .replace("{{uplot_css}}", f"/static/vendor/uPlot.min.css?v={_fingerprint(uplot_css)}")
        .replace("{{version}}", html.escape(__version__))
    )


class OverviewCache:
    """The last document per (range, parts) for a fraction of its step, so several tabs
    and live refreshes share one computation; concurrent misses wait for one another."""

    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], tuple[float, bytes, float]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    @staticmethod
    def ttl(step: float) -> float:
        return min(30.0, max(0.5, step / 4))

    def get(self, key: tuple[str, str], fresh: bool) -> tuple[bytes, float, bool] | None:
        """(body, seconds it took, True) while the cached document is young enough."""
        hit = self._docs.get(key)
        if hit and not fresh and hit[0] > time.monotonic():
            return hit[1], hit[2], True
        return None

    def lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def put(self, key: tuple[str, str], body: bytes, step: float, took: float) -> None:
        self._docs[key] = (time.monotonic() + self.ttl(step), body, took)


def mount(app: FastAPI, agent: AgentView) -> None:
    """Add the dashboard's routes to the agent's app."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    shell = render_shell()
    cache = OverviewCache()

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        session, cookie = browser_session(request)
        csrf = session.csrf if session else ""
        body = shell.replace("{{csrf}}", html.escape(csrf))
        response = HTMLResponse(body, headers=PAGE_HEADERS)
        if cookie is not None:
            request.app.state.auth.set_cookie(response, request, cookie)
        return response

    @app.get("/api/dashboard/overview", summary="Overview charts and headline, downsampled")
    async def overview(
        request: Request,
        range: Annotated[Range, Query(description="15m, 1h, 24h or 7d")] = "1h",
        parts: Annotated[Literal["all", "headline"], Query()] = "all",
    ) -> Response:
        key = (range, parts)
        fresh = "no-cache" in request.headers.get("cache-control", "")
        hit = cache.get(key, fresh)
        if hit is None:
            async with cache.lock(key):
                hit = cache.get(key, fresh)
                if hit is None:
                    began = time.perf_counter()
                    doc = await run_in_threadpool(
                        ov.overview,
                        agent.store.query,
                        set(agent.specs),
                        time.time(),
                        range,
                        agent.settings.collectors.interval,
                        ov.PANELS if parts == "all" else (),
                    )
                    body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
                    took = time.perf_counter() - began
                    cache.put(key, body, doc["step"], took)
                    hit = body, took, False
        body, took, cached = hit
        timing = f'overview;dur={took * 1000:.1f};desc="{"cached" if cached else "computed"}"'
        return Response(body, media_type="application/json",
                        headers={"Server-Timing": timing, "Cache-Control": "no-store"})  # fmt: skip

    @app.get("/api/stream", response_class=EventSourceResponse,
             summary="Server-Sent Events: `collect` each time collectors publish")  # fmt: skip
    async def stream() -> AsyncIterator[ServerSentEvent]:
        q = agent.subscribe()
        try:
            yield ServerSentEvent(data={"time": time.time()}, event="hello", retry=2000)
            while True:
                source, at = await q.get()
                sources = {source}
                with contextlib.suppress(asyncio.QueueEmpty):  # coalesce a burst
                    while True:
                        more, at = q.get_nowait()
                        sources.add(more)
                yield ServerSentEvent(data={"sources": sorted(sources), "time": at},
                                      event="collect")  # fmt: skip
        finally:
            agent.unsubscribe(q)
