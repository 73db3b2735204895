"""Azure Container Instances (ARM ``Microsoft.ContainerInstance/containerGroups``).

``Target``: ``project`` = the subscription id, ``app`` = ``resourceGroup/containerGroup``,
``token`` = an Entra ID bearer token for ``https://management.azure.com/``, ``regions`` =
its one location (a group cannot move), ``container`` = the container whose image is
deployed (default: the first).

ACI has **no revisions, replicas or traffic split**. So:

* **deploy** = GET the group, re-PUT it with the new image (ARM answers with an
  ``Azure-AsyncOperation`` URL, polled until ``Succeeded``/``Failed``). Before the first
  deploy the running spec is recorded as v1.
* **the release history is kept here**, in ``<state_dir>/azure-<sub>-<rg>-<group>.json``
  (mode 0600): each release's full spec as ARM returned it. ARM never returns
  ``secureValue`` environment variables, so they are not in the file, and a re-PUT
  carries them only by name: keep secrets in Key Vault references or re-supply them.
  The vault's secrets (``set_secrets``) are re-supplied on every deploy as ``secureValue``
  environment variables of the deployed container, and kept in the file by name only.
* **rollback** = re-PUT the kept spec of that release (nothing is rebuilt; the image is
  pulled again).
* **scale**: a container group is one instance: ``scale(1)`` starts it, ``scale(0)``
  stops it; more is refused (Azure Container Apps has replicas).
* ``--gpu`` is refused (ACI's K80/P100/V100 SKUs are retired).
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from fastmango.deployer.base import Adapter
from fastmango.deployer.errors import NoSuchRelease, PlatformError
from fastmango.deployer.http import PlatformClient, RetryPolicy, TokenAuth, make_client
from fastmango.deployer.placement import gpu_offer, region_names
from fastmango.deployer.platform import (
    Instance,
    Release,
    ReleaseState,
    Rollout,
    Status,
    Target,
)

API = "https://management.azure.com"
API_VERSION = "2023-05-01"
#: what a PUT may carry back from a GET (the rest is read-only)
_WRITABLE_PROPS = (
    "containers",
    "osType",
    "restartPolicy",
    "ipAddress",
    "sku",
    "volumes",
    "imageRegistryCredentials",
    "diagnostics",
    "subnetIds",
    "dnsConfig",
    "initContainers",
    "encryptionProperties",
    "priority",
    "confidentialComputeProperties",
)


def connect(target: Target, **kw: Any) -> AzurePlatform:
    gpu_offer("azure", kw.pop("gpu", None))
    state_dir = Path(
        kw.pop("state_dir", None) or os.environ.get("FASTMANGO_STATE_DIR") or ".fastmango"
    )
    if not target.project:
        raise PlatformError("azure", "environment needs project = the Azure subscription id")
    group, _, name = target.app.partition("/")
    if not group or not name:
        raise PlatformError("azure", "environment app must be resourceGroup/containerGroup")
    regions = region_names("azure", target.regions) if target.regions else ()
    token = target.token or os.environ.get("AZURE_ACCESS_TOKEN") or ""
    if not token:
        raise PlatformError(
            "azure", "no token: set the environment's token (az account get-access-token)"
        )
    client = make_client(
        "azure",
        (target.api_url or API).rstrip("/"),
        auth=TokenAuth(lambda: token),
        retry=kw.pop("retry", RetryPolicy()),
        **kw,
    )
    return AzurePlatform(target, client, group, name, regions[0] if regions else None, state_dir)


class AzurePlatform(Adapter):
    name = "azure"

    def __init__(
        self,
        target: Target,
        client: PlatformClient,
        resource_group: str,
        group: str,
        location: str | None,
        state_dir: Path,
    ) -> None:
        super().__init__(target, client)
        self.resource_group = resource_group
        self.group = group
        self.location = location
        self.path = (
            f"/subscriptions/{target.project}/resourceGroups/{resource_group}/providers/"
            f"Microsoft.ContainerInstance/containerGroups/{group}"
        )
        self.history_file = state_dir / f"azure-{target.project}-{resource_group}-{group}.json"
        self._ops: dict[str, str] = {}  # release id → Azure-AsyncOperation URL
        self._secure: dict[str, str] = {}  # set_secrets: secureValue env of the deploy

    def error(self, resp: httpx.Response, message: str | None = None) -> PlatformError:
        if message is None:
            try:
                err = resp.json().get("error") or {}
                message = f"{err.get('code')}: {err.get('message')}" if err else None
            except (ValueError, AttributeError):
                message = None
        if "x-ms-request-id" in resp.headers and message:
            message = f"{message} [x-ms-request-id {resp.headers['x-ms-request-id']}]"
        return super().error(resp, message)

    # -- the kept history ------------------------------------------------------------
    def _load(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.history_file.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise PlatformError(
                "azure", f"{self.history_file}: unreadable history ({exc})"
            ) from None
        return list(data.get("releases", []))

    def _save(self, releases: list[dict[str, Any]]) -> None:
        self.history_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.history_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"group": self.path, "releases": releases[-50:]}, f, indent=1)
        os.replace(tmp, self.history_file)

    @staticmethod
    def _release(r: dict[str, Any]) -> Release:
        return Release(
            r["id"], r["version"], r.get("image"), r["state"], r["created_at"], r.get("message", "")
        )

    # -- ARM -------------------------------------------------------------------------
    async def _get(self) -> dict[str, Any]:
        data: dict[str, Any] = self.check(
            await self.client.get(self.path, params={"api-version": API_VERSION})
        )
        return data

    def _container(self, spec: dict[str, Any]) -> dict[str, Any]:
        containers = spec["properties"]["containers"]
        if self.target.container:
            for c in containers:
                if c.get("name") == self.target.container:
                    return dict(c)
            names = ", ".join(str(c.get("name")) for c in containers)
            raise PlatformError("azure", f"no container {self.target.container!r} ({names})")
        return dict(containers[0])

    def _spec(self, group: dict[str, Any]) -> dict[str, Any]:
        """The PUT body of a GET answer: writable properties only, no instance views."""
        props = group.get("properties", {})
        out = {k: copy.deepcopy(props[k]) for k in _WRITABLE_PROPS if k in props}
        for c in out.get("containers", []) + out.get("initContainers", []):
            c.get("properties", {}).pop("instanceView", None)
        return {"location": group["location"], "tags": group.get("tags", {}), "properties": out}

    def _image(self, spec: dict[str, Any]) -> str | None:
        image = self._container(spec).get("properties", {}).get("image")
        return str(image) if image else None

    async def _put(self, spec: dict[str, Any]) -> str:
        resp = await self.client.put(self.path, params={"api-version": API_VERSION}, json=spec)
        self.check(resp, ok=(200, 201))
        return self._same_host(
            resp.headers.get("azure-asyncoperation") or resp.headers.get("location") or ""
        )

    def _same_host(self, url: str) -> str:
        """A poll URL from ARM, only when it is on ARM's host (the token goes with it)."""
        if url and httpx.URL(url).host != self.client.base_url.host:
            raise PlatformError("azure", f"refusing to poll {httpx.URL(url).host}: not ARM")
        return url

    async def _ensure_history(self) -> list[dict[str, Any]]:
        hist = self._load()
        if not hist:
            group = await self._get()
            spec = self._spec(group)
            hist = [
                {
                    "id": "v1",
                    "version": "v1",
                    "image": self._image(spec),
                    "state": "live",
                    "created_at": time.time(),
                    "spec": spec,
                    "message": "recorded before the first fastmango deploy",
                }
            ]
            self._save(hist)
        return hist

    async def releases(self, limit: int = 20) -> list[Release]:
        hist = await self._ensure_history()
        return [self._release(r) for r in reversed(hist)][:limit]

    async def set_secrets(self, values: Mapping[str, str]) -> None:
        """Kept for :meth:`deploy`: ``secureValue`` environment variables (ARM never
        returns them; they are not written to the history file)."""
        self._secure = dict(values)

    @staticmethod
    def _names_only(spec: dict[str, Any]) -> dict[str, Any]:
        """``spec`` as kept in the history file: secure values by name only."""
        out = copy.deepcopy(spec)
        for c in out["properties"].get("containers", []):
            for e in c.get("properties", {}).get("environmentVariables") or []:
                e.pop("secureValue", None)
        return out

    async def deploy(self, image: str, *, regions: Sequence[str] = ()) -> Release:
        hist = await self._ensure_history()
        group = await self._get()
        want = region_names("azure", regions)[0] if regions else self.location
        if want and want != group["location"].replace(" ", "").lower():
            raise PlatformError(
                "azure",
                f"container group {self.group} is in {group['location']}; ACI cannot "
                f"move it to {want} (make an environment per region)",
            )
        spec = self._spec(group)
        name = self._container(spec).get("name")
        for c in spec["properties"]["containers"]:
            if c.get("name") == name and image:
                c["properties"]["image"] = image
            if c.get("name") == name and self._secure:
                env = [
                    e
                    for e in c["properties"].get("environmentVariables") or []
                    if e.get("name") not in self._secure
                ]
                env += [{"name": k, "secureValue": v} for k, v in sorted(self._secure.items())]
                c["properties"]["environmentVariables"] = env
        version = f"v{len(hist) + 1}"
        url = await self._put(spec)
        self._ops[version] = url
        hist.append(
            {
                "id": version,
                "version": version,
                "image": image,
                "state": "in_progress",
                "created_at": time.time(),
                "spec": self._names_only(spec),
            }
        )
        self._save(hist)
        return self._release(hist[-1])

    async def rollback(self, to: Release) -> Release:
        hist = await self._ensure_history()
        kept = next((r for r in hist if r["id"] == to.id), None)
        if kept is None or not kept.get("spec"):
            raise NoSuchRelease(f"no kept spec for {to.version} in {self.history_file}")
        url = await self._put(kept["spec"])
        self._ops[to.id] = url
        self._mark(hist, to.id, "in_progress", "rollback: the kept spec was re-submitted")
        self._save(hist)
        return self._release(next(r for r in hist if r["id"] == to.id))

    @staticmethod
    def _mark(hist: list[dict[str, Any]], rid: str, state: ReleaseState, message: str) -> None:
        for r in hist:
            if r["id"] == rid:
                r["state"], r["message"] = state, message
            elif state in ("live", "failed") and r["state"] in ("live", "in_progress"):
                # ACI replaces the group in place: after a failed PUT nothing old serves
                r["state"] = "superseded"

    async def watch(self, release: Release, wait: float) -> Rollout:
        url = self._ops.get(release.id)
        status, error = "", ""
        if url:
            op = self.check(await self.client.get(url))
            status = str(op.get("status", ""))
            err = op.get("error") or {}
            error = f"{err.get('code')}: {err.get('message')}" if err else ""
        group = await self._get()
        props = group.get("properties", {})
        prov = props.get("provisioningState", "")
        view = self._container(group).get("properties", {}).get("instanceView", {})
        current = (view.get("currentState") or {}).get("state", "")
        hist = self._load()
        if status in ("Failed", "Canceled") or (not url and prov == "Failed"):
            self._mark(hist, release.id, "failed", error or prov)
            self._save(hist)
            return Rollout(release, "failed", 0, 1, error or f"provisioning {prov}")
        if (
            status in ("Succeeded", "")
            and prov == "Succeeded"
            and current == "Running"
            and self._image(self._spec(group)) == release.image
        ):
            self._mark(hist, release.id, "live", "running")
            self._save(hist)
            live = next(r for r in hist if r["id"] == release.id)
            return Rollout(self._release(live), "live", 1, 1, "running")
        return Rollout(release, "in_progress", 0, 1, f"{prov or status} ({current or 'waiting'})")

    async def status(self) -> Status:
        rels = await self.releases()
        live = next((r for r in rels if r.state == "live"), None)
        inst = await self.instances()
        return Status(live, 1, sum(1 for i in inst if i.ready), tuple(inst))

    async def scale(self, replicas: int) -> None:
        if replicas > 1 or replicas < 0:
            raise PlatformError(
                "azure",
                f"a container group is one instance; cannot run {replicas} (Azure "
                "Container Apps has replicas): scale 0 stops it, 1 starts it",
            )
        action = "start" if replicas == 1 else "stop"
        resp = await self.client.post(
            f"{self.path}/{action}",
            params={"api-version": API_VERSION},
            extensions={"retry": True},
        )
        self.check(resp, ok=(200, 202, 204))
        url = self._same_host(resp.headers.get("azure-asyncoperation") or "")
        while url:
            op = self.check(await self.client.get(url))
            if op.get("status") != "InProgress":
                if op.get("status") != "Succeeded":
                    raise PlatformError("azure", f"{action}: {op.get('error') or op.get('status')}")
                break
            await self.client.pause(0.2)

    async def instances(self) -> list[Instance]:
        group = await self._get()
        props = group.get("properties", {})
        state = (props.get("instanceView") or {}).get("state", props.get("provisioningState", ""))
        view = self._container(group).get("properties", {}).get("instanceView", {})
        current = (view.get("currentState") or {}).get("state", "")
        hist = self._load()
        image = self._image(self._spec(group))
        version = next((r["version"] for r in reversed(hist) if r.get("image") == image), None)
        res = self._container(group).get("properties", {}).get("resources", {}).get("requests", {})
        return [
            Instance(
                id=self.group,
                state=str(state),
                ready=state == "Running" and current == "Running",
                region=str(group.get("location")),
                size=f"{res.get('cpu')} CPU / {res.get('memoryInGB')} GB",
                version=version,
            )
        ]
