"""Fly.io: the Machines API (``https://api.machines.dev/v1``) and Fly's GraphQL API for
release records (``https://api.fly.io/graphql``).

``Target.app`` is the Fly app. Deploys are blue/green and keep the previous version warm:

* deploy(image): ``createRelease`` (GraphQL) → vN; one new machine per active machine (or
  per ``--regions`` entry) with the same config and the new image; once every new
  machine is ``started`` with its checks passing, the old machines are stopped (not
  destroyed), cordoned and marked ``fastmango_role=standby``; the standby machines of
  the release before are destroyed. A failed rollout destroys the new machines and
  leaves the old ones serving.
* rollback(to): if standby machines run ``to``'s image they are uncordoned and started
  (no image pull, seconds); else every active machine is updated in place to that image
  (``POST /machines/{id}`` with the full config, under a lease), as ``fly deploy
  --image`` does. Either way it is a new release vN+1 with the old image.
* Every machine operation is done under a lease (``POST …/lease`` → nonce, sent as
  ``fly-machine-lease-nonce``); a lease held by someone else (409) is retried for
  :data:`LEASE_WAIT` seconds, then reported.
* secrets: the vault's values go into the new machines' ``config.env`` (the Machines
  API's own field). Fly's app-secrets store (``fly secrets set``) is written through an
  API flyctl uses that we could not confirm from Fly's published Machines API reference,
  so it is not used; note that ``config.env`` is readable by anyone holding a token that
  can read the app's machines.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastmango.deployer.base import Adapter, parse_time, require_token
from fastmango.deployer.errors import DeployError, PlatformConflict, PlatformError
from fastmango.deployer.http import (
    PlatformClient,
    RetryPolicy,
    TokenAuth,
    graphql_throttled,
    make_client,
)
from fastmango.deployer.platform import Instance, Release, ReleaseState, Rollout, Status, Target

API = "https://api.machines.dev"
GRAPHQL = "https://api.fly.io/graphql"
LEASE_TTL = 60
LEASE_WAIT = 15.0
ROLE = "fastmango_role"
GONE = ("destroyed", "destroying", "replaced", "migrated")
FAILED = ("failed", "launch_failed")

Q_RELEASES = """query releases($appName: String!, $limit: Int!) {
  app(name: $appName) { releases: releasesUnprocessed(first: $limit) {
    nodes { id version description reason status imageRef stable createdAt user { email } } } }
}"""
M_CREATE = """mutation createRelease($input: CreateReleaseInput!) {
  createRelease(input: $input) { release { id version } }
}"""
M_UPDATE = """mutation updateRelease($input: UpdateReleaseInput!) {
  updateRelease(input: $input) { release { id status } }
}"""


def connect(target: Target, **kw: Any) -> FlyPlatform:
    token = require_token(target)
    # macaroon tokens (fly tokens create …) go as "FlyV1 fm2_…", others as Bearer
    scheme = "FlyV1" if token.startswith(("fm1", "fm2")) else "Bearer"
    base = (target.api_url or API).rstrip("/")
    client = make_client(
        "fly",
        base + "/v1",
        auth=TokenAuth(lambda: token, scheme=scheme),
        throttle=graphql_throttled,
        retry=kw.pop("retry", RetryPolicy()),
        **kw,
    )
    return FlyPlatform(target, client, base + "/graphql" if target.api_url else GRAPHQL)


@dataclass
class _Pending:
    new: list[str]
    old: list[str]
    drop: list[str]  # standby machines to destroy once the new ones are healthy
    in_place: bool = False
    ready: set[str] = field(default_factory=set)


def _ready(m: dict[str, Any]) -> bool:
    checks = m.get("checks") or []
    return m.get("state") == "started" and all(c.get("status") == "passing" for c in checks)


class FlyPlatform(Adapter):
    name = "fly"

    def __init__(self, target: Target, client: PlatformClient, graphql: str) -> None:
        super().__init__(target, client)
        self.graphql = graphql
        self._m = f"/apps/{target.app}/machines"
        self._pending: dict[str, _Pending] = {}
        self._env: dict[str, str] = {}

    # -- GraphQL (release records) ------------------------------------------------------
    async def gql(self, query: str, variables: dict[str, Any], read: bool = True) -> Any:
        resp = await self.client.post(
            self.graphql, json={"query": query, "variables": variables}, extensions={"retry": read}
        )
        body = self.check(resp)
        if body.get("errors"):
            raise PlatformError(
                "fly",
                "; ".join(e.get("message", "") for e in body["errors"]),
                resp.status_code,
                "POST graphql",
            )
        return body["data"]

    async def _create_release(self, image: str, strategy: str) -> tuple[str, int]:
        data = await self.gql(
            M_CREATE,
            {
                "input": {
                    "appId": self.target.app,
                    "image": image,
                    "platformVersion": "machines",
                    "strategy": strategy,
                    "definition": {},
                }
            },
            read=False,
        )
        rel = data["createRelease"]["release"]
        return rel["id"], int(rel["version"])

    async def _finish_release(self, release_id: str, status: str) -> None:
        await self.gql(M_UPDATE, {"input": {"releaseId": release_id, "status": status}}, read=False)

    async def releases(self, limit: int = 20) -> list[Release]:
        data = await self.gql(Q_RELEASES, {"appName": self.target.app, "limit": limit})
        out: list[Release] = []
        seen_live = False
        for n in data["app"]["releases"]["nodes"]:
            status = str(n.get("status", "")).lower()
            state: ReleaseState
            if status in ("complete", "succeeded", "success"):
                state = "superseded" if seen_live else "live"
                seen_live = True
            elif status in ("failed", "interrupted"):
                state = "failed"
            else:
                state = "in_progress"
            out.append(
                Release(
                    n["id"],
                    f"v{n['version']}",
                    n.get("imageRef"),
                    state,
                    parse_time(n.get("createdAt")),
                    n.get("description") or n.get("reason") or "",
                )
            )
        return out

    # -- machines --------------------------------------------------------------------
    async def _machines(self) -> list[dict[str, Any]]:
        rows = self.check(await self.client.get(self._m))
        return [m for m in rows if m.get("state") not in GONE]

    @staticmethod
    def _standby(m: dict[str, Any]) -> bool:
        return ((m.get("config") or {}).get("metadata") or {}).get(ROLE) == "standby"

    async def _lease(self, mid: str) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LEASE_WAIT
        while True:
            resp = await self.client.post(
                f"{self._m}/{mid}/lease", json={"ttl": LEASE_TTL, "description": "fastmango"}
            )
            if resp.status_code in (200, 201):
                return str(resp.json()["data"]["nonce"])
            err = self.error(resp)
            if resp.status_code != 409 or loop.time() >= deadline:
                if resp.status_code == 409:
                    raise PlatformConflict(
                        "fly",
                        f"machine {mid} is leased by someone else "
                        f"(another deploy?) and was not freed within "
                        f"{LEASE_WAIT:.0f}s: {err}",
                        409,
                    )
                raise err
            await self.client.pause(1.0)

    async def _unlease(self, mid: str, nonce: str) -> None:
        resp = await self.client.delete(
            f"{self._m}/{mid}/lease", headers={"fly-machine-lease-nonce": nonce}
        )
        if resp.status_code not in (200, 204, 404):
            raise self.error(resp)

    async def _with_lease(self, mid: str, *steps: tuple[str, str, Any]) -> Any:
        """Run (method, path suffix, json) steps on one machine under a lease."""
        nonce = await self._lease(mid)
        out = None
        try:
            for method, suffix, body in steps:
                out = self.check(
                    await self.client.request(
                        method,
                        f"{self._m}/{mid}{suffix}",
                        json=body,
                        headers={"fly-machine-lease-nonce": nonce},
                    )
                )
        finally:
            await self._unlease(mid, nonce)
        return out

    async def _create(self, config: dict[str, Any], region: str | None) -> str:
        body: dict[str, Any] = {"config": config}
        if region:
            body["region"] = region
        m = self.check(await self.client.post(self._m, json=body))
        return str(m["id"])

    # -- the interface ----------------------------------------------------------------
    async def set_secrets(self, values: Mapping[str, str]) -> None:
        """Kept for :meth:`deploy`: the new machines get them in ``config.env``."""
        self._env = dict(values)

    async def deploy(self, image: str, *, regions: Sequence[str] = ()) -> Release:
        if not image:
            raise DeployError("fly deploys an image: pass --image")
        machines = await self._machines()
        active = [m for m in machines if not self._standby(m)]
        if not active:
            raise DeployError(
                f"fly app {self.target.app} has no machines to copy the config "
                "from; create one first (fly launch / fly machine run)"
            )
        release_id, version = await self._create_release(image, "BLUEGREEN")
        wanted = list(regions or self.target.regions)
        count = max(len(active), len(wanted))
        configs = []
        for i in range(count):
            cfg = copy.deepcopy(active[i % len(active)]["config"])
            cfg["image"] = image
            if self._env:
                cfg["env"] = {**(cfg.get("env") or {}), **self._env}
            cfg.setdefault("metadata", {}).update(
                {"fly_release_id": release_id, "fly_release_version": str(version), ROLE: "active"}
            )
            region = wanted[i % len(wanted)] if wanted else active[i % len(active)].get("region")
            configs.append((cfg, region))
        new = await asyncio.gather(*(self._create(c, r) for c, r in configs))
        drop = [m["id"] for m in machines if self._standby(m)]
        self._pending[release_id] = _Pending(list(new), [m["id"] for m in active], drop)
        return Release(release_id, f"v{version}", image, "in_progress", 0.0, "deploy")

    async def rollback(self, to: Release) -> Release:
        if not to.image:
            raise DeployError(f"fly release {to.version} has no image to roll back to")
        machines = await self._machines()
        standby = [
            m
            for m in machines
            if self._standby(m) and (m.get("config") or {}).get("image") == to.image
        ]
        active = [m for m in machines if not self._standby(m)]
        release_id, version = await self._create_release(to.image, "IMMEDIATE")
        if standby:
            await asyncio.gather(
                *(
                    self._with_lease(
                        m["id"],
                        ("POST", "/uncordon", None),
                        ("POST", f"/metadata/{ROLE}", {"value": "active"}),
                        ("POST", "/start", None),
                    )
                    for m in standby
                )
            )
            others = [m["id"] for m in machines if self._standby(m) and m not in standby]
            self._pending[release_id] = _Pending(
                [m["id"] for m in standby], [m["id"] for m in active], others
            )
        else:
            if not active:
                raise DeployError(f"fly app {self.target.app} has no machines")

            async def update(m: dict[str, Any]) -> None:
                cfg = copy.deepcopy(m["config"])
                cfg["image"] = to.image
                cfg.setdefault("metadata", {}).update(
                    {"fly_release_id": release_id, "fly_release_version": str(version)}
                )
                await self._with_lease(m["id"], ("POST", "", {"config": cfg}))

            await asyncio.gather(*(update(m) for m in active))
            self._pending[release_id] = _Pending([m["id"] for m in active], [], [], in_place=True)
        return Release(
            release_id, f"v{version}", to.image, "in_progress", 0.0, f"rollback to {to.version}"
        )

    async def _wait_one(self, mid: str, wait: float) -> dict[str, Any]:
        if wait >= 1:
            resp = await self.client.get(
                f"{self._m}/{mid}/wait", params={"state": "started", "timeout": int(min(wait, 60))}
            )
            if resp.status_code not in (200, 408, 400):
                raise self.error(resp)
        return dict(self.check(await self.client.get(f"{self._m}/{mid}")))

    async def watch(self, release: Release, wait: float) -> Rollout:
        p = self._pending.get(release.id)
        if p is None:
            rels = await self.releases(limit=5)
            now = next((r for r in rels if r.id == release.id), release)
            state = {"live": "live", "failed": "failed"}.get(now.state, "in_progress")
            return Rollout(now, state, 0, 0, now.state)  # type: ignore[arg-type]
        todo = [mid for mid in p.new if mid not in p.ready]
        seen = await asyncio.gather(*(self._wait_one(mid, wait) for mid in todo))
        failed = [m for m in seen if m.get("state") in FAILED]
        p.ready.update(m["id"] for m in seen if _ready(m))
        n = len(p.new)
        if failed:
            if not p.in_place:
                await asyncio.gather(*(self._destroy(mid) for mid in p.new))
            await self._finish_release(release.id, "failed")
            del self._pending[release.id]
            states = ", ".join(f"{m['id']} {m.get('state')}" for m in failed)
            return Rollout(release, "failed", len(p.ready), n, f"machines failed: {states}")
        if len(p.ready) < n:
            waiting = [m for m in seen if not _ready(m)]
            why = ", ".join(
                f"{m['id']} {m.get('state')}"
                + "".join(f" {c.get('name')}={c.get('status')}" for c in m.get("checks") or [])
                for m in waiting[:3]
            )
            return Rollout(release, "in_progress", len(p.ready), n, why)
        # healthy: the old machines become the warm standby, the older standby goes
        await asyncio.gather(
            *(
                self._with_lease(
                    mid,
                    ("POST", "/stop", {}),
                    ("POST", "/cordon", None),
                    ("POST", f"/metadata/{ROLE}", {"value": "standby"}),
                )
                for mid in p.old
            )
        )
        await asyncio.gather(*(self._destroy(mid) for mid in p.drop))
        await self._finish_release(release.id, "complete")
        del self._pending[release.id]
        live = Release(
            release.id, release.version, release.image, "live", release.created_at, release.message
        )
        return Rollout(live, "live", n, n, f"{n} machines started, checks passing")

    async def _destroy(self, mid: str) -> None:
        nonce = await self._lease(mid)
        resp = await self.client.delete(
            f"{self._m}/{mid}", params={"force": "true"}, headers={"fly-machine-lease-nonce": nonce}
        )
        if resp.status_code not in (200, 204, 404):
            raise self.error(resp)

    async def status(self) -> Status:
        rels = await self.releases(limit=10)
        live = next((r for r in rels if r.state == "live"), None)
        inst = [i for i in await self.instances() if i.state != "stopped" or i.ready]
        return Status(live, len(inst), sum(1 for i in inst if i.ready), tuple(inst))

    async def scale(self, replicas: int) -> None:
        active = [m for m in await self._machines() if not self._standby(m)]
        if not active:
            raise DeployError(f"fly app {self.target.app} has no machines to scale")
        if replicas > len(active):
            regions: list[str | None] = list(self.target.regions) or [active[0].get("region")]
            cfg = copy.deepcopy(active[0]["config"])
            await asyncio.gather(
                *(
                    self._create(cfg, regions[i % len(regions)])
                    for i in range(replicas - len(active))
                )
            )
        elif replicas < len(active):
            extra = sorted(active, key=lambda m: m.get("created_at", ""))[replicas:]
            await asyncio.gather(*(self._destroy(m["id"]) for m in extra))

    async def instances(self) -> list[Instance]:
        out = []
        for m in await self._machines():
            cfg = m.get("config") or {}
            guest = cfg.get("guest") or {}
            size = (
                f"{guest.get('cpu_kind', 'shared')}-cpu-{guest.get('cpus', 1)}x" if guest else None
            )
            state = m.get("state", "")
            if self._standby(m):
                state = f"{state} (standby)"
            out.append(
                Instance(
                    m["id"],
                    state,
                    _ready(m) and not self._standby(m),
                    m.get("region"),
                    size,
                    (cfg.get("metadata") or {}).get("fly_release_version"),
                    parse_time(m.get("created_at")) or None,
                )
            )
        return out
