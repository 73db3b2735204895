"""Following log files through rotation: rename, copytruncate, delete-and-recreate.

A followed file is a *stream* named by the fingerprint of its head (a hash of its first
line, up to 1 KiB), as Vector and Filebeat do. Its bytes are read through an open file
descriptor, so a renamed or deleted file is read to its end after the path moved on.

* **rename** (``app.log`` → ``app.log.1``, new ``app.log``): the open descriptor keeps
  the old inode; it is drained, then closed once it stops growing and no path in the
  globs holds it. The new ``app.log`` has another head: a new stream, read from 0.
* **copytruncate**: the inode shrinks below the read position (or its head changes):
  the descriptor is let go; if the copy is in the globs (same head), the rest of the
  stream is read from it at the same offset, so nothing written before the truncation
  is lost. The truncated file gets a new head and starts a new stream.
* **delete and recreate**: as rename.

A path whose head matches a stream already being read through another descriptor is a
copy and is not read twice. Offsets to persist (:meth:`Tailer.checkpoints`) are each
stream's :attr:`Assembler.committed`; a tailer made with those checkpoints resumes there.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from fastmango.collector.logs.multiline import Assembler, Event

HEAD = 1024


def fingerprint(fd: int) -> str | None:
    """Hash of the file's first line (at most 1 KiB); None until that line is whole."""
    try:
        head = os.pread(fd, HEAD, 0)
    except OSError:
        return None
    nl = head.find(b"\n")
    if nl < 0:
        if len(head) < HEAD:
            return None
        nl = HEAD
    return hashlib.blake2b(head[:nl], digest_size=12).hexdigest()


@dataclass
class Stream:
    fp: str
    name: str  # the path it was first seen under
    asm: Assembler
    fd: int | None = None
    dev_ino: tuple[int, int] | None = None
    in_globs: bool = True
    last_growth: float = 0.0
    detached_at: float | None = None
    #: from a checkpoint, not seen since the start: kept an hour (a volume mounted late)
    restored: bool = False
    events: list[Event] = field(default_factory=list)


class Tailer:
    """Follows the files matching ``patterns``; :meth:`poll` reads what is new."""

    def __init__(
        self,
        patterns: list[str],
        *,
        checkpoints: dict[str, tuple[str, int]] | None = None,
        fmt: str = "auto",
        multiline: bool = True,
        multiline_timeout: float = 0.25,
        linger: float = 5.0,
        read_chunk: int = 1 << 20,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.patterns = patterns
        self.fmt = fmt
        self.multiline = multiline
        self.multiline_timeout = multiline_timeout
        self.linger = linger
        self.read_chunk = read_chunk
        self.clock = clock or time.monotonic
        self.streams: dict[str, Stream] = {}
        self.forgotten: list[str] = []
        for fp, (name, off) in (checkpoints or {}).items():
            self.streams[fp] = Stream(
                fp, name, self._assembler(off), detached_at=self.clock(), restored=True
            )
        self.more = False  # a stream had more to read than one chunk

    def _assembler(self, offset: int) -> Assembler:
        return Assembler(offset, self.fmt, self.multiline, self.multiline_timeout)

    def folders(self) -> set[str]:
        """The folders to watch for changes (those of the patterns)."""
        out = set()
        for p in self.patterns:
            d = os.path.dirname(p) or "."
            while glob.has_magic(d):
                d = os.path.dirname(d) or "."
            out.add(os.path.abspath(d))
        return out

    def _paths(self) -> list[str]:
        seen: list[str] = []
        for p in self.patterns:
            for path in sorted(glob.glob(p)):
                if path not in seen and os.path.isfile(path):
                    seen.append(path)
        return seen

    def _close(self, s: Stream) -> None:
        if s.fd is not None:
            with contextlib.suppress(OSError):
                os.close(s.fd)
            s.fd = None
            s.dev_ino = None

    def poll(self) -> list[tuple[Stream, list[Event]]]:
        """Scan the globs, read what is new, and return each stream's whole events."""
        now = self.clock()
        by_inode = {s.dev_ino: s for s in self.streams.values() if s.dev_ino is not None}
        # 1. descriptors whose file was truncated or rewritten no longer hold their stream
        for s in list(self.streams.values()):
            if s.fd is None:
                continue
            try:
                size = os.fstat(s.fd).st_size
            except OSError:
                size = -1
            if size < s.asm.position or fingerprint(s.fd) != s.fp:
                if s.dev_ino is not None:
                    by_inode.pop(s.dev_ino, None)
                self._close(s)
                s.detached_at = now
        # 2. match the paths in the globs to streams
        for s in self.streams.values():
            s.in_globs = False
        for path in self._paths():
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            known = by_inode.get(key)
            if known is not None:
                known.in_globs = True
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            fp = fingerprint(fd)
            found = self.streams.get(fp) if fp else None
            if fp is None or (found is not None and found.fd is not None):
                os.close(fd)  # not whole yet, or a copy of a stream being read
                if found is not None:
                    found.in_globs = True
                continue
            if found is None:
                found = self.streams[fp] = Stream(fp, path, self._assembler(0))
            elif st.st_size < found.asm.position:  # same head, shorter: not our stream's bytes
                os.close(fd)
                continue
            found.fd, found.dev_ino, found.in_globs = fd, key, True
            found.restored = False
            found.detached_at = None
            found.last_growth = now
            by_inode[key] = found
        # 3. read
        self.more = False
        out: list[tuple[Stream, list[Event]]] = []
        for fp, s in list(self.streams.items()):
            if s.fd is not None:
                data = b""
                try:
                    data = os.pread(s.fd, self.read_chunk, s.asm.position)
                except OSError:
                    self._close(s)
                    s.detached_at = now
                if data:
                    s.asm.feed(data, now)
                    s.last_growth = now
                    if len(data) == self.read_chunk:
                        self.more = True
            linger = 3600.0 if s.restored else self.linger
            done = (
                s.fd is None and s.detached_at is not None and now - s.detached_at > linger
            ) or (s.fd is not None and not s.in_globs and now - s.last_growth > self.linger)
            events = s.asm.take(now, final=done)
            if events:
                out.append((s, events))
            if done:
                self._close(s)
                del self.streams[fp]
                self.forgotten.append(fp)
        return out

    def deadline(self) -> float | None:
        """The earliest time an open multiline event is due."""
        ds = [d for s in self.streams.values() if (d := s.asm.deadline()) is not None]
        return min(ds) if ds else None

    def checkpoints(self) -> dict[str, tuple[str, int]]:
        return {fp: (s.name, s.asm.committed) for fp, s in self.streams.items()}

    def behind(self) -> dict[str, int]:
        """Bytes each open stream's file holds past what was handed out (by fingerprint):
        what the writer is ahead of the reader. Zero while the reader keeps up."""
        out: dict[str, int] = {}
        for fp, s in self.streams.items():
            if s.fd is not None:
                try:
                    size = os.fstat(s.fd).st_size
                except OSError:
                    continue
                out[fp] = max(0, size - s.asm.committed)
        return out

    def close(self) -> None:
        for s in self.streams.values():
            self._close(s)
