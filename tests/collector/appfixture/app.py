"""The app the integration test runs under ``uvicorn --workers 2``.

``GET /work`` sleeps a random 10–300 ms (uniform), ``GET /items/{item_id}`` answers at
once, ``GET /fail`` answers 500; FastmangoMiddleware serves ``/metrics`` for all workers.
"""

from __future__ import annotations

import asyncio
import random

from fastapi import FastAPI, Response

from fastmango.collector.app import FastmangoMiddleware

app = FastAPI()
app.add_middleware(FastmangoMiddleware)


@app.get("/work")
async def work() -> dict[str, float]:
    seconds = random.uniform(0.010, 0.300)
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@app.get("/fail")
async def fail() -> Response:
    return Response("no", status_code=500)
