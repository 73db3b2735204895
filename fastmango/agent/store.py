"""The embedded state store: one SQLite file in WAL mode.

* ``samples``: raw samples at the collection interval, kept ``raw_retention``.
* ``rollup_1m``: 1-minute roll-ups (min, avg, max, last, count), kept ``rollup_retention``;
  one compressed row per series and hour (see :mod:`fastmango.agent.rollup`).
* ``series``: one row per (name, labels), with the family's kind.
* ``events``: timestamped JSON records by kind (audit, alerts, scaling decisions,
  releases). They are never pruned by size: the audit trail outlives metrics.

All writes go through one writer thread fed by a queue: the event loop never waits on
the disk, and SQLite never sees two writers. Each batch is one transaction, so a
``kill -9`` loses at most the batch in flight; WAL with ``synchronous=NORMAL`` keeps the
file consistent. The same thread rolls up finished minutes, prunes by age and keeps the
file under ``max_size`` (oldest roll-ups go first), between batches.

Reads open their own read-only connections, so they never block the writer.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastmango.agent import audit_chain, rollup
from fastmango.errors import StoreError
from fastmango.series import Kind, Sample

log = logging.getLogger("fastmango.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    kind TEXT NOT NULL,
    UNIQUE (name, labels)
);
CREATE TABLE IF NOT EXISTS samples (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,            -- milliseconds since the epoch
    value REAL NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
-- a rowid table: its ~1 kB blobs would spill into overflow pages in a WITHOUT ROWID one
CREATE TABLE IF NOT EXISTS rollup_1m (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    hour INTEGER NOT NULL,          -- start of the hour, seconds since the epoch
    data BLOB NOT NULL,             -- 60 x (min, sum, max, last, count), zlib (rollup.py)
    UNIQUE (series_id, hour)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,               -- seconds since the epoch
    kind TEXT NOT NULL,             -- audit, alert, scaling, release…
    data TEXT NOT NULL              -- JSON object
);
CREATE INDEX IF NOT EXISTS events_kind_ts ON events (kind, ts);
-- the audit trail is append-only: SQLite itself refuses to edit or delete a record
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON events WHEN OLD.kind = 'audit'
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON events WHEN OLD.kind = 'audit'
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
"""

MAX_POINTS = 1000
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


@dataclass(frozen=True)
class Retention:
    raw_seconds: float = 7200.0
    rollup_seconds: float = 35 * 86400.0
    max_bytes: int = 200 * 10**6
    maintenance_every: float = 60.0


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.label, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = re.fullmatch(self.value, got) is not None
        return hit if self.op == "=~" else not hit


def parse_match(text: str) -> list[Matcher]:
    """``mode="idle",cpu=~"0|1"`` (braces optional) → matchers. Raises ValueError."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    out: list[Matcher] = []
    pos = 0
    while pos < len(body) and body[pos:].strip():
        m = _MATCHER.match(body, pos)
        if not m:
            raise ValueError(f'bad label matcher at position {pos}: expected label="value"')
        label, op, raw, _ = m.groups()
        value = raw.encode().decode("unicode_escape")
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regular expression for {label}: {exc}") from None
        out.append(Matcher(label, op, value))
        pos = m.end()
    return out


class Store:
    """The state store. ``open()`` it, ``append()`` batches, ``query()`` series."""

    def __init__(
        self,
        path: Path,
        retention: Retention | None = None,
        clock: Callable[[], float] = time.time,
        queue_batches: int = 1000,
    ) -> None:
        self.path = Path(path)
        self.retention = retention or Retention()
        self.clock = clock
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_batches)
        self._thread: threading.Thread | None = None
        self._ids: dict[tuple[str, str], int] = {}
        self._db: sqlite3.Connection | None = None
        self.dropped_samples = 0
        self.written_samples = 0
        self.last_error: str | None = None
        self._rolled_until = 0  # minute (epoch seconds) up to which roll-ups are complete

    # -- lifecycle -------------------------------------------------------------------
    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes effect on a new file
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA busy_timeout = 5000")
            db.executescript(SCHEMA)
            for sid, name, labels in db.execute("SELECT id, name, labels FROM series"):
                self._ids[(name, labels)] = sid
            row = db.execute("SELECT value FROM meta WHERE key = 'rolled_until'").fetchone()
            self._rolled_until = int(row[0]) if row else 0
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the state store {self.path}: {exc}") from exc
        self._db = db
        self._thread = threading.Thread(target=self._run, name="fastmango-store", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, stop the writer and close the file."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- writing ---------------------------------------------------------------------
    def append(self, samples: list[Sample], kinds: Mapping[str, Kind]) -> None:
        """Queue one batch (one transaction). Never blocks; a full queue drops the batch."""
        if not samples:
            return
        try:
            self._queue.put_nowait((samples, kinds))
        except queue.Full:
            self.dropped_samples += len(samples)

    def append_event(self, kind: str, data: Mapping[str, Any], ts: float | None = None) -> None:
        """Queue one event. Unlike samples, an event is never dropped: this may block."""
        self._queue.put(("event", (self.clock() if ts is None else ts, kind, dict(data))))

    def events(
        self, kind: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The newest events first, optionally of one kind and after ``since``."""
        sql = "SELECT id, ts, kind, data FROM events WHERE 1 = 1"
        args: list[Any] = []
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        if since is not None:
            sql += " AND ts >= ?"
            args.append(since)
        sql += " ORDER BY ts DESC, id DESC LIMIT ?"
        args.append(limit)
        with closing(self._reader()) as db:
            return [
                {"id": i, "ts": ts, "kind": k, "data": json.loads(d)}
                for i, ts, k, d in db.execute(sql, args)
            ]

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every batch queued so far is committed."""
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            raise StoreError("the store writer did not catch up in time")

    def maintain_now(self, timeout: float = 30.0) -> None:
        """Run roll-up and pruning now (tests, shutdown) and wait for it."""
        done = threading.Event()
        self._queue.put(("maintain", done))
        if not done.wait(timeout):
            raise StoreError("store maintenance did not finish in time")

    def _run(self) -> None:
        next_maintenance = time.monotonic() + min(5.0, self.retention.maintenance_every)
        while True:
            wait = max(0.0, next_maintenance - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = ("maintain", None)
            if item is None:
                return
            try:
                if isinstance(item, threading.Event):
                    item.set()
                elif item[0] == "event":
                    self._insert_event(*item[1])
                elif item[0] == "maintain":
                    self._maintain()
                    next_maintenance = time.monotonic() + self.retention.maintenance_every
                    if item[1] is not None:
                        item[1].set()
                else:
                    self._write(*item)
            except sqlite3.Error as exc:  # keep the writer alive; the agent shows the error
                self.last_error = str(exc)
                log.error("state store: %s", exc)

    def _insert_event(self, ts: float, kind: str, data: dict[str, Any]) -> None:
        db = self._db
        assert db is not None
        if kind != "audit":
            text = json.dumps(data, separators=(",", ":"), default=str)
            db.execute("INSERT INTO events (ts, kind, data) VALUES (?, ?, ?)", (ts, kind, text))
            return
        # IMMEDIATE: another process (a CLI command) appending at the same moment waits, so
        # the chain never forks
        db.execute("BEGIN IMMEDIATE")
        try:
            head = db.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
            count, prev = audit_chain.parse_head(head[0] if head else None)
            text, digest = audit_chain.seal(ts, data, prev)
            db.execute("INSERT INTO events (ts, kind, data) VALUES (?, 'audit', ?)", (ts, text))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('audit_head', ?)",
                       (audit_chain.format_head(count + 1, digest),))  # fmt: skip
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def audit_records(self) -> Iterator[tuple[int, float, str]]:
        """Every audit record in the order written: (id, ts, data as stored)."""
        with closing(self._reader()) as db:
            yield from db.execute(
                "SELECT id, ts, data FROM events WHERE kind = 'audit' ORDER BY id"
            )

    def audit_head(self) -> str | None:
        with closing(self._reader()) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
        return str(row[0]) if row else None

    def _series_id(self, db: sqlite3.Connection, sample: Sample, kind: str) -> int:
        labels = json.dumps(dict(sample.labels), separators=(",", ":"))
        key = (sample.name, labels)
        sid = self._ids.get(key)
        if sid is None:
            db.execute(
                "INSERT OR IGNORE INTO series (name, labels, kind) VALUES (?, ?, ?)",
                (sample.name, labels, kind),
            )
            sid = db.execute("SELECT id FROM series WHERE name = ? AND labels = ?", key).fetchone()[
                0
            ]
            self._ids[key] = sid
        return sid

    def _write(self, samples: list[Sample], kinds: Mapping[str, Kind]) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN")
        try:
            if not self._rolled_until:  # a new store: roll up from its first minute
                self._rolled_until = int(min(s.timestamp for s in samples) // 60 * 60)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('rolled_until', ?)",
                           (str(self._rolled_until),))  # fmt: skip
            rows = [
                (
                    self._series_id(db, s, kinds.get(s.name, "gauge")),
                    int(s.timestamp * 1000),
                    s.value,
                )
                for s in samples
                if math.isfinite(s.value)
            ]
            db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.written_samples += len(rows)

    # -- maintenance -----------------------------------------------------------------
    def _maintain(self) -> None:
        db = self._db
        assert db is not None
        now = self.clock()
        self._rollup(db, now)
        raw_cut = int((now - self.retention.raw_seconds) * 1000)
        roll_cut = int(now - self.retention.rollup_seconds) // 3600 * 3600
        ids = [r[0] for r in db.execute("SELECT id FROM series")]
        db.execute("BEGIN")
        for sid in ids:  # per series, so each delete walks the primary key
            db.execute("DELETE FROM samples WHERE series_id = ? AND ts < ?", (sid, raw_cut))
            db.execute("DELETE FROM rollup_1m WHERE series_id = ? AND hour < ?", (sid, roll_cut))
        db.execute("COMMIT")
        self._enforce_size(db, ids)
        db.executescript("PRAGMA incremental_vacuum;")  # execute() would free one page only
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _rollup(self, db: sqlite3.Connection, now: float) -> None:
        """Roll up every finished minute not rolled up yet, from the raw samples."""
        until = int(now // 60 * 60)  # start of the current (unfinished) minute
        since = self._rolled_until
        if not since or until <= since:
            return
        writes = []
        for (sid,) in db.execute("SELECT id FROM series").fetchall():
            cur = db.execute(
                "SELECT ts, value FROM samples WHERE series_id = ? AND ts >= ? AND ts < ? "
                "ORDER BY ts",
                (sid, since * 1000, until * 1000),
            )
            by_hour: dict[int, list[rollup.Minute]] = {}
            for m in rollup.minutes_of(cur):
                by_hour.setdefault(m[0] // 3600 * 3600, []).append(m)
            for hour, minutes in by_hour.items():
                row = db.execute(
                    "SELECT data FROM rollup_1m WHERE series_id = ? AND hour = ?", (sid, hour)
                ).fetchone()
                block = rollup.merge(rollup.decode(row[0] if row else None), minutes, hour)
                writes.append((sid, hour, rollup.encode(block)))
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO rollup_1m (series_id, hour, data) VALUES (?, ?, ?) "
            "ON CONFLICT (series_id, hour) DO UPDATE SET data = excluded.data",
            writes,
        )
        db.execute("INSERT OR REPLACE INTO meta VALUES ('rolled_until', ?)", (str(until),))
        db.execute("COMMIT")
        self._rolled_until = until

    def _enforce_size(self, db: sqlite3.Connection, ids: list[int]) -> None:
        """Drop the oldest day of roll-ups (then raw samples) until the store fits."""
        for _ in range(400):
            if self._used_bytes(db) <= self.retention.max_bytes:
                return
            oldest = db.execute("SELECT min(hour) FROM rollup_1m").fetchone()[0]
            sql, cut = (
                "DELETE FROM rollup_1m WHERE series_id = ? AND hour < ?",
                (oldest or 0) + 86400,
            )
            if oldest is None:
                oldest_raw = db.execute("SELECT min(ts) FROM samples").fetchone()[0]
                if oldest_raw is None:
                    return
                sql, cut = (
                    "DELETE FROM samples WHERE series_id = ? AND ts < ?",
                    oldest_raw + 600_000,
                )
            db.execute("BEGIN")
            for sid in ids:
                db.execute(sql, (sid, cut))
            db.execute("COMMIT")
            log.info("state store over %d bytes: pruned data before %s",
                     self.retention.max_bytes, cut)  # fmt: skip

    @staticmethod
    def _used_bytes(db: sqlite3.Connection) -> int:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        size: int = db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def size_bytes(self) -> int:
        """Bytes on disk: the database file and its WAL."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            p = self.path.with_name(self.path.name + suffix)
            if p.exists():
                total += p.stat().st_size
        return total

    # -- reading ---------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        db.execute("PRAGMA busy_timeout = 5000")
        return db

    def names(self) -> list[str]:
        with closing(self._reader()) as db:
            return [r[0] for r in db.execute("SELECT DISTINCT name FROM series ORDER BY name")]

    def query(
        self,
        name: str,
        matchers: Iterable[Matcher] = (),
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
        rate: bool = False,
    ) -> dict[str, Any]:
        """Series of ``name`` matching ``matchers`` over [start, end], at most 1000 points.

        Gauges are averaged per step; counters keep the step's last value, or with
        ``rate`` become per-second rates (counter resets handled). Data younger than the
        raw retention comes from raw samples when the step is under a minute, older data
        from the 1-minute roll-ups.
        """
        now = self.clock()
        end = now if end is None else end
        start = end - 3600 if start is None else start
        if end <= start:
            raise ValueError("end must be after start")
        span = end - start
        step = max(step or 0.0, span / MAX_POINTS, 1.0)
        use_raw = start >= now - self.retention.raw_seconds
        if not use_raw:
            step = max(60.0, math.ceil(step / 60) * 60)
        step_ms = int(step * 1000)
        matchers = list(matchers)
        out = []
        with closing(self._reader()) as db:
            found = db.execute("SELECT id, labels, kind FROM series WHERE name = ?", (name,))
            rolled = int(self._rolled_until or end)
            for sid, labels_json, kind in found.fetchall():
                labels = json.loads(labels_json)
                if not all(m.matches(labels) for m in matchers):
                    continue
                counter = kind == "counter"
                raw_from = start if use_raw else max(start, rolled)
                points = []
                if not use_raw:
                    points = self._rollup_points(db, sid, counter, start, min(end, rolled), step)
                seen = {p[0] for p in points}
                points += [p for p in self._raw_points(db, sid, counter, raw_from, end, step_ms)
                           if p[0] not in seen]  # fmt: skip
                if rate:
                    points = _rates(points)
                out.append({"labels": labels, "kind": kind, "points": points})
        return {
            "name": name,
            "start": start,
            "end": end,
            "step": step,
            "source": "raw" if use_raw else "rollup_1m",
            "series": out,
        }

    @staticmethod
    def _raw_points(
        db: sqlite3.Connection, sid: int, counter: bool, start: float, end: float, step_ms: int
    ) -> list[list[float]]:
        agg = "max(value)" if counter else "avg(value)"
        sql = (
            f"SELECT (ts / ?) * ?, {agg} FROM samples WHERE series_id = ? "
            "AND ts >= ? AND ts <= ? GROUP BY ts / ? ORDER BY 1"
        )
        args = (step_ms, step_ms, sid, int(start * 1000), int(end * 1000), step_ms)
        return [[ts / 1000, v] for ts, v in db.execute(sql, args)]

    @staticmethod
    def _rollup_points(
        db: sqlite3.Connection, sid: int, counter: bool, start: float, end: float, step: float
    ) -> list[list[float]]:
        lo, hi = int(start) // 60 * 60, int(end)
        blocks = db.execute(
            "SELECT hour, data FROM rollup_1m WHERE series_id = ? AND hour >= ? AND hour < ? "
            "ORDER BY hour",
            (sid, lo // 3600 * 3600, hi),
        ).fetchall()
        return rollup.downsample(blocks, lo, hi, int(step), counter)


def _rates(points: list[list[float]]) -> list[list[float]]:
    """Counter values → per-second rates between consecutive points; a drop is a reset."""
    out = []
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t1 <= t0:
            continue
        delta = v1 - v0 if v1 >= v0 else v1
        out.append([t1, delta / (t1 - t0)])
    return out
