"""Hypothesis fuzzing of the parsers that take user input: settings files and variables,
label matchers, durations and times. Each answers with its own clear error (ConfigError,
ValueError) or a result, and never raises anything else."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmango.agent import config
from fastmango.agent.api import parse_time
from fastmango.agent.settings import parse_duration, parse_size
from fastmango.agent.store import parse_match
from fastmango.errors import ConfigError

FIXTURE_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
KEYS = st.sampled_from(
    ["server.port", "server.host", "collectors.interval", "store.max_size", "log_level",
     "collectors.app.metrics_urls", "environments.prod.platform", "logs", "nope.key",
     "server", "collectors.postgres.extra_urls", "store.raw_retention"]
)  # fmt: skip
VALUES = st.one_of(
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@FIXTURE_SETTINGS
@given(toml=st.text(max_size=300))
def test_any_settings_file_loads_or_names_its_problem(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "fastmango.toml"
    path.write_bytes(toml.encode("utf-8", "surrogatepass"))
    try:
        config.load(tmp_path, {})
    except ConfigError as exc:
        assert "fastmango.toml" in str(exc)


@FIXTURE_SETTINGS
@given(pairs=st.dictionaries(KEYS, st.text(max_size=20), max_size=4))
def test_any_environment_loads_or_names_the_variable(tmp_path: Path, pairs: dict[str, str]) -> None:
    environ = {"FASTMANGO_" + k.upper().replace(".", "__"): v for k, v in pairs.items()}
    try:
        config.load(tmp_path, environ)
    except ConfigError as exc:
        assert any(name in str(exc) for name in environ)


@FIXTURE_SETTINGS
@given(flags=st.dictionaries(KEYS, VALUES, max_size=3))
def test_any_flags_load_or_raise_config_error(tmp_path: Path, flags: dict[str, object]) -> None:
    with contextlib.suppress(ConfigError):  # anything else fails the test
        config.load(tmp_path, {}, flags=flags)


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=80))
def test_label_matchers_parse_or_say_why(text: str) -> None:
    try:
        parse_match(text)
    except ValueError as exc:
        assert str(exc)


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=20))
def test_durations_sizes_and_times_parse_or_say_why(text: str) -> None:
    for parse in (parse_duration, parse_size, lambda v: parse_time(v, 1e9)):
        try:
            parse(text)
        except ValueError as exc:
            assert str(exc)
