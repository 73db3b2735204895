"""The log store: compressed text blocks plus a contentless FTS5 index, in its own
SQLite file beside the agent's state (``<state_dir>/logs.db``).

Layout
    * every event gets a global id (its FTS5 rowid), in the order it was read;
    * ``blocks`` hold up to 1024 events, column by column (times, levels, sources, the
      redacted text), compressed with Zstandard at level 1 (about a sixth of the text's
      size, and several times faster than zlib both ways; blocks written by zlib before
      still read);
    * ``fts_<n>`` are contentless FTS5 tables (``content=''``, so the text is not kept
      twice), one per *segment* of ids; columns ``msg`` (message and field values,
      without the timestamp), ``lv`` (level) and ``lg`` (logger);
    * ``checkpoints`` hold each followed file's read offset, written in the same
      transaction as its events: a restart (even after ``kill -9``) resumes without
      loss or repeats.

FTS5 writes each ingest batch as a b-tree of its own and merges them 16 at a time; once
the writer has caught up it merges each segment's b-trees into one, a step at a time
(``merge_step``), so queries look in one place.

Retention drops whole segments, oldest first (by age, or while the file is over its
size budget): a ``DROP TABLE`` and a range delete, never a row-by-row index update.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
import threading
import time
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from fastmango.collector.logs.parse import CODE_OF, LEVEL_CODES, fast

_HEAD = struct.Struct("<II")  # n events, text bytes
_FTS_OPTS = "content='', columnsize=0, detail=full"
#: events per compressed block: big enough to compress well, small enough that showing
#: one line decompresses little
BLOCK_LINES = 1024


@dataclass(slots=True)
class Line:
    """One stored event as the API returns it."""

    id: int
    ts: float
    level: str
    source: str
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "level": self.level or None,
            "source": self.source,
            "text": self.text,
        }


@dataclass(slots=True)
class Stored:
    """One ingested batch, column by column; ``lines()`` builds the API's objects only
    when someone (a live tail) wants them."""

    first_id: int
    ts: list[float]
    levels: bytes
    sources: list[int]
    texts: list[str]
    source_names: dict[int, str]

    def __len__(self) -> int:
        return len(self.texts)

    def lines(self) -> list[Line]:
        names, first, ts, levels, sources = (
            self.source_names,
            self.first_id,
            self.ts,
            self.levels,
            self.sources,
        )
        return [
            Line(first + i, ts[i], LEVEL_CODES[levels[i]], names.get(sources[i], ""), text)
            for i, text in enumerate(self.texts)
        ]


@dataclass(slots=True)
class Block:
    first_id: int
    ts: array[float]
    levels: bytes
    sources: array[int]
    texts: list[str]


def encode_block(
    ts: list[float], levels: bytes, sources: list[int], texts: list[str], level: int = 1
) -> bytes:
    body = [t.encode("utf-8", "surrogatepass") for t in texts]
    lengths = array("I", map(len, body))
    blob = b"".join(body)
    parts = [
        _HEAD.pack(len(texts), len(blob)),
        array("d", ts).tobytes(),
        levels,
        array("H", sources).tobytes(),
        lengths.tobytes(),
        blob,
    ]
    return _compressor(level).compress(b"".join(parts))


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """One compressor per thread and level (a ZstdCompressor is not thread-safe)."""
    cs: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "cs", None)
    if cs is None:
        cs = _local.cs = {}
    c = cs.get(level)
    if c is None:
        c = cs[level] = zstandard.ZstdCompressor(level=level)
    return c


def _decompress(data: bytes) -> bytes:
    if data[:4] != _ZSTD_MAGIC:
        return zlib.decompress(data)  # a block written before Zstandard
    d: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d.decompress(data)


def decode_block(first_id: int, data: bytes) -> Block:
    return _decode_raw(first_id, _decompress(data))


def _decode_raw(first_id: int, raw: bytes) -> Block:
    n, _nb = _HEAD.unpack_from(raw, 0)
    pos = _HEAD.size
    ts = array("d")
    ts.frombytes(raw[pos : pos + 8 * n])
    pos += 8 * n
    levels = raw[pos : pos + n]
    pos += n
    sources = array("H")
    sources.frombytes(raw[pos : pos + 2 * n])
    pos += 2 * n
    lengths = array("I")
    lengths.frombytes(raw[pos : pos + 4 * n])
    pos += 4 * n
    texts = []
    for ln in lengths:
        texts.append(raw[pos : pos + ln].decode("utf-8", "surrogatepass"))
        pos += ln
    return Block(first_id, ts, levels, sources, texts)


def create_fts(db: sqlite3.Connection, name: str) -> None:
    """A segment's full-text table: contentless, 4 KB pages, b-trees merged 16 at a
    time as they are written (64 waiting forces a merge)."""
    db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {name} USING fts5(msg, lv, lg, {_FTS_OPTS})")
    db.execute(f"INSERT INTO {name}({name}, rank) VALUES('pgsz', 4050)")
    db.execute(f"INSERT INTO {name}({name}, rank) VALUES('automerge', 16)")
    db.execute(f"INSERT INTO {name}({name}, rank) VALUES('crisismerge', 64)")


def merge_fts(db: sqlite3.Connection, name: str, pages: int = 256) -> bool:
    """One step (about ``pages`` pages written) of merging the table's b-trees into one,
    over all levels, as ``optimize`` would. Returns whether work was done: FTS5's
    documented signal is a change count up by two or more (more may be left); by less,
    the b-trees are merged."""
    before = db.total_changes
    db.execute(f"INSERT INTO {name}({name}, rank) VALUES('merge', ?)", (-pages,))
    return db.total_changes - before >= 2


class Ingestor:
    """Parses events into (ts, level code, logger, index text) through the parser's fast
    path (one anchored match per line for the common shapes)."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now

    def parse_many(
        self, texts: list[str], hints: list[float | None]
    ) -> tuple[list[float], bytes, list[tuple[str, str, str]]]:
        now = self._now()
        year = time.gmtime(now).tm_year
        ts_out: list[float] = []
        lv_out = bytearray()
        docs: list[tuple[str, str, str]] = []
        code_of = CODE_OF
        for text, th in zip(texts, hints, strict=True):
            ts, level, logger, msg = fast(text, year, now)
            if ts is None:
                ts = th if th is not None else now
            ts_out.append(ts)
            lv_out.append(code_of[level] if level else 0)
            docs.append((msg, level or "", logger or ""))
        return ts_out, bytes(lv_out), docs


class LogIndex:
    """The store. One writer (the ingest thread); readers open their own connections."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 500 * 10**6,
        max_age: float = 7 * 86400,
        segment_lines: int = 2_000_000,
        compress_level: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.segment_lines = segment_lines
        self.compress_level = compress_level
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._local = threading.local()
        self._sources: dict[str, int] = {}
        self._source_names: dict[int, str] = {}
        self._seg: tuple[int, int, float] | None = None  # (seg, lines, created)
        self.next_id = 1
        self._blocks_cache: OrderedDict[int, Block] = OrderedDict()
        self._cache_lock = threading.Lock()
        #: (segment, FTS5 expression) → (last id counted, matches up to it): the index
        #: only grows, so a repeated count only counts the ids added since
        self.counts: OrderedDict[tuple[int, str], tuple[int, int]] = OrderedDict()
        self.ingestor = Ingestor(clock)
        #: segments whose full-text index may hold several b-trees still to merge
        self.unmerged: set[int] = set()

    # -- opening -------------------------------------------------------------------
    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-8000")
        db.executescript("""
            CREATE TABLE IF NOT EXISTS segments(seg INTEGER PRIMARY KEY, first_id INT,
                last_id INT, lines INT, created REAL);
            CREATE TABLE IF NOT EXISTS blocks(first_id INTEGER PRIMARY KEY, last_id INT,
                seg INT, t_min REAL, t_max REAL, data BLOB);
            CREATE TABLE IF NOT EXISTS sources(id INTEGER PRIMARY KEY, name TEXT UNIQUE);
            CREATE TABLE IF NOT EXISTS checkpoints(fp TEXT PRIMARY KEY, name TEXT,
                offset INT, updated REAL);
            CREATE TABLE IF NOT EXISTS erased(first_id INTEGER PRIMARY KEY, n INT);
            CREATE INDEX IF NOT EXISTS blocks_tmax ON blocks(t_max);
        """)
        self._db = db
        for sid, name in db.execute("SELECT id, name FROM sources"):
            self._sources[name] = sid
            self._source_names[sid] = name
        row = db.execute("SELECT max(last_id) FROM blocks").fetchone()
        self.next_id = (row[0] or 0) + 1
        seg = db.execute(
            "SELECT seg, lines, created FROM segments ORDER BY seg DESC LIMIT 1"
        ).fetchone()
        if seg is not None:
            self._seg = (seg[0], seg[1], seg[2])
        self.unmerged = {r[0] for r in db.execute("SELECT seg FROM segments")}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _reader(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            db.execute("PRAGMA cache_size=-4000")
            self._local.db = db
        return db

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the log index is not open")
        return self._db

    # -- writing -------------------------------------------------------------------
    def checkpoints(self) -> dict[str, tuple[str, int]]:
        return {
            fp: (name, off)
            for fp, name, off in self.db.execute("SELECT fp, name, offset FROM checkpoints")
        }

    def source_id(self, name: str) -> int:
        sid = self._sources.get(name)
        if sid is None:
            cur = self.db.execute("INSERT OR IGNORE INTO sources(name) VALUES (?)", (name,))
            sid = (
                cur.lastrowid
                or self.db.execute("SELECT id FROM sources WHERE name=?", (name,)).fetchone()[0]
            )
            assert sid is not None
            self._sources[name] = sid
            self._source_names[sid] = name
        return sid

    def _segment(self, now: float) -> int:
        if self._seg is None or self._seg[1] >= self.segment_lines or (now - self._seg[2] > 86400):
            seg = (self._seg[0] + 1) if self._seg else 1
            create_fts(self.db, f"fts_{seg}")
            self.db.execute(
                "INSERT INTO segments VALUES (?,?,?,?,?)",
                (seg, self.next_id, self.next_id - 1, 0, now),
            )
            self._seg = (seg, 0, now)
        return self._seg[0]

    def ingest(
        self,
        texts: list[str],
        sources: list[int],
        hints: list[float | None],
        checkpoints: dict[str, tuple[str, int]] | None = None,
    ) -> Stored:
        """Store one batch of (already redacted) events and the read offsets that go
        with them, in one transaction. Returns what was stored (for live tail)."""
        now = self.clock()
        ts, levels, docs = self.ingestor.parse_many(texts, hints)
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            stored = Stored(self.next_id, ts, levels, sources, texts, self._source_names)
            if texts:
                seg = self._segment(now)
                first = self.next_id
                last = first + len(texts) - 1
                db.executemany(
                    f"INSERT INTO fts_{seg}(rowid, msg, lv, lg) VALUES (?,?,?,?)",
                    [(first + i, *d) for i, d in enumerate(docs)],
                )
                step = BLOCK_LINES
                db.executemany(
                    "INSERT INTO blocks VALUES (?,?,?,?,?,?)",
                    [
                        (
                            first + k,
                            min(first + k + step, last + 1) - 1,
                            seg,
                            min(ts[k : k + step]),
                            max(ts[k : k + step]),
                            encode_block(
                                ts[k : k + step],
                                levels[k : k + step],
                                sources[k : k + step],
                                texts[k : k + step],
                                self.compress_level,
                            ),
                        )
                        for k in range(0, len(texts), step)
                    ],
                )
                db.execute(
                    "UPDATE segments SET last_id=?, lines=lines+? WHERE seg=?",
                    (last, len(texts), seg),
                )
                assert self._seg is not None
                self._seg = (seg, self._seg[1] + len(texts), self._seg[2])
                self.unmerged.add(seg)
                self.next_id = last + 1
            if checkpoints:
                db.executemany(
                    "INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,?)",
                    [(fp, name, off, now) for fp, (name, off) in checkpoints.items()],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return stored

    def purge(self, needle: str) -> tuple[int, int]:
        """Erase every stored line that contains ``needle`` (case-insensitive): its text
        is blanked in its block and its terms are deleted from the full-text index, with
        SQLite's ``secure_delete`` on so the old bytes are overwritten, then the WAL is
        truncated. Every block is read (the index's tokens could miss a substring), one
        transaction per block that changes. Returns (lines erased, lines scanned)."""
        low = needle.lower()
        db = self.db
        erased = scanned = 0
        db.execute("PRAGMA secure_delete=ON")
        try:
            firsts = [r[0] for r in db.execute("SELECT first_id FROM blocks ORDER BY first_id")]
            for first in firsts:
                row = db.execute("SELECT seg, data FROM blocks WHERE first_id=?", (first,))
                found = row.fetchone()
                if found is None:  # dropped by retention meanwhile
                    continue
                seg, data = found
                b = decode_block(first, data)
                scanned += len(b.texts)
                hits = [i for i, t in enumerate(b.texts) if t and low in t.lower()]
                if not hits:
                    continue
                _ts, _lv, docs = self.ingestor.parse_many([b.texts[i] for i in hits],
                                                          [None] * len(hits))  # fmt: skip
                texts = list(b.texts)
                for i in hits:
                    texts[i] = ""
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany(
                        f"INSERT INTO fts_{seg}(fts_{seg}, rowid, msg, lv, lg) "
                        "VALUES ('delete', ?, ?, ?, ?)",
                        [(first + i, *d) for i, d in zip(hits, docs, strict=True)],
                    )
                    blob = encode_block(list(b.ts), b.levels, list(b.sources), texts,
                                        self.compress_level)  # fmt: skip
                    db.execute("UPDATE blocks SET data=? WHERE first_id=?", (blob, first))
                    db.execute(
                        "INSERT INTO erased VALUES (?, ?) "
                        "ON CONFLICT(first_id) DO UPDATE SET n = n + excluded.n",
                        (first, len(hits)),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                erased += len(hits)
        finally:
            db.execute("PRAGMA secure_delete=OFF")
        with self._cache_lock:
            self._blocks_cache.clear()
            self.counts.clear()
        if erased:
            db.execute("PRAGMA incremental_vacuum")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return erased, scanned

    def forget_checkpoints(self, fps: list[str]) -> None:
        self.db.executemany("DELETE FROM checkpoints WHERE fp=?", [(f,) for f in fps])

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += Path(str(self.path) + suffix).stat().st_size
        return total

    def enforce_retention(self) -> int:
        """Drop the oldest segments past ``max_age`` or while over ``max_bytes`` (the
        newest segment always stays). Returns how many were dropped."""
        db = self.db
        dropped = 0
        now = self.clock()
        while True:
            segs = db.execute("SELECT seg, first_id, last_id FROM segments ORDER BY seg").fetchall()
            if len(segs) < 2:
                break
            seg, _first, _last = segs[0]
            tmax = db.execute("SELECT max(t_max) FROM blocks WHERE seg=?", (seg,)).fetchone()[0]
            data_bytes = self._data_bytes()
            too_old = tmax is not None and tmax < now - self.max_age
            if not too_old and data_bytes <= self.max_bytes:
                break
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"DROP TABLE IF EXISTS fts_{seg}")
            db.execute(
                "DELETE FROM erased WHERE first_id IN (SELECT first_id FROM blocks WHERE seg=?)",
                (seg,),
            )
            db.execute("DELETE FROM blocks WHERE seg=?", (seg,))
            db.execute("DELETE FROM segments WHERE seg=?", (seg,))
            db.execute("COMMIT")
            dropped += 1
            with self._cache_lock:
                self._blocks_cache.clear()
                self.counts.clear()
        if dropped:
            db.execute("PRAGMA incremental_vacuum")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return dropped

    def _data_bytes(self) -> int:
        pc = self.db.execute("PRAGMA page_count").fetchone()[0]
        fl = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        ps = self.db.execute("PRAGMA page_size").fetchone()[0]
        return int((pc - fl) * ps)

    def merge_step(self, pages: int = 256) -> bool:
        """One step of merging an unmerged segment's full-text b-trees into one (FTS5's
        ``merge`` over all levels, about ``pages`` pages written): what ``optimize``
        does, in steps short enough to run between ingest batches while the writer is
        idle. Returns whether merge work is left."""
        while self.unmerged:
            seg = min(self.unmerged)
            try:
                if merge_fts(self.db, f"fts_{seg}", pages):
                    return True
            except sqlite3.Error as exc:
                if "no such table" not in str(exc):  # (not: dropped by retention meanwhile)
                    self.unmerged.discard(seg)  # say it once; the next batch tries again
                    raise
            self.unmerged.discard(seg)  # nothing left to merge there
        return False

    def roll_segment_if_big(self) -> None:
        """Start a new segment when the current one holds over a quarter of the size
        budget, so retention by size has something to drop."""
        if self._seg is not None and self._data_bytes() > self.max_bytes / 4 * (
            len(self.db.execute("SELECT 1 FROM segments").fetchall())
        ):
            self._seg = (self._seg[0], self.segment_lines, self._seg[2])

    # -- reading -------------------------------------------------------------------
    def segments(self) -> list[tuple[int, int, int]]:
        """(seg, first_id, last_id), newest first."""
        return (
            self._reader()
            .execute("SELECT seg, first_id, last_id FROM segments ORDER BY seg DESC")
            .fetchall()
        )

    def block(self, first_id: int, data: bytes | None = None) -> Block:
        b = self._block(first_id, data, None)
        assert b is not None  # (None only when a needle is missing)
        return b

    def block_holding(self, first_id: int, needle: bytes) -> Block | None:
        """The block, if its bytes lower-cased (ASCII) hold ``needle``; else None, known
        from the decompressed bytes without decoding its lines one by one."""
        return self._block(first_id, None, needle)

    def _block(self, first_id: int, data: bytes | None, needle: bytes | None) -> Block | None:
        with self._cache_lock:
            b = self._blocks_cache.get(first_id)
            if b is not None:
                self._blocks_cache.move_to_end(first_id)
        if b is not None:
            if needle is not None and not any(needle in t.lower().encode() for t in b.texts):
                return None
            return b
        if data is None:
            row = (
                self._reader()
                .execute("SELECT data FROM blocks WHERE first_id=?", (first_id,))
                .fetchone()
            )
            if row is None:
                raise KeyError(first_id)
            data = row[0]
        raw = _decompress(data)
        if needle is not None and needle not in raw.lower():
            return None
        b = _decode_raw(first_id, raw)
        with self._cache_lock:
            self._blocks_cache[first_id] = b
            while len(self._blocks_cache) > 16:
                self._blocks_cache.popitem(last=False)
        return b

    def block_of(self, row_id: int) -> tuple[int, int]:
        r = (
            self._reader()
            .execute(
                "SELECT first_id, last_id FROM blocks WHERE first_id<=? ORDER BY first_id DESC LIMIT 1",  # noqa: E501
                (row_id,),
            )
            .fetchone()
        )
        if r is None:
            raise KeyError(row_id)
        return int(r[0]), int(r[1])

    def erased(self) -> dict[int, int]:
        """Lines a purge blanked, per block (by its first id): few, if any."""
        return dict(self._reader().execute("SELECT first_id, n FROM erased"))

    def source_name(self, sid: int) -> str:
        name = self._source_names.get(sid)
        if name is None:
            row = self._reader().execute("SELECT name FROM sources WHERE id=?", (sid,)).fetchone()
            name = row[0] if row else ""
            self._source_names[sid] = name
        return name

    def line(self, b: Block, i: int) -> Line:
        return Line(
            b.first_id + i,
            b.ts[i],
            LEVEL_CODES[b.levels[i]],
            self.source_name(b.sources[i]),
            b.texts[i],
        )

    def blocks_in(
        self, lo: int, hi: int, t0: float | None, t1: float | None, newest_first: bool = True
    ) -> Iterator[tuple[int, int, float, float]]:
        """(first_id, last_id, t_min, t_max) of blocks overlapping ids and times."""
        sql = (
            "SELECT first_id, last_id, t_min, t_max FROM blocks WHERE last_id>=? AND first_id<=?"
            + (" AND t_max>=?" if t0 is not None else "")
            + (" AND t_min<=?" if t1 is not None else "")
            + f" ORDER BY first_id {'DESC' if newest_first else 'ASC'}"
        )
        args: list[Any] = [lo, hi]
        if t0 is not None:
            args.append(t0)
        if t1 is not None:
            args.append(t1)
        yield from self._reader().execute(sql, args)

    def fts_rowids(
        self, seg: int, expr: str, lo: int, hi: int, newest_first: bool = True
    ) -> Iterator[int]:
        order = "DESC" if newest_first else "ASC"
        cur = self._reader().execute(
            f"SELECT rowid FROM fts_{seg} WHERE fts_{seg} MATCH ? AND rowid BETWEEN ? AND ? "
            f"ORDER BY rowid {order}",
            (expr, lo, hi),
        )
        for (rid,) in cur:
            yield rid

    def word_count(self, seg: int, term: str) -> tuple[int, int] | None:
        """(last id of the segment, lines holding ``term`` anywhere in it), read together
        from the index's vocabulary (its per-term row count: no walk over the term's
        rows, which is what makes counting a common word slow). ``term`` must be one
        token as the tokenizer writes it (lower-case ASCII letters and digits). None
        when retention has dropped the segment."""
        db = self._reader()
        vocab = f"vocab_{seg}"
        made: set[str] | None = getattr(self._local, "vocabs", None)
        if made is None:
            made = self._local.vocabs = set()
        if vocab not in made:
            db.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{vocab} "
                f"USING fts5vocab(main, fts_{seg}, 'row')"
            )
            made.add(vocab)
        db.execute("BEGIN")  # the segment's extent and its count from one snapshot
        try:
            row = db.execute("SELECT last_id FROM segments WHERE seg=?", (seg,)).fetchone()
            if row is None:  # dropped by retention
                return None
            found = db.execute(f"SELECT doc FROM temp.{vocab} WHERE term=?", (term,)).fetchone()
        finally:
            db.execute("COMMIT")
        return int(row[0]), int(found[0]) if found else 0

    def fts_count(self, seg: int, expr: str, lo: int, hi: int) -> int:
        return int(
            self._reader()
            .execute(
                f"SELECT count(*) FROM fts_{seg} WHERE fts_{seg} MATCH ? AND rowid BETWEEN ? AND ?",
                (expr, lo, hi),
            )
            .fetchone()[0]
        )

    def stats(self) -> dict[str, Any]:
        r = self._reader()
        lines = r.execute(
            "SELECT coalesce(sum(last_id-first_id+1),0), min(t_min), max(t_max) FROM blocks"
        ).fetchone()
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes(),
            "lines": lines[0],
            "oldest": lines[1],
            "newest": lines[2],
            "max_bytes": self.max_bytes,
            "segments": len(self.segments()),
            "unmerged": len(self.unmerged),  # segments whose index the writer still merges
        }
