"""Real files, a real writer process, a real agent: rotation by rename, copytruncate and
delete-and-recreate under load, and kill -9 mid-ingest — every line indexed once."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.logs.conftest import count, export_lines, wait_for, write_config

WRITER = Path(__file__).with_name("writer.py")


def seqs(url: str) -> Counter[int]:
    got: Counter[int] = Counter()
    for d in export_lines(url, "writer"):
        text = d["text"]
        i = text.index("seq=") + 4
        got[int(text[i : text.index(" ", i)])] += 1
    return got


def rotate_rename(log: Path) -> None:
    for i in (3, 2, 1):
        src = log.with_name(f"{log.name}.{i}")
        if src.exists():
            src.rename(log.with_name(f"{log.name}.{i + 1}"))
    if log.exists():
        log.rename(log.with_name(log.name + ".1"))


def rotate_copytruncate(log: Path) -> None:
    lock = os.open(str(log) + ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for i in (3, 2, 1):
            src = log.with_name(f"{log.name}.{i}")
            if src.exists():
                src.rename(log.with_name(f"{log.name}.{i + 1}"))
        if log.exists():
            shutil.copyfile(log, log.with_name(log.name + ".1"))
            with log.open("r+b") as f:
                f.truncate(0)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)


def rotate_delete(log: Path) -> None:
    log.unlink(missing_ok=True)


def test_rotation_under_load_every_line_once(app_dir: Path, start_agent: Any) -> None:
    logs = app_dir / "logs"
    logs.mkdir()
    log = logs / "app.log"
    write_config(app_dir, [str(logs / "app.log*")], multiline=False)
    agent = start_agent("--state-dir", str(app_dir / "state"), app_dir=app_dir)
    n = 12_000
    writer = subprocess.Popen([sys.executable, str(WRITER), str(log), str(n), "4000"])
    rotations = Counter[str]()
    try:
        kinds = [rotate_rename, rotate_copytruncate, rotate_delete]
        i = 0
        while writer.poll() is None:
            time.sleep(0.35)
            if writer.poll() is not None:
                break
            fn = kinds[i % len(kinds)]
            fn(log)
            rotations[fn.__name__] += 1
            i += 1
    finally:
        writer.wait(60)
    assert writer.returncode == 0
    assert min(rotations.values(), default=0) >= 2, rotations
    wait_for(lambda: count(agent.url, "writer") >= n, 60, f"{n} lines indexed")
    time.sleep(1.0)  # anything read twice would show up now
    got = seqs(agent.url)
    missing = sorted(set(range(n)) - set(got))
    twice = sorted(k for k, v in got.items() if v > 1)
    assert not missing, f"lost {len(missing)} lines, e.g. {missing[:10]}"
    assert not twice, f"{len(twice)} lines indexed twice, e.g. {twice[:10]}"
    assert len(got) == n


def test_kill_9_mid_ingest_then_restart(app_dir: Path, start_agent: Any) -> None:
    log = app_dir / "big.log"
    n = 80_000
    with log.open("w") as f:
        for i in range(n):
            f.write(f"2024-01-02T10:00:00Z INFO writer: seq={i} some payload text here\n")
    write_config(app_dir, [str(log)])
    state = str(app_dir / "state")
    agent = start_agent("--state-dir", state, app_dir=app_dir)
    import httpx

    def ingested() -> int:
        return int(httpx.get(agent.url + "/api/logs/status", timeout=5).json()["ingested"])

    wait_for(lambda: ingested() >= 5_000, 60, "some lines ingested", every=0.02)
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait(10)
    from fastmango.agent.logs.index import LogIndex

    crashed = LogIndex(Path(state) / "logs.db")
    crashed.open()  # WAL recovery, as the restarted agent will do
    stored = crashed.stats()["lines"]
    crashed.close()
    assert 0 < stored < n, f"the kill came after ingest ended ({stored} of {n} stored)"
    # more lines arrive while the agent is down
    with log.open("a") as f:
        for i in range(n, n + 1000):
            f.write(f"2024-01-02T10:00:01Z INFO writer: seq={i} after the crash\n")
    again = start_agent("--state-dir", state, app_dir=app_dir)
    wait_for(
        lambda: count(again.url, "writer") >= n + 1000, 90, "every line after restart", every=0.25
    )
    time.sleep(0.5)
    got = seqs(again.url)
    assert len(got) == n + 1000
    assert max(got.values()) == 1, "a line was indexed twice"

    # caught up, the writer merges the index into one b-tree; the answers stay the same
    def merged() -> bool:
        st = httpx.get(again.url + "/api/logs/status", timeout=5).json()
        return bool(st["index"]["unmerged"] == 0)

    wait_for(merged, 60, "the index merged once idle", every=0.25)
    assert count(again.url, "writer") == n + 1000
