"""A real PostgreSQL for the fleet tests (one per session), and helpers to run agents
of one fleet as separate processes on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for as shared_wait_for
from tests.realservers import Postgres

#: short intervals so failover and staleness show within seconds
FAST = {
    "FASTMANGO_FLEET__HEARTBEAT_INTERVAL": "0.5",
    "FASTMANGO_FLEET__CHECK_INTERVAL": "0.3",
    "FASTMANGO_FLEET__STALE_AFTER": "3",
    "FASTMANGO_FLEET__RECONNECT_MAX": "1",
    "FASTMANGO_FLEET__ROLLUP_INTERVAL": "2",
    "FASTMANGO_COLLECTORS__INTERVAL": "1",
    "FASTMANGO_COLLECTORS__POSTGRES__ENABLED": "false",
    "FASTMANGO_COLLECTORS__GPU__ENABLED": "false",
}


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL 15, started as the postgres user."""
    pg = Postgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture
def fleet_db(postgres: Postgres) -> Postgres:
    """The session's PostgreSQL with no fleet schema (each test starts a new fleet)."""
    if not postgres.running():
        postgres.start()
    postgres.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name LIKE 'fastmango-fleet-%'"
    )
    postgres.psql("DROP SCHEMA IF EXISTS fastmango CASCADE")
    return postgres


def fleet_of(agent: Any) -> dict[str, Any]:
    r = httpx.get(agent.url + "/api/fleet", timeout=5)
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    """:func:`tests.conftest.wait_for` with the name first, as the fleet tests call it."""
    return shared_wait_for(check, timeout, what, every)


@pytest.fixture
def start_fleet(
    fleet_db: Postgres, start_agent: Any, agent_env: dict[str, str], tmp_path: Path
) -> Callable[..., list[Any]]:
    """Start n agents of one fleet (separate processes, one app folder each)."""
    agent_env.update(FAST)
    agent_env["FASTMANGO_DATABASE_URL"] = fleet_db.dsn

    def start(n: int, first: int = 0, tomls: list[str] | None = None) -> list[Any]:
        """``tomls``: each agent's fastmango.toml (in its own app folder)."""
        for k, i in enumerate(range(first, first + n)):
            (tmp_path / f"app{i}").mkdir(exist_ok=True)
            if tomls is not None:
                (tmp_path / f"app{i}" / "fastmango.toml").write_text(tomls[k])
        agents = [
            start_agent(app_dir=tmp_path / f"app{i}", wait=False) for i in range(first, first + n)
        ]
        for a in agents:
            wait_for(f"{a.url} healthz", lambda a=a: httpx.get(a.url + "/healthz").is_success, 20)
        return agents

    return start
