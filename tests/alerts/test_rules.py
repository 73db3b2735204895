"""Rules from the settings: built-ins tuned or turned off, config errors that name the
file and key, and the templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastmango.agent import config
from fastmango.agent.alerts.rules import BUILTIN, humanize_duration, load, render
from fastmango.errors import ConfigError


def settings_from(tmp_path: Path, toml: str) -> config.Loaded:
    (tmp_path / "fastmango.toml").write_text(toml)
    return config.load(config_file=tmp_path / "fastmango.toml", environ={})


def test_builtins_tuned_and_turned_off(tmp_path: Path) -> None:
    loaded = settings_from(
        tmp_path,
        """
[alerts.slack]
webhook_url = "https://hooks.slack.com/services/T/B/X"
[[alerts.rules]]
name = "HighErrorRatio"
for = "5m"
clear = 0.01
[[alerts.rules]]
name = "GpuTemperatureHigh"
enabled = false
[[alerts.rules]]
name = "Mine"
expr = 'x{a="b"} > 1'
channels = []
""",
    )
    rules = {r.name: r for r in load(loaded.settings.alerts)}
    assert set(rules) == (set(BUILTIN) - {"GpuTemperatureHigh"}) | {"Mine"}
    high = rules["HighErrorRatio"]
    assert (high.for_seconds, high.clear, high.severity) == (300.0, 0.01, "critical")
    assert high.expr == BUILTIN["HighErrorRatio"]["expr"] and high.channels == ("slack",)
    assert rules["Mine"].channels == () and rules["Mine"].builtin is False
    assert rules["DiskFull"].alertname == "DiskNearFull"


def test_every_builtin_names_series_of_the_catalogue_or_the_other_parts() -> None:
    from fastmango.agent.alerts import expr
    from fastmango.agent.catalogue import index

    known = set(index())
    published_elsewhere = {
        "fastmango_cost_month_projected_dollars",
        "fastmango_cost_budget_dollars",
        "log_lines_per_minute",
    }
    for name, spec in BUILTIN.items():
        for series in expr.names(expr.parse(spec["expr"])):
            assert series in known | published_elsewhere, (name, series)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[[alerts.rules]]\nname = "X"\n', "expr is required for a rule that is not built-in"),
        ('[[alerts.rules]]\nname = "X"\nexpr = "rate(x[1m]) > 1"\n', "rate() at 1 is not in"),
        ('[[alerts.rules]]\nname = "X"\nexpr = "x / y"\n', "needs a comparison at the top"),
        ('[[alerts.rules]]\nname = "bad name"\nexpr = "x > 1"\n', "letters, digits and _ only"),
        ('[[alerts.rules]]\nname = "X"\nexpr = "x > 1"\nfor = "soon"\n', "a duration such as"),
        ('[[alerts.rules]]\nname = "X"\nexpr = "x > 1"\nseverity = "page"\n', "'info', 'warning'"),
        ('[alerts.slack]\ntoken = "xoxb-1"\n', "a bot token needs alerts.slack.channel"),
        ('[alerts]\ngroup_wiat = "1m"\n', "did you mean 'alerts.group_wait'"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, toml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from(tmp_path, toml)
    text = str(err.value)
    assert "fastmango.toml: alerts" in text and expected in text
    assert "xoxb-1" not in text


def test_templates() -> None:
    labels = {"route": "/api", "alertname": "X"}
    assert (
        render("{{ $value | humanizePercentage }} on {{ $labels.route }}", labels, 0.123, 0.05)
        == "12.3% on /api"
    )
    assert render("{{ $value }} > {{ $threshold }}", labels, 1.5, 1) == "1.5 > 1"
    assert render("{{ $value | humanize }}B", {}, 2_500_000, None) == "2.5MB"
    assert render("{{ $value | humanizeDuration }}", {}, 0.2, None) == "200ms"
    assert render("{{ $labels.missing }}|{{ $other }}", {}, 1, 1) == "|{{ $other }}"
    assert render("{{ $value }}", {}, None, None) == "no data"
    assert humanize_duration(3725) == "1h 2m 5s"
