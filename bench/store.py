"""How big the state store gets, and how fast it answers, after weeks of history.

Builds 30 days (``--days``) of 1-minute roll-ups for as many series as the agent's real
collectors return on this machine, with value dynamics taken from a real request trace
(counters grow by the trace, gauges follow it with noise, constant series stay
constant — in the proportions the real collectors show), and writes them side by side:

* fastmango's layout: one zlib block of 60 minutes per series-hour (``rollup.py``);
* the naive layout: one SQLite row (min, avg, max, last, count) per series-minute.

Prints bytes on disk, bytes per series-day, the projection against the 200 MB default
bound, and the time to answer a 7-day query of one series at ≤ 1000 points.

    python bench/store.py [--days 30] [--trace ../shared/traces/nasa_jul95_1min.csv] [--json]
"""

from __future__ import annotations

import argparse
import csv
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._util import emit, median, progress, table  # noqa: E402
from fastmango.agent import catalogue, rollup  # noqa: E402
from fastmango.agent.store import Store  # noqa: E402
from fastmango.collector.container import ContainerCollector  # noqa: E402
from fastmango.collector.host import HostCollector  # noqa: E402

DEFAULT_TRACE = ROOT.parent / "shared" / "traces" / "nasa_jul95_1min.csv"


def real_series() -> list[tuple[str, str]]:
    """(name, behaviour) of every series the real collectors return here."""
    kinds = catalogue.index()
    first: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    collectors = [HostCollector(), ContainerCollector()]
    for c in collectors:
        c.start()
        for s in c.collect():
            first[(s.name, s.labels)] = s.value
    time.sleep(1.0)
    out = []
    for c in collectors:
        for s in c.collect():
            before = first.get((s.name, s.labels))
            if kinds[s.name].kind == "counter":
                out.append((s.name, "counter"))
            elif before is not None and before == s.value:
                out.append((s.name, "constant"))
            else:
                out.append((s.name, "gauge"))
        c.close()
    return out


def load_trace(path: Path) -> list[float]:
    with path.open() as f:
        return [float(row["value"]) for row in csv.DictReader(f)]


def minutes_for(kind: str, trace: list[float], offset: int, n: int, rng: random.Random):  # type: ignore[no-untyped-def]
    """Per-minute (min, sum, max, last, count) at a 10 s interval (6 samples a minute)."""
    total = rng.random() * 1e9
    scale = rng.choice([1.0, 37.5, 1234.5])
    level = rng.random() * 1e6
    for i in range(n):
        load = trace[(offset + i) % len(trace)]
        if kind == "counter":
            lo = total
            total += load * scale
            yield (lo, 6 * (lo + total) / 2, total, total, 6)
        elif kind == "gauge":
            v = load * scale + rng.gauss(0, max(1.0, load * 0.05))
            yield (v - abs(rng.gauss(0, 1)), 6 * v, v + abs(rng.gauss(0, 1)), v, 6)
        else:
            yield (level, 6 * level, level, level, 6)


def build(days: int, series: list[tuple[str, str]], trace: list[float], workdir: Path) -> dict:  # type: ignore[type-arg]
    rng = random.Random(42)
    hours = days * 24
    t0 = 1_700_000_000 // 3600 * 3600
    blocks_db = workdir / "fastmango.db"
    rows_db = workdir / "rows.db"
    store = Store(blocks_db)
    store.open()
    store.close()
    fm = sqlite3.connect(blocks_db)
    naive = sqlite3.connect(rows_db)
    naive.execute("PRAGMA journal_mode = WAL")
    naive.execute(
        "CREATE TABLE rollup (series_id INTEGER, ts INTEGER, min REAL, avg REAL, max REAL, "
        "last REAL, count INTEGER, PRIMARY KEY (series_id, ts)) WITHOUT ROWID"
    )
    fm.executemany(
        "INSERT INTO series VALUES (?, ?, '{}', ?)",
        [
            (i + 1, f"{name}#{i}", "counter" if kind == "counter" else "gauge")
            for i, (name, kind) in enumerate(series)
        ],
    )
    began = time.perf_counter()
    for sid, (_, kind) in enumerate(series, start=1):
        gen = minutes_for(kind, trace, rng.randrange(len(trace)), hours * 60, rng)
        blocks, rows = [], []
        for h in range(hours):
            hour = t0 + 3600 * h
            minutes = []
            for m in range(60):
                lo, total, hi, last, n = next(gen)
                minutes.append((hour + 60 * m, lo, total, hi, last, n))
                rows.append((sid, hour + 60 * m, lo, total / n, hi, last, n))
            blocks.append(
                (sid, hour, rollup.encode(rollup.merge(rollup.decode(None), minutes, hour)))
            )
        fm.executemany("INSERT INTO rollup_1m (series_id, hour, data) VALUES (?, ?, ?)", blocks)
        naive.executemany("INSERT INTO rollup VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        fm.commit()
        naive.commit()
        if sid % 20 == 0:
            progress(f"{sid}/{len(series)} series written ({time.perf_counter() - began:.0f} s)")
    for db in (fm, naive):
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    return {"t0": t0, "blocks_db": blocks_db, "rows_db": rows_db}


def query_times(path: Path, t0: int, days: int, n_series: int) -> list[float]:
    class Clock:
        def __call__(self) -> float:
            return float(t0 + days * 86400)

    store = Store(path, clock=Clock())
    times = []
    for sid in range(1, min(n_series, 20) + 1):
        name = (
            sqlite3.connect(path)
            .execute("SELECT name FROM series WHERE id = ?", (sid,))
            .fetchone()[0]
        )
        began = time.perf_counter()
        out = store.query(name, start=t0 + (days - 7) * 86400, end=t0 + days * 86400)
        times.append(time.perf_counter() - began)
        assert out["series"] and len(out["series"][0]["points"]) <= 1000
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    progress("reading the real collectors' series")
    series = real_series()
    trace = load_trace(args.trace)
    counts = {k: sum(1 for _, b in series if b == k) for k in ("counter", "gauge", "constant")}
    progress(f"{len(series)} series ({counts}); writing {args.days} days of roll-ups")
    with tempfile.TemporaryDirectory() as tmp:
        built = build(args.days, series, trace, Path(tmp))
        fm_bytes = built["blocks_db"].stat().st_size
        rows_bytes = built["rows_db"].stat().st_size
        progress("querying 7 days of single series")
        q = query_times(built["blocks_db"], built["t0"], args.days, len(series))
    series_days = len(series) * args.days
    figures = {
        "series": len(series),
        "days": args.days,
        "fastmango_bytes": fm_bytes,
        "row_per_minute_bytes": rows_bytes,
        "fastmango_bytes_per_series_day": fm_bytes / series_days,
        "row_per_minute_bytes_per_series_day": rows_bytes / series_days,
        "ratio_rows_to_fastmango": rows_bytes / fm_bytes,
        "days_within_200MB": 200e6 / (fm_bytes / args.days),
        "query_7d_median_ms": median(q) * 1000,
        "query_7d_max_ms": max(q) * 1000,
    }
    rows = [
        ["fastmango (hour blocks, zlib)", fm_bytes / 1e6, fm_bytes / series_days,
         200e6 / (fm_bytes / args.days)],
        ["one row per minute", rows_bytes / 1e6, rows_bytes / series_days,
         200e6 / (rows_bytes / args.days)],
    ]  # fmt: skip
    text = "\n".join(
        [
            f"{len(series)} series from this machine's collectors {counts}, "
            f"{args.days} days of 1-minute roll-ups, dynamics from {args.trace.name}",
            "",
            table(["layout", "MB on disk", "bytes/series-day", "days within 200 MB"], rows),
            "",
            "7-day query of one series (≤ 1000 points): "
            f"median {figures['query_7d_median_ms']:.1f} ms, "
            f"max {figures['query_7d_max_ms']:.1f} ms over {len(q)} series",
            f"goal: ≥ 30 days within the 200 MB default: "
            f"{'pass' if figures['days_within_200MB'] >= 30 else 'FAIL'}",
        ]
    )
    emit(figures, text, args.json)


if __name__ == "__main__":
    main()
