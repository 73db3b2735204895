"""A log search fans out to the fleet: two agents sharing one PostgreSQL each follow
their own app's log; asking either one with ``fleet=true`` (API) or ``--fleet`` (CLI)
returns both agents' lines, merged by time and marked with the agent they came from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fleet.conftest import fleet_of, wait_for

pytestmark = pytest.mark.integration


def toml(log: Path) -> str:
    return f'[logs]\npaths = ["{log}"]\n'


def test_a_log_search_fans_out_to_every_agent_and_merges_by_time(
    start_fleet: Any, tmp_path: Path
) -> None:
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    logs[0].write_text("".join(
        f"2024-01-02 10:00:{s:02d},000 ERROR app: checkout failed on a #{s}\n" for s in (1, 3)
    ))  # fmt: skip
    logs[1].write_text("".join(
        f"2024-01-02 10:00:{s:02d},000 ERROR app: checkout failed on b #{s}\n" for s in (2, 4)
    ))  # fmt: skip
    agents = start_fleet(2, tomls=[toml(logs[0]), toml(logs[1])])
    wait_for("both agents see each other",
             lambda: all(len([i for i in fleet_of(a)["instances"] if i["state"] == "up"]) == 2
                         for a in agents), 20)  # fmt: skip

    def search(agent: Any, **extra: Any) -> dict[str, Any]:
        params = {"q": "checkout", "count": "true", **extra}
        doc: dict[str, Any] = httpx.get(agent.url + "/api/logs/search", params=params).json()
        return doc

    wait_for("each agent indexed its own lines", lambda: all(
        search(a).get("count") == 2 for a in agents), 20)  # fmt: skip
    ids = [fleet_of(a)["instance"] for a in agents]
    for asked in agents:
        doc = search(asked, fleet="true")
        assert doc["count"] == 4 and doc["exact"] is True and doc["partial"] is False
        tails = [ln["text"].rsplit("on ", 1)[1] for ln in doc["lines"]]
        assert tails == ["b #4", "a #3", "b #2", "a #1"]  # newest first, both agents
        assert [ln["instance"] for ln in doc["lines"]] == [ids[1], ids[0], ids[1], ids[0]]
        assert sorted(i["instance"] for i in doc["instances"] if i["ok"]) == sorted(ids)
    out = subprocess.run(
        [sys.executable, "-m", "fastmango.cli", "logs", "--url", agents[0].url,
         "--search", "checkout", "--fleet"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    assert len(rows) == 4 and rows[0].endswith("on a #1") and rows[-1].endswith("on b #4")
    assert rows[0].split()[2].startswith(ids[0] + "/")
