"""The container's command: run the app with the fastmango agent beside it.

``python -m fastmango.deployer.artifacts.supervise [--agent CMD] -- APP COMMAND…``

* starts the agent (``fastmango agent``; on all interfaces only when
  ``FASTMANGO_SERVER__TOKEN`` is set, else loopback), then the app;
* forwards SIGTERM/SIGINT to both and waits for them;
* exits with the app's status when the app ends (stopping the agent);
* when the agent dies the app keeps serving: the agent is restarted with backoff
  (1 s doubling to 60 s), and each restart is logged on stderr.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

STOP_GRACE = 20.0  # seconds a child gets after SIGTERM before SIGKILL


def agent_command() -> list[str]:
    host = "0.0.0.0" if os.environ.get("FASTMANGO_SERVER__TOKEN") else "127.0.0.1"
    return [sys.executable, "-m", "fastmango.cli", "agent", "--host", host]


def _say(message: str) -> None:
    print(f"fastmango-supervise: {message}", file=sys.stderr, flush=True)


def run(app: Sequence[str], agent: Sequence[str], *, tick: float = 0.2) -> int:
    stopping = False
    children: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    def start_agent() -> subprocess.Popen[bytes] | None:
        try:
            return subprocess.Popen(list(agent))
        except OSError as exc:
            _say(f"cannot start the agent ({exc}); the app runs without it")
            return None

    agent_proc = start_agent()
    try:
        app_proc = subprocess.Popen(list(app))
    except OSError as exc:
        _say(f"cannot start the app {shlex.join(app)}: {exc}")
        if agent_proc is not None:
            _stop(agent_proc)
        return 127
    children[:] = [p for p in (agent_proc, app_proc) if p is not None]
    backoff, restart_at = 1.0, 0.0
    while True:
        code = app_proc.poll()
        if code is not None:
            break
        if agent_proc is not None and agent_proc.poll() is not None and not stopping:
            _say(f"agent exited with status {agent_proc.returncode}; restarting in {backoff:g}s")
            restart_at = time.monotonic() + backoff
            backoff = min(backoff * 2, 60.0)
            agent_proc = None
        if agent_proc is None and not stopping and restart_at and time.monotonic() >= restart_at:
            agent_proc = start_agent()
            restart_at = 0.0
            children[:] = [p for p in (agent_proc, app_proc) if p is not None]
        time.sleep(tick)
    if agent_proc is not None:
        _stop(agent_proc)
    return code if code >= 0 else 128 - code


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    agent = agent_command()
    if args[:1] == ["--agent"] and len(args) > 1:
        agent = shlex.split(args[1])
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        _say("usage: python -m fastmango.deployer.artifacts.supervise [--agent CMD] -- APP…")
        return 2
    return run(args, agent)


if __name__ == "__main__":
    sys.exit(main())
