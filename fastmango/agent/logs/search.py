"""Running a query over the log index: the FTS5 expression narrows the candidates
(newest first, within the time range's id bounds), each candidate is checked exactly
where the index alone cannot decide (regexes, field comparisons, NOT of those), and
results stream out so exports run in constant memory."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from fastmango.agent.logs.index import Block, Line, LogIndex
from fastmango.agent.logs.query import (
    Node,
    Record,
    block_filter,
    matches,
    needs_check,
    to_fts,
)

BIG = 1 << 62
#: an FTS5 expression that is one quoted ASCII word: one token, as the tokenizer writes it
_ONE_WORD = re.compile(r'"([A-Za-z0-9]+)"')


@dataclass
class Plan:
    node: Node | None
    expr: str | None
    check: bool
    t0: float | None
    t1: float | None
    #: bytes every match holds: a block whose text lacks them is skipped undecoded
    prefilter: bytes | None = None

    @classmethod
    def of(cls, node: Node | None, t0: float | None = None, t1: float | None = None) -> Plan:
        return cls(node, to_fts(node), needs_check(node), t0, t1, block_filter(node))

    def accepts(self, line: Line) -> bool:
        if self.t0 is not None and line.ts < self.t0:
            return False
        if self.t1 is not None and line.ts > self.t1:
            return False
        if self.check:
            return matches(self.node, Record(line.text, line.level, line.source))
        return True


@dataclass
class Budget:
    """How much one search may look at line by line (the candidates the index cannot
    decide: regexes, field comparisons, no words at all): ``max_scan`` candidates and
    ``seconds`` of time. Once spent, ``stopped`` is set and the answer is partial."""

    max_scan: int = 2_000_000
    seconds: float | None = None
    scanned: int = 0
    stopped: bool = False
    _deadline: float = field(default=float("inf"), repr=False)

    def __post_init__(self) -> None:
        if self.seconds is not None:
            self._deadline = time.monotonic() + self.seconds

    def alive(self) -> bool:
        """Whether time is left (checked before each block: skipping blocks costs too)."""
        if time.monotonic() > self._deadline:
            self.stopped = True
        return not self.stopped

    def spend(self) -> bool:
        """Count one candidate; False once the budget is spent."""
        self.scanned += 1
        if self.scanned >= self.max_scan or (
            self.scanned & 1023 == 0 and time.monotonic() > self._deadline
        ):
            self.stopped = True
        return not self.stopped


def _id_bounds(index: LogIndex, t0: float | None, t1: float | None) -> tuple[int, int]:
    db = index._reader()
    lo, hi = 1, BIG
    if t0 is not None:
        r = db.execute("SELECT min(first_id) FROM blocks WHERE t_max>=?", (t0,)).fetchone()[0]
        lo = r if r is not None else BIG
    if t1 is not None:
        r = db.execute("SELECT max(last_id) FROM blocks WHERE t_min<=?", (t1,)).fetchone()[0]
        hi = r if r is not None else 0
    return lo, hi


def lines(
    index: LogIndex, plan: Plan, newest_first: bool = True, budget: Budget | None = None
) -> Iterator[Line]:
    """Every matching line, newest first (or oldest first), until ``budget`` (if any)
    is spent."""
    lo, hi = _id_bounds(index, plan.t0, plan.t1)
    if lo > hi:
        return
    spend = budget.spend if budget is not None else _always
    if plan.expr is None:
        for first, _last, _tmin, _tmax in index.blocks_in(lo, hi, plan.t0, plan.t1, newest_first):
            if budget is not None and not budget.alive():
                return
            if plan.prefilter is None:
                b = index.block(first)
            elif (held := index.block_holding(first, plan.prefilter)) is not None:
                b = held
            else:
                continue  # no line of this block can match
            n = len(b.texts)
            for i in range(n - 1, -1, -1) if newest_first else range(n):
                if not spend():
                    return
                line = index.line(b, i)
                if line.text and plan.accepts(line):  # an empty text: erased by purge
                    yield line
        return
    segs = index.segments()
    if not newest_first:
        segs.reverse()
    for seg, s_lo, s_hi in segs:
        a, z = max(lo, s_lo), min(hi, s_hi)
        if a > z:
            continue
        block: Block | None = None
        b_last = -1
        try:
            rowids = index.fts_rowids(seg, plan.expr, a, z, newest_first)
            for rid in rowids:
                if block is None or not block.first_id <= rid <= b_last:
                    try:
                        first, b_last = index.block_of(rid)
                        block = index.block(first)
                    except KeyError:
                        continue
                if not spend():
                    return
                line = index.line(block, rid - block.first_id)
                if plan.accepts(line):
                    yield line
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # dropped by retention meanwhile
                continue
            raise


def _always() -> bool:
    return True


def count(index: LogIndex, plan: Plan, budget: Budget | None = None) -> tuple[int, bool]:
    """(number of matching lines, exact?). Pure index queries are counted in the index,
    no query at all from the blocks' extents; the rest by checking candidates, until
    ``budget`` is spent (then the count is a lower bound)."""
    if plan.expr is None and not plan.check:
        return _count_all(index, plan), True
    if plan.expr is not None and not plan.check:
        total = 0
        segs = index.segments()
        if plan.t0 is None and plan.t1 is None:
            for seg, _lo, hi in segs:
                total += _whole_segment_count(index, seg, plan.expr, hi)
            return total, True
        lo, hi = _id_bounds(index, plan.t0, plan.t1)
        if lo > hi:
            return 0, True
        inner: list[list[int]] = []
        edge: list[tuple[int, int]] = []
        for first, last, tmin, tmax in index.blocks_in(lo, hi, plan.t0, plan.t1, False):
            inside = (plan.t0 is None or tmin >= plan.t0) and (plan.t1 is None or tmax <= plan.t1)
            if inside:
                if inner and inner[-1][1] == first - 1:
                    inner[-1][1] = last
                else:
                    inner.append([first, last])
            else:
                edge.append((first, last))
        for a, z in inner:
            for seg, lo_s, hi_s in segs:
                if lo_s <= z and hi_s >= a:
                    total += _safe_count(index, seg, plan.expr, max(a, lo_s), min(z, hi_s))
        for a, z in edge:
            sub = Plan(plan.node, plan.expr, False, plan.t0, plan.t1)
            for seg, lo_s, hi_s in segs:
                if lo_s <= z and hi_s >= a:
                    for rid in index.fts_rowids(seg, plan.expr, max(a, lo_s), min(z, hi_s)):
                        b = index.block(a)
                        if sub.accepts(index.line(b, rid - a)):
                            total += 1
        return total, True
    budget = budget if budget is not None else Budget()
    n = sum(1 for _line in lines(index, plan, True, budget))
    return n, not budget.stopped


def _count_all(index: LogIndex, plan: Plan) -> int:
    """Every line within the time range: whole blocks by their extent (less the lines a
    purge erased), the blocks at its edges line by line."""
    lo, hi = _id_bounds(index, plan.t0, plan.t1)
    if lo > hi:
        return 0
    erased = index.erased()
    total = 0
    for first, last, tmin, tmax in index.blocks_in(lo, hi, plan.t0, plan.t1, False):
        if (plan.t0 is None or tmin >= plan.t0) and (plan.t1 is None or tmax <= plan.t1):
            total += last - first + 1 - erased.get(first, 0)
            continue
        b = index.block(first)
        for i, text in enumerate(b.texts):
            if text and plan.accepts(index.line(b, i)):
                total += 1
    return total


def _whole_segment_count(index: LogIndex, seg: int, expr: str, hi: int) -> int:
    """Matches in a whole segment: the count cached for its ids so far, plus the ids
    indexed since (the index only grows; retention drops whole segments)."""
    key = (seg, expr)
    with index._cache_lock:
        cached = index.counts.get(key)
    done, n = cached if cached is not None else (0, 0)
    word = _ONE_WORD.fullmatch(expr)
    if cached is None and word is not None:  # the index's vocabulary counts it
        got = index.word_count(seg, word[1].lower())
        if got is None:  # dropped by retention meanwhile
            return 0
        hi, n = got
    elif done < hi:
        n += _safe_count(index, seg, expr, done + 1, hi)
    with index._cache_lock:
        index.counts[key] = (hi, n)
        index.counts.move_to_end(key)
        while len(index.counts) > 512:
            index.counts.popitem(last=False)
    return n


def _safe_count(index: LogIndex, seg: int, expr: str, lo: int, hi: int) -> int:
    try:
        return index.fts_count(seg, expr, lo, hi)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
