"""Settings: sources and provenance, every error at once with file and key, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fastmango.agent import config
from fastmango.agent.settings import Settings
from fastmango.errors import ConfigError


def run_cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    return subprocess.run(
        [sys.executable, "-m", "fastmango.cli", *args],
        cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_sources_in_order_with_provenance(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.fastmango]\nlog_level = "debug"\n[tool.fastmango.server]\nport = 9001\n'
    )
    (tmp_path / "fastmango.toml").write_text('[server]\nport = 9002\n[store]\nmax_size = "1GB"\n')
    loaded = config.load(
        tmp_path,
        {"FASTMANGO_SERVER__PORT": "9003", "FASTMANGO_COLLECTORS__INTERVAL": "30s"},
        flags={"collectors.interval": "2"},
    )
    s = loaded.settings
    assert (s.log_level, s.server.port, s.store.max_size, s.collectors.interval) == (
        "debug", 9003, 10**9, 2.0,
    )  # fmt: skip
    assert loaded.source_of("log_level").endswith("pyproject.toml [tool.fastmango]")
    assert loaded.source_of("store.max_size").endswith("fastmango.toml")
    assert loaded.source_of("server.port") == "env FASTMANGO_SERVER__PORT"
    assert loaded.source_of("collectors.interval") == "--interval"
    assert loaded.source_of("server.host") == "default"
    assert s.state_dir == tmp_path / ".fastmango"  # relative to the app, not the process


@pytest.mark.parametrize(
    ("value", "paths"),
    [
        ('["/var/log/a/*.log", "/tmp/b.log"]', ["/var/log/a/*.log", "/tmp/b.log"]),  # JSON
        ("/var/log/a/*.log, /tmp/b.log", ["/var/log/a/*.log", "/tmp/b.log"]),  # commas
        ("/var/log/a/*.log", ["/var/log/a/*.log"]),  # one glob
    ],
)
def test_log_paths_from_the_environment(tmp_path: Path, value: str, paths: list[str]) -> None:
    loaded = config.load(tmp_path, {"FASTMANGO_LOGS__PATHS": value})
    assert loaded.settings.logs.paths == paths


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "fastmango.toml").write_text('[server]\nport = "eighty"\nhots = "x"\n')
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path, {"FASTMANGO_COLLECTORS__TIMEOUT": "soon"})
    problems = {(p.key, p.source.rsplit("/", 1)[-1]) for p in info.value.problems}
    assert problems == {
        ("server.port", "fastmango.toml"),
        ("server.hots", "fastmango.toml"),
        ("collectors.timeout", "env FASTMANGO_COLLECTORS__TIMEOUT"),
    }
    text = str(info.value)
    assert "did you mean 'server.host'?" in text
    assert "given: 'eighty'" in text and "given: 'soon'" in text


@pytest.mark.parametrize(
    ("files", "args", "env", "expected"),
    [
        ({"fastmango.toml": "[server]\nport = 80.5\n"}, [], {},
         ["fastmango.toml: server.port", "valid integer", "given: 80.5"]),
        ({"pyproject.toml": "[tool.fastmango]\nstore_dir = 'x'\n"}, [], {},
         ["pyproject.toml [tool.fastmango]: store_dir: unknown key", "did you mean 'state_dir'"]),
        ({}, ["--config", "missing.toml"], {}, ["missing.toml: --config", "does not exist"]),
        ({}, [], {"FASTMANGO_SERVER__PORT": "99999"},
         ["env FASTMANGO_SERVER__PORT: server.port", "less than or equal to 65535",
          "given: '99999'"]),
        ({"fastmango.toml": "[server\n"}, [], {}, ["fastmango.toml: (file): not valid TOML"]),
        ({}, [], {"FASTMANGO_SERVER__HOST": "0.0.0.0"}, ["server", "requires server.token"]),
    ],
)  # fmt: skip
def test_cli_config_errors_exit_2_naming_file_and_key(
    tmp_path: Path, files: dict[str, str], args: list[str], env: dict[str, str],
    expected: list[str],
) -> None:  # fmt: skip
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for command in (["config", "show"], ["agent"]):
        res = run_cli(tmp_path, *args, *command, env=env)
        assert res.returncode == 2, res.stderr
        for fragment in expected:
            assert fragment in res.stderr


def test_config_show_prints_values_and_sources(tmp_path: Path) -> None:
    (tmp_path / "fastmango.toml").write_text('[collectors]\ninterval = "1m"\n')
    res = run_cli(tmp_path, "config", "show", env={"FASTMANGO_SERVER__TOKEN": "t0psecret"})
    assert res.returncode == 0, res.stderr
    lines = {ln.split(" = ")[0]: ln for ln in res.stdout.splitlines()}
    assert (
        '"1m"' in lines["collectors.interval"] and "fastmango.toml" in lines["collectors.interval"]
    )
    assert "t0psecret" not in res.stdout and "env FASTMANGO_SERVER__TOKEN" in lines["server.token"]
    assert "# default" in lines["server.port"]


def test_config_init_writes_a_sample_that_loads_to_the_defaults(tmp_path: Path) -> None:
    res = run_cli(tmp_path, "config", "init")
    assert res.returncode == 0, res.stderr
    sample = (tmp_path / "fastmango.toml").read_text()
    assert sample == config.sample_toml()
    for name in Settings.model_fields:  # every top-level key is documented
        assert f"{name} = " in sample or f"[{name}" in sample
    tomllib.loads(sample)
    loaded = config.load(tmp_path, {})
    defaults = Settings().model_copy(update={"state_dir": tmp_path / ".fastmango"})
    assert loaded.settings == defaults
    again = run_cli(tmp_path, "config", "init")
    assert again.returncode == 1 and "--force" in again.stderr
