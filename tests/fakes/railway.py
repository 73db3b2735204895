"""Railway's public GraphQL API v2: ``POST /graphql/v2``, dispatched on ``operationName``
(or the first root field in the query text).

* Auth: ``Authorization: Bearer <account/team token>`` or ``Project-Access-Token: <token>``;
  a wrong or missing token is HTTP 200 with ``errors: [{"message": "Not Authorized"}]``,
  as are unknown ids (``"Deployment not found"``) and bad arguments: GraphQL errors always
  come inside HTTP 200.
* Operations: ``deployments(input, first, after)`` (Relay connection, newest first),
  ``deployment(id)``, ``serviceInstance(environmentId, serviceId)``,
  ``serviceInstanceUpdate`` (Boolean), ``serviceInstanceDeployV2`` (the new deployment id),
  ``deploymentRollback(id)`` (**Boolean**; needs ``canRollback``), ``environmentPatchCommit``,
  ``variableCollectionUpsert(input: {projectId, environmentId, serviceId, variables,
  replace?, skipDeploys?})`` (Boolean; recorded in ``variables``).
* A deployment goes ``INITIALIZING → BUILDING → DEPLOYING → SUCCESS`` (a rollback skips
  BUILDING), one step per poll once ``step`` seconds passed; the one before becomes
  ``REMOVED``. Images in ``bad_images`` end ``CRASHED``.
* 429 with ``Retry-After`` and ``X-RateLimit-Limit/Remaining/Reset``.

TYPICAL (for the rollback benchmark): 0.3 s per answer (backboard from Europe);
rollback about 15 s from request to SUCCESS (2 steps × 7.5 s: the image is reused, the
time is the healthcheck, overlap and draining; unverified, no published timing).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._platform import FakePlatform, Steps, iso

DEPLOY_STEPS = ["INITIALIZING", "BUILDING", "DEPLOYING", "SUCCESS"]
ROLLBACK_STEPS = ["INITIALIZING", "DEPLOYING", "SUCCESS"]
FAIL_STEPS = ["INITIALIZING", "BUILDING", "DEPLOYING", "CRASHED"]


def gql_error(message: str, code: str | None = None) -> JSONResponse:
    err: dict[str, Any] = {"message": message, "locations": [{"line": 1, "column": 1}]}
    if code:
        err["extensions"] = {"code": code}
    return JSONResponse({"data": None, "errors": [err]}, 200)


class FakeRailway(FakePlatform):
    name = "railway"
    TYPICAL: ClassVar[dict[str, float]] = {"latency": 0.3, "step": 7.5}

    def __init__(
        self,
        service: str = "svc-1",
        environment: str = "env-1",
        project: str = "prj-1",
        token: str = "rw-team-token-1",
        project_token: str = "rw-project-token-1",
        history: int = 3,
        replicas: int = 2,
        latency: float = 0.0,
        step: float = 0.0,
    ) -> None:
        self.service = service
        self.environment = environment
        self.project = project
        self.token = token
        self.project_token = project_token
        self.bad_images: set[str] = set()
        self.image = ""
        self.deployments: list[dict[str, Any]] = []  # newest first
        self.steps: dict[str, Steps] = {}
        self.replicas = {"us-west2": replicas}
        self.patches: list[dict[str, Any]] = []
        self.variables: dict[str, str] = {}  # the service's variables in the environment
        super().__init__(latency, step)
        t0 = time.time() - 86400
        for i in range(history):
            d = self._new(f"ghcr.io/acme/shop:1.{i}", t0 + i * 3600)
            d["status"] = "SUCCESS" if i == history - 1 else "REMOVED"

    def _new(self, image: str, t: float | None = None) -> dict[str, Any]:
        d = {
            "id": str(uuid.uuid4()),
            "status": "INITIALIZING",
            "createdAt": iso(time.time() if t is None else t),
            "canRollback": True,
            "staticUrl": "shop-production.up.railway.app",
            "meta": {"image": image, "serviceManifest": {"source": {"image": image}}},
        }
        self.deployments.insert(0, d)
        self.image = image
        return d

    def live(self) -> dict[str, Any] | None:
        return next((d for d in self.deployments if d["status"] == "SUCCESS"), None)

    def routes(self) -> list[Route]:
        return [Route("/graphql/v2", self.graphql, methods=["POST"])]

    def authorized(self, request: Request) -> Response | None:
        if request.headers.get("authorization") == f"Bearer {self.token}":
            return None
        if request.headers.get("project-access-token") == self.project_token:
            return None
        return gql_error("Not Authorized", "UNAUTHENTICATED")

    def throttle_headers(self) -> dict[str, str]:
        reset = str(int(time.time()) + 1)
        return {
            "X-RateLimit-Limit": "1000",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
        }

    def throttle_body(self) -> Any:
        return {"errors": [{"message": "Rate limit exceeded"}]}

    def _advance(self, d: dict[str, Any]) -> None:
        steps = self.steps.get(d["id"])
        if steps is None or steps.done:
            return
        d["status"] = steps.poll()
        if d["status"] == "SUCCESS":
            for other in self.deployments:
                if other is not d and other["status"] == "SUCCESS":
                    other["status"] = "REMOVED"

    def _instances(self, d: dict[str, Any]) -> list[dict[str, Any]]:
        n = sum(self.replicas.values())
        status = {"SUCCESS": "RUNNING", "CRASHED": "CRASHED", "REMOVED": "REMOVED"}.get(
            d["status"], "INITIALIZING"
        )
        return [{"id": f"{d['id'][:8]}-{i}", "status": status} for i in range(n)]

    async def graphql(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"errors": [{"message": "Invalid JSON body"}]}, 400)
        op = body.get("operationName")
        query = body.get("query", "")
        if not op:
            m = re.search(r"{\s*(\w+)", query)
            op = m.group(1) if m else ""
        v = body.get("variables") or {}
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            return gql_error(
                f'Cannot query field "{op}" on type "Query".', "GRAPHQL_VALIDATION_FAILED"
            )
        return handler(v)  # type: ignore[no-any-return]

    def _check_ids(self, v: dict[str, Any]) -> JSONResponse | None:
        if v.get("serviceId", self.service) != self.service:
            return gql_error("Service not found", "NOT_FOUND")
        if v.get("environmentId", self.environment) != self.environment:
            return gql_error("Environment not found", "NOT_FOUND")
        return None

    def op_variableCollectionUpsert(self, v: dict[str, Any]) -> Response:
        inp = v.get("input") or {}
        if (err := self._check_ids(inp)) is not None:
            return err
        if inp.get("projectId") != self.project:
            return gql_error("Project not found", "NOT_FOUND")
        variables = inp.get("variables")
        if not isinstance(variables, dict) or not all(
            isinstance(k, str) and isinstance(x, str) for k, x in variables.items()
        ):
            return gql_error('Variable "$input" got invalid value', "BAD_USER_INPUT")
        if inp.get("replace"):
            self.variables.clear()
        self.variables.update(variables)
        return JSONResponse({"data": {"variableCollectionUpsert": True}})

    def op_deployments(self, v: dict[str, Any]) -> Response:
        inp = v.get("input") or {}
        if (err := self._check_ids(inp)) is not None:
            return err
        first = int(v.get("first") or 50)
        after = v.get("after")
        start = 0
        if after:
            ids = [d["id"] for d in self.deployments]
            start = ids.index(after) + 1 if after in ids else len(ids)
        page = self.deployments[start : start + first]
        return JSONResponse(
            {
                "data": {
                    "deployments": {
                        "edges": [{"node": d, "cursor": d["id"]} for d in page],
                        "pageInfo": {
                            "endCursor": page[-1]["id"] if page else None,
                            "hasNextPage": start + first < len(self.deployments),
                        },
                    }
                }
            }
        )

    def op_deployment(self, v: dict[str, Any]) -> Response:
        d = next((d for d in self.deployments if d["id"] == v.get("id")), None)
        if d is None:
            return gql_error("Deployment not found", "NOT_FOUND")
        self._advance(d)
        return JSONResponse({"data": {"deployment": {**d, "instances": self._instances(d)}}})

    def op_serviceInstance(self, v: dict[str, Any]) -> Response:
        if (err := self._check_ids(v)) is not None:
            return err
        latest = self.deployments[0] if self.deployments else None
        return JSONResponse(
            {
                "data": {
                    "serviceInstance": {
                        "id": "si-1",
                        "numReplicas": 1,
                        "region": next(iter(self.replicas)),
                        "latestDeployment": latest
                        and {"id": latest["id"], "status": latest["status"]},
                    }
                }
            }
        )

    def op_serviceInstanceUpdate(self, v: dict[str, Any]) -> Response:
        if (err := self._check_ids(v)) is not None:
            return err
        inp = v.get("input") or {}
        if "source" in inp:
            self.image = inp["source"]["image"]
        if "multiRegionConfig" in inp:
            self.replicas = {r: c["numReplicas"] for r, c in inp["multiRegionConfig"].items()}
        return JSONResponse({"data": {"serviceInstanceUpdate": True}})

    def op_serviceInstanceDeployV2(self, v: dict[str, Any]) -> Response:
        if (err := self._check_ids(v)) is not None:
            return err
        d = self._new(self.image)
        steps = FAIL_STEPS if self.image in self.bad_images else DEPLOY_STEPS
        self.steps[d["id"]] = Steps(steps, self.step, self.clock)
        return JSONResponse({"data": {"serviceInstanceDeployV2": d["id"]}})

    def op_deploymentRollback(self, v: dict[str, Any]) -> Response:
        old = next((d for d in self.deployments if d["id"] == v.get("id")), None)
        if old is None:
            return gql_error("Deployment not found", "NOT_FOUND")
        if not old["canRollback"]:
            return gql_error("Deployment cannot be rolled back", "BAD_USER_INPUT")
        d = self._new(old["meta"]["image"])
        self.steps[d["id"]] = Steps(ROLLBACK_STEPS, self.step, self.clock)
        return JSONResponse({"data": {"deploymentRollback": True}})

    def op_environmentPatchCommit(self, v: dict[str, Any]) -> Response:
        if v.get("environmentId") != self.environment:
            return gql_error("Environment not found", "NOT_FOUND")
        patch = v.get("patch") or {}
        self.patches.append(patch)
        svc = (patch.get("services") or {}).get(self.service)
        if svc is None:
            return gql_error("Service not found in patch", "BAD_USER_INPUT")
        mrc = (svc.get("deploy") or {}).get("multiRegionConfig") or {}
        self.replicas = {r: int(c["numReplicas"]) for r, c in mrc.items()}
        return JSONResponse({"data": {"environmentPatchCommit": str(uuid.uuid4())}})
