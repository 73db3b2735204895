"""The packaging examples set only settings that exist, with values that validate."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import yaml

from fastmango.agent import config
from fastmango.cli import main

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"


def agent_flags(args: list[str]) -> dict[str, object]:
    """Parse `fastmango agent` arguments with the real command's parser."""
    command = main.commands["agent"]
    ctx = command.make_context("agent", list(args), resilient_parsing=False)
    keys = {"host": "server.host", "port": "server.port", "interval": "collectors.interval",
            "state_dir": "state_dir", "log_level": "log_level"}  # fmt: skip
    assert ctx.params["command"] == ()  # the sidecar watches the app; it does not run it
    return {keys[k]: v for k, v in ctx.params.items() if v is not None and k != "command"}


def test_kubernetes_sidecar_settings_validate(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((PACKAGING / "kubernetes" / "sidecar.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]
    [sidecar] = [c for c in pod["spec"]["containers"] if c["name"] == "fastmango"]
    env = {e["name"]: e.get("value", "from-a-secret") for e in sidecar["env"]}
    loaded = config.load(tmp_path, env, flags=agent_flags(sidecar["args"]))
    s = loaded.settings
    port = s.server.port
    assert s.server.host == "0.0.0.0" and s.server.token is not None
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert str(s.state_dir) == sidecar["volumeMounts"][0]["mountPath"]


def test_systemd_unit_settings_validate(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    text = (PACKAGING / "systemd" / "fastmango-agent.service").read_text()
    unit.read_string(text)
    pairs = [ln.removeprefix("Environment=").partition("=") for ln in text.splitlines()
             if ln.startswith("Environment=")]  # fmt: skip
    env = {k: v for k, _, v in pairs}
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0].endswith("/fastmango") and argv[1] == "agent"
    loaded = config.load(tmp_path, env, flags=agent_flags(argv[2:]))
    assert str(loaded.settings.state_dir) in unit["Service"]["ReadWritePaths"]


def test_dockerfile_runs_the_agent_as_non_root() -> None:
    text = (PACKAGING / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["fastmango", "agent"]' in text
    assert "USER 10001" in text and "HEALTHCHECK" in text
