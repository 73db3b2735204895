"""The hourly roll-up blocks: minute summaries, merging, downsampling (pure)."""

from __future__ import annotations

import math

import pytest

from fastmango.agent import rollup

H = 1_700_002_800  # a whole hour


def block_with(minutes: list[rollup.Minute], hour: int = H) -> bytes:
    return rollup.encode(rollup.merge(rollup.decode(None), minutes, hour))


def test_minutes_of_summarises_each_minute() -> None:
    rows = [(H * 1000 + 1000 * i, float(v)) for i, v in enumerate([3, 1, 2])]
    rows.append(((H + 60) * 1000, 9.0))
    assert rollup.minutes_of(rows) == [(H, 1.0, 6.0, 3.0, 2.0, 3), (H + 60, 9.0, 9.0, 9.0, 9.0, 1)]


def test_merge_replaces_minutes_and_keeps_the_others() -> None:
    b = rollup.merge(rollup.decode(None), [(H, 1, 2, 3, 4, 5)], H)
    b = rollup.merge(b, [(H + 120, 6, 7, 8, 9, 1)], H)
    b = rollup.merge(b, [(H, 0, 0, 0, 0, 1)], H)
    assert list(b[0:5]) == [0, 0, 0, 0, 1]
    assert list(b[5:10]) == list(rollup.EMPTY)
    assert list(b[10:15]) == [6, 7, 8, 9, 1]
    assert rollup.decode(rollup.encode(b)) == b


def test_an_empty_hour_compresses_to_almost_nothing() -> None:
    assert len(rollup.encode(rollup.decode(None))) < 60


@pytest.mark.parametrize(
    ("minutes", "start", "end", "step", "counter", "expected"),
    [
        # gauges: bucket average weighted by sample counts; empty buckets are left out
        ([(H, 1, 10, 9, 5, 2), (H + 60, 1, 2, 1, 1, 2)], H, H + 180, 120, False,
         [[H, 3.0]]),
        ([(H, 1, 10, 9, 5, 2), (H + 120, 4, 4, 4, 4, 1)], H, H + 180, 60, False,
         [[H, 5.0], [H + 120, 4.0]]),
        # counters: the highest last value of each bucket
        ([(H, 0, 0, 0, 10, 1), (H + 60, 0, 0, 0, 20, 1), (H + 120, 0, 0, 0, 30, 1)],
         H, H + 180, 120, True, [[H, 20.0], [H + 120, 30.0]]),
        # the range starts mid-hour; buckets align to multiples of the step
        ([(H + 600, 5, 5, 5, 5, 1), (H + 660, 7, 7, 7, 7, 1)], H + 600, H + 720, 60,
         False, [[H + 600, 5.0], [H + 660, 7.0]]),
    ],
)  # fmt: skip
def test_downsample(
    minutes: list[rollup.Minute], start: int, end: int, step: int, counter: bool,
    expected: list[list[float]],
) -> None:  # fmt: skip
    assert rollup.downsample([(H, block_with(minutes))], start, end, step, counter) == expected


def test_downsample_spans_hours_and_missing_blocks() -> None:
    blocks = [
        (H, block_with([(H + 3540, 1, 1, 1, 1, 1)])),
        (H + 7200, block_with([(H + 7200, 3, 3, 3, 3, 1)], H + 7200)),
    ]
    points = rollup.downsample(blocks, H, H + 3 * 3600, 7200, False)
    assert points == [[H - 3600, 1.0], [H + 3600, 3.0]]  # buckets align to the step
    assert not any(math.isinf(v) for _, v in points)
