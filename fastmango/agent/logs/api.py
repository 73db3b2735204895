"""HTTP API of the agent's logs part, mounted by :func:`fastmango.agent.api.create_app`.

* ``GET /api/logs/search?q=&since=&until=&limit=&order=&count=`` — matching lines,
  newest first, and optionally their exact count;
* ``GET /api/logs/tail?q=&backlog=`` — Server-Sent Events: the newest ``backlog`` matches,
  then each new matching line as it is indexed (``line`` events);
* ``GET /api/logs/export?q=&since=&until=&format=jsonl|csv`` — every match, oldest
  first, streamed (constant memory);
* ``GET /api/logs/status`` — files followed, index size, redaction counts.

A malformed query answers 400 naming the position and the problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from fastmango.agent.auth import require_actor

if TYPE_CHECKING:
    from fastmango.agent.logs.query import Node
    from fastmango.agent.logs.service import LogsService

OFF = (
    "logs are off: set logs.paths (FASTMANGO_LOGS__PATHS) or run the app under the agent "
    "(fastmango agent -- CMD)"
)

Q = Annotated[
    str,
    Query(
        max_length=4000,
        description='Query: words, "phrases", prefix*, '
        "AND/OR/NOT, level:error, status>=500, /regex/",
    ),
]
T = Annotated[str | None, Query(max_length=40, description="Unix seconds, ISO 8601, or 15m ago")]


def parse_when(value: str | None, now: float, name: str) -> float | None:
    from fastmango.agent.api import parse_time
    from fastmango.collector.logs.parse import parse_time_value

    if value is None or value == "":
        return None
    try:
        return parse_time(value, now)
    except ValueError:
        ts = parse_time_value(value)
        if ts is None:
            raise HTTPException(
                400,
                f"{name}: {value!r} is neither Unix seconds, an ISO 8601 "
                "time, nor a duration like 15m",
            ) from None
        return ts


class PurgeRequest(BaseModel):
    match: str = Field(
        min_length=3, max_length=500, description="Text whose lines are erased (any case)"
    )
    reason: str = Field("", max_length=500, description="Why (kept in the audit log)")


def compile_query(q: str) -> Node | None:
    from fastmango.agent.logs.query import QueryError, parse_query

    try:
        return parse_query(q)
    except QueryError as exc:
        raise HTTPException(400, f"bad query {exc}") from None


#: lines a reconnecting live tail (``Last-Event-ID``) is sent from what it missed
RESUME_MAX = 1000


def mount(app: FastAPI, agent: Any) -> None:
    """Add this part's routes to the agent's app."""

    def service() -> LogsService:
        svc = agent.services.get("logs")
        if svc is None or getattr(svc, "index", None) is None:
            raise HTTPException(404, OFF)  # nothing to search: no log source is set
        return svc  # type: ignore[no-any-return]

    @app.get("/api/logs/search", summary="Search the indexed logs (newest first)")
    async def search(
        q: Q = "",
        since: T = None,
        until: T = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        order: Literal["newest", "oldest"] = "newest",
        count: Annotated[bool, Query(description="Also count every match")] = False,
        fleet: Annotated[
            bool, Query(description="Also search every live agent of the fleet; merge by time")
        ] = False,
    ) -> dict[str, Any]:
        from fastmango.agent.logs import search as s

        if fleet:
            params = {"q": q, "limit": limit, "order": order, "count": count}
            params |= {k: v for k, v in (("since", since), ("until", until)) if v}
            return await fleet_search(params, limit, order == "newest")
        svc = service()
        now = time.time()
        node = compile_query(q)
        plan = s.Plan.of(node, parse_when(since, now, "since"), parse_when(until, now, "until"))
        assert svc.index is not None
        index = svc.index

        seconds = svc.cfg.query_timeout

        def run() -> dict[str, Any]:
            began = time.perf_counter()
            out: list[dict[str, Any]] = []
            budget = s.Budget(seconds=seconds)
            for line in s.lines(index, plan, order == "newest", budget):
                out.append(line.as_dict())
                if len(out) >= limit:
                    break
            doc: dict[str, Any] = {
                "lines": out,
                "fts": plan.expr,
                "checked": plan.check,
                "partial": budget.stopped,  # more may match: the scan stopped early
            }
            if count:
                n, exact = s.count(index, plan, s.Budget(seconds=seconds))
                doc["count"], doc["exact"] = n, exact
            doc["took_ms"] = round((time.perf_counter() - began) * 1000, 3)
            return doc

        return await run_in_threadpool(run)

    @app.get(
        "/api/logs/tail",
        response_class=EventSourceResponse,
        summary="Server-Sent Events: matching lines as they are indexed",
    )
    async def tail(
        q: Q = "",
        backlog: Annotated[int, Query(ge=0, le=1000)] = 0,
        last_event_id: Annotated[
            str | None,
            Header(description="Resume after this line id (an SSE client's reconnect)"),
        ] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        from fastmango.agent.logs import search as s

        svc = service()
        node = compile_query(q)
        after = int(last_event_id) if last_event_id and last_event_id.isdigit() else None
        sub = svc.subscribe(node)
        try:
            yield ServerSentEvent(data={"time": time.time(), "query": q}, event="hello", retry=2000)
            seen = after or 0
            if backlog or after is not None:
                assert svc.index is not None
                index = svc.index
                budget = s.Budget(seconds=svc.cfg.query_timeout)
                # a reconnect gets what it missed (up to RESUME_MAX), else the newest few
                want = RESUME_MAX if after is not None else backlog

                def newest() -> list[dict[str, Any]]:
                    out = []
                    for line in s.lines(index, s.Plan.of(node), True, budget):
                        if line.id <= seen:
                            break
                        out.append(line.as_dict())
                        if len(out) >= want:
                            break
                    return out[::-1]

                missed = await run_in_threadpool(newest)
                if after is not None and len(missed) >= want:
                    # more than a reconnect replays: said as for a client that fell behind
                    why = f"missed while reconnecting; the newest {want} follow"
                    yield ServerSentEvent(data={"dropped": "older", "why": why}, event="dropped")
                for d in missed:
                    seen = d["id"]
                    yield ServerSentEvent(data=d, event="line", id=str(d["id"]))
            while True:
                try:
                    line = await asyncio.wait_for(sub.queue.get(), 15)
                except TimeoutError:
                    yield ServerSentEvent(comment="keep-alive")
                    continue
                batch = [line]
                with contextlib.suppress(asyncio.QueueEmpty):
                    while len(batch) < 500:
                        batch.append(sub.queue.get_nowait())
                for ln in batch:
                    if ln.id > seen:
                        yield ServerSentEvent(data=ln.as_dict(), event="line", id=str(ln.id))
                if sub.dropped:
                    yield ServerSentEvent(
                        data={"dropped": sub.dropped, "why": "the client fell behind"},
                        event="dropped",
                    )
                    sub.dropped = 0
        finally:
            svc.unsubscribe(sub)

    @app.get("/api/logs/export", summary="Every match, oldest first, streamed as JSONL or CSV")
    async def export(
        q: Q = "",
        since: T = None,
        until: T = None,
        format: Literal["jsonl", "csv"] = "jsonl",
    ) -> StreamingResponse:
        from fastmango.agent.logs import search as s

        svc = service()
        now = time.time()
        node = compile_query(q)
        plan = s.Plan.of(node, parse_when(since, now, "since"), parse_when(until, now, "until"))
        assert svc.index is not None
        index = svc.index

        def chunks() -> Iterator[bytes]:
            buf: list[str] = []
            size = 0
            sio = io.StringIO()
            writer = csv.writer(sio) if format == "csv" else None
            if writer is not None:
                writer.writerow(["id", "time", "level", "source", "text"])
            for line in s.lines(index, plan, newest_first=False):
                if writer is not None:
                    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(line.ts))
                    frac = f"{line.ts % 1:.3f}"[1:]
                    writer.writerow([line.id, iso + frac + "Z", line.level, line.source, line.text])
                    piece = sio.getvalue()
                    sio.seek(0)
                    sio.truncate()
                else:
                    piece = json.dumps(line.as_dict(), ensure_ascii=False) + "\n"
                buf.append(piece)
                size += len(piece)
                if size >= 256 * 1024:
                    yield "".join(buf).encode()
                    buf, size = [], 0
            if writer is not None and not buf:
                buf.append(sio.getvalue())
            if buf:
                yield "".join(buf).encode()

        media = "text/csv" if format == "csv" else "application/x-ndjson"
        name = f"logs.{format}"
        return StreamingResponse(
            iterate_in_threadpool(chunks()),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def fleet_search(params: dict[str, Any], limit: int, newest: bool) -> dict[str, Any]:
        """This agent's search and its live peers' (the same query, with this agent's
        token: a fleet shares one), merged by time; a peer that fails is named, not fatal."""
        import httpx

        fl: Any = agent.services.get("fleet")
        me = getattr(fl, "instance_id", "self")
        peers: list[dict[str, str]] = fl.peers() if fl is not None else []
        token = agent.settings.server.token
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        # a peer may spend its query budget twice (search, then count) before it answers
        wait = 2 * agent.settings.logs.query_timeout + 5
        async with httpx.AsyncClient(timeout=wait, headers=headers) as client:

            async def one(peer_id: str, base: str) -> tuple[str, str, dict[str, Any] | str]:
                try:
                    r = await client.get(base.rstrip("/") + "/api/logs/search", params=params)
                    if r.status_code != 200:
                        return peer_id, base, f"answered {r.status_code}: {r.text[:200]}"
                    return peer_id, base, dict(r.json())
                except httpx.HTTPError as exc:
                    return peer_id, base, f"{type(exc).__name__}: {exc}"

            found = await asyncio.gather(
                one(me, agent.url), *(one(p["id"], p["address"]) for p in peers)
            )
        lines: list[dict[str, Any]] = []
        total, exact, partial, report = 0, True, False, []
        for peer_id, base, doc in found:
            if isinstance(doc, str):
                report.append({"instance": peer_id, "address": base, "ok": False, "error": doc})
                exact = False
                continue
            lines += [{**ln, "instance": peer_id} for ln in doc["lines"]]
            total += int(doc.get("count", 0))
            exact = exact and bool(doc.get("exact", True))
            partial = partial or bool(doc.get("partial"))
            report.append({"instance": peer_id, "address": base, "ok": True,
                           "lines": len(doc["lines"])})  # fmt: skip
        lines.sort(key=lambda ln: (ln["ts"], ln["instance"], ln["id"]), reverse=newest)
        out: dict[str, Any] = {"lines": lines[:limit], "instances": report, "partial": partial}
        if params.get("count"):
            out["count"], out["exact"] = total, exact
        return out

    @app.get("/api/logs/status", summary="Files followed, index size, redactions")
    async def status() -> dict[str, Any]:
        svc = service()
        return await run_in_threadpool(svc.status)

    @app.post("/api/logs/purge", summary="Erase every indexed line containing a text (GDPR)")
    async def purge(
        body: PurgeRequest, who: Annotated[str, Depends(require_actor)]
    ) -> dict[str, Any]:
        import hashlib

        from fastmango.agent import audit

        svc = service()
        # the text itself is personal data: the audit log keeps only its fingerprint
        fingerprint = hashlib.sha256(body.match.encode()).hexdigest()[:16]
        t0 = time.monotonic()
        try:
            erased, scanned = await svc.purge(body.match)
        except Exception as exc:
            audit.record(agent.store, who=who, action="logs.purge", target="logs",
                         result="error", reason=body.reason, match_sha256=fingerprint,
                         error=type(exc).__name__)  # fmt: skip
            raise
        audit.record(agent.store, who=who, action="logs.purge", target="logs", result="ok",
                     reason=body.reason, match_sha256=fingerprint, erased=erased,
                     scanned=scanned, seconds=round(time.monotonic() - t0, 3))  # fmt: skip
        return {"erased": erased, "scanned": scanned, "match_sha256": fingerprint}
