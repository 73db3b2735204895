"""GPU time on a real GPU: the agent's own GPUs (NVML) show up in the bill, unpriced
(unknown) until cost.environments.<env>.gpu names the model. Skips without a GPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pynvml
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.integration]

CONFIG = """
[environments.production]
platform = "fly"
size = "performance-1x-2gb"

[collectors.gpu]
interval = 1
"""


def gpu_line(url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "DCGM_FI_DEV_GPU_UTIL" in httpx.get(url + "/metrics").text:
            break
        time.sleep(0.5)
    time.sleep(2)  # one collection stored
    doc = httpx.get(url + "/api/cost", params={"fresh": "true"}, timeout=30).json()
    return next(ln for ln in doc["environments"][0]["lines"] if ln["item"] == "gpu")


def test_gpus_seen_are_unknown_until_priced(start_agent: Any, tmp_path: Path) -> None:
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        pytest.skip("no NVIDIA GPU/driver")
    app = tmp_path / "app"
    app.mkdir()
    store = app / ".fastmango"
    from fastmango.agent.store import Store

    s = Store(store / "state.db")
    s.open()
    s.append_event("replicas", {"env": "production", "platform": "fly", "replicas": 1,
                                "size": "performance-1x-2gb", "source": "deploy"},
                   ts=time.time() - 3600)  # fmt: skip
    s.close()
    (app / "fastmango.toml").write_text(CONFIG)
    agent = start_agent(app_dir=app)
    line = gpu_line(agent.url)
    assert line["month_to_date"] is None
    assert f"{count} GPU(s) seen" in line["unknown"]
    agent.stop()
    (app / "fastmango.toml").write_text(
        CONFIG + f'\n[cost.environments.production]\ngpu = "a100-80gb"\ngpus = {count}\n'
    )
    agent = start_agent(app_dir=app)
    line = gpu_line(agent.url)
    assert line["unknown"] is None
    assert line["quantity_month_to_date"] == pytest.approx(count * 1.0, abs=0.05)
    assert line["month_to_date"] == pytest.approx(count * 1.50, abs=0.1)  # $1.50/GPU-hour
