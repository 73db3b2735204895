"""The logs service: follows the files in ``logs.paths`` (and the app's own output when
the agent runs it), redacts, parses and indexes every event, serves searches and live
tails, and publishes the log-derived series.

All file reading, parsing and index writing happens on one thread of its own, which
sleeps in ``select`` on an inotify descriptor (no polling while idle) and wakes when a
watched folder changes, when a multiline event is due, or once per
``logs.poll_interval`` to rescan the globs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import select
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastmango.agent.services import Host, Service
from fastmango.agent.settings import Settings

if TYPE_CHECKING:
    from fastmango.agent.logs.index import Line, LogIndex
    from fastmango.agent.logs.query import Node
    from fastmango.collector.logs.multiline import Assembler
    from fastmango.collector.logs.tail import Tailer
    from fastmango.redact import Redactor

log = logging.getLogger("fastmango.agent.logs")
LEVEL_LABELS = ("unknown", "trace", "debug", "info", "notice", "warn", "error", "fatal")
#: (source name, its events, the fd its redacted text is still to be copied to, if any)
Batch = tuple[str, list[Any], int | None]


def _write_all(fd: int, data: bytes) -> None:
    """Copy ``data`` to ``fd`` (the agent's stdout or stderr); a closed one is ignored."""
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(fd, view) :]


def _echo_redacted(batches: list[Batch], texts: list[str]) -> None:
    """Copy the app's events, as redacted (``texts``, the batches' events in order), to
    the agent's stdout/stderr, so the container log holds no more than the index; once
    only: a batch kept for a retry is marked done."""
    start = 0
    for k, (name, events, echo) in enumerate(batches):
        end = start + len(events)
        if echo is not None:
            _write_all(echo, ("\n".join(texts[start:end]) + "\n").encode("utf-8", "replace"))
            batches[k] = (name, events, None)
        start = end


class Subscriber:
    """One live tail: its query, and a queue of matching lines."""

    def __init__(self, node: Node | None, size: int = 10_000) -> None:
        self.node = node
        self.queue: asyncio.Queue[Line] = asyncio.Queue(maxsize=size)
        self.dropped = 0


class LogsService:
    name = "logs"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.logs
        self.path = Path(settings.state_dir) / "logs.db"
        self.index: LogIndex | None = None
        self.tailer: Tailer | None = None
        self.redactor: Redactor | None = None
        self.host: Host | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r = self._wake_w = -1
        self._pipes: dict[int, tuple[Assembler, str, int | None]] = {}
        self._pipes_lock = threading.Lock()
        self._subs: set[Subscriber] = set()
        #: lines per level in each of the last seconds: (second, counts by level code)
        self._recent: deque[tuple[int, list[int]]] = deque()
        self._totals = [0] * len(LEVEL_LABELS)
        self._publish_task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.ingested = 0
        self.dropped = 0
        self._unstored: list[Batch] = []
        #: bytes each followed file holds past what was indexed (by fingerprint), as of
        #: the last read: replaced whole, so other threads read it without a lock
        self.behind: dict[str, int] = {}
        self.idle = threading.Event()
        #: work that must run on the writer thread (purge), with its future
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        from fastmango.agent.logs.index import LogIndex
        from fastmango.collector.logs.tail import Tailer
        from fastmango.redact import Redactor

        self.host = host
        self._loop = asyncio.get_running_loop()
        cfg = self.cfg
        self.index = LogIndex(
            self.path,
            max_bytes=cfg.max_size,
            max_age=cfg.retention,
            segment_lines=cfg.segment_lines,
            clock=host.clock,
        )
        await asyncio.to_thread(self.index.open)
        self.redactor = Redactor.default(
            ip_addresses=cfg.redact_ip_addresses, extra=cfg.redact_patterns
        )
        self.tailer = Tailer(
            list(cfg.paths),
            checkpoints=self.index.checkpoints(),
            fmt=cfg.format,
            multiline=cfg.multiline,
            multiline_timeout=cfg.multiline_timeout,
        )
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="fastmango-logs", daemon=True)
        self._thread.start()
        self._publish_task = asyncio.create_task(self._publish_loop(), name="logs-publish")

    async def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._publish_task is not None:
            self._publish_task.cancel()
            await asyncio.gather(self._publish_task, return_exceptions=True)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
        if self.tailer is not None:
            self.tailer.close()
        if self.index is not None:
            await asyncio.to_thread(self.index.close)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def add_pipe(self, fd: int, name: str, echo: int | None = None) -> None:
        """Read the app's stdout or stderr from ``fd`` as the source ``name`` (copying it
        to ``echo``, the agent's own stdout/stderr, so the container log keeps it: as
        ``logs.echo`` says, redacted, raw or not at all)."""
        from fastmango.collector.logs.multiline import Assembler

        if self.cfg.echo == "off":
            echo = None
        os.set_blocking(fd, False)
        with self._pipes_lock:
            self._pipes[fd] = (
                Assembler(0, "raw", self.cfg.multiline, self.cfg.multiline_timeout),
                name,
                echo,
            )
        self._wake()

    # -- the ingest thread ---------------------------------------------------------
    def _run(self) -> None:
        from fastmango.collector.logs.inotify import open_inotify

        assert self.tailer is not None and self.index is not None
        ino = open_inotify()
        watched: set[str] = set()
        next_rescan = 0.0
        next_retention = time.monotonic() + 5
        while not self._stop.is_set():
            now = time.monotonic()
            if ino is not None and now >= next_rescan:
                for folder in self.tailer.folders() - watched:
                    if os.path.isdir(folder) and ino.watch(folder):
                        watched.add(folder)
            timeout = max(0.0, next_rescan - now) if next_rescan > now else self.cfg.poll_interval
            if ino is None:
                timeout = min(timeout, self.cfg.poll_interval)
            deadlines = [d for d in (self.tailer.deadline(), self._pipe_deadline()) if d]
            if deadlines:
                timeout = min(timeout, max(0.0, min(deadlines) - now))
            if self.tailer.more or self.index.unmerged:
                timeout = 0.0
            fds = [self._wake_r] + ([ino.fd] if ino is not None else [])
            with self._pipes_lock:
                fds += list(self._pipes)
            if timeout > 0:
                self.idle.set()
            try:
                ready, _w, _x = select.select(fds, [], [], timeout)
            except (OSError, ValueError):
                ready = []
            self.idle.clear()
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            if ino is not None and ino.fd in ready:
                ino.read()
            now = time.monotonic()
            if now >= next_rescan:
                next_rescan = now + self.cfg.poll_interval
            self._run_jobs()
            try:
                if self.index.unmerged and not ready and not self.tailer.more:
                    # idle: merge the full-text index a step at a time (queries stay fast)
                    self.index.merge_step()
                self._cycle(ready, now)
                if now >= next_retention:
                    next_retention = now + 30
                    self.index.roll_segment_if_big()
                    self.index.enforce_retention()
            except Exception as exc:  # keep following; say what went wrong
                from fastmango.redact import redact_secrets

                self.last_error = redact_secrets(f"{type(exc).__name__}: {exc}")
                log.error("logs: %s", self.last_error)
                time.sleep(0.5)
        # drain what is whole before stopping
        with self._pipes_lock:
            pipes = list(self._pipes)
        with contextlib.suppress(Exception):
            self._cycle(pipes, time.monotonic(), final=True)
        if ino is not None:
            ino.close()

    def _run_jobs(self) -> None:
        while True:
            try:
                fn, fut = self._jobs.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:
                    fut.set_exception(exc)

    async def purge(self, needle: str) -> tuple[int, int]:
        """Erase every indexed line containing ``needle`` (on the writer thread, between
        ingest batches): (lines erased, lines scanned)."""
        assert self.index is not None
        fut: Future[tuple[int, int]] = Future()
        index = self.index
        self._jobs.put((lambda: index.purge(needle), fut))
        self._wake()
        return await asyncio.wrap_future(fut)

    def _pipe_deadline(self) -> float | None:
        with self._pipes_lock:
            ds = [d for asm, _n, _e in self._pipes.values() if (d := asm.deadline()) is not None]
        return min(ds) if ds else None

    def _cycle(self, ready: list[int], now: float, final: bool = False) -> None:
        assert self.tailer is not None and self.index is not None
        batches: list[Batch] = []
        raw_echo = self.cfg.echo == "raw"
        with self._pipes_lock:
            pipes = list(self._pipes.items())
        for fd, (asm, name, echo) in pipes:
            eof = False
            if fd in ready:
                try:
                    data = os.read(fd, 1 << 20)
                except BlockingIOError:
                    data = b""
                except OSError:
                    data, eof = b"", True
                else:
                    eof = not data
                if data:
                    if echo is not None and raw_echo:
                        _write_all(echo, data)
                    asm.feed(data, now)
            if eof:
                asm.finish(now)
            events = asm.take(now, final=eof or final)
            if events:
                batches.append((name, events, None if raw_echo else echo))
            if eof:
                with self._pipes_lock:
                    self._pipes.pop(fd, None)
                with contextlib.suppress(OSError):
                    os.close(fd)
        for stream, events in self.tailer.poll():
            batches.append((stream.name, events, None))
        self.behind = self.tailer.behind()
        if self._unstored:  # a batch the index refused last time (disk full…) goes first
            batches = self._unstored + batches
            self._unstored = []
        if batches or self.tailer.forgotten:
            try:
                self._ingest(batches)
            except Exception:
                # keep it for the next cycle (bounded: the oldest go first when it grows);
                # its offsets were not stored, so a restart would read it again anyway
                kept = sum(len(b[1]) for b in batches)
                while batches and kept > 200_000:
                    kept -= len(batches[0][1])
                    self.dropped += len(batches.pop(0)[1])
                self._unstored = batches
                raise

    def _ingest(self, batches: list[Batch]) -> None:
        assert self.index is not None and self.redactor is not None and self.tailer is not None
        texts: list[str] = []
        sources: list[int] = []
        hints: list[float | None] = []
        for name, events, _echo in batches:
            sid = self.index.source_id(name)
            for e in events:
                texts.append(e[0])
                sources.append(sid)
                hints.append(e[1])
        texts = self.redactor.redact_many(texts)
        _echo_redacted(batches, texts)
        stored = self.index.ingest(texts, sources, hints, self.tailer.checkpoints())
        if self.tailer.forgotten:
            self.index.forget_checkpoints(self.tailer.forgotten)
            self.tailer.forgotten.clear()
        self.ingested += len(stored)
        sec = int(time.time())
        recent = self._recent
        if not recent or recent[-1][0] != sec:
            recent.append((sec, [0] * len(LEVEL_LABELS)))
        bucket = recent[-1][1]
        for code, n in Counter(stored.levels).items():
            self._totals[code] += n
            bucket[code] += n
        while recent and recent[0][0] < sec - 60:
            recent.popleft()
        if stored and self._subs and self._loop is not None:
            self._loop.call_soon_threadsafe(self._dispatch, stored.lines())

    # -- live tail -------------------------------------------------------------------
    def subscribe(self, node: Node | None) -> Subscriber:
        sub = Subscriber(node)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    def _dispatch(self, lines: list[Line]) -> None:
        from fastmango.agent.logs.query import Record, matches

        for sub in list(self._subs):
            for line in lines:
                if sub.node is None or matches(
                    sub.node, Record(line.text, line.level, line.source)
                ):
                    try:
                        sub.queue.put_nowait(line)
                    except asyncio.QueueFull:
                        sub.dropped += 1

    # -- series ----------------------------------------------------------------------
    def samples(self, now: float) -> list[Any]:
        from fastmango.collector.logs import SPECS
        from fastmango.series import SampleBuilder, spec_index

        b = SampleBuilder(spec_index(SPECS), now)
        per = [0] * len(LEVEL_LABELS)
        cutoff = time.time() - 60
        for sec, counts in list(self._recent):
            if sec >= cutoff:
                for code, n in enumerate(counts):
                    per[code] += n
        for code, label in enumerate(LEVEL_LABELS):
            b.add("log_lines_per_minute", per[code], level=label)
            b.add("fastmango_log_lines_total", self._totals[code], level=label)
        if self.redactor is not None:
            for rule, n in sorted(self.redactor.counts.items()):
                b.add("fastmango_log_redactions_total", n, rule=rule)
        if self.index is not None:
            b.add("fastmango_log_index_bytes", self.index.size_bytes())
        if self.tailer is not None:
            b.add("fastmango_log_files", sum(1 for s in self.tailer.streams.values() if s.fd))
            b.add("fastmango_log_behind_bytes", sum(self.behind.values()))
        return b.samples

    async def _publish_loop(self) -> None:
        assert self.host is not None
        interval = self.settings.collectors.interval
        while True:
            try:
                self.host.publish("logs", self.samples(self.host.clock()))
            except Exception as exc:
                log.error("logs: publishing series failed: %s", exc)
            await asyncio.sleep(min(interval, 10.0))

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "paths": list(self.cfg.paths),
            "ingested": self.ingested,
            "dropped": self.dropped,
            "last_error": self.last_error,
        }
        if self._thread is not None:
            out["thread_id"] = self._thread.native_id
        if self.tailer is not None:
            behind = self.behind
            out["files"] = [
                {
                    "name": s.name,
                    "offset": s.asm.committed,
                    "open": s.fd is not None,
                    "behind": behind.get(s.fp, 0),
                }
                for s in list(self.tailer.streams.values())
            ]
            out["behind_bytes"] = sum(behind.values())
        if self.index is not None:
            out["index"] = self.index.stats()
        if self.redactor is not None:
            out["redactions"] = dict(self.redactor.counts)
        return out


def create(settings: Settings) -> Service | None:
    """The service for these settings, or None when they leave it off (no paths: the
    agent adds it when it runs the app, ``fastmango agent -- CMD``)."""
    if not settings.logs.enabled or not settings.logs.paths:
        return None
    return LogsService(settings)
