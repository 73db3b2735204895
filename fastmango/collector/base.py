"""The collector interface: ``start()``, ``collect()``, ``close()``.

Two flavours share it. A :class:`Collector` is synchronous (it reads files and
syscalls): the agent runs it in a thread of its own with a timeout, so a hung source
never blocks the event loop or the other collectors. An :class:`AsyncCollector` talks to
a network server (asyncpg, httpx): its methods are coroutines, run on the agent's loop
and cancelled at the timeout.

A collector reads everything it needs through its constructor parameters (``/proc``
and cgroup roots, clocks, connection pools), each with a real default, so tests can
point it at recorded files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol, runtime_checkable

from fastmango.series import MetricSpec, Sample

Clock = Callable[[], float]


@runtime_checkable
class Collector(Protocol):
    """One source of samples."""

    #: a short stable name, used in ``fastmango_collector_up{collector=...}`` and config
    name: ClassVar[str]
    #: every metric family this collector may return
    specs: ClassVar[list[MetricSpec]]

    def start(self) -> None:
        """Open what the collector needs. May raise; the agent retries with backoff."""

    def collect(self) -> list[Sample]:
        """Read the source once and return its samples."""

    def close(self) -> None:
        """Release what ``start`` opened. Must not raise."""


@runtime_checkable
class AsyncCollector(Protocol):
    """A collector whose source is a network server; see the module docstring."""

    name: ClassVar[str]
    specs: ClassVar[list[MetricSpec]]

    async def start(self) -> None:
        """Connect. May raise; the agent retries with backoff."""

    async def collect(self) -> list[Sample]:
        """Query the source once and return its samples."""

    async def close(self) -> None:
        """Disconnect. Must not raise."""


AnyCollector = Collector | AsyncCollector
