"""Fly.io: the Machines API (``/v1/apps/{app}/machines…``) and the GraphQL release records
(``/graphql``) on one port.

* Auth: ``Authorization: Bearer <token>`` or ``FlyV1 <macaroon>``; 401
  ``{"error":"…"}`` otherwise. Errors are ``{"error": "…", "status"?: "…"}`` with a
  ``fly-request-id`` header on every answer.
* ``GET /v1/apps/{app}/machines`` → a bare JSON array; ``POST`` creates (200 Machine);
  ``GET/POST/DELETE …/machines/{id}`` (POST = update with the **full** config);
  ``GET …/{id}/wait?state=started&timeout=N`` blocks up to N (≤ 60) seconds, 200
  ``{"ok":true}`` or **408**; ``POST …/{id}/start|stop|cordon|uncordon``;
  ``POST/DELETE …/{id}/lease`` (201 ``{"status":"success","data":{"nonce",…}}``, **409**
  when someone else holds it); ``POST …/{id}/metadata/{key} {"value"}``.
* A machine held by a lease refuses update/start/stop/delete without the nonce in
  ``fly-machine-lease-nonce`` (409). ``hold_lease(id, seconds)`` makes someone else hold one.
* Machine life: created/updated → ``starting`` (checks ``critical``) → ``started`` with
  checks ``passing``, one step per ``step`` seconds; a stopped machine starts in one
  step. Images in ``bad_images`` go to ``failed``.
* GraphQL: ``createRelease`` → ``{release{id version}}``, ``updateRelease``, and
  ``app(name){releasesUnprocessed(first){nodes{…}}}``; errors inside HTTP 200.
* 429 ``{"error":"rate limit exceeded"}`` with ``Retry-After`` (a guess: Fly documents
  the limits, 1 req/s per action per machine with bursts of 3, not the answer).

TYPICAL (for the rollback benchmark): 0.15 s per API answer; a stopped standby machine
starts and passes its checks in about 1.5 s (no image pull); a new or updated machine
takes about 10 s (image pull, boot, checks).
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import time
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._platform import FakePlatform, iso


def err(status: int, message: str, code: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if code:
        body["status"] = code
    return JSONResponse(body, status, {"fly-request-id": secrets.token_hex(8)})


class FakeFly(FakePlatform):
    name = "fly"
    TYPICAL: ClassVar[dict[str, float]] = {"latency": 0.15, "step": 1.5, "boot": 10.0}

    def __init__(
        self,
        app: str = "shop",
        token: str = "fo1_testtoken",
        machines: int = 2,
        history: int = 2,
        latency: float = 0.0,
        step: float = 0.0,
        boot: float | None = None,
    ) -> None:
        self.app_name = app
        self.token = token
        self.bad_images: set[str] = set()
        self.machines: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, tuple[str, float]] = {}  # machine → (nonce, expires)
        self.releases: list[dict[str, Any]] = []  # newest first
        self.boot = step if boot is None else boot
        self.timeline: dict[str, tuple[float, float]] = {}  # machine → (since, takes)
        super().__init__(latency, step)
        image = ""
        for i in range(history):
            image = f"registry.fly.io/{app}:deployment-{i:02d}"
            self._release(image, "complete", time.time() - 86400 + i * 3600)
        for i in range(machines):
            cfg = {
                "image": image,
                "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
                "services": [
                    {
                        "internal_port": 8000,
                        "protocol": "tcp",
                        "autostop": "stop",
                        "autostart": True,
                        "min_machines_running": 1,
                    }
                ],
                "checks": {"http": {"type": "http", "port": 8000, "path": "/healthz"}},
                "metadata": {
                    "fly_release_version": str(history),
                    "fly_platform_version": "v2",
                    "fly_process_group": "app",
                },
            }
            m = self._machine(cfg, ["nrt", "sea"][i % 2])
            m["state"] = "started"
            m["checks"][0]["status"] = "passing"

    # -- model ----------------------------------------------------------------------
    def _release(self, image: str, status: str, t: float | None = None) -> dict[str, Any]:
        version = (self.releases[0]["version"] + 1) if self.releases else 1
        r = {
            "id": "rel_" + secrets.token_hex(8),
            "version": version,
            "status": status,
            "imageRef": image,
            "description": "",
            "reason": "deploy",
            "stable": True,
            "createdAt": iso(time.time() if t is None else t),
            "user": {"email": "ops@example.com"},
        }
        self.releases.insert(0, r)
        return r

    def _machine(self, config: dict[str, Any], region: str) -> dict[str, Any]:
        mid = secrets.token_hex(7)
        now = iso(time.time())
        m = {
            "id": mid,
            "name": f"{self.app_name}-{mid[:6]}",
            "state": "created",
            "region": region,
            "instance_id": secrets.token_hex(13).upper(),
            "private_ip": "fdaa:0:1::" + mid[:4],
            "config": copy.deepcopy(config),
            "image_ref": {
                "registry": "registry.fly.io",
                "repository": self.app_name,
                "tag": config["image"].rpartition(":")[2],
            },
            "created_at": now,
            "updated_at": now,
            "host_status": "ok",
            "cordoned": False,
            "checks": [
                {
                    "name": "servicecheck-00-http-8000",
                    "status": "critical",
                    "output": "",
                    "updated_at": now,
                }
            ],
            "events": [],
        }
        self.machines[mid] = m
        self._boot(m, self.boot)
        return m

    def _boot(self, m: dict[str, Any], takes: float) -> None:
        m["state"] = "starting"
        m["checks"][0]["status"] = "critical"
        m["instance_id"] = secrets.token_hex(13).upper()
        self.timeline[m["id"]] = (self.clock(), takes)

    def _tick(self, m: dict[str, Any]) -> None:
        """Move a booting machine on: starting → started (checks passing) or failed."""
        if m["state"] != "starting" or m["id"] not in self.timeline:
            return
        since, takes = self.timeline[m["id"]]
        if self.clock() - since < takes:
            return
        del self.timeline[m["id"]]
        if m["config"]["image"] in self.bad_images:
            m["state"] = "failed"
            m["checks"][0].update(status="critical", output="connection refused")
        else:
            m["state"] = "started"
            m["checks"][0].update(status="passing", output="200 OK")
        m["updated_at"] = iso(time.time())

    def hold_lease(self, mid: str, seconds: float) -> None:
        """Someone else (another flyctl) holds this machine's lease for ``seconds``."""
        self.leases[mid] = ("someone-else-" + secrets.token_hex(4), self.clock() + seconds)

    def _lease_holder(self, mid: str) -> str | None:
        lease = self.leases.get(mid)
        if lease is None or lease[1] <= self.clock():
            self.leases.pop(mid, None)
            return None
        return lease[0]

    def _leased_out(self, request: Request, mid: str) -> Response | None:
        holder = self._lease_holder(mid)
        if holder is not None and request.headers.get("fly-machine-lease-nonce") != holder:
            return err(
                409, f"machine {mid} is leased: lease currently held by another client", "conflict"
            )
        return None

    def active(self) -> list[dict[str, Any]]:
        return [
            m
            for m in self.machines.values()
            if m["state"] != "destroyed"
            and m["config"].get("metadata", {}).get("fastmango_role") != "standby"
        ]

    # -- HTTP -----------------------------------------------------------------------
    def routes(self) -> list[Route]:
        base = "/v1/apps/{app}/machines"
        one = base + "/{id}"
        return [
            Route(base, self.list_machines, methods=["GET"]),
            Route(base, self.create, methods=["POST"]),
            Route(one, self.get, methods=["GET"]),
            Route(one, self.update, methods=["POST"]),
            Route(one, self.destroy, methods=["DELETE"]),
            Route(one + "/wait", self.wait, methods=["GET"]),
            Route(one + "/lease", self.lease, methods=["POST"]),
            Route(one + "/lease", self.unlease, methods=["DELETE"]),
            Route(one + "/metadata/{key}", self.metadata, methods=["POST"]),
            Route(one + "/{action}", self.action, methods=["POST"]),
            Route("/graphql", self.graphql, methods=["POST"]),
        ]

    def authorized(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        if auth not in (f"Bearer {self.token}", f"FlyV1 {self.token}"):
            return err(401, "You must be authenticated to view this.", "unauthorized")
        return None

    def _find(self, request: Request) -> dict[str, Any] | Response:
        if request.path_params["app"] != self.app_name:
            return err(404, f"app {request.path_params['app']} not found", "not_found")
        m = self.machines.get(request.path_params["id"])
        if m is None or m["state"] == "destroyed":
            return err(404, "machine not found", "not_found")
        self._tick(m)
        return m

    async def list_machines(self, request: Request) -> Response:
        if request.path_params["app"] != self.app_name:
            return err(404, "app not found", "not_found")
        for m in self.machines.values():
            self._tick(m)
        return JSONResponse([m for m in self.machines.values() if m["state"] != "destroyed"])

    async def create(self, request: Request) -> Response:
        body = json.loads(await request.body())
        if "config" not in body or "image" not in body["config"]:
            return err(400, "config.image is required", "invalid")
        return JSONResponse(self._machine(body["config"], body.get("region", "ord")))

    async def get(self, request: Request) -> Response:
        m = self._find(request)
        return m if isinstance(m, Response) else JSONResponse(m)

    async def update(self, request: Request) -> Response:
        m = self._find(request)
        if isinstance(m, Response):
            return m
        if (r := self._leased_out(request, m["id"])) is not None:
            return r
        body = json.loads(await request.body())
        if "config" not in body or "image" not in body["config"] or "guest" not in body["config"]:
            return err(400, "we don't support partial updates: send the entire config", "invalid")
        m["config"] = body["config"]
        self._boot(m, self.boot)
        return JSONResponse(m)

    async def destroy(self, request: Request) -> Response:
        m = self._find(request)
        if isinstance(m, Response):
            return m
        if (r := self._leased_out(request, m["id"])) is not None:
            return r
        if m["state"] == "started" and request.query_params.get("force") != "true":
            return err(412, "machine still active, refusing to delete", "failed_precondition")
        m["state"] = "destroyed"
        return JSONResponse({"ok": True})

    async def wait(self, request: Request) -> Response:
        m = self._find(request)
        if isinstance(m, Response):
            return m
        want = request.query_params.get("state", "started")
        timeout = min(60.0, float(request.query_params.get("timeout", 60)))
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            self._tick(m)
            if m["state"] == want:
                return JSONResponse({"ok": True})
            if m["state"] in ("failed", "destroyed"):
                return err(400, f"machine is {m['state']}, not {want}", "invalid_state")
            await asyncio.sleep(0.02)
        return err(408, f"timeout waiting for machine to be {want}", "deadline_exceeded")

    async def lease(self, request: Request) -> Response:
        m = self._find(request)
        if isinstance(m, Response):
            return m
        holder = self._lease_holder(m["id"])
        if holder is not None:
            return err(409, "lease currently held by another client", "conflict")
        body = json.loads(await request.body() or b"{}")
        ttl = float(request.query_params.get("ttl") or body.get("ttl") or 30)
        nonce = secrets.token_hex(8)
        self.leases[m["id"]] = (nonce, self.clock() + ttl)
        return JSONResponse(
            {
                "status": "success",
                "data": {
                    "nonce": nonce,
                    "expires_at": int(time.time() + ttl),
                    "owner": "ops@example.com",
                    "description": body.get("description", ""),
                    "version": "1",
                },
            },
            201,
        )

    async def unlease(self, request: Request) -> Response:
        m = self._find(request)
        if isinstance(m, Response):
            return m
        holder = self._lease_holder(m["id"])
        if holder is not None and holder != request.headers.get("fly-machine-lease-nonce"):
            return err(409, "lease nonce does not match", "conflict")
        self.leases.pop(m["id"], None)
        return JSONResponse({"ok": True})

    async def metadata(self, request: Request) -> Response:
        m = self._find(request)
        if isinstance(m, Response):
            return m
        body = json.loads(await request.body() or b"{}")
        m["config"].setdefault("metadata", {})[request.path_params["key"]] = body.get("value")
        return Response(status_code=204)

    async def action(self, request: Request) -> Response:
        m = self._find(request)
        if isinstance(m, Response):
            return m
        act = request.path_params["action"]
        if act in ("start", "stop") and (r := self._leased_out(request, m["id"])) is not None:
            return r
        if act == "start":
            prev = m["state"]
            if prev != "started":
                self._boot(m, self.step)
            return JSONResponse({"previous_state": prev, "migrated": False, "new_host": ""})
        if act == "stop":
            m["state"] = "stopped"
            self.timeline.pop(m["id"], None)
            return JSONResponse({"ok": True})
        if act in ("cordon", "uncordon"):
            m["cordoned"] = act == "cordon"
            return JSONResponse({"ok": True})
        return err(404, f"unknown action {act}", "not_found")

    async def graphql(self, request: Request) -> Response:
        body = json.loads(await request.body())
        q, v = body.get("query", ""), body.get("variables") or {}
        if "createRelease" in q:
            inp = v["input"]
            if inp.get("appId") != self.app_name:
                return JSONResponse({"data": None, "errors": [{"message": "Could not find App"}]})
            r = self._release(inp.get("image", ""), "running")
            r["reason"] = inp.get("strategy", "")
            return JSONResponse(
                {"data": {"createRelease": {"release": {"id": r["id"], "version": r["version"]}}}}
            )
        if "updateRelease" in q:
            inp = v["input"]
            r = next((r for r in self.releases if r["id"] == inp["releaseId"]), None)
            if r is None:
                return JSONResponse({"data": None, "errors": [{"message": "release not found"}]})
            r["status"] = inp["status"]
            return JSONResponse(
                {"data": {"updateRelease": {"release": {"id": r["id"], "status": r["status"]}}}}
            )
        if "releasesUnprocessed" in q:
            if v.get("appName") != self.app_name:
                return JSONResponse(
                    {
                        "data": {"app": None},
                        "errors": [{"message": "Could not find App", "path": ["app"]}],
                    }
                )
            nodes = self.releases[: int(v.get("limit", 25))]
            return JSONResponse({"data": {"app": {"releases": {"nodes": nodes}}}})
        return JSONResponse({"data": None, "errors": [{"message": "unknown operation"}]})
