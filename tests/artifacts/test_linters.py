"""Every generated artifact passes the real linter for its kind.

hadolint (Dockerfile), kubernetes-validate --strict (Deployment, Service, PDB, HPA) plus a
JSON schema for KEDA's kinds, check-jsonschema's vendored GitHub-workflow schemas and
actionlint, and check-jsonschema with schemas of the fly.toml / render.yaml keys we write.
Each linter also gets a broken artifact, to show it is really looking.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fastmango.deployer.artifacts import dockerfile, flytoml, github_actions, k8s, renderyaml
from fastmango.deployer.artifacts.project import AppSpec, detect
from tests.artifacts import projects

BIN = Path(sys.executable).parent
SCHEMAS = Path(__file__).parent / "schemas"


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} missing: pip install -e '.[test]' (it is in the test extra)"
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AppSpec]:
    root = tmp_path_factory.mktemp("projects")
    return {
        "pyproject": detect(projects.pyproject_src(root / "p")),
        "requirements": detect(projects.requirements_flat(root / "r")),
        "django": detect(projects.django(root / "d")),
    }


# --- Dockerfile -------------------------------------------------------------------------


def hadolint(path: Path) -> tuple[int, list[dict[str, Any]]]:
    out = run(
        tool("hadolint"), "--no-color", "-f", "json", "--failure-threshold", "warning", str(path)
    )
    return out.returncode, json.loads(out.stdout or "[]")


@pytest.mark.parametrize("kind", ["pyproject", "requirements", "django"])
def test_dockerfile_passes_hadolint(kind: str, specs: dict[str, AppSpec], tmp_path: Path) -> None:
    spec = specs[kind]
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile.dockerfile(spec))
    rc, findings = hadolint(path)
    assert rc == 0 and findings == [], findings  # not even info-level findings
    text = path.read_text()
    # multi-stage, slim base, non-root numeric user, deps before source, health check, agent
    assert text.count("FROM python:") == 2 and f"python:{spec.python}-slim AS runtime" in text
    assert "USER 10001" in text and "HEALTHCHECK" in text
    assert "fastmango.deployer.artifacts.supervise" in text
    if kind != "django":
        first_copy_all = text.index("COPY . .")
        assert text.index("pip install --no-cache-dir -r") < first_copy_all


def test_hadolint_is_really_looking(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nCMD python app.py\n")
    rc, findings = hadolint(bad)
    assert rc == 1 and {"DL3007", "DL3013", "DL3025"} <= {f["code"] for f in findings}


def test_dockerignore_keeps_secrets_and_venvs_out(specs: dict[str, AppSpec]) -> None:
    lines = dockerfile.dockerignore(specs["pyproject"]).splitlines()
    for entry in (".git", ".venv", ".env", "*.pem", "__pycache__", ".fastmango"):
        assert entry in lines


# --- Kubernetes -------------------------------------------------------------------------

K8S_CASES = {
    "hpa": k8s.K8sOptions(image="ghcr.io/acme/shop:1.2.3", namespace="shop"),
    "keda": k8s.K8sOptions(image="ghcr.io/acme/shop:1.2.3", autoscaler="keda", replicas=1),
    "none-gpu": k8s.K8sOptions(image="shop:dev", autoscaler="none", replicas=3, gpu="t4"),
}


@pytest.mark.parametrize("case", list(K8S_CASES))
def test_k8s_passes_kubernetes_validate_strict(
    case: str, specs: dict[str, AppSpec], tmp_path: Path
) -> None:
    opts = K8S_CASES[case]
    path = tmp_path / "k8s.yaml"
    path.write_text(k8s.render(specs["pyproject"], opts))
    for version in ("1.30.0", "1.37.0"):
        out = run(tool("kubernetes-validate"), "--strict", "-k", version, "--quiet", str(path))
        assert out.returncode == 0, out.stdout + out.stderr
    docs = list(yaml.safe_load_all(path.read_text()))
    kinds = [d["kind"] for d in docs]
    expect = {
        "hpa": ["HorizontalPodAutoscaler"],
        "keda": ["TriggerAuthentication", "ScaledObject"],
        "none-gpu": [],
    }[case]
    assert kinds == ["Deployment", "Service", "PodDisruptionBudget", *expect]
    pod = docs[0]["spec"]["template"]["spec"]
    sidecar = pod["initContainers"][0]
    assert sidecar["name"] == "fastmango-agent" and sidecar["restartPolicy"] == "Always"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert ("replicas" in docs[0]["spec"]) == (opts.autoscaler == "none")
    if opts.gpu:
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "Tesla-T4"}
    ns = [d["metadata"].get("namespace") for d in docs]
    assert ns == [opts.namespace or None] * len(docs)


def keda_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / "keda.json").read_text())
    return schema


def test_keda_objects_pass_their_schema(specs: dict[str, AppSpec]) -> None:
    docs = k8s.keda(specs["pyproject"], K8S_CASES["keda"])
    for doc in docs:
        jsonschema.validate(doc, keda_schema())
    trigger = docs[1]["spec"]["triggers"][0]
    assert trigger["type"] == "metrics-api"
    assert trigger["metadata"]["valueLocation"] == k8s.KEDA_VALUE_LOCATION == "forecast.replicas"
    assert trigger["metadata"]["url"] == "http://shop-app.default.svc.cluster.local:9871/api/keda"
    assert trigger["authenticationRef"]["name"] == docs[0]["metadata"]["name"]


def test_keda_schema_is_really_looking(specs: dict[str, AppSpec]) -> None:
    scaled = k8s.keda(specs["pyproject"], K8S_CASES["keda"])[1]
    scaled["spec"]["triggers"][0]["metadata"]["targetValue"] = 1  # must be a string
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'string'"):
        jsonschema.validate(scaled, keda_schema())
    del scaled["spec"]["scaleTargetRef"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, keda_schema())


def test_kubernetes_validate_is_really_looking(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\n"
        "spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: x}\n"
        "  maxReplicas: 3\n  targetCPUUtilizationPercentage: 70\n"
    )
    out = run(tool("kubernetes-validate"), "--strict", "-k", "1.30.0", str(bad))
    assert out.returncode == 1 and "Additional properties" in out.stdout + out.stderr


# --- GitHub Actions ---------------------------------------------------------------------


def test_workflow_passes_schema_and_actionlint(specs: dict[str, AppSpec], tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text(
        github_actions.render(
            specs["requirements"], github_actions.WorkflowOptions(platform="cloudrun")
        )
    )
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        out = run(tool("check-jsonschema"), "--builtin-schema", schema, str(path))
        assert out.returncode == 0, out.stdout + out.stderr
    out = run(tool("actionlint"), "-no-color", "-shellcheck=", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    wf = yaml.safe_load(path.read_text().replace('"on":', "events:"))
    jobs = wf["jobs"]
    assert list(jobs) == [
        "test",
        "build",
        "deploy-development",
        "deploy-staging",
        "deploy-production",
    ]
    assert wf["events"]["push"]["branches"] == ["main"]
    assert jobs["deploy-staging"]["needs"] == ["build", "deploy-development"]
    assert jobs["deploy-production"]["environment"]["name"] == "production"
    deploy = jobs["deploy-production"]["steps"][-1]
    assert deploy["run"] == 'fastmango deploy cloudrun --env=production --image="$IMAGE"'
    assert deploy["env"]["FASTMANGO_ENVIRONMENTS__PRODUCTION__TOKEN"] == (
        "${{ secrets.FASTMANGO_PRODUCTION_TOKEN }}"
    )
    assert "pip install -r requirements.txt" in jobs["test"]["steps"][2]["run"]


def test_workflow_linters_are_really_looking(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pushh\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "    - run: echo ${{ matrix.foo }}\n"
    )
    assert (
        run(
            tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad)
        ).returncode
        == 1
    )
    out = run(tool("actionlint"), "-no-color", "-shellcheck=", str(bad))
    assert out.returncode == 1 and "pushh" in out.stdout


# --- fly.toml and render.yaml ------------------------------------------------------------


def test_fly_toml_passes_its_schema(specs: dict[str, AppSpec], tmp_path: Path) -> None:
    path = tmp_path / "fly.toml"
    for opts in (
        flytoml.FlyOptions(regions=("us-west", "eu-west")),
        flytoml.FlyOptions(image="registry.fly.io/shop:v3", gpu="a100"),
    ):
        path.write_text(flytoml.render(specs["pyproject"], opts))
        out = run(tool("check-jsonschema"), "--schemafile", str(SCHEMAS / "fly.json"), str(path))
        assert out.returncode == 0, out.stdout + out.stderr
    data = tomllib.loads(path.read_text())
    assert data["vm"] == [{"size": "performance-8x", "gpu_kind": "a100-pcie-40gb", "gpus": 1}]
    assert data["http_service"]["checks"][0]["path"] == "/healthz"
    assert data["metrics"] == {"port": 9871, "path": "/metrics"}
    assert data["build"] == {"image": "registry.fly.io/shop:v3"}


def test_render_yaml_passes_its_schema(specs: dict[str, AppSpec], tmp_path: Path) -> None:
    path = tmp_path / "render.yaml"
    for opts in (
        renderyaml.RenderOptions(),
        renderyaml.RenderOptions(
            image="ghcr.io/a/b:1", regions=("eu-west",), min_instances=2, max_instances=2
        ),
    ):
        path.write_text(renderyaml.render(specs["requirements"], opts))
        out = run(tool("check-jsonschema"), "--schemafile", str(SCHEMAS / "render.json"), str(path))
        assert out.returncode == 0, out.stdout + out.stderr
    svc = yaml.safe_load(path.read_text())["services"][0]
    assert svc["runtime"] == "image" and svc["region"] == "frankfurt" and svc["numInstances"] == 2


def test_fly_and_render_schemas_are_really_looking(tmp_path: Path) -> None:
    bad = tmp_path / "fly.toml"
    bad.write_text('app = "x"\nprimary_region = "us-west"\n[http_service]\ninternal_port = "80"\n')
    out = run(tool("check-jsonschema"), "--schemafile", str(SCHEMAS / "fly.json"), str(bad))
    assert out.returncode == 1
    bad = tmp_path / "render.yaml"
    bad.write_text("services:\n- {type: web, name: x, runtime: docker, region: mars}\n")
    out = run(tool("check-jsonschema"), "--schemafile", str(SCHEMAS / "render.json"), str(bad))
    assert out.returncode == 1
