"""The sample app of ``fastmango demo``: a small shop with a chat helper, instrumented.

A FastAPI app with :class:`~fastmango.collector.app.FastmangoMiddleware` (its ``/metrics``
is what the demo agent scrapes) and a few routes that behave like a real app's:

* ``GET /api/items`` and ``GET /api/items/{item_id}`` read the catalogue (now and then
  slowly, like a cold cache);
* ``POST /api/checkout`` takes stock in a transaction and sometimes fails with a 500
  (the payment provider timed out);
* ``POST /api/chat`` answers through a simulated LLM, tracked with ``track_inference``
  (time to first token, tokens) and ``record_tokens`` (its embedding call).

It logs like a real app too, through the logger ``fastmango.demo.shop``: an access line
per request, a warning per slow read, and a failed checkout as an error with its
traceback and the customer's e-mail address (which the agent redacts before storing).

The data lives in an embedded SQLite file (stdlib ``sqlite3``), or in PostgreSQL
(``asyncpg``) when the demo runs where ``database_url`` is set, so the PostgreSQL panels
have a real workload too. ``chaos`` sets how often things go wrong; tests pin it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field

from fastmango.collector.app import FastmangoMiddleware, record_tokens, track_inference

ITEMS = 200
NAMES = ("mango", "papaya", "lychee", "guava", "passion fruit", "durian", "rambutan", "jackfruit")
CUSTOMERS = ("ann", "bo", "chen", "dana", "emeka", "farah")
log = logging.getLogger("fastmango.demo.shop")


@dataclass
class Chaos:
    """How often things go wrong: shares of slow reads, failed checkouts, failed chats."""

    slow: float = 0.01
    checkout_errors: float = 0.08
    chat_errors: float = 0.04
    rng: random.Random = field(default_factory=lambda: random.Random(7))


class Items(Protocol):
    async def list(self, limit: int) -> list[dict[str, Any]]: ...

    async def get(self, item_id: int) -> dict[str, Any] | None: ...

    async def take(self, item_id: int, qty: int) -> int | None: ...

    async def close(self) -> None: ...


class SQLiteItems:
    """The shop's items in one SQLite file; calls run in threads, one at a time."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.lock = threading.Lock()
        with self.lock:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "price REAL NOT NULL, stock INTEGER NOT NULL)"
            )
            if not self.db.execute("SELECT count(*) FROM items").fetchone()[0]:
                self.db.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", _seed())

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    async def list(self, limit: int) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(
            self._run, "SELECT id, name, price, stock FROM items ORDER BY id LIMIT ?", (limit,)
        )
        return [_item(r) for r in rows]

    async def get(self, item_id: int) -> dict[str, Any] | None:
        rows = await asyncio.to_thread(
            self._run, "SELECT id, name, price, stock FROM items WHERE id = ?", (item_id,)
        )
        return _item(rows[0]) if rows else None

    async def take(self, item_id: int, qty: int) -> int | None:
        rows = await asyncio.to_thread(
            self._run,
            "UPDATE items SET stock = CASE WHEN stock >= ? THEN stock - ? ELSE 100 END "
            "WHERE id = ? RETURNING stock",
            (qty, qty, item_id),
        )
        return int(rows[0][0]) if rows else None

    async def close(self) -> None:
        with self.lock:
            self.db.close()


class PostgresItems:
    """The same items in the app's PostgreSQL (``database_url``), through asyncpg."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str) -> PostgresItems:
        import asyncpg

        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
        async with pool.acquire() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS fastmango_demo_items (id int PRIMARY KEY, "
                "name text NOT NULL, price float8 NOT NULL, stock int NOT NULL)"
            )
            if not await conn.fetchval("SELECT count(*) FROM fastmango_demo_items"):
                await conn.executemany(
                    "INSERT INTO fastmango_demo_items VALUES ($1, $2, $3, $4)", _seed()
                )
        return cls(pool)

    async def list(self, limit: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT id, name, price, stock FROM fastmango_demo_items ORDER BY id LIMIT $1", limit
        )
        return [_item(tuple(r)) for r in rows]

    async def get(self, item_id: int) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT id, name, price, stock FROM fastmango_demo_items WHERE id = $1", item_id
        )
        return _item(tuple(row)) if row else None

    async def take(self, item_id: int, qty: int) -> int | None:
        async with self.pool.acquire() as conn, conn.transaction():
            stock = await conn.fetchval(
                "SELECT stock FROM fastmango_demo_items WHERE id = $1 FOR UPDATE", item_id
            )
            if stock is None:
                return None
            left = stock - qty if stock >= qty else 100
            await conn.execute(
                "UPDATE fastmango_demo_items SET stock = $1 WHERE id = $2", left, item_id
            )
            return int(left)

    async def close(self) -> None:
        await self.pool.close()


def _seed() -> list[tuple[int, str, float, int]]:
    rng = random.Random(3)
    return [
        (i, f"{NAMES[i % len(NAMES)]} #{i}", round(rng.uniform(1, 40), 2), rng.randint(0, 500))
        for i in range(1, ITEMS + 1)
    ]


def _item(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], "name": row[1], "price": row[2], "stock": row[3]}


class Checkout(BaseModel):
    item_id: int = Field(ge=1)
    qty: int = Field(1, ge=1, le=10)


class Prompt(BaseModel):
    prompt: str = Field(min_length=1, max_length=2000)


def create_app(items: Items, chaos: Chaos | None = None) -> FastAPI:
    """The sample app over ``items``."""
    chaos = chaos or Chaos()
    rng = chaos.rng
    app = FastAPI(title="fastmango demo shop", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(FastmangoMiddleware)

    @app.middleware("http")
    async def access_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        began = time.perf_counter()
        response = await call_next(request)
        log.info("%s %s %d %.1fms", request.method, request.url.path, response.status_code,
                 (time.perf_counter() - began) * 1000)  # fmt: skip
        return response

    async def maybe_slow() -> None:
        if rng.random() < chaos.slow:
            delay = rng.uniform(0.3, 0.9)
            log.warning("slow read: %.0f ms (cold cache)", delay * 1000)
            await asyncio.sleep(delay)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/items")
    async def list_items(limit: int = 20) -> list[dict[str, Any]]:
        await maybe_slow()
        return await items.list(max(1, min(limit, 100)))

    @app.get("/api/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, Any]:
        await maybe_slow()
        item = await items.get(item_id)
        if item is None:
            raise HTTPException(404, f"no item {item_id}")
        return item

    @app.post("/api/checkout")
    async def checkout(order: Checkout) -> dict[str, Any]:
        await asyncio.sleep(rng.uniform(0.01, 0.06))  # the payment provider
        if rng.random() < chaos.checkout_errors:
            customer = f"{rng.choice(CUSTOMERS)}@example.com"
            try:
                raise TimeoutError("the payment provider did not answer within 5 s")
            except TimeoutError:
                log.exception("checkout of item %d for %s failed", order.item_id, customer)
            raise HTTPException(500, "the payment provider timed out")
        left = await items.take(order.item_id, order.qty)
        if left is None:
            raise HTTPException(404, f"no item {order.item_id}")
        return {"ok": True, "item_id": order.item_id, "stock_left": left}

    @app.post("/api/chat")
    async def chat(body: Prompt) -> dict[str, Any]:
        words = len(body.prompt.split())
        record_tokens("demo-embed", input=words)  # the retrieval step's embedding call
        async with track_inference("demo-llm") as call:
            await asyncio.sleep(rng.uniform(0.03, 0.12))  # time to first token
            call.first_token()
            out = rng.randint(20, 240)
            await asyncio.sleep(out * rng.uniform(0.0002, 0.0008))
            if rng.random() < chaos.chat_errors:
                raise HTTPException(500, "the model is overloaded")
            call.tokens(input=words + 40, output=out)
        return {"answer": " ".join(rng.choice(NAMES) for _ in range(min(out, 30))),
                "tokens": out}  # fmt: skip

    return app
