"""`fastmango deploy cloudrun|ecs|azure`, `fastmango rollback --version` and
`fastmango releases` as a user runs them (a real process in the app folder), against
the fakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.azure import FakeAzure
from tests.fakes.cloudrun import FakeCloudRun
from tests.fakes.ecs import FakeEcs


def settings_for(fake: Any) -> tuple[str, dict[str, str]]:
    """``[environments.production]`` for the fake, and the token's environment variable."""
    body, token = fake.environment()
    toml = f'[environments.production]\n{body}[deploy]\npoll_interval = "0.05s"\n'
    return toml, {"FASTMANGO_ENVIRONMENTS__PRODUCTION__TOKEN": token}


@pytest.fixture(params=["cloudrun", "ecs", "azure"])
def fake(request: Any) -> Iterator[Any]:
    cls = {"cloudrun": FakeCloudRun, "ecs": FakeEcs, "azure": FakeAzure}[request.param]
    with cls() as f:
        yield f


def cli(app: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("FASTMANGO_", "AWS_"))}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "fastmango.cli", *args],
        cwd=app,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_deploy_releases_and_rollback_from_the_cli(fake: Any, tmp_path: Path) -> None:
    toml, env = settings_for(fake)
    (tmp_path / "fastmango.toml").write_text(toml)
    image = "registry.example.com/shop:9.9"
    out = cli(tmp_path, env, "deploy", fake.name, "--env", "production", "--image", image, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["result"] == "ok" and result["image"] == image, result
    token = env["FASTMANGO_ENVIRONMENTS__PRODUCTION__TOKEN"]
    assert token not in out.stdout + out.stderr

    out = cli(tmp_path, env, "releases", "--env", "production", "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    rows = listed if isinstance(listed, list) else listed.get("releases", listed)
    assert any(r.get("image") == image for r in rows), rows

    out = cli(tmp_path, env, "rollback", "--env", "production", "--version", "v1", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["result"] == "ok" and result["to_version"] == "v1", result


def test_gpu_flag_is_mapped_or_refused(tmp_path: Path) -> None:
    with FakeCloudRun() as fake:
        toml, env = settings_for(fake)
        (tmp_path / "fastmango.toml").write_text(toml)
        out = cli(
            tmp_path,
            env,
            "deploy",
            "cloudrun",
            "--env",
            "production",
            "--image",
            "registry.example.com/shop:gpu",
            "--gpu",
            "t4",
        )
        assert out.returncode == 1 and "Cloud Run offers the NVIDIA L4" in out.stderr
        assert not fake.calls("PATCH")
        out = cli(
            tmp_path,
            env,
            "deploy",
            "cloudrun",
            "--env",
            "production",
            "--image",
            "registry.example.com/shop:gpu",
            "--gpu",
            "l4",
        )
        assert out.returncode == 0, out.stderr
        body = json.loads(fake.calls("PATCH")[-1].body)
        assert body["template"]["nodeSelector"] == {"accelerator": "nvidia-l4"}
