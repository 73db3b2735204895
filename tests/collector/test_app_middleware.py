"""FastmangoMiddleware through real FastAPI and Starlette apps, and inference tracking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from fastmango.collector.app import FastmangoMiddleware, record_tokens, track_inference
from fastmango.collector.app_registry import MAX_MODELS, SPECS
from fastmango.collector.app_workers import ProcessMetrics

Key = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture
def process(tmp_path: Path) -> Iterator[ProcessMetrics]:
    p = ProcessMetrics()
    p.bind(tmp_path / "metrics", check_owner=False)
    yield p
    p.close()


def parse(text: str) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def http(name: str, method: str, route: str, status: int, **extra: str) -> Key:
    labels = {"http_request_method": method, "http_route": route,
              "http_response_status_code": str(status), **extra}  # fmt: skip
    return name, tuple(sorted(labels.items()))


def count(method: str, route: str, status: int) -> Key:
    return http("http_server_request_duration_seconds_count", method, route, status)


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def fastapi_app(process: ProcessMetrics) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    outer = APIRouter(prefix="/api/v1")
    inner = APIRouter(prefix="/tenants/{tenant}")

    @inner.get("/orders/{order_id}")
    async def order(tenant: str, order_id: int) -> dict[str, str]:
        return {"tenant": tenant}

    outer.include_router(inner)
    app.include_router(outer)
    sub = Starlette(routes=[Route("/hello/{name}", lambda r: PlainTextResponse("hi"))])
    app.mount("/static", sub)
    app.mount("/t/{tid}", Starlette(routes=[Route("/z/{q}", lambda r: PlainTextResponse("z"))]))
    app.add_middleware(FastmangoMiddleware, process=process)
    return app


async def test_labels_are_method_route_template_and_status(process: ProcessMetrics) -> None:
    app = fastapi_app(process)
    async with client(app) as c:
        for path in ("/items/1", "/items/2", "/items/x", "/api/v1/tenants/acme/orders/7",
                     "/api/v1/tenants/zeta/orders/8", "/static/hello/bob", "/t/1/z/2",
                     "/t/3/z/4"):  # fmt: skip
            await c.get(path)
        await c.post("/echo", content=b"x")
        text = (await c.get("/metrics")).text
    m = parse(text)
    assert m[count("GET", "/items/{item_id}", 200)] == 2
    assert m[count("GET", "/items/{item_id}", 422)] == 1  # validation error, same route
    # nested include_router prefixes and Mount prefixes are templates, not raw values
    assert m[count("GET", "/api/v1/tenants/{tenant}/orders/{order_id}", 200)] == 2
    assert m[count("GET", "/static/hello/{name}", 200)] == 1
    assert m[count("GET", "/t/{tid}/z/{q}", 200)] == 2
    assert m[count("POST", "/echo", 200)] == 1
    for raw in ("acme", "bob", "/items/1", "/t/1"):
        assert raw not in text
    # the metrics request itself is not counted
    assert not any(dict(k[1]).get("http_route") == "/metrics" for k in m)


async def test_unmatched_requests_share_one_empty_route(process: ProcessMetrics) -> None:
    async with client(fastapi_app(process)) as c:
        for path in ("/nope", "/nope/1", "/wp-admin/x.php"):
            assert (await c.get(path)).status_code == 404
        text = (await c.get("/metrics")).text
    assert parse(text)[count("GET", "", 404)] == 3
    assert "nope" not in text and "wp-admin" not in text


async def test_an_exception_counts_as_500(process: ProcessMetrics) -> None:
    async with client(fastapi_app(process)) as c:
        assert (await c.get("/boom")).status_code == 500
        m = parse((await c.get("/metrics")).text)
    assert m[count("GET", "/boom", 500)] == 1


async def test_an_exception_is_reraised_by_the_middleware(process: ProcessMetrics) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("broken app")

    mw = FastmangoMiddleware(app, process=process)
    scope = {"type": "http", "method": "GET", "path": "/x", "root_path": "", "headers": []}
    with pytest.raises(ValueError, match="broken app"):
        await mw(scope, _receive, _discard)
    # an app that returns without a response counts as 500 too (uvicorn sends one)
    quiet = FastmangoMiddleware(_no_response, process=process)
    await quiet(dict(scope), _receive, _discard)
    m = parse(process.exposition())
    assert m[count("GET", "", 500)] == 2


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Any) -> None:
    pass


async def _no_response(scope: Any, receive: Any, send: Any) -> None:
    pass


async def test_body_sizes_received_and_sent(process: ProcessMetrics) -> None:
    async with client(fastapi_app(process)) as c:
        await c.post("/echo", content=b"a" * 1500)
        await c.post("/echo", content=b"")
        m = parse((await c.get("/metrics")).text)
    req = "http_server_request_body_size_bytes"
    resp = "http_server_response_body_size_bytes"
    assert m[http(req + "_sum", "POST", "/echo", 200)] == 1500
    assert m[http(req + "_count", "POST", "/echo", 200)] == 2
    assert m[http(req + "_bucket", "POST", "/echo", 200, le="100.0")] == 1  # the empty one
    assert m[http(req + "_bucket", "POST", "/echo", 200, le="10000.0")] == 2
    assert m[http(resp + "_sum", "POST", "/echo", 200)] == 1500


async def test_streaming_response_duration_and_size_cover_the_whole_stream(
    process: ProcessMetrics,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(0.03)
            yield b"x" * 10

    app = Starlette(routes=[Route("/stream", lambda r: StreamingResponse(chunks()))])
    app.add_middleware(FastmangoMiddleware, process=process)
    async with client(app) as c:
        assert (await c.get("/stream")).content == b"x" * 30
        m = parse((await c.get("/metrics")).text)
    assert m[http("http_server_response_body_size_bytes_sum", "GET", "/stream", 200)] == 30
    assert m[http("http_server_request_duration_seconds_sum", "GET", "/stream", 200)] >= 0.09


async def test_in_flight_requests(process: ProcessMetrics) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request: Request) -> Response:
        started.set()
        await release.wait()
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/slow", slow)])
    app.add_middleware(FastmangoMiddleware, process=process)
    active = ("http_server_active_requests", (("http_request_method", "GET"),))
    async with client(app) as c:
        task = asyncio.create_task(c.get("/slow"))
        await started.wait()
        assert parse((await c.get("/metrics")).text)[active] == 1
        release.set()
        await task
        assert parse((await c.get("/metrics")).text)[active] == 0


async def test_starlette_mounts_methods_and_head_on_metrics(process: ProcessMetrics) -> None:
    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    api = Mount("/api", routes=[Mount("/v2/{region}", routes=[Route("/things/{id:int}", ok)])])
    app = Starlette(routes=[api, Route("/any", ok, methods=["GET", "PURGE"])])
    app.add_middleware(FastmangoMiddleware, process=process)
    async with client(app) as c:
        await c.get("/api/v2/eu/things/5")
        await c.request("PURGE", "/any")
        head = await c.head("/metrics")
        m = parse((await c.get("/metrics")).text)
    assert head.status_code == 200 and head.content == b""
    assert m[count("GET", "/api/v2/{region}/things/{id}", 200)] == 1
    assert m[count("_OTHER", "/any", 200)] == 1


async def test_metrics_path_none_leaves_the_path_to_the_app(process: ProcessMetrics) -> None:
    app = Starlette(routes=[Route("/metrics", lambda r: PlainTextResponse("mine"))])
    app.add_middleware(FastmangoMiddleware, metrics_path=None, process=process)
    async with client(app) as c:
        assert (await c.get("/metrics")).text == "mine"
    assert parse(process.exposition())[count("GET", "/metrics", 200)] == 1


async def test_exposition_families_match_the_app_side_catalogue(process: ProcessMetrics) -> None:
    async with client(fastapi_app(process)) as c:
        await c.get("/items/1")
        async with track_inference(model="m", process=process) as call:
            call.first_token()
        record_tokens("m", input=1, output=2, process=process)
        with pytest.raises(KeyError), track_inference(model="m", process=process):
            raise KeyError("x")
        response = await c.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    specs = {s.name: s for s in SPECS}
    seen = set()
    for fam in text_string_to_metric_families(response.text):
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        spec = specs[name]
        assert fam.type == spec.kind, name
        for s in fam.samples:
            assert set(s.labels) - {"le"} == set(spec.labels), s.name
        seen.add(name)
    assert seen == set(specs)


# -- inference ---------------------------------------------------------------------------
def ai(process: ProcessMetrics) -> dict[Key, float]:
    return parse(process.exposition())


def model(name: str, value: str) -> Key:
    return name, (("gen_ai_request_model", value),)


def test_track_inference_as_a_context_manager(process: ProcessMetrics) -> None:
    with track_inference(model="gpt", process=process) as call:
        call.first_token()
        call.first_token()  # only the first counts
        call.tokens(input=10, output=20)
    record_tokens("gpt", input=5, process=process)
    m = ai(process)
    assert m[model("gen_ai_client_operation_duration_seconds_count", "gpt")] == 1
    assert m[model("gen_ai_server_time_to_first_token_seconds_count", "gpt")] == 1
    tokens = "gen_ai_client_token_usage_total"
    assert m[tokens, (("gen_ai_request_model", "gpt"), ("gen_ai_token_type", "input"))] == 15
    assert m[tokens, (("gen_ai_request_model", "gpt"), ("gen_ai_token_type", "output"))] == 20


def test_without_a_first_token_there_is_no_ttft(process: ProcessMetrics) -> None:
    with track_inference(model="embed", process=process):
        pass
    m = ai(process)
    assert m[model("gen_ai_client_operation_duration_seconds_count", "embed")] == 1
    assert model("gen_ai_server_time_to_first_token_seconds_count", "embed") not in m


def test_decorators_sync_and_async_count_errors_by_type(process: ProcessMetrics) -> None:
    @track_inference(model="m", process=process)
    def complete(fail: bool) -> str:
        if fail:
            raise TimeoutError("upstream")
        return "ok"

    @track_inference(model="m", process=process)
    async def acomplete(fail: bool) -> str:
        await asyncio.sleep(0.01)
        if fail:
            raise ConnectionError("reset")
        return "ok"

    assert complete.__name__ == "complete"
    assert complete(False) == "ok"
    with pytest.raises(TimeoutError):
        complete(True)
    assert asyncio.run(acomplete(False)) == "ok"
    with pytest.raises(ConnectionError):
        asyncio.run(acomplete(True))
    m = ai(process)
    assert m[model("gen_ai_client_operation_duration_seconds_count", "m")] == 4
    errors = "gen_ai_client_operation_errors_total"
    assert m[errors, (("error_type", "TimeoutError"), ("gen_ai_request_model", "m"))] == 1
    assert m[errors, (("error_type", "ConnectionError"), ("gen_ai_request_model", "m"))] == 1


def test_streaming_generator_measures_time_to_first_token(process: ProcessMetrics) -> None:
    import time

    @track_inference(model="llm", process=process)
    def stream() -> Iterator[str]:
        time.sleep(0.05)
        yield "first"
        time.sleep(0.05)
        yield "second"

    assert list(stream()) == ["first", "second"]
    m = ai(process)
    ttft = m[model("gen_ai_server_time_to_first_token_seconds_sum", "llm")]
    total = m[model("gen_ai_client_operation_duration_seconds_sum", "llm")]
    assert 0.05 <= ttft < 0.09
    assert total >= 0.1 and total > ttft
    # the TTFT histogram resolves it: 0.05 s sits in the (0.04, 0.06] bucket
    le = "gen_ai_server_time_to_first_token_seconds_bucket"
    assert m[le, (("gen_ai_request_model", "llm"), ("le", "0.04"))] == 0


async def test_async_generator_stopped_early_is_not_an_error(process: ProcessMetrics) -> None:
    @track_inference(model="llm", process=process)
    async def stream() -> AsyncIterator[int]:
        for i in range(10):
            await asyncio.sleep(0.005)
            yield i

    agen = stream()
    async for i in agen:
        if i == 2:
            break
    await agen.aclose()  # type: ignore[attr-defined]

    @track_inference(model="llm", process=process)
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("mid-stream")

    with pytest.raises(RuntimeError):
        async for _ in broken():
            pass
    m = ai(process)
    assert m[model("gen_ai_client_operation_duration_seconds_count", "llm")] == 2
    assert m[model("gen_ai_server_time_to_first_token_seconds_count", "llm")] == 2
    errors = [k[1] for k in m if k[0] == "gen_ai_client_operation_errors_total"]
    assert errors == [(("error_type", "RuntimeError"), ("gen_ai_request_model", "llm"))]


def test_model_labels_are_bounded(process: ProcessMetrics) -> None:
    for i in range(MAX_MODELS + 5):
        record_tokens(f"model-{i}", input=1, process=process)
    m = ai(process)
    models = {dict(k[1])["gen_ai_request_model"] for k in m if k[0].startswith("gen_ai_client_tok")}
    assert len(models) == MAX_MODELS + 1 and "other" in models


def test_inference_from_many_threads_loses_nothing(process: ProcessMetrics) -> None:
    import threading

    def work() -> None:
        for _ in range(500):
            with track_inference(model="t", process=process):
                pass
            record_tokens("t", output=1, process=process)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m = ai(process)
    assert m[model("gen_ai_client_operation_duration_seconds_count", "t")] == 2000
    tokens = ("gen_ai_client_token_usage_total",
              (("gen_ai_request_model", "t"), ("gen_ai_token_type", "output")))  # fmt: skip
    assert m[tokens] == 2000
