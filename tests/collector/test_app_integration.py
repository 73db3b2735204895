"""A real ``uvicorn --workers 2`` app under load from a separate process; the agent's
derived req/s and p95 agree with what the load generator measured."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fastmango.collector.app_registry import DUR_SUM
from fastmango.collector.app_scrape import AppCollector
from tests.conftest import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
LOADGEN = Path(__file__).parent / "appfixture" / "loadgen.py"
RATE = 40.0  # requests per second, open loop
LOAD_SECONDS = 8.0
TOLERANCE = 0.10

pytestmark = pytest.mark.integration


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def wait_for_workers(base: str, n: int, timeout: float = 30.0) -> int:
    """New connections until ``n`` workers have answered (each joins the merge then);
    the number of ``/items`` requests that took."""
    deadline = time.monotonic() + timeout
    sent = 0
    while f"fastmango_app_workers {n}" not in httpx.get(base + "/metrics").text:
        assert time.monotonic() < deadline, f"{n} workers did not answer in {timeout:g} s"
        for i in range(4):
            httpx.get(f"{base}/items/{i}")  # a new connection: any worker may accept it
            sent += 1
        time.sleep(0.05)
    return sent


async def scrape_while(collector: AppCollector, proc: subprocess.Popen[bytes]) -> list[tuple[
        float, float, dict[str, float]]]:  # fmt: skip
    """(interval start, interval end, whole-app values) for each collection, every 1 s."""
    out: list[tuple[float, float, dict[str, float]]] = []
    last = time.time()
    await collector.collect()  # the baseline
    while True:
        await asyncio.sleep(1.0 - (time.time() - last) % 1.0)
        samples = await collector.collect()
        now = time.time()
        out.append((last, now, {s.name: s.value for s in samples if not s.labels}))
        last = now
        if proc.poll() is not None and len(out) > LOAD_SECONDS + 2:
            return out


def test_derived_rate_and_p95_match_the_load_generator(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    env["TMPDIR"] = str(tmp_path)  # the workers' default shared folder lands in here
    log = (tmp_path / "uvicorn.log").open("wb")
    app = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.collector.appfixture.app:app", "--workers",
         "2", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(base + "/items/1", timeout=30)
        wait_for_workers(base, 2)  # both serve before the load opens its connections
        out = tmp_path / "load.json"
        load = subprocess.Popen([sys.executable, str(LOADGEN), base + "/work", str(RATE),
                                 str(LOAD_SECONDS), str(out)], cwd=ROOT, env=env)  # fmt: skip

        async def run() -> list[tuple[float, float, dict[str, float]]]:
            async with httpx.AsyncClient(timeout=2.0) as client:
                collector = AppCollector([base + "/metrics"], client=client)
                return await scrape_while(collector, load)

        intervals = asyncio.run(run())
        assert load.wait(30) == 0
        records = json.loads(out.read_text())
        merged = httpx.get(base + "/metrics").text
        per_worker = [
            sum(sum(v[:DUR_SUM]) for m, r, st, v in json.loads(f.read_text())["http"]
                if r == "/work")
            for f in tmp_path.glob("fastmango-app-*/w-*.json")
        ]  # fmt: skip
    finally:
        app.terminate()
        app.wait(30)
        log.close()
    assert "fastmango_app_workers 2" in merged  # both workers answered, both are merged
    assert len(per_worker) == 2 and min(per_worker) > 0, per_worker  # both served the load
    assert len(records) == int(RATE * LOAD_SECONDS)
    assert all(r["status"] == 200 for r in records)

    # the steady window: whole intervals inside the load, away from its ramp-up and end
    first, last = min(r["start"] for r in records), max(r["end"] for r in records)
    steady = [(a, b, v) for a, b, v in intervals if a >= first + 1.5 and b <= last - 0.5]
    assert len(steady) >= 4, intervals
    w0, w1 = steady[0][0], steady[-1][1]
    agent_rate = sum(v["http_requests_per_second"] * (b - a) for a, b, v in steady) / (w1 - w0)
    agent_p95 = statistics.median(v["http_request_duration_p95_seconds"] for _, _, v in steady)
    done = [r for r in records if w0 <= r["end"] < w1]
    measured_rate = len(done) / (w1 - w0)
    measured_p95 = p95([r["latency"] for r in done])
    report = (f"agent {agent_rate:.1f} req/s p95 {agent_p95 * 1000:.0f} ms; load generator "
              f"{measured_rate:.1f} req/s p95 {measured_p95 * 1000:.0f} ms")  # fmt: skip
    print(report)
    assert agent_rate == pytest.approx(measured_rate, rel=TOLERANCE), report
    assert agent_p95 == pytest.approx(measured_p95, rel=TOLERANCE), report
    # the error ratio is there, and 0: every request succeeded
    assert all(v["http_error_ratio"] == 0 for _, _, v in steady)


def _count(text: str, route: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "http_server_request_duration_seconds_count"
        and s.labels["http_route"] == route
    )


def test_gunicorn_worker_recycled_keeps_its_counts(tmp_path: Path) -> None:
    import gunicorn  # noqa: F401  (the test extra installs it: a missing one must fail)
    import psutil
    import uvicorn_worker  # noqa: F401

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    env["TMPDIR"] = str(tmp_path)
    log = (tmp_path / "gunicorn.log").open("wb")
    master = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "tests.collector.appfixture.app:app", "-w", "2",
         "-k", "uvicorn_worker.UvicornWorker", "-b", f"127.0.0.1:{port}",
         "--graceful-timeout", "5", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(base + "/items/1", timeout=30)
        wait_for_workers(base, 2)
        sent = _count(httpx.get(base + "/metrics").text, "/items/{item_id}") + 100
        for i in range(100):
            httpx.get(f"{base}/items/{i}")  # new connections: both workers serve
        before = _count(httpx.get(base + "/metrics").text, "/items/{item_id}")
        before_sent = sent
        workers = psutil.Process(master.pid).children()
        assert len(workers) == 2
        workers[0].terminate()  # gunicorn recycles it: a graceful exit, a new worker
        workers[0].wait(10)
        deadline = time.monotonic() + 20
        while len(psutil.Process(master.pid).children()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        sent += wait_for_workers(base, 2)  # the new worker joined; the old one is archived
        after = _count(httpx.get(base + "/metrics").text, "/items/{item_id}")
    finally:
        master.terminate()
        master.wait(30)
        log.close()
    assert before == before_sent  # every worker's requests, fresh, merged
    assert after == sent  # the recycled worker's requests were kept
