"""A smoke run of bench/rollback.py: two platform paths, latencies scaled down (the
adapters and flows of every platform are tested on their own)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rollback_benchmark_smoke() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "rollback.py"),
            "--runs",
            "1",
            "--scale",
            "0.02",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert set(figures["platforms"]) == {
        "fly-standby",
        "fly-in-place",
        "railway",
        "render",
        "kubernetes",
    }
    for path, r in figures["platforms"].items():
        run = r["runs"][0]
        assert r["wall_seconds"] > r["platform_seconds"] > 0, path
        assert run["to"] != run["from"], path
        assert 0 < r["overhead_share"] < 1 and r["requests"] >= 3, path
