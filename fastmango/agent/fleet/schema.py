"""The fleet's schema ``fastmango`` in the app's PostgreSQL, migrated by version.

``fastmango.schema_version`` lists the versions applied. :func:`migrate` applies the
missing ones in one transaction under a transaction-scoped advisory lock, so agents
starting together wait for each other and each migration runs once; every statement is
idempotent (``IF NOT EXISTS``) besides. A database migrated by a newer agent is left as
it is (migrations only add), with a warning.

Tables:

- ``instances``: the registry, one row per agent (id, address, version, pid, host,
  started, heartbeat in the server's clock, leader flag, backend pid of its election
  connection);
- ``notifications``: one row per claimed notification key (who claimed it, when, when
  it was delivered, and until when an undelivered claim holds when it was taken with a
  lease): the primary key makes a claim exclusive;
- ``rollups``: per (instance, signal, bucket start) the sum, count and max of the values;
- ``shared``: small JSON documents the leader publishes for every agent (e.g. the
  scaler's desired replicas and forecast, which ``/api/keda`` answers on any agent);
- ``notify_state`` (version 2): per alert group and channel, the last notification the
  fleet sent (status, which alerts, when, the provider's message handles), so a new
  leader neither re-sends what the old one sent nor loses the message to update.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("fastmango.agent.fleet")

SCHEMA = "fastmango"
#: the two-int advisory lock keys: (namespace, what); "fm" = 0x666d
LOCK_NAMESPACE = 0x666D
LEADER_LOCK = 1
MIGRATE_LOCK = 2

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "instance registry, notification claims, shared roll-ups and documents",
        [
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.instances (
                id text PRIMARY KEY,
                address text NOT NULL,
                version text NOT NULL,
                hostname text NOT NULL,
                pid integer NOT NULL,
                started_at timestamptz NOT NULL,
                heartbeat_at timestamptz NOT NULL DEFAULT now(),
                leader boolean NOT NULL DEFAULT false,
                election_pid integer
            )""",
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.notifications (
                key text PRIMARY KEY,
                claimed_by text NOT NULL,
                claimed_at timestamptz NOT NULL DEFAULT now(),
                delivered_at timestamptz,
                lease_until timestamptz,
                attempts integer NOT NULL DEFAULT 1
            )""",
            f"""CREATE INDEX IF NOT EXISTS notifications_claimed_at
                ON {SCHEMA}.notifications (claimed_at)""",
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.rollups (
                instance text NOT NULL,
                name text NOT NULL,
                bucket double precision NOT NULL,
                sum double precision NOT NULL,
                count integer NOT NULL,
                max double precision NOT NULL,
                PRIMARY KEY (instance, name, bucket)
            )""",
            f"CREATE INDEX IF NOT EXISTS rollups_bucket ON {SCHEMA}.rollups (bucket, name)",
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.shared (
                key text PRIMARY KEY,
                value jsonb NOT NULL,
                updated_by text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )""",
        ],
    ),
    (
        2,
        "the fleet's last notification per alert group and channel",
        [
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.notify_state (
                key text PRIMARY KEY,
                status text NOT NULL,
                alerts text NOT NULL,
                sent_at timestamptz,
                ref jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                claimed_by text NOT NULL,
                lease_until timestamptz
            )""",
        ],
    ),
]
LATEST = MIGRATIONS[-1][0]


async def migrate(conn: Any) -> int:
    """Bring the schema to :data:`LATEST` (an asyncpg connection); the version it is at."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_NAMESPACE, MIGRATE_LOCK)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version ("
            "version integer PRIMARY KEY, description text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = int(
            await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_version")
        )
        if current > LATEST:
            log.warning(
                "fleet schema %s is at version %d, newer than this agent knows (%d); "
                "using it as it is",
                SCHEMA,
                current,
                LATEST,
            )
            return current
        for version, description, statements in MIGRATIONS:
            if version <= current:
                continue
            for sql in statements:
                await conn.execute(sql)
            await conn.execute(
                f"INSERT INTO {SCHEMA}.schema_version (version, description) VALUES ($1, $2) "
                "ON CONFLICT (version) DO NOTHING",
                version,
                description,
            )
            log.info("fleet schema %s migrated to version %d: %s", SCHEMA, version, description)
            current = version
        return current
