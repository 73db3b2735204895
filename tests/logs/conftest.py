"""Helpers for the logs tests: an agent following files in a temporary app folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for  # noqa: F401  (re-exported for the tests here)


def write_config(app: Path, paths: list[str], **logs: Any) -> None:
    app.mkdir(parents=True, exist_ok=True)
    lines = ["[logs]", f"paths = {json.dumps(paths)}"]
    for k, v in logs.items():
        lines.append(f"{k} = {json.dumps(v)}")
    (app / "fastmango.toml").write_text("\n".join(lines) + "\n")


def count(url: str, q: str) -> int:
    r = httpx.get(
        url + "/api/logs/search", params={"q": q, "count": "true", "limit": 1}, timeout=30
    )
    r.raise_for_status()
    return int(r.json()["count"])


def export_lines(url: str, q: str) -> list[dict[str, Any]]:
    out = []
    with httpx.stream("GET", url + "/api/logs/export", params={"q": q}, timeout=60) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line:
                out.append(json.loads(line))
    return out


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    app = tmp_path / "app"
    app.mkdir()
    yield app
