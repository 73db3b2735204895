"""`fastmango dashboard`: the URL of a running agent, or a clear message and exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fastmango.dashboard.launch import open_dashboard
from tests.conftest import free_port


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastmango.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip


def test_no_agent_is_a_clear_message_and_exit_1(tmp_path: Path, agent_env: dict[str, str]) -> None:
    port = free_port()
    res = run_cli("dashboard", "--no-browser", "--url", f"http://127.0.0.1:{port}",
                  cwd=tmp_path, env=agent_env)  # fmt: skip
    assert res.returncode == 1
    assert f"no agent answers at http://127.0.0.1:{port}; start one with `fastmango agent`" in (
        res.stderr
    )
    assert "Traceback" not in res.stderr
    # without --url it looks where the settings say the agent listens
    (tmp_path / "fastmango.toml").write_text(f"[server]\nport = {port}\n")
    res = run_cli("dashboard", "--no-browser", cwd=tmp_path, env=agent_env)
    assert res.returncode == 1 and f"127.0.0.1:{port}" in res.stderr


def test_prints_the_url_of_the_running_agent(start_agent: Any, agent_env: dict[str, str]) -> None:
    agent = start_agent("--interval", "1")
    # no --url: the settings of the app folder say where (its port, given on the command
    # line to the agent, is told to the command through the same variable)
    agent_env["FASTMANGO_SERVER__PORT"] = str(agent.port)
    res = run_cli("dashboard", "--no-browser", cwd=agent.app_dir, env=agent_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == f"fastmango dashboard: {agent.url}/"
    assert "sign in" not in res.stdout


def test_tells_how_to_sign_in_and_never_prints_the_token(
    start_agent: Any, agent_env: dict[str, str]
) -> None:
    agent_env["FASTMANGO_SERVER__TOKEN"] = "cli-s3cret-t0ken"
    agent = start_agent("--interval", "1", "--host", "0.0.0.0")
    res = run_cli("dashboard", "--no-browser", "--url", agent.url, cwd=agent.app_dir,
                  env=agent_env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "sign in with the agent's token" in res.stdout
    assert "cli-s3cret-t0ken" not in res.stdout + res.stderr


def test_opens_the_browser_or_says_to(start_agent: Any, capsys: pytest.CaptureFixture[str]) -> None:
    agent = start_agent("--interval", "1")
    opened: list[str] = []
    assert open_dashboard(agent.url, opener=lambda url: opened.append(url) or True) == 0
    assert opened == [agent.url + "/"]
    assert open_dashboard(agent.url, opener=lambda url: False) == 0
    out = capsys.readouterr().out
    assert f"no browser found here: open {agent.url}/ in your browser" in out
