"""Shared fixtures: free ports, and the agent run in-process or as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.realservers import stop_process

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 15.0, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0, headers=headers).status_code < 500:
                return
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy and return that; an agent not
    answering yet (a transport error) counts as not yet. Fails naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.TransportError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


class AgentProcess:
    """``fastmango agent`` as a real child process in an app folder."""

    def __init__(self, app_dir: Path, port: int, args: list[str], env: dict[str, str]) -> None:
        self.app_dir = app_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = app_dir / "agent.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastmango.cli", "agent", "--port", str(port), *args],
            cwd=app_dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        code = stop_process(self.proc)
        self._log.close()
        return code


@pytest.fixture
def agent_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def start_agent(tmp_path: Path, agent_env: dict[str, str]) -> Iterator[object]:
    started: list[AgentProcess] = []

    def start(*args: str, app_dir: Path | None = None, wait: bool = True) -> AgentProcess:
        app = app_dir or tmp_path / "app"
        app.mkdir(exist_ok=True)
        agent = AgentProcess(app, free_port(), list(args), agent_env)
        started.append(agent)
        if wait:
            wait_http(agent.url + "/healthz")
        return agent

    yield start
    for a in started:
        a.stop()
