"""From bytes read at an offset to whole events, and the offset that is safe to persist.

An :class:`Assembler` belongs to one followed file. It splits what was read into lines
(a trailing piece without newline waits for the rest), decodes container formats and
joins partial records, and joins multiline events: a line that starts with white space,
or that continues a traceback (``Traceback (most recent call last):``, ``Caused by:``,
``ValueError: …`` after frames, ``... 12 more``) belongs to the event before it. The last
event stays open until a line starts a new one or ``timeout`` seconds pass without
one. :attr:`Assembler.committed` is the offset of the first byte not yet handed out:
persisting it with the events makes a restart resume without loss or repeats.
"""

from __future__ import annotations

import re
from itertools import accumulate, repeat

from fastmango.collector.logs import formats

_CONT = re.compile(
    r"(?:Traceback \(most recent call last\):|Caused by[: ]|During handling of the above"
    r"|The above exception was|\.\.\. \d+ (?:more|common frames omitted)"
    r"|[A-Za-z_][\w.$]*(?:Error|Exception|Exit|Interrupt|Warning)(?::|$)|at [\w$.<>]+\()"
)


_CONT_NL = re.compile(r"\n(?=[ \t]|(?:" + _CONT.pattern + "))")

#: one whole event: (text, the runtime's time (container formats) or None, offset of its
#: first byte, offset past its last byte) — a plain tuple, made by the million
Event = tuple[str, float | None, int, int]


def is_continuation(text: str) -> bool:
    return bool(text) and (text[0] in " \t" or _CONT.match(text) is not None)


class Assembler:
    def __init__(
        self,
        offset: int = 0,
        fmt: str = "auto",
        multiline: bool = True,
        timeout: float = 0.25,
        max_event: int = 256 * 1024,
    ) -> None:
        self.fmt = fmt
        self.multiline = multiline
        self.timeout = timeout
        self.max_event = max_event
        self._tail = b""  # bytes after the last newline
        self._tail_start = offset
        self._piece: list[str] = []  # partial container records
        self._piece_start = -1
        self._piece_ts: float | None = None
        self._open: list[str] = []  # lines of the open event
        self._open_start = -1
        self._open_end = -1
        self._open_ts: float | None = None
        self._open_size = 0
        self._open_at = 0.0
        self._ready: list[Event] = []

    @property
    def committed(self) -> int:
        """Offset of the first byte not handed out by :meth:`take`."""
        if self._open:
            return self._open_start
        if self._piece:
            return self._piece_start
        return self._tail_start

    @property
    def position(self) -> int:
        """Offset just past everything fed."""
        return self._tail_start + len(self._tail)

    @property
    def pending(self) -> bool:
        return bool(self._open)

    def feed(self, data: bytes, now: float) -> None:
        """Add bytes read at :attr:`position`."""
        if not data:
            return
        buf = self._tail + data if self._tail else data
        base = self._tail_start
        last_nl = buf.rfind(b"\n")
        if last_nl < 0:
            self._tail = buf
            if len(buf) > self.max_event:  # an endless line: cut it
                self._tail = b""
                self._tail_start = base + len(buf)
                self._line(buf, base, base + len(buf), now)
            return
        body = buf[:last_nl]
        self._tail = buf[last_nl + 1 :]
        self._tail_start = base + last_nl + 1
        if self.fmt == "auto":
            first = body.split(b"\n", 1)[0].decode("utf-8", "replace")
            self.fmt = formats.detect(first)
        if (
            self.fmt == "raw"
            and not self._piece
            and body.isascii()
            and b"\r" not in body
            and b"\x00" not in body
        ):
            self._bulk(body.decode("ascii"), base, now)
            return
        pos = 0
        for piece in body.split(b"\n"):
            end = pos + len(piece) + 1
            self._line(piece, base + pos, base + end, now)
            pos = end

    def _bulk(self, text: str, base: int, now: float) -> None:
        """Many plain ASCII lines at once: events built in C-speed loops unless the
        chunk holds continuation lines."""
        lines = text.split("\n")
        ends = list(accumulate(map(len, lines), lambda a, b: a + b + 1, initial=base - 1))[1:]
        ends = [e + 1 for e in ends]
        starts = [base, *ends[:-1]]
        if self.multiline and (_CONT_NL.search(text) is not None or is_continuation(lines[0])):
            for line, a, z in zip(lines, starts, ends, strict=True):
                self._logical(line, None, a, z, now)
            return
        if self._open:
            self._flush_open()
        last = lines[-1]
        if not self.multiline or last.startswith("{"):
            self._ready.extend(zip(lines, repeat(None), starts, ends))
            return
        self._ready.extend(zip(lines[:-1], repeat(None), starts[:-1], ends[:-1]))
        self._open = [last]
        self._open_start, self._open_end, self._open_ts = starts[-1], ends[-1], None
        self._open_size = len(last)
        self._open_at = now

    def finish(self, now: float) -> None:
        """The input ended: a last line without its newline counts as whole."""
        if self._tail:
            tail, self._tail = self._tail, b""
            self._line(tail, self._tail_start, self._tail_start + len(tail), now)
            self._tail_start += len(tail)

    def _line(self, raw: bytes, start: int, end: int, now: float) -> None:
        text = raw.decode("utf-8", "replace")
        if text.endswith("\r"):
            text = text[:-1]
        if "\x00" in text:
            text = text.replace("\x00", "")
        if self.fmt == "auto":
            self.fmt = formats.detect(text)
        ts = None
        if self.fmt != "raw":
            piece = formats.decode(self.fmt, text)
            ts = piece.ts
            if not piece.complete:
                if not self._piece:
                    self._piece_start, self._piece_ts = start, piece.ts
                self._piece.append(piece.text)
                return
            text = piece.text
            if self._piece:
                self._piece.append(text)
                text = "".join(self._piece)
                start, ts = self._piece_start, self._piece_ts
                self._piece = []
        self._logical(text, ts, start, end, now)

    def _logical(self, text: str, ts: float | None, start: int, end: int, now: float) -> None:
        if self._open:
            if self.multiline and self._open_size < self.max_event and is_continuation(text):
                self._open.append(text)
                self._open_end = end
                self._open_size += len(text)
                self._open_at = now
                return
            self._flush_open()
        if not self.multiline or text.startswith("{"):
            self._ready.append((text, ts, start, end))
            return
        self._open = [text]
        self._open_start, self._open_end, self._open_ts = start, end, ts
        self._open_size = len(text)
        self._open_at = now

    def _flush_open(self) -> None:
        text = self._open[0] if len(self._open) == 1 else "\n".join(self._open)
        self._ready.append((text, self._open_ts, self._open_start, self._open_end))
        self._open = []

    def deadline(self) -> float | None:
        """When the open event will be handed out if nothing follows it."""
        return self._open_at + self.timeout if self._open else None

    def take(self, now: float, final: bool = False) -> list[Event]:
        """The events that are whole now (``final``: the open one too)."""
        if self._open and (final or now - self._open_at >= self.timeout):
            self._flush_open()
        out, self._ready = self._ready, []
        return out
