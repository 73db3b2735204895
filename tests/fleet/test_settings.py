"""The [fleet] settings: defaults, validation naming key and source, and an agent whose
database can't be reached (it keeps serving, says why, and never shows the password)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmango.agent import config
from fastmango.agent.fleet.service import FleetService, create
from fastmango.errors import ConfigError
from tests.conftest import free_port
from tests.fleet.conftest import fleet_of, wait_for


def test_defaults_and_when_the_service_exists(tmp_path: Path) -> None:
    s = config.load(tmp_path, {}).settings
    assert s.fleet.enabled is None and s.fleet.check_interval == 1.0
    assert s.fleet.rollup_interval == 10.0 and "http_requests_per_second" in s.fleet.signals
    single = create(s)
    assert isinstance(single, FleetService) and single.mode == "single"
    env = {"FASTMANGO_DATABASE_URL": "postgresql://u:p@127.0.0.1:5432/app"}
    fleet = create(config.load(tmp_path, env).settings)
    assert isinstance(fleet, FleetService) and fleet.mode == "postgres"
    off = config.load(tmp_path, {**env, "FASTMANGO_FLEET__ENABLED": "false"}).settings
    assert create(off) is None


@pytest.mark.parametrize(
    ("env", "key", "words"),
    [
        ({"FASTMANGO_FLEET__CHECK_INTERVAL": "30"}, "fleet.check_interval", "less than or equal"),
        ({"FASTMANGO_FLEET__HEARTBEAT_INTERVAL": "soon"}, "fleet.heartbeat_interval", "duration"),
        ({"FASTMANGO_FLEET__STALE_AFTER": "2s"}, "fleet", "stale_after"),
        ({"FASTMANGO_FLEET__LEADER": "yes"}, "fleet.leader", "unknown key"),
    ],
)
def test_bad_settings_name_key_and_source(
    tmp_path: Path, env: dict[str, str], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path, env)
    text = str(err.value)
    assert key in text and words in text and "env FASTMANGO_FLEET__" in text, text


def test_unreachable_database_the_agent_serves_and_says_why(
    start_agent: Any, agent_env: dict[str, str]
) -> None:
    secret = "s3cret-Fleet-Pw"
    agent_env["FASTMANGO_DATABASE_URL"] = f"postgresql://app:{secret}@127.0.0.1:{free_port()}/app"
    agent_env["FASTMANGO_FLEET__RECONNECT_MAX"] = "0.5"
    agent_env["FASTMANGO_COLLECTORS__POSTGRES__ENABLED"] = "false"
    agent = start_agent()
    view = wait_for("an error shown", lambda: (v := fleet_of(agent))["last_error"] and v, 15)
    assert view["mode"] == "postgres" and not view["connected"] and not view["is_leader"]
    assert view["leader"] is None
    assert httpx.get(agent.url + "/healthz").is_success
    assert "fastmango_fleet_leader 0.0" in httpx.get(agent.url + "/metrics").text
    keda = httpx.get(agent.url + "/api/keda").json()
    assert keda["source"]["load"].startswith("local")  # falls back, says so
    claims = httpx.get(agent.url + "/api/fleet/claims", timeout=15)
    assert claims.status_code == 503 and "cannot read claims" in claims.json()["detail"]
    assert secret not in str(view) and secret not in str(keda) and secret not in claims.text
    assert secret not in agent.output()
