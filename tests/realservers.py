"""Real servers started by tests on free loopback ports: Prometheus (more come later)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


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
        stop_process(self.proc)
        self._log.close()


def pg_bindir() -> Path:
    """PostgreSQL's server binaries: ``$PG_BIN``, ``pg_config --bindir``, or the newest
    ``/usr/lib/postgresql/*/bin``; fail loudly (never skip) when there are none."""
    candidates = [os.environ.get("PG_BIN", "")]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    candidates += [str(p) for p in reversed(versions)]
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pgbench").exists():
            return Path(c)
    raise RuntimeError("PostgreSQL server binaries are missing: apt-get install postgresql")


class Postgres:
    """A real PostgreSQL (Debian ``postgresql``) in a temporary folder on a free loopback
    port, with ``pg_stat_statements`` preloaded and durability off (fast, test only).

    As root the server runs as the ``postgres`` user (``initdb`` refuses root). The unix
    socket (trust) is in the folder, for :meth:`psql` and :meth:`pgbench`; TCP on
    127.0.0.1 asks for a password (scram), as :attr:`dsn` gives it.
    """

    def __init__(self, port: int | None = None, password: str = "fm-test-Pw-8c1f") -> None:
        self.bindir = pg_bindir()
        self.port = port or _free_port()
        self.password = password
        self.base = Path(tempfile.mkdtemp(prefix="fastmango-pg-"))
        self.data = self.base / "data"
        self.logfile = self.base / "postgres.log"
        self._as: list[str] = []
        pwfile = self.base / "pwfile"
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            self._as = [require("runuser", "util-linux"), "-u", "postgres", "--"]
            for path in (self.base, pwfile):
                shutil.chown(path, "postgres", "postgres")
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                      "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
                      f"--pwfile={pwfile}", "--no-sync", server=True)  # fmt: skip
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.base}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_preload_libraries = 'pg_stat_statements'\nmax_connections = 40\n"
                "shared_buffers = 32MB\nlogging_collector = off\n"
            )

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres", self.password)

    def dsn_for(self, user: str, password: str, dbname: str = "postgres") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, binary: str, *args: str, server: bool = False) -> str:
        cmd = [*(self._as if server else []), str(self.bindir / binary), *args]
        done = subprocess.run(cmd, cwd=self.base, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(f"{binary} failed ({done.returncode}): {done.stderr.strip()}\n{log}")
        return done.stdout

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60",
                  "start", server=True)  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", server=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _client_args(self, dbname: str) -> list[str]:
        return ["-h", str(self.base), "-p", str(self.port), "-U", "postgres", "-d", dbname]

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL through psql over the unix socket; unaligned, tuples only."""
        return self._run("psql", *self._client_args(dbname), "-X", "-A", "-t", "-q",
                         "-v", "ON_ERROR_STOP=1", "-c", sql)  # fmt: skip

    def pgbench(self, *args: str, dbname: str = "postgres") -> str:
        """Run pgbench to completion (``-i`` to initialise, ``-T`` for a load); its stdout."""
        return self._run("pgbench", *self._client_args(dbname)[:6], *args, dbname)

    def pgbench_popen(self, *args: str, dbname: str = "postgres") -> subprocess.Popen[bytes]:
        """pgbench in the background; the caller ends it (terminate, wait)."""
        cmd = [str(self.bindir / "pgbench"), *self._client_args(dbname)[:6], *args, dbname]
        return subprocess.Popen(cmd, cwd=self.base, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip

    def cleanup(self) -> None:
        """Stop the server at once (if it runs) and remove its folder."""
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
