"""Google Cloud Run Admin API v2, as much as the deployer uses (googleapis
``google/cloud/run/v2`` service.proto, revision.proto, condition.proto, operations).

* ``Authorization: Bearer <access token>`` on every request; 401 ``UNAUTHENTICATED``
  without, 403 ``PERMISSION_DENIED`` for another project.
* ``GET /v2/projects/{p}/locations/{l}/services/{s}`` → Service (``generation``,
  ``observedGeneration``, ``etag``, ``template``, ``traffic``, ``trafficStatuses``,
  ``terminalCondition``, ``latestReadyRevision``, ``latestCreatedRevision``,
  ``reconciling``, ``scaling``).
* ``PATCH /v2/{service.name}`` (body = the whole Service, ``etag`` checked: 409 ``ABORTED``
  when stale) → ``google.longrunning.Operation`` ``{name, metadata, done: false}``. A
  changed ``template`` makes a revision (``template.revision`` names it, else
  ``{service}-{NNNNN}-{abc}``; a name used before → 409 ``ALREADY_EXISTS``); a changed
  ``traffic`` alone only moves traffic (rollback).
* ``GET /v2/projects/{p}/locations/{l}/operations/{id}`` → the Operation; ``done`` with
  ``response`` (the Service) or ``error`` ``{code, message}`` once the rollout ends.
* ``GET …/services/{s}/revisions?pageSize&pageToken`` → ``{revisions, nextPageToken}``
  (newest first), ``GET …/revisions/{r}``.
* A new revision goes ``CONDITION_PENDING → CONDITION_RECONCILING → CONDITION_SUCCEEDED``
  one step per poll of the operation or service once ``step`` seconds passed; images in
  ``bad_images`` end ``CONDITION_FAILED`` with reason ``HEALTH_CHECK_CONTAINER_ERROR``
  and the traffic stays where it was. A traffic shift takes one step.
* Errors ``{"error": {"code", "message", "status"}}``; throttling is 429
  ``RESOURCE_EXHAUSTED`` (Google sends no Retry-After; the client backs off).

TYPICAL (for the rollback benchmark): 0.15 s per API answer; a traffic shift to a warm
revision about 3 s (2 steps × 1.5 s), a new revision 20–40 s (unverified).
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._platform import FakePlatform, Steps, iso

NEW_STEPS = ["CONDITION_PENDING", "CONDITION_RECONCILING", "CONDITION_SUCCEEDED"]
FAIL_STEPS = ["CONDITION_PENDING", "CONDITION_RECONCILING", "CONDITION_FAILED"]
TRAFFIC_STEPS = ["CONDITION_RECONCILING", "CONDITION_SUCCEEDED"]


def gerror(code: int, status: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, code)


class FakeCloudRun(FakePlatform):
    name = "cloudrun"
    TYPICAL: ClassVar[dict[str, float]] = {"latency": 0.15, "step": 1.5}

    def __init__(
        self,
        project: str = "acme-prod",
        service: str = "shop",
        locations: tuple[str, ...] = ("us-central1",),
        token: str = "ya29.test-token",
        history: int = 3,
        latency: float = 0.0,
        step: float = 0.0,
    ) -> None:
        self.project = project
        self.service_id = service
        self.token = token
        self.bad_images: set[str] = set()
        self.services: dict[str, dict[str, Any]] = {}  # location → Service
        self.revisions: dict[str, list[dict[str, Any]]] = {}  # location → newest first
        self.operations: dict[str, dict[str, Any]] = {}
        self.rollouts: dict[str, tuple[str, Steps, str | None]] = {}  # op id → (loc, steps, rev)
        super().__init__(latency, step)
        for loc in locations:
            self._seed(loc, history)

    # -- state --------------------------------------------------------------------
    def parent(self, loc: str) -> str:
        return f"projects/{self.project}/locations/{loc}"

    def _seed(self, loc: str, history: int) -> None:
        name = f"{self.parent(loc)}/services/{self.service_id}"
        t0 = time.time() - 86400
        self.revisions[loc] = []
        for i in range(1, history + 1):
            rev = self._revision(
                loc,
                f"{self.service_id}-{i:05d}-{'abcdefghij'[i % 10]}{i % 7}x",
                f"us-docker.pkg.dev/acme/shop/web:1.{i - 1}",
                i,
                t0 + i * 3600,
            )
            rev["conditions"][0]["state"] = "CONDITION_SUCCEEDED"
        latest = self.revisions[loc][0]["name"].rsplit("/", 1)[1]
        self.services[loc] = {
            "name": name,
            "uid": secrets.token_hex(8),
            "generation": str(history),
            "observedGeneration": str(history),
            "etag": f'"{secrets.token_hex(6)}"',
            "createTime": iso(t0),
            "updateTime": iso(t0 + history * 3600),
            "uri": f"https://{self.service_id}-abc123-uc.a.run.app",
            "reconciling": False,
            "template": {
                "revision": latest,
                "containers": [
                    {
                        "name": "web",
                        "image": self.revisions[loc][0]["containers"][0]["image"],
                        "ports": [{"containerPort": 8080}],
                    }
                ],
                "scaling": {"minInstanceCount": 0, "maxInstanceCount": 100},
            },
            "scaling": {"scalingMode": "AUTOMATIC", "minInstanceCount": 0},
            "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
            "trafficStatuses": [
                {
                    "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                    "revision": latest,
                    "percent": 100,
                }
            ],
            "latestReadyRevision": self.revisions[loc][0]["name"],
            "latestCreatedRevision": self.revisions[loc][0]["name"],
            "terminalCondition": {
                "type": "Ready",
                "state": "CONDITION_SUCCEEDED",
                "lastTransitionTime": iso(t0 + history * 3600),
            },
        }

    def _revision(self, loc: str, rid: str, image: str, gen: int, t: float) -> dict[str, Any]:
        rev = {
            "name": f"{self.parent(loc)}/services/{self.service_id}/revisions/{rid}",
            "uid": secrets.token_hex(8),
            "generation": "1",
            "createTime": iso(t),
            "service": f"{self.parent(loc)}/services/{self.service_id}",
            "containers": [{"name": "web", "image": image}],
            "scaling": {"minInstanceCount": 0, "maxInstanceCount": 100},
            "conditions": [{"type": "Ready", "state": "CONDITION_PENDING"}],
            "labels": {"serving.knative.dev/revision-generation": str(gen)},
        }
        self.revisions[loc].insert(0, rev)
        return rev

    def serving(self, loc: str | None = None) -> str:
        """The short name of the revision that gets all traffic in ``loc``."""
        svc = self.services[loc or next(iter(self.services))]
        return str(max(svc["trafficStatuses"], key=lambda t: t["percent"])["revision"])

    def image_serving(self, loc: str | None = None) -> str:
        loc = loc or next(iter(self.services))
        rid = self.serving(loc)
        rev = next(r for r in self.revisions[loc] if r["name"].endswith("/" + rid))
        return str(rev["containers"][0]["image"])

    # -- protocol -----------------------------------------------------------------
    def environment(self) -> tuple[str, str]:
        """(the ``[environments.<name>]`` body pointing here, its token)."""
        regions = ", ".join(f'"{loc}"' for loc in self.services)
        return (
            f'platform = "cloudrun"\napp = "{self.service_id}"\nproject = "{self.project}"\n'
            f'regions = [{regions}]\napi_url = "{self.url}"\n',
            self.token,
        )

    def routes(self) -> list[Route]:
        loc = "/v2/projects/{project}/locations/{location}"
        svc = loc + "/services/{service}"
        return [
            Route(svc, self.get_service, methods=["GET"]),
            Route(svc, self.patch_service, methods=["PATCH"]),
            Route(svc + "/revisions", self.list_revisions, methods=["GET"]),
            Route(svc + "/revisions/{revision}", self.get_revision, methods=["GET"]),
            Route(loc + "/operations/{op}", self.get_operation, methods=["GET"]),
            Route(
                "/computeMetadata/v1/instance/service-accounts/default/token",
                self.metadata_token,
                methods=["GET"],
            ),
        ]

    async def metadata_token(self, request: Request) -> Response:
        """The GCE metadata server's token (``Metadata-Flavor: Google`` required)."""
        if request.headers.get("metadata-flavor") != "Google":
            return Response("Missing Metadata-Flavor:Google header.", 403)
        return JSONResponse(
            {"access_token": self.token, "expires_in": 3599, "token_type": "Bearer"}
        )

    def authorized(self, request: Request) -> Response | None:
        if request.url.path.startswith("/computeMetadata/"):
            return None
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return gerror(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            )
        parts = request.url.path.split("/")
        if len(parts) > 3 and parts[2] == "projects" and parts[3] != self.project:
            return gerror(403, "PERMISSION_DENIED", "Permission 'run.services.get' denied")
        return None

    def throttle_headers(self) -> dict[str, str]:
        return {}

    def throttle(self, times: int = 1, retry_after: float = 1, **match: Any) -> None:
        body = self.throttle_body()
        self.inject(429, body, {}, times, **match)

    def throttle_body(self) -> Any:
        return {
            "error": {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "message": "Quota exceeded for quota metric 'Write requests' of "
                "service 'run.googleapis.com'",
            }
        }

    def _find(self, request: Request) -> tuple[str, dict[str, Any]] | Response:
        p = request.path_params
        loc = p["location"]
        svc = self.services.get(loc)
        if p["project"] != self.project or svc is None or p["service"] != self.service_id:
            return gerror(
                404,
                "NOT_FOUND",
                f"Resource '{p['service']}' of kind 'SERVICE' in "
                f"region '{loc}' in project '{p['project']}' does not exist.",
            )
        return loc, svc

    def _advance(self, op_id: str) -> None:
        loc, steps, rid = self.rollouts[op_id]
        if steps.done:
            return
        state = steps.poll()
        svc = self.services[loc]
        op = self.operations[op_id]
        rev = None
        if rid is not None:
            rev = next(r for r in self.revisions[loc] if r["name"].endswith("/" + rid))
            rev["conditions"][0]["state"] = state
        if state == "CONDITION_SUCCEEDED":
            if rev is not None:
                svc["latestReadyRevision"] = rev["name"]
            svc["trafficStatuses"] = self._resolve(loc, svc["traffic"])
            svc["observedGeneration"] = svc["generation"]
            svc["reconciling"] = False
            svc["terminalCondition"] = {
                "type": "Ready",
                "state": state,
                "lastTransitionTime": iso(time.time()),
            }
            op.update(
                done=True,
                response={
                    "@type": "type.googleapis.com/google.cloud.run.v2.Service",
                    **copy.deepcopy(svc),
                },
            )
        elif state == "CONDITION_FAILED":
            message = (
                f"The user-provided container failed to start and listen on the port "
                f"defined provided by the PORT=8080 environment variable. Revision "
                f"'{rid}' is not ready and cannot serve traffic."
            )
            assert rev is not None
            rev["conditions"][0].update(reason="HEALTH_CHECK_CONTAINER_ERROR", message=message)
            svc["observedGeneration"] = svc["generation"]
            svc["reconciling"] = False
            svc["terminalCondition"] = {
                "type": "Ready",
                "state": state,
                "revisionReason": "HEALTH_CHECK_CONTAINER_ERROR",
                "message": message,
            }
            op.update(done=True, error={"code": 9, "message": message})

    def _resolve(self, loc: str, traffic: list[dict[str, Any]]) -> list[dict[str, Any]]:
        svc = self.services[loc]
        out = []
        for t in traffic:
            if t.get("type", "").endswith("LATEST"):
                rid = svc["latestReadyRevision"].rsplit("/", 1)[1]
            else:
                rid = t["revision"]
            out.append(
                {
                    "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                    "revision": rid,
                    "percent": t.get("percent", 0),
                }
            )
        return out

    async def get_service(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, Response):
            return found
        loc, svc = found
        for op_id, (l2, _, _) in list(self.rollouts.items()):
            if l2 == loc:
                self._advance(op_id)
        return JSONResponse(svc)

    async def patch_service(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, Response):
            return found
        loc, svc = found
        try:
            body = json.loads(await request.body())
        except ValueError:
            return gerror(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if body.get("etag") not in (None, svc["etag"]):
            return gerror(
                409,
                "ABORTED",
                "Conflict for resource 'shop': version '"
                f"{body.get('etag')}' was specified but current version is "
                f"'{svc['etag']}'.",
            )
        if svc["reconciling"]:
            return gerror(409, "FAILED_PRECONDITION", "Service is being reconciled; retry later")
        template = body.get("template") or svc["template"]
        traffic = body.get("traffic") or svc["traffic"]
        rid: str | None = None
        rev_names = {r["name"].rsplit("/", 1)[1] for r in self.revisions[loc]}
        template_changed = template.get("containers") != svc["template"]["containers"] or (
            template.get("revision") and template.get("revision") != svc["template"].get("revision")
        )
        for t in traffic:
            if t.get("type", "").endswith("REVISION") and t.get("revision") not in rev_names:
                return gerror(
                    400,
                    "INVALID_ARGUMENT",
                    f"Revision named '{t.get('revision')}' referenced in traffic not found.",
                )
        if template_changed:
            rid = template.get("revision") or (
                f"{self.service_id}-{len(self.revisions[loc]) + 1:05d}-{secrets.token_hex(2)[:3]}"
            )
            if rid in rev_names:
                return gerror(409, "ALREADY_EXISTS", f"Revision named '{rid}' already exists.")
            if not rid.startswith(self.service_id + "-"):
                return gerror(
                    400,
                    "INVALID_ARGUMENT",
                    f"template.revision must be prefixed with '{self.service_id}-'",
                )
            image = template["containers"][0]["image"]
            self._revision(loc, rid, image, len(self.revisions[loc]) + 1, time.time())
            template = {**template, "revision": rid}
            svc["latestCreatedRevision"] = f"{svc['name']}/revisions/{rid}"
            steps = FAIL_STEPS if image in self.bad_images else NEW_STEPS
        else:
            steps = TRAFFIC_STEPS
        if "scaling" in body:
            svc["scaling"] = body["scaling"]
        svc["template"] = template
        svc["traffic"] = traffic
        svc["generation"] = str(int(svc["generation"]) + 1)
        svc["etag"] = f'"{secrets.token_hex(6)}"'
        svc["updateTime"] = iso(time.time())
        svc["reconciling"] = True
        svc["terminalCondition"] = {"type": "Ready", "state": "CONDITION_RECONCILING"}
        op_id = secrets.token_hex(8)
        op = {
            "name": f"{self.parent(loc)}/operations/{op_id}",
            "done": False,
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.run.v2.Service",
                **copy.deepcopy(svc),
            },
        }
        self.operations[op_id] = op
        self.rollouts[op_id] = (loc, Steps(steps, self.step, self.clock), rid)
        return JSONResponse(op)

    async def get_operation(self, request: Request) -> Response:
        op_id = request.path_params["op"]
        if op_id not in self.operations:
            return gerror(404, "NOT_FOUND", f"Operation '{op_id}' not found.")
        self._advance(op_id)
        return JSONResponse(self.operations[op_id])

    async def list_revisions(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, Response):
            return found
        loc, _ = found
        size = min(int(request.query_params.get("pageSize") or 100), 1000)
        start = int(request.query_params.get("pageToken") or 0)
        page = self.revisions[loc][start : start + size]
        body: dict[str, Any] = {"revisions": page}
        if start + size < len(self.revisions[loc]):
            body["nextPageToken"] = str(start + size)
        return JSONResponse(body)

    async def get_revision(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, Response):
            return found
        loc, _ = found
        rid = request.path_params["revision"]
        rev = next((r for r in self.revisions[loc] if r["name"].endswith("/" + rid)), None)
        if rev is None:
            return gerror(404, "NOT_FOUND", f"Revision '{rid}' does not exist.")
        return JSONResponse(rev)
