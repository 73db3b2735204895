"""The SQLite state store: writes, roll-ups, retention, size bound, queries, kill -9."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from array import array
from pathlib import Path

import pytest

from fastmango.agent import rollup
from fastmango.agent.store import Retention, Store, parse_match
from fastmango.series import Sample


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


KINDS = {"g": "gauge", "c_total": "counter"}
T0 = 1_699_999_980.0  # a whole minute


def batch(t: float, value: float, name: str = "g", **labels: str) -> list[Sample]:
    return [Sample(name, tuple(sorted(labels.items())), value, t)]


@pytest.fixture
def store(tmp_path: Path):
    clock = Clock(T0)
    s = Store(tmp_path / "state.db", Retention(raw_seconds=3600, maintenance_every=3600), clock)
    s.open()
    s.clock_ = clock  # type: ignore[attr-defined]
    yield s
    s.close()


def test_raw_query_averages_gauges_per_step(store: Store) -> None:
    for i in range(120):  # two minutes at 1 s
        store.append(batch(T0 + i, float(i), cpu="0"), KINDS)
        store.append(batch(T0 + i, 1000.0, cpu="1"), KINDS)
    store.flush()
    store.clock_.t = T0 + 120  # type: ignore[attr-defined]
    out = store.query("g", parse_match('cpu="0"'), start=T0, end=T0 + 119, step=60)
    assert out["source"] == "raw"
    [series] = out["series"]
    assert series["labels"] == {"cpu": "0"}
    assert series["points"] == [[T0, 29.5], [T0 + 60, 89.5]]


def test_query_never_exceeds_1000_points(store: Store) -> None:
    for i in range(3000):
        store.append(batch(T0 + i, float(i)), KINDS)
    store.flush()
    store.clock_.t = T0 + 3000  # type: ignore[attr-defined]
    out = store.query("g", start=T0, end=T0 + 3000, step=1)
    assert len(out["series"][0]["points"]) <= 1000


def test_rollup_keeps_min_avg_max_last_and_serves_old_ranges(store: Store) -> None:
    for i in range(180):
        store.append(batch(T0 + i, float(i % 60)), KINDS)
        store.append(batch(T0 + i, float(i), name="c_total"), KINDS)
    store.flush()
    store.clock_.t = T0 + 180  # type: ignore[attr-defined]
    store.maintain_now()
    with sqlite3.connect(store.path) as db:
        blocks = db.execute(
            "SELECT r.hour, r.data FROM rollup_1m r JOIN series s ON s.id = r.series_id "
            "WHERE s.name = 'g' ORDER BY r.hour"
        ).fetchall()
    db.close()
    minutes = []
    for hour, data in blocks:
        block = rollup.decode(data)
        for k in range(60):
            lo, total, hi, last, n = block[k * 5 : k * 5 + 5]
            if n:
                minutes.append((hour + 60 * k, lo, total / n, hi, last, n))
    assert minutes == [(int(T0) + 60 * k, 0.0, 29.5, 59.0, 59.0, 60) for k in range(3)]
    # a range older than the raw retention is answered from the roll-ups
    store.clock_.t = T0 + 2 * 86400  # type: ignore[attr-defined]
    out = store.query("g", start=T0, end=T0 + 180)
    assert out["source"] == "rollup_1m"
    assert out["series"][0]["points"] == [[T0 + 60 * k, 29.5] for k in range(3)]
    out = store.query("c_total", start=T0, end=T0 + 180, rate=True)
    assert [p[1] for p in out["series"][0]["points"]] == [1.0, 1.0]


def test_counter_rate_handles_reset(store: Store) -> None:
    values = [0, 10, 20, 5, 15]  # reset after 20
    for i, v in enumerate(values):
        store.append(batch(T0 + 10 * i, v, name="c_total"), KINDS)
    store.flush()
    store.clock_.t = T0 + 60  # type: ignore[attr-defined]
    out = store.query("c_total", start=T0, end=T0 + 50, step=10, rate=True)
    assert [p[1] for p in out["series"][0]["points"]] == [1.0, 1.0, 0.5, 1.0]


def test_retention_prunes_raw_and_rollups(tmp_path: Path) -> None:
    clock = Clock(T0)
    s = Store(tmp_path / "s.db", Retention(3600, 86400, 10**9, 3600), clock)
    s.open()
    try:
        for i in range(0, 7200, 10):
            s.append(batch(T0 + i, 1.0), KINDS)
        s.flush()
        clock.t = T0 + 7200
        s.maintain_now()
        with sqlite3.connect(s.path) as db:
            oldest_raw = db.execute("SELECT min(ts) FROM samples").fetchone()[0]
        db.close()
        assert oldest_raw >= (T0 + 3600) * 1000
        # both hours were rolled up before the raw hour was dropped
        clock.t = T0 + 2 * 86400 - 3600
        points = s.query("g", start=T0, end=T0 + 7200, step=60)["series"][0]["points"]
        assert len(points) == 120
        clock.t = T0 + 86400 + 7200 + 3600  # retention works in whole hours
        s.maintain_now()
        with sqlite3.connect(s.path) as db:
            assert db.execute("SELECT count(*) FROM rollup_1m").fetchone()[0] == 0
        db.close()
    finally:
        s.close()


def test_size_bound_drops_oldest_rollups_first(tmp_path: Path) -> None:
    clock = Clock(T0)
    s = Store(tmp_path / "s.db", Retention(3600, 40 * 86400, 3_000_000, 3600), clock)
    s.open()
    rng = random.Random(7)
    try:
        # 20 series x 10 days of noisy hourly blocks, as weeks of running would leave
        hour0 = int(T0) // 3600 * 3600
        rows = [
            (sid, hour0 + 3600 * h,
             rollup.encode(array("d", (rng.random() for _ in range(300)))))
            for sid in range(1, 21) for h in range(240)
        ]  # fmt: skip
        with sqlite3.connect(s.path) as db:
            db.executemany("INSERT INTO series VALUES (?, ?, '{}', 'gauge')",
                           [(i, f"m{i}") for i in range(1, 21)])  # fmt: skip
            db.executemany("INSERT INTO rollup_1m (series_id, hour, data) VALUES (?, ?, ?)", rows)
        db.close()
        assert s.size_bytes() > 4_000_000
        clock.t = T0 + 10 * 86400
        s.maintain_now()
        with sqlite3.connect(s.path) as db:
            oldest, newest = db.execute("SELECT min(hour), max(hour) FROM rollup_1m").fetchone()
            pragmas = ("page_count", "freelist_count", "page_size")
            pages, free, size = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in pragmas)
        db.close()
        assert (pages - free) * size <= 3_000_000
        assert newest == hour0 + 3600 * 239  # the newest data is kept
        assert oldest > T0 + 86400  # the oldest days went
        assert s.size_bytes() < 4_000_000  # and the file shrank (incremental vacuum)
    finally:
        s.close()


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('cpu="0"', {"cpu": "0"}, True),
        ('{cpu="0", mode="idle"}', {"cpu": "0", "mode": "user"}, False),
        ('mode!="idle"', {"mode": "user"}, True),
        ('cpu=~"1|2"', {"cpu": "2"}, True),
        ('cpu!~"1|2"', {"cpu": "2"}, False),
        ("", {"x": "y"}, True),
    ],
)
def test_matchers(text: str, labels: dict[str, str], expected: bool) -> None:
    assert all(m.matches(labels) for m in parse_match(text)) is expected


@pytest.mark.parametrize("text", ["cpu=0", 'cpu="0" mode', 'cpu=~"("', '="x"'])
def test_bad_matchers_say_why(text: str) -> None:
    with pytest.raises(ValueError, match=r"matcher|regular expression"):
        parse_match(text)


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from fastmango.agent.store import Store
    from fastmango.series import Sample
    store = Store(Path(sys.argv[1]))
    store.open()
    i = 0
    while True:
        t = 1_700_000_000 + i
        store.append([Sample(f"m{k}", (("i", str(k)),), float(i), t) for k in range(200)],
                     {})
        if i % 10 == 9:
            store.flush()
            print(i, flush=True)  # batches 0..i are committed
        i += 1
    """
)


def test_kill_9_during_heavy_writes_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    committed = -1
    assert proc.stdout is not None
    for line in proc.stdout:
        committed = int(line)
        if committed >= 300:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_series = db.execute(
            "SELECT count(*), min(ts), max(ts) FROM samples GROUP BY series_id"
        ).fetchall()
    db.close()
    assert len(per_series) == 200
    for count, lo, hi in per_series:
        assert lo == 1_700_000_000_000
        assert count >= committed + 1  # nothing committed before the kill is missing
        assert count == (hi - lo) // 1000 + 1  # and no gaps
    # and the agent's store opens it again and keeps writing
    s = Store(path)
    s.open()
    s.append([Sample("m0", (("i", "0"),), 1.0, 1_800_000_000)], {})
    s.flush()
    s.close()


def test_events_are_kept_and_listed_newest_first(store: Store) -> None:
    from fastmango.agent import audit

    audit.record(store, who="alice", action="silence", target="HighErrorRatio",
                 result="ok", reason="deploy window, token=abcd1234efgh")  # fmt: skip
    store.append_event("alert", {"rule": "x"}, ts=T0 + 5)
    store.flush()
    events = store.events()
    assert [e["kind"] for e in events] == ["alert", "audit"]
    [rec] = store.events("audit")
    assert rec["data"]["who"] == "alice" and rec["data"]["result"] == "ok"
    assert "abcd1234efgh" not in rec["data"]["reason"]
    assert store.events("alert", since=T0 + 6) == []
