"""`fastmango logs purge --match` (GDPR erasure) against a real agent: the person's lines
are gone from search, export and the index file's bytes; the count is reported; the
audit log records who and how many but never the text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.logs.conftest import count, wait_for, write_config

PERSON = "Jane.Roe-42"  # a customer id; emails are redacted before storage anyway
LINES = [
    *(
        f"2024-01-02 10:00:{i:02d},000 INFO app.web: order {i} placed by jane.roe-42 ok"
        for i in range(0, 30, 3)
    ),
    *(
        f"2024-01-02 10:01:{i:02d},000 INFO app.web: order {i} placed by someone-else ok"
        for i in range(0, 30, 3)
    ),
    "2024-01-02 10:02:00,000 ERROR app.pay: card declined for JANE.ROE-42 (retry)",
]


def logs_cli(app: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastmango.cli", "logs", "--url", url, *args],
                          cwd=app, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_purge_erases_a_persons_lines_and_reports_how_many(app_dir: Path, start_agent: Any) -> None:
    log = app_dir / "app.log"
    log.write_text("\n".join(LINES) + "\n")
    write_config(app_dir, [str(log)], multiline_timeout=0.1)
    agent = start_agent("--state-dir", str(app_dir / "state"), app_dir=app_dir)
    url = agent.url
    wait_for(lambda: count(url, "") >= len(LINES), 20, "lines indexed")
    assert count(url, "jane") == 11

    refused = logs_cli(app_dir, url, "purge", "--match", PERSON)  # no terminal, no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr
    done = logs_cli(app_dir, url, "purge", "--match", PERSON, "--yes", "--reason", "ticket 42")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"erased 11 line(s) of {len(LINES)} indexed")

    # gone from search (words and scans), from export, and from the index's bytes
    assert count(url, "jane") == 0 and count(url, "roe") == 0
    assert count(url, "") == len(LINES) - 11 and count(url, "someone") == 10
    scan = httpx.get(url + "/api/logs/search", params={"q": "/placed by/", "limit": 100}).json()
    assert len(scan["lines"]) == 10
    exported = httpx.get(url + "/api/logs/export", params={"q": ""}).text
    assert "jane" not in exported.lower() and exported.count("someone-else") == 10
    for f in (app_dir / "state").glob("logs.db*"):
        assert b"jane.roe" not in f.read_bytes().lower(), f
    # new lines are still indexed afterwards
    with log.open("a") as fh:
        fh.write("2024-01-02 10:03:00,000 INFO app.web: after the purge\n")
    wait_for(lambda: count(url, "after") == 1, 20, "a new line indexed")

    # the audit log: who, why, how many, and only a fingerprint of the text
    audit = httpx.get(url + "/api/events", params={"kind": "audit"}).json()
    [rec] = [a["data"] for a in audit if a["data"]["action"] == "logs.purge"]
    assert rec["result"] == "ok" and rec["erased"] == 11 and rec["reason"] == "ticket 42"
    assert len(rec["match_sha256"]) == 16
    assert PERSON.lower() not in json.dumps(audit).lower()
    too_short = httpx.post(url + "/api/logs/purge", json={"match": "ab"})
    assert too_short.status_code == 422
