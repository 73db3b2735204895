"""The CD workflow: on every push to main, test, build and push the image, then deploy
it development → staging → production, each a GitHub *environment* (production's
required reviewers are the approval; set them in Settings → Environments).

Checked with ``check-jsonschema --builtin-schema vendor.github-workflows`` (and
``custom.github-workflows-require-timeout``) and ``actionlint`` (tests/artifacts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastmango.deployer.artifacts.project import AppSpec
from fastmango.deployer.artifacts.yamltext import dump

DEFAULT_ENVIRONMENTS = ("development", "staging", "production")


@dataclass(frozen=True)
class WorkflowOptions:
    platform: str = "fly"
    environments: Sequence[str] = DEFAULT_ENVIRONMENTS
    registry: str = "ghcr.io"
    branch: str = "main"
    test_command: str = "python -m pytest -q"

    def __post_init__(self) -> None:
        if not self.environments:
            raise ValueError("environments: name at least one")
        for env in self.environments:
            if not env.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"environment {env!r}: letters, digits, - and _ only")


def secret_name(env: str) -> str:
    return f"FASTMANGO_{env.upper().replace('-', '_')}_TOKEN"


def _install(spec: AppSpec) -> str:
    if spec.deps == "requirements":
        return "python -m pip install -r requirements.txt pytest"
    if spec.deps == "pyproject":
        return "python -m pip install . pytest"
    return "python -m pip install pytest"


def workflow(spec: AppSpec, opts: WorkflowOptions) -> dict[str, Any]:
    checkout = {"uses": "actions/checkout@v5"}
    python = {
        "uses": "actions/setup-python@v6",
        "with": {"python-version": spec.python, "cache": "pip"},
    }
    jobs: dict[str, Any] = {
        "test": {
            "name": "Tests",
            "runs-on": "ubuntu-latest",
            "timeout-minutes": 20,
            "steps": [
                checkout,
                python,
                {"name": "Install", "run": _install(spec)},
                {"name": "Test", "run": opts.test_command},
            ],
        },
        "build": {
            "name": "Build and push the image",
            "needs": "test",
            "runs-on": "ubuntu-latest",
            "timeout-minutes": 30,
            "permissions": {"contents": "read", "packages": "write"},
            "outputs": {"image": "${{ steps.image.outputs.ref }}"},
            "steps": [
                checkout,
                {
                    "name": "Image name",
                    "id": "image",
                    "run": f'echo "ref={opts.registry}/${{GITHUB_REPOSITORY,,}}:${{GITHUB_SHA}}"'
                    ' >> "$GITHUB_OUTPUT"',
                },
                {
                    "name": "Log in to the registry",
                    "env": {"REGISTRY_TOKEN": "${{ secrets.GITHUB_TOKEN }}"},
                    "run": f'echo "$REGISTRY_TOKEN" | docker login {opts.registry} '
                    '-u "$GITHUB_ACTOR" --password-stdin',
                },
                {
                    "name": "Build and push",
                    "env": {"IMAGE": "${{ steps.image.outputs.ref }}"},
                    "run": 'docker build --tag "$IMAGE" .\ndocker push "$IMAGE"\n',
                },
            ],
        },
    }
    previous = "build"
    for env in opts.environments:
        job = f"deploy-{env}"
        token_var = f"FASTMANGO_ENVIRONMENTS__{env.upper().replace('-', '_')}__TOKEN"
        jobs[job] = {
            "name": f"Deploy to {env}",
            "needs": ["build", previous] if previous != "build" else "build",
            "runs-on": "ubuntu-latest",
            "timeout-minutes": 30,
            "environment": {"name": env},
            "concurrency": {"group": f"deploy-{env}", "cancel-in-progress": False},
            "steps": [
                checkout,
                python,
                {
                    "name": "Install fastmango",
                    "run": f"python -m pip install fastmango=={spec.fastmango_version}",
                },
                {
                    "name": "Deploy (health-gated; rolls back by itself on failure)",
                    "env": {
                        "IMAGE": "${{ needs.build.outputs.image }}",
                        token_var: "${{ secrets." + secret_name(env) + " }}",
                    },
                    "run": f'fastmango deploy {opts.platform} --env={env} --image="$IMAGE"',
                },
            ],
        }
        previous = job
    return {
        "name": "Deploy",
        "on": {"push": {"branches": [opts.branch]}, "workflow_dispatch": {}},
        "permissions": {"contents": "read"},
        "jobs": jobs,
    }


def render(spec: AppSpec, opts: WorkflowOptions) -> str:
    secrets = ", ".join(secret_name(e) for e in opts.environments)
    head = (
        f"Generated by fastmango {spec.fastmango_version} (fastmango generate github-actions).\n"
        f"Push to {opts.branch}: test → build → {' → '.join(opts.environments)}.\n"
        f"Repository secrets (or environment secrets): {secrets}.\n"
        f"Approval: add required reviewers to the '{opts.environments[-1]}' environment."
    )
    return dump(workflow(spec, opts), comment=head)
