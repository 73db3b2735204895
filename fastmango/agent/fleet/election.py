"""Leader election with a session advisory lock on a connection of its own.

One loop per agent: connect (with backoff), then every ``check_interval`` either try
``pg_try_advisory_lock`` (not leading) or check that the connection still answers
(leading). PostgreSQL releases a session lock when the session ends, so an agent that
dies, or whose connection is cut (``pg_terminate_backend``, a restart, a network loss
PostgreSQL notices through TCP keep-alives), loses it, and the next try of another agent
takes it. The agent that lost its connection steps down at once (asyncpg calls the
termination listener when the socket closes) or at the latest when a check times out,
then reconnects and competes again; a leader that lost its connection waits three checks
before competing, so a healthy peer takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from fastmango.agent.fleet.schema import LEADER_LOCK, LOCK_NAMESPACE
from fastmango.redact import redact_secrets

log = logging.getLogger("fastmango.agent.fleet")


class Election:
    """Competes for the leader lock until cancelled; ``leader`` says whether it holds it."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        on_change: Callable[[bool, str], None],
        check_interval: float = 1.0,
        reconnect_max: float = 5.0,
        on_connect: Callable[[int], None] | None = None,
    ) -> None:
        self._connect = connect
        self._on_change = on_change
        self._on_connect = on_connect
        self.check_interval = check_interval
        #: a check slower than this counts as a lost connection
        self.check_timeout = max(2.0, 2 * check_interval)
        self.reconnect_max = reconnect_max
        self.leader = False
        self.connected = False
        self.backend_pid: int | None = None
        self.last_error: str | None = None
        self._conn: Any = None

    def _set(self, leader: bool, reason: str) -> None:
        if leader != self.leader:
            self.leader = leader
            self._on_change(leader, reason)

    async def run(self) -> None:
        backoff = 0.2
        while True:
            lost = asyncio.Event()
            try:
                conn = self._conn = await self._connect()
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                self.connected, self.last_error = True, None
                self.backend_pid = conn.get_server_pid()
                backoff = 0.2
                if self._on_connect is not None:
                    self._on_connect(self.backend_pid or 0)
                await self._hold(conn, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = redact_secrets(str(exc) or type(exc).__name__)
                was_leader = self.leader
                self.connected, self.last_error = False, message
                self._set(False, f"lost the leader connection: {message}")
                log.log(
                    logging.WARNING if was_leader or backoff <= 0.2 else logging.DEBUG,
                    "fleet election: %s; reconnecting in %.1fs",
                    message,
                    backoff,
                )
                self._drop()
                delay = backoff * random.uniform(0.75, 1.0)
                if was_leader:
                    # a leader cut off stands back a few checks, so a healthy peer takes
                    # over rather than the agent whose connection just failed
                    delay = max(delay, 3 * self.check_interval)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self.reconnect_max)

    async def _hold(self, conn: Any, lost: asyncio.Event) -> None:
        while True:
            if lost.is_set() or conn.is_closed():
                raise ConnectionError("the connection to PostgreSQL was closed")
            if not self.leader:
                got = await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    LOCK_NAMESPACE,
                    LEADER_LOCK,
                    timeout=self.check_timeout,
                )
                if got:
                    self._set(True, "took the leader lock")
            else:
                await conn.fetchval("SELECT 1", timeout=self.check_timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self.check_interval)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self.backend_pid = None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def close(self) -> None:
        """Give the lock up (by ending the session) and step down."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 1.0)
            except Exception:
                conn.terminate()
        self.connected = False
        self._set(False, "stopping")
