"""Kubernetes manifests: the app's Deployment with the agent as a sidecar, its Service,
a PodDisruptionBudget, and an autoscaler (an HPA on CPU, or a KEDA ScaledObject whose
``metrics-api`` trigger reads the agent's forecast).

The agent runs as a *native sidecar* (an init container with ``restartPolicy: Always``,
Kubernetes ≥ 1.29): it starts before the app, is ready before the app gets traffic and
stops after it. It needs a token to listen beyond loopback; the manifests read it from the
Secret ``<app>-fastmango`` (key ``token``), which they do not contain::

    kubectl create secret generic <app>-fastmango --from-literal=token="$(openssl rand -hex 32)"

KEDA reads ``GET http://<app>.<namespace>.svc:9871/api/keda`` with that token (a
TriggerAuthentication) and takes the value at the GJSON path :data:`KEDA_VALUE_LOCATION`
(``forecast.replicas``: the replicas the agent's forecast asks for). With
``metricType: AverageValue`` and ``targetValue: "1"`` the HPA that KEDA drives sets the
replica count to that number, clamped to min/max.

Checked with ``kubernetes-validate --strict`` and a JSON schema for the KEDA kinds
(tests/artifacts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastmango.deployer.artifacts.dockerfile import app_command, metrics_urls
from fastmango.deployer.artifacts.project import AppSpec
from fastmango.deployer.artifacts.yamltext import dump_all
from fastmango.deployer.placement import gpu_offer

#: the agent's endpoint for KEDA's metrics-api scaler (served by the scaling part)
KEDA_PATH = "/api/keda"
#: GJSON path of the forecast replica count in that answer: {"forecast": {"replicas": N}}
KEDA_VALUE_LOCATION = "forecast.replicas"
GPU_LABEL = "nvidia.com/gpu.product"


@dataclass(frozen=True)
class K8sOptions:
    image: str
    namespace: str = ""
    replicas: int = 2  # the minimum when autoscaled
    max_replicas: int = 10
    autoscaler: Literal["hpa", "keda", "none"] = "hpa"
    cpu_target: int = 70  # HPA: average CPU utilisation, percent of requests
    cpu: str = "250m"
    memory: str = "256Mi"
    memory_limit: str = "512Mi"
    gpu: str | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1 or self.max_replicas < self.replicas:
            raise ValueError(
                f"replicas: need 1 ≤ min ({self.replicas}) ≤ max ({self.max_replicas})"
            )


def _meta(spec: AppSpec, opts: K8sOptions, name: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name or spec.name}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    meta["labels"] = _labels(spec)
    return meta


def _labels(spec: AppSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/managed-by": "fastmango"}


def _probe(spec: AppSpec, **extra: Any) -> dict[str, Any]:
    if spec.health_path:
        return {"httpGet": {"path": spec.health_path, "port": "http"}, **extra}
    return {"tcpSocket": {"port": "http"}, **extra}


def secret_name(spec: AppSpec) -> str:
    return f"{spec.name}-fastmango"


def deployment(spec: AppSpec, opts: K8sOptions) -> dict[str, Any]:
    restricted = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    resources: dict[str, Any] = {
        "requests": {"cpu": opts.cpu, "memory": opts.memory},
        "limits": {"memory": opts.memory_limit},
    }
    offer = gpu_offer("kubernetes", opts.gpu)
    if offer is not None:
        resources["limits"]["nvidia.com/gpu"] = 1
    app = {
        "name": "app",
        "image": opts.image,
        "args": app_command(spec),
        "ports": [{"name": "http", "containerPort": spec.port}],
        "env": [{"name": "PORT", "value": str(spec.port)}],
        "readinessProbe": _probe(spec, periodSeconds=5, failureThreshold=3),
        "livenessProbe": _probe(spec, periodSeconds=15, failureThreshold=4, initialDelaySeconds=10),
        "resources": resources,
        "securityContext": restricted,
    }
    agent = {
        "name": "fastmango-agent",
        "image": opts.image,
        "restartPolicy": "Always",  # a native sidecar
        "args": ["fastmango", "agent", "--host", "0.0.0.0", "--port", str(spec.agent_port)],
        "ports": [{"name": "agent", "containerPort": spec.agent_port}],
        "env": [
            {
                "name": "FASTMANGO_SERVER__TOKEN",
                "valueFrom": {"secretKeyRef": {"name": secret_name(spec), "key": "token"}},
            },
            {"name": "FASTMANGO_STATE_DIR", "value": "/var/lib/fastmango"},
            {"name": "FASTMANGO_COLLECTORS__APP__METRICS_URLS", "value": metrics_urls(spec)},
        ],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "agent"}, "periodSeconds": 10},
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "128Mi"},
        },
        "volumeMounts": [{"name": "fastmango-state", "mountPath": "/var/lib/fastmango"}],
        "securityContext": restricted,
    }
    pod: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 30,
        "initContainers": [agent],
        "containers": [app],
        "volumes": [{"name": "fastmango-state", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    if offer is not None:
        pod["nodeSelector"] = {GPU_LABEL: offer.kind}
        pod["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec, opts),
        "spec": {
            # an autoscaler owns the count: leaving it out keeps `kubectl apply` from
            # resetting it on every deploy
            **({"replicas": opts.replicas} if opts.autoscaler == "none" else {}),
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
            },
            "template": {
                "metadata": {
                    "labels": _labels(spec),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(spec.agent_port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod,
            },
        },
    }


def service(spec: AppSpec, opts: K8sOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, opts),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": spec.name},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {
                    "name": "agent",
                    "port": spec.agent_port,
                    "targetPort": "agent",
                    "protocol": "TCP",
                },
            ],
        },
    }


def pdb(spec: AppSpec, opts: K8sOptions) -> dict[str, Any]:
    # with ≥ 2 replicas keep all but one up during drains; with 1 allow the drain
    budget = {"minAvailable": opts.replicas - 1} if opts.replicas >= 2 else {"maxUnavailable": 1}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(spec, opts),
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": spec.name}}, **budget},
    }


def hpa(spec: AppSpec, opts: K8sOptions) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(spec, opts),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": opts.replicas,
            "maxReplicas": opts.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": opts.cpu_target},
                    },
                }
            ],
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
                },
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30}],
                },
            },
        },
    }


def agent_url(spec: AppSpec, opts: K8sOptions) -> str:
    ns = opts.namespace or "default"
    return f"http://{spec.name}.{ns}.svc.cluster.local:{spec.agent_port}{KEDA_PATH}"


def keda(spec: AppSpec, opts: K8sOptions) -> list[dict[str, Any]]:
    auth = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": _meta(spec, opts, secret_name(spec)),
        "spec": {
            "secretTargetRef": [{"parameter": "token", "name": secret_name(spec), "key": "token"}]
        },
    }
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(spec, opts),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicaCount": opts.replicas,
            "maxReplicaCount": opts.max_replicas,
            "pollingInterval": 30,
            "cooldownPeriod": 300,
            # the agent unreachable three polls running: hold at the minimum
            "fallback": {"failureThreshold": 3, "replicas": opts.replicas},
            "triggers": [
                {
                    "type": "metrics-api",
                    "name": "fastmango-forecast",
                    "metricType": "AverageValue",
                    "metadata": {
                        "url": agent_url(spec, opts),
                        "format": "json",
                        "valueLocation": KEDA_VALUE_LOCATION,
                        "targetValue": "1",
                        "authMode": "bearer",
                    },
                    "authenticationRef": {"name": secret_name(spec)},
                }
            ],
        },
    }
    return [auth, scaled]


def manifests(spec: AppSpec, opts: K8sOptions) -> list[dict[str, Any]]:
    docs = [deployment(spec, opts), service(spec, opts), pdb(spec, opts)]
    if opts.autoscaler == "hpa":
        docs.append(hpa(spec, opts))
    elif opts.autoscaler == "keda":
        docs.extend(keda(spec, opts))
    return docs


def render(spec: AppSpec, opts: K8sOptions) -> str:
    head = (
        f"Generated by fastmango {spec.fastmango_version} (fastmango generate k8s).\n"
        f"App {spec.name} ({spec.entry}) with the fastmango agent as a sidecar.\n"
        "Before applying, create the agent's token (not stored here):\n"
        f"  kubectl create secret generic {secret_name(spec)}"
        ' --from-literal=token="$(openssl rand -hex 32)"'
        + (f" -n {opts.namespace}" if opts.namespace else "")
    )
    if opts.autoscaler == "keda":
        head += (
            f"\nKEDA reads GET {KEDA_PATH} from the agent; value at {KEDA_VALUE_LOCATION}"
            " (target 1 per replica)."
        )
    return dump_all(manifests(spec, opts), comment=head)
