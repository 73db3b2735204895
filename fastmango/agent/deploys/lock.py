"""The per-environment lock: no two deploys, rollbacks or scale changes at once.

It lives in SQLite (``<state_dir>/deploys.db``), so the CLI and the agent — separate
processes — see the same lock. The holder renews it every ``ttl / 3`` seconds; a lock
not renewed for ``ttl`` seconds is stale (its holder was killed) and the next taker
takes it over, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from fastmango.deployer.errors import LockBusy

SCHEMA = """
CREATE TABLE IF NOT EXISTS locks (
    env TEXT PRIMARY KEY,
    holder TEXT NOT NULL,      -- a random id of this taking
    info TEXT NOT NULL,        -- JSON: action, who, pid, host
    taken REAL NOT NULL,       -- Unix seconds
    expires REAL NOT NULL      -- Unix seconds; renewed by the holder
);
"""


@dataclass(frozen=True)
class Held:
    env: str
    holder: str
    action: str
    who: str
    pid: int
    host: str
    taken: float
    expires: float

    def describe(self, now: float) -> str:
        return (
            f"{self.action} by {self.who} (pid {self.pid} on {self.host}), running for "
            f"{now - self.taken:.0f}s, lock expires in {max(0.0, self.expires - now):.0f}s "
            "unless renewed"
        )


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA busy_timeout = 10000")
    db.executescript(SCHEMA)
    return db


class EnvLock:
    """``async with EnvLock(path, env, action=, who=).hold(): ...``"""

    def __init__(
        self,
        path: Path,
        env: str,
        *,
        action: str,
        who: str,
        ttl: float = 60.0,
        wait: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.env = env
        self.action = action
        self.who = who
        self.ttl = ttl
        self.wait = wait
        self.clock = clock
        self.holder = uuid.uuid4().hex
        self.took_over: Held | None = None

    def current(self) -> Held | None:
        with contextlib.closing(_connect(self.path)) as db:
            return _read(db, self.env)

    def try_take(self) -> Held | None:
        """Take the lock; return None on success, else who holds it."""
        now = self.clock()
        info = json.dumps(
            {
                "action": self.action,
                "who": self.who,
                "pid": os.getpid(),
                "host": socket.gethostname(),
            }
        )
        with contextlib.closing(_connect(self.path)) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                held = _read(db, self.env)
                if held is not None and held.expires > now and held.holder != self.holder:
                    db.execute("ROLLBACK")
                    return held
                if held is not None and held.holder != self.holder:
                    self.took_over = held  # stale: its holder stopped renewing
                db.execute(
                    "INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?, ?)",
                    (self.env, self.holder, info, now, now + self.ttl),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return None

    def renew(self) -> bool:
        with contextlib.closing(_connect(self.path)) as db:
            cur = db.execute(
                "UPDATE locks SET expires = ? WHERE env = ? AND holder = ?",
                (self.clock() + self.ttl, self.env, self.holder),
            )
            return cur.rowcount == 1

    def release(self) -> None:
        with contextlib.closing(_connect(self.path)) as db:
            db.execute("DELETE FROM locks WHERE env = ? AND holder = ?", (self.env, self.holder))

    async def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            held = await asyncio.to_thread(self.try_take)
            if held is None:
                return
            if time.monotonic() >= deadline:
                raise LockBusy(
                    f"environment {self.env} is locked: {held.describe(self.clock())}"
                    "; try again later, or pass --lock-wait"
                )
            await asyncio.sleep(min(0.25, max(0.01, deadline - time.monotonic())))

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[EnvLock]:
        await self.acquire()
        renewer = asyncio.create_task(self._renew_loop())
        try:
            yield self
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await asyncio.to_thread(self.release)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            await asyncio.to_thread(self.renew)


def _read(db: sqlite3.Connection, env: str) -> Held | None:
    row = db.execute(
        "SELECT holder, info, taken, expires FROM locks WHERE env = ?", (env,)
    ).fetchone()
    if row is None:
        return None
    info = json.loads(row[1])
    return Held(
        env,
        row[0],
        info.get("action", "?"),
        info.get("who", "?"),
        info.get("pid", 0),
        info.get("host", "?"),
        row[2],
        row[3],
    )


def all_locks(path: Path) -> list[Held]:
    if not Path(path).exists():
        return []
    with contextlib.closing(_connect(Path(path))) as db:
        envs = [r[0] for r in db.execute("SELECT env FROM locks")]
        return [h for e in envs if (h := _read(db, e)) is not None]
