"""The fleet service: ``host.services["fleet"]``, which other parts consult.

With ``database_url`` (and ``fleet.enabled`` not false) the agent joins the fleet in
that PostgreSQL: it registers itself and heartbeats in ``fastmango.instances``, competes
for the leader lock (:mod:`.election`), writes 10-second roll-ups of its signals to
``fastmango.rollups``, and claims notifications in ``fastmango.notifications``. Without
it the service is a fleet of one: always leader, claims kept in memory, roll-ups local.

The interface other parts use (see ``docs/fleet.md``)::

    fleet = host.services.get("fleet")          # None only with fleet.enabled = false
    fleet.is_leader                             # bool: only the leader scales and alerts
    await fleet.wait_leader_change()            # returns the new is_leader
    await fleet.claim(key)                      # True for exactly one caller in the fleet
    await fleet.delivered(key)                  # mark a claimed notification as sent
    await fleet.write_rollup(samples)           # (done for you every rollup_interval)
    await fleet.fleet_signals(names, window)    # {name: FleetSignal(sum, avg, max, …)}
    await fleet.instances()                     # registry with heartbeat ages, leader
    fleet.peers()                               # [{"id", "address"}] of live peers
    await fleet.put_shared(key, doc) / get_shared(key)   # small documents for every agent

``claim``, ``write_rollup``, ``fleet_signals`` and ``instances`` raise
:class:`~fastmango.agent.fleet.errors.FleetUnavailable` when PostgreSQL cannot be
reached; a leader whose database is gone steps down within seconds anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from fastmango import __version__
from fastmango.agent.fleet.errors import FleetUnavailable
from fastmango.agent.fleet.rollups import (
    Bucket,
    FleetSignal,
    aggregate,
    bucket_start,
    bucketize,
    merge,
)
from fastmango.agent.fleet.schema import LEADER_LOCK, LOCK_NAMESPACE, SCHEMA
from fastmango.agent.services import Host, Service
from fastmango.agent.settings import Settings
from fastmango.redact import redact_secrets
from fastmango.series import Sample

if TYPE_CHECKING:
    from fastmango.agent.fleet.election import Election

log = logging.getLogger("fastmango.agent.fleet")
T = TypeVar("T")
SOURCE = "fleet"
#: local roll-ups kept in memory (seconds), for a fleet of one and /api/keda
LOCAL_KEEP = 3600.0
#: seconds after a bucket closes before it is read from the store (its writer thread lags)
ROLLUP_LAG = 2.0


def create(settings: Settings) -> Service | None:
    """The fleet service, unless ``fleet.enabled`` is false."""
    if settings.fleet.enabled is False:
        return None
    return FleetService(settings)


def _host_address() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


class FleetService:
    name = "fleet"

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.cfg = settings.fleet
        url = settings.database_url
        self._dsn = url.get_secret_value() if url is not None else None
        #: "postgres" (a fleet in the app's database) or "single" (a fleet of one)
        self.mode = "postgres" if self._dsn else "single"
        self.clock = clock
        self.instance_id = self.cfg.instance_id
        self.address = self.cfg.advertise_url
        self.started_at = clock()
        self.schema_version: int | None = None
        self.last_error: str | None = None
        self.leader_since: float | None = None
        self._leader = False
        self._leader_changed = asyncio.Event()
        self._host: Host | None = None
        self._election: Election | None = None
        self._work: Any = None  # asyncpg connection for everything but the election
        self._work_lock = asyncio.Lock()
        self._poke = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._snapshot: list[dict[str, Any]] = []
        self._snapshot_at = 0.0
        self._leader_id: str | None = None
        self._local: dict[tuple[str, float], Bucket] = {}
        self._local_claims: dict[str, float] = {}
        self._local_shared: dict[str, tuple[dict[str, Any], float]] = {}
        self._rolled_until: float | None = None
        self._pruned_at = 0.0

    # -- what other parts read ---------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        """Whether this agent leads the fleet now (always, in a fleet of one)."""
        return self._leader

    async def wait_leader_change(self) -> bool:
        """Wait until this agent gains or loses the lead; the new :attr:`is_leader`."""
        await self._leader_changed.wait()
        return self._leader

    async def claim(self, key: str, lease: float | None = None) -> bool:
        """Claim the notification ``key``: True for exactly one caller in the whole fleet
        (every later claim, by anyone, is False; claims survive restarts and failovers).

        With ``lease`` (seconds), a claim not marked :meth:`delivered` within that time
        may be taken over by another claim with a lease (at-least-once, for a claimer that
        died between claiming and sending); a claim without one is final (at-most-once).
        """
        if not key or len(key) > 500:
            raise ValueError("a claim key is 1 to 500 characters")
        if self._dsn is None:
            if key in self._local_claims:
                return False
            self._local_claims[key] = self.clock()
            return True
        if lease is None:
            sql = (
                f"INSERT INTO {SCHEMA}.notifications (key, claimed_by) VALUES ($1, $2) "
                "ON CONFLICT (key) DO NOTHING RETURNING key"
            )
            args: tuple[Any, ...] = (key, self.instance_id)
        else:
            sql = (
                f"INSERT INTO {SCHEMA}.notifications AS n (key, claimed_by, lease_until) "
                "VALUES ($1, $2, now() + make_interval(secs => $3)) "
                "ON CONFLICT (key) DO UPDATE SET claimed_by = excluded.claimed_by, "
                "claimed_at = now(), lease_until = excluded.lease_until, "
                "attempts = n.attempts + 1 "
                "WHERE n.delivered_at IS NULL AND n.lease_until < now() "
                "RETURNING key"
            )
            args = (key, self.instance_id, float(lease))
        won = await self._db(lambda c: c.fetchval(sql, *args), f"claim {key!r}")
        return won is not None

    @property
    def shared(self) -> bool:
        """True when agents coordinate through PostgreSQL (not a fleet of one)."""
        return self._dsn is not None

    async def notify_turn(
        self, key: str, status: str, alerts: str, repeat_after: float, lease: float = 60.0
    ) -> tuple[bool, dict[str, str]]:
        """May this agent send notification ``status`` (of the set ``alerts``) for the alert
        group and channel ``key``? Yes when the fleet's last one for ``key`` differs in
        status or alerts, or is older than ``repeat_after``, and nobody else is sending it
        (an unfinished turn is taken over after ``lease`` seconds). Also returns the message
        handles the last sender stored (Slack's ``ts``…), so a resolve updates the message
        another agent posted. Finish a won turn with :meth:`notify_done`."""
        if self._dsn is None:
            return True, {}
        sql = (
            f"INSERT INTO {SCHEMA}.notify_state AS s "
            "(key, status, alerts, claimed_by, lease_until) "
            "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) "
            "ON CONFLICT (key) DO UPDATE SET status = excluded.status, "
            "alerts = excluded.alerts, claimed_by = excluded.claimed_by, "
            "lease_until = excluded.lease_until, sent_at = NULL "
            "WHERE (s.lease_until IS NULL OR s.lease_until < now()) AND (s.sent_at IS NULL "
            "OR s.status <> excluded.status OR s.alerts <> excluded.alerts "
            "OR s.sent_at < now() - make_interval(secs => $6)) "
            "RETURNING ref::text"
        )
        args = (key, status, alerts, self.instance_id, float(lease), float(repeat_after))
        won = await self._db(lambda c: c.fetchval(sql, *args), f"notification turn {key!r}")
        if won is not None:
            return True, json.loads(won)
        read = f"SELECT ref::text FROM {SCHEMA}.notify_state WHERE key = $1"
        ref = await self._db(lambda c: c.fetchval(read, key), f"read notification {key!r}")
        return False, json.loads(ref) if ref else {}

    async def notify_done(self, key: str, ok: bool, ref: dict[str, str] | None = None) -> None:
        """End a turn won with :meth:`notify_turn`: sent (store the message handles) or
        failed (free the turn, so the next evaluation tries again)."""
        if self._dsn is None:
            return
        if ok:
            sql = (
                f"UPDATE {SCHEMA}.notify_state SET sent_at = now(), lease_until = NULL, "
                "ref = ref || $3::jsonb WHERE key = $1 AND claimed_by = $2"
            )
            args: tuple[Any, ...] = (key, self.instance_id, json.dumps(ref or {}))
        else:
            sql = (
                f"UPDATE {SCHEMA}.notify_state SET lease_until = NULL "
                "WHERE key = $1 AND claimed_by = $2"
            )
            args = (key, self.instance_id)
        await self._db(lambda c: c.execute(sql, *args), f"finish notification {key!r}")

    async def delivered(self, key: str) -> None:
        """Mark a notification this agent claimed as delivered (ends its lease)."""
        if self._dsn is None:
            return
        sql = f"UPDATE {SCHEMA}.notifications SET delivered_at = now() WHERE key = $1"
        await self._db(lambda c: c.execute(sql, key), f"mark {key!r} delivered")

    async def claims(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest claims, newest first (key, claimed_by, claimed_at, delivered_at)."""
        if self._dsn is None:
            items = sorted(self._local_claims.items(), key=lambda kv: -kv[1])[:limit]
            return [{"key": k, "claimed_by": self.instance_id, "claimed_at": t,
                     "delivered_at": None, "attempts": 1} for k, t in items]  # fmt: skip
        sql = (
            "SELECT key, claimed_by, extract(epoch FROM claimed_at)::float8 AS claimed_at, "
            "extract(epoch FROM delivered_at)::float8 AS delivered_at, attempts "
            f"FROM {SCHEMA}.notifications ORDER BY claimed_at DESC LIMIT $1"
        )
        rows = await self._db(lambda c: c.fetch(sql, limit), "read claims")
        return [dict(r) for r in rows]

    async def write_rollup(self, samples: Iterable[Sample]) -> int:
        """Fold samples into ``rollup_interval`` buckets and add them to this agent's
        shared roll-ups (labels are not kept: one series per name). Buckets written in
        several calls add up. The number of buckets written."""
        buckets = bucketize(samples, self.cfg.rollup_interval)
        if not buckets:
            return 0
        self._keep_local(buckets)
        if self._dsn is None:
            return len(buckets)
        sql = (
            f"INSERT INTO {SCHEMA}.rollups AS r (instance, name, bucket, sum, count, max) "
            "SELECT $1, * FROM unnest($2::text[], $3::float8[], $4::float8[], $5::int[], "
            "$6::float8[]) ON CONFLICT (instance, name, bucket) DO UPDATE SET "
            "sum = r.sum + excluded.sum, count = r.count + excluded.count, "
            "max = greatest(r.max, excluded.max)"
        )
        args = (
            self.instance_id,
            [b.name for b in buckets],
            [b.start for b in buckets],
            [b.sum for b in buckets],
            [b.count for b in buckets],
            [b.max for b in buckets],
        )
        await self._db(lambda c: c.execute(sql, *args), "write roll-ups")
        return len(buckets)

    async def fleet_signals(
        self, names: Iterable[str], window: float = 60.0
    ) -> dict[str, FleetSignal]:
        """The fleet's figures of ``names`` over the last ``window`` seconds: per signal
        the sum of the instances' means (load), their average, the max and how many
        instances reported. A signal nobody reported is absent."""
        names = list(names)
        since = self.clock() - window
        if self._dsn is None:
            rows = [(self.instance_id, b) for (n, t), b in self._local.items()
                    if n in names and t >= since]  # fmt: skip
            return aggregate(rows, names)
        sql = (
            f"SELECT instance, name, bucket, sum, count, max FROM {SCHEMA}.rollups "
            "WHERE bucket >= $1 AND name = ANY($2::text[])"
        )
        found = await self._db(lambda c: c.fetch(sql, since, names), "read roll-ups")
        return aggregate(
            ((r["instance"], Bucket(r["name"], r["bucket"], r["sum"], r["count"], r["max"]))
             for r in found),
            names,
        )  # fmt: skip

    def local_signals(self, names: Iterable[str], window: float = 60.0) -> dict[str, FleetSignal]:
        """This agent's own roll-ups of ``names`` over the last ``window`` seconds."""
        names = list(names)
        since = self.clock() - window
        rows = [(self.instance_id, b) for (n, t), b in self._local.items()
                if n in names and t >= since]  # fmt: skip
        return aggregate(rows, names)

    async def put_shared(self, key: str, value: dict[str, Any]) -> None:
        """Publish a small JSON document under ``key`` for every agent (last writer wins)."""
        self._local_shared[key] = (value, self.clock())
        if self._dsn is None:
            return
        import json

        sql = (
            f"INSERT INTO {SCHEMA}.shared (key, value, updated_by) VALUES ($1, $2::jsonb, $3) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
            "updated_by = excluded.updated_by, updated_at = now()"
        )
        doc = json.dumps(value)
        await self._db(lambda c: c.execute(sql, key, doc, self.instance_id), f"publish {key!r}")

    async def get_shared(self, key: str) -> tuple[dict[str, Any], float, str] | None:
        """The document under ``key``: (value, age in seconds, who wrote it), or None."""
        if self._dsn is None:
            got = self._local_shared.get(key)
            return None if got is None else (got[0], self.clock() - got[1], self.instance_id)
        import json

        sql = (
            "SELECT value::text AS value, extract(epoch FROM now() - updated_at)::float8 AS age, "
            f"updated_by FROM {SCHEMA}.shared WHERE key = $1"
        )
        row = await self._db(lambda c: c.fetchrow(sql, key), f"read {key!r}")
        if row is None:
            return None
        return json.loads(row["value"]), max(row["age"], 0.0), row["updated_by"]

    async def instances(self) -> list[dict[str, Any]]:
        """The registry: every instance with its heartbeat age, state (``up`` while the
        heartbeat is under ``stale_after``) and whether it leads. Read fresh."""
        if self._dsn is None:
            return [self._self_row()]
        await self._refresh()
        return list(self._snapshot)

    def cached_instances(self) -> list[dict[str, Any]]:
        """The registry as last read (no I/O), ages advanced to now."""
        if self._dsn is None:
            return [self._self_row()]
        late = time.monotonic() - self._snapshot_at
        return [{**r, "heartbeat_age_seconds": r["heartbeat_age_seconds"] + late}
                for r in self._snapshot]  # fmt: skip

    def peers(self) -> list[dict[str, str]]:
        """Live peers (not this agent) as ``{"id", "address"}``, for fanning a request
        out (e.g. a log search): call ``address + path`` with this agent's bearer token
        (``server.token``; a fleet shares one). From the last heartbeat's registry."""
        return [{"id": r["id"], "address": r["address"]} for r in self.cached_instances()
                if not r["self"] and r["state"] == "up"]  # fmt: skip

    @property
    def leader_id(self) -> str | None:
        """The instance that holds the leader lock, as last read."""
        if self._dsn is None or self._leader:
            return self.instance_id
        return self._leader_id

    @property
    def connected(self) -> bool:
        return self._dsn is None or (self._election is not None and self._election.connected)

    def status(self) -> dict[str, Any]:
        """What ``/api/fleet`` answers (besides the instances)."""
        election = self._election
        return {
            "mode": self.mode,
            "instance": self.instance_id,
            "address": self.address,
            "version": __version__,
            "is_leader": self._leader,
            "leader": self.leader_id,
            "leader_since": self.leader_since,
            "connected": self.connected,
            "schema": SCHEMA if self._dsn else None,
            "schema_version": self.schema_version,
            "last_error": self.last_error or (election.last_error if election else None),
            "heartbeat_interval": self.cfg.heartbeat_interval,
            "check_interval": self.cfg.check_interval,
            "stale_after": self.cfg.stale_after,
            "rollup_interval": self.cfg.rollup_interval,
            "signals": list(self.cfg.signals),
        }

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        self._host = host
        port = self.settings.server.port
        with contextlib.suppress(ValueError, IndexError):
            port = int(host.url.rsplit(":", 1)[1].split("/")[0])
        if not self.instance_id:
            self.instance_id = f"{socket.gethostname()}:{port}"
        if not self.address:
            bind = self.settings.server.host
            self.address = (
                f"http://{_host_address()}:{port}" if bind in ("0.0.0.0", "::") else host.url
            )
        self._publish()
        self._tasks.append(asyncio.create_task(self._rollup_loop(), name="fleet-rollups"))
        if self._dsn is None:
            self._set_leader(True, "fleet of one (no database_url)")
            return
        from fastmango.agent.fleet.election import Election

        self._election = Election(
            lambda: self._connect("election"),
            self._set_leader,
            check_interval=self.cfg.check_interval,
            reconnect_max=self.cfg.reconnect_max,
            on_connect=lambda _pid: self._poke.set(),
        )
        self._tasks.append(asyncio.create_task(self._election.run(), name="fleet-election"))
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="fleet-heartbeat"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._election is not None:
            await self._election.close()
        if self._dsn is not None:
            # a clean departure leaves the registry at once (a killed agent goes stale)
            sql = f"DELETE FROM {SCHEMA}.instances WHERE id = $1"
            leave = self._db(
                lambda c: c.execute(sql, self.instance_id), "leave the registry", reconnect=False
            )
            with contextlib.suppress(FleetUnavailable, TimeoutError):
                await asyncio.wait_for(leave, 1.0)
        work, self._work = self._work, None
        if work is not None and not work.is_closed():
            try:
                await asyncio.wait_for(work.close(), 1.0)
            except Exception:
                work.terminate()

    # -- internals ---------------------------------------------------------------------
    def _self_row(self) -> dict[str, Any]:
        return {
            "id": self.instance_id,
            "address": self.address,
            "version": __version__,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "heartbeat_age_seconds": 0.0,
            "state": "up",
            "leader": self._leader,
            "self": True,
        }

    def _set_leader(self, leader: bool, reason: str) -> None:
        if leader == self._leader:
            return
        self._leader = leader
        self.leader_since = self.clock() if leader else None
        if leader:
            self._leader_id = self.instance_id
        elif self._leader_id == self.instance_id:
            self._leader_id = None
        event, self._leader_changed = self._leader_changed, asyncio.Event()
        event.set()
        log.info("fleet: %s %s (%s)", self.instance_id, "leads" if leader else "steps down",
                 reason)  # fmt: skip
        self._publish()
        self._poke.set()
        host = self._host
        if host is not None and self.mode == "postgres":
            with contextlib.suppress(Exception):
                host.store.append_event(
                    "fleet", {"instance": self.instance_id, "leader": leader, "reason": reason}
                )

    def _publish(self) -> None:
        host = self._host
        if host is None:
            return
        now = self.clock()
        live = sum(1 for r in self.cached_instances() if r["state"] == "up")
        host.publish(SOURCE, [
            Sample("fastmango_fleet_leader", (), 1.0 if self._leader else 0.0, now),
            Sample("fastmango_fleet_instances", (), float(max(live, 1)), now),
        ])  # fmt: skip

    async def _connect(self, role: str) -> Any:
        import asyncpg

        assert self._dsn is not None
        return await asyncpg.connect(
            self._dsn,
            timeout=self.cfg.connect_timeout,
            command_timeout=max(5.0, 2 * self.cfg.check_interval),
            statement_cache_size=0,
            server_settings={
                "application_name": f"fastmango-fleet-{role}",
                # PostgreSQL drops a silent session (a partition) in ~5 s and so releases
                # its lock: unacknowledged data for 5 s, or 3 unanswered keep-alives
                "tcp_user_timeout": "5000",
                "tcp_keepalives_idle": "3",
                "tcp_keepalives_interval": "1",
                "tcp_keepalives_count": "3",
            },
        )

    async def _db(self, op: Callable[[Any], Awaitable[T]], what: str, reconnect: bool = True) -> T:
        """Run ``op`` on the work connection (connected and migrated on demand)."""
        from fastmango.agent.fleet.schema import migrate

        async with self._work_lock:
            try:
                if self._work is None or self._work.is_closed():
                    if not reconnect:
                        raise ConnectionError("not connected")
                    self._work = await self._connect("work")
                    self.schema_version = await migrate(self._work)
                result = await op(self._work)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = redact_secrets(str(exc) or type(exc).__name__)
                self.last_error = f"{what}: {message}"
                if self._work is not None and self._work.is_closed():
                    self._work = None
                raise FleetUnavailable(f"fleet database: cannot {what}: {message}") from None
            self.last_error = None
            return result

    async def _refresh(self) -> None:
        me = self.instance_id
        sql = (
            "SELECT id, address, version, hostname, pid, "
            "extract(epoch FROM started_at)::float8 AS started_at, "
            "extract(epoch FROM now() - heartbeat_at)::float8 AS age, leader, election_pid, "
            "(SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
            " AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2 AND l.database = "
            " (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1) "
            "AS holder "
            f"FROM {SCHEMA}.instances ORDER BY id"
        )
        rows = await self._db(lambda c: c.fetch(sql, LOCK_NAMESPACE, LEADER_LOCK), "read instances")
        holder = rows[0]["holder"] if rows else None
        up = {r["id"]: r["age"] < self.cfg.stale_after for r in rows}
        # who leads: the row whose election session holds the lock; else this agent when
        # it knows it leads; with no lock visible, a live row flagged leader. A holder not
        # yet recorded in the registry (for one heartbeat) leaves it unknown.
        by_lock = [r["id"] for r in rows if holder is not None and r["election_pid"] == holder]
        flagged = [r["id"] for r in rows if holder is None and r["leader"] and up[r["id"]]]
        leader_id = (by_lock or ([me] if self._leader else []) or flagged or [None])[0]
        out = [{
            "id": r["id"], "address": r["address"], "version": r["version"],
            "hostname": r["hostname"], "pid": r["pid"], "started_at": r["started_at"],
            "heartbeat_age_seconds": max(r["age"], 0.0),
            "state": "up" if up[r["id"]] else "down",
            "leader": r["id"] == leader_id, "self": r["id"] == me,
        } for r in rows]  # fmt: skip
        self._snapshot, self._snapshot_at = out, time.monotonic()
        self._leader_id = leader_id

    async def _heartbeat(self) -> None:
        sql = (
            f"INSERT INTO {SCHEMA}.instances AS i (id, address, version, hostname, pid, "
            "started_at, heartbeat_at, leader, election_pid) "
            "VALUES ($1, $2, $3, $4, $5, to_timestamp($6), now(), $7, $8) "
            "ON CONFLICT (id) DO UPDATE SET address = excluded.address, "
            "version = excluded.version, hostname = excluded.hostname, pid = excluded.pid, "
            "started_at = excluded.started_at, heartbeat_at = now(), "
            "leader = excluded.leader, election_pid = excluded.election_pid"
        )

        async def beat(c: Any) -> None:
            # read at the moment of writing: leadership and the election session change
            election = self._election
            pid = election.backend_pid if election else None
            await c.execute(sql, self.instance_id, self.address, __version__,
                             socket.gethostname(), os.getpid(), self.started_at,
                             self._leader, pid)  # fmt: skip

        await self._db(beat, "heartbeat")
        await self._refresh()
        if self._leader:
            await self._share_scaling()
        if self._leader and time.monotonic() - self._pruned_at > 60:
            self._pruned_at = time.monotonic()
            await self._prune()

    async def _share_scaling(self) -> None:
        """The leader shares its scaler's offer, so /api/keda answers it on every agent."""
        from fastmango.agent.fleet.keda import scaling_views

        host = self._host
        try:
            views = scaling_views(host.services.get("scaling")) if host is not None else {}
        except Exception as exc:  # the scaler's own failure must not stop the heartbeat
            log.debug("fleet: the scaler's offer failed: %s", exc)
            return
        if views:
            await self.put_shared("scaling", {"environments": views})

    async def _prune(self) -> None:
        """The leader drops silent instances, old roll-ups and old claims."""
        cfg = self.cfg
        now = self.clock()

        async def run(c: Any) -> None:
            await c.execute(
                f"DELETE FROM {SCHEMA}.instances WHERE heartbeat_at < now() - "
                "make_interval(secs => $1)",
                cfg.forget_after,
            )
            await c.execute(f"DELETE FROM {SCHEMA}.rollups WHERE bucket < $1",
                            now - cfg.rollup_retention)  # fmt: skip
            await c.execute(
                f"DELETE FROM {SCHEMA}.notifications WHERE claimed_at < now() - "
                "make_interval(secs => $1)",
                cfg.claim_retention,
            )

        await self._db(run, "prune the fleet's tables")

    async def _heartbeat_loop(self) -> None:
        failing = False
        while True:
            self._poke.clear()
            try:
                await self._heartbeat()
                if failing:
                    log.info("fleet: database reachable again")
                failing = False
            except FleetUnavailable as exc:
                if not failing:
                    log.warning("%s", exc)
                failing = True
            self._publish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.cfg.heartbeat_interval)

    def _keep_local(self, buckets: list[Bucket]) -> None:
        for b in buckets:
            key = (b.name, b.start)
            old = self._local.get(key)
            self._local[key] = b if old is None else merge(old, b)
        horizon = self.clock() - LOCAL_KEEP
        if len(self._local) > 64 and min(t for _n, t in self._local) < horizon:
            self._local = {k: v for k, v in self._local.items() if k[1] >= horizon}

    async def _rollup_loop(self) -> None:
        """Every ``rollup_interval``: read the closed buckets of the signals from the
        store (averaged per bucket; counters as rates) and write them."""
        width = self.cfg.rollup_interval
        failing = False
        while True:
            now = self.clock()
            end = bucket_start(now - ROLLUP_LAG, width)
            start = end - 6 * width if self._rolled_until is None else max(
                self._rolled_until, end - 6 * width)  # fmt: skip
            if end > start:
                try:
                    samples = await asyncio.to_thread(self._read_signals, start, end)
                    await self.write_rollup(samples)
                    self._rolled_until = end
                    failing = False
                except FleetUnavailable as exc:
                    if not failing:
                        log.warning("%s", exc)
                    failing = True
                except Exception as exc:  # the store: keep going, say so once
                    if not failing:
                        log.warning("fleet roll-ups: %s", redact_secrets(str(exc)))
                    failing = True
            next_at = bucket_start(self.clock() - ROLLUP_LAG, width) + width + ROLLUP_LAG
            await asyncio.sleep(max(0.05, next_at - self.clock()))

    def _read_signals(self, start: float, end: float) -> list[Sample]:
        host = self._host
        assert host is not None
        out: list[Sample] = []
        width = self.cfg.rollup_interval
        for name in self.cfg.signals:
            spec = host.specs.get(name)
            if spec is None:
                continue
            found = host.store.query(name, [], start, end - 0.001, width,
                                     spec.kind == "counter")  # fmt: skip
            for series in found["series"]:
                out.extend(Sample(name, (), float(v), float(t)) for t, v in series["points"]
                           if start <= t < end)  # fmt: skip
        return out
