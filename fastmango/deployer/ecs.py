"""Amazon ECS on Fargate (JSON 1.1 API, SigV4-signed): task definition revisions,
UpdateService, the deployment circuit breaker with rollback.

``Target``: ``app`` = ``cluster/service`` (or ``service`` in the ``default`` cluster),
``regions`` = its one region (``us-east-1`` or a portable name), ``token`` =
``ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]`` (else ``AWS_ACCESS_KEY_ID`` …),
``container`` = the container whose image is deployed (default: the first).

* **deploy**: DescribeServices → the service's task definition → DescribeTaskDefinition;
  RegisterTaskDefinition with the new image (a new ``family:revision``); UpdateService
  to it with ``deploymentCircuitBreaker {enable, rollback}`` on, so ECS itself rolls a
  failing deployment back. Polled with DescribeServices: the deployment's
  ``rolloutState`` (IN_PROGRESS, COMPLETED, FAILED + ``rolloutStateReason``).
* **releases**: ListTaskDefinitions (family, newest first) + DescribeTaskDefinition;
  ``version`` = ``v<revision>``.
* **rollback**: UpdateService to an older task definition revision (nothing rebuilt).
* **scale(n)**: UpdateService ``desiredCount``. **instances**: ListTasks + DescribeTasks.
* Throttling is HTTP 400 ``ThrottlingException`` (not 429): the shared client retries it
  with backoff, for every operation. Fargate has no GPUs: ``--gpu`` is refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from fastmango.deployer.base import Adapter, parse_time
from fastmango.deployer.errors import DeployError, NoSuchRelease, PlatformError
from fastmango.deployer.http import PlatformClient, RetryPolicy, make_client
from fastmango.deployer.placement import gpu_offer, region_names
from fastmango.deployer.platform import (
    Instance,
    Release,
    ReleaseState,
    Rollout,
    Status,
    Target,
)
from fastmango.deployer.sigv4 import AwsCredentials, SigV4Auth

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
CONTENT_TYPE = "application/x-amz-json-1.1"
READ_ONLY = frozenset(
    {
        "DescribeServices",
        "DescribeTaskDefinition",
        "ListTaskDefinitions",
        "ListTasks",
        "DescribeTasks",
    }
)
#: what RegisterTaskDefinition accepts back from DescribeTaskDefinition
REGISTERABLE = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
)


def throttled(resp: httpx.Response) -> bool:
    """ECS' "slow down": HTTP 400 with ``__type`` ThrottlingException."""
    if resp.status_code != 400:
        return False
    try:
        kind = str(resp.json().get("__type", ""))
    except (ValueError, AttributeError):
        return False
    return kind.rsplit("#", 1)[-1] in ("ThrottlingException", "RequestLimitExceeded")


def connect(target: Target, **kw: Any) -> EcsPlatform:
    gpu_offer("ecs", kw.pop("gpu", None))  # Fargate has none: a clear refusal
    regions = region_names("ecs", target.regions or ("us-east-1",))
    region = regions[0]
    creds = AwsCredentials.from_token_or_env(target.token)
    client = make_client(
        "ecs",
        (target.api_url or f"https://ecs.{region}.amazonaws.com").rstrip("/"),
        auth=SigV4Auth(creds, region, "ecs"),
        retry=kw.pop("retry", RetryPolicy()),
        throttle=throttled,
        **kw,
    )
    return EcsPlatform(target, client, region)


def _rev(arn: str) -> int:
    tail = arn.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class EcsPlatform(Adapter):
    name = "ecs"

    def __init__(self, target: Target, client: PlatformClient, region: str) -> None:
        super().__init__(target, client)
        self.region = region
        cluster, _, service = target.app.rpartition("/")
        self.cluster = cluster or "default"
        self.service = service

    def error(self, resp: httpx.Response, message: str | None = None) -> PlatformError:
        if message is None:
            try:
                body = resp.json()
                kind = str(body.get("__type", "")).rsplit("#", 1)[-1]
                text = body.get("message") or body.get("Message") or ""
                message = f"{kind}: {text}" if kind else None
            except (ValueError, AttributeError):
                message = None
        return super().error(resp, message)

    async def call(self, op: str, body: dict[str, Any]) -> Any:
        resp = await self.client.post(
            "/",
            content=json.dumps(body).encode(),
            headers={"X-Amz-Target": TARGET_PREFIX + op, "Content-Type": CONTENT_TYPE},
            extensions={"retry": op in READ_ONLY},
        )
        return self.check(resp)

    async def _service(self) -> dict[str, Any]:
        out = await self.call(
            "DescribeServices", {"cluster": self.cluster, "services": [self.service]}
        )
        if not out.get("services"):
            reason = (out.get("failures") or [{}])[0].get("reason", "MISSING")
            raise PlatformError(
                "ecs", f"no service {self.service!r} in cluster {self.cluster!r} ({reason})"
            )
        svc: dict[str, Any] = out["services"][0]
        return svc

    async def _taskdef(self, ref: str) -> dict[str, Any]:
        out = await self.call("DescribeTaskDefinition", {"taskDefinition": ref})
        td: dict[str, Any] = out["taskDefinition"]
        return td

    def _container(self, td: dict[str, Any]) -> dict[str, Any]:
        containers = td.get("containerDefinitions") or []
        if self.target.container:
            for c in containers:
                if c.get("name") == self.target.container:
                    return dict(c)
            names = ", ".join(str(c.get("name")) for c in containers)
            raise PlatformError("ecs", f"no container {self.target.container!r} ({names})")
        if not containers:
            raise PlatformError("ecs", "the task definition has no container")
        return dict(containers[0])

    def _release(self, td: dict[str, Any], svc: dict[str, Any]) -> Release:
        arn = td["taskDefinitionArn"]
        deps = [d for d in svc.get("deployments", []) if d.get("taskDefinition") == arn]
        state: ReleaseState = "superseded"
        message = ""
        if deps:
            d = deps[0]
            rollout = d.get("rolloutState")
            message = str(d.get("rolloutStateReason") or "")
            if rollout == "FAILED":
                state = "failed"
            elif d.get("status") == "PRIMARY":
                state = "live" if rollout == "COMPLETED" else "in_progress"
            else:
                state = "superseded"
        elif arn == svc.get("taskDefinition"):
            state = "live"
        return Release(
            id=arn,
            version=f"v{td.get('revision', _rev(arn))}",
            image=self._container(td).get("image"),
            state=state,
            created_at=parse_time(td.get("registeredAt")),
            message=message,
        )

    async def releases(self, limit: int = 20) -> list[Release]:
        svc = await self._service()
        family = svc["taskDefinition"].rsplit("/", 1)[-1].rsplit(":", 1)[0]
        arns: list[str] = []
        token = None
        while len(arns) < limit:
            body: dict[str, Any] = {
                "familyPrefix": family,
                "sort": "DESC",
                "maxResults": min(100, limit),
            }
            if token:
                body["nextToken"] = token
            out = await self.call("ListTaskDefinitions", body)
            arns += [
                a
                for a in out.get("taskDefinitionArns", [])
                if a.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family
            ]
            token = out.get("nextToken")
            if not token:
                break
        tds = await asyncio.gather(*(self._taskdef(a) for a in arns[:limit]))
        return [self._release(td, svc) for td in tds]

    async def deploy(self, image: str, *, regions: Sequence[str] = ()) -> Release:
        if regions and region_names("ecs", regions) != (self.region,):
            raise PlatformError("ecs", f"this environment runs in {self.region} only")
        svc = await self._service()
        td = await self._taskdef(svc["taskDefinition"])
        spec = {k: td[k] for k in REGISTERABLE if k in td}
        container = self._container(td)
        container["image"] = image or container.get("image")
        spec["containerDefinitions"] = [
            container if c.get("name") == container.get("name") else c
            for c in td["containerDefinitions"]
        ]
        new = (await self.call("RegisterTaskDefinition", spec))["taskDefinition"]
        await self._update(new["taskDefinitionArn"], svc)
        return Release(
            new["taskDefinitionArn"],
            f"v{new['revision']}",
            image,
            "in_progress",
            parse_time(new.get("registeredAt")),
            "deployment started",
        )

    async def _update(self, arn: str, svc: dict[str, Any]) -> None:
        config = dict(svc.get("deploymentConfiguration") or {})
        config.setdefault("maximumPercent", 200)
        config.setdefault("minimumHealthyPercent", 100)
        config["deploymentCircuitBreaker"] = {"enable": True, "rollback": True}
        await self.call(
            "UpdateService",
            {
                "cluster": self.cluster,
                "service": self.service,
                "taskDefinition": arn,
                "deploymentConfiguration": config,
            },
        )

    async def set_secrets(self, values: Mapping[str, str]) -> None:
        """Refused: a value in a task definition's plain ``environment`` is readable by
        anyone who can describe it. ECS's way is ``containerDefinitions[].secrets``
        (``valueFrom``) pointing at SSM Parameter Store or Secrets Manager."""
        raise DeployError(
            f"ecs: not pushing {len(values)} vault secret(s) as plain task-definition "
            "environment; store them in AWS Secrets Manager or SSM Parameter Store "
            "(SecureString) and reference them with containerDefinitions[].secrets "
            "(valueFrom), or remove them from this environment's vault"
        )

    async def rollback(self, to: Release) -> Release:
        svc = await self._service()
        try:
            td = await self._taskdef(to.id)
        except PlatformError as exc:
            raise NoSuchRelease(f"task definition {to.id} cannot be used: {exc}") from None
        if td.get("status") not in (None, "ACTIVE"):
            raise NoSuchRelease(f"{to.version} is {td.get('status')} (deregistered)")
        await self._update(td["taskDefinitionArn"], svc)
        return Release(to.id, to.version, to.image, "in_progress", to.created_at, "rollback")

    async def watch(self, release: Release, wait: float) -> Rollout:
        svc = await self._service()
        deps = svc.get("deployments", [])
        mine = next((d for d in deps if d.get("taskDefinition") == release.id), None)
        primary = deps[0] if deps else {}
        desired = int(svc.get("desiredCount", 0))
        event = (svc.get("events") or [{}])[0].get("message", "")
        if mine is None:
            if svc.get("taskDefinition") == release.id:
                return Rollout(release, "live", desired, desired, "steady")
            return Rollout(release, "failed", 0, desired, "the deployment is gone")
        running = int(mine.get("runningCount", 0))
        reason = str(mine.get("rolloutStateReason") or "")
        if mine.get("rolloutState") == "FAILED":
            back = ""
            if primary is not mine and primary.get("taskDefinition"):
                back = f"; ECS rolls back to v{_rev(primary['taskDefinition'])}"
            failed = mine.get("failedTasks", 0)
            return Rollout(
                release, "failed", running, desired, f"{reason} ({failed} tasks failed){back}"
            )
        if mine.get("rolloutState") == "COMPLETED" and mine is primary:
            return Rollout(release, "live", running, desired, reason)
        if mine is not primary:
            return Rollout(release, "failed", running, desired, f"superseded: {reason}")
        return Rollout(release, "in_progress", running, desired, event or reason)

    async def status(self) -> Status:
        svc = await self._service()
        td = await self._taskdef(svc["taskDefinition"])
        inst = await self.instances()
        return Status(
            self._release(td, svc),
            int(svc.get("desiredCount", 0)),
            sum(1 for i in inst if i.ready),
            tuple(inst),
            str((svc.get("events") or [{}])[0].get("message", "")),
        )

    async def scale(self, replicas: int) -> None:
        if replicas < 0:
            raise PlatformError("ecs", "desiredCount must be ≥ 0")
        await self.call(
            "UpdateService",
            {"cluster": self.cluster, "service": self.service, "desiredCount": replicas},
        )

    async def instances(self) -> list[Instance]:
        arns = (
            await self.call("ListTasks", {"cluster": self.cluster, "serviceName": self.service})
        ).get("taskArns", [])
        if not arns:
            return []
        out: list[Instance] = []
        for i in range(0, len(arns), 100):  # DescribeTasks takes at most 100
            got = await self.call(
                "DescribeTasks", {"cluster": self.cluster, "tasks": arns[i : i + 100]}
            )
            for t in got.get("tasks", []):
                status = str(t.get("lastStatus", ""))
                health = t.get("healthStatus", "UNKNOWN")
                out.append(
                    Instance(
                        id=t["taskArn"].rsplit("/", 1)[-1],
                        state=status,
                        ready=status == "RUNNING" and health in ("HEALTHY", "UNKNOWN"),
                        region=t.get("availabilityZone") or self.region,
                        size=f"{t.get('cpu')}/{t.get('memory')}",
                        version=f"v{_rev(t.get('taskDefinitionArn', ''))}",
                        started_at=parse_time(t.get("startedAt")) or None,
                    )
                )
        return out
