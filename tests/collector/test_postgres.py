"""PostgresCollector: pure parts on tables, the rest against a real PostgreSQL 15."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fastmango.agent import catalogue
from fastmango.agent.daemon import Agent, bind
from fastmango.agent.settings import Settings
from fastmango.collector import pg_queries as q
from fastmango.collector.base import AsyncCollector
from fastmango.collector.postgres import (
    ACTIVITY_STATES,
    LOCK_MODES,
    SPECS,
    PostgresCollector,
    dsn_password,
    lock_chains,
    safe_error,
    server_label,
    statement_deltas,
)
from fastmango.series import Sample
from tests.realservers import Postgres

LOGGER = "fastmango.collector.postgres"

# -- pure ------------------------------------------------------------------------------------

STRIP = [
    ("UPDATE t SET v = 42 WHERE id = 1", "UPDATE t SET v = ? WHERE id = ?"),
    ("SELECT * FROM t1 WHERE a IN (1, 2, 3)", "SELECT * FROM t1 WHERE a IN (...)"),
    ("select 1 from t where x in ( 'a' ,'b' )", "select ? from t where x in (...)"),
    ("SELECT $1, $2 FROM t WHERE id IN ($1, $2)", "SELECT $1, $2 FROM t WHERE id IN (...)"),
    ("SELECT * FROM t WHERE id = ANY(ARRAY[1, 2])", "SELECT * FROM t WHERE id = ANY(ARRAY[...])"),
    ("SELECT 'it''s', E'a\\'b', B'101', X'1F', U&'d\\0061t'", "SELECT ?, ?, ?, ?, ?"),
    ("SELECT $$ secret 'x' $$, $fn$ body $fn$", "SELECT ?, ?"),
    ("SELECT 1.5e3, .5, 0x1F, -7", "SELECT ?, ?, ?, -?"),
    ('SELECT "col 1", t2.c3 FROM "T" t2', 'SELECT "col 1", t2.c3 FROM "T" t2'),
    ("SELECT 1 -- password 'hunter2'\nFROM t", "SELECT ? FROM t"),
    ("SELECT /* user=7 */ x FROM t", "SELECT x FROM t"),
    ("ALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD ?"),
    ("SELECT * FROM t WHERE s = 'cut by track_activity_query_si", "SELECT * FROM t WHERE s = ?"),
    ("SELECT $tag$ unterminated", "SELECT ?"),
    ("INSERT INTO t VALUES (1, 'a'), (2, 'b')", "INSERT INTO t VALUES (?, ?), (?, ?)"),
    ("SELECT x::int4, 'now'::timestamptz", "SELECT x::int4, ?::timestamptz"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "expected"), STRIP)
def test_strip_literals(sql: str, expected: str) -> None:
    assert q.strip_literals(sql) == expected


def test_strip_literals_bounds_its_output() -> None:
    out = q.strip_literals("SELECT " + ", ".join(f"c{i}" for i in range(1000)), limit=50)
    assert len(out) == 50 and out.endswith("…")


def test_every_query_has_a_variant_for_each_supported_version() -> None:
    for major in range(12, 18):
        pgss = {"pg_stat_statements": (1, 7) if major == 12 else (1, 8 + (major - 13))}
        for query in q.QUERIES:
            assert query.sql_for(major * 10000, pgss), (query.name, major)
    assert q.STATEMENTS.sql_for(150000, {}) is None  # no extension: the query is skipped


@pytest.mark.parametrize(
    ("query", "server", "ext", "present", "absent"),
    [
        (q.BGWRITER, 160004, None, "checkpoints_timed", "pg_stat_checkpointer"),
        (q.BGWRITER, 170000, None, "pg_stat_checkpointer", "checkpoints_timed"),
        (q.LOCK_WAITS, 130012, None, "a.query_start", "waitstart"),
        (q.LOCK_WAITS, 140000, None, "waitstart", None),
        (q.STATEMENTS, 120000, (1, 7), "total_time", "total_exec_time"),
        (q.STATEMENTS, 130000, (1, 8), "total_exec_time", None),
        (q.STATEMENTS, 170000, (1, 11), "total_exec_time", None),
        (q.STATEMENTS, 150000, (1, 7), "total_time", "total_exec_time"),  # not updated
    ],
)
def test_version_selection(
    query: q.PgQuery, server: int, ext: q.Version | None, present: str, absent: str | None
) -> None:
    sql = query.sql_for(server, {"pg_stat_statements": ext} if ext else {})
    assert sql is not None and present in sql
    assert absent is None or absent not in sql


def test_parse_version() -> None:
    assert q.parse_version("1.10") == (1, 10) > (1, 8)
    assert q.parse_version(None) is None and q.parse_version("1.x") is None


def test_server_label_never_shows_credentials() -> None:
    assert server_label("postgresql://app:pw@db.example:6432/shop?sslmode=require") == (
        "db.example:6432/shop"
    )
    assert server_label("postgresql:///shop?host=/run/postgresql") == "/run/postgresql:5432/shop"
    assert server_label("postgres://app@localhost") == "localhost:5432/app"
    assert dsn_password("postgresql://app:p%40ss@h/db") == "p@ss"
    assert dsn_password("postgresql://app@h/db?password=x9") == "x9"
    err = OSError("cannot reach postgresql://app:s3cr3t-Pw@h/db: s3cr3t-Pw")
    assert "s3cr3t-Pw" not in safe_error(err, "s3cr3t-Pw")


def test_statement_deltas_rank_by_time_and_survive_resets() -> None:
    prev = {(1, 1, 10): (5, 50.0, 5), (1, 1, 11): (9, 900.0, 9), (1, 1, 12): (3, 3.0, 3)}
    cur = {(1, 1, 10): (8, 80.0, 8), (1, 1, 11): (9, 900.0, 9), (1, 1, 12): (1, 2.0, 1),
           (1, 1, 13): (2, 100.0, 2)}  # fmt: skip
    assert statement_deltas(prev, cur) == [
        ((1, 1, 13), (2, 100.0, 2)),  # new: counts from zero
        ((1, 1, 10), (3, 30.0, 3)),
        ((1, 1, 12), (1, 2.0, 1)),  # went backwards (reset or evicted): counts from zero
    ]  # 11 was idle: left out


def test_lock_chains_follow_blockers_to_the_root() -> None:
    def row(pid: int, blocked_by: list[int] | None, state: str, query: str) -> dict[str, Any]:
        return {"pid": pid, "datname": "app", "usename": "u", "application_name": "web",
                "state": state, "wait_event_type": "Lock" if blocked_by is not None else None,
                "wait_event": "transactionid", "blocked_by": blocked_by, "xact_age": 9.0,
                "waited": 2.0 if blocked_by is not None else None, "query": query}  # fmt: skip

    rows = [
        row(30, [20], "active", "DELETE FROM t WHERE id = 5"),
        row(20, [10], "active", "UPDATE t SET v = 'x' WHERE id = 5"),
        row(10, None, "idle in transaction", "UPDATE t SET v = 'secret' WHERE id = 5"),
    ]
    chains = {c["pid"]: c for c in lock_chains(rows)}
    assert set(chains) == {30, 20}
    assert [b["pid"] for b in chains[30]["chain"]] == [20, 10]
    assert chains[30]["root_blockers"] == [10] == chains[20]["root_blockers"]
    root = chains[30]["chain"][1]
    assert root["query"] == "UPDATE t SET v = ? WHERE id = ?" and not root["waiting"]
    assert chains[30]["query"] == "DELETE FROM t WHERE id = ?"


# -- against a real PostgreSQL 15 ----------------------------------------------------------


def values(samples: list[Sample], name: str, **labels: str) -> list[float]:
    return [s.value for s in samples if s.name == name and labels.items() <= s.label_dict.items()]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = values(samples, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0]


@pytest.fixture
async def collector(postgres: Postgres) -> AsyncIterator[PostgresCollector]:
    c = PostgresCollector([postgres.dsn], backoff_max=2.0)
    await c.start()
    yield c
    await c.close()


@pytest.mark.integration
async def test_every_declared_query_runs_against_the_real_server(postgres: Postgres) -> None:
    con = await asyncpg.connect(postgres.dsn)
    try:
        server = await con.fetchrow(q.SERVER.variants[0].sql)
        assert server["version_num"] // 10000 == 15
        pgss = q.parse_version(server["pgss_version"])
        assert pgss is not None and pgss >= (1, 8)
        for query in q.QUERIES:
            sql = query.sql_for(server["version_num"], {"pg_stat_statements": pgss})
            assert sql is not None, query.name
            args = ([1, 2],) if "$1" in sql else ()
            await con.fetch(sql, *args)  # raises on any error
    finally:
        await con.close()


@pytest.mark.integration
async def test_collection_has_exporter_shapes_and_no_errors(
    postgres: Postgres, collector: PostgresCollector
) -> None:
    assert isinstance(collector, AsyncCollector)
    await collector.collect()
    samples = await collector.collect()
    label = f"127.0.0.1:{postgres.port}/postgres"
    assert {s.label_dict["server"] for s in samples} == {label}
    assert value(samples, "pg_up") == 1
    assert value(samples, "pg_settings_max_connections") == 40
    assert value(samples, "pg_replication_is_replica") == 0
    for state in ACTIVITY_STATES:  # zero-filled per database
        value(samples, "pg_stat_activity_count", datname="postgres", state=state)
    for mode in LOCK_MODES:
        value(samples, "pg_locks_count", datname="postgres", mode=mode)
    assert value(samples, "pg_database_size_bytes", datname="postgres") > 1e6
    assert 0 <= value(samples, "pg_cache_hit_ratio", datname="postgres") <= 1
    assert values(samples, "pg_top_query_exec_seconds", rank="other")
    assert sum(values(samples, "fastmango_postgres_query_errors_total")) == 0
    # every declared family shows, but 17's checkpointer ones on this 15
    shown = {s.name for s in samples}
    missing = {s.name for s in SPECS} - shown
    assert missing == {n for n in missing if n.startswith("pg_stat_checkpointer_")}
    assert missing
    assert postgres.password not in json.dumps(collector.details())


@pytest.mark.integration
async def test_pgbench_load_shows_in_commits_and_top_queries(
    postgres: Postgres, collector: PostgresCollector
) -> None:
    postgres.pgbench("-i", "-q", "-s", "1")
    before = value(await collector.collect(), "pg_stat_database_xact_commit", datname="postgres")
    out = postgres.pgbench("-c", "2", "-T", "3")
    done = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))  # type: ignore[union-attr]
    assert done > 100
    deadline = time.monotonic() + 5
    while True:  # backends flush their counters within a second or so
        samples = await collector.collect()
        after = value(samples, "pg_stat_database_xact_commit", datname="postgres")
        if after - before >= done or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert after - before >= done
    # the busiest statements of that interval are pgbench's, and no queryid reached a label
    top = collector.details()["servers"][0]["top_queries"]["statements"]
    assert any("pgbench_accounts" in t["query"] for t in top[:10])
    ranks = {s.label_dict["rank"] for s in samples if s.name == "pg_top_query_calls"}
    assert ranks == {*(str(i) for i in range(1, 11)), "other"}


@pytest.mark.integration
async def test_lock_wait_duration_and_blocker_show_within_one_collection(
    postgres: Postgres, collector: PostgresCollector
) -> None:
    postgres.psql("CREATE TABLE IF NOT EXISTS lockt (id int PRIMARY KEY, v int);"
                  "INSERT INTO lockt VALUES (1, 0) ON CONFLICT DO NOTHING")  # fmt: skip
    holder, waiter = await asyncpg.connect(postgres.dsn), await asyncpg.connect(postgres.dsn)
    tx = holder.transaction()
    await tx.start()
    try:
        await holder.execute("UPDATE lockt SET v = 42 WHERE id = 1")
        began = time.monotonic()
        blocked = asyncio.create_task(waiter.execute("UPDATE lockt SET v = 7 WHERE id = 1"))
        await asyncio.sleep(1.5)
        samples = await collector.collect()
        waited = time.monotonic() - began
        assert value(samples, "pg_lock_waiting_backends", datname="postgres") == 1
        longest = value(samples, "pg_lock_wait_longest_seconds", datname="postgres")
        assert abs(longest - waited) <= 1.0, (longest, waited)
        [wait] = collector.details()["servers"][0]["lock_waits"]
        assert wait["pid"] == waiter.get_server_pid()
        assert wait["blocked_by"] == [holder.get_server_pid()]
        assert wait["query"] == "UPDATE lockt SET v = ? WHERE id = ?"
        assert wait["wait_event_type"] == "Lock"
        [blocker] = wait["chain"]
        assert blocker["pid"] == holder.get_server_pid() == wait["root_blockers"][0]
        assert blocker["state"] == "idle in transaction"
        assert blocker["query"] == "UPDATE lockt SET v = ? WHERE id = ?"
        assert blocker["xact_age_seconds"] >= 1.4
    finally:
        await tx.rollback()
        await blocked
        await holder.close()
        await waiter.close()
    samples = await collector.collect()
    assert value(samples, "pg_lock_waiting_backends", datname="postgres") == 0


@pytest.mark.integration
async def test_restart_mid_run_pg_up_goes_0_then_1_by_itself(
    postgres: Postgres, collector: PostgresCollector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    assert value(await collector.collect(), "pg_up") == 1
    postgres.stop()
    try:
        for _ in range(5):  # a down streak: pg_up 0 each time, one warning in all
            samples = await collector.collect()
            assert value(samples, "pg_up") == 0
            assert not values(samples, "pg_stat_database_xact_commit")
            await asyncio.sleep(0.1)
    finally:
        postgres.start()
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    deadline = time.monotonic() + 10
    while value(samples := await collector.collect(), "pg_up") == 0:
        assert time.monotonic() < deadline, "did not reconnect"
        await asyncio.sleep(0.25)
    assert values(samples, "pg_stat_database_xact_commit", datname="postgres")
    assert any("reachable again" in r.getMessage() for r in caplog.records)


@pytest.mark.integration
async def test_wrong_password_reports_down_without_the_password(
    postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wr0ng-Secret-7d2a"
    c = PostgresCollector([postgres.dsn_for("postgres", secret)])
    await c.start()
    try:
        samples = await c.collect()
    finally:
        await c.close()
    assert value(samples, "pg_up") == 0
    details = c.details()["servers"][0]
    assert "password authentication failed" in details["last_error"]
    shown = json.dumps(details) + caplog.text + repr([s.labels for s in samples])
    assert secret not in shown


@pytest.mark.integration
async def test_agent_serves_the_postgres_series_as_the_catalogue_declares(
    postgres: Postgres, tmp_path: Path
) -> None:
    settings = Settings.model_validate({
        "state_dir": str(tmp_path), "database_url": postgres.dsn,
        "collectors": {"interval": 1, "host": {"enabled": False},
                       "container": {"enabled": False}},
    })  # fmt: skip
    agent = Agent(settings)
    task = asyncio.create_task(agent.serve(bind("127.0.0.1", 0)))
    await agent.ready.wait()
    await asyncio.sleep(2.3)  # two rounds: the top queries need a previous reading
    async with httpx.AsyncClient() as client:
        text = (await client.get(agent.url + "/metrics")).text
        api = (await client.get(agent.url + "/api/collectors/postgres")).json()
    agent.request_exit()
    await task
    index = catalogue.index()
    seen = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith(("pg_", "fastmango_postgres_")):
                spec = index[s.name]  # KeyError: exposed but not in the catalogue
                assert fam.type == spec.kind and set(s.labels) == set(spec.labels), s.name
                seen.add(s.name)
    assert {s.name for s in SPECS if not s.name.startswith("pg_stat_checkpointer_")} <= seen
    assert "queryid" not in text and postgres.password not in text
    assert api["up"] and api["details"]["servers"][0]["up"]
    assert postgres.password not in json.dumps(api)
