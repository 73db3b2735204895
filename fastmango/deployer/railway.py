"""Railway's public GraphQL API v2 (``POST https://backboard.railway.com/graphql/v2``).

``Target.app`` is the service id, ``Target.environment_id`` and ``Target.project`` the
Railway environment and project ids. A project token goes in ``Project-Access-Token``
(tokens given as ``project:<token>``), any other in ``Authorization: Bearer``.

* deploy: ``serviceInstanceUpdate(source.image)`` then ``serviceInstanceDeployV2`` →
  deployment id; polled with ``deployment(id){status}`` until SUCCESS/FAILED/CRASHED.
* releases: ``deployments(input, first, after)`` (a Relay connection), oldest = v1.
* rollback: ``deploymentRollback(id)`` (returns ``Boolean!``; the built image is reused),
  then the newest deployment is the rollback's.
* secrets: ``variableCollectionUpsert(input: {projectId, environmentId, serviceId,
  variables, skipDeploys: true})`` before the deploy.
* scale: ``environmentPatchCommit`` with ``multiRegionConfig.<region>.numReplicas``.

Errors come back as HTTP 200 with ``errors[]``; they raise :class:`PlatformError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fastmango.deployer.base import Adapter, parse_time, require_token
from fastmango.deployer.errors import PlatformAuthError, PlatformError, PlatformNotFound
from fastmango.deployer.http import (
    PlatformClient,
    RetryPolicy,
    TokenAuth,
    graphql_throttled,
    make_client,
)
from fastmango.deployer.platform import Instance, Release, ReleaseState, Rollout, Status, Target

API = "https://backboard.railway.com/graphql/v2"
_STATES: dict[str, ReleaseState] = {
    "SUCCESS": "live",
    "SLEEPING": "live",
    "REMOVED": "superseded",
    "REMOVING": "superseded",
    "FAILED": "failed",
    "CRASHED": "failed",
    "SKIPPED": "failed",
    "BUILDING": "in_progress",
    "DEPLOYING": "in_progress",
    "INITIALIZING": "in_progress",
    "QUEUED": "pending",
    "WAITING": "pending",
    "NEEDS_APPROVAL": "pending",
}
DEPLOYMENT_FIELDS = "id status createdAt canRollback meta staticUrl"

Q_DEPLOYMENTS = f"""query deployments($input: DeploymentListInput!, $first: Int, $after: String) {{
  deployments(input: $input, first: $first, after: $after) {{
    edges {{ node {{ {DEPLOYMENT_FIELDS} }} }}
    pageInfo {{ endCursor hasNextPage }}
  }}
}}"""
Q_DEPLOYMENT = f"""query deployment($id: String!) {{
  deployment(id: $id) {{ {DEPLOYMENT_FIELDS} instances {{ id status }} }}
}}"""
Q_SERVICE_INSTANCE = """query serviceInstance($environmentId: String!, $serviceId: String!) {
  serviceInstance(environmentId: $environmentId, serviceId: $serviceId) {
    id numReplicas region latestDeployment { id status }
  }
}"""
M_UPDATE = """mutation serviceInstanceUpdate($serviceId: String!, $environmentId: String,
  $input: ServiceInstanceUpdateInput!) {
  serviceInstanceUpdate(serviceId: $serviceId, environmentId: $environmentId, input: $input)
}"""
M_DEPLOY = """mutation serviceInstanceDeployV2($serviceId: String!, $environmentId: String!) {
  serviceInstanceDeployV2(serviceId: $serviceId, environmentId: $environmentId)
}"""
M_ROLLBACK = """mutation deploymentRollback($id: String!) { deploymentRollback(id: $id) }"""
M_VARIABLES = """mutation variableCollectionUpsert($input: VariableCollectionUpsertInput!) {
  variableCollectionUpsert(input: $input)
}"""
M_PATCH = """mutation environmentPatchCommit($environmentId: String!,
  $patch: EnvironmentConfig, $commitMessage: String) {
  environmentPatchCommit(environmentId: $environmentId, patch: $patch,
    commitMessage: $commitMessage)
}"""


def connect(target: Target, **kw: Any) -> RailwayPlatform:
    token = require_token(target)
    if token.startswith("project:"):
        secret = token.removeprefix("project:")
        auth = TokenAuth(lambda: secret, header="Project-Access-Token", scheme="")
    else:
        auth = TokenAuth(lambda: token)
    client = make_client(
        "railway",
        target.api_url or API,
        auth=auth,
        throttle=graphql_throttled,
        retry=kw.pop("retry", RetryPolicy()),
        **kw,
    )
    return RailwayPlatform(target, client)


class RailwayPlatform(Adapter):
    name = "railway"

    def __init__(self, target: Target, client: PlatformClient) -> None:
        super().__init__(target, client)
        self.url = target.api_url or API
        if not target.environment_id:
            raise PlatformError(
                "railway",
                "environments.<env>.environment_id (the Railway environment id) is required",
            )

    async def gql(
        self, op: str, query: str, variables: dict[str, Any], *, read: bool = True
    ) -> dict[str, Any]:
        """One GraphQL operation; errors inside a 200 raise. Queries are retried; a
        mutation only when the answer was throttled (nothing happened then)."""
        resp = await self.client.post(
            self.url,
            json={"query": query, "variables": variables, "operationName": op},
            extensions={"retry": read},
        )
        body = self.check(resp)
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            text = "; ".join(str(e.get("message", e)) for e in errors[:3])
            low = text.lower()
            cls = (
                PlatformAuthError
                if "not authorized" in low or "token" in low
                else PlatformNotFound
                if "not found" in low
                else PlatformError
            )
            raise cls("railway", text, resp.status_code, f"POST graphql {op}")
        return dict(body.get("data") or {})

    def _release(self, node: dict[str, Any], number: int) -> Release:
        meta = node.get("meta") or {}
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except ValueError:
                meta = {}
        image = meta.get("image") or ((meta.get("serviceManifest") or {}).get("source") or {}).get(
            "image"
        )
        return Release(
            id=node["id"],
            version=f"v{number}",
            image=image,
            state=_STATES.get(node.get("status", ""), "pending"),
            created_at=parse_time(node.get("createdAt")),
            message=str(meta.get("reason") or meta.get("commitMessage") or ""),
        )

    async def _all(self) -> list[dict[str, Any]]:
        """Every deployment of the service in the environment, newest first."""
        nodes: list[dict[str, Any]] = []
        after: str | None = None
        inp = {"serviceId": self.target.app, "environmentId": self.target.environment_id}
        if self.target.project:
            inp["projectId"] = self.target.project
        while True:
            data = await self.gql(
                "deployments", Q_DEPLOYMENTS, {"input": inp, "first": 50, "after": after}
            )
            conn = data["deployments"]
            nodes.extend(e["node"] for e in conn["edges"])
            if not conn["pageInfo"]["hasNextPage"]:
                return nodes
            after = conn["pageInfo"]["endCursor"]

    async def releases(self, limit: int = 20) -> list[Release]:
        nodes = await self._all()
        n = len(nodes)
        return [self._release(node, n - i) for i, node in enumerate(nodes[:limit])]

    async def deploy(self, image: str, *, regions: Sequence[str] = ()) -> Release:
        ids = {"serviceId": self.target.app, "environmentId": self.target.environment_id}
        update: dict[str, Any] = {}
        if image:
            update["source"] = {"image": image}
        if regions:
            update["multiRegionConfig"] = {r: {"numReplicas": 1} for r in regions}
        if update:
            await self.gql("serviceInstanceUpdate", M_UPDATE, {**ids, "input": update}, read=False)
        number = len(await self._all()) + 1
        data = await self.gql("serviceInstanceDeployV2", M_DEPLOY, ids, read=False)
        dep_id = data["serviceInstanceDeployV2"]
        return Release(dep_id, f"v{number}", image or None, "pending", 0.0, "deploy")

    async def set_secrets(self, values: Mapping[str, str]) -> None:
        """``variableCollectionUpsert`` (one mutation for all names; ``skipDeploys``: the
        deploy that follows picks them up). Needs ``environments.<env>.project``."""
        if not self.target.project:
            raise PlatformError(
                "railway",
                "environments.<env>.project (the Railway project id) is required to set variables",
            )
        inp = {
            "projectId": self.target.project,
            "environmentId": self.target.environment_id,
            "serviceId": self.target.app,
            "variables": dict(values),
            "skipDeploys": True,
        }
        data = await self.gql("variableCollectionUpsert", M_VARIABLES, {"input": inp}, read=False)
        if data.get("variableCollectionUpsert") is not True:
            raise PlatformError("railway", "variableCollectionUpsert did not answer true")

    async def rollback(self, to: Release) -> Release:
        before = {n["id"] for n in await self._all()}
        data = await self.gql("deploymentRollback", M_ROLLBACK, {"id": to.id}, read=False)
        if data.get("deploymentRollback") is not True:
            raise PlatformError(
                "railway",
                f"deploymentRollback({to.id}) answered {data.get('deploymentRollback')!r}",
            )
        for _ in range(20):  # the rollback's deployment appears at the top of the list
            nodes = await self._all()
            fresh = [n for n in nodes if n["id"] not in before]
            if fresh:
                rel = self._release(fresh[0], len(nodes))
                return Release(
                    rel.id,
                    rel.version,
                    rel.image or to.image,
                    rel.state,
                    rel.created_at,
                    f"rollback to {to.version}",
                )
            await self.client.pause(0.5)
        raise PlatformError("railway", "the rollback's deployment did not appear")

    async def watch(self, release: Release, wait: float) -> Rollout:
        data = await self.gql("deployment", Q_DEPLOYMENT, {"id": release.id})
        node = data["deployment"]
        rel = self._release(node, int(release.version.lstrip("v") or 0))
        rel = Release(
            rel.id,
            rel.version,
            rel.image or release.image,
            rel.state,
            rel.created_at,
            release.message,
        )
        instances = node.get("instances") or []
        ready = sum(1 for i in instances if i.get("status") == "RUNNING")
        status = node.get("status", "")
        if rel.state == "live":
            return Rollout(rel, "live", ready, max(ready, len(instances)), status)
        if rel.state in ("failed", "superseded"):
            return Rollout(rel, "failed", ready, len(instances), status)
        return Rollout(rel, "in_progress", ready, max(1, len(instances)), status)

    async def status(self) -> Status:
        rels = await self.releases(limit=20)
        live = next((r for r in rels if r.state == "live"), None)
        inst = await self.instances()
        return Status(live, len(inst), sum(1 for i in inst if i.ready), tuple(inst))

    async def scale(self, replicas: int) -> None:
        regions = list(self.target.regions)
        if not regions:
            data = await self.gql(
                "serviceInstance",
                Q_SERVICE_INSTANCE,
                {"environmentId": self.target.environment_id, "serviceId": self.target.app},
            )
            regions = [data["serviceInstance"].get("region") or "us-west2"]
        share = {
            r: replicas // len(regions) + (1 if i < replicas % len(regions) else 0)
            for i, r in enumerate(regions)
        }
        patch = {
            "services": {
                self.target.app: {
                    "deploy": {
                        "multiRegionConfig": {r: {"numReplicas": n} for r, n in share.items()}
                    }
                }
            }
        }
        await self.gql(
            "environmentPatchCommit",
            M_PATCH,
            {
                "environmentId": self.target.environment_id,
                "patch": patch,
                "commitMessage": f"fastmango: scale to {replicas}",
            },
            read=False,
        )

    async def instances(self) -> list[Instance]:
        rels = await self.releases(limit=20)
        live = next((r for r in rels if r.state == "live"), None)
        if live is None:
            return []
        data = await self.gql("deployment", Q_DEPLOYMENT, {"id": live.id})
        return [
            Instance(
                id=i["id"],
                state=i.get("status", ""),
                ready=i.get("status") == "RUNNING",
                version=live.version,
            )
            for i in data["deployment"].get("instances") or []
        ]
