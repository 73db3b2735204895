"""Running a query over the log index: the FTS5 expression narrows the candidates
(newest first, within the time range's id bounds), each candidate is checked exactly
where the index alone cannot decide (regexes, field comparisons, NOT of those), and
results stream out so exports run in constant memory."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from fastmango.agent.logs.index import Block, Line, LogIndex
from fastmango.agent.logs.query import Node, Record, matches, needs_check, to_fts

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

    @classmethod
    def of(cls, node: Node | None, t0: float | None = None, t1: float | None = None) -> Plan:
        return cls(node, to_fts(node), needs_check(node), t0, t1)

    def accepts(self, line: Line) -> bool:
        if self.t0 is not None and line.ts < self.t0:
            return False
        if self.t1 is not None and line.ts > self.t1:
            return False
        if self.check:
            return matches(self.node, Record(line.text, line.level, line.source))
        return True


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
    index: LogIndex, plan: Plan, newest_first: bool = True, scanned: list[int] | None = None
) -> Iterator[Line]:
    """Every matching line, newest first (or oldest first). ``scanned[0]`` counts the
    candidates looked at."""
    lo, hi = _id_bounds(index, plan.t0, plan.t1)
    if lo > hi:
        return
    counter = scanned if scanned is not None else [0]
    if plan.expr is None:
        for first, _last, _tmin, _tmax in index.blocks_in(lo, hi, plan.t0, plan.t1, newest_first):
            b = index.block(first)
            n = len(b.texts)
            for i in range(n - 1, -1, -1) if newest_first else range(n):
                counter[0] += 1
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
                counter[0] += 1
                line = index.line(block, rid - block.first_id)
                if plan.accepts(line):
                    yield line
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # dropped by retention meanwhile
                continue
            raise


def count(index: LogIndex, plan: Plan, max_scan: int = 2_000_000) -> tuple[int, bool]:
    """(number of matching lines, exact?). Pure index queries are counted in the index;
    the rest by checking candidates, up to ``max_scan`` of them."""
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
    scanned = [0]
    n = 0
    for _line in lines(index, plan, True, scanned):
        n += 1
        if scanned[0] >= max_scan:
            return n, False
    return n, scanned[0] < max_scan


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
