"""Deployer fixtures: the platform fakes on real sockets, an app folder whose settings
point at one, and the CLI run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastmango.agent.store import Store
from fastmango.series import Sample, labels_of
from tests.conftest import wait_for  # noqa: F401  (the deployer tests import it from here)
from tests.fakes.fly import FakeFly
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.railway import FakeRailway
from tests.fakes.render import FakeRender

TOKENS = {"fly": "fo1_testtoken", "railway": "rw-team-token-1", "render": "rnd_testtoken123"}


@pytest.fixture
def render() -> Iterator[FakeRender]:
    with FakeRender() as fake:
        yield fake


@pytest.fixture
def fly() -> Iterator[FakeFly]:
    with FakeFly() as fake:
        yield fake


@pytest.fixture
def railway() -> Iterator[FakeRailway]:
    with FakeRailway() as fake:
        yield fake


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as fake:
        yield fake


def env_toml(name: str, fake: Any, app_dir: Path) -> str:
    """``[environments.<name>]`` pointing at ``fake``."""
    p = fake.name
    lines = [f"[environments.{name}]", f'platform = "{p}"']
    if p == "fly":
        lines += [f'app = "{fake.app_name}"', f'api_url = "{fake.url}"']
    elif p == "railway":
        lines += [
            f'app = "{fake.service}"',
            f'environment_id = "{fake.environment}"',
            f'project = "{fake.project}"',
            f'api_url = "{fake.url}/graphql/v2"',
        ]
    elif p == "render":
        lines += [f'app = "{fake.service}"', f'api_url = "{fake.url}/v1"']
    else:
        kc = app_dir / f"kubeconfig-{name}.yaml"
        kc.write_text(fake.kubeconfig())
        lines += [f'app = "{fake.dep_name}"', f'kubeconfig = "{kc}"']
    return "\n".join(lines) + "\n"


def write_app(
    app_dir: Path, envs: dict[str, Any], extra: str = "", token_in_file: bool = False
) -> Path:
    """``fastmango.toml`` with these environments (tokens come from the environment
    variables :func:`cli_env` sets, or with ``token_in_file`` from the file: an agent
    started by ``start_agent`` gets no FASTMANGO_* variables)."""
    app_dir.mkdir(parents=True, exist_ok=True)
    text = ""
    for n, f in envs.items():
        text += env_toml(n, f, app_dir)
        if token_in_file and f.name in TOKENS:
            text += f'token = "{TOKENS[f.name]}"\n'

    text += '[deploy]\npoll_interval = "0.05s"\nlock_ttl = "3s"\n' + extra
    (app_dir / "fastmango.toml").write_text(text)
    return app_dir


def cli_env(envs: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    env["PYTHONUNBUFFERED"] = "1"
    for name, fake in envs.items():
        if fake.name in TOKENS:
            env[f"FASTMANGO_ENVIRONMENTS__{name.upper()}__TOKEN"] = TOKENS[fake.name]
    return env


def run_cli(
    app_dir: Path,
    envs: dict[str, Any],
    *args: str,
    timeout: float = 60,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastmango.cli", *args],
        cwd=app_dir,
        env=cli_env(envs),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=stdin,
    )


def start_cli(app_dir: Path, envs: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fastmango.cli", *args],
        cwd=app_dir,
        env=cli_env(envs),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def events(app_dir: Path, kind: str) -> list[dict[str, Any]]:
    """Events of ``kind`` in the app's state store, oldest first."""
    store = Store(app_dir / ".fastmango" / "state.db")
    return [e["data"] for e in reversed(store.events(kind, limit=1000))]


def write_samples(app_dir: Path, points: list[tuple[float, float, float]]) -> None:
    """(t, error ratio, p95 seconds) samples of the app into its state store."""
    store = Store(app_dir / ".fastmango" / "state.db")
    store.open()
    try:
        samples = []
        for t, err, p95 in points:
            samples.append(Sample("http_error_ratio", labels_of({}), err, t))
            samples.append(Sample("http_request_duration_p95_seconds", labels_of({}), p95, t))
        store.append(
            samples, {"http_error_ratio": "gauge", "http_request_duration_p95_seconds": "gauge"}
        )
        store.flush()
    finally:
        store.close()
