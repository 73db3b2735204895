"""PostgreSQL under postgres_exporter's names, plus lock-wait chains and top queries.

One collector watches every configured server (the app's ``database_url`` and
``collectors.postgres.extra_urls``); each series carries a ``server`` label,
``host:port/dbname`` of its DSN (never the password). Per server it keeps an asyncpg
pool of at most two connections (``application_name=fastmango``, a server-side
``statement_timeout``, JIT off, no reset query on release) and per collection:

1. runs :data:`~fastmango.collector.pg_queries.SERVER` (version, settings, replica
   lag). A connection that died since the last cycle is replaced and the query retried
   once; if the server still can't be reached the collection reports ``pg_up 0`` (it
   does not raise, so the series stays on ``/metrics``), logs one warning per down
   streak, and tries again only after a backoff (1 s doubling to ``backoff_max``);
2. runs the other statements of :data:`~fastmango.collector.pg_queries.QUERIES` that
   apply to the server's version and extensions, concurrently over the pool. A statement
   that fails drops only its own series and counts in
   ``fastmango_postgres_query_errors_total{query}``.

``pg_stat_database_*`` keep postgres_exporter's names but are typed gauges: the exporter
declares them counters without the ``_total`` suffix, which the catalogue forbids;
``rate()`` works on them all the same. Top queries reach ``/metrics`` only as ranks
(``rank="1"``…K plus ``"other"``) of the execution time spent in the last collection
interval; the statements behind the ranks, their text with literals stripped, and the
blocker chains of waiting backends are in :meth:`PostgresCollector.details`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from fastmango.collector import pg_queries as q
from fastmango.collector.base import Clock
from fastmango.redact import MASK, redact_secrets
from fastmango.series import Kind, MetricSpec, Sample, SampleBuilder, spec_index

log = logging.getLogger("fastmango.collector.postgres")

STAT_DATABASE_COLUMNS = ("numbackends", "xact_commit", "xact_rollback", "blks_read",
    "blks_hit", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated", "tup_deleted",
    "conflicts", "temp_files", "temp_bytes", "deadlocks")  # fmt: skip
ACTIVITY_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)",
                   "fastpath function call", "disabled")  # fmt: skip
LOCK_MODES = ("accesssharelock", "rowsharelock", "rowexclusivelock", "shareupdateexclusivelock",
    "sharelock", "sharerowexclusivelock", "exclusivelock", "accessexclusivelock",
    "sireadlock")  # fmt: skip
#: column of the bgwriter query → series: postgres_exporter's stat_bgwriter collector and,
#: for PostgreSQL 17+, its stat_checkpointer collector
BGWRITER_SERIES = {
    **{c: f"pg_stat_bgwriter_{c}_total" for c in ("checkpoints_timed", "checkpoints_req",
        "checkpoint_write_time", "checkpoint_sync_time", "buffers_checkpoint", "buffers_clean",
        "maxwritten_clean", "buffers_backend", "buffers_backend_fsync", "buffers_alloc")},
    **{c: f"pg_stat_checkpointer_{c}_total" for c in ("num_timed", "num_requested",
        "restartpoints_timed", "restartpoints_req", "restartpoints_done", "write_time",
        "sync_time", "buffers_written")},
}  # fmt: skip


def connection_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the server can't be talked to", not "this statement failed"."""
    import asyncpg  # imported on first use: 13 MB and 0.1 s the agent spares without a DSN

    return (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
            asyncpg.CrashShutdownError, asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidCatalogNameError, asyncpg.TooManyConnectionsError)  # fmt: skip


_PGX, _FM = "postgres_exporter", "fastmango"


def _spec(name: str, kind: Kind, source: str, help: str, *labels: str) -> MetricSpec:
    stem = name.removesuffix("_total")
    unit = next((u for u in ("bytes", "seconds") if stem.endswith("_" + u)), "")
    return MetricSpec(name, kind, help, ("server", *labels), unit, source=source)


SPECS: list[MetricSpec] = [
    _spec("pg_up", "gauge", _PGX, "Whether the last collection reached the server (1) or not (0)."),
    _spec("pg_settings_max_connections", "gauge", _PGX, "Server setting max_connections."),
    _spec("pg_replication_is_replica", "gauge", _PGX, "Indicates if the server is a replica."),
    _spec("pg_replication_lag_seconds", "gauge", _PGX, "Replication lag behind "
          "primary in seconds."),
    _spec("pg_replication_last_replay_seconds", "gauge", _PGX, "Age of last replay in seconds."),
    _spec("pg_stat_database_numbackends", "gauge", _PGX, "Number of backends currently "
          "connected to this database.", "datname"),
    *(_spec(f"pg_stat_database_{c}", "gauge", _PGX, f"pg_stat_database.{c}, cumulative since "
            "the last stats reset (a counter in postgres_exporter; no _total, so a gauge here).",
            "datname")
      for c in STAT_DATABASE_COLUMNS[1:]),
    _spec("pg_database_size_bytes", "gauge", _PGX, "Disk space used by the database.", "datname"),
    _spec("pg_cache_hit_ratio", "gauge", _FM, "Share of block reads served from shared buffers "
          "since the previous collection (1 when there were none).", "datname"),
    _spec("pg_stat_activity_count", "gauge", _PGX, "Number of connections in this state.",
          "datname", "state"),
    _spec("pg_stat_activity_max_tx_duration", "gauge", _PGX, "Max duration in seconds any "
          "active transaction has been running.", "datname", "state"),
    _spec("pg_longest_transaction_seconds", "gauge", _FM, "Age of the oldest open transaction.",
          "datname"),
    _spec("pg_longest_query_seconds", "gauge", _FM, "Age of the longest running query.",
          "datname"),
    _spec("pg_idle_in_transaction_backends", "gauge", _FM, "Backends idle in transaction "
          "(aborted or not).", "datname"),
    _spec("pg_locks_count", "gauge", _PGX, "Number of locks, held or awaited.", "datname", "mode"),
    _spec("pg_lock_waiting_backends", "gauge", _FM, "Backends waiting for a heavyweight lock.",
          "datname"),
    _spec("pg_lock_wait_longest_seconds", "gauge", _FM, "Longest current lock wait.", "datname"),
    *(_spec(name, "counter", _PGX, f"pg_stat_{name.split('_')[2]}.{col}"
            + (" (milliseconds)." if col.endswith("_time") else "."))
      for col, name in BGWRITER_SERIES.items()),
    _spec("pg_top_query_exec_seconds", "gauge", _FM, "Execution seconds spent in the last "
          "collection interval by the statement at this rank in pg_stat_statements, or by all "
          'the others (rank="other").', "rank"),
    _spec("pg_top_query_calls", "gauge", _FM, "Calls in the last collection interval of the "
          "statement at this rank, or of all the others.", "rank"),
    _spec("fastmango_postgres_query_errors_total", "counter", _FM, "Monitoring statements that "
          "failed, by statement.", "query"),
    _spec("fastmango_postgres_collection_seconds", "gauge", _FM, "Duration of the last "
          "collection from this server."),
]  # fmt: skip
_INDEX = spec_index(SPECS)

StatementKey = tuple[int, int, int]  # userid, dbid, queryid
StatementStat = tuple[int, float, int]  # calls, total milliseconds, rows


# -- pure helpers ---------------------------------------------------------------------------


def dsn_password(dsn: str) -> str | None:
    """The password a DSN carries, in its user info or its ``password`` parameter."""
    parts = urlsplit(dsn)
    if parts.password:
        return unquote(parts.password)
    values = parse_qs(parts.query).get("password")
    return values[0] if values else None


def server_label(dsn: str) -> str:
    """``host:port/dbname`` of a ``postgresql://`` DSN; never its user or password."""
    parts = urlsplit(dsn)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    host = parts.hostname or params.get("host", "localhost")
    port = parts.port if parts.port else params.get("port", "5432")
    dbname = unquote(parts.path.lstrip("/")) or params.get("dbname") or parts.username or ""
    return f"{host}:{port}/{dbname}"


def safe_error(exc: BaseException, password: str | None) -> str:
    """An exception as text fit for a log line or the API: secrets redacted, short."""
    # "Type: message" would read as a key: value pair to redact_secrets ("InvalidPasswordError:
    # password authentication failed" → "****"), hence the type after the message
    text = f"{exc} ({type(exc).__name__})" if str(exc) else type(exc).__name__
    if password:
        text = text.replace(password, MASK)
    text = redact_secrets(text)
    return text if len(text) <= 500 else text[:499] + "…"


def statement_deltas(
    prev: Mapping[StatementKey, StatementStat], cur: Mapping[StatementKey, StatementStat]
) -> list[tuple[StatementKey, StatementStat]]:
    """Per statement, what ``cur`` adds to ``prev``, busiest first, idle ones left out. A
    statement new since ``prev`` (or reset, or evicted and back) counts from zero."""
    out: list[tuple[StatementKey, StatementStat]] = []
    for key, (calls, ms, rows) in cur.items():
        p = prev.get(key)
        if p is not None and calls >= p[0] and ms >= p[1]:
            calls, ms, rows = calls - p[0], ms - p[1], max(0, rows - p[2])
        if calls > 0 or ms > 0:
            out.append((key, (calls, ms, rows)))
    out.sort(key=lambda item: item[1][1], reverse=True)
    return out


def lock_chains(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each waiting backend (``blocked_by`` not None) with the chain of every backend that
    blocks it, directly or through others, and the root blockers (those not waiting)."""
    by_pid = {r["pid"]: r for r in rows}
    out: list[dict[str, Any]] = []
    for r in by_pid.values():
        if r["blocked_by"] is None:
            continue
        chain: list[dict[str, Any]] = []
        seen, frontier = {r["pid"]}, list(r["blocked_by"])
        while frontier:
            pid = frontier.pop(0)
            if pid in seen:
                continue
            seen.add(pid)
            b = by_pid.get(pid)
            blocked_by = list(b["blocked_by"] or []) if b is not None else []
            chain.append(
                {
                    "pid": pid,
                    "state": b["state"] if b is not None else None,
                    "xact_age_seconds": b["xact_age"] if b is not None else None,
                    "waiting": b is not None and b["blocked_by"] is not None,
                    "blocked_by": blocked_by,
                    "query": q.strip_literals(b["query"] or "") if b is not None else None,
                }
            )
            frontier.extend(blocked_by)
        out.append(
            {
                "pid": r["pid"],
                "datname": r["datname"],
                "usename": r["usename"],
                "application_name": r["application_name"],
                "waited_seconds": r["waited"] or 0.0,
                "wait_event_type": r["wait_event_type"],
                "wait_event": r["wait_event"],
                "query": q.strip_literals(r["query"] or ""),
                "blocked_by": list(r["blocked_by"]),
                "chain": chain,
                "root_blockers": [c["pid"] for c in chain if not c["waiting"]],
            }
        )
    out.sort(key=lambda w: w["waited_seconds"], reverse=True)
    return out


# -- per-server state -----------------------------------------------------------------------


class _Server:
    """One watched server: its pool, health, counters and what the last cycle found."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.label = server_label(dsn)
        self.password = dsn_password(dsn)
        self.pool: Any = None
        self.up = False
        self.failures = 0  # failed attempts in the current down streak
        self.next_attempt = 0.0
        self.down_since: float | None = None
        self.last_error: str | None = None
        self.version_num = 0
        self.version = ""
        self.extensions: dict[str, q.Version] = {}
        self.errors = {query.name: 0 for query in q.QUERIES}
        self.query_errors: dict[str, str] = {}  # statement → last error, while failing
        self.cycle = 0
        self.cached: dict[str, tuple[int, list[Any]]] = {}  # every>1 rows: (cycle, rows)
        self.blocks: dict[str, tuple[int, int]] = {}  # datname → (hit, read)
        self.statements: dict[StatementKey, StatementStat] | None = None
        self.statements_at = 0.0
        self.texts: dict[StatementKey, tuple[str, str | None, str | None]] = {}
        self.top: dict[str, Any] = {"interval_seconds": None, "statements": []}
        self.lock_waits: list[dict[str, Any]] = []
        self.collected_at: float | None = None
        self.seconds = 0.0
        self.queries_issued = 0

    def details(self) -> dict[str, Any]:
        return {
            "server": self.label,
            "up": self.up,
            "version": self.version or None,
            "down_since": self.down_since,
            "last_error": self.last_error,
            "pg_stat_statements": ".".join(map(str, self.extensions["pg_stat_statements"]))
            if "pg_stat_statements" in self.extensions
            else None,
            "collected_at": self.collected_at,
            "collection_seconds": self.seconds,
            "queries_last_cycle": self.queries_issued,
            "query_errors": {
                n: {"errors_total": c, "last_error": self.query_errors.get(n)}
                for n, c in self.errors.items()
            },
            "lock_waits": self.lock_waits,
            "top_queries": self.top,
        }


async def _no_reset(con: Any) -> None:
    """Monitoring statements leave no session state: skip asyncpg's four-statement reset."""


class PostgresCollector:
    """postgres_exporter's series, lock waits and top queries of one or more servers."""

    name: ClassVar[str] = "postgres"
    specs: ClassVar[list[MetricSpec]] = SPECS

    def __init__(
        self,
        dsns: Sequence[str],
        *,
        statement_timeout: float = 2.0,
        timeout: float = 4.0,
        top_queries: int = 10,
        details_top: int = 50,
        backoff_max: float = 60.0,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        create_pool: Callable[..., Any] | None = None,
    ) -> None:
        self._servers = [_Server(d) for d in dsns]
        self._statement_timeout = statement_timeout
        self._timeout = timeout  # a server's whole collection, connecting included
        self._top = top_queries
        self._details_top = max(details_top, top_queries)
        self._backoff_max = backoff_max
        self._clock = clock
        self._monotonic = monotonic
        self._create_pool = create_pool
        self._connection_errors: tuple[type[BaseException], ...] = (OSError, TimeoutError)

    async def start(self) -> None:
        """Create the pools; they connect on first use, so a server down now is no error."""
        import asyncpg

        self._connection_errors = connection_errors()
        create_pool = self._create_pool or asyncpg.create_pool
        for s in self._servers:
            if s.pool is None:
                s.pool = await create_pool(
                    s.dsn,
                    min_size=0,
                    max_size=2,
                    reset=_no_reset,
                    timeout=min(self._timeout, max(1.0, self._statement_timeout)),
                    server_settings={
                        "application_name": "fastmango",
                        "jit": "off",
                        "statement_timeout": str(int(self._statement_timeout * 1000)),
                        "lock_timeout": str(int(self._statement_timeout * 1000)),
                    },
                )

    async def close(self) -> None:
        for s in self._servers:
            pool, s.pool = s.pool, None
            if pool is None:
                continue
            try:
                await asyncio.wait_for(pool.close(), 2.0)
            except Exception:  # a hung or broken pool: drop its sockets
                pool.terminate()

    def details(self) -> dict[str, Any]:
        """Per server: health, blocker chains of waiting backends, top statements."""
        return {"servers": [s.details() for s in self._servers]}

    async def collect(self) -> list[Sample]:
        now = self._clock()
        builders = [SampleBuilder(_INDEX, now) for _ in self._servers]
        await asyncio.gather(
            *(self._collect_server(s, b) for s, b in zip(self._servers, builders, strict=True))
        )
        return [sample for b in builders for sample in b.samples]

    # -- one server -------------------------------------------------------------------
    async def _collect_server(self, s: _Server, b: SampleBuilder) -> None:
        began = self._monotonic()
        s.queries_issued = 0
        if s.up or began >= s.next_attempt:
            deadline = asyncio.get_running_loop().time() + self._timeout
            try:
                server = await self._server_row(s, deadline)
            except Exception as exc:
                self._down(s, exc, began)
            else:
                self._up(s, server)
                self._guarded(s, b, q.SERVER.name, self._emit_server, [server])
                await self._queries(s, b, deadline)
        for name, count in s.errors.items():
            b.add("fastmango_postgres_query_errors_total", count, server=s.label, query=name)
        b.add("pg_up", s.up, server=s.label)
        s.seconds = self._monotonic() - began
        s.collected_at = b.timestamp
        b.add("fastmango_postgres_collection_seconds", s.seconds, server=s.label)

    async def _server_row(self, s: _Server, deadline: float) -> Any:
        if s.pool is None:
            await self.start()
        try:
            return (await self._fetch(s, q.SERVER.variants[0].sql, deadline))[0]
        except self._connection_errors:
            await s.pool.expire_connections()
            if not s.up:
                raise
        # it was up: the connection may have died since; one retry on a fresh one
        return (await self._fetch(s, q.SERVER.variants[0].sql, deadline))[0]

    def _down(self, s: _Server, exc: BaseException, now: float) -> None:
        s.up = False
        s.failures += 1
        s.next_attempt = now + min(self._backoff_max, 2.0 ** (s.failures - 1))
        s.last_error = safe_error(exc, s.password)
        s.statements, s.lock_waits = None, []
        if s.failures == 1:
            s.down_since = self._clock()
            log.warning(
                "postgres %s unreachable: %s (retrying with backoff)", s.label, s.last_error
            )
        else:
            log.debug(
                "postgres %s still unreachable (%d tries): %s", s.label, s.failures, s.last_error
            )

    def _up(self, s: _Server, row: Any) -> None:
        if s.failures:
            log.info("postgres %s reachable again after %d failed tries", s.label, s.failures)
        s.up, s.failures, s.down_since, s.last_error = True, 0, None, None
        s.cycle += 1
        s.version_num, s.version = row["version_num"], row["version"]
        pgss = q.parse_version(row["pgss_version"])
        s.extensions = {"pg_stat_statements": pgss} if pgss else {}

    async def _fetch(self, s: _Server, sql: str, deadline: float, *args: Any) -> list[Any]:
        s.queries_issued += 1
        async with asyncio.timeout_at(deadline), s.pool.acquire() as con:
            rows: list[Any] = await con.fetch(sql, *args)
            return rows

    async def _run(
        self, s: _Server, query: q.PgQuery, deadline: float, *args: Any
    ) -> list[Any] | None:
        """Rows of one statement; None when it does not apply or failed (then counted)."""
        sql = query.sql_for(s.version_num, s.extensions)
        if sql is None:
            return None
        try:
            rows = await self._fetch(s, sql, deadline, *args)
        except Exception as exc:
            if isinstance(exc, self._connection_errors) and not isinstance(exc, TimeoutError):
                await s.pool.expire_connections()
            self._query_failed(s, query.name, exc)
            return None
        if s.query_errors.pop(query.name, None) is not None:
            log.info("postgres %s: query %s works again", s.label, query.name)
        return rows

    def _query_failed(self, s: _Server, name: str, exc: BaseException) -> None:
        s.errors[name] += 1
        first = name not in s.query_errors
        s.query_errors[name] = safe_error(exc, s.password)
        (log.warning if first else log.debug)(
            "postgres %s: query %s failed: %s", s.label, name, s.query_errors[name]
        )

    def _guarded(
        self, s: _Server, b: SampleBuilder, name: str, emit: Callable[..., None], *args: Any
    ) -> None:
        """Run one statement's emitter; a surprise in its rows drops only its samples."""
        mark = len(b.samples)
        try:
            emit(s, b, *args)
        except Exception as exc:
            del b.samples[mark:]
            self._query_failed(s, name, exc)

    async def _queries(self, s: _Server, b: SampleBuilder, deadline: float) -> None:
        s.lock_waits = []  # what this cycle finds, or nothing when its query fails
        todo = [x for x in q.QUERIES if x not in (q.SERVER, q.STATEMENT_TEXTS)]
        due = [
            x for x in todo if x.name not in s.cached or s.cycle - s.cached[x.name][0] >= x.every
        ]
        fetched = await asyncio.gather(*(self._run(s, x, deadline) for x in due))
        rows = dict(zip((x.name for x in due), fetched, strict=True))
        for x in todo:
            if x.every > 1:
                fresh = rows.get(x.name)
                if fresh is not None:
                    s.cached[x.name] = (s.cycle, fresh)
                elif x.name in rows:
                    s.cached.pop(x.name, None)
                rows[x.name] = s.cached[x.name][1] if x.name in s.cached else None
        activity = rows.get(q.ACTIVITY.name) or []
        datnames = {r["datname"] for r in activity}
        emitters: list[tuple[q.PgQuery, Callable[..., None], tuple[Any, ...]]] = [
            (q.DATABASE, self._emit_stat_database, ()),
            (q.DATABASE_SIZE, self._emit_database_size, ()),
            (q.ACTIVITY, self._emit_stat_activity, ()),
            (q.LOCKS, self._emit_locks, (datnames,)),
            (q.LOCK_WAITS, self._emit_lock_waits, (datnames,)),
            (q.BGWRITER, self._emit_bgwriter, ()),
        ]
        for x, emit, extra in emitters:
            if rows.get(x.name) is not None:
                self._guarded(s, b, x.name, emit, rows[x.name], *extra)
        statements = rows.get(q.STATEMENTS.name)
        if statements is None:
            s.statements = None  # no extension, or it failed: start deltas afresh
            return
        mark = len(b.samples)
        try:
            await self._top_queries(s, b, statements, deadline)
        except Exception as exc:
            del b.samples[mark:]
            self._query_failed(s, q.STATEMENTS.name, exc)

    # -- rows → samples ---------------------------------------------------------------
    def _emit_server(self, s: _Server, b: SampleBuilder, rows: list[Any]) -> None:
        r, labels = rows[0], {"server": s.label}
        b.add("pg_settings_max_connections", r["max_connections"], **labels)
        b.add("pg_replication_is_replica", r["is_replica"], **labels)
        b.add("pg_replication_lag_seconds", r["lag_seconds"], **labels)
        b.add("pg_replication_last_replay_seconds", r["last_replay_seconds"], **labels)

    def _emit_stat_database(self, s: _Server, b: SampleBuilder, rows: list[Any]) -> None:
        blocks: dict[str, tuple[int, int]] = {}
        for r in rows:
            labels = {"server": s.label, "datname": r["datname"]}
            for c in STAT_DATABASE_COLUMNS:
                b.add(f"pg_stat_database_{c}", r[c], **labels)
            hit, read = blocks[r["datname"]] = (r["blks_hit"], r["blks_read"])
            p = s.blocks.get(r["datname"])
            if p is not None and hit >= p[0] and read >= p[1]:
                hit, read = hit - p[0], read - p[1]
            b.add("pg_cache_hit_ratio", hit / (hit + read) if hit + read else 1.0, **labels)
        s.blocks = blocks

    def _emit_database_size(self, s: _Server, b: SampleBuilder, rows: list[Any]) -> None:
        for r in rows:
            b.add("pg_database_size_bytes", r["size_bytes"], server=s.label, datname=r["datname"])

    def _emit_stat_activity(self, s: _Server, b: SampleBuilder, rows: list[Any]) -> None:
        found = {(r["datname"], r["state"]): r for r in rows if r["state"] in ACTIVITY_STATES}
        for datname in sorted({r["datname"] for r in rows}):
            labels = {"server": s.label, "datname": datname}
            longest_tx = longest_query = 0.0
            for state in ACTIVITY_STATES:
                r = found.get((datname, state))
                count, tx = (r["count"], r["max_tx_duration"]) if r is not None else (0, 0.0)
                b.add("pg_stat_activity_count", count, state=state, **labels)
                b.add("pg_stat_activity_max_tx_duration", tx, state=state, **labels)
                longest_tx = max(longest_tx, tx)
                if r is not None:
                    longest_query = max(longest_query, r["max_query_duration"])
            idle_tx = sum(
                found[datname, st]["count"] for st in ACTIVITY_STATES[2:4] if (datname, st) in found
            )
            b.add("pg_longest_transaction_seconds", longest_tx, **labels)
            b.add("pg_longest_query_seconds", longest_query, **labels)
            b.add("pg_idle_in_transaction_backends", idle_tx, **labels)

    def _emit_locks(self, s: _Server, b: SampleBuilder, rows: list[Any], dbs: set[str]) -> None:
        counts = {(r["datname"], r["mode"]): r["count"] for r in rows}
        for datname in sorted(dbs | {d for d, _ in counts}):
            for mode in LOCK_MODES:
                b.add(
                    "pg_locks_count",
                    counts.get((datname, mode), 0),
                    server=s.label,
                    datname=datname,
                    mode=mode,
                )

    def _emit_lock_waits(
        self, s: _Server, b: SampleBuilder, rows: list[Any], dbs: set[str]
    ) -> None:
        chains = lock_chains(rows)
        waits: dict[str, list[float]] = {d: [] for d in dbs}
        for w in chains:
            waits.setdefault(w["datname"] or "", []).append(w["waited_seconds"])
        for datname, seconds in sorted(waits.items()):
            labels = {"server": s.label, "datname": datname}
            b.add("pg_lock_waiting_backends", len(seconds), **labels)
            b.add("pg_lock_wait_longest_seconds", max(seconds, default=0.0), **labels)
        s.lock_waits = chains[:100]

    def _emit_bgwriter(self, s: _Server, b: SampleBuilder, rows: list[Any]) -> None:
        for col, value in rows[0].items():
            if col in BGWRITER_SERIES and value is not None:
                b.add(BGWRITER_SERIES[col], value, server=s.label)

    async def _top_queries(
        self, s: _Server, b: SampleBuilder, rows: list[Any], deadline: float
    ) -> None:
        now = self._monotonic()
        cur: dict[StatementKey, StatementStat] = {}
        for r in rows:  # since 1.9 a statement may have a toplevel and a nested entry
            key = (r["userid"], r["dbid"], r["queryid"])
            calls, ms, n = cur.get(key, (0, 0.0, 0))
            cur[key] = (calls + r["calls"], ms + r["total_ms"], n + r["rows"])
        prev, prev_at = s.statements, s.statements_at
        s.statements, s.statements_at = cur, now
        if prev is None:
            return
        deltas = statement_deltas(prev, cur)
        ranked = [d for _, d in deltas[: self._top]]
        ranked += [(0, 0.0, 0)] * (self._top - len(ranked))
        rest = [d for _, d in deltas[self._top :]]
        for rank, (calls, ms, _n) in [
            *((str(i), d) for i, d in enumerate(ranked, 1)),
            ("other", (sum(d[0] for d in rest), sum(d[1] for d in rest), 0)),
        ]:
            b.add("pg_top_query_exec_seconds", ms / 1000, server=s.label, rank=rank)
            b.add("pg_top_query_calls", calls, server=s.label, rank=rank)
        shown = deltas[: self._details_top]
        s.texts = {k: v for k, v in s.texts.items() if k in cur}
        missing = sorted({k[2] for k, _ in shown if k not in s.texts})
        if missing:
            for r in await self._run(s, q.STATEMENT_TEXTS, deadline, missing) or ():
                key = (r["userid"], r["dbid"], r["queryid"])
                s.texts[key] = (q.strip_literals(r["query"] or ""), r["datname"], r["usename"])
        s.top = {"interval_seconds": now - prev_at, "statements": top_table(shown, s.texts)}


def top_table(
    shown: Sequence[tuple[StatementKey, StatementStat]],
    texts: Mapping[StatementKey, tuple[str, str | None, str | None]],
) -> list[dict[str, Any]]:
    """The API's rows of the busiest statements (deltas over one interval)."""
    total_ms = sum(ms for _, (_c, ms, _n) in shown) or 1.0
    out = []
    for rank, (key, (calls, ms, n)) in enumerate(shown, 1):
        text, datname, usename = texts.get(key, ("", None, None))
        out.append(
            {
                "rank": rank,
                "queryid": str(key[2]),
                "query": text,
                "datname": datname,
                "usename": usename,
                "calls": calls,
                "total_seconds": ms / 1000,
                "mean_seconds": ms / 1000 / calls if calls else 0.0,
                "rows": n,
                "share": ms / total_ms,
            }
        )
    return out
