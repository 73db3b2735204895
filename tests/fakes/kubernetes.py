"""A Kubernetes API server, as much of apps/v1 Deployments as the deployer uses, with a
tiny Deployment controller.

* ``Authorization: Bearer <token>``; 401 otherwise. Every error is a ``Status`` object
  (``{"kind":"Status","status":"Failure","reason":"NotFound","code":404,…}``).
* ``GET/PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}``; PATCH honours the
  content type: ``application/strategic-merge-patch+json`` (containers merged by
  ``name``), ``application/merge-patch+json`` (RFC 7386: lists replaced),
  ``application/json-patch+json`` (RFC 6902); anything else is 415.
* ``PATCH …/deployments/{name}/scale`` → an ``autoscaling/v1`` Scale.
* core/v1 Secrets: ``GET/PUT /api/v1/namespaces/{ns}/secrets/{name}`` (404 when absent)
  and ``POST /api/v1/namespaces/{ns}/secrets`` (409 when there); base64 ``data`` checked.
* ``GET /apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=`` and
  ``GET /api/v1/namespaces/{ns}/pods?labelSelector=``.
* The controller: a template change bumps ``metadata.generation``; the ReplicaSet with
  an equal template (ignoring ``pod-template-hash``) is reused and given the next
  revision, else a new one is made; ``status.observedGeneration`` lags one poll;
  updated/available replicas grow one per poll (after ``step`` seconds each); old
  ReplicaSets are scaled to 0, never deleted (up to ``revisionHistoryLimit``). An image
  in ``bad_images`` never becomes ready and ends in ``Progressing=False`` /
  ``ProgressDeadlineExceeded``.
* 429 (API Priority and Fairness) is a ``Status`` with ``reason: TooManyRequests``,
  ``details.retryAfterSeconds`` and ``Retry-After: 1``.

TYPICAL (for the rollback benchmark): 0.02 s per API answer (in-cluster), 2 s per
replica to become ready (image cached on the node, readiness probe period 2 s) — a
3-replica undo takes about 8 s.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
import time
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._platform import FakePlatform, Steps, iso

REVISION = "deployment.kubernetes.io/revision"


def status_obj(code: int, reason: str, message: str, **details: Any) -> JSONResponse:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return JSONResponse(body, code)


def strategic_merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in ("containers", "initContainers") and isinstance(v, list):
                merged = [copy.deepcopy(c) for c in out.get(k, [])]
                for c in v:
                    tgt = next((m for m in merged if m.get("name") == c.get("name")), None)
                    if tgt is None:
                        merged.append(c)
                    else:
                        merged[merged.index(tgt)] = strategic_merge(tgt, c)
                out[k] = merged
            else:
                out[k] = strategic_merge(out.get(k), v)
        return out
    return copy.deepcopy(patch)


def merge_patch(base: Any, patch: Any) -> Any:
    if isinstance(patch, dict):
        out = dict(base) if isinstance(base, dict) else {}
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = merge_patch(out.get(k), v)
        return out
    return copy.deepcopy(patch)


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        key: Any = int(last) if isinstance(parent, list) else last
        if op["op"] in ("replace", "add"):
            if op["op"] == "replace" and isinstance(parent, dict) and key not in parent:
                raise KeyError(op["path"])
            parent[key] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del parent[key]
        else:
            raise ValueError(f"unsupported op {op['op']}")
    return doc


def _key(template: dict[str, Any]) -> str:
    t = copy.deepcopy(template)
    t.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    return json.dumps(t, sort_keys=True)


class FakeKubernetes(FakePlatform):
    name = "kubernetes"
    TYPICAL: ClassVar[dict[str, float]] = {"latency": 0.02, "step": 2.0}

    def __init__(
        self,
        name: str = "shop",
        namespace: str = "default",
        token: str = "k8s-token-1",
        replicas: int = 3,
        history: int = 2,
        latency: float = 0.0,
        step: float = 0.0,
    ) -> None:
        self.dep_name = name
        self.namespace = namespace
        self.token = token
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, name) → Secret
        self._secret_rv = 100
        self.bad_images: set[str] = set()
        self.replicasets: list[dict[str, Any]] = []
        self.rollout: Steps | None = None
        self.bad = False
        super().__init__(latency, step)
        self.dep: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": secrets.token_hex(16),
                "generation": 1,
                "resourceVersion": "1",
                "labels": {"app": name},
                "annotations": {},
                "creationTimestamp": iso(time.time() - 86400),
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "progressDeadlineSeconds": 600,
                "revisionHistoryLimit": 10,
                "strategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "registry.example.com/shop:1.0",
                                "ports": [{"containerPort": 8000}],
                            },
                            {"name": "fastmango-agent", "image": "ghcr.io/fastmango/agent:1"},
                        ]
                    },
                },
            },
            "status": {},
        }
        for i in range(history):
            if i:
                c = self.dep["spec"]["template"]["spec"]["containers"][0]
                c["image"] = f"registry.example.com/shop:1.{i}"
            self._on_template_change(instant=True)

    # -- controller ---------------------------------------------------------------------
    def _revision(self, rs: dict[str, Any]) -> int:
        return int(rs["metadata"]["annotations"].get(REVISION, 0))

    def _on_template_change(self, instant: bool = False) -> None:
        meta = self.dep["metadata"]
        meta["generation"] += 1
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        template = self.dep["spec"]["template"]
        top = max((self._revision(r) for r in self.replicasets), default=0)
        rs = next(
            (r for r in self.replicasets if _key(r["spec"]["template"]) == _key(template)), None
        )
        cause = meta["annotations"].get("kubernetes.io/change-cause")
        if rs is None:
            h = hashlib.sha256(_key(template).encode()).hexdigest()[:10]
            t = copy.deepcopy(template)
            t.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{self.dep_name}-{h}",
                    "namespace": self.namespace,
                    "uid": secrets.token_hex(16),
                    "labels": dict(t["metadata"]["labels"]),
                    "annotations": {},
                    "creationTimestamp": iso(time.time()),
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": self.dep_name,
                            "controller": True,
                            "uid": meta["uid"],
                        }
                    ],
                },
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": dict(t["metadata"]["labels"])},
                    "template": t,
                },
                "status": {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0},
            }
            self.replicasets.append(rs)
        if self._revision(rs) != top or top == 0:
            rs["metadata"]["annotations"][REVISION] = str(top + 1)
        if cause:
            rs["metadata"]["annotations"]["kubernetes.io/change-cause"] = cause
        meta["annotations"][REVISION] = rs["metadata"]["annotations"][REVISION]
        image = template["spec"]["containers"][0]["image"]
        self.bad = image in self.bad_images
        n = self.dep["spec"]["replicas"]
        steps = (
            (["unobserved"] + [f"up{i}" for i in range(1, n + 1)] + ["done"])
            if not self.bad
            else ["unobserved", "stuck", "stuck2", "deadline"]
        )
        self.rollout = Steps(steps, self.step, self.clock)
        if instant:
            while not self.rollout.done:
                self.rollout.i += 1
        self._sync()

    def current_rs(self) -> dict[str, Any]:
        rev = self.dep["metadata"]["annotations"][REVISION]
        return next(r for r in self.replicasets if r["metadata"]["annotations"][REVISION] == rev)

    def _sync(self) -> None:
        """Derive the status from the rollout's step."""
        n = self.dep["spec"]["replicas"]
        gen = self.dep["metadata"]["generation"]
        stage = self.rollout.now if self.rollout else "done"
        new = self.current_rs()
        old = [r for r in self.replicasets if r is not new]
        conds = [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]
        st: dict[str, Any] = {
            "observedGeneration": gen,
            "replicas": n,
            "updatedReplicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
        }
        if stage == "unobserved":
            st = {**self.dep.get("status", {}), "observedGeneration": gen - 1}
            conds = st.get("conditions", conds)
        elif stage.startswith("up"):
            i = int(stage[2:])
            st.update(updatedReplicas=i, replicas=n + 1, availableReplicas=n, readyReplicas=n)
            new["spec"]["replicas"] = i
            conds.append(
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "ReplicaSetUpdated",
                    "message": f'ReplicaSet "{new["metadata"]["name"]}" is progressing.',
                }
            )
        elif stage in ("stuck", "stuck2", "deadline"):
            st.update(
                updatedReplicas=1,
                replicas=n + 1,
                availableReplicas=n,
                readyReplicas=n,
                unavailableReplicas=1,
            )
            new["spec"]["replicas"] = 1
            if stage == "deadline":
                conds.append(
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": f'ReplicaSet "{new["metadata"]["name"]}" has timed out '
                        "progressing.",
                    }
                )
            else:
                conds.append(
                    {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
                )
        else:  # done
            new["spec"]["replicas"] = n
            for r in old:
                r["spec"]["replicas"] = 0
            conds.append(
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{new["metadata"]["name"]}" has successfully '
                    "progressed.",
                }
            )
        if stage != "unobserved":
            st["conditions"] = conds
        for r in self.replicasets:
            k = r["spec"]["replicas"]
            ok = 0 if (r is new and self.bad) else k
            r["status"] = {
                "replicas": k,
                "readyReplicas": ok,
                "availableReplicas": ok,
                "observedGeneration": 1,
            }
        self.dep["status"] = st

    def poll(self) -> None:
        if self.rollout is not None and not self.rollout.done:
            self.rollout.poll()
        self._sync()

    # -- HTTP ---------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        d = "/apis/apps/v1/namespaces/{ns}/deployments/{name}"
        return [
            Route(d, self.get_dep, methods=["GET"]),
            Route(d, self.patch_dep, methods=["PATCH"]),
            Route(d + "/scale", self.patch_scale, methods=["PATCH"]),
            Route("/apis/apps/v1/namespaces/{ns}/replicasets", self.list_rs, methods=["GET"]),
            Route("/api/v1/namespaces/{ns}/pods", self.list_pods, methods=["GET"]),
            Route("/api/v1/namespaces/{ns}/secrets", self.create_secret, methods=["POST"]),
            Route("/api/v1/namespaces/{ns}/secrets/{name}", self.get_secret, methods=["GET"]),
            Route("/api/v1/namespaces/{ns}/secrets/{name}", self.put_secret, methods=["PUT"]),
        ]

    def authorized(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return status_obj(401, "Unauthorized", "Unauthorized")
        return None

    def throttle_body(self) -> Any:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Too many requests, please try again later.",
            "reason": "TooManyRequests",
            "details": {"retryAfterSeconds": 1},
            "code": 429,
        }

    # -- core/v1 Secrets: replace (PUT, 404 when absent) and create (POST, 409 when there)
    def _secret_body(self, request: Request, body: Any) -> Response | dict[str, Any]:
        if not isinstance(body, dict) or body.get("kind") != "Secret":
            return status_obj(400, "BadRequest", "the body must be a v1 Secret")
        data = body.get("data") or {}
        try:
            for v in data.values():
                base64.b64decode(v, validate=True)
        except (ValueError, TypeError):
            return status_obj(400, "BadRequest", "Secret data values must be base64")
        ns = request.path_params["ns"]
        meta = body.setdefault("metadata", {})
        if meta.get("namespace", ns) != ns:
            return status_obj(400, "BadRequest", "the namespace of the object does not match")
        meta["namespace"] = ns
        self._secret_rv += 1
        meta["resourceVersion"] = str(self._secret_rv)
        return body

    async def create_secret(self, request: Request) -> Response:
        body = self._secret_body(request, json.loads(await request.body()))
        if isinstance(body, Response):
            return body
        key = (request.path_params["ns"], body["metadata"].get("name", ""))
        if key in self.secrets:
            return status_obj(409, "AlreadyExists", f'secrets "{key[1]}" already exists')
        self.secrets[key] = body
        return JSONResponse(body, 201)

    async def get_secret(self, request: Request) -> Response:
        key = (request.path_params["ns"], request.path_params["name"])
        if key not in self.secrets:
            return status_obj(404, "NotFound", f'secrets "{key[1]}" not found', kind="secrets")
        return JSONResponse(self.secrets[key])

    async def put_secret(self, request: Request) -> Response:
        key = (request.path_params["ns"], request.path_params["name"])
        if key not in self.secrets:
            return status_obj(404, "NotFound", f'secrets "{key[1]}" not found', kind="secrets")
        body = self._secret_body(request, json.loads(await request.body()))
        if isinstance(body, Response):
            return body
        self.secrets[key] = body
        return JSONResponse(body, 200)

    def secret_values(self, name: str) -> dict[str, str]:
        """A Secret's data, decoded (for tests)."""
        data = self.secrets[(self.namespace, name)].get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def _find(self, request: Request) -> Response | None:
        p = request.path_params
        if p["ns"] != self.namespace or p["name"] != self.dep_name:
            return status_obj(
                404,
                "NotFound",
                f'deployments.apps "{p["name"]}" not found',
                name=p["name"],
                group="apps",
                kind="deployments",
            )
        return None

    async def get_dep(self, request: Request) -> Response:
        if (r := self._find(request)) is not None:
            return r
        self.poll()
        return JSONResponse(self.dep)

    async def patch_dep(self, request: Request) -> Response:
        if (r := self._find(request)) is not None:
            return r
        ctype = request.headers.get("content-type", "").split(";")[0]
        try:
            body = json.loads(await request.body())
            if ctype == "application/strategic-merge-patch+json":
                new = strategic_merge(self.dep, body)
            elif ctype == "application/merge-patch+json":
                new = merge_patch(self.dep, body)
            elif ctype == "application/json-patch+json":
                new = json_patch(self.dep, body)
            else:
                return status_obj(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - "
                    "accepted media types include: application/json-patch+json, "
                    "application/merge-patch+json, "
                    "application/apply-patch+yaml, "
                    "application/strategic-merge-patch+json",
                )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return status_obj(422, "Invalid", f"the patch is invalid: {exc}")
        changed = _key(new["spec"]["template"]) != _key(self.dep["spec"]["template"])
        self.dep = new
        if changed:
            self._on_template_change()
        return JSONResponse(self.dep)

    async def patch_scale(self, request: Request) -> Response:
        if (r := self._find(request)) is not None:
            return r
        body = json.loads(await request.body())
        n = int(body["spec"]["replicas"])
        self.dep["spec"]["replicas"] = n
        self.dep["metadata"]["generation"] += 1
        self.rollout = Steps(["unobserved", "done"], self.step, self.clock)
        self._sync()
        return JSONResponse(
            {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {"name": self.dep_name, "namespace": self.namespace},
                "spec": {"replicas": n},
                "status": {
                    "replicas": self.dep["status"].get("replicas", n),
                    "selector": f"app={self.dep_name}",
                },
            }
        )

    def _selector_ok(self, labels: dict[str, str], selector: str) -> bool:
        for part in filter(None, selector.split(",")):
            k, _, v = part.partition("=")
            if labels.get(k) != v:
                return False
        return True

    async def list_rs(self, request: Request) -> Response:
        sel = request.query_params.get("labelSelector", "")
        items = [r for r in self.replicasets if self._selector_ok(r["metadata"]["labels"], sel)]
        return JSONResponse(
            {
                "kind": "ReplicaSetList",
                "apiVersion": "apps/v1",
                "metadata": {"resourceVersion": "9"},
                "items": items,
            }
        )

    async def list_pods(self, request: Request) -> Response:
        sel = request.query_params.get("labelSelector", "")
        items = []
        for rs in self.replicasets:
            if not self._selector_ok(rs["metadata"]["labels"], sel):
                continue
            bad = rs is self.current_rs() and self.bad
            for i in range(rs["spec"]["replicas"]):
                items.append(
                    {
                        "metadata": {
                            "name": f"{rs['metadata']['name']}-{i:05d}",
                            "labels": rs["spec"]["template"]["metadata"]["labels"],
                        },
                        "spec": rs["spec"]["template"]["spec"],
                        "status": {
                            "phase": "Running",
                            "startTime": iso(time.time()),
                            "containerStatuses": [
                                {"name": "web", "ready": not bad, "restartCount": 3 if bad else 0}
                            ],
                        },
                    }
                )
        return JSONResponse({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    def kubeconfig(self) -> str:
        """A kubeconfig (YAML) pointing at this fake."""
        return (
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
            f"clusters:\n- name: fake\n  cluster:\n    server: {self.url}\n"
            f"contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: me\n"
            f"    namespace: {self.namespace}\n"
            f"users:\n- name: me\n  user:\n    token: {self.token}\n"
        )
