"""Render REST API v1: a web service's deploys, rollback, scale and instances.

``Target.app`` is the service id (``srv-…``). A deploy is ``POST /services/{id}/deploys``
(201, with ``imageUrl`` for image-backed services, else the latest commit); rollback is
``POST /services/{id}/rollback {deployId}`` (201): Render reuses the old build, nothing
is rebuilt. Secrets: ``PUT /services/{id}/env-vars/{key}`` before the deploy. Lists are
cursor-paginated (``[{"deploy": …, "cursor": …}]``). Versions
are numbered by age: the oldest deploy is v1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastmango.deployer.base import Adapter, parse_time, require_token
from fastmango.deployer.errors import PlatformError
from fastmango.deployer.http import PlatformClient, RetryPolicy, TokenAuth, make_client
from fastmango.deployer.platform import (
    Instance,
    Release,
    ReleaseState,
    Rollout,
    Status,
    Target,
)

API = "https://api.render.com/v1"
PAGE = 100
_STATES: dict[str, ReleaseState] = {
    "created": "pending",
    "queued": "pending",
    "build_in_progress": "in_progress",
    "update_in_progress": "in_progress",
    "pre_deploy_in_progress": "in_progress",
    "live": "live",
    "deactivated": "superseded",
    "build_failed": "failed",
    "update_failed": "failed",
    "pre_deploy_failed": "failed",
    "canceled": "failed",
}


def connect(target: Target, **kw: Any) -> RenderPlatform:
    token = require_token(target)
    client = make_client(
        "render",
        target.api_url or API,
        auth=TokenAuth(lambda: token),
        retry=kw.pop("retry", RetryPolicy()),
        **kw,
    )
    return RenderPlatform(target, client)


class RenderPlatform(Adapter):
    name = "render"

    def __init__(self, target: Target, client: PlatformClient) -> None:
        super().__init__(target, client)
        self._svc = f"/services/{target.app}"

    def _release(self, d: dict[str, Any], number: int) -> Release:
        image = (d.get("image") or {}).get("ref")
        commit = d.get("commit") or {}
        return Release(
            id=d["id"],
            version=f"v{number}",
            image=image or commit.get("id"),
            state=_STATES.get(d.get("status", ""), "pending"),
            created_at=parse_time(d.get("createdAt")),
            message=str(d.get("trigger") or commit.get("message") or ""),
        )

    async def _all_deploys(self) -> list[dict[str, Any]]:
        """Every deploy, newest first, following the cursor."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            page = self.check(await self.client.get(f"{self._svc}/deploys", params=params))
            out.extend(row["deploy"] for row in page)
            if len(page) < PAGE:
                return out
            cursor = page[-1]["cursor"]

    async def releases(self, limit: int = 20) -> list[Release]:
        deploys = await self._all_deploys()
        n = len(deploys)
        return [self._release(d, n - i) for i, d in enumerate(deploys[:limit])]

    async def _next_number(self) -> int:
        return len(await self._all_deploys()) + 1

    async def deploy(self, image: str, *, regions: Sequence[str] = ()) -> Release:
        number = await self._next_number()
        body: dict[str, Any] = {"imageUrl": image} if image else {"clearCache": "do_not_clear"}
        d = self.check(await self.client.post(f"{self._svc}/deploys", json=body), ok=(201,))
        return self._release(d, number)

    async def set_secrets(self, values: Mapping[str, str]) -> None:
        """``PUT /services/{id}/env-vars/{key} {"value"}`` per name: adds or updates that
        one variable and leaves the service's others alone (``PUT …/env-vars`` would
        replace them all)."""
        for key, value in sorted(values.items()):
            self.check(
                await self.client.put(f"{self._svc}/env-vars/{key}", json={"value": value}),
                ok=(200, 201),
            )

    async def rollback(self, to: Release) -> Release:
        number = await self._next_number()
        d = self.check(
            await self.client.post(f"{self._svc}/rollback", json={"deployId": to.id}), ok=(201,)
        )
        return self._release(d, number)

    async def watch(self, release: Release, wait: float) -> Rollout:
        d = self.check(await self.client.get(f"{self._svc}/deploys/{release.id}"))
        rel = self._release(d, int(release.version.lstrip("v") or 0))
        status = d.get("status", "")
        if rel.state == "live":
            n = len(await self.instances())
            return Rollout(rel, "live", n, n, status)
        if rel.state in ("failed", "superseded"):
            return Rollout(rel, "failed", 0, 1, status)
        return Rollout(rel, "in_progress", 0, 1, status)

    async def status(self) -> Status:
        page = self.check(await self.client.get(f"{self._svc}/deploys", params={"limit": 20}))
        live = next((r["deploy"] for r in page if r["deploy"].get("status") == "live"), None)
        instances = await self.instances()
        release = None
        if live is not None:
            number = len(await self._all_deploys()) - [r["deploy"]["id"] for r in page].index(
                live["id"]
            )
            release = self._release(live, number)
        return Status(release, len(instances), len(instances), tuple(instances))

    async def scale(self, replicas: int) -> None:
        if replicas < 1:
            raise PlatformError("render", "a web service runs at least 1 instance")
        self.check(
            await self.client.post(f"{self._svc}/scale", json={"numInstances": replicas}),
            ok=(202, 200, 204),
        )

    async def instances(self) -> list[Instance]:
        rows = self.check(await self.client.get(f"{self._svc}/instances"))
        return [
            Instance(
                id=r["id"],
                state="running",
                ready=True,
                started_at=parse_time(r.get("createdAt")) or None,
            )
            for r in rows
        ]
