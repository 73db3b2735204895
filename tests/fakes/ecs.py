"""Amazon ECS (JSON 1.1 protocol) on Fargate, as much as the deployer uses.

* ``POST /`` with ``X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`` and
  ``Content-Type: application/x-amz-json-1.1``, signed with SigV4 (service ``ecs``). The
  signature is checked here with this fake's own, independent canonicalisation: an unknown
  key is 400 ``UnrecognizedClientException``, a wrong signature 403
  ``InvalidSignatureException``, a date more than 5 minutes off 403 ``Signature expired``.
* RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions (``sort``,
  ``maxResults``, ``nextToken``), UpdateService, DescribeServices, ListTasks,
  DescribeTasks. Errors ``{"__type": "…Exception", "message": …}`` (HTTP 400;
  ``ServerException`` 500).
* A deployment is the PRIMARY ``IN_PROGRESS`` until its tasks run (one task per poll of
  DescribeServices once ``step`` seconds passed), then ``COMPLETED``; the old one goes
  ACTIVE → gone. Images in ``bad_images`` fail a task per poll; when ``failedTasks``
  reaches the circuit breaker's threshold (0.5 × desiredCount, clamped to 3…200) the
  deployment is ``FAILED`` and, with ``rollback: true``, ECS starts a new PRIMARY
  deployment of the last COMPLETED task definition.
* Throttling is **HTTP 400** ``ThrottlingException`` "Rate exceeded" (not 429).

TYPICAL (for the rollback benchmark): 0.1 s per API answer; a rollback (a new deployment
of the old task definition) about 60–120 s on Fargate (image pull, ENI, health checks,
deregistration delay) — modelled as 4 steps × 20 s (unverified).
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._platform import FakePlatform

PREFIX = "AmazonEC2ContainerServiceV20141113."
ACCOUNT = "123456789012"
KEY_ID = "AKIAFAKEECS000000001"
SECRET = "fakeSecretKey/0123456789abcdefghijABCDEFGHIJ"


def aws_error(kind: str, message: str, status: int = 400) -> JSONResponse:
    return JSONResponse(
        {"__type": kind, "message": message}, status, media_type="application/x-amz-json-1.1"
    )


def _verify(request: Request, body: bytes, region: str, keys: dict[str, str]) -> Response | None:
    """SigV4 as AWS checks it, written apart from fastmango's signer."""
    auth = request.headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return aws_error("MissingAuthenticationTokenException", "Missing Authentication Token")
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
    key_id, date, reg, service, term = fields["Credential"].split("/")
    if key_id not in keys:
        return aws_error(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    amz_date = request.headers.get("x-amz-date", "")
    try:
        t = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return aws_error("IncompleteSignatureException", "X-Amz-Date is missing or bad", 400)
    if abs(time.time() - t) > 300:
        return aws_error("InvalidSignatureException", "Signature expired", 403)
    if (reg, service, term, date) != (region, "ecs", "aws4_request", amz_date[:8]):
        return aws_error(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region ({region}) and service ecs",
            403,
        )
    signed = fields["SignedHeaders"].split(";")
    lines = [f"{h}:{' '.join(request.headers.get(h, '').split())}" for h in signed]
    query = "&".join(
        sorted(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
            for k, v in urllib.parse.parse_qsl(request.url.query, keep_blank_values=True)
        )
    )
    creq = "\n".join(
        [
            request.method,
            request.url.path or "/",
            query,
            "\n".join(lines) + "\n",
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/ecs/aws4_request"
    sts = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(creq.encode()).hexdigest()}"
    k = ("AWS4" + keys[key_id]).encode()
    for part in (date, region, "ecs", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if "host" not in signed or not hmac.compare_digest(want, fields.get("Signature", "")):
        return aws_error(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
            403,
        )
    return None


class FakeEcs(FakePlatform):
    name = "ecs"
    TYPICAL: ClassVar[dict[str, float]] = {"latency": 0.1, "step": 20.0}

    def __init__(
        self,
        region: str = "us-east-1",
        cluster: str = "prod",
        service: str = "shop",
        family: str = "shop-web",
        history: int = 3,
        desired: int = 2,
        latency: float = 0.0,
        step: float = 0.0,
    ) -> None:
        self.region = region
        self.cluster = cluster
        self.service_name = service
        self.family = family
        self.keys = {KEY_ID: SECRET}
        self.key_id, self.secret = KEY_ID, SECRET
        self.bad_images: set[str] = set()
        self.taskdefs: list[dict[str, Any]] = []  # oldest first
        self.tasks: dict[str, dict[str, Any]] = {}
        self.ops: list[str] = []
        super().__init__(latency, step)
        t0 = time.time() - 86400
        for i in range(history):
            self._register(
                {
                    "family": family,
                    "networkMode": "awsvpc",
                    "requiresCompatibilities": ["FARGATE"],
                    "cpu": "256",
                    "memory": "512",
                    "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecution",
                    "containerDefinitions": [
                        {
                            "name": "web",
                            "image": f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/shop:1.{i}",
                            "essential": True,
                            "portMappings": [{"containerPort": 8000}],
                        },
                        {
                            "name": "fastmango-agent",
                            "image": "fastmango/agent:0.1",
                            "essential": False,
                        },
                    ],
                },
                t0 + i * 3600,
            )
        current = self.taskdefs[-1]["taskDefinitionArn"]
        self.svc: dict[str, Any] = {
            "serviceArn": f"arn:aws:ecs:{region}:{ACCOUNT}:service/{cluster}/{service}",
            "serviceName": service,
            "clusterArn": self.cluster_arn,
            "status": "ACTIVE",
            "launchType": "FARGATE",
            "taskDefinition": current,
            "desiredCount": desired,
            "runningCount": desired,
            "pendingCount": 0,
            "deploymentConfiguration": {
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
                "deploymentCircuitBreaker": {"enable": False, "rollback": False},
            },
            "deploymentController": {"type": "ECS"},
            "deployments": [],
            "events": [],
        }
        self._deployment(current, desired, done=True)
        for _ in range(desired):
            self._task(current, "RUNNING")

    @property
    def cluster_arn(self) -> str:
        return f"arn:aws:ecs:{self.region}:{ACCOUNT}:cluster/{self.cluster}"

    # -- state ---------------------------------------------------------------------
    def _register(self, spec: dict[str, Any], t: float | None = None) -> dict[str, Any]:
        family = spec["family"]
        rev = 1 + sum(1 for d in self.taskdefs if d["family"] == family)
        td = {
            **spec,
            "revision": rev,
            "status": "ACTIVE",
            "taskDefinitionArn": f"arn:aws:ecs:{self.region}:{ACCOUNT}:task-definition/"
            f"{family}:{rev}",
            "registeredAt": t or time.time(),
            "compatibilities": ["EC2", "FARGATE"],
        }
        self.taskdefs.append(td)
        return td

    def _deployment(self, taskdef: str, desired: int, done: bool = False) -> dict[str, Any]:
        for d in self.svc["deployments"]:
            if d["status"] == "PRIMARY":
                d["status"] = "ACTIVE"
        dep = {
            "id": f"ecs-svc/{secrets.randbelow(10**19):019d}",
            "status": "PRIMARY",
            "taskDefinition": taskdef,
            "desiredCount": desired,
            "runningCount": desired if done else 0,
            "pendingCount": 0 if done else desired,
            "failedTasks": 0,
            "launchType": "FARGATE",
            "createdAt": time.time(),
            "updatedAt": time.time(),
            "rolloutState": "COMPLETED" if done else "IN_PROGRESS",
            "rolloutStateReason": "ECS deployment completed."
            if done
            else f"ECS deployment {secrets.token_hex(4)} in progress.",
            "_moved": self.clock(),
        }
        self.svc["deployments"].insert(0, dep)
        return dep

    def _task(self, taskdef: str, status: str) -> dict[str, Any]:
        arn = f"arn:aws:ecs:{self.region}:{ACCOUNT}:task/{self.cluster}/{secrets.token_hex(16)}"
        task = {
            "taskArn": arn,
            "clusterArn": self.cluster_arn,
            "taskDefinitionArn": taskdef,
            "lastStatus": status,
            "desiredStatus": "RUNNING",
            "healthStatus": "HEALTHY" if status == "RUNNING" else "UNKNOWN",
            "startedAt": time.time(),
            "availabilityZone": f"{self.region}a",
            "launchType": "FARGATE",
            "cpu": "256",
            "memory": "512",
            "group": f"service:{self.service_name}",
        }
        self.tasks[arn] = task
        return task

    def image_of(self, taskdef: str) -> str:
        td = next(d for d in self.taskdefs if d["taskDefinitionArn"] == taskdef)
        return str(td["containerDefinitions"][0]["image"])

    def serving_image(self) -> str:
        return self.image_of(self.svc["taskDefinition"])

    def threshold(self, desired: int) -> int:
        return min(200, max(3, int(0.5 * desired + 0.5)))

    def _advance(self) -> None:
        primary = self.svc["deployments"][0]
        if primary["rolloutState"] != "IN_PROGRESS":
            return
        if self.clock() - primary["_moved"] < self.step:
            return
        primary["_moved"] = self.clock()
        primary["updatedAt"] = time.time()
        td = primary["taskDefinition"]
        if self.image_of(td) in self.bad_images:
            primary["failedTasks"] += 1
            self.svc["events"].insert(
                0,
                {
                    "id": secrets.token_hex(8),
                    "createdAt": time.time(),
                    "message": f"(service {self.service_name}) has started 1 tasks: (task "
                    f"{secrets.token_hex(16)}). Essential container in task exited",
                },
            )
            breaker = self.svc["deploymentConfiguration"].get("deploymentCircuitBreaker", {})
            if breaker.get("enable") and primary["failedTasks"] >= self.threshold(
                primary["desiredCount"]
            ):
                primary["rolloutState"] = "FAILED"
                primary["rolloutStateReason"] = (
                    "ECS deployment circuit breaker: tasks failed to start."
                )
                if breaker.get("rollback"):
                    good = next(
                        (
                            d["taskDefinition"]
                            for d in self.svc["deployments"][1:]
                            if d["rolloutState"] == "COMPLETED"
                        ),
                        None,
                    )
                    if good is not None:
                        primary["status"] = "ACTIVE"
                        self.svc["taskDefinition"] = good
                        dep = self._deployment(good, self.svc["desiredCount"])
                        dep["rolloutStateReason"] = (
                            f"ECS deployment circuit breaker: rolling back to deploymentId "
                            f"{primary['id']}."
                        )
            return
        if primary["pendingCount"] > 0:
            primary["pendingCount"] -= 1
            primary["runningCount"] += 1
            self._task(td, "RUNNING")
        if primary["pendingCount"] == 0:
            primary["rolloutState"] = "COMPLETED"
            primary["rolloutStateReason"] = "ECS deployment completed."
            for arn, task in list(self.tasks.items()):
                if task["taskDefinitionArn"] != td:
                    del self.tasks[arn]
            keep = [primary]
            self.svc["deployments"] = keep
        running = sum(1 for t in self.tasks.values() if t["lastStatus"] == "RUNNING")
        self.svc["runningCount"] = running

    # -- protocol ------------------------------------------------------------------
    def environment(self) -> tuple[str, str]:
        """(the ``[environments.<name>]`` body pointing here, its token)."""
        return (
            f'platform = "ecs"\napp = "{self.cluster}/{self.service_name}"\n'
            f'regions = ["{self.region}"]\napi_url = "{self.url}"\n',
            f"{self.key_id}:{self.secret}",
        )

    def routes(self) -> list[Route]:
        return [Route("/", self.dispatch, methods=["POST"])]

    def authorized(self, request: Request) -> Response | None:
        body = getattr(request, "_body", b"")
        return _verify(request, body, self.region, self.keys)

    def throttle(self, times: int = 1, retry_after: float = 1, **match: Any) -> None:
        """ECS throttles with HTTP 400 ThrottlingException (no Retry-After)."""
        self.inject(
            400,
            {"__type": "ThrottlingException", "message": "Rate exceeded"},
            {"Content-Type": "application/x-amz-json-1.1"},
            times,
            **match,
        )

    async def dispatch(self, request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        if request.headers.get("content-type") != "application/x-amz-json-1.1":
            return aws_error(
                "SerializationException", "Content-Type must be application/x-amz-json-1.1"
            )
        op = target.removeprefix(PREFIX)
        handler = getattr(self, f"op_{op}", None)
        if not target.startswith(PREFIX) or handler is None:
            return aws_error("UnknownOperationException", f"Unknown operation {target}")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return aws_error(
                "SerializationException", "Start of structure or map found where not expected"
            )
        self.ops.append(op)
        result = handler(body)
        if isinstance(result, Response):
            return result
        return JSONResponse(result, media_type="application/x-amz-json-1.1")

    def _check_service(self, body: dict[str, Any]) -> Response | None:
        cluster = body.get("cluster", "default")
        if cluster not in (self.cluster, self.cluster_arn):
            return aws_error("ClusterNotFoundException", "Cluster not found.")
        svc = body.get("service")
        if svc is not None and svc not in (self.service_name, self.svc["serviceArn"]):
            return aws_error("ServiceNotFoundException", "Service not found.")
        return None

    def _taskdef(self, ref: str) -> dict[str, Any] | None:
        for td in self.taskdefs:
            if ref in (td["taskDefinitionArn"], f"{td['family']}:{td['revision']}"):
                return td
        if ":" not in ref:  # a family: its latest ACTIVE revision
            fam = [td for td in self.taskdefs if td["family"] == ref]
            return fam[-1] if fam else None
        return None

    def op_RegisterTaskDefinition(self, body: dict[str, Any]) -> Any:
        if not body.get("family") or not body.get("containerDefinitions"):
            return aws_error("ClientException", "Family and containerDefinitions are required.")
        if "FARGATE" in body.get("requiresCompatibilities", []) and (
            body.get("networkMode") != "awsvpc" or not body.get("cpu")
        ):
            return aws_error(
                "ClientException",
                "Fargate requires networkMode awsvpc and task-level cpu and memory.",
            )
        return {"taskDefinition": self._register(body), "tags": []}

    def op_DescribeTaskDefinition(self, body: dict[str, Any]) -> Any:
        td = self._taskdef(str(body.get("taskDefinition", "")))
        if td is None:
            return aws_error("ClientException", "Unable to describe task definition.")
        return {"taskDefinition": td, "tags": []}

    def op_ListTaskDefinitions(self, body: dict[str, Any]) -> Any:
        prefix = body.get("familyPrefix", "")
        arns = [td["taskDefinitionArn"] for td in self.taskdefs if td["family"].startswith(prefix)]
        if body.get("sort") == "DESC":
            arns.reverse()
        size = int(body.get("maxResults") or 100)
        start = int(body.get("nextToken") or 0)
        out: dict[str, Any] = {"taskDefinitionArns": arns[start : start + size]}
        if start + size < len(arns):
            out["nextToken"] = str(start + size)
        return out

    def op_UpdateService(self, body: dict[str, Any]) -> Any:
        if (r := self._check_service(body)) is not None:
            return r
        if "deploymentConfiguration" in body:
            self.svc["deploymentConfiguration"].update(body["deploymentConfiguration"])
        if "desiredCount" in body:
            n = body["desiredCount"]
            if not isinstance(n, int) or n < 0:
                return aws_error("InvalidParameterException", "desiredCount must be >= 0")
            self.svc["desiredCount"] = n
            primary = self.svc["deployments"][0]
            if primary["rolloutState"] == "COMPLETED":
                for task in list(self.tasks.values())[n:]:
                    del self.tasks[task["taskArn"]]
                while len(self.tasks) < n:
                    self._task(primary["taskDefinition"], "RUNNING")
                primary["desiredCount"] = primary["runningCount"] = n
                self.svc["runningCount"] = n
        ref = body.get("taskDefinition")
        if ref:
            td = self._taskdef(ref)
            if td is None:
                return aws_error("ClientException", "TaskDefinition not found.")
            if td["taskDefinitionArn"] != self.svc["taskDefinition"] or body.get(
                "forceNewDeployment"
            ):
                self.svc["taskDefinition"] = td["taskDefinitionArn"]
                self._deployment(td["taskDefinitionArn"], self.svc["desiredCount"])
        return {"service": self._public()}

    def _public(self) -> dict[str, Any]:
        svc = json.loads(json.dumps(self.svc))
        for d in svc["deployments"]:
            d.pop("_moved", None)
        svc["events"] = svc["events"][:20]
        return dict(svc)

    def op_DescribeServices(self, body: dict[str, Any]) -> Any:
        if (r := self._check_service({"cluster": body.get("cluster", "default")})) is not None:
            return r
        self._advance()
        services, failures = [], []
        for name in body.get("services", []):
            if name in (self.service_name, self.svc["serviceArn"]):
                services.append(self._public())
            else:
                failures.append(
                    {
                        "arn": f"arn:aws:ecs:{self.region}:{ACCOUNT}:service/{self.cluster}/{name}",
                        "reason": "MISSING",
                    }
                )
        return {"services": services, "failures": failures}

    def op_ListTasks(self, body: dict[str, Any]) -> Any:
        if (r := self._check_service({"cluster": body.get("cluster", "default")})) is not None:
            return r
        return {"taskArns": list(self.tasks)}

    def op_DescribeTasks(self, body: dict[str, Any]) -> Any:
        found = [self.tasks[a] for a in body.get("tasks", []) if a in self.tasks]
        missing = [
            {"arn": a, "reason": "MISSING"} for a in body.get("tasks", []) if a not in self.tasks
        ]
        return {"tasks": found, "failures": missing}
