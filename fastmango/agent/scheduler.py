"""Runs each collector on its own interval, with a timeout, and contains its failures.

A collection runs in a daemon thread of its own, so a collector that hangs blocks
neither the event loop, nor the other collectors, nor the process's exit. While a hung
collection is still running the collector is not started again: each tick counts as a
failure until it returns. A collector that raises or times out is marked down, counted,
logged once per failure streak (secrets redacted) and retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastmango.collector.base import AnyCollector
from fastmango.redact import redact_secrets
from fastmango.series import Sample

log = logging.getLogger("fastmango.agent")
T = TypeVar("T")
MAX_BACKOFF = 300.0


@dataclass
class CollectorState:
    """What the agent knows about one collector's health."""

    name: str
    interval: float
    timeout: float
    up: bool = False
    started: bool = False
    runs_total: int = 0
    errors_total: int = 0
    failures_in_row: int = 0
    last_duration: float = 0.0
    last_success: float | None = None
    last_error: str | None = None
    series: int = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt: the interval, or a backoff after failures."""
        if self.failures_in_row == 0:
            return self.interval
        backoff: float = self.interval * 2.0 ** (self.failures_in_row - 1)
        return min(backoff, max(MAX_BACKOFF, self.interval))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "up": self.up,
            "interval": self.interval,
            "timeout": self.timeout,
            "runs_total": self.runs_total,
            "errors_total": self.errors_total,
            "failures_in_row": self.failures_in_row,
            "last_duration": self.last_duration,
            "last_success": self.last_success,
            "last_error": self.last_error,
            "series": self.series,
        }


def in_daemon_thread(fn: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Run ``fn`` in a new daemon thread; its result arrives on the calling loop's future."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    def target() -> None:
        try:
            result = fn()
        except BaseException as exc:
            if not loop.is_closed():
                loop.call_soon_threadsafe(settle, None, exc)
        else:
            if not loop.is_closed():
                loop.call_soon_threadsafe(settle, result, None)

    # a result that arrives after its waiter timed out must not be reported as unretrieved
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    threading.Thread(target=target, name=name, daemon=True).start()
    return fut


class Runner:
    """Drives one collector: start, collect every interval, publish, contain failures."""

    def __init__(
        self,
        collector: AnyCollector,
        state: CollectorState,
        publish: Callable[[str, list[Sample] | None], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.collector = collector
        self.state = state
        self.publish = publish
        self.clock = clock
        self._inflight: asyncio.Future[Any] | None = None

    async def run(self) -> None:
        """Loop until cancelled."""
        st = self.state
        while True:
            began = time.monotonic()
            await self.run_once()
            elapsed = time.monotonic() - began
            await asyncio.sleep(max(0.0, st.next_delay() - elapsed))

    async def run_once(self) -> None:
        st = self.state
        began = time.monotonic()
        st.runs_total += 1
        try:
            if self._inflight is not None and not self._inflight.done():
                raise TimeoutError(f"still running after {st.timeout:g}s (hung?)")
            if not st.started:
                await self._call(self.collector.start)
                st.started = True
            samples = await self._call(self.collector.collect)
        except Exception as exc:
            st.last_duration = time.monotonic() - began
            self._failed(exc)
            self.publish(st.name, None)
            return
        st.last_duration = time.monotonic() - began
        if st.failures_in_row:
            log.info("collector %s recovered after %d failures", st.name, st.failures_in_row)
        st.up = True
        st.failures_in_row = 0
        st.last_success = self.clock()
        st.series = len(samples)
        self.publish(st.name, samples)

    async def _call(self, fn: Callable[[], Any]) -> Any:
        """Run one step of the collector with the timeout: a coroutine on the loop (it is
        cancelled at the timeout), a plain function in a daemon thread (it is left to
        finish, and the collector is not run again until it has)."""
        try:
            if inspect.iscoroutinefunction(fn):
                return await asyncio.wait_for(fn(), self.state.timeout)
            fut = in_daemon_thread(fn, f"collector-{self.state.name}")
            self._inflight = fut
            return await asyncio.wait_for(asyncio.shield(fut), self.state.timeout)
        except TimeoutError:
            raise TimeoutError(f"timed out after {self.state.timeout:g}s") from None

    def _failed(self, exc: BaseException) -> None:
        st = self.state
        st.up = False
        st.errors_total += 1
        st.failures_in_row += 1
        message = redact_secrets(f"{type(exc).__name__}: {exc}")
        st.last_error = message
        if st.failures_in_row == 1:
            log.warning("collector %s failed: %s (retrying with backoff)", st.name, message)
        else:
            log.debug("collector %s failed again (%d in a row): %s", st.name,
                      st.failures_in_row, message)  # fmt: skip

    async def close(self) -> None:
        if not self.state.started:
            return
        try:
            result = self.collector.close()
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, self.state.timeout)
        except Exception as exc:  # close must not raise; say so and go on
            log.debug("collector %s close: %s", self.state.name, redact_secrets(str(exc)))
