"""The API, the CLI and ``fastmango agent -- CMD`` against a real agent process."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port, wait_http
from tests.logs.conftest import count, wait_for, write_config

LINES = [
    "2024-01-02 10:00:00,000 INFO app.web: GET /orders status=200 took 12ms",
    "2024-01-02 10:00:01,000 ERROR app.db: connection reset by peer request_id=abc",
    "2024-01-02 10:00:02,000 WARNING app.db.pool: pool exhausted; password=hunter2",
    '{"time":"2024-01-02T10:00:03Z","level":"error","logger":"app.web","message":"upstream timed out","status":504}',  # noqa: E501
    "Traceback (most recent call last):",
    '  File "app.py", line 1, in <module>',
    "ValueError: boom",
]


def cli(
    app: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastmango.cli", "logs", *args],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_search_tail_export_cli(app_dir: Path, start_agent: Any, agent_env: dict[str, str]) -> None:
    log = app_dir / "app.log"
    log.write_text("\n".join(LINES) + "\n")
    write_config(app_dir, [str(log)], multiline_timeout=0.1)
    agent = start_agent("--state-dir", str(app_dir / "state"), app_dir=app_dir)
    url = agent.url
    wait_for(lambda: count(url, "") >= 5, 20, "lines indexed")
    # API: search, count, 400 naming the position
    r = httpx.get(url + "/api/logs/search", params={"q": "level:error", "count": "true"})
    doc = r.json()
    assert r.status_code == 200 and doc["count"] == 2
    assert [d["level"] for d in doc["lines"]] == ["error", "error"]
    assert doc["lines"][0]["text"].startswith('{"time"')  # newest first
    r = httpx.get(url + "/api/logs/search", params={"q": "status>=500 (timed"})
    assert r.status_code == 400 and "position 13" in r.json()["detail"]
    assert "unclosed '('" in r.json()["detail"]
    r = httpx.get(url + "/api/logs/search", params={"q": "x", "since": "yesterday-ish"})
    assert r.status_code == 400 and "since" in r.json()["detail"]
    # redacted before storage; traceback joined into one event
    texts = [
        d["text"] for d in httpx.get(url + "/api/logs/search", params={"q": ""}).json()["lines"]
    ]
    assert any("password=****" in t for t in texts) and not any("hunter2" in t for t in texts)
    assert any(t.startswith("Traceback") and t.endswith("ValueError: boom") for t in texts)
    metrics = httpx.get(url + "/metrics").text
    assert 'fastmango_log_redactions_total{rule="password_field"}' in metrics
    assert 'log_lines_per_minute{level="error"}' in metrics
    # caught up: nothing of the file left to index, said per file and in /metrics
    st = httpx.get(url + "/api/logs/status").json()
    assert st["behind_bytes"] == 0 and [f["behind"] for f in st["files"]] == [0]
    assert "fastmango_log_behind_bytes 0.0" in metrics

    env = dict(agent_env)
    # CLI search: plain when piped, oldest first, --count on stderr
    p = cli(app_dir, "--url", url, "--search", "level>=warn", "--count", env=env)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert len(out) == 3 and "\x1b[" not in p.stdout
    assert out[0].startswith("2024-01-02T10:00:01.000Z ERROR") and "connection reset" in out[0]
    assert "3 matching lines" in p.stderr
    p = cli(app_dir, "--url", url, "-s", "reset", "--json", env=env)
    assert json.loads(p.stdout)["level"] == "error"
    p = cli(app_dir, "--url", url, "-s", 'level:error "unclosed', env=env)
    assert p.returncode == 1 and "position 13" in p.stderr and "unclosed quote" in p.stderr
    # export: CSV to a file, JSONL to stdout
    p = cli(
        app_dir, "--url", url, "--export", "--format", "csv", "-o", "out.csv", "-s", "app", env=env
    )
    assert p.returncode == 0, p.stderr
    with (app_dir / "out.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "time", "level", "source", "text"] and len(rows) == 6
    assert rows[-1][4].startswith("Traceback") and rows[-1][4].endswith("ValueError: boom")
    p = cli(app_dir, "--url", url, "--export", env=env)
    assert len(p.stdout.splitlines()) == 5 and json.loads(p.stdout.splitlines()[0])["id"] == 1
    p = cli(app_dir, "--url", url, "--export", "-o", "no/such/dir/out.csv", env=env)
    assert p.returncode == 1 and "cannot write no/such/dir/out.csv" in p.stderr
    assert "Traceback" not in p.stderr

    # live tail through the CLI: a line written now reaches it
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastmango.cli",
            "logs",
            "--url",
            url,
            "--tail",
            "--search",
            "level:error",
        ],
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    got: list[str] = []

    def read() -> None:
        assert tail.stdout is not None
        for line in tail.stdout:
            got.append(line)

    th = threading.Thread(target=read, daemon=True)
    th.start()
    try:
        wait_for(lambda: len(got) >= 2, 20, "the backlog")  # the two errors so far
        with log.open("a") as f:
            f.write("2024-01-02 10:00:09,000 INFO app: not an error\n")
            f.write("2024-01-02 10:00:10,000 ERROR app.jobs: tail me\n")
        wait_for(lambda: any("tail me" in g for g in got), 10, "the new error line")
        assert not any("not an error" in g for g in got)
    finally:
        tail.terminate()
        tail.wait(10)
        th.join(5)
        for stream in (tail.stdout, tail.stderr):
            if stream is not None:
                stream.close()


def test_sse_tail_latency(app_dir: Path, start_agent: Any) -> None:
    log = app_dir / "app.log"
    log.write_text("2024-01-02T10:00:00Z INFO start\n")
    write_config(app_dir, [str(log)])
    agent = start_agent("--state-dir", str(app_dir / "state"), app_dir=app_dir)
    wait_for(lambda: count(agent.url, "") >= 1, 20, "first line")
    lat: list[float] = []
    with httpx.stream("GET", agent.url + "/api/logs/tail", params={"q": "tick"}, timeout=20) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines).startswith("event: hello")
        for i in range(5):
            sent = time.time()
            with log.open("a") as f:
                f.write(f"2024-01-02T10:00:01Z INFO tick {i}\n")
            for raw in lines:
                if raw.startswith("data:") and f"tick {i}" in raw:
                    lat.append(time.time() - sent)
                    break
    assert len(lat) == 5 and max(lat) < 2.0, lat  # a generous guard; the benchmark measures


def test_logs_off_and_no_agent(app_dir: Path, start_agent: Any, agent_env: dict[str, str]) -> None:
    agent = start_agent("--state-dir", str(app_dir / "state"), app_dir=app_dir)
    r = httpx.get(agent.url + "/api/logs/search")
    assert r.status_code == 404 and "logs.paths" in r.json()["detail"]
    p = cli(app_dir, "--url", agent.url, "-s", "x", env=agent_env)
    assert p.returncode == 1 and "logs are off" in p.stderr
    p = cli(app_dir, "--url", f"http://127.0.0.1:{free_port()}", "-s", "x", env=agent_env)
    assert p.returncode == 1 and "agent" in p.stderr.lower()


CHILD = """
import signal, sys, time
def bye(sig, frame):
    print("child got SIGTERM", flush=True)
    sys.exit(7)
signal.signal(signal.SIGTERM, bye)
for i in range(3):
    print(f"2024-01-02T10:00:0{i}Z INFO child: hello {i}", flush=True)
print("2024-01-02T10:00:04Z WARN child: ann@example.com signed in, password=hunter2", flush=True)
print("2024-01-02T10:00:05Z ERROR child: to stderr", file=sys.stderr, flush=True)
while True:
    time.sleep(0.1)
"""


def test_agent_runs_the_app_as_its_child(app_dir: Path, agent_env: dict[str, str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastmango.cli",
            "agent",
            "--port",
            str(port),
            "--state-dir",
            str(app_dir / "state"),
            "--",
            sys.executable,
            "-c",
            CHILD,
        ],
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=agent_env,
    )
    try:
        wait_http(url + "/healthz")
        wait_for(lambda: count(url, "child") >= 4, 20, "the child's output indexed")
        doc = httpx.get(url + "/api/logs/search", params={"q": "level:error"}).json()
        assert doc["lines"][0]["source"] == "app:stderr"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 7  # the child's exit code
    assert b"child: hello 2" in out and b"child got SIGTERM" in out  # echoed through
    assert b"to stderr" in err
    # the container log gets what the index stores: redacted
    assert b"[REDACTED EMAIL] signed in, password=****" in out
    assert b"hunter2" not in out + err and b"ann@example.com" not in out + err


def test_agent_exits_with_child_code(app_dir: Path, agent_env: dict[str, str]) -> None:
    port = free_port()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastmango.cli",
            "agent",
            "--port",
            str(port),
            "--state-dir",
            str(app_dir / "state"),
            "--",
            sys.executable,
            "-c",
            "import sys; print('bye ann@example.com', end=''); sys.exit(3)",
        ],
        cwd=app_dir,
        capture_output=True,
        timeout=30,
        env=agent_env | {"FASTMANGO_LOGS__ECHO": "raw"},
    )
    # logs.echo = raw: the output goes through byte for byte, unredacted, no newline added
    assert p.returncode == 3 and b"bye ann@example.com" in p.stdout
    assert b"bye ann@example.com\n" not in p.stdout


def test_tail_waits_for_a_restarted_agent_and_resumes(
    app_dir: Path, agent_env: dict[str, str]
) -> None:
    """`fastmango logs --tail` across an agent restart (a deploy): it says the agent went
    away, waits, and resumes after the last line it showed: the line written while the
    agent was down arrives, and nothing is shown twice."""
    from tests.conftest import AgentProcess

    log = app_dir / "app.log"
    log.write_text("")
    write_config(app_dir, [str(log)], multiline_timeout=0.1)
    args, port = ["--state-dir", str(app_dir / "state")], free_port()
    agent = AgentProcess(app_dir, port, args, agent_env)
    tail: subprocess.Popen[str] | None = None
    shown: list[str] = []
    try:
        wait_http(agent.url + "/healthz")
        tail = subprocess.Popen(
            [sys.executable, "-m", "fastmango.cli", "logs", "--url", agent.url, "--tail",
             "--json"],
            cwd=app_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=agent_env,
        )  # fmt: skip
        out = tail.stdout
        assert out is not None
        threading.Thread(target=lambda: shown.extend(iter(out.readline, "")), daemon=True).start()

        def write(word: str) -> None:
            with log.open("a") as f:
                f.write(f"2024-01-02T10:00:00Z INFO app: line {word}\n")

        def seen(word: str) -> bool:
            return any(f"line {word}" in s for s in shown)

        time.sleep(1)  # the tail is connected
        write("one")
        wait_for(lambda: seen("one"), 20, "line one tailed")
        agent.stop()
        write("two")  # while the agent is down
        agent = AgentProcess(app_dir, port, args, agent_env)
        wait_http(agent.url + "/healthz")
        write("three")
        wait_for(lambda: seen("two") and seen("three"), 30, "lines two and three tailed")
    finally:
        if tail is not None:
            tail.send_signal(signal.SIGINT)
            _out, err = tail.communicate(timeout=10)
        agent.stop()
    texts = [json.loads(s)["text"] for s in shown]
    assert [t.rsplit(" ", 1)[1] for t in texts] == ["one", "two", "three"]  # once each
    assert "went away" in err and "reconnected" in err


def test_cli_refuses_options_that_do_not_go_together(app_dir: Path) -> None:
    for args, problem in [
        (["--tail", "--export"], "--tail and --export"),
        (["--tail", "--since", "1h"], "--tail follows from now"),
        (["--export", "--count"], "--fleet and --count"),
        (["-o", "out.csv"], "go with --export"),
        (["--format", "csv", "-s", "x"], "go with --export"),
    ]:
        p = cli(app_dir, *args)
        assert p.returncode == 2 and problem in p.stderr, (args, p.stderr)
