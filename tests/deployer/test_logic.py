"""The pure parts: the health gate's verdicts, picking a rollback target, the lock."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path

import pytest

from fastmango.agent.deploys.lock import EnvLock, all_locks
from fastmango.deployer.errors import LockBusy, NoSuchRelease
from fastmango.deployer.flow import pick_target
from fastmango.deployer.gate import GateState, Thresholds, check
from fastmango.deployer.platform import Release

T = Thresholds(
    max_error_ratio=0.05,
    max_error_ratio_increase=0.01,
    max_p95_ratio=1.5,
    min_p95_increase=0.05,
    min_samples=2,
)


@pytest.mark.parametrize(
    ("before_e", "after_e", "before_p", "after_p", "verdict", "why"),
    [
        ([0.001] * 5, [0.002] * 5, [0.1] * 5, [0.11] * 5, "pass", "within"),
        ([0.001] * 5, [0.30] * 5, [0.1] * 5, [0.1] * 5, "fail", "error ratio 30.00%"),
        # errors high but no worse than before: not this release's fault
        ([0.08] * 5, [0.085] * 5, [0.1] * 5, [0.1] * 5, "pass", "within"),
        ([0.001] * 5, [0.04] * 5, [0.1] * 5, [0.1] * 5, "pass", "within"),  # under the max
        ([0.0] * 5, [0.0] * 5, [0.10] * 5, [0.30] * 5, "fail", "p95 latency 300 ms"),
        # 1.6× but only +16 ms: below min_p95_increase
        ([0.0] * 5, [0.0] * 5, [0.010] * 5, [0.026] * 5, "pass", "within"),
        ([0.0] * 5, [0.5], [0.1] * 5, [0.9], "inconclusive", "fewer than 2"),  # one sample
        ([], [0.30] * 3, [], [0.2] * 3, "fail", "previous release 0.00%"),  # no baseline
        ([0.0] * 5, [0.0, 0.0, 0.9], [0.1] * 5, [0.1] * 3, "pass", "within"),  # median
    ],
)
def test_gate_check(
    before_e: list[float],
    after_e: list[float],
    before_p: list[float],
    after_p: list[float],
    verdict: str,
    why: str,
) -> None:
    c = check(before_e, after_e, before_p, after_p, T)
    assert c.verdict == verdict
    assert any(why in r for r in c.reasons), c.reasons


def test_gate_trips_on_consecutive_failures_only() -> None:
    fail = check([0.0] * 3, [0.5] * 3, [0.1] * 3, [0.1] * 3, T)
    ok = check([0.0] * 3, [0.0] * 3, [0.1] * 3, [0.1] * 3, T)
    unsure = check([0.0] * 3, [], [0.1] * 3, [], T)
    g = GateState(threshold=2)
    assert [g.add(c) for c in (fail, ok, fail, unsure, fail)] == [False, False, False, False, True]


def rel(v: int, state: str, image: str) -> Release:
    return Release(f"id{v}", f"v{v}", image, state, float(v))  # type: ignore[arg-type]


HISTORY = [
    rel(5, "live", "img:5"),
    rel(4, "failed", "img:4"),
    rel(3, "superseded", "img:5"),
    rel(2, "superseded", "img:2"),
    rel(1, "superseded", "img:1"),
]


@pytest.mark.parametrize(
    ("version", "bad", "expected"),
    [
        (None, set(), "v2"),  # skips the failed v4 and v3 (same image as now)
        (None, {"img:2"}, "v1"),  # v2's image was found bad
        ("v1", set(), "v1"),
        ("1", set(), "v1"),
        ("id2", set(), "v2"),
    ],
)
def test_pick_target(version: str | None, bad: set[str], expected: str) -> None:
    target, current = pick_target(HISTORY, version=version, bad_images=bad)
    assert target.version == expected and current is not None and current.version == "v5"


@pytest.mark.parametrize(
    ("version", "message"),
    [("v9", r"no release v9 \(known: v5, v4"), ("v5", "serving now"), ("v4", "never served")],
)
def test_pick_target_refuses(version: str, message: str) -> None:
    with pytest.raises(NoSuchRelease, match=message):
        pick_target(HISTORY, version=version)
    with pytest.raises(NoSuchRelease, match="no earlier healthy release"):
        pick_target([rel(1, "live", "a")])


async def test_lock_is_exclusive_and_waits(tmp_path: Path) -> None:
    path = tmp_path / "deploys.db"
    first = EnvLock(path, "production", action="deploy", who="alice", ttl=5)
    async with first.hold():
        with pytest.raises(LockBusy, match="production is locked: deploy by alice"):
            await EnvLock(path, "production", action="scale", who="scaler").acquire()
        # another environment is independent
        async with EnvLock(path, "staging", action="deploy", who="bob").hold():
            assert {h.env for h in all_locks(path)} == {"production", "staging"}
    waiter = EnvLock(path, "production", action="rollback", who="carol", wait=2)
    async with waiter.hold():
        assert waiter.took_over is None
    assert all_locks(path) == []


def _hold_forever(path: str) -> None:
    import asyncio

    async def main() -> None:
        async with EnvLock(Path(path), "production", action="deploy", who="victim", ttl=1).hold():
            await asyncio.sleep(3600)

    asyncio.run(main())


async def test_lock_of_a_killed_process_expires(tmp_path: Path) -> None:
    path = tmp_path / "deploys.db"
    proc = multiprocessing.get_context("spawn").Process(target=_hold_forever, args=(str(path),))
    proc.start()
    try:
        deadline = time.monotonic() + 20
        while not all_locks(path) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert all_locks(path)[0].who == "victim"
        await asyncio.sleep(1.5)  # renewed while it lives
        with pytest.raises(LockBusy):
            await EnvLock(path, "production", action="deploy", who="next").acquire()
    finally:
        proc.kill()
        proc.join()
    after = EnvLock(path, "production", action="deploy", who="next", wait=3)
    async with after.hold():
        assert after.took_over is not None and after.took_over.who == "victim"
