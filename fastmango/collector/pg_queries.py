"""Every SQL statement the postgres collector runs, declared as data.

Each :class:`PgQuery` names the series (or the ``details()`` section) its rows feed and
holds one SQL text per range of server versions (``server_version_num``, PostgreSQL 12
to 17) and, for queries over an extension's view, per range of the extension's version.
Where PostgreSQL changed a catalogue the variants say so:

- 14 added ``pg_locks.waitstart`` (when a backend began waiting); before it the wait is
  measured from ``query_start``;
- 17 moved the checkpoint counters from ``pg_stat_bgwriter`` to ``pg_stat_checkpointer``
  and dropped ``buffers_backend[_fsync]`` (now in ``pg_stat_io``);
- ``pg_stat_statements`` 1.8 (PostgreSQL 13) renamed ``total_time`` to
  ``total_exec_time``; the extension's version, not the server's, decides (a server
  upgraded without ``ALTER EXTENSION ... UPDATE`` keeps the old columns).

:func:`strip_literals` removes the values from query text (``pg_stat_activity`` shows
statements as clients sent them) before any of it leaves the collector.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

Version = tuple[int, ...]

PG12, PG13, PG14, PG17 = 120000, 130000, 140000, 170000


@dataclass(frozen=True, slots=True)
class Variant:
    """One SQL text, valid for ``min_server <= server_version_num < max_server`` and, when
    its query reads an extension, ``min_ext <= extension version < max_ext``."""

    sql: str
    min_server: int = PG12
    max_server: int | None = None
    min_ext: Version = ()
    max_ext: Version | None = None

    def matches(self, server: int, ext: Version | None) -> bool:
        if server < self.min_server or (self.max_server is not None and server >= self.max_server):
            return False
        if ext is None:
            return not self.min_ext and self.max_ext is None
        return ext >= self.min_ext and (self.max_ext is None or ext < self.max_ext)


@dataclass(frozen=True, slots=True)
class PgQuery:
    """One monitoring statement: its name (the ``query`` label of the error counter),
    what it feeds, its variants, and what it needs."""

    name: str
    feeds: tuple[str, ...]
    variants: tuple[Variant, ...]
    #: runs only where this extension is installed in the connected database
    extension: str | None = None
    #: run every n-th collection only (its last rows are reused in between)
    every: int = 1

    def sql_for(self, server: int, extensions: Mapping[str, Version]) -> str | None:
        """The SQL for this server, or None when it does not apply (no variant, or the
        extension is missing)."""
        ext: Version | None = None
        if self.extension is not None:
            ext = extensions.get(self.extension)
            if ext is None:
                return None
        for v in self.variants:
            if v.matches(server, ext):
                return v.sql
        return None


def parse_version(text: str | None) -> Version | None:
    """``"1.10"`` → ``(1, 10)``; None for None or text that is not a dotted number."""
    if not text:
        return None
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return None


# -- the statements -----------------------------------------------------------------------

#: version, settings and the replica's lag; version-independent, run first every cycle
SERVER = PgQuery(
    "server",
    (
        "pg_up",
        "pg_settings_max_connections",
        "pg_replication_is_replica",
        "pg_replication_lag_seconds",
        "pg_replication_last_replay_seconds",
    ),
    (
        Variant(
            """SELECT current_setting('server_version_num')::int AS version_num,
  current_setting('server_version') AS version,
  current_setting('max_connections')::int AS max_connections,
  pg_is_in_recovery() AS is_replica,
  CASE WHEN NOT pg_is_in_recovery() THEN 0
       WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
       ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp()))
  END::float8 AS lag_seconds,
  coalesce(greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())), 0)::float8
    AS last_replay_seconds,
  (SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements') AS pgss_version""",
            min_server=0,
        ),
    ),
)

DATABASE = PgQuery(
    "stat_database",
    ("pg_stat_database_*", "pg_cache_hit_ratio"),
    (
        Variant(
            """SELECT datname, numbackends, xact_commit, xact_rollback, blks_read, blks_hit,
  tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted, conflicts, temp_files,
  temp_bytes, deadlocks
FROM pg_stat_database WHERE datname IS NOT NULL"""
        ),
    ),
)

DATABASE_SIZE = PgQuery(
    "database_size",
    ("pg_database_size_bytes",),
    (
        Variant(
            """SELECT datname, pg_database_size(oid) AS size_bytes FROM pg_database
WHERE has_database_privilege(oid, 'CONNECT') OR pg_has_role('pg_read_all_stats', 'MEMBER')"""
        ),
    ),
    every=6,  # walks every file of every database: once a minute at the default interval
)

ACTIVITY = PgQuery(
    "stat_activity",
    (
        "pg_stat_activity_count",
        "pg_stat_activity_max_tx_duration",
        "pg_longest_query_seconds",
        "pg_longest_transaction_seconds",
        "pg_idle_in_transaction_backends",
    ),
    (
        Variant(
            """SELECT d.datname, a.state, coalesce(a.count, 0) AS count,
  coalesce(a.max_tx_duration, 0) AS max_tx_duration,
  coalesce(a.max_query_duration, 0) AS max_query_duration
FROM pg_database d LEFT JOIN (
  SELECT datname, state, count(*) AS count,
    max(extract(epoch FROM now() - xact_start))::float8 AS max_tx_duration,
    (max(extract(epoch FROM now() - query_start)) FILTER (WHERE state = 'active'))::float8
      AS max_query_duration
  FROM pg_stat_activity WHERE state IS NOT NULL AND pid <> pg_backend_pid()
  GROUP BY datname, state) a ON a.datname = d.datname
WHERE d.datallowconn"""
        ),
    ),
)

LOCKS = PgQuery(
    "locks",
    ("pg_locks_count",),
    (
        Variant(
            """SELECT d.datname, lower(l.mode) AS mode, count(*) AS count
FROM pg_locks l JOIN pg_database d ON d.oid = l.database
GROUP BY d.datname, lower(l.mode)"""
        ),
    ),
)

_LOCK_WAITS = """WITH waiting AS (
  SELECT pid, pg_blocking_pids(pid) AS blocked_by
  FROM pg_stat_activity WHERE wait_event_type = 'Lock')
SELECT a.pid, a.datname, a.usename, a.application_name, a.state, a.wait_event_type,
  a.wait_event, w.blocked_by,
  extract(epoch FROM now() - a.xact_start)::float8 AS xact_age,
  CASE WHEN w.pid IS NOT NULL THEN extract(epoch FROM clock_timestamp() - {since})::float8
  END AS waited,
  left(a.query, 4096) AS query
FROM pg_stat_activity a LEFT JOIN waiting w ON w.pid = a.pid
WHERE w.pid IS NOT NULL OR a.pid IN (SELECT unnest(blocked_by) FROM waiting)"""

LOCK_WAITS = PgQuery(
    "lock_waits",
    ("pg_lock_waiting_backends", "pg_lock_wait_longest_seconds", "details.lock_waits"),
    (
        Variant(_LOCK_WAITS.format(since="a.query_start"), max_server=PG14),
        Variant(
            _LOCK_WAITS.format(
                since="coalesce((SELECT min(l.waitstart) FROM pg_locks l"
                " WHERE l.pid = a.pid AND NOT l.granted), a.query_start)"
            ),
            min_server=PG14,
        ),
    ),
)

_BGWRITER_16 = """SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time,
  checkpoint_sync_time, buffers_checkpoint, buffers_clean, maxwritten_clean, buffers_backend,
  buffers_backend_fsync, buffers_alloc
FROM pg_stat_bgwriter"""
_BGWRITER_17 = """SELECT c.num_timed, c.num_requested, c.restartpoints_timed, c.restartpoints_req,
  c.restartpoints_done, c.write_time, c.sync_time, c.buffers_written, b.buffers_clean,
  b.maxwritten_clean, b.buffers_alloc
FROM pg_stat_checkpointer c, pg_stat_bgwriter b"""

BGWRITER = PgQuery(
    "bgwriter",
    ("pg_stat_bgwriter_*_total", "pg_stat_checkpointer_*_total"),
    (Variant(_BGWRITER_16, max_server=PG17), Variant(_BGWRITER_17, min_server=PG17)),
)

_STATEMENTS = """SELECT userid::int8 AS userid, dbid::int8 AS dbid, queryid, calls,
  {total} AS total_ms, rows
FROM pg_stat_statements(false) WHERE queryid IS NOT NULL"""

STATEMENTS = PgQuery(
    "stat_statements",
    ("pg_top_query_exec_seconds", "pg_top_query_calls", "details.top_queries"),
    (
        Variant(_STATEMENTS.format(total="total_time"), max_ext=(1, 8)),
        Variant(_STATEMENTS.format(total="total_exec_time"), min_ext=(1, 8)),
    ),
    extension="pg_stat_statements",
)

#: the text of the statements the top list shows that are not cached yet ($1: queryids);
#: reading texts loads pg_stat_statements' whole text file, so it runs only on a miss
STATEMENT_TEXTS = PgQuery(
    "stat_statements_text",
    ("details.top_queries",),
    (
        Variant(
            """SELECT s.userid::int8 AS userid, s.dbid::int8 AS dbid, s.queryid,
  left(s.query, 4096) AS query, d.datname, r.rolname AS usename
FROM pg_stat_statements(true) s
  LEFT JOIN pg_database d ON d.oid = s.dbid LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.queryid = ANY($1::int8[])""",
            min_ext=(1, 0),
        ),
    ),
    extension="pg_stat_statements",
)

#: every statement, in the order a collection runs them (SERVER first, alone)
QUERIES: tuple[PgQuery, ...] = (
    SERVER,
    DATABASE,
    DATABASE_SIZE,
    ACTIVITY,
    LOCKS,
    LOCK_WAITS,
    BGWRITER,
    STATEMENTS,
    STATEMENT_TEXTS,
)


# -- literal stripping ----------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<ident>"(?:[^"]|"")*(?:"|\Z))
    | (?P<estr>[eE]'(?:[^'\\]|\\.|'')*(?:'|\Z))
    | (?P<str>(?:[bBxXnN]|[uU]&)?'(?:[^']|'')*(?:'|\Z))
    | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*|)\$.*?(?:\$(?P=tag)\$|\Z))
    | (?P<param>\$\d+)
    | (?P<word>[^\W\d][\w$]*)
    | (?P<num>0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+
              |(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    """,
    re.VERBOSE | re.DOTALL,
)
_LIST = r"\s*(?:\?|\$\d+)(?:\s*,\s*(?:\?|\$\d+))*\s*"
_IN_LIST = re.compile(rf"(?i)\b(IN)\s*\({_LIST}\)")
_ARRAY_LIST = re.compile(rf"(?i)\b(ARRAY)\s*\[{_LIST}\]")
_SPACE = re.compile(r"\s+")


def _replace(m: re.Match[str]) -> str:
    kind = m.lastgroup
    if kind in ("ident", "param", "word"):
        return m.group()
    if kind == "comment":
        return " "
    return "?"  # estr, str, dollar, num


def strip_literals(sql: str, limit: int = 1000) -> str:
    """``sql`` with every literal replaced by ``?``: numbers, quoted strings (``'…'``,
    ``E'…'``, ``B'…'``, ``X'…'``, ``U&'…'``), dollar-quoted bodies; lists of them
    (``IN (?, ?)``, ``ARRAY[?, ?]``) collapsed to ``(...)``. Comments are dropped,
    whitespace is collapsed, quoted identifiers and ``$n`` parameters are kept. A quote
    left open (text truncated by ``track_activity_query_size``) hides the rest."""
    out = _TOKEN.sub(_replace, sql)
    out = _IN_LIST.sub(r"\1 (...)", out)
    out = _ARRAY_LIST.sub(r"\1[...]", out)
    out = _SPACE.sub(" ", out).strip()
    return out if len(out) <= limit else out[: limit - 1] + "…"
