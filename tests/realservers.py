"""Real servers started by tests on free loopback ports: Prometheus (more come later)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx


def require(binary: str, package: str) -> str:
    """The path of a binary the tests need; fail loudly (never skip) when it is missing."""
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} is missing: apt-get install {package} (see .ci/run)")
    return path


class Prometheus:
    """A real Prometheus server scraping ``targets`` every second."""

    def __init__(self, workdir: Path, port: int, targets: list[str], bearer: str | None = None):
        self.url = f"http://127.0.0.1:{port}"
        workdir.mkdir(parents=True, exist_ok=True)
        auth = f"    authorization: {{credentials: {bearer}}}\n" if bearer else ""
        (workdir / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: fastmango\n"
            f"{auth}"
            f"    static_configs: [{{targets: {targets!r}}}]\n"
        )
        self._log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                require("prometheus", "prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def query_until(self, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll an instant query until it returns a non-empty vector."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = httpx.get(self.url + "/api/v1/query", params={"query": promql}, timeout=2)
                result = r.json()["data"]["result"]
                if result:
                    return list(result)
            except (httpx.TransportError, KeyError, ValueError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"Prometheus returned nothing for {promql} in {timeout}s")

    def targets(self) -> list[dict[str, Any]]:
        r = httpx.get(self.url + "/api/v1/targets", params={"state": "active"}, timeout=2)
        return list(r.json()["data"]["activeTargets"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
