"""1-minute roll-ups, stored an hour per row: the codec and the downsampling.

A block holds the 60 minutes of one series' hour as float64 quintuples
``(min, sum, max, last, count)``; a minute without samples is ``(inf, 0, -inf, -inf, 0)``
so that plain ``min``/``sum``/``max`` over a run of minutes ignore it. Blocks are
zlib-compressed: constant series shrink to almost nothing, and weeks of history for a
host's ~150 series fit in tens of megabytes (about 600 bytes per series-hour measured,
against ~2,800 bytes as one SQLite row per minute).

Everything here is pure: bytes and tuples in, bytes and points out.
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections.abc import Iterable, Sequence

WIDTH = 5  # min, sum, max, last, count
MINUTES = 60
EMPTY = (math.inf, 0.0, -math.inf, -math.inf, 0.0)
_EMPTY_BLOCK = array("d", EMPTY * MINUTES)

Minute = tuple[int, float, float, float, float, int]  # minute start, min, sum, max, last, n


def minutes_of(rows: Iterable[tuple[int, float]]) -> list[Minute]:
    """Raw ``(ts_ms, value)`` rows in time order → one summary per minute."""
    out: list[Minute] = []
    minute = -1
    lo = hi = total = last = 0.0
    n = 0
    for ts, value in rows:
        m = ts // 60000 * 60
        if m != minute:
            if n:
                out.append((minute, lo, total, hi, last, n))
            minute, lo, hi, total, n = m, value, value, 0.0, 0
        lo = min(lo, value)
        hi = max(hi, value)
        total += value
        last = value
        n += 1
    if n:
        out.append((minute, lo, total, hi, last, n))
    return out


def decode(blob: bytes | None) -> array[float]:
    """A block's 300 floats; ``None`` gives an empty hour."""
    if blob is None:
        return array("d", _EMPTY_BLOCK)
    out = array("d")
    out.frombytes(zlib.decompress(blob))
    return out


def encode(block: array[float]) -> bytes:
    return zlib.compress(block.tobytes(), 6)


def merge(block: array[float], minutes: Iterable[Minute], hour: int) -> array[float]:
    """Write the minutes (all within ``hour``) into the block, replacing what was there."""
    for minute, lo, total, hi, last, n in minutes:
        i = (minute - hour) // 60 * WIDTH
        block[i : i + WIDTH] = array("d", (lo, total, hi, last, float(n)))
    return block


def downsample(
    blocks: Sequence[tuple[int, bytes]],
    start: int,
    end: int,
    step: int,
    counter: bool,
) -> list[list[float]]:
    """Points ``[t, value]`` for buckets of ``step`` seconds (a multiple of 60) over
    [start, end): gauges average their samples, counters keep the highest last value.

    ``blocks`` are ``(hour, blob)`` in time order; hours may be missing.
    """
    first_hour = start // 3600 * 3600
    n_hours = max(0, (end - first_hour + 3599) // 3600)
    dense = array("d", _EMPTY_BLOCK * n_hours)
    for hour, blob in blocks:
        k = (hour - first_hour) // 3600
        if 0 <= k < n_hours:
            dense[k * MINUTES * WIDTH : (k + 1) * MINUTES * WIDTH] = decode(blob)
    sums, counts, lasts = dense[1::WIDTH], dense[4::WIDTH], dense[3::WIDTH]
    points: list[list[float]] = []
    bucket = start // step * step
    while bucket < end:
        a = max(0, (bucket - first_hour) // 60)
        b = min(len(counts), (bucket + step - first_hour) // 60)
        if b > a:
            if counter:
                value = max(lasts[a:b])
                if value != -math.inf:
                    points.append([float(bucket), value])
            else:
                n = sum(counts[a:b])
                if n:
                    points.append([float(bucket), sum(sums[a:b]) / n])
        bucket += step
    return points
