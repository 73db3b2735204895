"""`fastmango agent` as a real process: URL printed, state file, signals, restart."""

from __future__ import annotations

import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def test_agent_prints_url_serves_and_stops_on_sigterm(start_agent) -> None:  # type: ignore[no-untyped-def]
    agent = start_agent("--interval", "1")
    assert f"serving {agent.url}" in agent.output()
    assert httpx.get(agent.url + "/healthz").json()["status"] == "ok"
    time.sleep(1.5)
    metrics = httpx.get(agent.url + "/metrics").text
    assert 'node_cpu_seconds_total{cpu="0",mode="idle"}' in metrics
    assert (agent.app_dir / ".fastmango" / "state.db").is_file()
    began = time.monotonic()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(10) == 0
    assert time.monotonic() - began < 5.0
    # it committed what it collected: the store holds host samples
    db = sqlite3.connect(agent.app_dir / ".fastmango" / "state.db")
    try:
        n = db.execute(
            "SELECT count(*) FROM samples JOIN series ON series.id = samples.series_id "
            "WHERE series.name = 'node_load1'"
        ).fetchone()[0]
    finally:
        db.close()
    assert n >= 1


def test_sigint_stops_gracefully_and_restart_keeps_history(start_agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = tmp_path / "app"
    first = start_agent("--interval", "1", app_dir=app)
    time.sleep(2.5)
    first.proc.send_signal(signal.SIGINT)
    assert first.proc.wait(10) == 0
    second = start_agent("--interval", "1", app_dir=app)
    time.sleep(1.2)
    body = httpx.get(
        second.url + "/api/series", params={"name": "node_load1", "start": "10m", "step": "1"}
    ).json()
    points = body["series"][0]["points"]
    assert points[0][0] < second_started(second) - 1  # samples from the first run are there


def second_started(agent) -> float:  # type: ignore[no-untyped-def]
    return float(httpx.get(agent.url + "/api/status").json()["started_at"])


def test_port_in_use_is_a_clear_error(start_agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = start_agent()
    res = subprocess.run(
        [sys.executable, "-m", "fastmango.cli", "agent", "--port", str(first.port),
         "--state-dir", str(tmp_path / "other")],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 1
    assert f"cannot listen on 127.0.0.1:{first.port}" in res.stderr
    assert "Traceback" not in res.stderr


def test_status_command_and_no_agent_message(start_agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    agent = start_agent("--interval", "1")
    time.sleep(1.2)
    res = subprocess.run(
        [sys.executable, "-m", "fastmango.cli", "status", "--url", agent.url],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "up   host" in res.stdout and "up   container" in res.stdout
    agent.stop()
    res = subprocess.run(
        [sys.executable, "-m", "fastmango.cli", "status", "--url", agent.url],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 1
    assert f"no agent answers at {agent.url}" in res.stderr


@pytest.mark.parametrize("command", [[], ["agent"], ["config", "show"], ["status"]])
def test_help_does_not_import_heavy_modules(command: list[str]) -> None:
    code = (
        "import sys\n"
        "from fastmango.cli import main\n"
        f"try:\n    main({[*command, '--help']!r})\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('fastapi', 'uvicorn', 'pydantic', 'asyncpg', 'sklearn',"
        " 'slack_sdk', 'psutil', 'httpx') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "HEAVY []" in res.stdout, res.stdout + res.stderr


SLOW_TO_STOP = """
import asyncio, sys, time
from typing import ClassVar
from fastmango.agent.daemon import Agent, bind
from fastmango.agent.settings import Settings

class SlowToClose:
    name: ClassVar[str] = "slow"
    specs: ClassVar[list] = []
    async def start(self): pass
    async def collect(self): return []
    async def close(self): await asyncio.sleep(30)

async def main():
    settings = Settings.model_validate({"state_dir": sys.argv[1],
                                        "collectors": {"interval": 1, "timeout": 60}})
    agent = Agent(settings, collectors=[SlowToClose()])
    task = asyncio.create_task(agent.serve(bind("127.0.0.1", 0)))
    await agent.ready.wait()
    print("ready", flush=True)
    return await task

sys.exit(asyncio.run(main()))
"""


def start_slow_to_stop(tmp_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_TO_STOP, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise AssertionError("the agent did not start within 30 s")
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_second_sigint_forces_the_exit(tmp_path: Path) -> None:
    proc = start_slow_to_stop(tmp_path)
    assert proc.stdout is not None
    time.sleep(1.5)  # the collector has started, so stopping will wait on its close()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # still stopping gracefully
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(5) == 130
    assert time.monotonic() - began < 1.0
    proc.stdout.close()


def test_a_stop_that_outlasts_the_deadline_still_exits(tmp_path: Path) -> None:
    proc = start_slow_to_stop(tmp_path)
    assert proc.stdout is not None
    time.sleep(1.5)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 1  # the 5 s shutdown_timeout passed: exit anyway, non-zero
    assert 4.0 < time.monotonic() - began < 7.0
    proc.stdout.close()
