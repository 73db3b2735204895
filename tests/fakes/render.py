"""Render REST API v1, as much as the deployer uses (render-oss/cli's generated client).

* ``Authorization: Bearer rnd_…`` on every request; 401 ``{"id","message"}`` without.
* ``GET /v1/services/{id}/deploys?limit&cursor`` → ``[{"deploy": {…}, "cursor": "…"}]``,
  newest first (cursor pagination; ``limit`` ≤ 100).
* ``POST /v1/services/{id}/deploys {imageUrl?, clearCache?}`` → **201** Deploy;
  ``GET …/deploys/{deployId}``; ``POST /v1/services/{id}/rollback {deployId}`` → **201**
  Deploy with ``trigger: "rollback"``; ``POST /v1/services/{id}/scale {numInstances}`` →
  **202**; ``GET /v1/services/{id}/instances`` → ``[{"id","createdAt"}]``;
  ``PUT /v1/services/{id}/env-vars/{key} {value}`` → 200 ``{key, value}`` (in ``env_vars``).
* A deploy goes ``created → build_in_progress → update_in_progress → live`` (rollbacks
  skip the build), one step per poll once ``step`` seconds passed; the previous live deploy
  becomes ``deactivated``. Images in ``bad_images`` end ``update_failed``.
* 429 carries ``Ratelimit-Limit``, ``Ratelimit-Remaining``, ``Ratelimit-Reset`` and
  ``Retry-After``; deploys are limited to 10 per minute per service (429 beyond).

TYPICAL (for the rollback benchmark): 0.25 s per API answer (US region from Europe);
rollback about 20 s from request to live (3 steps × ~6.5 s: Render reuses the build, the
time is the instance start and health check; "tens of seconds", unverified).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._platform import FakePlatform, Steps, iso

DEPLOY_STEPS = ["created", "build_in_progress", "update_in_progress", "live"]
ROLLBACK_STEPS = ["created", "update_in_progress", "live"]
FAIL_STEPS = ["created", "build_in_progress", "update_in_progress", "update_failed"]


class FakeRender(FakePlatform):
    name = "render"
    TYPICAL: ClassVar[dict[str, float]] = {"latency": 0.25, "step": 6.5}

    def __init__(
        self,
        service: str = "srv-abc123",
        token: str = "rnd_testtoken123",
        history: int = 3,
        instances: int = 2,
        latency: float = 0.0,
        step: float = 0.0,
    ) -> None:
        self.service = service
        self.token = token
        self.bad_images: set[str] = set()
        self.deploys: list[dict[str, Any]] = []  # newest first
        self.steps: dict[str, Steps] = {}
        self.num_instances = instances
        self.deploy_times: list[float] = []
        self.env_vars: dict[str, str] = {}  # the service's own environment variables
        super().__init__(latency, step)
        now = time.time() - 86400
        for i in range(history):
            d = self._new(f"registry.example.com/shop:1.{i}", "api", now + i * 3600)
            d["status"] = "live" if i == history - 1 else "deactivated"
            d["finishedAt"] = iso(now + i * 3600 + 60)

    def _new(self, image: str | None, trigger: str, t: float | None = None) -> dict[str, Any]:
        t = time.time() if t is None else t
        d = {
            "id": "dep-" + secrets.token_hex(10),
            "commit": None,
            "image": {
                "ref": image,
                "sha": "sha256:" + secrets.token_hex(32),
                "registryCredential": None,
            }
            if image
            else None,
            "status": "created",
            "trigger": trigger,
            "startedAt": iso(t),
            "finishedAt": None,
            "createdAt": iso(t),
            "updatedAt": iso(t),
        }
        self.deploys.insert(0, d)
        return d

    def live(self) -> dict[str, Any] | None:
        return next((d for d in self.deploys if d["status"] == "live"), None)

    def routes(self) -> list[Route]:
        s = "/v1/services/{service}"
        return [
            Route(s + "/deploys", self.list_deploys, methods=["GET"]),
            Route(s + "/deploys", self.create_deploy, methods=["POST"]),
            Route(s + "/deploys/{deploy}", self.get_deploy, methods=["GET"]),
            Route(s + "/rollback", self.rollback, methods=["POST"]),
            Route(s + "/scale", self.scale, methods=["POST"]),
            Route(s + "/instances", self.instances, methods=["GET"]),
            Route(s + "/env-vars/{key}", self.put_env_var, methods=["PUT"]),
        ]

    def authorized(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"id": "unauthorized", "message": "unauthorized"}, 401)
        return None

    def throttle_headers(self) -> dict[str, str]:
        return {"Ratelimit-Limit": "10", "Ratelimit-Remaining": "0", "Ratelimit-Reset": "1"}

    def throttle_body(self) -> Any:
        return {"id": "rate-limited", "message": "rate limit exceeded"}

    def _service(self, request: Request) -> Response | None:
        if request.path_params["service"] != self.service:
            return JSONResponse({"id": "not-found", "message": "service not found"}, 404)
        return None

    async def put_env_var(self, request: Request) -> Response:
        """Add or update one variable: ``{"value"}`` or ``{"generateValue": true}``;
        answers the variable ``{"key", "value"}``."""
        if (r := self._service(request)) is not None:
            return r
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"id": "bad_request", "message": "invalid JSON"}, 400)
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, str):
            return JSONResponse({"id": "bad_request", "message": "value must be a string"}, 400)
        key = request.path_params["key"]
        self.env_vars[key] = value
        return JSONResponse({"key": key, "value": value}, 200)

    def _advance(self, d: dict[str, Any]) -> None:
        steps = self.steps.get(d["id"])
        if steps is None or steps.done:
            return
        status = steps.poll()
        d["status"] = status
        d["updatedAt"] = iso(time.time())
        if status == "live":
            for other in self.deploys:
                if other is not d and other["status"] == "live":
                    other["status"] = "deactivated"
            d["finishedAt"] = iso(time.time())
        elif status.endswith("failed"):
            d["finishedAt"] = iso(time.time())

    async def list_deploys(self, request: Request) -> Response:
        if (r := self._service(request)) is not None:
            return r
        limit = min(100, int(request.query_params.get("limit", 20)))
        cursor = request.query_params.get("cursor")
        start = 0
        if cursor:
            ids = [d["id"] for d in self.deploys]
            if cursor not in ids:
                return JSONResponse({"id": "bad-cursor", "message": "invalid cursor"}, 400)
            start = ids.index(cursor) + 1
        page = self.deploys[start : start + limit]
        return JSONResponse([{"deploy": d, "cursor": d["id"]} for d in page])

    async def get_deploy(self, request: Request) -> Response:
        if (r := self._service(request)) is not None:
            return r
        d = next((d for d in self.deploys if d["id"] == request.path_params["deploy"]), None)
        if d is None:
            return JSONResponse({"id": "not-found", "message": "deploy not found"}, 404)
        self._advance(d)
        return JSONResponse(d)

    def _rate_ok(self) -> Response | None:
        now = time.monotonic()
        self.deploy_times = [t for t in self.deploy_times if now - t < 60] + [now]
        if len(self.deploy_times) > 10:
            return JSONResponse(
                self.throttle_body(), 429, {**self.throttle_headers(), "Retry-After": "60"}
            )
        return None

    async def create_deploy(self, request: Request) -> Response:
        if (r := self._service(request) or self._rate_ok()) is not None:
            return r
        body = json.loads(await request.body() or b"{}")
        image = body.get("imageUrl") or (self.live() or {}).get("image", {}).get("ref")
        d = self._new(image, "api")
        steps = FAIL_STEPS if image in self.bad_images else DEPLOY_STEPS
        self.steps[d["id"]] = Steps(steps, self.step, self.clock)
        return JSONResponse(d, 201)

    async def rollback(self, request: Request) -> Response:
        if (r := self._service(request) or self._rate_ok()) is not None:
            return r
        body = json.loads(await request.body() or b"{}")
        old = next((d for d in self.deploys if d["id"] == body.get("deployId")), None)
        if old is None:
            return JSONResponse({"id": "not-found", "message": "deploy not found"}, 404)
        d = self._new((old.get("image") or {}).get("ref"), "rollback")
        self.steps[d["id"]] = Steps(ROLLBACK_STEPS, self.step, self.clock)
        return JSONResponse(d, 201)

    async def scale(self, request: Request) -> Response:
        if (r := self._service(request)) is not None:
            return r
        body = json.loads(await request.body() or b"{}")
        n = body.get("numInstances")
        if not isinstance(n, int) or n < 1:
            return JSONResponse({"id": "invalid", "message": "numInstances must be >= 1"}, 400)
        self.num_instances = n
        return Response(status_code=202)

    async def instances(self, request: Request) -> Response:
        if (r := self._service(request)) is not None:
            return r
        return JSONResponse(
            [
                {"id": f"{self.service}-{i:05x}", "createdAt": iso(time.time())}
                for i in range(self.num_instances)
            ]
        )
