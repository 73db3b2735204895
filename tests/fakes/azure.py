"""Azure Resource Manager: Container Instances (``Microsoft.ContainerInstance``), as much
as the deployer uses.

* ``Authorization: Bearer <Entra ID token>``; 401 ``AuthenticationFailed`` without (with
  ``WWW-Authenticate: Bearer …``). Every request needs ``?api-version=`` (400
  ``MissingApiVersionParameter`` without).
* ``GET/PUT /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/
  containerGroups/{name}``: PUT takes ``{location, tags, properties: {containers, osType,
  restartPolicy, ipAddress, sku}}`` and answers 200/201 with ``provisioningState`` Pending
  and an ``Azure-AsyncOperation`` header; ``GET`` that URL → ``{status: InProgress |
  Succeeded | Failed, error?}``. The group moves ``Pending → Creating → Succeeded`` one
  step per poll once ``step`` seconds passed. An image in ``bad_images`` fails with
  ``InaccessibleImage`` and leaves the group ``Failed`` with no running container (ACI
  replaces in place: the old container is gone).
* ``POST …/stop`` (204), ``POST …/start`` (202 + Azure-AsyncOperation). GET never returns
  ``secureValue`` of environment variables.
* No revisions, replicas or traffic split. Throttling is 429 with ``Retry-After`` and
  ``x-ms-ratelimit-remaining-subscription-writes``; errors ``{"error": {"code",
  "message"}}`` with an ``x-ms-request-id``.

TYPICAL (for the rollback benchmark): 0.2 s per ARM answer; re-creating a container group
30–60 s (image pull included) — modelled as 3 steps × 15 s (unverified).
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._platform import FakePlatform, Steps, iso

API_VERSION = "2023-05-01"
DEPLOY_STEPS = ["Pending", "Creating", "Succeeded"]
FAIL_STEPS = ["Pending", "Creating", "Failed"]


def arm_error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status,
        {"x-ms-request-id": str(uuid.uuid4()), **headers},
    )


class FakeAzure(FakePlatform):
    name = "azure"
    TYPICAL: ClassVar[dict[str, float]] = {"latency": 0.2, "step": 15.0}

    def __init__(
        self,
        subscription: str = "00000000-1111-2222-3333-444444444444",
        group: str = "shop-rg",
        name: str = "shop",
        location: str = "westeurope",
        token: str = "eyJ0eXAiOiJKV1QiLCJhbGciOi.fake.token",
        latency: float = 0.0,
        step: float = 0.0,
    ) -> None:
        self.subscription = subscription
        self.resource_group = group
        self.group_name = name
        self.location = location
        self.token = token
        self.bad_images: set[str] = set()
        self.ops: dict[str, dict[str, Any]] = {}
        self.rollouts: dict[str, tuple[Steps, str]] = {}
        self.puts: list[dict[str, Any]] = []
        super().__init__(latency, step)
        self.group = self._group("shopacr.azurecr.io/shop:1.2", "Succeeded")

    @property
    def path(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/"
            f"providers/Microsoft.ContainerInstance/containerGroups/{self.group_name}"
        )

    def _group(self, image: str, state: str) -> dict[str, Any]:
        return {
            "id": self.path,
            "name": self.group_name,
            "location": self.location,
            "type": "Microsoft.ContainerInstance/containerGroups",
            "tags": {"app": "shop"},
            "properties": {
                "provisioningState": state,
                "osType": "Linux",
                "restartPolicy": "Always",
                "sku": "Standard",
                "ipAddress": {
                    "type": "Public",
                    "ip": "20.1.2.3",
                    "ports": [{"protocol": "TCP", "port": 8000}],
                },
                "containers": [
                    {
                        "name": "web",
                        "properties": {
                            "image": image,
                            "ports": [{"port": 8000}],
                            "environmentVariables": [
                                {"name": "PORT", "value": "8000"},
                                {"name": "DB_PASSWORD"},
                            ],
                            "resources": {"requests": {"cpu": 1.0, "memoryInGB": 1.5}},
                            "instanceView": self._view(
                                "Running" if state == "Succeeded" else "Waiting"
                            ),
                        },
                    },
                    {
                        "name": "fastmango-agent",
                        "properties": {
                            "image": "fastmango/agent:0.1",
                            "ports": [{"port": 9871}],
                            "resources": {"requests": {"cpu": 0.25, "memoryInGB": 0.25}},
                            "instanceView": self._view("Running"),
                        },
                    },
                ],
                "instanceView": {"state": "Running" if state == "Succeeded" else "Pending"},
            },
        }

    @staticmethod
    def _view(state: str) -> dict[str, Any]:
        return {
            "restartCount": 0,
            "currentState": {"state": state, "startTime": iso(time.time()), "detailStatus": ""},
            "events": [],
        }

    def image(self) -> str:
        return str(self.group["properties"]["containers"][0]["properties"]["image"])

    # -- protocol ------------------------------------------------------------------
    def environment(self) -> tuple[str, str]:
        """(the ``[environments.<name>]`` body pointing here, its token)."""
        return (
            f'platform = "azure"\napp = "{self.resource_group}/{self.group_name}"\n'
            f'project = "{self.subscription}"\nregions = ["{self.location}"]\n'
            f'api_url = "{self.url}"\n',
            self.token,
        )

    def routes(self) -> list[Route]:
        g = (
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/"
            "Microsoft.ContainerInstance/containerGroups/{name}"
        )
        return [
            Route(g, self.get_group, methods=["GET"]),
            Route(g, self.put_group, methods=["PUT"]),
            Route(g + "/stop", self.stop_group, methods=["POST"]),
            Route(g + "/start", self.start_group, methods=["POST"]),
            Route(
                "/subscriptions/{sub}/providers/Microsoft.ContainerInstance/locations/{loc}/"
                "operations/{op}",
                self.get_op,
                methods=["GET"],
            ),
        ]

    def authorized(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return arm_error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing or invalid.",
                **{
                    "WWW-Authenticate": 'Bearer authorization_uri="https://login.'
                    'microsoftonline.com/common"'
                },
            )
        if not request.query_params.get("api-version"):
            return arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        return None

    def throttle_headers(self) -> dict[str, str]:
        return {"x-ms-ratelimit-remaining-subscription-writes": "0"}

    def throttle_body(self) -> Any:
        return {
            "error": {
                "code": "TooManyRequests",
                "message": "The request is being "
                "throttled as the limit has been reached for operation type - Write.",
            }
        }

    def _mine(self, request: Request) -> Response | None:
        p = request.path_params
        if p["sub"] != self.subscription:
            return arm_error(
                404, "SubscriptionNotFound", f"The subscription '{p['sub']}' could not be found."
            )
        if p["rg"] != self.resource_group or p["name"] != self.group_name:
            return arm_error(
                404,
                "ResourceNotFound",
                "The Resource 'Microsoft.ContainerInstance/"
                f"containerGroups/{p['name']}' under resource group '{p['rg']}' "
                "was not found.",
            )
        return None

    def _advance(self) -> None:
        for op_id, (steps, image) in list(self.rollouts.items()):
            if steps.done:
                continue
            state = steps.poll()
            props = self.group["properties"]
            props["provisioningState"] = state
            if state == "Succeeded":
                props["containers"][0]["properties"]["instanceView"] = self._view("Running")
                props["instanceView"] = {"state": "Running"}
                self.ops[op_id].update(status="Succeeded", endTime=iso(time.time()))
            elif state == "Failed":
                message = (
                    f"The image '{image}' in container group '{self.group_name}' is not "
                    "accessible. Please check the image and registry credential."
                )
                view = self._view("Waiting")
                view["currentState"]["detailStatus"] = "ErrImagePull"
                props["containers"][0]["properties"]["instanceView"] = view
                props["instanceView"] = {"state": "Pending"}
                self.ops[op_id].update(
                    status="Failed",
                    endTime=iso(time.time()),
                    error={"code": "InaccessibleImage", "message": message},
                )

    def _op(self, steps: list[str], image: str) -> dict[str, str]:
        op_id = str(uuid.uuid4())
        self.ops[op_id] = {
            "id": f"/subscriptions/{self.subscription}/providers/Microsoft."
            f"ContainerInstance/locations/{self.location}/operations/{op_id}",
            "name": op_id,
            "status": "InProgress",
            "startTime": iso(time.time()),
        }
        self.rollouts[op_id] = (Steps(steps, self.step, self.clock), image)
        url = f"{self.url}{self.ops[op_id]['id']}?api-version={API_VERSION}"
        return {"Azure-AsyncOperation": url, "x-ms-request-id": str(uuid.uuid4())}

    async def get_group(self, request: Request) -> Response:
        if (r := self._mine(request)) is not None:
            return r
        self._advance()
        out = copy.deepcopy(self.group)
        for c in out["properties"]["containers"]:
            for env in c["properties"].get("environmentVariables", []):
                env.pop("secureValue", None)
        return JSONResponse(out)

    async def put_group(self, request: Request) -> Response:
        if (r := self._mine(request)) is not None:
            return r
        try:
            body = json.loads(await request.body())
            containers = body["properties"]["containers"]
            image = containers[0]["properties"]["image"]
        except (ValueError, KeyError, IndexError, TypeError):
            return arm_error(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized.",
            )
        if body.get("location", "").replace(" ", "").lower() != self.location:
            return arm_error(
                409,
                "ContainerGroupLocationCannotBeChanged",
                f"The location of container group '{self.group_name}' cannot be changed.",
            )
        for c in containers:
            if "instanceView" in c.get("properties", {}):
                return arm_error(400, "InvalidRequestContent", "instanceView is read-only")
        if any(not self.rollouts[o][0].done for o in self.rollouts):
            return arm_error(409, "Conflict", "The container group is being updated; retry later.")
        self.puts.append(body)
        self.group = self._group(image, "Pending")
        self.group["tags"] = body.get("tags", {})
        self.group["properties"]["containers"] = copy.deepcopy(containers)
        for c in self.group["properties"]["containers"]:
            c["properties"]["instanceView"] = self._view("Waiting")
        steps = FAIL_STEPS if image in self.bad_images else DEPLOY_STEPS
        headers = self._op(steps, image)
        return JSONResponse(self.group, 200, headers)

    async def get_op(self, request: Request) -> Response:
        op = self.ops.get(request.path_params["op"])
        if op is None:
            return arm_error(404, "OperationNotFound", "The operation was not found.")
        self._advance()
        return JSONResponse(op)

    async def stop_group(self, request: Request) -> Response:
        if (r := self._mine(request)) is not None:
            return r
        self.group["properties"]["instanceView"] = {"state": "Stopped"}
        self.group["properties"]["containers"][0]["properties"]["instanceView"] = self._view(
            "Terminated"
        )
        return Response(status_code=204)

    async def start_group(self, request: Request) -> Response:
        if (r := self._mine(request)) is not None:
            return r
        headers = self._op(DEPLOY_STEPS, self.image())
        return Response(status_code=202, headers=headers)
