"""Kubernetes apps/v1 Deployments over the API server's REST API (no kubectl needed).

``Target.app`` is the Deployment's name. Credentials come from a kubeconfig file
(``Target.kubeconfig``; its ``current-context`` or ``Target.context``: bearer token or
client certificate, CA) or, without one, from the pod's service account (token re-read
for every request: projected tokens rotate).

* deploy: strategic-merge ``PATCH`` of the container's image plus
  ``kubernetes.io/change-cause``; the rollout is followed as ``kubectl rollout status``
  does (observedGeneration, updated/available replicas, ``ProgressDeadlineExceeded``).
* releases: the Deployment's ReplicaSets (owner uid), one per
  ``deployment.kubernetes.io/revision``: v<revision>.
* rollback: what ``kubectl rollout undo --to-revision`` does: a JSON patch of
  ``/spec/template`` (without ``pod-template-hash``) and the annotations from the old
  ReplicaSet, which the controller scales back up (it was kept at 0 replicas, not deleted).
* secrets: a ``Secret`` ``<deployment>-fastmango`` (type Opaque, base64 ``data``), replaced
  with ``PUT /api/v1/namespaces/{ns}/secrets/{name}`` or created with ``POST`` when it is
  not there; the deploy's patch adds ``envFrom: [{secretRef: {name}}]`` to the container
  and the Secret's ``resourceVersion`` as a pod template annotation.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fastmango.deployer.base import Adapter, parse_time
from fastmango.deployer.errors import DeployError, PlatformError
from fastmango.deployer.http import PlatformClient, RetryPolicy, TokenAuth, make_client
from fastmango.deployer.platform import Instance, Release, Rollout, Status, Target

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
HASH_LABEL = "pod-template-hash"
#: the pod template annotation that rolls the pods when the Secret changes
SECRETS_VERSION = "fastmango.dev/secrets-version"
#: annotations kubectl keeps from the Deployment on undo (all others come from the RS)
KEEP_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
)


def _load_yaml(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if text.lstrip().startswith("{"):  # a JSON kubeconfig: no YAML parser needed
        return dict(json.loads(text))
    try:
        import yaml
    except ImportError:  # a JSON kubeconfig still works
        return dict(json.loads(text))
    # libyaml's loader when PyYAML was built with it (several times faster), same result
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return dict(yaml.load(text, Loader=loader) or {})


def _data_file(data: str, suffix: str, temp: list[str]) -> str:
    fd, name = tempfile.mkstemp(prefix="fastmango-kube-", suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(data))
    temp.append(name)
    return name


def credentials(target: Target, sa_dir: Path | None = None) -> dict[str, Any]:
    """server, auth, verify, cert and namespace from a kubeconfig or the service account."""
    sa_dir = sa_dir or SA_DIR
    temp: list[str] = []
    if not target.kubeconfig:
        if not (sa_dir / "token").exists():
            raise DeployError(
                "kubernetes: no kubeconfig set (environments.<env>.kubeconfig) and no "
                f"service account token at {sa_dir / 'token'}"
            )
        host = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        token_file = sa_dir / "token"
        ns_file = sa_dir / "namespace"
        return {
            "server": target.api_url or f"https://{host}:{port}",
            "auth": TokenAuth(lambda: token_file.read_text().strip()),
            "verify": str(sa_dir / "ca.crt") if (sa_dir / "ca.crt").exists() else True,
            "cert": None,
            "namespace": target.namespace
            or (ns_file.read_text().strip() if ns_file.exists() else "default"),
            "temp": temp,
        }
    path = Path(target.kubeconfig).expanduser()
    try:
        cfg = _load_yaml(path)
    except (OSError, ValueError) as exc:
        raise DeployError(f"kubernetes: cannot read kubeconfig {path}: {exc}") from None
    name = target.context or cfg.get("current-context", "")
    ctx = next((c["context"] for c in cfg.get("contexts", []) if c.get("name") == name), None)
    if ctx is None:
        raise DeployError(f"kubernetes: context {name!r} not found in {path}")
    cluster = next(c["cluster"] for c in cfg.get("clusters", []) if c["name"] == ctx["cluster"])
    user: dict[str, Any] = next(
        (u["user"] for u in cfg.get("users", []) if u["name"] == ctx.get("user")), {}
    )
    verify: Any = True
    if cluster.get("insecure-skip-tls-verify"):
        verify = False
    elif cluster.get("certificate-authority-data"):
        verify = _data_file(cluster["certificate-authority-data"], ".crt", temp)
    elif cluster.get("certificate-authority"):
        verify = cluster["certificate-authority"]
    cert = None
    if user.get("client-certificate-data") and user.get("client-key-data"):
        cert = (
            _data_file(user["client-certificate-data"], ".crt", temp),
            _data_file(user["client-key-data"], ".key", temp),
        )
    elif user.get("client-certificate") and user.get("client-key"):
        cert = (user["client-certificate"], user["client-key"])
    auth = None
    if user.get("token"):
        token = str(user["token"])
        auth = TokenAuth(lambda: token)
    elif user.get("tokenFile"):
        tf = Path(user["tokenFile"])
        auth = TokenAuth(lambda: tf.read_text().strip())
    elif target.token:
        token = target.token
        auth = TokenAuth(lambda: token)
    return {
        "server": target.api_url or cluster["server"],
        "auth": auth,
        "verify": verify,
        "cert": cert,
        "namespace": target.namespace or ctx.get("namespace") or "default",
        "temp": temp,
    }


def connect(target: Target, **kw: Any) -> KubernetesPlatform:
    creds = credentials(target)
    client = make_client(
        "kubernetes",
        creds["server"],
        auth=creds["auth"],
        verify=creds["verify"],
        cert=creds["cert"],
        retry=kw.pop("retry", RetryPolicy()),
        **kw,
    )
    return KubernetesPlatform(target, client, creds["namespace"], creds["temp"])


def _template_key(template: dict[str, Any]) -> str:
    t = copy.deepcopy(template)
    (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return json.dumps(t, sort_keys=True)


def rollout_state(dep: dict[str, Any]) -> tuple[str, str, int, int]:
    """(state, message, ready, desired) as ``kubectl rollout status`` decides it."""
    spec, st = dep.get("spec", {}), dep.get("status", {})
    desired = int(spec.get("replicas", 1))
    updated = int(st.get("updatedReplicas", 0))
    available = int(st.get("availableReplicas", 0))
    if dep["metadata"].get("generation", 0) > st.get("observedGeneration", 0):
        return "in_progress", "waiting for the deployment spec update to be observed", 0, desired
    for cond in st.get("conditions", []):
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            why = f"exceeded its progress deadline: {cond.get('message', '')}"
            return "failed", why, 0, desired
    if updated < desired:
        return (
            "in_progress",
            f"{updated} out of {desired} new replicas have been updated",
            (min(updated, available)),
            desired,
        )
    if int(st.get("replicas", 0)) > updated:
        old = int(st["replicas"]) - updated
        return "in_progress", f"{old} old replicas are pending termination", available, desired
    if available < updated:
        return (
            "in_progress",
            f"{available} of {updated} updated replicas are available",
            (available),
            desired,
        )
    return "live", "successfully rolled out", available, desired


class KubernetesPlatform(Adapter):
    name = "kubernetes"

    def __init__(
        self, target: Target, client: PlatformClient, namespace: str, temp: list[str] | None = None
    ) -> None:
        super().__init__(target, client)
        self.namespace = namespace
        self._temp = temp or []
        self._undo_to: dict[str, str] = {}
        self._secret: tuple[str, str] | None = None  # (name, resourceVersion) once set
        self._dep = f"/apis/apps/v1/namespaces/{namespace}/deployments/{target.app}"

    async def aclose(self) -> None:
        await super().aclose()
        for name in self._temp:
            os.unlink(name)

    async def _deployment(self) -> dict[str, Any]:
        return dict(self.check(await self.client.get(self._dep)))

    def _container(self, template: dict[str, Any]) -> dict[str, Any]:
        containers = template["spec"]["containers"]
        if self.target.container:
            for c in containers:
                if c["name"] == self.target.container:
                    return dict(c)
            raise PlatformError(
                "kubernetes",
                f"no container {self.target.container!r} in deployment {self.target.app}",
            )
        return dict(containers[0])

    async def _replicasets(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        labels = dep["spec"]["selector"].get("matchLabels", {})
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        body = self.check(
            await self.client.get(
                f"/apis/apps/v1/namespaces/{self.namespace}/replicasets",
                params={"labelSelector": selector},
            )
        )
        uid = dep["metadata"]["uid"]
        owned = [
            rs
            for rs in body.get("items", [])
            if any(
                o.get("uid") == uid and o.get("controller")
                for o in rs["metadata"].get("ownerReferences", [])
            )
        ]
        return sorted(owned, key=lambda rs: -int(rs["metadata"]["annotations"].get(REVISION, 0)))

    def _release(self, rs: dict[str, Any], current: int, dep_state: str) -> Release:
        rev = int(rs["metadata"]["annotations"].get(REVISION, 0))
        state: Any = "superseded"
        if rev == current:
            state = {"live": "live", "failed": "failed"}.get(dep_state, "in_progress")
        return Release(
            id=rs["metadata"]["name"],
            version=f"v{rev}",
            image=self._container(rs["spec"]["template"]).get("image"),
            state=state,
            created_at=parse_time(rs["metadata"].get("creationTimestamp")),
            message=rs["metadata"]["annotations"].get(CHANGE_CAUSE, ""),
        )

    async def releases(self, limit: int = 20) -> list[Release]:
        dep = await self._deployment()
        current = int(dep["metadata"].get("annotations", {}).get(REVISION, 0))
        state = rollout_state(dep)[0]
        return [self._release(rs, current, state) for rs in (await self._replicasets(dep))[:limit]]

    async def set_secrets(self, values: Mapping[str, str]) -> None:
        name = f"{self.target.app}-fastmango"
        base = f"/api/v1/namespaces/{self.namespace}/secrets"
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "fastmango"},
            },
            "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }
        resp = await self.client.put(f"{base}/{name}", json=body)
        if resp.status_code == 404:
            resp = await self.client.post(base, json=body)
        got = self.check(resp, ok=(200, 201))
        self._secret = (name, str(got["metadata"].get("resourceVersion", "")))

    async def deploy(self, image: str, *, regions: Sequence[str] = ()) -> Release:
        if not image:
            raise DeployError("kubernetes deploys an image: pass --image")
        dep = await self._deployment()
        rss = await self._replicasets(dep)
        rev = int(dep["metadata"].get("annotations", {}).get(REVISION, 0))
        before = next(
            (rs for rs in rss if int(rs["metadata"]["annotations"].get(REVISION, 0)) == rev), None
        )
        container = self._container(dep["spec"]["template"])
        change: dict[str, Any] = {"name": container["name"], "image": image}
        template: dict[str, Any] = {"spec": {"containers": [change]}}
        if self._secret is not None:
            secret, version = self._secret
            env_from = list(container.get("envFrom") or [])
            if not any((e.get("secretRef") or {}).get("name") == secret for e in env_from):
                env_from.append({"secretRef": {"name": secret}})
            change["envFrom"] = env_from  # a list without merge key: sent whole
            template["metadata"] = {"annotations": {SECRETS_VERSION: version}}
        patch = {
            "metadata": {"annotations": {CHANGE_CAUSE: f"fastmango deploy {image}"}},
            "spec": {"template": template},
        }
        dep = self.check(
            await self.client.patch(
                self._dep,
                content=json.dumps(patch),
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            )
        )
        gen = dep["metadata"]["generation"]
        rel = Release(f"generation-{gen}", "pending", image, "in_progress", 0.0, "deploy")
        if before is not None:  # undone if the rollout fails (Kubernetes would stay stuck)
            self._undo_to[rel.id] = before["metadata"]["name"]
        return rel

    async def rollback(self, to: Release) -> Release:
        dep = await self._deployment()
        if dep["spec"].get("paused"):
            raise DeployError(
                f"kubernetes: deployment {self.target.app} is paused; resume it "
                "first (kubectl rollout resume)"
            )
        rss = await self._replicasets(dep)
        rs = next((r for r in rss if r["metadata"]["name"] == to.id), None)
        if rs is None:
            raise PlatformError("kubernetes", f"replicaset {to.id} ({to.version}) is gone")
        template = copy.deepcopy(rs["spec"]["template"])
        template.get("metadata", {}).get("labels", {}).pop(HASH_LABEL, None)
        if _template_key(template) == _template_key(dep["spec"]["template"]):
            gen = dep["metadata"]["generation"]
            return Release(
                f"generation-{gen}",
                to.version,
                to.image,
                "in_progress",
                0.0,
                "skipped: already at that template",
            )
        old = dep["metadata"].get("annotations", {})
        annotations = {k: v for k, v in old.items() if k in KEEP_ANNOTATIONS}
        annotations.update(
            {
                k: v
                for k, v in rs["metadata"].get("annotations", {}).items()
                if k not in KEEP_ANNOTATIONS
            }
        )
        ops = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]
        dep = self.check(
            await self.client.patch(
                self._dep,
                content=json.dumps(ops),
                headers={"Content-Type": "application/json-patch+json"},
            )
        )
        gen = dep["metadata"]["generation"]
        return Release(
            f"generation-{gen}",
            "pending",
            to.image,
            "in_progress",
            0.0,
            f"rollback to {to.version}",
        )

    async def watch(self, release: Release, wait: float) -> Rollout:
        dep = await self._deployment()
        state, message, ready, desired = rollout_state(dep)
        rel = release
        if state != "in_progress" or rel.version == "pending":
            rev = int(dep["metadata"].get("annotations", {}).get(REVISION, 0))
            gen = int(release.id.rpartition("-")[2]) if release.id.startswith("generation") else 0
            if dep["status"].get("observedGeneration", 0) >= gen and rev:
                rss = await self._replicasets(dep)
                rs = next(
                    (r for r in rss if int(r["metadata"]["annotations"].get(REVISION, 0)) == rev),
                    None,
                )
                if rs is not None:
                    rel = self._release(rs, rev, state)
        if state == "failed" and release.id in self._undo_to:
            rs_name = self._undo_to.pop(release.id)
            prev = Release(rs_name, "previous", None, "superseded", 0.0)
            await self.rollback(prev)
            message += f"; undone to the previous template ({rs_name}) as kubectl rollout undo"
        return Rollout(rel, state, ready, desired, message)  # type: ignore[arg-type]

    async def status(self) -> Status:
        dep = await self._deployment()
        rels = await self.releases(limit=1)
        _, message, ready, desired = rollout_state(dep)
        pods = await self.instances()
        return Status(rels[0] if rels else None, desired, ready, tuple(pods), message)

    async def scale(self, replicas: int) -> None:
        self.check(
            await self.client.patch(
                f"{self._dep}/scale",
                content=json.dumps({"spec": {"replicas": replicas}}),
                headers={"Content-Type": "application/merge-patch+json"},
            )
        )

    async def instances(self) -> list[Instance]:
        dep = await self._deployment()
        labels = dep["spec"]["selector"].get("matchLabels", {})
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        body = self.check(
            await self.client.get(
                f"/api/v1/namespaces/{self.namespace}/pods", params={"labelSelector": selector}
            )
        )
        out = []
        for pod in body.get("items", []):
            st = pod.get("status", {})
            ready = bool(st.get("containerStatuses")) and all(
                c.get("ready") for c in st["containerStatuses"]
            )
            image = self._container(pod).get("image") if pod.get("spec") else None
            out.append(
                Instance(
                    id=pod["metadata"]["name"],
                    state=st.get("phase", "Unknown"),
                    ready=ready,
                    version=image,
                    started_at=parse_time(st.get("startTime")) or None,
                )
            )
        return out
