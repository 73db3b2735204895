"""Log ingest, index size and query latency of fastmango's log index against grep and
ripgrep over the same raw file; live-tail latency and idle tailer CPU of a real agent.

    .venv/bin/python bench/logs.py [--lines 8000000] [--runs 5] [--keep DIR] [--json]

Builds a log of ``--lines`` lines (default 8 M, about 1.1 GB): the five Loghub samples in
../shared/logs (Apache, Linux syslog, OpenSSH, OpenStack, Spark) with their timestamps
moved forward in their own shapes, mixed with JSON app logs (request ids, statuses,
durations, some e-mail addresses and bearer tokens to redact), and a rare token about
100 times. Then, in one run:

* ingest: the file through the agent's own path (Tailer → Redactor → LogIndex: parse,
  redact, index, compressed blocks) on one thread, lines/s of CPU and wall time; plain
  FTS5 insertion of the first 1 M lines (text stored in the table) as the naive baseline;
* size: logs.db (text compressed + index) ÷ raw file;
* queries (median of --runs): rare-token count, common-word count, phrase count, field
  filter with a time range, newest 100 matches of a common word — and the same patterns
  with ``grep -F -c`` and ``rg -F -c`` over the raw file;
* live tail: a real agent follows a file; a writer appends 300 lines at 50/s; the time
  from write to the line's arrival on an SSE client of /api/logs/tail (p50, p99);
* idle tailer: CPU of the agent's logs thread over 20 s with nothing written.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import emit, free_port, median, percentile, progress, table

from fastmango.collector.logs.parse import _SHAPES, find_timestamp

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "logs"
RARE = "zqxfrobnicate7"
COMMON = "session"  # in the JSON app logs and OpenSSH; checked below
PHRASE = "Received disconnect"


def _kind(shape: str, sample: str) -> tuple[str, str, int]:
    """(strftime format of the whole seconds, fraction separator, fraction digits)."""
    if shape == "iso":
        sep = "T" if sample[10:11] == "T" else " "
        frac = re.match(r"[.,](\d+)", sample[19:])
        zone = sample[19 + (len(frac.group(0)) if frac else 0) :]
        return (
            f"%Y-%m-%d{sep}%H:%M:%S",
            (frac.group(0)[0] if frac else "") + "\0" + zone,
            len(frac.group(1)) if frac else 0,
        )
    fmt = {
        "apache": "[%a %b %d %H:%M:%S %Y]",
        "syslog": "%b %d %H:%M:%S",
        "yymmdd": "%y/%m/%d %H:%M:%S",
        "clf": "[%d/%b/%Y:%H:%M:%S +0000]",
        "dmy": "%d %b %Y %H:%M:%S",
    }[shape]
    return fmt, "\0", 0


def templates() -> list[tuple[str, str, tuple[str, str, int]]]:
    """(before, after, timestamp kind) of every sample line with a timestamp."""
    out = []
    for name in ("Apache", "Linux", "OpenSSH", "OpenStack", "Spark"):
        text = (SHARED / f"{name}_2k.log").read_text("utf-8", "replace")
        for line in text.splitlines():
            ts, a, z, shape = find_timestamp(line, 2026, None)
            if ts is None:
                continue
            out.append((line[:a], line[z:], _kind(_SHAPES[shape][0], line[a:z])))
    return out


def build(path: Path, lines: int, seed: int = 7) -> int:
    """Write the mixed log; returns its size in bytes. Three lines in five are Loghub
    lines with their timestamps moved on (in their own shape), two are JSON app logs
    drawn from a pool of 200,003 distinct records (ids, statuses, durations, users)."""
    rng = random.Random(seed)
    tpls = templates()
    start = time.time() - 3 * 86400
    span = 3 * 86400 - 3600
    rare_every = max(1, lines // 100)
    routes = ["/api/orders", "/api/users/{id}", "/api/cart", "/healthz", "/api/search", "/login"]
    loggers = ["app.web", "app.db", "app.auth", "app.worker", "uvicorn.access"]
    levels = ["info"] * 14 + ["debug"] * 3 + ["warning"] * 2 + ["error"]
    msgs = (
        "request finished",
        "cache miss for user session",
        "session refreshed",
        "payment authorised",
        "slow query",
        "retrying upstream call",
        "order created",
    )
    pool: list[str] = []
    for k in range(200_003):
        status = rng.choice((200, 200, 200, 200, 201, 204, 302, 404, 500, 503))
        rec: dict[str, Any] = {
            "level": "error" if status >= 500 else rng.choice(levels),
            "logger": rng.choice(loggers),
            "message": rng.choice(msgs),
            "request_id": uuid.UUID(int=rng.getrandbits(128)).hex[:16],
            "method": rng.choice(("GET", "POST")),
            "route": rng.choice(routes),
            "status": status,
            "duration_ms": round(rng.expovariate(1 / 40), 1),
            "user_id": rng.randrange(100000),
        }
        if k % 97 == 0:
            rec["user"] = f"user{rng.randrange(1000)}@example.com"
        if k % 211 == 0:
            rec["auth"] = "Bearer " + uuid.UUID(int=rng.getrandbits(128)).hex
        pool.append(json.dumps(rec, separators=(",", ":"))[1:])
    cache: dict[tuple[str, int], str] = {}
    picks = [rng.randrange(len(tpls)) for _ in range(65_537)]
    size = 0
    with path.open("w", encoding="utf-8", newline="\n") as f:
        buf: list[str] = []
        for i in range(lines):
            t = start + span * i / lines
            sec = int(t)
            if i % 5 < 3:
                before, after, (fmt, tail, digits) = tpls[picks[i % 65_537]]
                whole = cache.get((fmt, sec))
                if whole is None:
                    if len(cache) > 10_000:
                        cache.clear()
                    whole = cache[(fmt, sec)] = time.strftime(fmt, time.gmtime(sec))
                frac = f"{t - sec:.{digits}f}"[2:] if digits else ""
                line = before + whole + tail.replace("\0", frac) + after
            else:
                whole = cache.get(("json", sec))
                if whole is None:
                    whole = cache[("json", sec)] = time.strftime(
                        "%Y-%m-%dT%H:%M:%S", time.gmtime(sec)
                    )
                line = '{"time":"' + whole + f'.{int((t - sec) * 1000):03d}Z",' + pool[i % 200_003]
            if i % rare_every == rare_every // 2:
                line += f" {RARE}"
            buf.append(line)
            if len(buf) >= 10000:
                chunk = "\n".join(buf) + "\n"
                f.write(chunk)
                size += len(chunk.encode())
                buf = []
                if i % 1_000_000 < 10000:
                    progress(f"built {i + 1:,} lines")
        if buf:
            chunk = "\n".join(buf) + "\n"
            f.write(chunk)
            size += len(chunk.encode())
    return size


def ingest(raw: Path, db: Path) -> dict[str, Any]:
    """The agent's ingest path, on this thread: tail → redact → parse + index."""
    from fastmango.agent.logs.index import LogIndex
    from fastmango.agent.settings_logs import LogsSettings
    from fastmango.collector.logs.tail import Tailer
    from fastmango.redact import Redactor

    # the agent's own segment size (retention off: the whole log stays)
    seg = LogsSettings().segment_lines
    index = LogIndex(db, max_bytes=10**12, max_age=10**9, segment_lines=seg)
    index.open()
    tailer = Tailer([str(raw)], checkpoints={}, read_chunk=4 << 20)
    redactor = Redactor.default()
    n = 0
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    last = wall0
    while True:
        batches = tailer.poll()
        if not batches:
            break
        for stream, events in batches:
            sid = index.source_id(stream.name)
            texts = redactor.redact_many([e[0] for e in events])
            index.ingest(texts, [sid] * len(texts), [e[1] for e in events], tailer.checkpoints())
            n += len(texts)
        if time.perf_counter() - last > 10:
            last = time.perf_counter()
            progress(f"ingested {n:,} lines ({n / (last - wall0):,.0f}/s)")
    # the open last event
    tailer.multiline_timeout = 0
    for s in tailer.streams.values():
        s.asm.timeout = 0
    for stream, events in tailer.poll():
        texts = redactor.redact_many([e[0] for e in events])
        index.ingest(texts, [index.source_id(stream.name)] * len(texts), [e[1] for e in events])
        n += len(texts)
    # what the agent does once it has caught up: merge each segment's index into one
    # b-tree, step by step (counted: it is part of indexing)
    m0 = time.thread_time()
    while index.merge_step():
        pass
    opt = time.thread_time() - m0
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    index.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tailer.close()
    index.close()
    return {
        "events": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "merge_cpu_s": opt,
        "redactions": dict(redactor.counts),
    }


def _sample(raw: Path, out: Path, lines: int) -> int:
    """The first ``lines`` lines of ``raw`` into ``out``; returns how many."""
    n = 0
    with raw.open("rb") as src, out.open("wb") as dst:
        for line in src:
            dst.write(line)
            n += 1
            if n >= lines:
                break
    return n


def stages(raw: Path, work: Path, lines: int) -> dict[str, Any]:
    """Where ingest time goes, per line, on the first ``lines`` lines: each stage of the
    agent's path, and beside it the *floor* of that stage, the one C-level call it cannot
    do without (read and split; one lower-cased copy of a batch for the rules'
    case-insensitive triggers; one orjson.loads or one timestamp regex search per
    line; one Zstandard compression of the text; FTS5 inserting the agent's own index
    rows from a staged table, no Python per row, then merging them into one b-tree).
    The floors add up to the least any CPython ingest with this index could spend.

    Batch by batch, as the agent goes (each poll of the tailer, every stage in turn), so
    the process holds no more than the agent does: a heap of millions of lines would
    slow every allocation down and time the garbage collector instead."""
    import orjson
    import zstandard

    from fastmango.agent.logs.index import LogIndex, create_fts, encode_block, merge_fts
    from fastmango.collector.logs.parse import _ISO0
    from fastmango.collector.logs.tail import Tailer
    from fastmango.redact import Redactor

    sample = work / "stages.log"
    n_lines = _sample(raw, sample, lines)
    names = ("tail", "redact", "parse", "blocks", "index write", "index merge")
    us = dict.fromkeys(names, 0.0)
    floor = dict.fromkeys(names, 0.0)
    clock = time.thread_time
    paths = (work / "stages.db", work / "stages-floor.db")
    for path in paths:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)

    t0 = clock()  # the tail's floor: read and split, nothing kept
    with sample.open("rb") as f:
        while chunk := f.read(4 << 20):
            chunk.decode("utf-8", "replace").split("\n")
    floor["tail"] = clock() - t0

    red = Redactor.default()
    index = LogIndex(paths[0], max_bytes=10**12, max_age=10**9)
    index.open()
    sid = index.source_id("stages")
    parse_many = index.ingestor.parse_many
    fdb = sqlite3.connect(paths[1], isolation_level=None)
    fdb.execute("PRAGMA journal_mode=WAL")
    fdb.execute("PRAGMA synchronous=NORMAL")
    fdb.execute("CREATE TEMP TABLE st(id INTEGER PRIMARY KEY, msg TEXT, lv TEXT, lg TEXT)")
    fdb.execute("CREATE TEMP TABLE sg(id INTEGER PRIMARY KEY, msg TEXT, lv TEXT, lg TEXT)")
    create_fts(fdb, "f")  # the agent's own table
    create_fts(fdb, "g")  # 16 lines per row: what grouping rows would save FTS5
    grouped = [0.0, 0.0]
    g_ids = itertools.count(1)
    zc = zstandard.ZstdCompressor(level=1)
    loads, iso = orjson.loads, _ISO0.search
    tailer = Tailer([str(sample)], checkpoints={}, read_chunk=4 << 20)
    n = 0
    last = False
    while True:
        t0 = clock()
        batches = tailer.poll()
        if not batches and not last:  # the open last event
            last = True
            tailer.multiline_timeout = 0
            for s in tailer.streams.values():
                s.asm.timeout = 0
            batches = tailer.poll()
        us["tail"] += clock() - t0
        if not batches:
            break
        for _s, events in batches:
            texts = [e[0] for e in events]
            hints = [e[1] for e in events]
            n += len(texts)
            t0 = clock()
            redacted = red.redact_many(texts)
            t1 = clock()
            "\x00".join(texts).lower().find("bearer")
            t2 = clock()
            parsed = parse_many(redacted, hints)
            t3 = clock()
            [loads(t) if t[:1] == "{" else iso(t, 0, 120) for t in redacted]
            t4 = clock()
            ts, levels = parsed[0], parsed[1]
            for j in range(0, len(redacted), 1024):
                part = redacted[j : j + 1024]
                encode_block(ts[j : j + 1024], levels[j : j + 1024], [sid] * len(part), part)
            t5 = clock()
            for j in range(0, len(redacted), 1024):
                zc.compress("\n".join(redacted[j : j + 1024]).encode())
            t6 = clock()
            # the agent's ingest(), handed the parse already timed
            index.ingestor.parse_many = lambda _t, _h, p=parsed: p  # type: ignore[method-assign]
            index.ingest(redacted, [sid] * len(redacted), hints)
            t7 = clock()
            first = n - len(redacted) + 1
            fdb.executemany("INSERT INTO temp.st VALUES (?,?,?,?)",
                            [(first + i, *d) for i, d in enumerate(parsed[2])])  # fmt: skip
            t8 = clock()
            fdb.execute("BEGIN")
            fdb.execute("INSERT INTO f(rowid, msg, lv, lg) SELECT id, msg, lv, lg FROM temp.st")
            fdb.execute("COMMIT")
            t9 = clock()
            fdb.execute("DELETE FROM temp.st")
            docs = parsed[2]
            fdb.executemany(
                "INSERT INTO temp.sg VALUES (?,?,?,?)",
                [
                    (next(g_ids), *("\n".join(c) for c in zip(*docs[j : j + 16], strict=True)))
                    for j in range(0, len(docs), 16)
                ],
            )
            tg = clock()
            fdb.execute("BEGIN")
            fdb.execute("INSERT INTO g(rowid, msg, lv, lg) SELECT id, msg, lv, lg FROM temp.sg")
            fdb.execute("COMMIT")
            grouped[0] += clock() - tg
            fdb.execute("DELETE FROM temp.sg")
            us["redact"] += t1 - t0
            floor["redact"] += t2 - t1
            us["parse"] += t3 - t2
            floor["parse"] += t4 - t3
            us["blocks"] += t5 - t4
            floor["blocks"] += t6 - t5
            us["index write"] += max(0.0, (t7 - t6) - (t5 - t4))  # its blocks counted above
            floor["index write"] += t9 - t8
    tailer.close()
    t0 = clock()
    while index.merge_step():
        pass
    us["index merge"] = clock() - t0
    index.close()
    t0 = clock()
    while merge_fts(fdb, "f"):  # as the agent's merge_step, to the end
        pass
    floor["index merge"] = clock() - t0
    t0 = clock()
    while merge_fts(fdb, "g"):
        pass
    grouped[1] = clock() - t0
    fdb.close()
    for path in (sample, *paths):
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    per = 1e6 / max(1, n)
    us = {k: v * per for k, v in us.items()}
    floor = {k: v * per for k, v in floor.items()}
    return {
        "lines": n_lines,
        "events": n,
        "us_per_line": us,
        "floor_us_per_line": floor,
        "total_us": sum(us.values()),
        "floor_total_us": sum(floor.values()),
        # the same rows, 16 lines to an FTS5 row (write, merge): no exact per-line
        # counts any more, for a saving of about a quarter (FTS5's cost is mostly per
        # token, not per row)
        "grouped_16_us_per_line": [grouped[0] * per, grouped[1] * per],
    }


def naive(raw: Path, db: Path, limit: int) -> dict[str, Any]:
    """Plain FTS5: one row per line, text stored in the table, default options."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE VIRTUAL TABLE logs USING fts5(line)")
    n = 0
    size = 0
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    with raw.open("r", encoding="utf-8") as f:
        batch: list[tuple[str]] = []
        for line in f:
            batch.append((line,))
            size += len(line)
            n += 1
            if len(batch) >= 20000:
                con.executemany("INSERT INTO logs(line) VALUES (?)", batch)
                con.commit()
                batch = []
            if n >= limit:
                break
        if batch:
            con.executemany("INSERT INTO logs(line) VALUES (?)", batch)
            con.commit()
    _wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return {"lines": n, "lines_per_s_cpu": n / cpu, "ratio": db.stat().st_size / size}


def timed(fn: Any, runs: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return median(times), out


def tool(cmd: list[str], runs: int) -> tuple[float, int]:
    def run() -> int:
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return int(p.stdout.strip() or 0)

    return timed(run, runs)


def queries(db: Path, raw: Path, runs: int) -> dict[str, Any]:
    from fastmango.agent.logs import search
    from fastmango.agent.logs.index import LogIndex
    from fastmango.agent.logs.query import parse_query

    index = LogIndex(db)
    index.open()
    con = sqlite3.connect(db)
    t_lo, t_hi = con.execute("SELECT min(t_min), max(t_max) FROM blocks").fetchone()
    con.close()
    t0 = t_lo + (t_hi - t_lo) * 0.45
    t1 = t_lo + (t_hi - t_lo) * 0.55
    cases = [
        ("rare token", RARE, None, None, RARE),
        ("common word", COMMON, None, None, COMMON),
        ("phrase", f'"{PHRASE}"', None, None, PHRASE),
        ("level:error, 10% time range", "level:error", t0, t1, '"level":"error"'),
        # no index help: every block's bytes are looked at for the regex's literal
        ("regex (rare), no index", f"/slot \\d+ {RARE}/", None, None, f"slot [0-9]+ {RARE}"),
    ]
    out: dict[str, Any] = {}
    rg = shutil.which("rg")
    for name, q, a, z, literal in cases:
        regex = q.startswith("/")  # then case-insensitive, as the query is
        mode, rg_mode = (["-E", "-i"], ["-i"]) if regex else (["-F"], ["-F"])
        plan = search.Plan.of(parse_query(q), a, z)

        def cold(plan: Any = plan) -> Any:
            index.counts.clear()  # no count remembered from an earlier run
            return search.count(index, plan)

        took, (n, exact) = timed(cold, runs)
        warm, _ = timed(lambda plan=plan: search.count(index, plan), runs)
        g_t, g_n = tool(["grep", *mode, "-c", literal, str(raw)], runs)
        if rg:
            r_t, r_n = tool([rg, *rg_mode, "-c", "--no-mmap", "-e", literal, str(raw)], runs)
        else:
            r_t, r_n = float("nan"), -1
        out[name] = {
            "query": q,
            "fastmango_s": took,
            "fastmango_repeat_s": warm,
            "fastmango_count": n,
            "exact": exact,
            "grep_s": g_t,
            "grep_count": g_n,
            "rg_s": r_t,
            "rg_count": r_n,
        }
        progress(
            f"{name}: fastmango {took * 1000:.2f} ms ({n}), grep {g_t * 1000:.0f} ms "
            f"({g_n}), rg {r_t * 1000:.0f} ms ({r_n})"
        )
    plan = search.Plan.of(parse_query(COMMON))

    def newest() -> int:
        k = 0
        for _line in search.lines(index, plan):
            k += 1
            if k >= 100:
                break
        return k

    def cold_newest() -> int:
        with index._cache_lock:
            index._blocks_cache.clear()
        return newest()

    took, k = timed(cold_newest, runs)
    out["newest 100 common"] = {"fastmango_s": took, "lines": k}
    index.close()
    return out


def live(runs_lines: int = 300) -> dict[str, Any]:
    """A real agent following a file; write → SSE arrival latency; idle thread CPU."""
    import httpx
    import psutil

    tmp = Path(tempfile.mkdtemp(prefix="fm-bench-logs-"))
    port = free_port()
    (tmp / "fastmango.toml").write_text(
        f'[server]\nport = {port}\n[logs]\npaths = ["{tmp}/app.log"]\n'
    )
    log = tmp / "app.log"
    log.write_text("2026-01-01T00:00:00Z INFO bench: start\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastmango.cli", "agent", "--state-dir", str(tmp / "state")],
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/api/logs/status", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        latencies: list[float] = []
        got = threading.Event()
        ready = threading.Event()

        def client() -> None:
            with httpx.stream(
                "GET", base + "/api/logs/tail", params={"q": "tick"}, timeout=30
            ) as r:
                ready.set()
                for raw in r.iter_lines():
                    if raw.startswith("data:") and '"text"' in raw:
                        d = json.loads(raw[5:])
                        m = re.search(r"sent=(\d+\.\d+)", d["text"])
                        if m:
                            latencies.append(time.time() - float(m.group(1)))
                            if len(latencies) >= runs_lines:
                                got.set()
                                return

        th = threading.Thread(target=client, daemon=True)
        th.start()
        ready.wait(10)
        time.sleep(0.5)
        with log.open("a") as f:
            for i in range(runs_lines):
                f.write(f"2026-01-01T00:00:01Z INFO bench: tick {i} sent={time.time():.6f}\n")
                f.flush()
                time.sleep(0.02)
        got.wait(15)
        status = httpx.get(base + "/api/logs/status", timeout=5).json()
        tid = status.get("thread_id")
        time.sleep(2)
        p = psutil.Process(proc.pid)

        def thread_cpu() -> float:
            for t in p.threads():
                if t.id == tid:
                    return float(t.user_time + t.system_time)
            return float("nan")

        idle_s = 20.0
        c0, pc0, w0 = thread_cpu(), sum(p.cpu_times()[:2]), time.perf_counter()
        time.sleep(idle_s)
        c1, pc1, w1 = thread_cpu(), sum(p.cpu_times()[:2]), time.perf_counter()
        return {
            "lines": len(latencies),
            "p50_s": percentile(latencies, 50),
            "p99_s": percentile(latencies, 99),
            "idle_thread_cpu_pct": (c1 - c0) / (w1 - w0) * 100,
            "idle_agent_cpu_pct": (pc1 - pc0) / (w1 - w0) * 100,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--lines", type=int, default=8_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--naive-lines", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="Build (or reuse) the files in this folder.")
    ap.add_argument("--no-live", action="store_true", help="Skip the live-tail and idle parts.")
    ap.add_argument(
        "--queries-only",
        action="store_true",
        help="Only the query figures, over the raw.log and logs.db of --keep DIR.",
    )
    ap.add_argument(
        "--stage-lines",
        type=int,
        default=2_000_000,
        help="Lines (from the start of the log) timed stage by stage against each "
        "stage's floor; default: one segment of the agent's index. 0: skip.",
    )
    ap.add_argument(
        "--stages-only",
        action="store_true",
        help="Only where ingest time goes, over the raw.log of --keep DIR.",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="fm-bench-logs-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "raw.log"
    if args.stages_only:
        st = stages(raw, work, args.stage_lines)
        emit({"stages": st}, stages_table(st), args.json)
        return
    if args.queries_only:
        q = queries(work / "logs.db", raw, args.runs)
        rows_q = [
            [
                name,
                d.get("fastmango_s", 0) * 1000,
                d.get("fastmango_repeat_s", float("nan")) * 1000,
                d.get("grep_s", float("nan")) * 1000,
                d.get("rg_s", float("nan")) * 1000,
                d.get("fastmango_count", d.get("lines")),
                d.get("rg_count", "-"),
            ]
            for name, d in q.items()
        ]
        emit(
            {"queries": q},
            table(
                [
                    "query",
                    "fastmango ms",
                    "repeat ms",
                    "grep -F -c ms",
                    "rg -F -c ms",
                    "count",
                    "rg count",
                ],
                rows_q,
            ),
            args.json,
        )
        return
    try:
        if not raw.exists() or args.keep is None:
            progress(f"building {args.lines:,} lines in {raw}")
            size = build(raw, args.lines)
        else:
            size = raw.stat().st_size
        lines = args.lines
        db = work / "logs.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        progress("ingesting through tail → redact → parse → index")
        ing = ingest(raw, db)
        disk = db.stat().st_size
        progress(f"naive FTS5 baseline over {min(lines, args.naive_lines):,} lines")
        nv_db = work / "naive.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(nv_db) + suffix).unlink(missing_ok=True)
        nv = naive(raw, nv_db, args.naive_lines)
        nv_db.unlink(missing_ok=True)
        progress("queries")
        q = queries(db, raw, args.runs)
        st: dict[str, Any] = {}
        if args.stage_lines > 0:
            progress(f"where ingest time goes, over the first {args.stage_lines:,} lines")
            st = stages(raw, work, args.stage_lines)
        lv = {} if args.no_live else live()
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    rate_cpu = ing["events"] / ing["cpu_s"]
    figures: dict[str, Any] = {
        "raw_bytes": size,
        "raw_lines": lines,
        "events": ing["events"],
        "ingest_lines_per_s_cpu": rate_cpu,
        "ingest_lines_per_s_wall": ing["events"] / ing["wall_s"],
        "merge_cpu_s": ing["merge_cpu_s"],
        "disk_bytes": disk,
        "disk_ratio": disk / size,
        "naive_fts5": nv,
        "queries": q,
        "live": lv,
        "redactions": ing["redactions"],
        "stages": st,
    }
    rows: list[list[Any]] = [
        [
            "ingest (parse+redact+index), lines/s, 1 core",
            rate_cpu,
            nv["lines_per_s_cpu"],
            "-",
            "-",
            "≥ 100,000",
            "ok" if rate_cpu >= 100_000 else "MISSED",
        ],
        [
            "on disk ÷ raw (text + index)",
            disk / size,
            nv["ratio"],
            "-",
            "-",
            "≤ 1.0",
            "ok" if disk / size <= 1.0 else "MISSED",
        ],
    ]
    goals = {"rare token": 200, "common word": 5, "phrase": 5}  # the issue's; the rest: none
    for name, d in q.items():
        if name == "newest 100 common":
            ms = d["fastmango_s"] * 1000
            rows.append(
                [
                    f"newest 100 '{COMMON}', ms",
                    ms,
                    "-",
                    "-",
                    "-",
                    "≤ 5 ms",
                    "ok" if ms <= 5 else "MISSED",
                ]
            )
            continue
        fm = d["fastmango_s"] * 1000
        speed = d["rg_s"] / d["fastmango_s"] if d["fastmango_s"] else float("nan")
        goal = goals.get(name, 0)
        rows.append(
            [
                f"{name} count, ms ({d['fastmango_count']} vs rg {d['rg_count']})",
                fm,
                "-",
                d["grep_s"] * 1000,
                d["rg_s"] * 1000,
                f"≥ {goal}× rg" if goal else "(no goal)",
                f"{speed:.0f}× rg" + ("" if not goal else (" ok" if speed >= goal else " MISSED")),
            ]
        )
    if lv:
        rows.append(
            [
                "live tail write→SSE p99, s",
                lv["p99_s"],
                "-",
                "-",
                "-",
                "≤ 0.5",
                "ok" if lv["p99_s"] <= 0.5 else "MISSED",
            ]
        )
        rows.append(
            [
                "idle tailer thread CPU, % of a core",
                lv["idle_thread_cpu_pct"],
                "-",
                "-",
                "-",
                "≤ 0.5",
                "ok" if lv["idle_thread_cpu_pct"] <= 0.5 else "MISSED",
            ]
        )
    text = (
        f"log: {lines:,} lines, {size / 1e9:.2f} GB raw; {ing['events']:,} events after "
        f"multiline joining; ingest {ing['wall_s']:.0f} s wall, {ing['cpu_s']:.0f} s CPU "
        f"(of which {ing['merge_cpu_s']:.0f} s merging the index once caught up)\n"
        + table(
            ["figure", "fastmango", "naive FTS5", "grep -F -c ms", "rg -F -c ms", "goal", "result"],
            rows,
        )
    )
    reps = [
        f"{k} {d['fastmango_repeat_s'] * 1000:.2f} ms"
        for k, d in q.items()
        if "fastmango_repeat_s" in d
    ]
    text += "\nrepeated counts (remembered count + ids indexed since): " + ", ".join(reps)
    if lv:
        text += (
            f"\nlive tail p50 {lv['p50_s'] * 1000:.0f} ms over {lv['lines']} lines; whole "
            f"agent idle CPU {lv['idle_agent_cpu_pct']:.2f} % of a core"
        )
    if st:
        text += "\n\n" + stages_table(st)
    emit(figures, text, args.json)


def stages_table(st: dict[str, Any]) -> str:
    """The stages beside their floors, in µs per line, and what the goal leaves."""
    us, fl, g = st["us_per_line"], st["floor_us_per_line"], st["grouped_16_us_per_line"]
    rows = [[name, us[name], fl[name], us[name] - fl[name]] for name in us]
    rows.append(["total", st["total_us"], st["floor_total_us"],
                 st["total_us"] - st["floor_total_us"]])  # fmt: skip
    budget = 1e6 / 100_000
    return (
        f"where ingest time goes, µs per line, over {st['events']:,} lines "
        f"(= {1e6 / st['total_us']:,.0f} lines/s; at every floor "
        f"{1e6 / st['floor_total_us']:,.0f} lines/s)\n"
        + table(["stage", "agent", "floor (its one C call)", "above the floor"], rows)
        + f"\nthe goal, 100,000 lines/s, is {budget:.0f} µs per line: "
        + (
            f"the floors leave {left:.1f} µs"
            if (left := budget - st["floor_total_us"]) >= 0
            else f"the floors alone are {-left:.1f} µs over it, leaving nothing"
        )
        + " for all the stages do beyond their one C call, which takes "
        f"{st['total_us'] - st['floor_total_us']:.1f} µs\n"
        + "FTS5 alone, 16 lines to a row instead of one (no exact per-line counts): "
        f"write {g[0]:.2f} + merge {g[1]:.2f} µs per line, against "
        f"{fl['index write']:.2f} + {fl['index merge']:.2f} for a row per line"
    )


if __name__ == "__main__":
    main()
