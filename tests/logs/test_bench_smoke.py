"""A small run of bench/logs.py: it builds, ingests, queries and compares with grep and
ripgrep end to end, and its counts agree with theirs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_logs_smoke(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "logs.py"),
        "--lines",
        "20000",
        "--naive-lines",
        "5000",
        "--runs",
        "1",
        "--no-live",
        "--stage-lines",
        "5000",
        "--json",
        "--keep",
        str(tmp_path),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    fig = json.loads(p.stdout)
    assert fig["raw_lines"] == fig["events"] == 20000
    assert fig["ingest_lines_per_s_cpu"] > 0 and 0 < fig["disk_ratio"] < 2
    for name in ("rare token", "common word", "phrase"):
        q = fig["queries"][name]
        assert q["fastmango_count"] == q["grep_count"] == q["rg_count"] > 0, (name, q)
    assert fig["queries"]["newest 100 common"]["lines"] == 100
    assert sum(fig["redactions"].values()) > 0
    # where ingest time goes: every stage timed, beside a floor below it in total
    st = fig["stages"]
    assert st["events"] == 5000
    stages = ("tail", "redact", "parse", "blocks", "index write", "index merge")
    assert set(st["us_per_line"]) == set(st["floor_us_per_line"]) == set(stages)
    assert all(st["us_per_line"][k] >= 0 and st["floor_us_per_line"][k] > 0 for k in stages)
    assert 0 < st["floor_total_us"] < st["total_us"]
    assert all(v > 0 for v in st["grouped_16_us_per_line"])
