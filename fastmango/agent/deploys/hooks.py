"""Pre-deploy hooks: the test command, the database backup and the migrations.

Commands run in a shell in the app's folder with their output passed through; the
database URL reaches them as ``DATABASE_URL`` in the environment, never on a command line
(pg_dump gets the password through ``PGPASSWORD``), so it shows in no process list.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fastmango.agent.settings import Settings
from fastmango.deployer.errors import DeployError
from fastmango.redact import redact_secrets


def database_url(settings: Settings, env: str) -> str | None:
    e = settings.environments.get(env)
    url = e.database_url if e is not None and e.database_url is not None else settings.database_url
    return url.get_secret_value() if url is not None else None


def run(command: str, *, what: str, env: dict[str, str] | None = None) -> None:
    """Run a hook's shell command; a clear DeployError if it fails."""
    t0 = time.monotonic()
    proc = subprocess.run(command, shell=True, env={**os.environ, **(env or {})}, check=False)
    if proc.returncode != 0:
        raise DeployError(
            f"{what} failed (exit {proc.returncode} after "
            f"{time.monotonic() - t0:.1f}s): {redact_secrets(command)}"
        )


def run_tests(settings: Settings) -> None:
    if not settings.deploy.test_command:
        raise DeployError('--wait-for-tests needs deploy.test_command (e.g. "pytest -q")')
    run(settings.deploy.test_command, what="the tests")


def _pg_env(url: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and PGPASSWORD for it."""
    parts = urlsplit(url)
    env: dict[str, str] = {}
    if parts.password:
        env["PGPASSWORD"] = parts.password
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = (parts.username or "") + "@" + host + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))
    return url, env


def backup(settings: Settings, env: str, now: float | None = None) -> Path:
    """pg_dump (custom format) of the environment's database into the backup folder."""
    url = database_url(settings, env)
    if not url:
        raise DeployError(
            f"--backup-first needs a database: set environments.{env}.database_url or database_url"
        )
    binary = shutil.which(settings.deploy.pg_dump) or settings.deploy.pg_dump
    folder = settings.deploy.backup_dir or settings.state_dir / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    dest = folder / f"{env}-{stamp}.dump"
    dsn, extra = _pg_env(url)
    proc = subprocess.run(
        [binary, "--format=custom", f"--file={dest}", f"--dbname={dsn}"],
        env={**os.environ, **extra},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        dest.unlink(missing_ok=True)
        raise DeployError(
            f"pg_dump failed (exit {proc.returncode}): {redact_secrets(proc.stderr.strip()[-500:])}"
        )
    return dest


def migrate(settings: Settings, env: str, *, dry_run: bool) -> bool:
    """Run (or show) the migrations; False when none is configured."""
    command = (
        settings.deploy.migrate_dry_run_command if dry_run else settings.deploy.migrate_command
    )
    if not command:
        if dry_run and settings.deploy.migrate_command:
            raise DeployError(
                "migrate --dry-run needs deploy.migrate_dry_run_command "
                '(e.g. "alembic upgrade head --sql")'
            )
        return False
    extra = {"FASTMANGO_ENV": env}
    url = database_url(settings, env)
    if url:
        extra["DATABASE_URL"] = url
    run(command, what="the migration dry run" if dry_run else "the migration", env=extra)
    return True
