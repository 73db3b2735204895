"""Google Cloud Run Admin API v2: a service's revisions, traffic, scale.

``Target``: ``app`` = the service id, ``project`` = the GCP project id, ``regions`` = its
locations (``us-central1``, or portable names such as ``us-west``; several = the same
service in each, deployed and rolled back together), ``token`` = an OAuth access token
(scope ``cloud-platform``; without one it is read from the GCE/Cloud Run metadata
server), ``container`` = the container whose image is deployed (default: the first).

* **deploy**: GET the Service, set the container image and an explicit
  ``template.revision`` (``{service}-{NNNNN}-{tag}``, so the release id is known at once
  and the same in every region), send traffic to LATEST, PATCH the whole Service with its
  ``etag`` → a long-running Operation, polled until ``done`` (``response`` or ``error``).
* **rollback**: a traffic shift to an existing revision (``TRAFFIC_TARGET_ALLOCATION_TYPE_
  REVISION``, 100 %): nothing is rebuilt; near-instant while the revision is warm.
* **scale(n)**: service-level manual scaling (``scalingMode: MANUAL``,
  ``manualInstanceCount: n``); Cloud Run then runs exactly n instances.
* **instances**: Cloud Run lists no instances; with manual scaling they are the n
  instances of the serving revision, otherwise one entry per serving revision.
* ``--gpu=l4``: ``template.nodeSelector.accelerator: nvidia-l4`` with one
  ``nvidia.com/gpu`` (≥ 4 CPU, 16 GiB); other GPUs are refused (see placement).
"""

from __future__ import annotations

import copy
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from fastmango.deployer.base import Adapter, parse_time
from fastmango.deployer.errors import DeployError, NoSuchRelease, PlatformError
from fastmango.deployer.http import PlatformClient, RetryPolicy, TokenAuth, make_client
from fastmango.deployer.placement import GpuOffer, gpu_offer, region_names
from fastmango.deployer.platform import (
    Instance,
    Release,
    ReleaseState,
    Rollout,
    RolloutState,
    Status,
    Target,
)

API = "https://run.googleapis.com"
#: the metadata server's token path; its host is ``GCE_METADATA_HOST`` (as google-auth)
METADATA_TOKEN = "/computeMetadata/v1/instance/service-accounts/default/token"
PAGE = 100
_NUMBER = re.compile(r"-(\d{5})-[a-z0-9]{3}$")


def connect(target: Target, **kw: Any) -> CloudRunPlatform:
    if not target.project:
        raise PlatformError("cloudrun", "environment needs project = the GCP project id")
    gpu = gpu_offer("cloudrun", kw.pop("gpu", None))
    locations = region_names("cloudrun", target.regions or ("us-central1",))
    token = target.token
    metadata = None
    if not token:
        metadata = MetadataToken(kw.get("transport"))
    auth = TokenAuth(lambda: token or "") if token else metadata
    client = make_client(
        "cloudrun",
        (target.api_url or API).rstrip("/"),
        auth=auth,
        retry=kw.pop("retry", RetryPolicy()),
        **kw,
    )
    return CloudRunPlatform(target, client, locations, gpu)


class MetadataToken(httpx.Auth):
    """A token from the metadata server of the GCE VM / Cloud Run instance we run on."""

    requires_response_body = True

    def __init__(self, transport: Any = None) -> None:
        self._token: str | None = None
        self._transport = transport

    def auth_flow(self, request: httpx.Request) -> Any:
        if self._token is None:
            host = os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")
            url = f"http://{host}{METADATA_TOKEN}"
            resp = yield httpx.Request("GET", url, headers={"Metadata-Flavor": "Google"})
            if resp.status_code != 200:
                raise PlatformError(
                    "cloudrun",
                    "no token: set the environment's token, or run on GCP (metadata server "
                    f"answered {resp.status_code})",
                )
            self._token = str(resp.json()["access_token"])
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "MetadataToken(****)"


def google_message(resp: httpx.Response) -> str | None:
    try:
        err = resp.json().get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(err, dict) and "message" in err:
        status = f" ({err['status']})" if err.get("status") else ""
        return f"{err['message']}{status}"
    return None


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _number(rid: str) -> int:
    m = _NUMBER.search(rid)
    return int(m.group(1)) if m else 0


class CloudRunPlatform(Adapter):
    name = "cloudrun"

    def __init__(
        self,
        target: Target,
        client: PlatformClient,
        locations: Sequence[str],
        gpu: GpuOffer | None = None,
    ) -> None:
        super().__init__(target, client)
        self.locations = tuple(locations)
        self.gpu = gpu
        self._ops: dict[str, list[str]] = {}  # release id → operation names

    def error(self, resp: httpx.Response, message: str | None = None) -> PlatformError:
        """Google's ``{"error": {"code", "message", "status"}}`` in its own words."""
        if message is None:
            message = google_message(resp)
        return super().error(resp, message)

    def _svc(self, loc: str) -> str:
        return f"/v2/projects/{self.target.project}/locations/{loc}/services/{self.target.app}"

    async def _service(self, loc: str) -> dict[str, Any]:
        data: dict[str, Any] = self.check(await self.client.get(self._svc(loc)))
        return data

    async def _revisions(self, loc: str, limit: int | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = ""
        while True:
            params: dict[str, Any] = {"pageSize": PAGE}
            if token:
                params["pageToken"] = token
            page = self.check(await self.client.get(self._svc(loc) + "/revisions", params=params))
            out.extend(page.get("revisions", []))
            token = page.get("nextPageToken") or ""
            if not token or (limit is not None and len(out) >= limit):
                return out

    def _release(self, rev: dict[str, Any], svc: dict[str, Any]) -> Release:
        rid = _short(rev["name"])
        serving = {t.get("revision"): t.get("percent", 0) for t in svc.get("trafficStatuses", [])}
        ready: dict[str, Any] = next(
            (c for c in rev.get("conditions", []) if c.get("type") == "Ready"), {}
        )
        cond = ready.get("state", "")
        state: ReleaseState
        if serving.get(rid, 0) > 0:
            state = "live"
        elif cond == "CONDITION_FAILED":
            state = "failed"
        elif cond == "CONDITION_SUCCEEDED":
            state = "superseded"
        elif cond == "CONDITION_RECONCILING":
            state = "in_progress"
        else:
            state = "pending"
        containers = rev.get("containers") or [{}]
        return Release(
            id=rid,
            version=f"v{_number(rid)}" if _number(rid) else rid,
            image=containers[0].get("image"),
            state=state,
            created_at=parse_time(rev.get("createTime")),
            message=str(ready.get("message") or ready.get("reason") or ""),
        )

    async def releases(self, limit: int = 20) -> list[Release]:
        loc = self.locations[0]
        svc = await self._service(loc)
        revs = await self._revisions(loc, limit)
        rels = [self._release(r, svc) for r in revs]
        rels.sort(key=lambda r: (_number(r.id), r.created_at), reverse=True)
        return rels[:limit]

    def _container(self, template: dict[str, Any]) -> dict[str, Any]:
        containers = template.get("containers") or []
        if not containers:
            raise PlatformError("cloudrun", f"service {self.target.app} has no container")
        if self.target.container:
            for c in containers:
                if c.get("name") == self.target.container:
                    return dict(c)
            names = ", ".join(str(c.get("name")) for c in containers)
            raise PlatformError("cloudrun", f"no container {self.target.container!r} ({names})")
        return dict(containers[0])

    async def _patch(self, loc: str, svc: dict[str, Any]) -> str:
        body = {k: v for k, v in svc.items() if k not in _OUTPUT_ONLY}
        op = self.check(await self.client.patch(self._svc(loc), json=body))
        return str(op["name"])

    async def deploy(self, image: str, *, regions: Sequence[str] = ()) -> Release:
        locations = region_names("cloudrun", regions) if regions else self.locations
        services = {loc: await self._service(loc) for loc in locations}
        numbers = []
        for loc in locations:
            numbers += [_number(_short(r["name"])) for r in await self._revisions(loc)]
        rid = f"{self.target.app}-{max(numbers, default=0) + 1:05d}-{secrets.token_hex(2)[:3]}"
        ops = []
        for loc, svc in services.items():
            svc = copy.deepcopy(svc)
            template = svc.setdefault("template", {})
            container = self._container(template)
            container["image"] = image or container.get("image")
            if self.gpu is not None:
                res = container.setdefault("resources", {})
                limits = res.setdefault("limits", {})
                limits["nvidia.com/gpu"] = "1"
                limits.setdefault("cpu", str(int(max(self.gpu.min_cpu, 4))))
                limits.setdefault("memory", f"{int(max(self.gpu.min_memory_gib, 16))}Gi")
                template["nodeSelector"] = {"accelerator": self.gpu.kind}
            template["containers"] = [
                container if c.get("name") == container.get("name") else c
                for c in template["containers"]
            ]
            template["revision"] = rid
            svc["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
            ops.append(await self._patch(loc, svc))
        self._ops[rid] = ops
        self.locations = tuple(locations)
        return Release(rid, f"v{_number(rid)}", image, "in_progress", 0.0, "revision created")

    async def set_secrets(self, values: Mapping[str, str]) -> None:
        """Refused: a value in a revision's plain ``env`` is readable by anyone who can
        view the service. Cloud Run's way is Secret Manager: create the secret there and
        reference it from the container (``env[].valueSource.secretKeyRef``)."""
        raise DeployError(
            f"cloudrun: not pushing {len(values)} vault secret(s) as plain revision env; "
            "store them in Google Secret Manager and reference them from the service "
            "(env valueSource.secretKeyRef, `gcloud run services update --set-secrets`), "
            "or remove them from this environment's vault"
        )

    async def rollback(self, to: Release) -> Release:
        ops = []
        for loc in self.locations:
            svc = await self._service(loc)
            names = [_short(r["name"]) for r in await self._revisions(loc)]
            # the same name in every region (fastmango names them); else the same number
            rid = to.id if to.id in names else None
            if rid is None and _number(to.id):
                rid = next((n for n in names if _number(n) == _number(to.id)), None)
            if rid is None:
                raise NoSuchRelease(f"revision {to.id} does not exist in {loc} (deleted?)")
            svc["traffic"] = [
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": rid, "percent": 100}
            ]
            ops.append(await self._patch(loc, svc))
        self._ops[to.id] = ops
        return Release(to.id, to.version, to.image, "in_progress", to.created_at, "traffic shift")

    async def watch(self, release: Release, wait: float) -> Rollout:
        ops = self._ops.get(release.id)
        errors: list[str] = []
        pending = 0
        if ops:
            for name in ops:
                op = self.check(await self.client.get(f"/v2/{name}"))
                if not op.get("done"):
                    pending += 1
                elif "error" in op:
                    errors.append(str(op["error"].get("message", op["error"])))
        total = len(self.locations)
        svc_first = await self._service(self.locations[0])
        revs = [
            r for r in await self._revisions(self.locations[0]) if _short(r["name"]) == release.id
        ]
        rel = self._release(revs[0], svc_first) if revs else release
        if errors:
            return Rollout(rel, "failed", 0, total, "; ".join(errors))
        if pending:
            return Rollout(rel, "in_progress", total - pending, total, "reconciling")
        # operations done (or unknown): the services are the truth
        ready = 0
        for loc in self.locations:
            svc = svc_first if loc == self.locations[0] else await self._service(loc)
            cond = svc.get("terminalCondition") or {}
            shares = {
                t.get("revision"): t.get("percent", 0) for t in svc.get("trafficStatuses", [])
            }
            if cond.get("state") == "CONDITION_FAILED" and not svc.get("reconciling"):
                return Rollout(rel, "failed", ready, total, str(cond.get("message", "failed")))
            full = next((str(r) for r, pct in shares.items() if pct == 100), "")
            same = full == release.id or (_number(full) and _number(full) == _number(release.id))
            if same and not svc.get("reconciling"):
                ready += 1
        verdict: RolloutState = "live" if ready == total else "in_progress"
        return Rollout(rel, verdict, ready, total, f"{ready}/{total} regions serving {release.id}")

    async def status(self) -> Status:
        rels = await self.releases(limit=20)
        live = next((r for r in rels if r.state == "live"), None)
        inst = await self.instances()
        return Status(live, len(inst), sum(1 for i in inst if i.ready), tuple(inst))

    async def scale(self, replicas: int) -> None:
        if replicas < 0:
            raise PlatformError("cloudrun", "replicas must be ≥ 0")
        for loc in self.locations:
            svc = await self._service(loc)
            svc["scaling"] = {"scalingMode": "MANUAL", "manualInstanceCount": replicas}
            name = await self._patch(loc, svc)
            op = self.check(await self.client.get(f"/v2/{name}"))
            while not op.get("done"):
                await self.client.pause(0.2)
                op = self.check(await self.client.get(f"/v2/{name}"))
            if "error" in op:
                raise PlatformError("cloudrun", f"scale in {loc}: {op['error'].get('message')}")

    async def instances(self) -> list[Instance]:
        out: list[Instance] = []
        for loc in self.locations:
            svc = await self._service(loc)
            scaling = svc.get("scaling") or {}
            for t in svc.get("trafficStatuses", []):
                if not t.get("percent"):
                    continue
                rid = str(t.get("revision"))
                version = f"v{_number(rid)}"
                if scaling.get("scalingMode") == "MANUAL":
                    n = int(scaling.get("manualInstanceCount") or 0)
                    out += [
                        Instance(f"{loc}/{rid}/{i}", "running", True, loc, version=version)
                        for i in range(n)
                    ]
                else:
                    out.append(
                        Instance(
                            f"{loc}/{rid}",
                            f"autoscaled ({t['percent']}% of traffic)",
                            True,
                            loc,
                            version=version,
                        )
                    )
        return out


#: output-only fields of a Service that a PATCH must not send back
_OUTPUT_ONLY = frozenset(
    {
        "uid",
        "generation",
        "createTime",
        "updateTime",
        "deleteTime",
        "expireTime",
        "creator",
        "lastModifier",
        "observedGeneration",
        "terminalCondition",
        "conditions",
        "latestReadyRevision",
        "latestCreatedRevision",
        "trafficStatuses",
        "uri",
        "urls",
        "reconciling",
        "satisfiesPzs",
    }
)
